"""CUDA kernels: scans (being written)."""
