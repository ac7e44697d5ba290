"""Front door: joining functions and methods."""

__all__ = []
