"""CUDA kernels: random (being written)."""
