"""Front door: matmul functions and methods."""

__all__ = []
