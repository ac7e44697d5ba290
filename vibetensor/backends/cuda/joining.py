"""CUDA kernels: joining (being written)."""
