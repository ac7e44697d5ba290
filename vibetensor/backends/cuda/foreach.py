"""CUDA kernels: foreach (being written)."""
