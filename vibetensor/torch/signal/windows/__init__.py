"""torch.signal.windows: the window functions of scipy.signal.windows, written as torch writes them
(linspace, then an elementwise formula), so they run on every device and follow requires_grad."""
from vibetensor.torch.signal.windows.windows import (  # noqa: F401
    bartlett, blackman, cosine, exponential, gaussian, general_cosine, general_hamming, hamming, hann, kaiser, nuttall)

__all__ = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine", "general_hamming", "hamming",
           "hann", "kaiser", "nuttall"]
