"""torch.nn: for now the functional interface only (vibetensor.torch.nn.functional)."""
from vibetensor.torch.nn import functional  # noqa: F401
