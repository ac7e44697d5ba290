"""The ATen-level entry points torch also exposes to users: torch.native_layer_norm,
torch.native_batch_norm, torch.grid_sampler_2d, ... (they return torch's tuples: the result and the
statistics the backward would save), and `torch.ops.aten.<name>.<overload>` for the ATen operators
that have no other public spelling (_softmax_backward_data, slice.Tensor, native_dropout_backward...).

Each is built from our ops (the fused norm kernels for the result, reductions for the statistics),
so autograd works through every output torch differentiates.
"""
from vibetensor.autograd.grad_mode import no_grad
from vibetensor.ops import creation as _c
from vibetensor.ops import elementwise as ew
from vibetensor.ops import nn as nn_ops
from vibetensor.ops import reduction as rd
from vibetensor.ops import scatter as sc
from vibetensor.ops import views as vw
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.nn import functional_conv as _conv


# -- normalisation with statistics ---------------------------------------------------------------------------

def _mean_rstd(x, dims, eps, keepdim, dtype):
    """(mean, 1 / sqrt(biased var + eps)) of x over dims, computed in float32 for half types and
    returned in `dtype` (differentiable: torch's group norm differentiates through them)."""
    xc = _c.to(x, dt.float32, x._device) if x._dtype in (dt.bfloat16, dt.float16) else x
    var, mean = rd.var_mean(xc, dims, 0, keepdim)
    rstd = ew.rsqrt(ew.add(var, eps))
    return tuple(t if t._dtype is dtype else _c.to(t, dtype, t._device) for t in (mean, rstd))


def _no_stats(x, dtype):
    """The empty statistics torch returns where none were computed (evaluation mode)."""
    return tuple(_c.empty((0,), dtype, x._device) for _ in range(2))


def native_layer_norm(input, normalized_shape, weight, bias, eps):
    """(layer_norm(input), mean, rstd), the statistics shaped (*leading, 1, ..., 1) and not differentiable."""
    normalized_shape = tuple(normalized_shape)
    out = nn_ops.layer_norm(input, normalized_shape, weight, bias, eps)
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    with no_grad():
        mean, rstd = _mean_rstd(input, dims, eps, True, _stats_dtype(input, input._dtype))
    return out, mean, rstd


def native_group_norm(input, weight, bias, N, C, HxW, group, eps):
    """(group_norm(input), mean, rstd) with the statistics shaped (N, group); torch differentiates
    through all three outputs, so the statistics keep their graph."""
    out = nn_ops.group_norm(input, group, weight, bias, eps)
    grouped = vw.reshape(input, (N, group, C // group * HxW))  # (N, group, C / group * HxW)
    mean, rstd = _mean_rstd(grouped, (2,), eps, False, input._dtype)
    return out, mean, rstd


def _stats_dtype(input, cpu_dtype):
    """torch's dtype of saved statistics: on CUDA the accumulate type (float32 for half types, as its
    CUDA kernels allocate them), on CPU `cpu_dtype`."""
    if input._device.type == "cuda":
        return dt.float32 if input._dtype in (dt.bfloat16, dt.float16) else input._dtype
    return cpu_dtype


def _batch_stats_dtype(input, running_mean):
    return _stats_dtype(input, running_mean._dtype if running_mean is not None else input._dtype)


def _running_stats(input, running_mean, running_var, eps, dtype):
    """torch's CUDA save_mean / save_invstd in evaluation: the running mean, and 1 / sqrt(running_var +
    eps), in the statistics dtype."""
    var = running_var if running_var._dtype is dtype else _c.to(running_var, dtype, input._device)
    mean = running_mean if running_mean._dtype is dtype else _c.to(running_mean, dtype, input._device)
    return _c.clone(mean), ew.rsqrt(ew.add(var, eps))


def native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """(batch_norm(input), save_mean, save_invstd): the batch's statistics over every dim but 1 when
    training (the running ones move toward them); in evaluation empty tensors on CPU, the running
    statistics on CUDA (torch's two kernels differ there)."""
    stats_dtype = _batch_stats_dtype(input, running_mean)
    if training:
        with no_grad():  # before the running statistics move (they are not read here, but be plain)
            dims = (0,) + tuple(range(2, input.ndim))
            stats = _mean_rstd(input, dims, eps, False, stats_dtype)
    elif input._device.type == "cuda" and running_mean is not None and running_var is not None:
        with no_grad():
            stats = _running_stats(input, running_mean, running_var, eps, stats_dtype)
    else:
        stats = _no_stats(input, stats_dtype)
    out = nn_ops.batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps)
    return (out, *stats)


def _native_batch_norm_legit(input, weight, bias, *args):
    """Two overloads: (input, weight, bias, running_mean, running_var, training, momentum, eps) and
    no_stats (input, weight, bias, training, momentum, eps)."""
    if args and isinstance(args[0], bool):
        return _native_batch_norm_legit_no_stats(input, weight, bias, *args)
    return native_batch_norm(input, weight, bias, *args)


def _native_batch_norm_legit_no_stats(input, weight, bias, training, momentum, eps):
    return native_batch_norm(input, weight, bias, None, None, training, momentum, eps)


def _batch_norm_with_update(input, weight, bias, running_mean, running_var, momentum, eps):
    """Training-mode batch norm that updates the running statistics: (out, save_mean, save_invstd,
    reserve), the reserve an empty uint8 tensor on CPU as in torch."""
    out, mean, invstd = native_batch_norm(input, weight, bias, running_mean, running_var, True, momentum, eps)
    return out, mean, invstd, _c.empty((0,), dt.uint8, input._device)


# -- backward-data entry points -------------------------------------------------------------------------------

def _cast(t, dtype):
    dtype = dtype if dtype is not None else t._dtype
    return t if t._dtype is dtype else _c.to(t, dtype, t._device)


def _softmax_backward_data(grad_output, output, dim, input_dtype):
    """The gradient of softmax's input from the output's gradient and the softmax output, in input_dtype."""
    return _cast(nn_ops.softmax_backward_data(grad_output, output, dim), input_dtype)


def _log_softmax_backward_data(grad_output, output, dim, input_dtype):
    return _cast(nn_ops.log_softmax_backward_data(grad_output, output, dim), input_dtype)


def native_dropout_backward(grad_output, mask, scale):
    """grad_output * mask * scale (mask: which elements dropout kept)."""
    if not isinstance(mask, Tensor) or mask._dtype is not dt.bool_:
        got = mask._dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise RuntimeError(f"Mask should be Bool Scalar Type{got}")
    return ew.mul(ew.mul(grad_output, mask), scale)


def _safe_softmax(self, dim, dtype=None):
    """softmax, with 0 (not NaN) in the rows where every element is -inf (fully masked attention rows)."""
    masked = rd.all(ew.eq(self, float("-inf")), (dim,), True)
    out = nn_ops.softmax(ew.where(masked, 0.0, self), dim, dtype)  # no NaN rows, so no NaN gradients either
    return ew.where(masked, 0.0, out)


def _max_pool_with_indices_backward(n):
    def backward(grad_output, self, kernel_size, stride, padding, dilation, ceil_mode, indices):
        """The gradient of max_pool{n}d: each output gradient added at the input position its index names."""
        lead = tuple(self._shape[:-n])                          # (N, C) or (C,)
        flat_grad = vw.reshape(grad_output, lead + (-1,))
        flat_idx = vw.reshape(indices, lead + (-1,))
        zeros = _c.full(lead + (sh.numel(self._shape[-n:]),), 0, grad_output._dtype, device=grad_output._device)
        result = vw.reshape(sc.scatter_add(zeros, len(lead), flat_idx, flat_grad), tuple(self._shape))
        # torch differentiates it w.r.t. self too (a zero gradient): keep self in the graph
        return ew.where(_c.full((), True, dt.bool_, device=self._device), result, self)
    backward.__name__ = f"max_pool{n}d_with_indices_backward"
    return backward


def _slice(self, dim=0, start=None, end=None, step=1):
    """aten::slice.Tensor: self[start:end:step] along dim, a view."""
    return vw.slice_(self, dim, start, end, step)


# -- grid sampling by dimensionality --------------------------------------------------------------------------

def _grid_sampler_nd(name, ndim):
    def fn(input, grid, interpolation_mode, padding_mode, align_corners):
        if not isinstance(input, Tensor) or input.ndim != ndim:
            got = input.ndim if isinstance(input, Tensor) else type(input).__name__
            raise RuntimeError(f"{name}(): expected {ndim}D input and grid, but got input with {got} dimensions")
        return _conv.grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)
    fn.__name__ = name
    return fn


grid_sampler_2d = _grid_sampler_nd("grid_sampler_2d", 4)
grid_sampler_3d = _grid_sampler_nd("grid_sampler_3d", 5)


# -- torch.ops.aten -------------------------------------------------------------------------------------------

class OpOverload:
    """One overload of an ATen operator (torch.ops.aten.slice.Tensor)."""

    def __init__(self, packet, overload, fn):
        self._fn, self.__name__ = fn, f"{packet}.{overload}"

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def __repr__(self):
        return f"aten.{self.__name__}"


class OpOverloadPacket:
    """An ATen operator with its overloads as attributes; calling it calls the first (the default)."""

    def __init__(self, name, overloads):
        self.__name__ = name
        self._overloads = {k: OpOverload(name, k, f) for k, f in overloads.items()}
        self._default = next(iter(self._overloads.values()))

    def __getattr__(self, name):
        try:
            return self.__dict__["_overloads"][name]
        except KeyError:
            raise AttributeError(f"The underlying op of 'aten.{self.__name__}' has no overload name '{name}'") \
                from None

    def overloads(self):
        return list(self._overloads)

    def __call__(self, *args, **kwargs):
        return self._default(*args, **kwargs)

    def __repr__(self):
        return f"<OpOverloadPacket(op='aten.{self.__name__}')>"


class _Namespace:
    def __init__(self, name, packets):
        self._name, self._packets = name, packets

    def __getattr__(self, name):
        try:
            return self.__dict__["_packets"][name]
        except KeyError:
            raise AttributeError(f"'_OpNamespace' '{self._name}' object has no attribute '{name}' "
                                 "(vibetensor exposes only some ATen operators under torch.ops.aten)") from None

    def __dir__(self):
        return list(self._packets)


def _packets(table):
    return {name: OpOverloadPacket(name, overloads) for name, overloads in table.items()}


class _Ops:
    """torch.ops: torch.ops.aten.<operator>.<overload>."""

    def __init__(self):
        self.aten = _Namespace("aten", _packets({
            "_softmax_backward_data": {"default": _softmax_backward_data},
            "_log_softmax_backward_data": {"default": _log_softmax_backward_data},
            "native_dropout_backward": {"default": native_dropout_backward},
            "slice": {"Tensor": _slice},
            "_safe_softmax": {"default": _safe_softmax},
            "max_pool2d_with_indices_backward": {"default": _max_pool_with_indices_backward(2)},
            "max_pool3d_with_indices_backward": {"default": _max_pool_with_indices_backward(3)},
            "_batch_norm_with_update": {"default": _batch_norm_with_update},
            "native_batch_norm": {"default": native_batch_norm},
            "_native_batch_norm_legit": {"default": _native_batch_norm_legit,
                                         "no_stats": _native_batch_norm_legit_no_stats},
            "native_layer_norm": {"default": native_layer_norm},
            "native_group_norm": {"default": native_group_norm},
            "grid_sampler_2d": {"default": grid_sampler_2d},
            "grid_sampler_3d": {"default": grid_sampler_3d},
        }))


ops = _Ops()

# (torch has no top-level _batch_norm_with_update or native_dropout_backward: torch.ops.aten only)
__all__ = ["native_layer_norm", "native_group_norm", "native_batch_norm", "_native_batch_norm_legit",
           "_softmax_backward_data", "_log_softmax_backward_data", "grid_sampler_2d", "grid_sampler_3d", "ops"]
