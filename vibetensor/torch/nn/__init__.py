"""torch.nn: modules, parameters, init, utils and the functional interface."""
from vibetensor.torch.nn import functional  # noqa: F401
from vibetensor.torch.nn import init  # noqa: F401
from vibetensor.torch.nn.parameter import Buffer, Parameter  # noqa: F401
from vibetensor.torch.nn.modules import *  # noqa: F401,F403
from vibetensor.torch.nn.modules import Module  # noqa: F401
from vibetensor.torch.nn import utils  # noqa: F401
