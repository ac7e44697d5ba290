"""torch.nn.functional: stateless building blocks of neural networks."""
from vibetensor.ops import linalg as la


def linear(input, weight, bias=None):
    """input @ weight.T + bias."""
    return la.linear(input, weight, bias)


__all__ = ["linear"]

from vibetensor.torch.nn.functional_conv import *  # noqa: E402,F401,F403  (convolution, pooling, attention)
