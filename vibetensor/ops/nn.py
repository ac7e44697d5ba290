"""nn operators: activations, softmax, losses, normalisation, embedding, one_hot.

Declarations, validation (torch's exception types and messages, checked before any kernel writes)
and derivatives. Kernels: backends/<device>/nn.py. User signatures: torch/nn/functional.py.

Activations follow ops/elementwise.py: op(x, *params, out=None), returning an elementwise Spec; the
in-place form (relu_, elu_, F.gelu(..., inplace=True)...) is the op called with out=x.
The other ops take normalised arguments: dims wrapped, shapes as tuples, optional tensors as None,
reduction one of 'none' | 'mean' | 'sum' (the front door turns torch's legacy flags into it).

Fused ops (softmax, log_softmax, nll_loss, cross_entropy, the norms) compute in one NumPy pass and
have fused backward kernels. Softmax's backward ops carry derivatives of their own (as in torch);
the others, under create_graph=True, differentiate a composite of differentiable ops instead
(`_retrace`), so any order of derivative stays exact without hand-written double backwards.
"""
import collections
import math

from vibetensor.dispatch import declare, local
from vibetensor.ops import elementwise as ew
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

Spec = ew.Spec
_NAMES = m.TYPE_NAMES
REDUCTIONS = ("none", "mean", "sum")


def _declare(name, meta=None, composite=None):
    return declare(name, meta=meta, family="nn", composite=composite)


def _check_tensor(op, x, arg="input", pos=1):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")


def _missing(kernel, d):
    return NotImplementedError(f'"{kernel}" not implemented for \'{_NAMES[d]}\'')


def _fmt(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


def _check_float(kernel, *tensors):
    """torch's AT_DISPATCH_FLOATING_TYPES_AND2(Half, BFloat16) refusal for the first non-float tensor."""
    for t in tensors:
        if t is not None and t._dtype.category != 2:
            raise _missing(kernel, t._dtype)


# -- activations ---------------------------------------------------------------------------------------------

def _float_only(kernel, allow=()):
    """The dtype table of an activation torch computes in floating types (plus `allow`)."""
    return ew.table(refused=ew.missing(kernel, tuple(d for d in ew.NOT_FLOAT if d not in allow)))


def activation(name, table, check=None):
    """An elementwise activation op(x, *params, out=None); `check(x, *params)` validates parameters."""
    def meta(x, *params):
        _check_tensor(name, x)
        r, c = ew.lookup(table, x._dtype)
        if check is not None:
            check(x, *params)
        return Spec(x._shape, r, x._device, c)
    meta.table, meta.arity, meta.check_out, meta.overlap_ok = table, 1, None, None
    return _declare(name, meta)


def _hardtanh_check(x, lo, hi):
    if x._dtype is dt.uint8 and (int(lo) < 0 or int(hi) < 0):  # the limits as the input's type
        raise RuntimeError("cannot do hardtanh on an unsigned type with negative limits")


def _softshrink_check(x, lambd):
    big = ew._limits(x._dtype)[1]
    if not 0 <= lambd <= big:
        raise RuntimeError(f"lambda must be in range [0, {big:g}] for input dtype {_NAMES[x._dtype]}, but found "
                           f"{lambd:g}")


def _threshold_check(x, threshold_, value):
    """Both numbers must fit the input's dtype (torch's checked Scalar conversion)."""
    for v in (threshold_, value):
        ew.check_scalar(v, x._dtype)


def _gelu_check(x, approximate):
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")


_CLAMP_LIKE = {**ew.refuse(ew.COMPLEX, NotImplementedError, "clamp is not supported for complex types")}
hardtanh = activation("hardtanh", ew.table(refused={  # hardtanh(x, min_val, max_val); relu6 is hardtanh(x, 0, 6)
    **ew.refuse(ew.BOOL, RuntimeError, "Bool inputs not supported for hardtanh"), **_CLAMP_LIKE}), _hardtanh_check)
leaky_relu = activation("leaky_relu", _float_only("leaky_relu_cpu"))    # leaky_relu(x, negative_slope)
elu = activation("elu", _float_only("elu_cpu"))                          # elu(x, alpha, scale, input_scale)
gelu = activation("gelu", _float_only("GeluKernelImpl"), _gelu_check)   # gelu(x, approximate)
silu = activation("silu", _float_only("silu_cpu", allow=ew.COMPLEX))
mish = activation("mish", _float_only("mish_cpu"))
softplus = activation("softplus", _float_only("softplus_cpu"))          # softplus(x, beta, threshold)
hardshrink = activation("hardshrink", _float_only("hardshrink_cpu"))    # hardshrink(x, lambd)
softshrink = activation("softshrink", _float_only("softshrink_check"), _softshrink_check)  # softshrink(x, lambd)
hardsigmoid = activation("hardsigmoid", _float_only("hardsigmoid_cpu"))
hardswish = activation("hardswish", _float_only("hardswish_cpu"))
threshold = activation("threshold", ew.table(refused=ew.missing("threshold_cpu", ew.BOOL + ew.COMPLEX)),
                       _threshold_check)                                 # threshold(x, threshold, value)
log_sigmoid = activation("log_sigmoid", _float_only("log_sigmoid_cpu"))


def _activation_backward_meta(grad, x, name, params):
    return Spec(grad._shape, grad._dtype, grad._device, grad._dtype)


# grad * activation'(x) in one kernel: the plain-backward path of the activations on the hot path
activation_backward = _declare("activation_backward", _activation_backward_meta)  # (grad, x, name, params)


def _glu_meta(x, dim):
    """glu(x, dim): x split in halves a, b along dim; a * sigmoid(b)."""
    _check_tensor("glu", x)
    r, c = ew.lookup(_GLU, x._dtype)
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = sh.wrap_dim(dim, x.ndim)
    if x._shape[d] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {x._shape[d]}")
    shape = x._shape[:d] + (x._shape[d] // 2,) + x._shape[d + 1:]
    return Spec(shape, r, x._device, c)


_GLU = _float_only("glu_cpu")
glu = _declare("glu", _glu_meta)                                         # glu(x, dim)


def _prelu_meta(x, weight):
    """weight: one slope, or one per channel (dim 1; a 1-D input has one channel)."""
    _check_tensor("prelu", x)
    _check_tensor("prelu", weight, "weight", 2)
    if x._dtype is not weight._dtype:
        raise RuntimeError(f"prelu: Type promoting not supported. Got {_NAMES[x._dtype]} and {_NAMES[weight._dtype]}")
    if weight.numel() != 1:
        if x.ndim == 0:
            raise RuntimeError("Not allow zero-dim input tensor.")
        channels = x._shape[1] if x.ndim > 1 else 1
        if channels != weight.numel():
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{weight.numel()} and channel size = {channels}.")
    if weight.ndim > 1:
        raise RuntimeError(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: ndim = {weight.ndim}")
    _check_float("prelu_cpu", x)
    return Spec(x._shape, x._dtype, m.common_device("prelu", (x, weight)), x._dtype)


def prelu_weight_shape(x, weight):
    """The shape that lines weight up with x's channel dim."""
    return (weight.numel(),) + (1,) * (x.ndim - 2) if x.ndim >= 2 else (weight.numel(),) * min(x.ndim, 1)


prelu = _declare("prelu", _prelu_meta)                                   # prelu(x, weight)

# -- softmax -------------------------------------------------------------------------------------------------
DimSpec = collections.namedtuple("DimSpec", "shape dtype device dim")


def _softmax_meta(name):
    def meta(x, dim, dtype=None):
        """dtype=: the input is cast to it first (so integer inputs work with a float dtype)."""
        _check_tensor(name, x)
        d = sh.wrap_dim(dim, x.ndim)
        d_out = dtype or x._dtype
        if d_out.category != 2 and x.numel():  # an empty input never reaches torch's kernel
            last = d == max(x.ndim - 1, 0)
            raise _missing(f"{name}_lastdim_kernel_impl" if last else f"{name}_kernel_impl", d_out)
        return DimSpec(x._shape, d_out, x._device, d)
    return meta


def _backward_data_meta(grad, y, dim):
    return DimSpec(y._shape, y._dtype, y._device, sh.wrap_dim(dim, y.ndim))


def _memoized_softmax(meta):
    """m.memoize_spec for a softmax meta: cached per (input signature, dim, dtype) for int dims."""
    cache = m.spec_cache()

    def cached(x, dim, dtype=None):
        if dim.__class__ is not int or not isinstance(x, Tensor):
            return meta(x, dim, dtype)
        key = (x._dtype, x._shape, x._device, dim, dtype)
        spec = cache.get(key)
        if spec is None:
            spec = m.remember(cache, key, meta(x, dim, dtype))
        return spec
    cached.uncached = meta
    return cached


softmax = _declare("softmax", _memoized_softmax(_softmax_meta("softmax")))              # softmax(x, dim, dtype=None)
log_softmax = _declare("log_softmax", _memoized_softmax(_softmax_meta("log_softmax")))  # log_softmax(x, dim, dtype=None)
softmax_backward_data = _declare("softmax_backward_data", _backward_data_meta)          # (grad, y, dim)
log_softmax_backward_data = _declare("log_softmax_backward_data", _backward_data_meta)  # (grad, y, dim)

# -- losses --------------------------------------------------------------------------------------------------
LossSpec = collections.namedtuple("LossSpec", "shape dtype device class_dim")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_class_weight(weight, x, n_classes):
    if weight is None:
        return
    if weight.ndim != 1 or weight.numel() != n_classes:
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes or no classes "
                           f"but got weight tensor of shape: {_fmt(weight._shape)}")
    if weight._dtype is not x._dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[x._dtype]} but found {_NAMES[weight._dtype]}")


def nll_spec(op, x, target, weight, reduction, ignore_index):
    """torch's nll_loss_nd checks, in its order; the loss shape is target's for reduction='none'."""
    _check_tensor(op, x)
    _check_tensor(op, target, "target", 2)
    _check_reduction(reduction)
    if x.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    if x.ndim != 1 and (target.ndim == 0 or x._shape[0] != target._shape[0]):
        got = target._shape[0] if target.ndim else 0
        raise ValueError(f"Expected input batch_size ({x._shape[0]}) to match target batch_size ({got}).")
    if target._dtype not in (dt.int64, dt.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {_NAMES[target._dtype]}")
    if x._dtype.category != 2:
        raise _missing("nll_loss_out_frame", x._dtype)
    if x.ndim <= 2:
        if target.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if x.ndim == 1 and target.ndim == 1 and target._shape[0] != 1:
            raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: {target._shape[0]}")
    elif x.ndim == 4 and target.ndim != 3:
        raise RuntimeError(f"only batches of spatial targets supported (3D tensors) but got targets of dimension: "
                           f"{target.ndim}")
    elif target._shape[1:] != x._shape[2:]:
        if x.ndim == 4:
            raise RuntimeError(f"size mismatch (got input: {_fmt(x._shape)} , target: {_fmt(target._shape)}")
        raise RuntimeError(f"Expected target size {_fmt((x._shape[0],) + x._shape[2:])}, got {_fmt(target._shape)}")
    class_dim = 0 if x.ndim == 1 else 1
    _check_class_weight(weight, x, x._shape[class_dim])
    shape = (() if x.ndim == 1 else (x._shape[0],) + x._shape[2:]) if reduction == "none" else ()
    return LossSpec(shape, x._dtype, m.common_device(op, (x, target, weight)), class_dim)


def _nll_meta(x, target, weight, reduction, ignore_index):
    return nll_spec("nll_loss", x, target, weight, reduction, ignore_index)


def _nll_backward_meta(grad, target, weight, reduction, ignore_index, shape):
    return LossSpec(tuple(shape), grad._dtype, grad._device, 0 if len(shape) == 1 else 1)


def _cross_entropy_meta(x, target, weight, reduction, ignore_index, label_smoothing):
    """cross_entropy with class-index targets (probability targets are a composite in the front door)."""
    _check_tensor("cross_entropy", x)
    if x.ndim >= 1 and x._dtype.category != 2:
        raise _missing("log_softmax_lastdim_kernel_impl" if x.ndim <= 2 else "log_softmax_kernel_impl", x._dtype)
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing:g}")
    spec = nll_spec("cross_entropy", x, target, weight, reduction, ignore_index)
    if label_smoothing > 0 and x.ndim == 1 and target.ndim == 1:  # torch masks a 0-d loss with a (1,) mask
        raise RuntimeError("output with shape [] doesn't match the broadcast shape [1]")
    return spec


def _cross_entropy_backward_meta(grad, x, target, weight, reduction, ignore_index, label_smoothing):
    return LossSpec(x._shape, x._dtype, x._device, 0 if x.ndim == 1 else 1)


def _binary_cross_entropy_meta(x, target, weight):
    """The elementwise loss -w (t log x + (1 - t) log(1 - x)) (reduction is the front door's)."""
    _check_tensor("binary_cross_entropy", x)
    _check_tensor("binary_cross_entropy", target, "target", 2)
    _check_float("binary_cross_entropy", x)
    for t in (target, weight):
        if t is not None and t._dtype is not x._dtype:
            raise RuntimeError(f"Found dtype {_NAMES[t._dtype]} but expected {_NAMES[x._dtype]}")
    if weight is not None:
        sh.broadcast_shapes(weight._shape, x._shape)
    return Spec(x._shape, x._dtype, m.common_device("binary_cross_entropy", (x, target, weight)), x._dtype)


nll_loss = _declare("nll_loss", _nll_meta)              # nll_loss(x, target, weight, reduction, ignore_index)
nll_loss_backward = _declare("nll_loss_backward", _nll_backward_meta)  # (grad, target, weight, reduction, ignore,
#                                                                          input shape)
cross_entropy = _declare("cross_entropy", _cross_entropy_meta)  # (x, target, weight, reduction, ignore, smoothing)
cross_entropy_backward = _declare("cross_entropy_backward", _cross_entropy_backward_meta)  # (grad, x, target, ...)
binary_cross_entropy = _declare("binary_cross_entropy", _binary_cross_entropy_meta)  # (x, target, weight)


def _binary_cross_entropy_with_logits(x, target, weight, pos_weight, reduction):
    """(1 - t) x - w_pos log(sigmoid(x)), w_pos = 1 + (pos_weight - 1) t: stable for any logit;
    times weight, in target's dtype, then reduced. The front door checks the arguments."""
    log_sig = log_sigmoid(x)
    if pos_weight is not None:
        log_sig = ew.mul(log_sig, ew.add(ew.mul(ew.sub(pos_weight, 1), target), 1))
    loss = ew.sub(ew.mul(ew.sub(1, target), x), log_sig)
    if weight is not None:
        loss = ew.mul(loss, weight)
    if loss._dtype is not target._dtype:
        loss = _c.to(loss, target._dtype, loss._device)
    if reduction == "none":
        return loss
    return _r.mean(loss) if reduction == "mean" else _r.sum(loss)


# one op for autograd, as in torch: its gradient formulas round differently from the pieces' in half types
binary_cross_entropy_with_logits = _declare("binary_cross_entropy_with_logits",
                                            composite=_binary_cross_entropy_with_logits)
# (x, target, weight, pos_weight, reduction)

# -- normalisation -------------------------------------------------------------------------------------------
NormSpec = collections.namedtuple("NormSpec", "shape dtype device axes")


def _check_normalized_shape(x, normalized_shape, weight, bias, star=", "):
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., containing at least one "
                           "element, but got normalized_shape = []")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t._shape) != normalized_shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"{_fmt(t._shape)} and normalized_shape = {_fmt(normalized_shape)}")
    if x.ndim < k or x._shape[x.ndim - k:] != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={_fmt(normalized_shape)}, expected input with shape "
                           f"[*{star}{', '.join(map(str, normalized_shape))}], but got input of size{_fmt(x._shape)}")
    return tuple(range(x.ndim - k, x.ndim))


def _check_params_dtype(x, *params):
    """torch's CPU norms take parameters of the input's dtype, or float32 ones with a half input."""
    for p in params:
        if p is not None and p._dtype is not x._dtype and not (x._dtype.itemsize == 2 and p._dtype is dt.float32):
            raise RuntimeError(f"mixed dtype (CPU): expect parameter to have scalar type of {_NAMES[x._dtype]}")


def _layer_norm_meta(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    _check_tensor("layer_norm", x)
    axes = _check_normalized_shape(x, normalized_shape, weight, bias)
    _check_float("LayerNormKernelImpl", x)
    _check_params_dtype(x, weight, bias)
    return NormSpec(x._shape, x._dtype, m.common_device("layer_norm", (x, weight, bias)), axes)


def _rms_norm_meta(x, normalized_shape, weight=None, eps=None):
    _check_tensor("rms_norm", x)
    axes = _check_normalized_shape(x, normalized_shape, weight, None, star="")
    if x._dtype.category < 2:  # floating and complex types
        raise _missing("rms_norm", x._dtype)
    return NormSpec(x._shape, x._dtype, m.common_device("rms_norm", (x, weight)), axes)


def _check_channels(x, name, t):
    if t is not None and (t.ndim != 1 or t.numel() != x._shape[1]):
        raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of channels in input, but got "
                           f"{name} of shape {_fmt(t._shape)} and input of shape {_fmt(x._shape)}")


def _group_norm_meta(x, num_groups, weight=None, bias=None, eps=1e-5):
    _check_tensor("group_norm", x)
    if x.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {x.ndim}")
    if num_groups <= 0 or x._shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {_fmt(x._shape)} and num_groups={num_groups}")
    _check_channels(x, "weight", weight)
    _check_channels(x, "bias", bias)
    _check_float("GroupNormKernelImpl", x)
    _check_params_dtype(x, weight, bias)
    return NormSpec(x._shape, x._dtype, m.common_device("group_norm", (x, weight, bias)), None)


def _batch_norm_meta(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Normalise over every dim but 1 (the channels). Training uses the batch's statistics and moves
    the running ones toward them; evaluation uses the running ones."""
    _check_tensor("batch_norm", x)
    channels = x._shape[1] if x.ndim > 1 else 0
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {t.numel()}")
    if not training:
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is None:
                raise RuntimeError(f"{name} must be defined in evaluation mode")
    if x.ndim == 0:  # torch's kernel reads the channel count past the end of the shape and fails
        raise RuntimeError("batch_norm: expected an input of shape (N, C, *), got a 0-d tensor")
    sh.wrap_dim(1, x.ndim)  # 1-d: IndexError, as torch's kernel asking for size(1)
    _check_float("batch_norm", x)
    axes = (0,) + tuple(range(2, x.ndim))
    return NormSpec(x._shape, x._dtype, m.common_device("batch_norm", (x, weight, bias)), axes)


def _norm_backward_meta(grad, x, *rest):
    return NormSpec(x._shape, x._dtype, x._device, None)


layer_norm = _declare("layer_norm", _layer_norm_meta)        # layer_norm(x, normalized_shape, weight, bias, eps)
rms_norm = _declare("rms_norm", _rms_norm_meta)              # rms_norm(x, normalized_shape, weight, eps)
group_norm = _declare("group_norm", _group_norm_meta)        # group_norm(x, num_groups, weight, bias, eps)
batch_norm = _declare("batch_norm", _batch_norm_meta)        # batch_norm(x, w, b, running_mean, running_var, training,
#                                                                         momentum, eps); updates the running stats
# fused backward kernels: (grad, x, <the forward's other arguments>, needs) -> (grad_x, grad_weight, grad_bias)
layer_norm_backward = _declare("layer_norm_backward", _norm_backward_meta)
rms_norm_backward = _declare("rms_norm_backward", _norm_backward_meta)
group_norm_backward = _declare("group_norm_backward", _norm_backward_meta)
batch_norm_backward = _declare("batch_norm_backward", _norm_backward_meta)

# -- embedding, one_hot --------------------------------------------------------------------------------------


def _check_indices(indices, op):
    if indices._dtype not in (dt.int64, dt.int32):
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {m.legacy_type_name(indices)} instead (while checking arguments for "
                           f"{op})")


def _embedding_meta(weight, indices, padding_idx=-1, scale_grad_by_freq=False):
    _check_tensor("embedding", weight, "weight", 1)
    _check_tensor("embedding", indices, "indices", 2)
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    _check_indices(indices, "embedding")
    return Spec(indices._shape + (weight._shape[1],), weight._dtype,
                m.common_device("embedding", (weight, indices)), weight._dtype)


def _embedding_backward_meta(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    _check_indices(indices, "embedding_backward")
    return Spec((num_weights, grad._shape[-1]), grad._dtype, grad._device, grad._dtype)


def _embedding_renorm_meta(weight, indices, max_norm, norm_type):
    _check_indices(indices, "embedding_renorm_")
    if weight.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    return Spec(weight._shape, weight._dtype, weight._device, weight._dtype)


def _one_hot_meta(x, num_classes=-1):
    _check_tensor("one_hot", x, "self")
    if x._dtype is not dt.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes <= 0 and x.numel() == 0:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    return Spec(None, dt.int64, x._device, dt.int64)  # the class count may depend on the values


embedding = _declare("embedding", _embedding_meta)   # embedding(weight, indices, padding_idx, scale_grad_by_freq)
embedding_dense_backward = _declare("embedding_dense_backward", _embedding_backward_meta)
embedding_renorm_ = _declare("embedding_renorm_", _embedding_renorm_meta)  # (weight, indices, max_norm, norm_type)
one_hot = _declare("one_hot", _one_hot_meta)                  # one_hot(x, num_classes=-1)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# Elementwise activations: formulas from torch's derivatives.yaml, written with ops (so they
# differentiate again). Reductions' fused backward kernels run for plain backward; with
# create_graph=True (grad mode on inside the formula) the formula differentiates a composite of
# differentiable ops that computes the same forward (`_retrace`).
from vibetensor.autograd import engine as _engine  # noqa: E402
from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative, \
    nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.ops import creation as _c, joining as _j, reduction as _r, views as _v  # noqa: E402

_add, _sub, _mul, _div, _where = ew.add, ew.sub, ew.mul, ew.div, ew.where
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and bool(n[i])


def _retrace(ctx, grad, forward, inputs):
    """Gradients of forward(*inputs) (a composite of differentiable ops) w.r.t. the inputs that need
    one, as a differentiable graph: the create_graph path of the fused ops."""
    wanted = [i for i, t in enumerate(inputs) if t is not None and _needs(ctx, i) and t._requires_grad]
    out = [None] * len(inputs)
    if not wanted:
        return tuple(out)
    y = forward(*inputs)
    gs = _engine.grad(y, [inputs[i] for i in wanted], grad, create_graph=True, allow_unused=True)
    for i, g in zip(wanted, gs):
        out[i] = g
    return tuple(out)


def _fused(ctx):
    """Plain backward (grad mode off): the fused kernels; create_graph: `_retrace`."""
    return not local.grad_enabled


def _fused_activation(name):
    """Plain backward runs activation_backward's single kernel; create_graph the formula below."""
    def wrap(formula):
        def derivative(ctx, grad, x, *params):
            if _fused(ctx):
                return activation_backward(grad, x, name, params)
            return formula(ctx, grad, x, *params)
        derivative.__name__ = formula.__name__
        return derivative
    return wrap


@_derivative(hardtanh, save=0)
def _hardtanh_backward(ctx, grad, x, lo, hi):
    return _where(ew.logical_or(ew.le(x, lo), ew.ge(x, hi)), 0.0, grad)


@_derivative(leaky_relu, save=0)
@_fused_activation("leaky_relu")
def _leaky_relu_backward(ctx, grad, x, slope):
    return _where(ew.gt(x, 0), grad, _mul(grad, slope))


@_derivative(elu, save=0)
@_fused_activation("elu")
def _elu_backward(ctx, grad, x, alpha, scale, input_scale):
    negative = _mul(grad, _mul(ew.exp(_mul(x, input_scale)), alpha * scale * input_scale))
    return _where(ew.le(x, 0), negative, _mul(grad, scale))


@_derivative(gelu, save=0)
@_fused_activation("gelu")
def _gelu_backward(ctx, grad, x, approximate):
    if approximate == "tanh":
        x2 = _mul(x, x)
        inner = _mul(_mul(x, _add(_mul(x2, 0.044715), 1.0)), _SQRT_2_OVER_PI)
        t = ew.tanh(inner)
        d_inner = _mul(_add(_mul(x2, 3 * 0.044715), 1.0), _SQRT_2_OVER_PI)
        left = _mul(_add(t, 1.0), 0.5)
        right = _mul(_mul(_mul(x, 0.5), _sub(1.0, _mul(t, t))), d_inner)
        return _mul(grad, _add(left, right))
    cdf = _mul(_add(ew.erf(_mul(x, _INV_SQRT_2)), 1.0), 0.5)
    pdf = _mul(ew.exp(_mul(_mul(x, x), -0.5)), _INV_SQRT_2PI)
    return _mul(grad, _add(cdf, _mul(x, pdf)))


@_derivative(silu, save=0)
@_fused_activation("silu")
def _silu_backward(ctx, grad, x):
    s = ew.sigmoid(x)
    return _mul(grad, _conj(_mul(s, _add(_mul(x, _sub(1.0, s)), 1.0))))


@_derivative(mish, save=0)
@_fused_activation("mish")
def _mish_backward(ctx, grad, x):
    t = ew.tanh(softplus(x, 1, 20))
    return _mul(grad, _add(t, _mul(_mul(x, ew.sigmoid(x)), _sub(1.0, _mul(t, t)))))


@_derivative(softplus, save=0)
@_fused_activation("softplus")
def _softplus_backward(ctx, grad, x, beta, threshold_):
    bx = _mul(x, beta)
    return _where(ew.gt(bx, threshold_), grad, _mul(grad, ew.sigmoid(bx)))


def _shrink_backward(ctx, grad, x, lambd):
    return _where(ew.logical_and(ew.ge(x, -lambd), ew.le(x, lambd)), 0.0, grad)


_derivative(hardshrink, save=0)(_shrink_backward)
_derivative(softshrink, save=0)(_shrink_backward)


@_derivative(hardsigmoid, save=0)
def _hardsigmoid_backward(ctx, grad, x):
    return _where(ew.logical_and(ew.gt(x, -3.0), ew.lt(x, 3.0)), _div(grad, 6.0), 0.0)


@_derivative(hardswish, save=0)
@_fused_activation("hardswish")
def _hardswish_backward(ctx, grad, x):
    middle = _mul(grad, _add(_div(x, 3.0), 0.5))
    return _where(ew.lt(x, -3.0), 0.0, _where(ew.le(x, 3.0), middle, grad))


@_derivative(ew.relu, save="result")
def _relu_backward(ctx, grad, x):
    """torch's threshold_backward(grad, result, 0): zero where the result is <= 0 (one kernel when plain)."""
    if _fused(ctx):
        return activation_backward(grad, ctx.result, "threshold", (0, 0))
    return _where(ew.le(ctx.result, 0), 0.0, grad)


@_derivative(threshold, save=0)
def _threshold_backward(ctx, grad, x, threshold_, value):
    return _where(ew.le(x, threshold_), 0.0, grad)


@_derivative(log_sigmoid, save=0)
@_fused_activation("log_sigmoid")
def _log_sigmoid_backward(ctx, grad, x):
    return _mul(grad, ew.sigmoid(ew.neg(x)))


@_derivative(glu, save=0)
def _glu_backward(ctx, grad, x, dim):
    d = sh.wrap_dim(dim, x.ndim)
    half = x._shape[d] // 2
    a, b = _v.narrow(x, d, 0, half), _v.narrow(x, d, half, half)
    s = ew.sigmoid(b)
    ga = _mul(grad, s)
    gb = _mul(_mul(ga, a), _sub(1.0, s))
    return _j.cat([ga, gb], d)


@_derivative(prelu, save=(0, 1))
def _prelu_backward(ctx, grad, x, weight):
    positive = ew.gt(x, 0)
    gx = gw = None
    if _needs(ctx, 0):
        gx = _where(positive, grad, _mul(grad, _v.reshape(weight, prelu_weight_shape(x, weight))))
    if _needs(ctx, 1):
        gxw = _where(positive, 0.0, _mul(grad, x))
        if weight.numel() == 1 or x.ndim < 2:
            gw = _v.reshape(_r.sum(gxw), weight._shape)
        else:
            gw = _r.sum(gxw, (0,) + tuple(range(2, x.ndim)))
    return gx, gw


# softmax family: torch's formulas; the backward ops are differentiable too
@_derivative(softmax, save="result")
def _softmax_backward(ctx, grad, x, dim, dtype=None):
    return softmax_backward_data(grad, ctx.result, dim)


@_derivative(log_softmax, save="result")
def _log_softmax_backward(ctx, grad, x, dim, dtype=None):
    return log_softmax_backward_data(grad, ctx.result, dim)


@_derivative(softmax_backward_data, save=(0, 1))
def _softmax_backward_data_backward(ctx, gg, grad, y, dim):
    """d/d(grad) is the op itself (it is linear in grad); d/dy of y * (grad - sum(grad * y))."""
    g_grad = softmax_backward_data(gg, y, dim) if _needs(ctx, 0) else None
    g_y = None
    if _needs(ctx, 1):
        s = _r.sum(_mul(grad, y), dim, True)
        g_y = _sub(_mul(gg, _sub(grad, s)), _mul(grad, _r.sum(_mul(gg, y), dim, True)))
    return g_grad, g_y


@_derivative(log_softmax_backward_data, save=(0, 1))
def _log_softmax_backward_data_backward(ctx, gg, grad, y, dim):
    """grad - exp(y) * sum(grad): linear in grad; d/dy is -gg * exp(y) * sum(grad)."""
    p = ew.exp(y)
    g_grad = _sub(gg, _r.sum(_mul(gg, p), dim, True)) if _needs(ctx, 0) else None
    g_y = ew.neg(_mul(_mul(gg, p), _r.sum(grad, dim, True))) if _needs(ctx, 1) else None
    return g_grad, g_y


# losses
@_derivative(nll_loss, save=(1, 2))
def _nll_loss_backward(ctx, grad, x, target, weight, reduction, ignore_index):
    return nll_loss_backward(grad, target, weight, reduction, ignore_index, tuple(x.shape))


@_derivative(nll_loss_backward, save=(1, 2))
def _nll_loss_backward_backward(ctx, gg, grad, target, weight, reduction, ignore_index, shape):
    return nll_loss(gg, target, weight, reduction, ignore_index)  # linear in grad: its transpose is the loss


def cross_entropy_composite(x, target, weight, reduction, ignore_index, label_smoothing):
    """cross_entropy from differentiable ops, as torch composes it (log_softmax, nll_loss, smoothing)."""
    class_dim = 0 if x.ndim == 1 else 1
    lsm = log_softmax(x, class_dim)
    nll = nll_loss(lsm, target, weight, reduction, ignore_index)
    if label_smoothing <= 0:
        return nll
    classes = x._shape[class_dim]
    weighted = lsm if weight is None else _mul(lsm, _v.reshape(weight, (classes,) + (1,) * (x.ndim - 1 - class_dim)))
    valid = ew.ne(target, ignore_index)
    smooth = _where(valid, ew.neg(_r.sum(weighted, class_dim, False)), 0.0)
    if reduction == "none":
        pass
    elif reduction == "sum":
        smooth = _r.sum(smooth)
    elif weight is None:
        smooth = _div(_r.sum(smooth), _r.sum(valid))
    else:
        safe = _where(valid, target, 0)
        picked = embedding(_v.reshape(weight, (classes, 1)), safe, -1, False)  # weight[target], target shape + (1,)
        picked = _where(valid, _v.reshape(picked, target._shape), 0.0)
        smooth = _div(_r.sum(smooth), _r.sum(picked))
    return _add(_mul(nll, 1.0 - label_smoothing), _mul(smooth, label_smoothing / classes))


@_derivative(cross_entropy, save=(0, 1, 2))
def _cross_entropy_derivative(ctx, grad, x, target, weight, reduction, ignore_index, label_smoothing):
    if _fused(ctx):
        return cross_entropy_backward(grad, x, target, weight, reduction, ignore_index, label_smoothing)
    return _retrace(ctx, grad, lambda x_: cross_entropy_composite(x_, target, weight, reduction, ignore_index,
                                                                  label_smoothing), (x,))


_BCE_EPS = 1e-12


@_derivative(binary_cross_entropy, save=(0, 1, 2))
def _binary_cross_entropy_backward(ctx, grad, x, target, weight):
    gw = grad if weight is None else _mul(grad, weight)
    gx = gt = None
    if _needs(ctx, 0):
        gx = _div(_mul(gw, _sub(x, target)), ew.clamp(_mul(_sub(1.0, x), x), _BCE_EPS, None))
    if _needs(ctx, 1):
        log_1mx = ew.clamp(ew.log1p(ew.neg(x)), -100.0, None)
        gt = _mul(gw, _sub(log_1mx, ew.clamp(ew.log(x), -100.0, None)))
    return gx, gt, None


@_derivative(binary_cross_entropy_with_logits, save=(0, 1, 2, 3))
def _binary_cross_entropy_with_logits_backward(ctx, grad, x, target, weight, pos_weight, reduction):
    """torch's binary_cross_entropy_with_logits_backward and _target_backward, operation for operation
    (the same roundings in half types); weight and pos_weight get none (torch refuses them)."""
    gx = gt = None
    if _needs(ctx, 0):
        if pos_weight is None:
            gx = _sub(ew.sigmoid(x), target)
        else:
            tp = _mul(pos_weight, target)
            gx = _sub(_mul(_sub(_add(tp, 1), target), ew.sigmoid(x)), tp)
        gx = _weigh(_mul(gx, grad), weight, reduction, x)
    if _needs(ctx, 1):
        if pos_weight is None:
            gt = _mul(ew.neg(x), grad)
        else:
            gt = _mul(_sub(log_sigmoid(ew.neg(x)), _mul(log_sigmoid(x), pos_weight)), grad)
        gt = _weigh(gt, weight, reduction, target)
    return gx, gt, None, None, None


def _weigh(g, weight, reduction, like):
    """The weight, then the mean's 1/numel, applied to an elementwise gradient (torch's order)."""
    g = g if weight is None else _mul(g, weight)
    return _div(g, like.numel()) if reduction == "mean" else g


# normalisation
def _moments(x, axes, eps, center=True):
    """(x - mean) * rstd over `axes` (keepdim), from differentiable ops."""
    xc = _sub(x, _r.mean(x, axes, True)) if center else x
    return _mul(xc, ew.rsqrt(_add(_r.mean(_mul(xc, xc), axes, True), eps)))


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = _mul(y, _v.reshape(weight, shape))
    if bias is not None:
        y = _add(y, _v.reshape(bias, shape))
    return y


def layer_norm_composite(x, normalized_shape, weight, bias, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return _affine(_moments(x, axes, eps), weight, bias, tuple(normalized_shape))


def rms_norm_composite(x, normalized_shape, weight, eps):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return _affine(_moments(x, axes, rms_eps(x, eps), center=False), weight, None, tuple(normalized_shape))


def rms_eps(x, eps):
    """torch's default eps: the machine epsilon of the compute dtype (float32 for half types)."""
    if eps is not None:
        return eps
    return 2.0 ** -52 if x._dtype in (dt.float64, dt.complex128) else 2.0 ** -23


def group_norm_composite(x, num_groups, weight, bias, eps):
    n, c = x._shape[0], x._shape[1]
    grouped = _v.reshape(x, (n, num_groups, -1))
    y = _v.reshape(_moments(grouped, (2,), eps), x._shape)
    return _affine(y, weight, bias, (c,) + (1,) * (x.ndim - 2))


def batch_norm_impl(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """torch.batch_norm (aten's _batch_norm_impl_index): an input with no elements skips every check
    and statistic and gives a copy of x times weight[0] plus bias[0] (so the graph still reaches the
    parameters, as torch's clone/mul/add does); any other input is the batch_norm op."""
    if x.numel() == 0 and x.ndim > 0:
        y = _c.clone(x)
        if weight is not None:
            y = _mul(y, _v.select(weight, 0, 0))
        return y if bias is None else _add(y, _v.select(bias, 0, 0))
    return batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)


def batch_norm_composite(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """The forward without the running-statistics update."""
    channel = (x._shape[1],) + (1,) * (x.ndim - 2)
    if training:
        y = _moments(x, (0,) + tuple(range(2, x.ndim)), eps)
    else:
        y = _mul(_sub(x, _v.reshape(running_mean, channel)),
                 ew.rsqrt(_add(_v.reshape(running_var, channel), eps)))
    return _affine(y, weight, bias, channel)


def _rms_norm_complex_grad(ctx, grad, x, normalized_shape, weight, eps):
    """rms_norm of complex x, torch's composite y = x r w with r = rsqrt(mean(x^2) + eps) (x^2, not
    |x|^2: holomorphic in x and w), so the gradients are conj(dy/dx)^T grad (torch's conjugate
    Wirtinger convention): gx = conj(r) (gw - conj(xhat) mean(conj(xhat) gw)), gw = grad conj(w),
    xhat = x r; gweight = sum over the batch dims of conj(xhat) grad (its real part for a real weight,
    which the engine's cast takes). Written with ops, so create_graph differentiates it again."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    r = ew.rsqrt(_add(_r.mean(_mul(x, x), axes, True), rms_eps(x, eps)))  # (*batch, 1...)
    xhat_c = ew.conj(_mul(x, r))
    gx = gweight = None
    if _needs(ctx, 0):
        gw = grad if weight is None else _mul(grad, ew.conj(weight))
        proj = _r.mean(_mul(xhat_c, gw), axes, True)
        gx = _mul(ew.conj(r), _sub(gw, _mul(xhat_c, proj)))
    if weight is not None and _needs(ctx, 2):
        batch = tuple(range(x.ndim - len(normalized_shape)))
        gweight = _r.sum(_mul(xhat_c, grad), batch, False) if batch else _mul(xhat_c, grad)
    return gx, None, gweight, None


def _norm_derivative(op, backward_op, composite, params, save=None, complex_formula=None):
    """Derivative of a norm op whose argument 0 is x and `params` the positions of weight/bias.
    (batch_norm saves its running statistics only in evaluation: training updates them in place.)
    complex_formula(ctx, grad, x, *args) differentiates complex x (the fused kernels are real only)."""
    @_derivative(op, save=save or (0,) + params)
    def formula(ctx, grad, x, *args):
        if x._dtype.is_complex:  # only rms_norm's forward takes complex x (as torch's)
            if complex_formula is None:
                raise NotImplementedError(f"the derivative of {op.name[4:]} for complex inputs is not implemented")
            return complex_formula(ctx, grad, x, *args)
        if _fused(ctx):
            needs = (_needs(ctx, 0),) + tuple(_needs(ctx, p) for p in params)
            gx, *gp = backward_op(grad, x, *args, needs)
            out = [gx] + [None] * len(args)
            for p, g in zip(params, gp):
                out[p] = g
            return tuple(out)

        def forward(x_, *ps):
            full = list(args)
            for p, t in zip(params, ps):
                full[p - 1] = t
            return composite(x_, *full)
        grads = _retrace(_Shifted(ctx, params), grad, forward, (x,) + tuple(args[p - 1] for p in params))
        out = [grads[0]] + [None] * len(args)
        for p, g in zip(params, grads[1:]):
            out[p] = g
        return tuple(out)
    formula.__name__ = f"_{op.name[4:]}_backward"
    return formula


class _Shifted:
    """ctx.needs_input_grad restricted to x and the parameter positions (for _retrace's inputs)."""
    def __init__(self, ctx, params):
        n = ctx.needs_input_grad
        self.needs_input_grad = (n[0],) + tuple(n[p] if p < len(n) else False for p in params)


_norm_derivative(layer_norm, layer_norm_backward, layer_norm_composite, (2, 3))
_norm_derivative(rms_norm, rms_norm_backward, rms_norm_composite, (2,), complex_formula=_rms_norm_complex_grad)
_norm_derivative(group_norm, group_norm_backward, group_norm_composite, (2, 3))
_norm_derivative(batch_norm, batch_norm_backward, batch_norm_composite, (1, 2),
                 save=lambda x, w, b, rm, rv, training, *rest: (0, 1, 2) if training else (0, 1, 2, 3, 4))


# embedding
@_derivative(embedding, save=1)
def _embedding_backward(ctx, grad, weight, indices, padding_idx=-1, scale_grad_by_freq=False):
    return embedding_dense_backward(grad, indices, weight.shape[0], padding_idx, scale_grad_by_freq), None


@_derivative(embedding_dense_backward, save=1)
def _embedding_dense_backward_backward(ctx, gg, grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """The transpose of a scatter-add is a gather: rows of gg at the indices (padding rows give none,
    and frequency scaling divides as in the forward)."""
    g = embedding(gg, indices, -1, False)
    if padding_idx >= 0:
        g = _where(_v.unsqueeze(ew.eq(indices, padding_idx), -1), 0.0, g)
    if scale_grad_by_freq:
        flat = _v.reshape(indices, (-1,))
        ones = _c.full((flat.numel(), 1), 1, gg._dtype, device=gg._device)
        counts = embedding_dense_backward(ones, flat, num_weights, -1, False)  # (num_weights, 1)
        g = _div(g, embedding(counts, indices, -1, False))
    return g, None


for _op in (activation_backward, one_hot, embedding_renorm_, cross_entropy_backward, layer_norm_backward,
            rms_norm_backward, group_norm_backward, batch_norm_backward):
    _nondifferentiable(_op)
