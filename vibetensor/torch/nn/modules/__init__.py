"""torch.nn's module classes."""
from vibetensor.torch.nn.modules.module import Module  # noqa: F401
from vibetensor.torch.nn.modules.container import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.linear import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.activation import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.normalization import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.dropout import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.sparse import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.flatten import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.conv import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.pooling import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.loss import *  # noqa: F401,F403
from vibetensor.torch.nn.modules.transformer import *  # noqa: F401,F403
