"""CUDA kernels: indexing (being written)."""
