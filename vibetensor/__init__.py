"""vibetensor: a readable deep-learning runtime in Python. Users import `vibetensor.torch`."""
__version__ = "0.1.0"

from vibetensor.compile import compile  # noqa: E402,F401  (whole-step CUDA-graph capture; not torch.compile)
