"""The front door: `import vibetensor.torch as torch`.

The names and behaviours a PyTorch user expects, over vibetensor's own tensor core, dispatcher and
kernels. Nothing here (or anywhere in vibetensor) imports torch.
"""
import vibetensor.ops  # noqa: F401  (declares every op)
import vibetensor.backends.cpu  # noqa: F401  (registers the CPU kernels)

from vibetensor.tensor.dtype import (  # noqa: F401
    bfloat16, complex64, complex128, float16, float32, float64, int8, int16, int32, int64, uint8,
    uint16, uint32, uint64,
    get_default_dtype, set_default_dtype, promote_types, result_type, can_cast)
from vibetensor.tensor.dtype import bool_ as bool  # noqa: A001
from vibetensor.tensor.dtype import dtype  # noqa: F401
from vibetensor.tensor.device import device  # noqa: F401
from vibetensor.tensor.shape import Size  # noqa: F401
from vibetensor.tensor.memory_format import (  # noqa: F401
    channels_last, channels_last_3d, contiguous_format, memory_format, preserve_format)
from vibetensor.tensor.tensor import Tensor  # noqa: F401
from vibetensor.torch import tensor_methods as _tensor_methods  # noqa: F401  (installs Tensor methods)
from vibetensor.torch.creation import (  # noqa: F401
    arange, as_tensor, asarray, empty, empty_like, empty_strided, eye, from_numpy, full, full_like, linspace,
    logspace, ones, ones_like, scalar_tensor, tensor, zeros, zeros_like)
from vibetensor.torch._tensor_str import get_printoptions, printoptions, set_printoptions  # noqa: F401
from vibetensor.torch.pointwise import *  # noqa: F401,F403
from vibetensor.torch.views import *  # noqa: F401,F403
from vibetensor.torch.reduction import *  # noqa: F401,F403
from vibetensor.torch.matmul import *  # noqa: F401,F403
from vibetensor.torch.joining import *  # noqa: F401,F403
from vibetensor.torch.random import *  # noqa: F401,F403
from vibetensor.torch.sorting import *  # noqa: F401,F403
from vibetensor.torch.scatter import *  # noqa: F401,F403
from vibetensor.torch.shape_ops import *  # noqa: F401,F403

from vibetensor import dispatch as _dispatch  # noqa: E402
from vibetensor.torch import cuda  # noqa: F401,E402

# The CUDA backend (Triton kernels) loads on the first op that needs it.
_dispatch.register_lazy_backend(_dispatch.DispatchKey.CUDA, lambda: __import__("vibetensor.backends.cuda"))

# dtype aliases, as torch has them
float = float32  # noqa: A001
double = float64
half = float16
cfloat = complex64
cdouble = complex128
long = int64
int = int32  # noqa: A001
short = int16


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


from vibetensor.torch import linalg, nn  # noqa: E402,F401  (torch.linalg, torch.nn)
from vibetensor.torch.nn import functional_conv as _functional_conv  # noqa: E402

globals().update(_functional_conv.TORCH_FUNCTIONS)  # torch.conv2d, torch.pixel_shuffle, ... as torch has them
globals().update(nn.functional.TORCH_FUNCTIONS)  # torch.softmax, torch.layer_norm, torch.embedding, ...

from vibetensor.torch import autograd  # noqa: E402,F401  (torch.autograd; installs backward, detach, hooks on Tensor)
from vibetensor.torch.autograd import (  # noqa: E402,F401
    enable_grad, inference_mode, is_anomaly_check_nan_enabled, is_anomaly_enabled, is_grad_enabled,
    is_inference_mode_enabled, no_grad, set_grad_enabled)

from vibetensor.torch import special  # noqa: E402,F401  (torch.special)
from vibetensor.torch import signal  # noqa: E402,F401  (torch.signal.windows)

from vibetensor.torch._foreach import *  # noqa: E402,F401,F403  (torch._foreach_*, torch._fused_*)
from vibetensor.torch import optim  # noqa: E402,F401  (torch.optim)

from vibetensor.torch.tensor_methods import clone  # noqa: E402,F401  (torch.clone(input))

from vibetensor.torch.functional import *  # noqa: E402,F401,F403  (einsum, tensordot, kron, cdist, meshgrid...)
from vibetensor.torch import amp, utils  # noqa: E402,F401  (torch.amp, torch.utils.data; amp wraps the functions above)
globals().update({n: getattr(amp, n) for n in amp.TORCH_FUNCTIONS}, cpu=amp.cpu)  # torch.autocast, torch.cpu...
from vibetensor.torch.aten import *  # noqa: E402,F401,F403  (torch.native_layer_norm..., torch.ops.aten)
from vibetensor.torch.serialization import *  # noqa: E402,F401,F403  (torch.save / torch.load)
