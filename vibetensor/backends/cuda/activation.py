"""CUDA kernels: activation (being written)."""
