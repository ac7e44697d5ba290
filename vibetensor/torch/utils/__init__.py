"""torch.utils."""
from vibetensor.torch.utils import data  # noqa: F401
