"""CUDA kernels: sorting (being written)."""
