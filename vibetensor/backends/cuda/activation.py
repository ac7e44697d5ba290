"""CUDA kernels of the nn activations and their fused backward, on the elementwise engine
(elementwise.py): each activation is an op code there, its parameters the kernel's float params."""
import numpy as np

from vibetensor.backends.cuda import elementwise as ew
from vibetensor.backends.cuda.plan import planned
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import nn, views
from vibetensor.ops.meta import output

CUDA = DispatchKey.CUDA


_IN_INPUT_DTYPE = ("hardshrink", "threshold")  # torch converts these parameters to the input's dtype first


def _code(name, params, dtype):
    """(op code name, kernel params) of an activation called with `params`."""
    if name == "gelu":
        return ("gelu_tanh" if params[0] == "tanh" else "gelu"), ()
    if name in _IN_INPUT_DTYPE and dtype.is_floating_point:
        return name, tuple(float(np.array(p).astype(dtype.np)) for p in params)
    return name, tuple(float(p) for p in params)


def _register(op):
    name = op.name[4:]

    def kernel(x, *params, out=None):
        spec = op.meta(x, *params)
        res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is x)
        code, p = _code(name, params, spec.common)
        ew.launch_general(code, spec.common, (x,), res, p)
        return ew.finish(res, out)
    op.register(CUDA, planned(kernel))


for _op in (nn.hardtanh, nn.leaky_relu, nn.elu, nn.gelu, nn.silu, nn.mish, nn.softplus, nn.hardshrink, nn.softshrink,
            nn.hardsigmoid, nn.hardswish, nn.threshold, nn.log_sigmoid):
    _register(_op)


def _activation_backward(grad, x, name, params):
    """grad * activation'(x) in one pass."""
    spec = nn.activation_backward.meta(grad, x, name, params)
    res = output("activation_backward", None, spec.shape, spec.dtype, spec.device)
    code, p = _code(name, params, spec.dtype)
    ew.launch_general(code + "_backward", spec.dtype, (grad, x), res, p)
    return res


nn.activation_backward.register(CUDA, planned(_activation_backward))


def _prelu(x, weight):
    spec = nn.prelu.meta(x, weight)
    w = views.reshape(weight, nn.prelu_weight_shape(x, weight))
    res = output("prelu", None, spec.shape, spec.dtype, spec.device)
    ew.launch_general("prelu", spec.dtype, (x, w), res)
    return res


def _glu(x, dim):
    spec = nn.glu.meta(x, dim)
    d = dim % x.ndim
    half = x._shape[d] // 2
    a, b = views.narrow(x, d, 0, half), views.narrow(x, d, half, half)
    res = output("glu", None, spec.shape, spec.dtype, spec.device)
    ew.launch_general("glu", spec.common, (a, b), res)
    return res


nn.prelu.register(CUDA, _prelu)
nn.glu.register(CUDA, _glu)
