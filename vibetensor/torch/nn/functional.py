"""torch.nn.functional: stateless building blocks of neural networks.

Each function parses torch's signature (defaults, inplace=, the legacy size_average/reduce flags)
and calls one op of vibetensor/ops/nn.py, or composes a few ops where torch itself is a composite
(the elementwise losses, dropout, normalize, cosine_similarity...), with torch's checks and messages.

TORCH_FUNCTIONS maps the names torch also exports at top level (torch.softmax, torch.dropout,
torch.layer_norm, torch.embedding...) to functions with those top-level signatures.
"""
import math
import warnings

from vibetensor.autograd.grad_mode import is_grad_enabled, no_grad
from vibetensor.ops import creation as _c
from vibetensor.ops import elementwise as ew
from vibetensor.ops import linalg as la
from vibetensor.ops import nn as ops
from vibetensor.ops import random as _rand
from vibetensor.ops import reduction as rd
from vibetensor.ops import views as vw
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.tensor_methods import method


def linear(input, weight, bias=None):
    """input @ weight.T + bias."""
    return la.linear(input, weight, bias)


# -- activations ---------------------------------------------------------------------------------------------

def _act(op, input, *params, inplace=False):
    return op(input, *params, out=input) if inplace else op(input, *params)


def relu(input, inplace=False):
    return ew.relu(input, out=input) if inplace else ew.relu(input)


def relu_(input):
    return ew.relu(input, out=input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _act(ops.hardtanh, input, min_val, max_val, inplace=inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    return _act(ops.hardtanh, input, 0.0, 6.0, inplace=inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _act(ops.leaky_relu, input, negative_slope, inplace=inplace)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


def elu(input, alpha=1.0, inplace=False):
    return _act(ops.elu, input, alpha, 1.0, 1.0, inplace=inplace)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    return _act(ops.elu, input, _SELU_ALPHA, _SELU_SCALE, 1.0, inplace=inplace)


def selu_(input):
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _act(ops.elu, input, alpha, 1.0, 1.0 / alpha, inplace=inplace)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def gelu(input, approximate="none"):
    return ops.gelu(input, approximate)


def silu(input, inplace=False):
    return _act(ops.silu, input, inplace=inplace)


def mish(input, inplace=False):
    return _act(ops.mish, input, inplace=inplace)


def softplus(input, beta=1.0, threshold=20.0):
    return ops.softplus(input, beta, threshold)


def hardshrink(input, lambd=0.5):
    return ops.hardshrink(input, lambd)


def softshrink(input, lambd=0.5):
    return ops.softshrink(input, lambd)


def hardsigmoid(input, inplace=False):
    return _act(ops.hardsigmoid, input, inplace=inplace)


def hardswish(input, inplace=False):
    return _act(ops.hardswish, input, inplace=inplace)


def threshold(input, threshold, value, inplace=False):
    return _act(ops.threshold, input, threshold, value, inplace=inplace)


def threshold_(input, threshold, value):
    return ops.threshold(input, threshold, value, out=input)


def logsigmoid(input):
    return ops.log_sigmoid(input)


def tanhshrink(input):
    return ew.sub(input, ew.tanh(input))


def softsign(input):
    return ew.div(input, ew.add(ew.abs(input), 1))


def tanh(input):
    return ew.tanh(input)


def sigmoid(input):
    return ew.sigmoid(input)


def glu(input, dim=-1):
    return ops.glu(input, dim)


def prelu(input, weight):
    return ops.prelu(input, weight)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with a random slope per negative element, drawn from U(lower, upper) when training
    (the mean slope in evaluation)."""
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)
    _float_input("rrelu_with_noise_out_cpu", input)
    slope = _rand.uniform_(_c.empty(input._shape, input._dtype, device=input._device), lower, upper, None)
    noise = ew.where(ew.ge(input, 0), 1.0, slope)
    return ew.mul(input, noise, out=input) if inplace else ew.mul(input, noise)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def _float_input(kernel, x):
    if x._dtype.category != 2:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{ops._NAMES[x._dtype]}\'')


# -- softmax ---------------------------------------------------------------------------------------------------

def _get_softmax_dim(name, ndim, stacklevel):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _get_softmax_dim("softmax", input.ndim, _stacklevel)
    return ops.softmax(input, dim, dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _get_softmax_dim("softmin", input.ndim, _stacklevel)
    return ops.softmax(ew.neg(input), dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.ndim, _stacklevel)
    return ops.log_softmax(input, dim, dtype)


def _softmax_method(self, dim, dtype=None):
    return ops.softmax(self, dim, dtype)


def _log_softmax_method(self, dim, dtype=None):
    return ops.log_softmax(self, dim, dtype)


method(_softmax_method, "softmax")
method(_log_softmax_method, "log_softmax")
method(hardshrink, "hardshrink")

# -- dropout ---------------------------------------------------------------------------------------------------


def _check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


_ALPHA = 1.7580993408473766  # SELU's negative saturation: -scale * alpha


def _dropout(x, p, train, inplace, feature=False, alpha=False):
    """torch's _dropout_impl: keep each element (or channel) with probability 1 - p and rescale so the
    mean is unchanged; alpha dropout keeps SELU's mean and variance instead."""
    if p == 0 or not train or x.numel() == 0:
        return x
    zero = _c.full((), 0, x._dtype, device=x._device)
    if p == 1:
        return ew.mul(x, zero, out=x if inplace else None)
    if feature and x.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    shape = (x._shape[0], x._shape[1]) + (1,) * (x.ndim - 2) if feature else x._shape
    noise = _rand.bernoulli_(_c.empty(shape, x._dtype, device=x._device), 1 - p, None)
    if alpha:
        a = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1) * (1 - p))
        b = ew.add(ew.mul(ew.sub(noise, 1), _ALPHA * a), _ALPHA * a * p)
        noise = ew.mul(noise, a)
        y = ew.mul(x, noise, out=x if inplace else None)
        return ew.add(y, b, out=y if inplace else None)
    noise = ew.div(noise, 1 - p, out=noise)
    return ew.mul(x, noise, out=x if inplace else None)


def dropout(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    return _dropout(input, p, training, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    _check_p(p)
    return _dropout(input, p, training, inplace, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    _check_p(p)
    return _dropout(input, p, training, inplace, feature=True, alpha=True)


def _channel_dropout(input, p, training, inplace, batched_ndim):
    """dropout1d/3d: whole channels; an unbatched input gets a batch dim for the draw."""
    if input.ndim == batched_ndim:
        return _dropout(input, p, training, inplace, feature=True)
    y = _dropout(vw.unsqueeze(input, 0), p, training, inplace, feature=True)
    return input if inplace else vw.squeeze(y, (0,))


def dropout1d(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _channel_dropout(input, p, training, inplace, 3)


def _warn_dims(name, ndim, expected, spatial):
    if ndim not in expected:
        warnings.warn(f"{name}: Received a {ndim}-D input to {name}, which is deprecated and will result in an error "
                      "in a future release. To retain the behavior and silence this warning, please use dropout "
                      f"instead. Note that {name} exists to provide channel-wise dropout on inputs with {spatial} "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      f"{expected[0]}D or {expected[1]}D inputs).", UserWarning, stacklevel=3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Channels of (N, C, H, W); a 3-D input is taken as (N, C, L), as torch still does."""
    _check_p(p)
    _warn_dims("dropout2d", input.ndim, (3, 4), 2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", UserWarning, stacklevel=2)
    return _dropout(input, p, training, inplace, feature=True)


def dropout3d(input, p=0.5, training=True, inplace=False):
    _check_p(p)
    _warn_dims("dropout3d", input.ndim, (4, 5), 3)
    return _channel_dropout(input, p, training, inplace, 5)


# -- losses ----------------------------------------------------------------------------------------------------

def _legacy_reduction(size_average, reduce):
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  UserWarning, stacklevel=3)
    return ret


def _reduction(size_average, reduce, reduction):
    """torch's reduction string, from the legacy flags when given."""
    if size_average is not None or reduce is not None:
        return _legacy_reduction(size_average, reduce)
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                      UserWarning, stacklevel=3)
        return "mean"
    ops._check_reduction(reduction)
    return reduction


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return rd.mean(loss) if reduction == "mean" else rd.sum(loss)


def _warn_size(input, target):
    if tuple(target._shape) != tuple(input._shape):
        warnings.warn(f"Using a target size ({_size(target)}) that is different to the input size ({_size(input)}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", UserWarning, stacklevel=3)


def _size(t):
    return f"torch.Size([{', '.join(map(str, t._shape))}])"


def _float_result(kernel, *tensors):
    d = dt.result_type(*tensors)
    if d.category != 2:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{ops._NAMES[d]}\'')


def _weighted(loss, weight, input, reduction, mean_by_weight=True):
    """The weight= form of l1/mse/huber: weight the elementwise loss; mean divides by the weights'
    sum (l1, mse) or by the count (huber)."""
    if tuple(weight._shape) != tuple(input._shape):
        raise ValueError("Weights and input must have the same size.")
    loss = ew.mul(loss, weight)
    if reduction == "mean" and mean_by_weight:
        return ew.div(rd.sum(loss), rd.sum(weight))
    return _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    if weight is None:
        _float_result("mse_cpu", input, target)
    d = ew.sub(input, target)
    loss = ew.mul(d, d)
    return _reduce(loss, reduction) if weight is None else _weighted(loss, weight, input, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    loss = ew.abs(ew.sub(input, target))
    return _reduce(loss, reduction) if weight is None else _weighted(loss, weight, input, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    if beta == 0.0:
        return _reduce(ew.abs(ew.sub(input, target)), reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _float_result("smooth_l1_cpu", input, target)
    z = ew.abs(ew.sub(input, target))
    loss = ew.where(ew.lt(z, beta), ew.div(ew.mul(ew.mul(z, 0.5), z), beta), ew.sub(z, 0.5 * beta))
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _warn_size(input, target)
    ops._check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _float_result("huber_cpu", input, target)
    z = ew.abs(ew.sub(input, target))
    loss = ew.where(ew.lt(z, delta), ew.mul(ew.mul(z, 0.5), z), ew.mul(ew.sub(z, 0.5 * delta), delta))
    if weight is None:
        return _reduce(loss, reduction)
    return _weighted(loss, weight, input, reduction, mean_by_weight=False)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    d = dt.result_type(input, target)
    if d.category != 2:
        raise RuntimeError(f"result type Float can't be cast to the desired output type {ops._NAMES[d]}")
    return _reduce(ew.log1p(ew.exp(ew.mul(ew.neg(input), target))), reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    elif reduction != "batchmean":
        ops._check_reduction(reduction)
    loss = _kl_div_elements(input, target, log_target)
    if reduction == "batchmean":
        total = rd.sum(loss)
        return ew.div(total, input._shape[0]) if input.ndim else total
    return _reduce(loss, reduction)


def _kl_div_elements(input, target, log_target):
    """target * (log target - input), with target given as its log when log_target."""
    if input._dtype.category < 2 or target._dtype.category < 2:
        raise RuntimeError("kl_div: Integral inputs not supported.")
    if input._dtype.is_complex or target._dtype.is_complex:
        raise RuntimeError("kl_div: Complex inputs not supported.")
    if log_target:
        return ew.mul(ew.exp(target), ew.sub(target, input))
    return ew.sub(ew.xlogy(target, target), ew.mul(target, input))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target._shape) != tuple(input._shape):
        raise ValueError(f"Using a target size ({_size(target)}) that is different to the input size ({_size(input)}) "
                         "is deprecated. Please ensure they have the same size.")
    if weight is not None:  # torch's kernel multiplies the weight into the input-shaped loss, in its dtype
        _check_expandable(weight, target._shape)
        _check_inplace_broadcast(input._shape, input, weight)
        if weight._dtype is not input._dtype and input._dtype.category == 2:
            weight = _c.to(weight, input._dtype, weight._device)
    return _reduce(ops.binary_cross_entropy(input, target, weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """(1 - t) x - w_pos log(sigmoid(x)), w_pos = 1 + (pos_weight - 1) t: stable for any logit."""
    reduction = _reduction(size_average, reduce, reduction)
    if tuple(target._shape) != tuple(input._shape):
        raise ValueError(f"Target size ({_size(target)}) must be the same as input size ({_size(input)})")
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is not None and t._requires_grad and is_grad_enabled():  # torch has no derivative for them
            raise RuntimeError(f"The function 'binary_cross_entropy_with_logits' is not differentiable with "
                               f"respect to argument '{name}'. This input cannot have requires_grad True.")
    if input._dtype.category != 2:
        raise ops._missing("log_sigmoid_cpu", input._dtype)
    if target._dtype.category != 2:
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{ops._NAMES[target._dtype]}")
    # torch multiplies pos_weight and weight in place into input-shaped buffers: they may broadcast
    # up to input's shape but not grow it, and the loss keeps target's dtype.
    _check_inplace_broadcast(input._shape, pos_weight, target)
    _check_inplace_broadcast(input._shape, input, weight)
    return ops.binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction)


def _check_expandable(t, shape):
    """torch's error when t's trailing dims cannot broadcast against shape (F.binary_cross_entropy's weight)."""
    for i in range(1, min(t.ndim, len(shape)) + 1):
        if t._shape[-i] not in (1, shape[-i]):
            raise RuntimeError(f"Attempting to broadcast a dimension of length {t._shape[-i]} at {-i}! Mismatching "
                               f"argument at index 1 had torch.Size([{', '.join(map(str, t._shape))}]); but expected "
                               f"shape should be broadcastable to [{', '.join(map(str, shape))}]")


def _check_inplace_broadcast(out_shape, *operands):
    """torch's errors for an in-place product of `operands` (broadcast in this order) into a buffer of
    out_shape: they may not be broadcastable, or broadcast beyond out_shape. A None operand: no product."""
    if any(o is None for o in operands):
        return
    shape = tuple(sh.broadcast_shapes(out_shape, sh.broadcast_shapes(*(o._shape for o in operands))))
    if shape != tuple(out_shape):
        raise RuntimeError(f"output with shape [{', '.join(map(str, out_shape))}] doesn't match the broadcast "
                           f"shape [{', '.join(map(str, shape))}]")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    return ops.nll_loss(input, target, weight, reduction, ignore_index)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    reduction = _reduction(size_average, reduce, reduction)
    if isinstance(input, Tensor) and isinstance(target, Tensor) and tuple(input._shape) == tuple(target._shape):
        return _cross_entropy_probs(input, target, weight, reduction, ignore_index, label_smoothing)
    return ops.cross_entropy(input, target, weight, reduction, ignore_index, label_smoothing)


def _cross_entropy_probs(x, target, weight, reduction, ignore_index, label_smoothing):
    """Class-probability targets: -sum(w_c t_c log_softmax(x)_c) over the classes (torch's
    cross_entropy_loss_prob_target); mean divides by the number of samples."""
    if target._dtype.category != 2:
        raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                           f"{ops._NAMES[target._dtype]}")
    if ignore_index >= 0:
        raise RuntimeError("ignore_index is not supported for floating point target")
    class_dim = 0 if x.ndim == 1 else 1
    classes = x._shape[class_dim]
    if weight is not None and (weight.ndim != 1 or weight.numel() != classes):
        raise RuntimeError(f"cross_entropy: weight tensor should be defined either for all {classes} classes or no "
                           f"classes but got weight tensor of shape: [{', '.join(map(str, weight._shape))}]")
    lsm = ops.log_softmax(x, class_dim)
    if label_smoothing > 0.0:
        if label_smoothing > 1.0:
            raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing:g}")
        target = ew.add(ew.mul(target, 1 - label_smoothing), label_smoothing / classes)
    loss = ew.mul(lsm, target)
    if weight is not None:
        loss = ew.mul(loss, vw.reshape(weight, (classes,) + (1,) * (x.ndim - 1 - class_dim)))
    if reduction == "none":
        return ew.neg(rd.sum(loss, class_dim))
    total = ew.neg(rd.sum(loss))
    if reduction == "sum":
        return total
    if x.numel() == 0:
        return ew.mul(total, math.nan)
    return ew.div(total, x.numel() // classes)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    if not (input1.ndim == input2.ndim == target.ndim):
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {_size(input1)}, input2: {_size(input2)}, target: {_size(target)} ")
    loss = ew.clamp(ew.add(ew.mul(ew.neg(target), ew.sub(input1, input2)), margin), 0, None)
    return _reduce(loss, reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    zeros = _c.full((), 0, input._dtype, device=input._device)
    margin_clamp = ew.clamp(ew.sub(_c.full((), margin, input._dtype, device=input._device), input), 0, None)
    output_margin = ew.where(ew.ne(target, 1), margin_clamp, zeros)
    output_self = ew.where(ew.ne(target, -1), input, zeros)
    return _reduce(ew.add(output_margin, output_self), reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    if log_input:
        loss = ew.sub(ew.exp(input), ew.mul(target, input))
    else:
        loss = ew.sub(input, ew.mul(target, ew.log(ew.add(input, eps))))
    if full:
        stirling = ew.add(ew.sub(ew.mul(target, ew.log(target)), target),
                          ew.mul(ew.log(ew.mul(target, 2 * math.pi)), 0.5))
        loss = ew.add(loss, ew.where(ew.gt(target, 1), stirling, 0.0))
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = ew.mul(_c.full(input._shape, 1, input._dtype, device=input._device), var)
    elif bool(rd.any(ew.lt(var, 0))):
        raise ValueError("var has negative entry/entries")
    if tuple(var._shape) != tuple(input._shape):
        if tuple(input._shape[:-1]) == tuple(var._shape):
            var = vw.unsqueeze(var, -1)
        elif not (input.ndim == var.ndim and sum(y for x, y in zip(input._shape, var._shape) if x != y) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = _clamp_no_grad(var, eps)
    d = ew.sub(input, target)
    loss = ew.mul(ew.add(ew.log(var), ew.div(ew.mul(d, d), var)), 0.5)
    if full:
        loss = ew.add(loss, 0.5 * math.log(2 * math.pi))
    return _reduce(loss, reduction)


def _clamp_no_grad(t, low):
    """A copy of t whose values are clamped but whose gradient flows as if they were not (torch clamps
    a clone in place under no_grad)."""
    copy = ew.mul(t, 1)
    with no_grad():
        ew.clamp(copy, low, None, out=copy)
    return copy


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    eps = 1e-12
    prod_sum = rd.sum(ew.mul(input1, input2), -1)
    mag1 = ew.add(rd.sum(ew.mul(input1, input1), -1), eps)
    mag2 = ew.add(rd.sum(ew.mul(input2, input2), -1), eps)
    cos = ew.div(prod_sum, ew.sqrt(ew.mul(mag1, mag2)))
    zeros = _c.full((), 0, cos._dtype, device=cos._device)
    pos = ew.where(ew.eq(target, 1), ew.sub(1, cos), zeros)
    neg = ew.where(ew.eq(target, -1), ew.clamp(ew.sub(cos, margin), 0, None), zeros)
    return _reduce(ew.add(pos, neg), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    loss = ew.neg(ew.add(ew.mul(target, ops.log_sigmoid(input)),
                         ew.mul(ew.sub(1, target), ops.log_sigmoid(ew.neg(input)))))
    if weight is not None:
        loss = ew.mul(loss, weight)
    loss = ew.div(rd.sum(loss, input.ndim - 1), input._shape[-1])
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    reduction = _reduction(size_average, reduce, reduction)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ew.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(ew.clamp(ew.sub(ew.add(d_pos, margin), d_neg), 0, None), reduction)


# -- normalisation ---------------------------------------------------------------------------------------------

def _shape_arg(op, normalized_shape):
    """normalized_shape must be a sequence (torch.nn.LayerNorm turns an int into one; F does not)."""
    if not isinstance(normalized_shape, (tuple, list)) and type(normalized_shape).__name__ != "Size":
        raise TypeError(f"{op}(): argument 'normalized_shape' (position 2) must be tuple of ints, not "
                        f"{type(normalized_shape).__name__}")
    return tuple(normalized_shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return ops.layer_norm(input, _shape_arg("layer_norm", normalized_shape), weight, bias, eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return ops.rms_norm(input, _shape_arg("rms_norm", normalized_shape), weight, eps)


def _verify_batch_size(size):
    if size[0] * math.prod(size[2:]) == 1:  # a 0-d input has no size[0]: IndexError, as in torch
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {_size_list(size)}")


def _size_list(size):
    return f"torch.Size([{', '.join(map(str, size))}])" if isinstance(size, tuple) else str(list(size))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    _verify_batch_size([input._shape[0] * input._shape[1] // num_groups, num_groups] + list(input._shape[2:]))
    return ops.group_norm(input, num_groups, weight, bias, eps)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training:
        _verify_batch_size(tuple(input._shape))
    if training and eps <= 0.0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    return ops.batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Each (sample, channel) normalised over its spatial dims: group_norm with one group per channel;
    the running statistics move toward the batch average of the per-instance ones."""
    if use_input_stats:
        if math.prod(input._shape[2:]) == 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size "
                             f"{_size_list(tuple(input._shape))}")
    elif running_mean is None or running_var is None:
        raise RuntimeError("Expected running_mean and running_var to be defined when use_input_stats is false")
    if not use_input_stats:
        return ops.batch_norm(input, weight, bias, running_mean, running_var, False, momentum, eps)
    y = ops.group_norm(input, input._shape[1], weight, bias, eps)
    if running_mean is not None or running_var is not None:
        with no_grad():
            _update_instance_stats(input, running_mean, running_var, momentum)
    return y


def _update_instance_stats(x, running_mean, running_var, momentum):
    spatial = tuple(range(2, x.ndim))
    for t, stat in ((running_mean, lambda: rd.mean(x, spatial)), (running_var, lambda: rd.var(x, spatial, 1))):
        if t is not None:
            batch = rd.mean(stat(), 0)  # (C,): the average over the samples
            _c.copy_(t, ew.add(ew.mul(t, 1 - momentum), ew.mul(batch, momentum)))


# -- embedding, one_hot, distances ------------------------------------------------------------------------------

def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    if padding_idx is not None:
        if padding_idx > 0 and padding_idx >= weight._shape[0]:
            raise AssertionError("Padding_idx must be within num_embeddings")
        if padding_idx < 0:
            if padding_idx < -weight._shape[0]:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx = weight._shape[0] + padding_idx
    else:
        padding_idx = -1
    if sparse:
        raise NotImplementedError("embedding(sparse=True) needs sparse gradients, which vibetensor lacks")
    if max_norm is not None:
        with no_grad():
            ops.embedding_renorm_(weight, input, max_norm, norm_type)
    return ops.embedding(weight, input, padding_idx, scale_grad_by_freq)


def one_hot(tensor, num_classes=-1):
    return ops.one_hot(tensor, num_classes)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p over dim, eps)."""
    norm = rd.vector_norm(input, p, dim, True, None)
    return ew.div(input, ew.clamp(norm, eps, None), out=out)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum((x1 / |x1|) * (x2 / |x2|)) over dim, the norms clamped to eps without changing their
    gradient (as torch clamps clones under no_grad)."""
    common = dt.result_type(x1, x2)
    if common.category != 2:
        raise RuntimeError(f"expected common dtype to be floating point, yet common dtype is {ops._NAMES[common]}")
    shape = tuple(ew.binary_geometry("cosine_similarity", x1, x2)[0])
    x1, x2 = vw.expand(x1, shape), vw.expand(x2, shape)
    n1 = _clamp_no_grad(rd.vector_norm(x1, 2, dim, True, None), eps)
    n2 = _clamp_no_grad(rd.vector_norm(x2, 2, dim, True, None), eps)
    return rd.sum(ew.mul(ew.div(x1, n1), ew.div(x2, n2)), dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim."""
    dim = max(x1.ndim, x2.ndim) - 1
    return rd.vector_norm(ew.add(ew.sub(x1, x2), eps), p, dim, keepdim, None)


__all__ = ["linear",
           # activations
           "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu",
           "selu_", "celu", "celu_", "gelu", "silu", "mish", "softplus", "hardshrink", "softshrink", "hardsigmoid",
           "hardswish", "threshold", "threshold_", "logsigmoid", "tanhshrink", "softsign", "tanh", "sigmoid", "glu",
           "prelu", "rrelu", "rrelu_",
           # softmax
           "softmax", "softmin", "log_softmax",
           # dropout
           "dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d",
           # losses
           "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss", "kl_div", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "nll_loss", "cross_entropy", "margin_ranking_loss",
           "hinge_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss", "cosine_embedding_loss",
           "multilabel_soft_margin_loss", "triplet_margin_loss",
           # normalisation
           "layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm",
           # embedding, distances
           "embedding", "one_hot", "normalize", "cosine_similarity", "pairwise_distance"]


# -- torch.* names (top-level signatures) ------------------------------------------------------------------------

def _top_softmax(input, dim, dtype=None):
    return ops.softmax(input, dim, dtype)


def _top_log_softmax(input, dim, dtype=None):
    return ops.log_softmax(input, dim, dtype)


def _top_dropout(feature, alpha, inplace):
    def fn(input, p, train):
        return _dropout(input, p, train, inplace, feature, alpha)
    return fn


def _top_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    return layer_norm(input, normalized_shape, weight, bias, eps)


def _top_group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    return ops.group_norm(input, num_groups, weight, bias, eps)


def _top_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=True):
    return ops.batch_norm_impl(input, weight, bias, running_mean, running_var, training, momentum, eps)


def _top_instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                       cudnn_enabled=True):
    return instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def _top_embedding(weight, input, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if sparse:
        raise NotImplementedError("embedding(sparse=True) needs sparse gradients, which vibetensor lacks")
    return ops.embedding(weight, input, padding_idx, scale_grad_by_freq)


def _top_embedding_renorm_(input, indices, max_norm, norm_type):
    return ops.embedding_renorm_(input, indices, max_norm, norm_type)


_REDUCTION_ENUM = ("none", "mean", "sum")


# torch's top-level loss bindings declare `int reduction=Mean` but their Python parser reads that default
# as 0: torch.binary_cross_entropy_with_logits(x, t) and torch.kl_div(x, t) return the unreduced loss.
def _top_bce_with_logits(input, target, weight=None, pos_weight=None, reduction=0):
    return binary_cross_entropy_with_logits(input, target, weight, reduction=_REDUCTION_ENUM[reduction],
                                            pos_weight=pos_weight)


def _top_kl_div(input, target, reduction=0, *, log_target=False):
    return _reduce(_kl_div_elements(input, target, log_target), _REDUCTION_ENUM[reduction])


TORCH_FUNCTIONS = {
    "softmax": _top_softmax, "log_softmax": _top_log_softmax,
    "dropout": _top_dropout(False, False, False), "dropout_": _top_dropout(False, False, True),
    "feature_dropout": _top_dropout(True, False, False), "feature_dropout_": _top_dropout(True, False, True),
    "alpha_dropout": _top_dropout(False, True, False), "alpha_dropout_": _top_dropout(False, True, True),
    "feature_alpha_dropout": _top_dropout(True, True, False),
    "feature_alpha_dropout_": _top_dropout(True, True, True),
    "layer_norm": _top_layer_norm, "rms_norm": rms_norm, "group_norm": _top_group_norm,
    "batch_norm": _top_batch_norm, "instance_norm": _top_instance_norm,
    "embedding": _top_embedding, "embedding_renorm_": _top_embedding_renorm_,
    "selu": selu, "selu_": selu_, "celu": celu, "celu_": celu_, "prelu": prelu, "rrelu": rrelu, "rrelu_": rrelu_,
    "hardshrink": hardshrink, "threshold": threshold, "threshold_": threshold_,
    "binary_cross_entropy_with_logits": _top_bce_with_logits, "kl_div": _top_kl_div,
    "cosine_similarity": cosine_similarity, "pairwise_distance": pairwise_distance,
}
for _name, _fn in TORCH_FUNCTIONS.items():
    _fn.__name__ = _name

from vibetensor.torch.nn.functional_conv import *  # noqa: E402,F401,F403  (convolution, pooling, attention)
from vibetensor.torch.nn.functional_more import *  # noqa: E402,F401,F403  (bilinear, margin losses, max_unpool...)
