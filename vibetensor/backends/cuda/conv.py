"""CUDA kernels of the conv ops (declared in ops/conv.py): convolution, its weight gradient and its
transpose by im2col + cuBLAS; pooling; separable resampling (interpolate, adaptive average
pooling, reflect/replicate/circular padding); constant padding; unfold/fold; the shuffles; grid
sampling; affine grids; math attention.

Every windowed op sees its spatial dims padded to three (leading dims of size 1, kernel 1, stride
1, padding 0), so one kernel serves 1-d, 2-d and 3-d. Windows are read with bounds checks (a
padded position reads 0 or is skipped) instead of materialising a padded copy.

Convolution as a constant number of launches, whatever the batch and groups:
  forward     cols (G, Cg*k, N*L) = im2col(x);  y_g (G, O/G, N*L) = bmm(w_g, cols);  y = permute + bias
  input grad  cols = bmm(w_g^T, gy_g);  x = col2im(cols)  (a gather: each input element sums its
              kernel taps, deterministic, accumulated in float32)   == transposed convolution
  weight grad gw_g (G, O/G, Cg*k) = bmm(gy_g, cols^T)
Matrix products follow the matmul TF32 switch (torch.backends.cuda.matmul.allow_tf32); torch's
cuDNN convolutions follow torch.backends.cudnn.allow_tf32 instead.
"""
import functools
import math

import numpy as np
import triton
import triton.language as tl

from vibetensor.backends.cuda.creation import unravel6
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import conv as ops
from vibetensor.ops import creation, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as red
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
BLOCK = 256
FLOATS = ops.FLOATS
# accumulation dtype: float32 for the half types (torch's accscalar_t), float64 for float64
_ACC = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64}
_ACC_DT = {dt.float16: dt.float32, dt.bfloat16: dt.float32, dt.float32: dt.float32, dt.float64: dt.float64}


def _grid(n):
    return (launcher.cdiv(n, BLOCK),)


def _pad3(values, fill):
    values = tuple(values)
    return (fill,) * (3 - len(values)) + values


def _kernel_of(cache, fn, **constexprs):
    key = (fn,) + tuple(sorted(constexprs.items(), key=lambda kv: kv[0]))
    k = cache.get(key)
    if k is None:
        k = cache[key] = launcher.Kernel(fn, BLOCK=BLOCK, **constexprs)
    return k


def _floats_only(kernel, t):
    ops.check_dtype(kernel, t, FLOATS)


def _batched(t, batched):
    return t if batched else views.unsqueeze(t, 0)


def _cast(t, dtype):
    """t in dtype (a fresh contiguous copy unless it already is)."""
    if t._dtype is dtype:
        return t
    res = empty(t._shape, dtype, t._device)
    creation.copy_(res, t)
    return res


# -- index helpers (device) ---------------------------------------------------------------------------------------

@triton.jit
def _tap(o, k, size, n_out, s, p, d, ADAPTIVE: tl.constexpr):
    """Input position of window element k of output o along one dim, and whether it is inside."""
    if ADAPTIVE:
        start = (o * size) // n_out
        end = ((o + 1) * size + n_out - 1) // n_out
        q = start + k
        ok = q < end
    else:
        q = o * s - p + k * d
        ok = (q >= 0) & (q < size)
    return q, ok


@triton.jit
def _first(o, size, n_out, s, p, d, ADAPTIVE: tl.constexpr):
    """torch's initial argmax of a window: its first position inside the input."""
    if ADAPTIVE:
        f = (o * size) // n_out
    else:
        f = o * s - p
        f = tl.where(f < 0, f + ((d - 1 - f) // d) * d, f)
    return f


@triton.jit
def _hit(i, p, k, d, s, n_out):
    """Transposed view of a window: the output o whose tap k lands on input i (o * s - p + k * d == i)."""
    t = i + p - k * d
    o = tl.where(t >= 0, t, 0) // s
    ok = (t >= 0) & (o * s == t) & (o < n_out)
    return tl.where(ok, o, 0), ok


@triton.jit
def _count(o, size, k, s, p, INCLUDE_PAD: tl.constexpr):
    """The divisor of avg pooling along one dim (torch's pool_size / count of valid positions)."""
    start = o * s - p
    end = tl.minimum(start + k, size + p)
    if INCLUDE_PAD:
        c = end - start
    else:
        c = tl.minimum(end, size) - tl.maximum(start, 0)
    return c


# -- im2col / col2im ----------------------------------------------------------------------------------------------

@triton.jit
def _im2col_kernel(x, cols, total, C, NB, K0, K1, K2, O0, O1, O2, I0, I1, I2,
                   xn, xc, x0, x1, x2, cn, cc, ck0, ck1, ck2, co0, co1, co2,
                   s0, s1, s2, p0, p1, p2, d0, d1, d2, BLOCK: tl.constexpr):
    """cols[n, c, k, o] = x[n, c, o * s - p + k * d] (0 outside), iterating (c, k0, k1, k2, n, o0, o1, o2)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    o2 = i % O2
    r = i // O2
    o1 = r % O1
    r = r // O1
    o0 = r % O0
    r = r // O0
    n = r % NB
    r = r // NB
    k2 = r % K2
    r = r // K2
    k1 = r % K1
    r = r // K1
    k0 = r % K0
    c = r // K0
    q0 = o0 * s0 - p0 + k0 * d0
    q1 = o1 * s1 - p1 + k1 * d1
    q2 = o2 * s2 - p2 + k2 * d2
    inside = (q0 >= 0) & (q0 < I0) & (q1 >= 0) & (q1 < I1) & (q2 >= 0) & (q2 < I2)
    v = tl.load(x + n * xn + c * xc + q0 * x0 + q1 * x1 + q2 * x2, mask=mask & inside, other=0)
    tl.store(cols + n * cn + c * cc + k0 * ck0 + k1 * ck1 + k2 * ck2 + o0 * co0 + o1 * co1 + o2 * co2, v, mask=mask)


@triton.jit
def _col2im_kernel(cols, x, total, C, K0, K1, K2, O0, O1, O2, I0, I1, I2,
                   cn, cc, ck0, ck1, ck2, co0, co1, co2,
                   s0, s1, s2, p0, p1, p2, d0, d1, d2, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """x[n, c, i] = sum over taps k whose window o covers i of cols[n, c, k, o]; x contiguous (N, C, I0, I1, I2)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    n, _, c, i0, i1, i2 = unravel6(i, 1, C, I0, I1, I2)
    base = n * cn + c * cc
    acc = tl.zeros((BLOCK,), ACC)
    for k0 in range(K0):
        o0, ok0 = _hit(i0, p0, k0, d0, s0, O0)
        for k1 in range(K1):
            o1, ok1 = _hit(i1, p1, k1, d1, s1, O1)
            for k2 in range(K2):
                o2, ok2 = _hit(i2, p2, k2, d2, s2, O2)
                ok = mask & ok0 & ok1 & ok2
                off = base + k0 * ck0 + k1 * ck1 + k2 * ck2 + o0 * co0 + o1 * co1 + o2 * co2
                acc += tl.load(cols + off, mask=ok, other=0).to(ACC)
    tl.store(x + i, acc.to(x.dtype.element_ty), mask=mask)


_im2col_cache, _col2im_cache = {}, {}


def _im2col(x, kernel, stride, padding, dilation, out, cols, cstrides):
    """x (N, C, *S) of any strides -> cols, element (n, c, k, o) at the strides cstrides
    (n, c, k0, k1, k2, o0, o1, o2)."""
    nb, c = x._shape[:2]
    K, O = _pad3(kernel, 1), _pad3(out, 1)
    total = nb * c * math.prod(K) * math.prod(O)
    if total == 0:
        return
    k = _kernel_of(_im2col_cache, _im2col_kernel)
    k(_grid(total), x, cols, total, c, nb, *K, *O, *_pad3(x._shape[2:], 1), x._stride[0], x._stride[1],
      *_pad3(x._stride[2:], 0), *cstrides, *_pad3(stride, 1), *_pad3(padding, 0), *_pad3(dilation, 1))


def _col2im(cols, cstrides, kernel, stride, padding, dilation, out, x):
    """The adjoint of _im2col into a new contiguous x (N, C, *S)."""
    total = x.numel()
    if total == 0:
        return
    k = _kernel_of(_col2im_cache, _col2im_kernel, ACC=_ACC[x._dtype])
    k(_grid(total), cols, x, total, x._shape[1], *_pad3(kernel, 1), *_pad3(out, 1), *_pad3(x._shape[2:], 1),
      *cstrides, *_pad3(stride, 1), *_pad3(padding, 0), *_pad3(dilation, 1))


def _group_layout(c, kernel, nb, out):
    """cols laid out (C, *k, N, *out) contiguous = (G, Cg*k, N*L): its strides in _im2col's order."""
    st = sh.contiguous_strides((c,) + _pad3(kernel, 1) + (nb,) + _pad3(out, 1))
    return (st[4], st[0], st[1], st[2], st[3], st[5], st[6], st[7])


def _grad_groups(gy, groups):
    """gy (N, O, *out) -> contiguous (G, O/G, N*L), the layout of the products."""
    nb, o = gy._shape[:2]
    length = math.prod(gy._shape[2:])
    g = views.permute(views.reshape(gy, (nb, groups, o // groups, length)), (1, 2, 0, 3))
    return views.reshape(creation.contiguous(g), (groups, o // groups, nb * length))


def _conv_forward(x, w, stride, padding, dilation, groups, bias, y):
    """y (N, O, *out), contiguous, = conv(x, w) + bias."""
    nb, c = x._shape[:2]
    o, kernel, out = w._shape[0], tuple(w._shape[2:]), tuple(y._shape[2:])
    k, length = (c // groups) * math.prod(kernel), math.prod(out)
    if y.numel() == 0:
        return
    cols = empty((groups, k, nb * length), x._dtype, x._device)
    _im2col(x, kernel, stride, padding, dilation, out, cols, _group_layout(c, kernel, nb, out))
    prod = la.bmm(views.reshape(w, (groups, o // groups, k)), cols)                  # (G, O/G, N*L)
    src = views.permute(views.reshape(prod, (groups, o // groups, nb, length)), (2, 0, 1, 3))  # (N, G, O/G, L)
    dst = views.reshape(y, (nb, groups, o // groups, length))
    if bias is None:
        creation.copy_(dst, src)
    else:
        ew.add(src, views.reshape(bias, (1, groups, o // groups, 1)), out=dst)


def _conv_input_grad(gy, w, stride, padding, dilation, groups, x):
    """x (N, C, *size), contiguous, = the adjoint of conv in its input applied to gy (= transposed conv)."""
    nb, o = gy._shape[:2]
    cg, kernel, out = w._shape[1], tuple(w._shape[2:]), tuple(gy._shape[2:])
    if x.numel() == 0:
        return
    wg = views.reshape(w, (groups, o // groups, cg * math.prod(kernel)))
    cols = la.bmm(views.transpose(wg, 1, 2), _grad_groups(gy, groups))               # (G, Cg*k, N*L)
    _col2im(cols, _group_layout(groups * cg, kernel, nb, out), kernel, stride, padding, dilation, out, x)


def _convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    spec = ops.convolution.meta(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    _floats_only("slow_conv2d_cuda", input)
    res = empty(spec.shape, spec.dtype, spec.device)
    x, y = _batched(input, spec.batched), _batched(res, spec.batched)
    if transposed:
        _conv_input_grad(x, weight, spec.stride, spec.padding, spec.dilation, groups, y)
        if bias is not None and res.numel():
            ew.add(y, views.reshape(bias, (1, -1) + (1,) * (weight.ndim - 2)), out=y)
    else:
        _conv_forward(x, weight, spec.stride, spec.padding, spec.dilation, groups, bias, y)
    return res


def _convolution_weight_grad(input, grad_output, weight_size, stride, padding, dilation, groups):
    spec = ops.convolution_weight_grad.meta(input, grad_output, weight_size, stride, padding, dilation, groups)
    _floats_only("slow_conv2d_cuda", input)
    res = empty(spec.shape, spec.dtype, spec.device)
    if res.numel() == 0:
        return res
    x, gy = _batched(input, spec.batched), _batched(grad_output, spec.batched)
    nb, c = x._shape[:2]
    o, kernel, out = weight_size[0], tuple(weight_size[2:]), tuple(gy._shape[2:])
    k, length = (c // groups) * math.prod(kernel), math.prod(out)
    cols = empty((groups, k, nb * length), x._dtype, x._device)
    _im2col(x, kernel, spec.stride, spec.padding, spec.dilation, out, cols, _group_layout(c, kernel, nb, out))
    la.bmm(_grad_groups(gy, groups), views.transpose(cols, 1, 2), out=views.reshape(res, (groups, o // groups, k)))
    return res


ops.convolution.register(CUDA, _convolution)
ops.convolution_weight_grad.register(CUDA, _convolution_weight_grad)


# -- im2col / col2im as ops (F.unfold / F.fold) -------------------------------------------------------------------

def _unfold(input, kernel_size, dilation, padding, stride):
    spec = ops.im2col.meta(input, kernel_size, dilation, padding, stride)
    batched = input.ndim == 4
    x = _batched(input, batched)
    res = empty(spec.shape, spec.dtype, spec.device)
    nb, c = x._shape[:2]
    out = ops.sliding_blocks(x._shape[-2:], kernel_size, dilation, padding, stride)
    st = sh.contiguous_strides((nb, c) + _pad3(kernel_size, 1) + _pad3(out, 1))   # (N, C, *k, *out) = (N, C*k, L)
    _im2col(x, kernel_size, stride, padding, dilation, out, res, st)
    return res


def _fold(input, output_size, kernel_size, dilation, padding, stride):
    spec = ops.col2im.meta(input, output_size, kernel_size, dilation, padding, stride)
    _floats_only("col2im_out_cuda", input)
    batched = input.ndim == 3
    g = _batched(input, batched)                                      # (N, C*k, L), any strides
    res = empty(spec.shape, spec.dtype, spec.device)
    out = ops.sliding_blocks(output_size, kernel_size, dilation, padding, stride)
    sn, sk, sl = g._stride
    kh, kw = kernel_size
    cstrides = (sn, sk * kh * kw, 0, sk * kw, sk, 0, sl * out[1], sl)   # splitting a dim is always a view
    _col2im(g, cstrides, kernel_size, stride, padding, dilation, out, _batched(res, batched))
    return res


ops.im2col.register(CUDA, _unfold)
ops.col2im.register(CUDA, _fold)


# -- pooling ------------------------------------------------------------------------------------------------------

@triton.jit
def _max_pool_kernel(x, val, idx, total, C, O0, O1, O2, I0, I1, I2, K0, K1, K2, xn, xc, x0, x1, x2,
                     s0, s1, s2, p0, p1, p2, d0, d1, d2,
                     ADAPTIVE: tl.constexpr, CMP: tl.constexpr, LOWEST: tl.constexpr, BLOCK: tl.constexpr):
    """torch's max pooling: the first maximum of each window wins, a NaN beats everything (the last
    NaN is reported), and a window of only -inf reports its first position inside the input."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    n, _, c, o0, o1, o2 = unravel6(i, 1, C, O0, O1, O2)
    base = x + n * xn + c * xc
    f0 = _first(o0, I0, O0, s0, p0, d0, ADAPTIVE)
    f1 = _first(o1, I1, O1, s1, p1, d1, ADAPTIVE)
    f2 = _first(o2, I2, O2, s2, p2, d2, ADAPTIVE)
    best_i = (f0 * I1 + f1) * I2 + f2
    best = tl.full((BLOCK,), LOWEST, CMP)
    for k0 in range(K0):
        q0, ok0 = _tap(o0, k0, I0, O0, s0, p0, d0, ADAPTIVE)
        for k1 in range(K1):
            q1, ok1 = _tap(o1, k1, I1, O1, s1, p1, d1, ADAPTIVE)
            for k2 in range(K2):
                q2, ok2 = _tap(o2, k2, I2, O2, s2, p2, d2, ADAPTIVE)
                ok = mask & ok0 & ok1 & ok2
                v = tl.load(base + q0 * x0 + q1 * x1 + q2 * x2, mask=ok, other=0).to(CMP)
                better = ok & ((v > best) | (v != v))
                best = tl.where(better, v, best)
                best_i = tl.where(better, (q0 * I1 + q1) * I2 + q2, best_i)
    tl.store(val + i, best.to(val.dtype.element_ty), mask=mask)
    tl.store(idx + i, best_i, mask=mask)


@triton.jit
def _avg_pool_kernel(x, y, total, C, O0, O1, O2, I0, I1, I2, K0, K1, K2, xn, xc, x0, x1, x2,
                     s0, s1, s2, p0, p1, p2, divisor, INCLUDE_PAD: tl.constexpr, OVERRIDE: tl.constexpr,
                     ACC: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    n, _, c, o0, o1, o2 = unravel6(i, 1, C, O0, O1, O2)
    base = x + n * xn + c * xc
    acc = tl.zeros((BLOCK,), ACC)
    for k0 in range(K0):
        q0, ok0 = _tap(o0, k0, I0, O0, s0, p0, 1, False)
        for k1 in range(K1):
            q1, ok1 = _tap(o1, k1, I1, O1, s1, p1, 1, False)
            for k2 in range(K2):
                q2, ok2 = _tap(o2, k2, I2, O2, s2, p2, 1, False)
                ok = mask & ok0 & ok1 & ok2
                acc += tl.load(base + q0 * x0 + q1 * x1 + q2 * x2, mask=ok, other=0).to(ACC)
    div = _count(o0, I0, K0, s0, p0, INCLUDE_PAD) * _count(o1, I1, K1, s1, p1, INCLUDE_PAD) * \
        _count(o2, I2, K2, s2, p2, INCLUDE_PAD)
    if OVERRIDE:
        div = tl.zeros_like(div) + divisor
    tl.store(y + i, (acc / div.to(ACC)).to(y.dtype.element_ty), mask=mask)


@triton.jit
def _avg_pool_backward_kernel(g, gx, total, C, O0, O1, O2, I0, I1, I2, K0, K1, K2, gn, gc, g0, g1, g2,
                              s0, s1, s2, p0, p1, p2, divisor, INCLUDE_PAD: tl.constexpr,
                              OVERRIDE: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """gx[n, c, i] = sum over the windows o covering i of g[n, c, o] / divisor(o); gx contiguous."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    n, _, c, i0, i1, i2 = unravel6(i, 1, C, I0, I1, I2)
    base = g + n * gn + c * gc
    acc = tl.zeros((BLOCK,), ACC)
    for k0 in range(K0):
        o0, ok0 = _hit(i0, p0, k0, 1, s0, O0)
        for k1 in range(K1):
            o1, ok1 = _hit(i1, p1, k1, 1, s1, O1)
            for k2 in range(K2):
                o2, ok2 = _hit(i2, p2, k2, 1, s2, O2)
                ok = mask & ok0 & ok1 & ok2
                div = _count(o0, I0, K0, s0, p0, INCLUDE_PAD) * _count(o1, I1, K1, s1, p1, INCLUDE_PAD) * \
                    _count(o2, I2, K2, s2, p2, INCLUDE_PAD)
                if OVERRIDE:
                    div = tl.zeros_like(div) + divisor
                div = tl.where(ok, div, 1)
                v = tl.load(base + o0 * g0 + o1 * g1 + o2 * g2, mask=ok, other=0).to(ACC)
                acc += v / div.to(ACC)
    tl.store(gx + i, acc.to(gx.dtype.element_ty), mask=mask)


_pool_cache = {}


def _frame(t, nsp):
    """(N, C, sizes3, strides (n, c, *3)) of t (..., *spatial) seen as (N, C, *spatial) padded to 3 dims."""
    lead, lstride = tuple(t._shape[:t.ndim - nsp]), tuple(t._stride[:t.ndim - nsp])
    if len(lead) == 1:
        lead, lstride = (1,) + lead, (0,) + lstride
    sizes = _pad3(t._shape[t.ndim - nsp:], 1)
    return lead[0], lead[1], sizes, lstride + _pad3(t._stride[t.ndim - nsp:], 0)


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode):
    spec = ops.max_pool.meta(input, kernel_size, stride, padding, dilation, ceil_mode)
    _floats_only(f"max_pool{len(kernel_size)}d_with_indices_out_cuda_frame", input)
    return _max_launch(input, spec, kernel_size, stride, padding, dilation, False)


def _adaptive_max_pool(input, output_size):
    spec = ops.adaptive_max_pool.meta(input, output_size)
    n = len(output_size)
    windows = tuple(_adaptive_width(i, o) for i, o in zip(input._shape[-n:], output_size))
    return _max_launch(input, spec, windows, (1,) * n, (0,) * n, (1,) * n, True)


@functools.lru_cache(maxsize=1024)
def _adaptive_width(n_in, n_out):
    """The widest adaptive window (torch's start_index/end_index)."""
    return max([((o + 1) * n_in + n_out - 1) // n_out - (o * n_in) // n_out for o in range(n_out)] or [1])


def _max_launch(input, spec, kernel, stride, padding, dilation, adaptive):
    nsp = len(kernel)
    values = empty(spec.shape, spec.dtype, spec.device)
    indices = empty(spec.shape, dt.int64, spec.device)
    total = values.numel()
    if total == 0:
        return values, indices
    nb, c, size, xs = _frame(input, nsp)
    k = _kernel_of(_pool_cache, _max_pool_kernel, ADAPTIVE=adaptive, CMP=_ACC[spec.dtype], LOWEST=float("-inf"))
    k(_grid(total), input, values, indices, total, c, *_pad3(spec.out, 1), *size, *_pad3(kernel, 1), *xs,
      *_pad3(stride, 1), *_pad3(padding, 0), *_pad3(dilation, 1))
    return values, indices


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    spec = ops.avg_pool.meta(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    _floats_only(f"avg_pool{len(kernel_size)}d_out_cuda_frame", input)
    res = empty(spec.shape, spec.dtype, spec.device)
    total = res.numel()
    if total == 0:
        return res
    nb, c, size, xs = _frame(input, len(kernel_size))
    k = _kernel_of(_pool_cache, _avg_pool_kernel, INCLUDE_PAD=bool(count_include_pad),
                   OVERRIDE=divisor_override is not None, ACC=_ACC[spec.dtype])
    k(_grid(total), input, res, total, c, *_pad3(spec.out, 1), *size, *_pad3(kernel_size, 1), *xs,
      *_pad3(stride, 1), *_pad3(padding, 0), int(divisor_override or 0))
    return res


def _avg_pool_backward(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override):
    spec = ops.avg_pool_backward.meta(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                      divisor_override)
    _floats_only(f"avg_pool{len(kernel_size)}d_backward_out_cuda_frame", grad)
    res = empty(spec.shape, spec.dtype, spec.device)
    total = res.numel()
    if total == 0:
        return res
    nsp = len(kernel_size)
    nb, c, size, _ = _frame(res, nsp)
    _, _, out, gs = _frame(grad, nsp)
    k = _kernel_of(_pool_cache, _avg_pool_backward_kernel, INCLUDE_PAD=bool(count_include_pad),
                   OVERRIDE=divisor_override is not None, ACC=_ACC[spec.dtype])
    k(_grid(total), grad, res, total, c, *out, *size, *_pad3(kernel_size, 1), *gs,
      *_pad3(stride, 1), *_pad3(padding, 0), int(divisor_override or 0))
    return res


ops.max_pool.register(CUDA, _max_pool)
ops.adaptive_max_pool.register(CUDA, _adaptive_max_pool)
ops.avg_pool.register(CUDA, _avg_pool)
ops.avg_pool_backward.register(CUDA, _avg_pool_backward)


# -- spatial gather / scatter-add (max pooling's backward) ---------------------------------------------------------

@triton.jit
def _spatial_kernel(src, idx, dst, total, P_OUT, P_IN, ACC: tl.constexpr, SCATTER: tl.constexpr,
                    BLOCK: tl.constexpr):
    """Rows b of P_OUT indices into rows of P_IN: gather dst[b, j] = src[b, idx[b, j]], or scatter-add
    dst[b, idx[b, j]] += src[b, j]. Out-of-range indices are skipped."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    j = tl.load(idx + i, mask=mask, other=0)
    ok = mask & (j >= 0) & (j < P_IN)
    target = (i // P_OUT) * P_IN + tl.where(ok, j, 0)
    if SCATTER:
        v = tl.load(src + i, mask=mask, other=0).to(ACC)
        tl.atomic_add(dst + target, v, mask=ok)
    else:
        v = tl.load(src + target, mask=ok, other=0)
        tl.store(dst + i, v, mask=mask)


def _spatial_gather(input, indices, nsp):
    spec = ops.spatial_gather.meta(input, indices, nsp)
    res = empty(spec.shape, spec.dtype, spec.device)
    total = res.numel()
    if total:
        x, idx = creation.contiguous(input), creation.contiguous(indices)
        p_in = math.prod(input._shape[input.ndim - nsp:])
        p_out = math.prod(indices._shape[indices.ndim - nsp:])
        k = _kernel_of(_pool_cache, _spatial_kernel, ACC=tl.float32, SCATTER=False)
        k(_grid(total), x, idx, res, total, p_out, p_in)
    return res


def _spatial_scatter_add(grad, indices, input_size, nsp):
    spec = ops.spatial_scatter_add.meta(grad, indices, input_size, nsp)
    _floats_only("max_pool_backward_cuda", grad)
    acc_dt = _ACC_DT[spec.dtype]
    acc = creation.full(tuple(input_size), 0, acc_dt, device=spec.device)
    total = grad.numel()
    if total:
        g, idx = creation.contiguous(grad), creation.contiguous(indices)
        p_in = math.prod(input_size[len(input_size) - nsp:])
        p_out = math.prod(indices._shape[indices.ndim - nsp:])
        k = _kernel_of(_pool_cache, _spatial_kernel, ACC=_ACC[spec.dtype], SCATTER=True)
        k(_grid(total), g, idx, acc, total, p_out, p_in)
    return _cast(acc, spec.dtype)


ops.spatial_gather.register(CUDA, _spatial_gather)
ops.spatial_scatter_add.register(CUDA, _spatial_scatter_add)


# -- separable resampling ---------------------------------------------------------------------------------------------
# One launch per resampled dim (last dim first, as torch's separable kernels), each over a contiguous
# (outer, size, inner) view; intermediates in the accumulation dtype, so a half type rounds once.
ADAPTIVE, NEAREST, NEAREST_EXACT, LINEAR, CUBIC, REFLECT, REPLICATE, CIRCULAR = range(8)
_KIND = {"adaptive": ADAPTIVE, "nearest": NEAREST, "nearest-exact": NEAREST_EXACT, "linear": LINEAR, "cubic": CUBIC,
         "reflect": REFLECT, "replicate": REPLICATE, "circular": CIRCULAR}
_SELECTING = (NEAREST, NEAREST_EXACT, REFLECT, REPLICATE, CIRCULAR)
_A = -0.75  # torch's cubic convolution coefficient


@triton.jit
def _cubic_weight(lam, t):
    """Keys' cubic convolution weight of tap t (-1, 0, 1, 2 as t = 0..3) at fractional offset lam."""
    A: tl.constexpr = -0.75
    x = tl.where(t == 0, lam + 1, tl.where(t == 1, lam, tl.where(t == 2, 1 - lam, 2 - lam)))
    near = ((A + 2) * x - (A + 3)) * x * x + 1
    far = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    return tl.where((t == 1) | (t == 2), near, far)


@triton.jit
def _resample_tap(o, t, size, n_out, scale_bits, p0, p1, p2, KIND: tl.constexpr, ALIGN: tl.constexpr,
                  ACC: tl.constexpr, BLOCK: tl.constexpr):
    """(input index, weight) of tap t of output o along one dim (see ops/conv.py's maps)."""
    if KIND == 0:  # adaptive: window [start, end), divided by its length afterwards
        start = (o * size) // n_out
        end = ((o + 1) * size + n_out - 1) // n_out
        j = start + t
        w = tl.where(j < end, 1.0, 0.0).to(ACC)
        j = tl.minimum(j, end - 1)
    elif KIND < 3:  # nearest (1), nearest-exact (2): float32 index arithmetic whatever the dtype, as torch
        s = tl.full((BLOCK,), scale_bits, tl.int64).to(tl.float64, bitcast=True).to(tl.float32)
        if KIND == 1:
            src = tl.floor(o.to(tl.float32) * s)
        else:
            src = tl.floor((o.to(tl.float32) + 0.5) * s)
        j = tl.minimum(src.to(tl.int64), size - 1)
        w = tl.full((BLOCK,), 1.0, ACC)
    elif KIND < 5:  # linear (3) / cubic (4) in the accumulation dtype
        s = tl.full((BLOCK,), scale_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        of = o.to(ACC)
        if KIND == 3:
            if ALIGN:
                src = s * of
            else:
                src = tl.maximum(s * (of + 0.5) - 0.5, 0.0)
            i0 = tl.minimum(tl.floor(src).to(tl.int64), size - 1)
            lam = tl.minimum(tl.maximum(src - i0.to(ACC), 0.0), 1.0)
            i1 = i0 + (i0 < size - 1).to(tl.int64)
            j = tl.where(t == 0, i0, i1)
            w = tl.where(t == 0, 1 - lam, lam).to(ACC)
        else:
            if ALIGN:
                src = s * of
            else:
                src = s * (of + 0.5) - 0.5
            fl = tl.floor(src)
            lam = src - fl
            j = tl.minimum(tl.maximum(fl.to(tl.int64) - 1 + t, 0), size - 1)
            w = _cubic_weight(lam, t).to(ACC)
    elif KIND == 5:  # reflect
        j = tl.abs(o - p0)
        j = tl.where(j >= size, 2 * (size - 1) - j, j)
        w = tl.full((BLOCK,), 1.0, ACC)
    elif KIND == 6:  # replicate
        j = tl.minimum(tl.maximum(o - p0, 0), size - 1)
        w = tl.full((BLOCK,), 1.0, ACC)
    else:  # circular: p0 = first kept input, p1 = how many are kept, p2 = the left pad (>= 0)
        m = (o - p2) % p1
        j = p0 + tl.where(m < 0, m + p1, m)
        w = tl.full((BLOCK,), 1.0, ACC)
    return j, w


@triton.jit
def _resample_kernel(x, y, total, INNER, n_out, size, T, scale_bits, p0, p1, p2,
                     KIND: tl.constexpr, ALIGN: tl.constexpr, ACC: tl.constexpr, SELECT: tl.constexpr,
                     BLOCK: tl.constexpr):
    """y (outer, n_out, inner) = the map applied to x (outer, size, inner), both contiguous."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    inner = i % INNER
    r = i // INNER
    o = r % n_out
    outer = r // n_out
    src = x + outer * size * INNER + inner
    if SELECT:
        j, w = _resample_tap(o, 0, size, n_out, scale_bits, p0, p1, p2, KIND, ALIGN, ACC, BLOCK)
        tl.store(y + i, tl.load(src + j * INNER, mask=mask, other=0).to(y.dtype.element_ty), mask=mask)
    else:
        acc = tl.zeros((BLOCK,), ACC)
        for t in range(T):
            j, w = _resample_tap(o, t, size, n_out, scale_bits, p0, p1, p2, KIND, ALIGN, ACC, BLOCK)
            acc += tl.load(src + j * INNER, mask=mask, other=0).to(ACC) * w
        if KIND == 0:
            acc = acc / (((o + 1) * size + n_out - 1) // n_out - (o * size) // n_out).to(ACC)
        tl.store(y + i, acc.to(y.dtype.element_ty), mask=mask)


@triton.jit
def _resample_adjoint_kernel(g, gx, total, INNER, n_out, size, T, scale_bits, p0, p1, p2,
                             KIND: tl.constexpr, ALIGN: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """gx (outer, size, inner) += the map's transpose applied to g (outer, n_out, inner) (atomics)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    inner = i % INNER
    r = i // INNER
    o = r % n_out
    outer = r // n_out
    v = tl.load(g + i, mask=mask, other=0).to(ACC)
    if KIND == 0:
        v = v / (((o + 1) * size + n_out - 1) // n_out - (o * size) // n_out).to(ACC)
    dst = gx + outer * size * INNER + inner
    for t in range(T):
        j, w = _resample_tap(o, t, size, n_out, scale_bits, p0, p1, p2, KIND, ALIGN, ACC, BLOCK)
        tl.atomic_add(dst + j * INNER, v * w, mask=mask)


def _bits(v):
    return int(np.float64(v).view(np.int64))


def _source_scale(n_in, n_out, align_corners, scale, f):
    """torch's area_pixel_compute_scale in the accumulation type f."""
    if align_corners:
        return f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
    return f(1.0 / scale) if scale else f(n_in) / f(max(n_out, 1))


@functools.lru_cache(maxsize=1024)
def _pass(mp, f64):
    """(kind code, taps, scale bits, align_corners, p0, p1, p2) of one dim's map; None when it is the identity."""
    kind, n_in, n_out = mp[:3]
    code = _KIND.get(kind)
    if code is None:
        raise NotImplementedError(f"resample: map {kind!r} has no CUDA kernel")
    if code == ADAPTIVE:
        return code, _adaptive_width(n_in, n_out), 0, False, 0, 0, 0
    if code in (NEAREST, NEAREST_EXACT):
        s = np.float32(1.0 / mp[3]) if mp[3] else np.float32(n_in) / np.float32(max(n_out, 1))
        return code, 1, _bits(s), False, 0, 0, 0
    if code in (LINEAR, CUBIC):
        if code == LINEAR and n_in == n_out:  # torch copies when the sizes agree
            return None
        s = _source_scale(n_in, n_out, mp[3], mp[4], np.float64 if f64 else np.float32)
        return code, 2 if code == LINEAR else 4, _bits(s), bool(mp[3]), 0, 0, 0
    lo = mp[3]
    if code == CIRCULAR:  # torch wraps around what remains of the input after negative (cropping) pads
        hi = n_out - n_in - lo
        start = max(-lo, 0)
        return code, 1, 0, False, start, max(n_in - start - max(-hi, 0), 1), max(lo, 0)
    return code, 1, 0, False, lo, 0, 0


_resample_cache = {}


def _resample_passes(maps, dtype):
    f64 = dtype is dt.float64
    passes = [(j, _pass(mp, f64)) for j, mp in enumerate(maps)]
    passes = [(j, p) for j, p in passes if p is not None]
    if dtype not in _ACC and any(p[0] not in _SELECTING for _, p in passes):
        raise NotImplementedError(f"resample: interpolation of {dtype} tensors on CUDA is not supported")
    return passes


def _dims(shape, ax):
    return math.prod(shape[:ax]), math.prod(shape[ax + 1:])


def _resample(input, maps):
    spec = ops.resample.meta(input, maps)
    dtype, n = spec.dtype, len(maps)
    passes = _resample_passes(maps, dtype)
    res = empty(spec.shape, dtype, spec.device)
    if res.numel() == 0:
        return res
    if not passes:
        creation.copy_(res, input)
        return res
    acc_dt = _ACC_DT.get(dtype, dtype)
    x = creation.contiguous(input)
    shape = list(input._shape)
    for step, (j, p) in enumerate(reversed(passes)):   # last dim first
        code, taps, sbits, align, p0, p1, p2 = p
        ax = len(shape) - n + j
        shape[ax] = maps[j][2]
        y = res if step == len(passes) - 1 else empty(tuple(shape), acc_dt, spec.device)
        outer, inner = _dims(shape, ax)
        total = y.numel()
        k = _kernel_of(_resample_cache, _resample_kernel, KIND=code, ALIGN=align, ACC=_ACC.get(dtype, tl.float32),
                       SELECT=code in _SELECTING)
        k(_grid(total), x, y, total, inner, maps[j][2], maps[j][1], taps, sbits, p0, p1, p2)
        x = y
    return res


def _resample_backward(grad, maps):
    spec = ops.resample_backward.meta(grad, maps)
    dtype, n = spec.dtype, len(maps)
    _floats_only("upsample_backward_out_cuda", grad)
    passes = _resample_passes(maps, dtype)
    acc_dt = _ACC_DT[dtype]
    if grad.numel() == 0:
        return creation.full(spec.shape, 0, dtype, device=spec.device)
    if not passes:
        res = empty(spec.shape, dtype, spec.device)
        creation.copy_(res, grad)
        return res
    g = creation.contiguous(grad)
    shape = list(grad._shape)
    for j, p in passes:
        code, taps, sbits, align, p0, p1, p2 = p
        ax = len(shape) - n + j
        total = g.numel()
        shape[ax] = maps[j][1]
        gx = creation.full(tuple(shape), 0, acc_dt, device=spec.device)
        outer, inner = _dims(shape, ax)
        if total:
            k = _kernel_of(_resample_cache, _resample_adjoint_kernel, KIND=code, ALIGN=align, ACC=_ACC[dtype])
            k(_grid(total), g, gx, total, inner, maps[j][2], maps[j][1], taps, sbits, p0, p1, p2)
        g = gx
    return _cast(g, dtype)


ops.resample.register(CUDA, _resample)
ops.resample_backward.register(CUDA, _resample_backward)


# -- constant padding and the shuffles: a fill and a strided copy, or one copy ----------------------------------------

def _constant_pad_nd(input, pad, value=0):
    spec = ops.constant_pad_nd.meta(input, pad, value)
    dtype = spec.dtype
    fill = bool(value) if dtype is dt.bool_ else (int(value) if dtype.category < 2 else value)
    res = creation.full(spec.shape, fill, dtype, device=spec.device)
    src, dst = input, res
    for j in range(len(pad) // 2):
        i = input.ndim - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        length = input._shape[i] - max(-lo, 0) - max(-hi, 0)
        if length <= 0:
            return res
        src = views.narrow(src, i, max(-lo, 0), length)
        dst = views.narrow(dst, i, max(lo, 0), length)
    if src.numel():
        creation.copy_(dst, src)
    return res


def _copy_into(shape, src):
    """A new tensor of `shape` holding src's elements (a view of up to 6 dims) in row-major order."""
    res = empty(shape, src._dtype, src._device)
    if res.numel():
        creation.copy_(views.view(res, src._shape), src)
    return res


def _planes(input):
    """input (..., C, H, W) as (B, C, H, W), a view where the strides allow (the shuffles' lead dims)."""
    return views.reshape(input, (math.prod(input._shape[:-3]),) + tuple(input._shape[-3:]))


def _pixel_shuffle(input, upscale_factor):
    spec = ops.pixel_shuffle.meta(input, upscale_factor)
    r, (c, h, w) = upscale_factor, spec.shape[-3:]
    x = _planes(input)
    x = views.reshape(x, (x._shape[0], c, r, r, h // r, w // r))
    x = views.permute(x, (0, 1, 4, 2, 5, 3))                               # (B, c, H, r, W, r)
    return _copy_into(spec.shape, x)


def _pixel_unshuffle(input, downscale_factor):
    spec = ops.pixel_unshuffle.meta(input, downscale_factor)
    r, (c, h, w) = downscale_factor, tuple(input._shape[-3:])
    x = _planes(input)
    x = views.reshape(x, (x._shape[0], c, h // r, r, w // r, r))
    x = views.permute(x, (0, 1, 3, 5, 2, 4))                               # (B, c, r, r, h, w)
    return _copy_into(spec.shape, x)


def _channel_shuffle(input, groups):
    spec = ops.channel_shuffle.meta(input, groups)
    nb, c = input._shape[:2]
    rest = math.prod(input._shape[2:])
    x = views.transpose(views.reshape(input, (nb, groups, c // groups, rest)), 1, 2)   # (N, C/g, g, rest)
    return _copy_into(spec.shape, x)


ops.constant_pad_nd.register(CUDA, _constant_pad_nd)
ops.pixel_shuffle.register(CUDA, _pixel_shuffle)
ops.pixel_unshuffle.register(CUDA, _pixel_unshuffle)
ops.channel_shuffle.register(CUDA, _channel_shuffle)


# -- affine grids -------------------------------------------------------------------------------------------------------

@triton.jit
def _base_coord(pos, steps, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """torch's linspace_from_neg_one(steps)[pos] (0 when steps <= 1)."""
    n = tl.zeros_like(pos) + steps          # a tensor even when `steps` was specialised to a constant
    nf = n.to(ACC)
    step = 2.0 / tl.maximum(nf - 1, 1.0)
    r = tl.where(pos < n // 2, -1.0 + step * pos.to(ACC), 1.0 - step * (n - 1 - pos).to(ACC))
    if not ALIGN:
        r = r * (nf - 1) / nf
    return tl.where(n <= 1, 0.0, r).to(ACC)


@triton.jit
def _base_row(p, S0, S1, S2, e, ALIGN: tl.constexpr, ACC: tl.constexpr):
    """Component e of the base grid at flat spatial position p: [x, y, (z), 1], x along the last dim;
    e in 0..NSP where NSP = number of real spatial dims (dims of size 0 padding the front are unused)."""
    p2 = p % S2
    p1 = (p // S2) % S1
    p0 = p // (S2 * S1)
    c = tl.where(e == 0, _base_coord(p2, S2, ALIGN, ACC),
                 tl.where(e == 1, _base_coord(p1, S1, ALIGN, ACC), _base_coord(p0, S0, ALIGN, ACC)))
    return c


@triton.jit
def _affine_grid_kernel(theta, grid, total, P, NSP, S0, S1, S2, ALIGN: tl.constexpr, ACC: tl.constexpr,
                        BLOCK: tl.constexpr):
    """grid[n, p, i] = sum_e base[p, e] * theta[n, i, e] with base[p, NSP] = 1; theta contiguous."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < total
    i = idx % NSP
    r = idx // NSP
    p = r % P
    n = r // P
    row = theta + n * NSP * (NSP + 1) + i * (NSP + 1)
    acc = tl.load(row + NSP, mask=mask, other=0).to(ACC)
    for e in range(NSP):
        acc += _base_row(p, S0, S1, S2, e, ALIGN, ACC) * tl.load(row + e, mask=mask, other=0).to(ACC)
    tl.store(grid + idx, acc.to(grid.dtype.element_ty), mask=mask)


@triton.jit
def _affine_grid_backward_kernel(g, gt, P, NSP, S0, S1, S2, ALIGN: tl.constexpr, ACC: tl.constexpr,
                                 BLOCK: tl.constexpr):
    """One program per (n, i, e): gt[n, i, e] = sum_p g[n, p, i] * base[p, e]; g contiguous."""
    pid = tl.program_id(0).to(tl.int64)
    e = pid % (NSP + 1)
    i = (pid // (NSP + 1)) % NSP
    n = pid // ((NSP + 1) * NSP)
    acc = tl.zeros((BLOCK,), ACC)
    for start in range(0, P, BLOCK):
        p = start + tl.arange(0, BLOCK).to(tl.int64)
        m = p < P
        v = tl.load(g + n * P * NSP + p * NSP + i, mask=m, other=0).to(ACC)
        b = tl.where(e == NSP, 1.0, _base_row(p, S0, S1, S2, e, ALIGN, ACC)).to(ACC)
        acc += tl.where(m, v * b, 0.0)
    tl.store(gt + pid, tl.sum(acc, 0).to(gt.dtype.element_ty))


def _affine_args(size):
    spatial = tuple(size[2:])
    return math.prod(spatial), len(spatial), _pad3(spatial, 1)


def _affine_grid_generator(theta, size, align_corners):
    spec = ops.affine_grid_generator.meta(theta, size, align_corners)
    _floats_only("affine_grid_generator_cuda", theta)
    res = empty(spec.shape, spec.dtype, spec.device)
    total = res.numel()
    if total:
        p, nsp, s3 = _affine_args(size)
        k = _kernel_of(_resample_cache, _affine_grid_kernel, ALIGN=bool(align_corners), ACC=_ACC[spec.dtype])
        k(_grid(total), creation.contiguous(theta), res, total, p, nsp, *s3)
    return res


def _affine_grid_backward(grad, size, align_corners):
    spec = ops.affine_grid_backward.meta(grad, size, align_corners)
    res = empty(spec.shape, spec.dtype, spec.device)
    if res.numel():
        p, nsp, s3 = _affine_args(size)
        k = _kernel_of(_resample_cache, _affine_grid_backward_kernel, ALIGN=bool(align_corners),
                       ACC=_ACC[spec.dtype])
        k((res.numel(),), creation.contiguous(grad), res, p, nsp, *s3)
    return res


ops.affine_grid_generator.register(CUDA, _affine_grid_generator)
ops.affine_grid_backward.register(CUDA, _affine_grid_backward)


# -- math attention, composed of our CUDA ops -----------------------------------------------------------------------------

def _sdpa_math(query, key, value, attn_mask, dropout_mask, scale, is_causal, enable_gqa):
    """softmax(q k^T * scale + mask) v in float32 for the half types (rounded once), as the CPU kernel;
    a fully masked row gives zeros."""
    out_spec, attn_spec = ops.sdpa_math.meta(query, key, value, attn_mask, dropout_mask, scale, is_causal,
                                              enable_gqa)
    ct = _ACC_DT[out_spec.dtype]
    q, k, v = _cast(query, ct), _cast(key, ct), _cast(value, ct)
    if enable_gqa and q.ndim >= 3:
        k, v = ops.repeat_heads(k, q._shape[-3]), ops.repeat_heads(v, q._shape[-3])
    s = ew.mul(la.matmul(q, views.transpose(k, -1, -2)), float(scale))      # (..., L, S)
    length, source = s._shape[-2:]
    if is_causal:
        rows = views.reshape(creation.arange(0, length, 1, dt.int64, device=s._device), (length, 1))
        cols = creation.arange(0, source, 1, dt.int64, device=s._device)
        s = ew.where(ew.ge(rows, cols), s, float("-inf"))
    if attn_mask is not None:
        s = ew.where(attn_mask, s, float("-inf")) if attn_mask._dtype is dt.bool_ else ew.add(s, _cast(attn_mask, ct))
    top = red.amax(s, (-1,), True)
    e = ew.exp(ew.sub(s, ew.where(ew.isfinite(top), top, 0.0)))
    den = red.sum(e, (-1,), True, None)
    positive = ew.gt(den, 0.0)
    attn = ew.where(positive, ew.div(e, ew.where(positive, den, 1.0)), 0.0)
    p = attn if dropout_mask is None else ew.mul(attn, _cast(dropout_mask, ct))
    out = la.matmul(p, v)
    res_out = empty(out_spec.shape, out_spec.dtype, out_spec.device)
    res_attn = empty(attn_spec.shape, attn_spec.dtype, attn_spec.device)
    creation.copy_(res_out, views.expand(out, out_spec.shape))
    creation.copy_(res_attn, views.expand(attn, attn_spec.shape))
    return res_out, res_attn


ops.sdpa_math.register(CUDA, _sdpa_math)
