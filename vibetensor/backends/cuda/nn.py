"""CUDA kernels: nn (being written)."""
