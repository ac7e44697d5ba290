"""Front door: reduction functions and methods."""

__all__ = []
