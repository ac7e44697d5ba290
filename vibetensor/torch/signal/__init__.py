"""torch.signal: window functions (torch.signal.windows)."""
from vibetensor.torch.signal import windows

__all__ = ["windows"]
