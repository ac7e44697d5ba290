"""Front door: scans and order statistics (cumsum, sort, topk, unique, ...)."""

__all__ = []
