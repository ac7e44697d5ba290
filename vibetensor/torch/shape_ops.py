"""Front door: shape_ops functions and methods."""

__all__ = []
