"""CPU kernels of the conv ops, on NumPy.

Everything windowed is one idea: a padded input viewed through `windows` (as_strided: no copy)
as (..., *kernel, *out), and its adjoint `col2im`, which adds windows back into a padded array
with one slice-add per kernel offset (never a Python loop over pixels). Convolution is windows
reshaped into im2col columns times the weight (np.matmul, per group); its input gradient and
transposed convolution are weight^T times columns, then col2im.

Half types compute in float32 and round once at the end, as torch's CPU kernels do.
"""
import functools
import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import conv as ops
from vibetensor.tensor.tensor import from_array

CPU = DispatchKey.CPU


def _result(a, dtype, source=None):
    """A new tensor holding array `a` in `dtype` (copied when `a` may share memory with `source`)."""
    if source is not None and np.may_share_memory(a, source):
        a = a.copy()
    a = a.astype(dtype.np, copy=False)
    return from_array(a if a.flags.c_contiguous else np.ascontiguousarray(a))


def _kernel(op):
    def register(fn):
        op.register(CPU, fn)
        return fn
    return register


# -- windows and their adjoint ----------------------------------------------------------------------------------

def windows(xp, kernel, stride, dilation, out):
    """(..., *S) -> read-only view (..., *kernel, *out) with [..., k, o] = xp[..., o * stride + k * dilation]."""
    n = len(kernel)
    st = xp.strides[-n:]
    shape = xp.shape[:-n] + tuple(kernel) + tuple(out)
    strides = xp.strides[:-n] + tuple(s * d for s, d in zip(st, dilation)) + tuple(s * t for s, t in zip(st, stride))
    return as_strided(xp, shape, strides, writeable=False)


def col2im(cols, padded, kernel, stride, dilation):
    """The adjoint of `windows`: cols (..., *kernel, *out) added into zeros (..., *padded)."""
    n = len(kernel)
    out = cols.shape[-n:]
    xp = np.zeros(cols.shape[:-2 * n] + tuple(padded), cols.dtype)
    for k in np.ndindex(*kernel):
        dst = tuple(slice(ki * d, ki * d + s * (o - 1) + 1, s) for ki, d, s, o in zip(k, dilation, stride, out))
        xp[(Ellipsis,) + dst] += cols[(Ellipsis,) + k + (slice(None),) * n]
    return xp


def pad(x, before, after, value=0):
    """Pad the trailing len(before) dims of x."""
    if not any(before) and not any(after):
        return x
    lead = [(0, 0)] * (x.ndim - len(before))
    return np.pad(x, lead + list(zip(before, after)), constant_values=value)


def _crop(xp, start, size):
    n = len(start)
    return xp[(Ellipsis,) + tuple(slice(a, a + s) for a, s in zip(start, size))] if n else xp


def _covering(size, out, kernel, stride, dilation, padding):
    """Right padding so that every window (out of them, from -padding) lies inside the array."""
    return tuple(max((o - 1) * s + d * (k - 1) + 1 - p - i, 0)
                 for i, o, k, s, d, p in zip(size, out, kernel, stride, dilation, padding))


# -- convolution -----------------------------------------------------------------------------------------------

def _grouped(xp, groups):
    """(N, C, *S) -> (N, G, C/G, *S)."""
    n, c = xp.shape[:2]
    return xp.reshape((n, groups, c // groups) + xp.shape[2:])


def conv_forward(x, w, stride, padding, dilation, groups):
    """x (N, C, *S), w (O, C/G, *k) -> (N, O, *out)."""
    n, o, kernel = x.shape[0], w.shape[0], w.shape[2:]
    xp = pad(x, padding, padding)
    out = tuple((xp.shape[2 + i] - dilation[i] * (k - 1) - 1) // stride[i] + 1 for i, k in enumerate(kernel))
    cols = windows(_grouped(xp, groups), kernel, stride, dilation, out)  # (N, G, C/G, *k, *out)
    k = w.shape[1] * math.prod(kernel)
    cols = cols.reshape(n, groups, k, math.prod(out))                     # (N, G, K, L): the im2col copy
    y = np.matmul(w.reshape(groups, o // groups, k), cols)                # (N, G, O/G, L)
    return y.reshape((n, o) + out)


def conv_input_grad(gy, w, size, stride, padding, dilation, groups):
    """The adjoint of conv_forward in its input (= transposed convolution): gy (N, O, *out) -> (N, C, *size)."""
    n, o, cg, kernel, out = gy.shape[0], gy.shape[1], w.shape[1], w.shape[2:], gy.shape[2:]
    wg = w.reshape(groups, o // groups, cg * math.prod(kernel))                   # (G, O/G, K)
    cols = np.matmul(wg.transpose(0, 2, 1), gy.reshape(n, groups, o // groups, math.prod(out)))  # (N, G, K, L)
    cols = cols.reshape((n, groups, cg) + kernel + out)
    padded = tuple(i + 2 * p + r for i, p, r in zip(size, padding,
                                                     _covering(size, out, kernel, stride, dilation, padding)))
    xp = col2im(cols, padded, kernel, stride, dilation)
    return _crop(xp, padding, size).reshape((n, groups * cg) + tuple(size))


def conv_weight_grad(x, gy, weight_size, stride, padding, dilation, groups):
    """d<conv_forward(x, w), gy>/dw: x (N, C, *S), gy (N, O, *out) -> weight_size."""
    n, o, kernel, out = x.shape[0], weight_size[0], tuple(weight_size[2:]), gy.shape[2:]
    xp = pad(x, padding, tuple(p + r for p, r in zip(
        padding, _covering(x.shape[2:], out, kernel, stride, dilation, padding))))
    cols = windows(_grouped(xp, groups), kernel, stride, dilation, out)
    k, length = cols.shape[2] * math.prod(kernel), math.prod(out)
    cols = cols.reshape(n, groups, k, length).transpose(1, 0, 3, 2).reshape(groups, n * length, k)  # (G, NL, K)
    g = gy.reshape(n, groups, o // groups, length).transpose(1, 2, 0, 3).reshape(groups, o // groups, n * length)
    return np.matmul(g, cols).reshape(weight_size)


@_kernel(ops.convolution)
def _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    spec = ops.convolution.meta(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    ct = np_compute(spec.dtype)
    x, w = operand(input, ct), operand(weight, ct)
    x = x if spec.batched else x[None]
    nsp = w.ndim - 2
    if transposed:
        y = conv_input_grad(x, w, spec.shape[-nsp:], spec.stride, spec.padding, spec.dilation, groups)
    else:
        y = conv_forward(x, w, spec.stride, spec.padding, spec.dilation, groups)
    if bias is not None:
        y += operand(bias, ct).reshape((1, -1) + (1,) * nsp)
    return _result(y if spec.batched else y[0], spec.dtype)


@_kernel(ops.convolution_weight_grad)
def _convolution_weight_grad(input, grad_output, weight_size, stride, padding, dilation, groups):
    spec = ops.convolution_weight_grad.meta(input, grad_output, weight_size, stride, padding, dilation, groups)
    ct = np_compute(spec.dtype)
    x, gy = operand(input, ct), operand(grad_output, ct)
    if not spec.batched:
        x, gy = x[None], gy[None]
    return _result(conv_weight_grad(x, gy, tuple(weight_size), spec.stride, spec.padding, spec.dilation, groups),
                   spec.dtype)


# -- pooling ---------------------------------------------------------------------------------------------------

def _lowest(ct):
    return -np.inf if ct.kind in "fc" else np.iinfo(ct).min


def window_max(vals, valid):
    """Max over the last axis and its position, torch's way: the first maximum among valid entries;
    a NaN wins, and the last NaN of a window is the one reported."""
    mx = vals.max(-1)
    hit = vals == mx[..., None]
    if valid is not None:
        hit &= valid
    arg = hit.argmax(-1)
    if vals.dtype.kind == "f":
        nan = np.isnan(mx)
        if nan.any():
            isn = np.isnan(vals) if valid is None else np.isnan(vals) & valid
            arg = np.where(nan, vals.shape[-1] - 1 - isn[..., ::-1].argmax(-1), arg)
    return mx, arg


def _flat_positions(per_dim, sizes):
    """Per-dim integer positions (each shaped to broadcast) -> flat positions into sizes."""
    flat = 0
    for pos, size in zip(per_dim, sizes):
        flat = flat * size + pos
    return flat


def _spread(arrays, n):
    """Per-dim (A_i, B_i) arrays -> broadcastable (*A, *B) pieces: A_i on axis i, B_i on axis n + i."""
    out = []
    for i, a in enumerate(arrays):
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = a.shape
        out.append(a.reshape(shape))
    return out


def _argmax_result(spec, vals, valid, flat, source, fallback=None):
    """(values, flat indices) tensors from gathered windows vals (..., *out, K); `fallback` (*out) is
    torch's index for a window with no element inside the input (its first position past the padding)."""
    mx, arg = window_max(vals, valid)
    index = np.take_along_axis(np.broadcast_to(flat, vals.shape), arg[..., None], -1)[..., 0]
    if fallback is not None:
        index = np.where(valid.any(-1), index, fallback)
    return _result(mx, spec.dtype, source), from_array(np.ascontiguousarray(index, dtype=np.int64))


@_kernel(ops.max_pool)
def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode):
    spec = ops.max_pool.meta(input, kernel_size, stride, padding, dilation, ceil_mode)
    n, out = len(kernel_size), spec.out
    x = operand(input, np_compute(spec.dtype))
    size = x.shape[-n:]
    right = tuple(p + r for p, r in zip(padding, _covering(size, out, kernel_size, stride, dilation, padding)))
    win = windows(pad(x, padding, right, _lowest(x.dtype)), kernel_size, stride, dilation, out)  # (..., *k, *out)
    lead = x.ndim - n
    perm = tuple(range(lead)) + tuple(range(lead + n, lead + 2 * n)) + tuple(range(lead, lead + n))
    vals = win.transpose(perm).reshape(x.shape[:lead] + out + (math.prod(kernel_size),))         # (..., *out, K)
    # input position of window element k of output o, per dim: o * stride - padding + k * dilation
    pos = [np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d
           for o, k, s, p, d in zip(out, kernel_size, stride, padding, dilation)]                 # (out_i, k_i)
    spread = _spread(pos, n)
    valid = functools.reduce(np.logical_and, [(q >= 0) & (q < i) for q, i in zip(spread, size)])
    flat = _flat_positions(spread, size)
    k = math.prod(kernel_size)
    first = [np.arange(o) * s - p for o, s, p in zip(out, stride, padding)]  # window starts, moved past the padding
    first = [np.where(f < 0, f + -(f // d) * d, f) for f, d in zip(first, dilation)]
    fallback = _flat_positions([f.reshape([-1 if j == i else 1 for j in range(n)]) for i, f in enumerate(first)], size)
    return _argmax_result(spec, vals, valid.reshape(out + (k,)), np.broadcast_to(flat, out + tuple(kernel_size))
                          .reshape(out + (k,)), x, fallback)


def adaptive_windows(n_in, n_out):
    """Per output position: start and end of its window (torch's start_index/end_index)."""
    o = np.arange(n_out)
    return (o * n_in) // n_out, ((o + 1) * n_in + n_out - 1) // n_out


def _adaptive_taps(n_in, n_out):
    """(n_out, T) input positions of each adaptive window, padded by repeating its last position."""
    start, end = adaptive_windows(n_in, n_out)
    t = np.arange(max(int((end - start).max()) if n_out else 1, 1))
    return np.minimum(start[:, None] + t, end[:, None] - 1), start[:, None] + t < end[:, None]


@_kernel(ops.adaptive_max_pool)
def _adaptive_max_pool(input, output_size):
    spec = ops.adaptive_max_pool.meta(input, output_size)
    n = len(output_size)
    x = operand(input, np_compute(spec.dtype))
    size = x.shape[-n:]
    taps = [_adaptive_taps(i, o)[0] for i, o in zip(size, output_size)]  # (out_i, T_i); repeats change no max
    spread = _spread(taps, n)
    vals = x[(Ellipsis,) + tuple(spread)]                                 # (..., *out, *T)
    vals = vals.reshape(vals.shape[:x.ndim - n] + tuple(output_size) + (math.prod(t.shape[1] for t in taps),))
    flat = np.broadcast_to(_flat_positions(spread, size), tuple(output_size) + tuple(t.shape[1] for t in taps))
    return _argmax_result(spec, vals, None, flat.reshape(tuple(output_size) + (-1,)), x)


def _rows(a, nsp):
    """(..., *spatial) -> (B, P)."""
    lead = a.shape[:a.ndim - nsp]
    return a.reshape((math.prod(lead), math.prod(a.shape[a.ndim - nsp:])))


@_kernel(ops.spatial_gather)
def _spatial_gather(input, indices, nsp):
    spec = ops.spatial_gather.meta(input, indices, nsp)
    x = operand(input, np_compute(spec.dtype))
    idx = operand(indices, np.dtype(np.int64))
    got = np.take_along_axis(_rows(x, nsp), _rows(idx, nsp), 1)
    return _result(got.reshape(idx.shape), spec.dtype)


@_kernel(ops.spatial_scatter_add)
def _spatial_scatter_add(grad, indices, input_size, nsp):
    spec = ops.spatial_scatter_add.meta(grad, indices, input_size, nsp)
    g = _rows(operand(grad, np_compute(spec.dtype)), nsp)
    idx = _rows(operand(indices, np.dtype(np.int64)), nsp)
    out = np.zeros((g.shape[0], math.prod(input_size[len(input_size) - nsp:])), g.dtype)
    np.add.at(out, (np.arange(g.shape[0])[:, None], idx), g)
    return _result(out.reshape(tuple(input_size)), spec.dtype)


def avg_divisor(size, out, kernel, stride, padding, count_include_pad, divisor_override):
    """The divisor of every output position (*out): torch's pool_size or count of valid positions."""
    if divisor_override is not None:
        return divisor_override
    per_dim = []
    for i, o, k, s, p in zip(size, out, kernel, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, i + p)
        per_dim.append(end - start if count_include_pad else np.minimum(end, i) - np.maximum(start, 0))
    return functools.reduce(np.multiply.outer, per_dim)


def _trunc_div(a, b):
    """C++ integer division (toward zero)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (np.asarray(b) < 0), -q, q)


@_kernel(ops.avg_pool)
def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    spec = ops.avg_pool.meta(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    n, out = len(kernel_size), spec.out
    integral = spec.dtype.category < 2
    x = operand(input, np.dtype(np.int64) if integral else np_compute(spec.dtype))
    size, ones = x.shape[-n:], (1,) * n
    right = tuple(p + r for p, r in zip(padding, _covering(size, out, kernel_size, stride, ones, padding)))
    win = windows(pad(x, padding, right), kernel_size, stride, ones, out)
    lead = x.ndim - n
    total = win.sum(axis=tuple(range(lead, lead + n)))
    div = avg_divisor(size, out, kernel_size, stride, padding, count_include_pad, divisor_override)
    return _result(_trunc_div(total, div) if integral else total / div, spec.dtype)


@_kernel(ops.avg_pool_backward)
def _avg_pool_backward(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    spec = ops.avg_pool_backward.meta(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                      divisor_override)
    n = len(kernel_size)
    g = operand(grad, np_compute(spec.dtype))
    size, out, ones = tuple(input_size[-n:]), g.shape[-n:], (1,) * n
    gd = g / avg_divisor(size, out, kernel_size, stride, padding, count_include_pad, divisor_override)
    cols = np.broadcast_to(gd.reshape(g.shape[:-n] + ones + out), g.shape[:-n] + tuple(kernel_size) + out)
    padded = tuple(i + 2 * p + r for i, p, r in zip(size, padding,
                                                     _covering(size, out, kernel_size, stride, ones, padding)))
    return _result(_crop(col2im(cols, padded, kernel_size, stride, ones), padding, size), spec.dtype)


# -- separable resampling ----------------------------------------------------------------------------------------
_A = -0.75  # torch's cubic convolution coefficient


def cubic_coefficients(t):
    """Weights of taps -1, 0, 1, 2 at fractional offset t (Keys' cubic convolution, as torch)."""
    def near(x):  # |x| <= 1
        return ((_A + 2) * x - (_A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def cubic_coefficients_grad(t):
    """d cubic_coefficients / dt."""
    def dnear(x):
        return (3 * (_A + 2) * x - 2 * (_A + 3)) * x

    def dfar(x):
        return (3 * _A * x - 10 * _A) * x + 8 * _A
    return [dfar(t + 1), dnear(t), -dnear(1 - t), -dfar(2 - t)]


def _source_scale(n_in, n_out, align_corners, scale, f):
    """torch's area_pixel_compute_scale in opmath type f."""
    if align_corners:
        return f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
    return f(1.0 / scale) if scale else f(n_in) / f(n_out)


@functools.lru_cache(maxsize=1024)
def taps(mp, prec):
    """One dim's linear map: (indices (O, T), weights (O, T) or None, divisor (O,) or None)."""
    kind, n_in, n_out = mp[:3]
    f = np.dtype(prec).type
    o = np.arange(n_out)
    if kind == "adaptive":
        idx, valid = _adaptive_taps(n_in, n_out)
        start, end = adaptive_windows(n_in, n_out)
        return idx, valid.astype(f), (end - start).astype(f)
    if kind == "nearest":  # torch's nearest_idx: float32 whatever the dtype
        if n_out == n_in:
            src = o
        elif n_out == 2 * n_in:
            src = o >> 1
        else:
            s = np.float32(1.0 / mp[3]) if mp[3] else np.float32(n_in) / np.float32(n_out)
            src = np.minimum(np.floor(o.astype(np.float32) * s).astype(np.int64), n_in - 1)
        return src[:, None], None, None
    if kind == "nearest-exact":
        s = np.float32(1.0 / mp[3]) if mp[3] else np.float32(n_in) / np.float32(n_out)
        src = np.floor(((o + 0.5) * np.float64(s)).astype(np.float32)).astype(np.int64)
        return np.minimum(src, n_in - 1)[:, None], None, None
    if kind in ("reflect", "replicate", "circular"):
        src = o - mp[3]
        if kind == "reflect":
            src = np.abs(src)
            src = np.where(src >= n_in, 2 * (n_in - 1) - src, src)
        elif kind == "replicate":
            src = np.clip(src, 0, n_in - 1)
        else:  # torch wraps around what remains of the input after negative (cropping) pads
            lo, hi = mp[3], n_out - n_in - mp[3]
            start, kept = max(-lo, 0), n_in - max(-lo, 0) - max(-hi, 0)
            src = start + np.mod(o - max(lo, 0), kept)
        return src[:, None], None, None
    align_corners, scale = mp[3], mp[4]
    s = _source_scale(n_in, n_out, align_corners, scale, f)
    of = o.astype(f)
    if kind == "linear":
        if n_out == n_in:  # torch copies when the sizes agree
            return np.stack([o, o], 1), np.stack([np.ones(n_out, f), np.zeros(n_out, f)], 1), None
        src = s * of if align_corners else np.maximum(s * (of + f(0.5)) - f(0.5), f(0))
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        lam = np.clip(src - i0.astype(f), f(0), f(1))
        i1 = i0 + (i0 < n_in - 1)
        return np.stack([i0, i1], 1), np.stack([f(1) - lam, lam], 1).astype(f), None
    # cubic
    src = s * of if align_corners else s * (of + f(0.5)) - f(0.5)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(f), f(0), f(1))
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return idx, np.stack(cubic_coefficients(lam), 1).astype(f), None


def _prec(ct):
    return "float64" if ct == np.float64 else "float32"


def resample_forward(x, maps, ct):
    """Apply the maps to x's trailing dims; interpolation weights are in ct's precision (torch's opmath)."""
    n = len(maps)
    for j in reversed(range(n)):  # last dim first, as torch's separable kernels
        ax = x.ndim - n + j
        idx, w, norm = taps(maps[j], _prec(ct))
        y = np.take(x, idx, axis=ax)                      # (..., O, T, ...)
        tail = (1,) * (x.ndim - ax - 1)
        y = y.squeeze(ax + 1) if w is None else (y * w.reshape(w.shape + tail)).sum(axis=ax + 1)
        if norm is not None:
            y = y / norm.reshape(norm.shape + tail)
        x = y
    return x


def resample_adjoint(g, maps, ct):
    """The transpose of resample_forward: each dim's map as a dense (out, in) matrix."""
    n = len(maps)
    for j in range(n):
        ax = g.ndim - n + j
        idx, w, norm = taps(maps[j], _prec(ct))
        weights = np.ones(idx.shape, ct) if w is None else w.astype(ct)
        if norm is not None:
            weights = weights / norm[:, None]
        m = np.zeros((idx.shape[0], maps[j][1]), ct)      # the dense (O, I) matrix of this dim
        np.add.at(m, (np.arange(idx.shape[0])[:, None], idx), weights)
        g = np.moveaxis(np.tensordot(g, m, axes=([ax], [0])), -1, ax)
    return g


_SELECTING = ("nearest", "nearest-exact", "reflect", "replicate", "circular")  # maps that only pick elements


@_kernel(ops.resample)
def _resample(input, maps):
    spec = ops.resample.meta(input, maps)
    selecting = all(mp[0] in _SELECTING for mp in maps)
    ct = spec.dtype.np if selecting else np_compute(spec.dtype)  # picking elements is exact in any dtype
    x = operand(input, ct)
    return _result(resample_forward(x, maps, np_compute(spec.dtype)), spec.dtype, x)


@_kernel(ops.resample_backward)
def _resample_backward(grad, maps):
    spec = ops.resample_backward.meta(grad, maps)
    ct = np_compute(spec.dtype)
    return _result(resample_adjoint(operand(grad, ct), maps, ct), spec.dtype)


# -- constant padding, im2col / col2im, shuffles ---------------------------------------------------------------

@_kernel(ops.constant_pad_nd)
def _constant_pad_nd(input, pad, value=0):
    spec = ops.constant_pad_nd.meta(input, pad, value)
    x = operand(input, spec.dtype.np)
    out = np.full(spec.shape, value, dtype=spec.dtype.np) if 0 not in spec.shape else np.empty(spec.shape,
                                                                                               spec.dtype.np)
    src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for j in range(len(pad) // 2):
        i = x.ndim - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        length = x.shape[i] - max(-lo, 0) - max(-hi, 0)
        if length <= 0:
            return from_array(out)
        src[i] = slice(max(-lo, 0), max(-lo, 0) + length)
        dst[i] = slice(max(lo, 0), max(lo, 0) + length)
    out[tuple(dst)] = x[tuple(src)]
    return from_array(out)


@_kernel(ops.im2col)
def _im2col(input, kernel_size, dilation, padding, stride):
    spec = ops.im2col.meta(input, kernel_size, dilation, padding, stride)
    x = operand(input, np_compute(spec.dtype))
    out = ops.sliding_blocks(x.shape[-2:], kernel_size, dilation, padding, stride)
    cols = windows(pad(x, padding, padding), kernel_size, stride, dilation, out)  # (..., C, kh, kw, oh, ow)
    return _result(cols.reshape(spec.shape), spec.dtype)


@_kernel(ops.col2im)
def _col2im(input, output_size, kernel_size, dilation, padding, stride):
    spec = ops.col2im.meta(input, output_size, kernel_size, dilation, padding, stride)
    g = operand(input, np_compute(spec.dtype))
    out = ops.sliding_blocks(output_size, kernel_size, dilation, padding, stride)
    cols = g.reshape(g.shape[:-2] + (g.shape[-2] // math.prod(kernel_size),) + tuple(kernel_size) + out)
    padded = tuple(i + 2 * p + r for i, p, r in zip(output_size, padding,
                                                     _covering(output_size, out, kernel_size, stride, dilation,
                                                               padding)))
    return _result(_crop(col2im(cols, padded, kernel_size, stride, dilation), padding, output_size), spec.dtype)


@_kernel(ops.pixel_shuffle)
def _pixel_shuffle(input, upscale_factor):
    spec = ops.pixel_shuffle.meta(input, upscale_factor)
    x, r = operand(input, spec.dtype.np), upscale_factor
    lead, (c, h, w) = x.shape[:-3], spec.shape[-3:]
    n = len(lead)
    y = x.reshape(lead + (c, r, r, h // r, w // r))
    y = y.transpose(tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))  # (..., c, H, r, W, r)
    return _result(y.reshape(spec.shape), spec.dtype, x)


@_kernel(ops.pixel_unshuffle)
def _pixel_unshuffle(input, downscale_factor):
    spec = ops.pixel_unshuffle.meta(input, downscale_factor)
    x, r = operand(input, spec.dtype.np), downscale_factor
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    n = len(lead)
    y = x.reshape(lead + (c, h // r, r, w // r, r))
    y = y.transpose(tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3))  # (..., c, r, r, h, w)
    return _result(y.reshape(spec.shape), spec.dtype, x)


@_kernel(ops.channel_shuffle)
def _channel_shuffle(input, groups):
    spec = ops.channel_shuffle.meta(input, groups)
    x = operand(input, spec.dtype.np)
    n, c = x.shape[:2]
    y = x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2)
    return _result(y.reshape(x.shape), spec.dtype, x)


# -- grid sampling ---------------------------------------------------------------------------------------------

def _reflect(c, twice_low, twice_high):
    """torch's reflect_coordinates_set_grad: (reflected coordinate, d reflected / d c)."""
    if twice_low == twice_high:
        return np.zeros_like(c), np.zeros_like(c)
    lo, span = twice_low / 2, (twice_high - twice_low) / 2
    c = c - lo
    sign = np.where(c < 0, -1, 1).astype(c.dtype)
    c = np.abs(c)
    extra = np.fmod(c, span)
    flips = np.floor(c / span)
    even = np.fmod(flips, 2) == 0
    return np.where(even, extra + lo, span - extra + lo), np.where(even, sign, -sign)


def _clip(c, size, nan_to):
    """torch's clip_coordinates_set_grad; a NaN coordinate goes to nan_to (None: stays NaN)."""
    inside = (c > 0) & (c < size - 1)
    clipped = np.clip(c, 0, size - 1)
    if nan_to is not None:
        clipped = np.where(np.isnan(c), c.dtype.type(nan_to), clipped)
    return clipped, inside.astype(c.dtype)


def _nan_to(ndim, size, backward):
    """Where torch's CPU kernels put a coordinate that is NaN after border/reflection padding (a NaN grid
    value, or an infinite one reflected): the 2-d (vectorised) kernels clamp it to 0 (torch's 2-d bilinear
    backward reads out of bounds there; we keep the forward's 0); the 3-d forward's std::min/max gives
    size - 1; the 3-d backward keeps NaN, so all its corners fall out of bounds and contribute nothing."""
    if ndim == 2:
        return 0
    return None if backward else size - 1


def _pad_coordinates(c, size, padding_mode, align_corners, nan_to):
    """(coordinate after padding_mode, its derivative in c)."""
    if padding_mode == "zeros":
        return c, np.ones_like(c)
    mult = np.ones_like(c)
    if padding_mode == "reflection":
        c, mult = _reflect(c, 0, 2 * (size - 1)) if align_corners else _reflect(c, -1, 2 * size - 1)
    c, clip_mult = _clip(c, size, nan_to)
    return c, mult * clip_mult


def _grid_taps(coord, size, mode, padding_mode, align_corners, nan_to):
    """Per spatial dim: list of (index, weight, d weight / d grid), index possibly out of bounds (-> zero)."""
    f = coord.dtype.type
    scale = f((size - 1) / 2) if align_corners else f(size / 2)
    c = ((coord + 1) / 2) * (size - 1) if align_corners else ((coord + 1) * size - 1) / 2
    if mode == "bicubic":
        i0 = np.floor(c)
        t = c - i0
        out = []
        for j, (w, dw) in enumerate(zip(cubic_coefficients(t), cubic_coefficients_grad(t))):
            pos, _ = _pad_coordinates(i0 - 1 + j, size, padding_mode, align_corners, nan_to)
            out.append((pos, w, dw * scale))
        return out
    c, mult = _pad_coordinates(c, size, padding_mode, align_corners, nan_to)
    if mode == "nearest":
        return [(np.rint(c), np.ones_like(c), np.zeros_like(c))]
    i0 = np.floor(c)
    frac = c - i0
    return [(i0, 1 - frac, -mult * scale), (i0 + 1, frac, mult * scale)]


def _grid_corners(x, grid, mode, padding_mode, align_corners, backward=False):
    """Yield (flat input position (N, *O), in-bounds mask, weight, [d weight / d grid_d per dim]) per corner.
    A NaN or infinite coordinate is never in bounds; its flat position is then 0 (any valid one)."""
    size = x.shape[2:]
    n = len(size)
    # grid[..., k] is the coordinate along spatial dim n - 1 - k (x is width, the last dim)
    per_dim = [_grid_taps(grid[..., n - 1 - d], size[d], mode, padding_mode, align_corners,
                          _nan_to(n, size[d], backward)) for d in range(n)]
    for corner in itertools.product(*per_dim):
        inside = [(pos >= 0) & (pos <= s - 1) for (pos, _, _), s in zip(corner, size)]  # False for NaN, inf
        flat = 0
        for (pos, _, _), ok, s in zip(corner, inside, size):
            flat = flat * s + np.where(ok, pos, 0).astype(np.int64)
        weight = functools.reduce(np.multiply, [w for _, w, _ in corner])
        dweights = [functools.reduce(np.multiply, [dw if e == d else w for e, (_, w, dw) in enumerate(corner)])
                    for d in range(n)]
        yield flat, functools.reduce(np.logical_and, inside), weight, dweights


def _masked(term, valid, ndim):
    """An out-of-bounds corner's term: torch's 2-d kernels multiply a masked (zero) value by the weight, so a
    NaN weight (from a NaN or infinite grid value) still gives NaN; its 3-d kernels skip the corner."""
    return term if ndim == 2 else np.where(valid, term, 0)


@_kernel(ops.grid_sampler)
def _grid_sampler(input, grid, mode, padding_mode, align_corners):
    spec = ops.grid_sampler.meta(input, grid, mode, padding_mode, align_corners)
    ct = np_compute(spec.dtype)
    x, g = operand(input, ct), operand(grid, ct)
    nb, c = x.shape[:2]
    n = x.ndim - 2
    rows = np.moveaxis(x.reshape(nb, c, math.prod(x.shape[2:])), 1, -1)  # (N, P, C)
    batch = np.arange(nb).reshape((nb,) + (1,) * (g.ndim - 2))
    out = np.zeros(g.shape[:-1] + (c,), ct)                      # (N, *O, C)
    for flat, valid, weight, _ in _grid_corners(x, g, mode, padding_mode, align_corners):
        vals = np.where(valid[..., None], rows[batch, flat], 0)   # (N, *O, C): zero out of bounds
        out += _masked(vals * weight[..., None], valid[..., None], n)
    return _result(np.moveaxis(out, -1, 1), spec.dtype)


@_kernel(ops.grid_sampler_backward)
def _grid_sampler_backward(grad, input, grid, mode, padding_mode, align_corners):
    spec = ops.grid_sampler_backward.meta(grad, input, grid, mode, padding_mode, align_corners)
    ct = np_compute(spec.dtype)
    x, g, gy = operand(input, ct), operand(grid, ct), operand(grad, ct)
    nb, c = x.shape[:2]
    n = x.ndim - 2
    rows = np.moveaxis(x.reshape(nb, c, math.prod(x.shape[2:])), 1, -1)  # (N, P, C)
    gout = np.moveaxis(gy, 1, -1)                                 # (N, *O, C)
    batch = np.arange(nb).reshape((nb,) + (1,) * (g.ndim - 2))
    g_rows = np.zeros_like(rows)
    g_grid = np.zeros_like(g)
    for flat, valid, weight, dweights in _grid_corners(x, g, mode, padding_mode, align_corners, backward=True):
        w = np.where(valid, weight, 0)                            # the scatter is masked in both kernels
        np.add.at(g_rows, (np.broadcast_to(batch, flat.shape), flat), gout * w[..., None])
        gv = np.where(valid, (gout * rows[batch, flat]).sum(-1), 0)  # (N, *O): d out / d weight, summed over C
        for d in range(n):
            g_grid[..., n - 1 - d] += _masked(gv * dweights[d], valid, n)
    g_input = np.moveaxis(g_rows, -1, 1).reshape(x.shape)
    return _result(g_input, spec.dtype), _result(g_grid, grid._dtype)


def linspace_from_neg_one(steps, align_corners, f):
    """torch's affine_grid base coordinates along one dim."""
    if steps <= 1:
        return np.zeros(max(steps, 0), f)
    i = np.arange(steps)
    step = (f(1) - f(-1)) / f(steps - 1)
    r = np.where(i < steps // 2, f(-1) + step * i.astype(f), f(1) - step * (steps - 1 - i).astype(f)).astype(f)
    return r if align_corners else (r * f(steps - 1) / f(steps)).astype(f)


def base_grid(spatial, align_corners, f):
    """(*spatial, n + 1): [x, y, (z), 1] with x along the last spatial dim."""
    n = len(spatial)
    lines = [linspace_from_neg_one(s, align_corners, f) for s in spatial]
    comps = [np.broadcast_to(lines[n - 1 - k].reshape([-1 if d == n - 1 - k else 1 for d in range(n)]), spatial)
             for k in range(n)]
    return np.stack(comps + [np.ones(spatial, f)], -1)


@_kernel(ops.affine_grid_generator)
def _affine_grid_generator(theta, size, align_corners):
    spec = ops.affine_grid_generator.meta(theta, size, align_corners)
    ct = np_compute(spec.dtype)
    t = operand(theta, ct)                                         # (N, n, n + 1)
    base = base_grid(tuple(size[2:]), align_corners, ct.type)     # (*spatial, n + 1)
    grid = np.matmul(base.reshape(1, -1, base.shape[-1]), np.swapaxes(t, 1, 2))  # (N, P, n)
    return _result(grid.reshape(spec.shape), spec.dtype)


@_kernel(ops.affine_grid_backward)
def _affine_grid_backward(grad, size, align_corners):
    spec = ops.affine_grid_backward.meta(grad, size, align_corners)
    ct = np_compute(spec.dtype)
    g = operand(grad, ct)
    base = base_grid(tuple(size[2:]), align_corners, ct.type)
    nb, n = g.shape[0], g.shape[-1]
    gt = np.matmul(np.swapaxes(g.reshape(nb, -1, n), 1, 2), base.reshape(-1, n + 1))  # (N, n, n + 1)
    return _result(gt, spec.dtype)


# -- attention -------------------------------------------------------------------------------------------------

def _repeat_heads(t, hq):
    return t if t.ndim < 3 or t.shape[-3] == hq else np.repeat(t, hq // t.shape[-3], axis=-3)


@_kernel(ops.sdpa_math)
def _sdpa_math(query, key, value, attn_mask, dropout_mask, scale, is_causal, enable_gqa):
    out_spec, attn_spec = ops.sdpa_math.meta(query, key, value, attn_mask, dropout_mask, scale, is_causal, enable_gqa)
    ct = np_compute(out_spec.dtype)
    q, k, v = operand(query, ct), operand(key, ct), operand(value, ct)
    if enable_gqa and q.ndim >= 3:
        k, v = _repeat_heads(k, q.shape[-3]), _repeat_heads(v, q.shape[-3])
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * ct.type(scale)   # (..., L, S)
    length, source = s.shape[-2:]
    if is_causal:
        s = np.where(np.tril(np.ones((length, source), bool)), s, -np.inf)
    if attn_mask is not None:
        mask = operand(attn_mask, np.dtype(bool) if attn_mask.dtype.kind == "b" else ct)
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    top = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(top), top, 0))
    den = e.sum(-1, keepdims=True)
    attn = np.where(den > 0, e / np.where(den > 0, den, 1), 0)  # fully masked rows are all zero (safe softmax)
    p = attn if dropout_mask is None else attn * operand(dropout_mask, ct)
    out = np.matmul(p, v)
    return _result(np.broadcast_to(out, out_spec.shape), out_spec.dtype), \
        _result(np.broadcast_to(attn, attn_spec.shape), attn_spec.dtype)
