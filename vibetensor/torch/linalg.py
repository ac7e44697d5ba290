"""Front door: torch.linalg."""

__all__ = []
