"""CPU kernels of the nn ops, on NumPy.

Half types compute in float32 and round once at the end (torch's opmath). Activations reuse the
elementwise machinery (out= and in-place checks); the reducing ops compute whole results in NumPy
and copy them into a fresh tensor. Kernels validate data-dependent conditions (target and index
bounds, BCE's input range) before writing anything, so a failed call changes nothing.
"""
import math

import numpy as np

from vibetensor.backends.cpu import np_compute, operand, special
from vibetensor.backends.cpu.elementwise import _with_params
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import nn
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import array
from vibetensor.backends.cpu.reduction import fresh

CPU = DispatchKey.CPU


def _new(spec_shape, dtype, device, value):
    """A fresh tensor holding `value` (a NumPy array or scalar, cast to dtype)."""
    res = output(None, None, tuple(spec_shape), dtype, device)
    if isinstance(value, (np.ndarray, np.generic)):
        array(res)[...] = value  # an unsafe cast like np.copyto's, without its ~1 us of dispatch
    else:
        np.copyto(array(res), value, casting="unsafe")
    return res


def _np(t, ct):
    """A tensor's values in compute dtype ct, or None."""
    return None if t is None else operand(t, ct)


# -- activations: fn(x, *params) -> values (x already in the compute dtype) --------------------------------------

def _int_params(x, params):
    """Integer inputs take integral parameters (torch converts the Scalar, truncating)."""
    return [int(p) for p in params] if x.dtype.kind in "iu" else params


def _hardtanh(x, lo, hi):
    lo, hi = _int_params(x, (lo, hi))
    return np.minimum(np.maximum(x, lo), hi)


def _elu(x, alpha, scale, input_scale):
    return np.where(x <= 0, np.expm1(x * input_scale) * (alpha * scale), x * scale)


def _gelu(x, approximate):
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1 + np.tanh(inner))
    return x * 0.5 * (1 + _erf(x * (1 / math.sqrt(2.0))))


def _erf(x):
    return special.erf(x).astype(x.dtype)


def _softplus(x, beta, threshold):
    bx = x * beta
    return np.where(bx > threshold, x, np.log1p(np.exp(bx)) / beta)


def _softshrink(x, lambd):
    return np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, x * 0))


def _threshold(x, threshold, value):
    threshold, value = _int_params(x, (threshold, value))
    return np.where(x <= threshold, np.array(value).astype(x.dtype), x)


def _hard_sigmoid(x):
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


def _glu(x, dim):
    a, b = np.split(x, 2, axis=dim % x.ndim)
    return a / (1 + np.exp(-b))


_ACTIVATIONS = {
    nn.hardtanh: _hardtanh,
    nn.leaky_relu: lambda x, slope: np.where(x > 0, x, x * slope),
    nn.elu: _elu,
    nn.gelu: _gelu,
    nn.silu: lambda x: x / (1 + np.exp(-x)),
    nn.mish: lambda x: x * np.tanh(np.log1p(np.exp(x))),
    nn.softplus: _softplus,
    nn.hardshrink: lambda x, lambd: np.where((x >= -lambd) & (x <= lambd), 0, x),
    nn.softshrink: _softshrink,
    nn.hardsigmoid: _hard_sigmoid,
    nn.hardswish: lambda x: x * _hard_sigmoid(x),
    nn.threshold: _threshold,
    nn.log_sigmoid: lambda x: np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x))),
}


def _sigmoid_np(x):
    return 1 / (1 + np.exp(-x))


def _gelu_grad(x, approximate):
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        x2 = x * x
        t = np.tanh(k * x * (1 + 0.044715 * x2))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x2)
    cdf = 0.5 * (1 + _erf(x * (1 / math.sqrt(2.0))))
    return cdf + x * (np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi)))


def _silu_grad(x):
    s = _sigmoid_np(x)
    return s * (1 + x * (1 - s))


def _mish_grad(x):
    t = np.tanh(np.log1p(np.exp(x)))
    return t + x * _sigmoid_np(x) * (1 - t * t)


# d activation / dx, for the fused backward of the activations on training's hot path
ACTIVATION_GRADS = {
    "gelu": _gelu_grad,
    "silu": _silu_grad,
    "mish": _mish_grad,
    "elu": lambda x, alpha, scale, input_scale: np.where(x <= 0, np.exp(x * input_scale) * (alpha * scale *
                                                                                             input_scale), scale),
    "leaky_relu": lambda x, slope: np.where(x > 0, 1, slope).astype(x.dtype),
    "softplus": lambda x, beta, threshold: np.where(x * beta > threshold, 1, _sigmoid_np(x * beta)),
    "log_sigmoid": lambda x: _sigmoid_np(-x),
    "hardswish": lambda x: np.where(x < -3, 0, np.where(x <= 3, x / 3 + 0.5, 1)).astype(x.dtype),
}


def _activation_backward(grad, x, name, params):
    spec = nn.activation_backward.meta(grad, x, name, params)
    ct = np_compute(spec.dtype)
    if name == "threshold":  # a mask, not a product: NaN and inf gradients below the threshold become 0
        g = np.where(operand(x, ct) <= params[0], 0, operand(grad, ct))
        return _new(spec.shape, spec.dtype, spec.device, g)
    d = ACTIVATION_GRADS[name](operand(x, ct), *params)
    g = operand(grad, ct) * (np.conj(d) if d.dtype.kind == "c" else d)  # torch's conjugate gradients
    return _new(spec.shape, spec.dtype, spec.device, g)


nn.activation_backward.register(CPU, _activation_backward)


def _activation(fn):
    def kernel(spec, out, x, *params):
        np.copyto(out, fn(operand(x, np_compute(spec.common)), *params), casting="unsafe")
    return kernel


for _op, _fn in _ACTIVATIONS.items():
    _with_params(_op, _activation(_fn))


def _glu_kernel(x, dim):
    spec = nn.glu.meta(x, dim)
    return _new(spec.shape, spec.dtype, spec.device, _glu(operand(x, np_compute(spec.common)), dim))


nn.glu.register(CPU, _glu_kernel)


def _prelu(x, weight):
    spec = nn.prelu.meta(x, weight)
    ct = np_compute(spec.dtype)
    xa = operand(x, ct)
    w = operand(weight, ct).reshape(nn.prelu_weight_shape(x, weight))
    return _new(spec.shape, spec.dtype, spec.device, np.where(xa > 0, xa, w * xa))


nn.prelu.register(CPU, _prelu)

# -- softmax -------------------------------------------------------------------------------------------------


def softmax_np(x, axis, log=False):
    """Stable (log-)softmax along axis: shifted by the max, so large logits neither overflow nor
    lose precision. A 0-d input is a slice of one element."""
    if x.ndim == 0:
        return softmax_np(x.reshape(1), 0, log).reshape(())
    if x.size == 0:
        return x.copy()
    z = x - np.maximum.reduce(x, axis, keepdims=True)  # np.max / ndarray.sum without their Python wrappers
    if log:
        z -= np.log(np.add.reduce(np.exp(z), axis, keepdims=True))
        return z
    e = np.exp(z, out=z)
    e /= np.add.reduce(e, axis, keepdims=True)
    return e


def _softmax(op, log):
    def kernel(x, dim, dtype=None):
        spec = op.meta(x, dim, dtype)
        return fresh(None, None, spec, softmax_np(operand(x, np_compute(spec.dtype)), spec.dim, log))
    op.register(CPU, kernel)


def _axis_sum(a, axis):
    return a.sum(axis, keepdims=True) if a.ndim else a


def _softmax_backward(op, log):
    def kernel(grad, y, dim):
        spec = op.meta(grad, y, dim)
        ct = np_compute(spec.dtype)
        g, p = operand(grad, ct), operand(y, ct)
        if log:
            gx = g - np.exp(p) * _axis_sum(g, spec.dim)
        else:
            gx = p * (g - _axis_sum(g * p, spec.dim))
        return _new(spec.shape, spec.dtype, spec.device, gx)
    op.register(CPU, kernel)


_softmax(nn.softmax, log=False)
_softmax(nn.log_softmax, log=True)
_softmax_backward(nn.softmax_backward_data, log=False)
_softmax_backward(nn.log_softmax_backward_data, log=True)

# -- losses: class-index targets ------------------------------------------------------------------------------


class _Targets:
    """Targets of a class-indexed loss with the class dim moved last: which count, what weight they
    carry. Raises torch's IndexError for a target out of range before anything is written."""

    def __init__(self, target, weight, ignore_index, classes, ct):
        t = array(target).astype(np.int64)
        self.valid = t != ignore_index
        bad = self.valid & ((t < 0) | (t >= classes))
        if bad.any():
            raise IndexError(f"Target {t[bad].flat[0]} is out of bounds.")
        self.index = np.where(self.valid, t, 0)
        self.w = None if weight is None else operand(weight, ct)
        per = np.ones(t.shape, ct) if self.w is None else self.w[self.index]
        self.weight = np.where(self.valid, per, 0).astype(ct)  # each target's weight, 0 when ignored

    def total(self):
        return self.weight.sum()

    def pick(self, xm):
        """xm[..., target] for class-last xm."""
        return np.take_along_axis(xm, self.index[..., None], -1)[..., 0]


def _class_last(a, class_dim):
    return a.reshape(1, -1) if a.ndim == 1 else np.moveaxis(a, class_dim, -1)


def _reduce(losses, reduction, total):
    if reduction == "none":
        return losses
    s = losses.sum()
    return s / total if reduction == "mean" else s


def _nll_np(lsm_m, tg, reduction):
    losses = np.where(tg.valid, -tg.pick(lsm_m) * tg.weight, 0)
    return _reduce(losses, reduction, tg.total())


def _targets(spec, x, target, weight, ignore_index, ct):
    return _Targets(target, weight, ignore_index, x._shape[spec.class_dim], ct)


def _nll_loss(x, target, weight, reduction, ignore_index):
    spec = nn.nll_loss.meta(x, target, weight, reduction, ignore_index)
    ct = np_compute(spec.dtype)
    tg = _targets(spec, x, _flat_target(x, target), weight, ignore_index, ct)
    loss = _nll_np(_class_last(operand(x, ct), spec.class_dim), tg, reduction)
    return _new(spec.shape, spec.dtype, spec.device, np.reshape(loss, spec.shape))


def _flat_target(x, target):
    """A 1-D input's target as a 1-element batch (the 0-d or 1-element target it allows)."""
    return target.reshape((1,)) if x.ndim == 1 else target


def _nll_loss_backward(grad, target, weight, reduction, ignore_index, shape):
    spec = nn.nll_loss_backward.meta(grad, target, weight, reduction, ignore_index, shape)
    ct = np_compute(spec.dtype)
    classes = shape[spec.class_dim]
    tg = _Targets(target.reshape((1,)) if len(shape) == 1 else target, weight, ignore_index, classes, ct)
    g = operand(grad, ct)
    if reduction == "none" and len(shape) > 1:
        scale = g
    else:
        g = g.reshape(())
        scale = g / tg.total() if reduction == "mean" else g
    coef = np.where(tg.valid, -tg.weight * scale, 0).astype(ct)
    gx = np.zeros(tuple(shape), ct)
    gm = _class_last(gx, spec.class_dim)
    np.put_along_axis(gm, tg.index[..., None], coef[..., None], -1)
    return _new(spec.shape, spec.dtype, spec.device, gx)


def _cross_entropy(x, target, weight, reduction, ignore_index, label_smoothing):
    spec = nn.cross_entropy.meta(x, target, weight, reduction, ignore_index, label_smoothing)
    ct = np_compute(spec.dtype)
    tg = _targets(spec, x, _flat_target(x, target), weight, ignore_index, ct)
    lsm = _class_last(softmax_np(operand(x, ct), spec.class_dim, log=True), spec.class_dim)
    loss = _nll_np(lsm, tg, reduction)
    if label_smoothing > 0:
        classes = lsm.shape[-1]
        smooth = -(lsm if tg.w is None else lsm * tg.w).sum(-1)
        smooth = _reduce(np.where(tg.valid, smooth, 0), reduction, tg.total())
        loss = (1 - label_smoothing) * loss + smooth * (label_smoothing / classes)
    return _new(spec.shape, spec.dtype, spec.device, np.reshape(loss, spec.shape))


def _cross_entropy_backward(grad, x, target, weight, reduction, ignore_index, label_smoothing):
    """(softmax(x) * a - b) * grad, with a = sum of the smoothed target weights and b the weighted
    smoothed target distribution (zero for ignored targets), divided by the total weight for mean."""
    spec = nn.cross_entropy_backward.meta(grad, x, target, weight, reduction, ignore_index, label_smoothing)
    ct = np_compute(spec.dtype)
    tg = _targets(spec, x, _flat_target(x, target), weight, ignore_index, ct)
    p = _class_last(softmax_np(operand(x, ct), spec.class_dim), spec.class_dim)  # (..., C)
    classes = p.shape[-1]
    ls = max(label_smoothing, 0.0)
    b = np.zeros(p.shape, ct)
    np.put_along_axis(b, tg.index[..., None], ((1 - ls) * tg.weight)[..., None], -1)
    a = (1 - ls) * tg.weight
    if ls > 0:
        w = np.ones(classes, ct) if tg.w is None else tg.w
        a = a + (ls / classes) * w.sum() * tg.valid
        b += (ls / classes) * w * tg.valid[..., None]
    g = operand(grad, ct)
    if reduction == "none" and x.ndim > 1:
        scale = g[..., None]
    else:
        g = g.reshape(())
        scale = g / tg.total() if reduction == "mean" else g
    gm = (p * a[..., None] - b) * scale
    gx = gm.reshape(x._shape) if x.ndim == 1 else np.moveaxis(gm, -1, spec.class_dim)
    return _new(spec.shape, spec.dtype, spec.device, gx)


def _binary_cross_entropy(x, target, weight):
    spec = nn.binary_cross_entropy.meta(x, target, weight)
    ct = np_compute(spec.dtype)
    p, t = operand(x, ct), operand(target, ct)
    if not ((p >= 0) & (p <= 1)).all():
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = (t - 1) * np.maximum(np.log1p(-p), -100) - t * np.maximum(np.log(p), -100)
    if weight is not None:
        loss = loss * operand(weight, ct)
    return _new(spec.shape, spec.dtype, spec.device, loss)


nn.nll_loss.register(CPU, _nll_loss)
nn.nll_loss_backward.register(CPU, _nll_loss_backward)
nn.cross_entropy.register(CPU, _cross_entropy)
nn.cross_entropy_backward.register(CPU, _cross_entropy_backward)
nn.binary_cross_entropy.register(CPU, _binary_cross_entropy)

# -- normalisation ---------------------------------------------------------------------------------------------


def _normalize(x, axes, eps, center=True):
    """(x - mean) * rstd over axes, with rstd, mean and the biased variance (keepdims). In-place
    steps on temporaries keep the passes over x few (these are the norms' hot loops)."""
    mean = x.mean(axes, keepdims=True) if center else None
    xc = x - mean if center else x
    var = np.square(xc).mean(axes, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = np.multiply(xc, rstd, out=xc) if center else xc * rstd
    return xhat, rstd, mean, var


def _normalized_grad(gxhat, xhat, rstd, axes, center=True):
    """The gradient through x -> (x - mean) * rstd, given the gradient of the normalised values:
    rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))."""
    proj = (gxhat * xhat).mean(axes, keepdims=True)
    out = np.multiply(xhat, proj)
    np.subtract(gxhat, out, out=out)
    if center:
        out -= gxhat.mean(axes, keepdims=True)
    out *= rstd
    return out


def _affine_np(y, w, b, shape):
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


def _param_grads(g, xhat, needs, params, axes):
    """Gradients of the affine weight (sum of g * xhat) and bias (sum of g) over `axes`, as tensors of
    the parameters' dtypes (None where not needed)."""
    out = []
    for need, t, value in zip(needs[1:], params, (lambda: g * xhat, lambda: g)):
        out.append(_new(t._shape, t._dtype, t._device, value().sum(axes).reshape(t._shape))
                   if need and t is not None else None)
    return out


def _rows(a, k):
    """a as (rows, features) over its last k dims (features may be 0)."""
    features = math.prod(a.shape[a.ndim - k:])
    return a.reshape(-1, features) if features else a.reshape(math.prod(a.shape[:a.ndim - k]), 0)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    spec = nn.layer_norm.meta(x, normalized_shape, weight, bias, eps)
    ct = np_compute(x._dtype)
    xr = _rows(operand(x, ct), len(normalized_shape))
    y = _normalize(xr, 1, eps)[0]
    y = _affine_np(y, _np(weight, ct), _np(bias, ct), (-1,))
    return _new(spec.shape, spec.dtype, spec.device, y.reshape(x._shape))


def _layer_norm_backward(grad, x, normalized_shape, weight, bias, eps, needs):
    ct = np_compute(x._dtype)
    k = len(normalized_shape)
    xr, g = _rows(operand(x, ct), k), _rows(operand(grad, ct), k)
    xhat, rstd = _normalize(xr, 1, eps)[:2]
    w = _np(weight, ct)
    gx = None
    if needs[0]:
        gx = _new(x._shape, x._dtype, x._device,
                  _normalized_grad(g if w is None else g * w.reshape(-1), xhat, rstd, 1).reshape(x._shape))
    return (gx, *_param_grads(g, xhat, needs, (weight, bias), 0))


def _rms_norm(x, normalized_shape, weight=None, eps=None):
    spec = nn.rms_norm.meta(x, normalized_shape, weight, eps)
    ct = np_compute(x._dtype)
    xr = _rows(operand(x, ct), len(normalized_shape))
    y = _normalize(xr, 1, nn.rms_eps(x, eps), center=False)[0]
    y = _affine_np(y, _np(weight, ct), None, (-1,))
    return _new(spec.shape, spec.dtype, spec.device, y.reshape(x._shape))


def _rms_norm_backward(grad, x, normalized_shape, weight, eps, needs):
    ct = np_compute(x._dtype)
    k = len(normalized_shape)
    xr, g = _rows(operand(x, ct), k), _rows(operand(grad, ct), k)
    xhat, rstd = _normalize(xr, 1, nn.rms_eps(x, eps), center=False)[:2]
    w = _np(weight, ct)
    gx = None
    if needs[0]:
        gxhat = g if w is None else g * w.reshape(-1)
        gx = _new(x._shape, x._dtype, x._device, _normalized_grad(gxhat, xhat, rstd, 1, center=False).reshape(x._shape))
    return (gx, *_param_grads(g, xhat, needs, (weight,), 0))


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _grouped(a, num_groups):
    """(N, C, *) as (N, G, C // G * prod(*))."""
    n, c = a.shape[:2]
    return a.reshape(n, num_groups, c // num_groups * math.prod(a.shape[2:]))


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    spec = nn.group_norm.meta(x, num_groups, weight, bias, eps)
    ct = np_compute(x._dtype)
    xa = operand(x, ct)
    y = _normalize(_grouped(xa, num_groups), 2, eps)[0].reshape(xa.shape)
    y = _affine_np(y, _np(weight, ct), _np(bias, ct), _channel_shape(xa))
    return _new(spec.shape, spec.dtype, spec.device, y)


def _group_norm_backward(grad, x, num_groups, weight, bias, eps, needs):
    ct = np_compute(x._dtype)
    xa, g = operand(x, ct), operand(grad, ct)
    xhat_g, rstd = _normalize(_grouped(xa, num_groups), 2, eps)[:2]
    xhat = xhat_g.reshape(xa.shape)
    w = _np(weight, ct)
    gx = None
    if needs[0]:
        gxhat = g if w is None else g * w.reshape(_channel_shape(xa))
        gx = _new(x._shape, x._dtype, x._device,
                  _normalized_grad(_grouped(gxhat, num_groups), xhat_g, rstd, 2).reshape(xa.shape))
    axes = (0,) + tuple(range(2, xa.ndim))
    return (gx, *_param_grads(g, xhat, needs, (weight, bias), axes))


def _batch_stats(xa, running_mean, running_var, training, eps, axes):
    """(xhat, rstd, mean, var) from the batch's statistics when training, else (xhat, rstd) from the
    running ones."""
    if not training:
        rstd = 1 / np.sqrt(operand(running_var, xa.dtype).reshape(_channel_shape(xa)) + eps)
        return (xa - operand(running_mean, xa.dtype).reshape(_channel_shape(xa))) * rstd, rstd
    return _normalize(xa, axes, eps)


def _update_running(running_mean, running_var, mean, var, n, momentum):
    """running = (1 - momentum) * running + momentum * batch statistic (the variance unbiased)."""
    for t, stat in ((running_mean, mean), (running_var, var * (n / max(n - 1, 1)))):
        if t is not None:
            a = array(t)
            np.copyto(a, (1 - momentum) * a + momentum * stat.reshape(a.shape), casting="unsafe")
            bump_version(t)


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    spec = nn.batch_norm.meta(x, weight, bias, running_mean, running_var, training, momentum, eps)
    ct = np_compute(x._dtype)
    xa = operand(x, ct)
    stats = _batch_stats(xa, running_mean, running_var, training, eps, spec.axes)
    y = _affine_np(stats[0], _np(weight, ct), _np(bias, ct), _channel_shape(xa))
    res = _new(spec.shape, spec.dtype, spec.device, y)
    if training and xa.size:
        _update_running(running_mean, running_var, stats[2], stats[3], xa.size // xa.shape[1], momentum)
    return res


def _batch_norm_backward(grad, x, weight, bias, running_mean, running_var, training, momentum, eps, needs):
    ct = np_compute(x._dtype)
    xa, g = operand(x, ct), operand(grad, ct)
    axes = (0,) + tuple(range(2, xa.ndim))
    xhat, rstd = _batch_stats(xa, running_mean, running_var, training, eps, axes)[:2]
    w = _np(weight, ct)
    gx = None
    if needs[0]:
        gxhat = g if w is None else g * w.reshape(_channel_shape(xa))
        gx = _normalized_grad(gxhat, xhat, rstd, axes) if training else gxhat * rstd
        gx = _new(x._shape, x._dtype, x._device, gx)
    return (gx, *_param_grads(g, xhat, needs, (weight, bias), axes))


nn.layer_norm.register(CPU, _layer_norm)
nn.layer_norm_backward.register(CPU, _layer_norm_backward)
nn.rms_norm.register(CPU, _rms_norm)
nn.rms_norm_backward.register(CPU, _rms_norm_backward)
nn.group_norm.register(CPU, _group_norm)
nn.group_norm_backward.register(CPU, _group_norm_backward)
nn.batch_norm.register(CPU, _batch_norm)
nn.batch_norm_backward.register(CPU, _batch_norm_backward)

# -- embedding, one_hot ----------------------------------------------------------------------------------------


def _checked_indices(indices, n):
    idx = array(indices).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    return idx


def _embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False):
    spec = nn.embedding.meta(weight, indices, padding_idx, scale_grad_by_freq)
    idx = _checked_indices(indices, weight._shape[0])
    return _new(spec.shape, spec.dtype, spec.device, array(weight)[idx])


def _embedding_dense_backward(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """Each index's gradient row summed into its weight row; none for padding_idx; divided by the
    index's frequency with scale_grad_by_freq."""
    spec = nn.embedding_dense_backward.meta(grad, indices, num_weights, padding_idx, scale_grad_by_freq)
    ct = np_compute(spec.dtype)
    idx = array(indices).astype(np.int64).reshape(-1)
    g = operand(grad, ct).reshape(idx.size, spec.shape[1])
    if scale_grad_by_freq:
        g = g / np.bincount(idx, minlength=num_weights)[idx][:, None]
    res = np.zeros(spec.shape, ct)
    np.add.at(res, idx, g)
    if 0 <= padding_idx < num_weights:
        res[padding_idx] = 0
    return _new(spec.shape, spec.dtype, spec.device, res)


def _embedding_renorm_(weight, indices, max_norm, norm_type):
    """Rows looked up by indices whose norm exceeds max_norm are scaled down to it, in place."""
    nn.embedding_renorm_.meta(weight, indices, max_norm, norm_type)
    rows = np.unique(_checked_indices(indices, weight._shape[0]))
    w = array(weight)
    ct = np_compute(weight._dtype)
    v = w[rows].astype(ct)
    if norm_type == math.inf:
        norms = np.abs(v).max(1) if v.size else np.zeros(len(rows), ct)
    else:
        norms = (np.abs(v) ** norm_type).sum(1) ** (1.0 / norm_type)
    scale = np.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
    w[rows] = (v * scale[:, None].astype(ct)).astype(w.dtype)
    bump_version(weight)
    return weight


def _one_hot(x, num_classes=-1):
    spec = nn.one_hot.meta(x, num_classes)
    xa = array(x)
    if xa.size:
        if xa.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if num_classes == -1:
            num_classes = int(xa.max()) + 1
        elif num_classes <= xa.max():
            raise RuntimeError("Class values must be smaller than num_classes.")
    res = xa[..., None] == np.arange(num_classes)
    return _new(xa.shape + (num_classes,), dt.int64, spec.device, res)


nn.embedding.register(CPU, _embedding)
nn.embedding_dense_backward.register(CPU, _embedding_dense_backward)
nn.embedding_renorm_.register(CPU, _embedding_renorm_)
nn.one_hot.register(CPU, _one_hot)
