"""Front door: random functions and methods."""

__all__ = []
