"""Front door: scatter functions and methods."""

__all__ = []
