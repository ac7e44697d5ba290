"""CUDA kernels of the nn ops: softmax family, class-index losses, norms, glu, prelu, BCE.

Layout: an op over one dim of x sees x (made contiguous when it is not) as (outer, C, inner)
around that dim; "row" r = (o, i) is the C elements at o*C*inner + i + c*inner, so the last dim
(inner == 1, Triton specialises it) reads coalesced and other dims need no transposing copy.
One program per row; a row longer than one block loops over blocks, keeping per-lane running
max/sum (online softmax) so no second scratch buffer is needed. Half types compute in float32,
float64 in float64 (torch's opmath).

Reductions across rows (loss means, norm weight/bias grads, batch statistics) write per-program
partials that a second launch sums in a fixed order: deterministic, no atomics, and divided on the
device (a loss mean never syncs the host).

Targets out of range ([0, C) and not ignore_index) cannot raise here without a host sync: their
loss and gradient are NaN (torch's CUDA build asserts on the device instead).
"""
import math

import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, nn, views
from vibetensor.backends.cuda.plan import planned
from vibetensor.ops.meta import bump_version
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
ROW_BLOCK = 4096      # rows up to this length live in registers (one pass)
LOOP_BLOCK = 2048     # longer rows loop over blocks of this size
FLAT_BLOCK = 1024     # elementwise kernels
PARTS = 256           # programs that share a cross-row reduction (then one more pass)


# -- shared device helpers -------------------------------------------------------------------------------------

@triton.jit
def _row_base(row, C, inner):
    """Offset of element 0 of row r = (o, i) of an (outer, C, inner) contiguous tensor."""
    o = row // inner
    return o * C * inner + (row - o * inner)


@triton.jit
def _online(m_l, s_l, x):
    """Per-lane running (max, sum of exp(x - max)) after one more value per lane. -inf values add
    nothing; a NaN makes the lane's sum NaN for good (the max ignores NaN, so while the max is still
    -inf the sum is kept as is, 0 or NaN), hence the whole row NaN, as torch's."""
    ninf = float("-inf")
    m_new = tl.maximum(m_l, x)
    keep = tl.where(m_l == ninf, s_l, s_l * libdevice.exp(m_l - m_new))
    add = tl.where(x == ninf, 0.0, libdevice.exp(x - m_new))
    return m_new, keep + add


@triton.jit
def _lanes_total(m_l, s_l):
    """(max, sum of exp(x - max)) of a row from its per-lane running values."""
    m = tl.max(m_l, 0)
    s = tl.sum(tl.where(m_l == float("-inf"), s_l, s_l * libdevice.exp(m_l - m)), 0)  # (s_l is 0 or NaN there)
    return m, s


@triton.jit
def _load_row(ptr, base, c, C, inner, OUT_T: tl.constexpr, COMPUTE: tl.constexpr):
    """Row elements c (masked to C), converted to OUT_T first (softmax's dtype= casts the input),
    then to the compute dtype; -inf where masked."""
    mask = c < C
    x = tl.load(ptr + base + c * inner, mask=mask, other=0).to(OUT_T).to(COMPUTE)
    return tl.where(mask, x, float("-inf")), mask


# -- softmax / log_softmax -------------------------------------------------------------------------------------

@triton.jit
def _softmax_kernel(x_ptr, y_ptr, C, inner, LOG: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    base = _row_base(row, C, inner)
    cols = tl.arange(0, BLOCK)
    if SINGLE:
        x, mask = _load_row(x_ptr, base, cols, C, inner, y_ptr.dtype.element_ty, COMPUTE)
        m = tl.max(x, 0)
        z = x - m
        e = tl.where(mask, libdevice.exp(z), 0.0)
        s = tl.sum(e, 0)
        if LOG:
            y = z - libdevice.log(s)
        else:
            y = e / s
        tl.store(y_ptr + base + cols * inner, y.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m_l = tl.full((BLOCK,), float("-inf"), COMPUTE)
        s_l = tl.zeros((BLOCK,), COMPUTE)
        for start in range(0, C, BLOCK):
            x, mask = _load_row(x_ptr, base, start + cols, C, inner, y_ptr.dtype.element_ty, COMPUTE)
            m_l, s_l = _online(m_l, s_l, x)
        m, s = _lanes_total(m_l, s_l)
        log_s = libdevice.log(s)
        for start in range(0, C, BLOCK):
            x, mask = _load_row(x_ptr, base, start + cols, C, inner, y_ptr.dtype.element_ty, COMPUTE)
            if LOG:
                y = x - m - log_s
            else:
                y = libdevice.exp(x - m) / s
            tl.store(y_ptr + base + (start + cols) * inner, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_bwd_kernel(g_ptr, y_ptr, gx_ptr, C, inner, LOG: tl.constexpr, SINGLE: tl.constexpr,
                        COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """softmax: gx = p - y sum(p) with p = g y rounded to the result dtype; log_softmax: gx = g - exp(y)
    sum(g). (torch's CUDA softmax backward multiplies g y as a tensor of the result dtype first, then
    runs its kernel in float32 for half types: so do we, rounding p, the sum and gx as it does.)"""
    row = tl.program_id(0).to(tl.int64)
    base = _row_base(row, C, inner)
    cols = tl.arange(0, BLOCK)
    OUT_T = gx_ptr.dtype.element_ty
    if SINGLE:
        mask = cols < C
        offs = base + cols * inner
        g = tl.load(g_ptr + offs, mask=mask, other=0).to(COMPUTE)
        y = tl.load(y_ptr + offs, mask=mask, other=0).to(COMPUTE)
        if LOG:
            gx = g - libdevice.exp(y) * tl.sum(g, 0)
        else:
            p = (g * y).to(OUT_T).to(COMPUTE)
            gx = p - y * tl.sum(p, 0)
        tl.store(gx_ptr + offs, gx.to(OUT_T), mask=mask)
    else:
        acc = tl.zeros((BLOCK,), COMPUTE)
        for start in range(0, C, BLOCK):
            mask = start + cols < C
            offs = base + (start + cols) * inner
            g = tl.load(g_ptr + offs, mask=mask, other=0).to(COMPUTE)
            if LOG:
                acc += g
            else:
                acc += (g * tl.load(y_ptr + offs, mask=mask, other=0).to(COMPUTE)).to(OUT_T).to(COMPUTE)
        total = tl.sum(acc, 0)
        for start in range(0, C, BLOCK):
            mask = start + cols < C
            offs = base + (start + cols) * inner
            g = tl.load(g_ptr + offs, mask=mask, other=0).to(COMPUTE)
            y = tl.load(y_ptr + offs, mask=mask, other=0).to(COMPUTE)
            if LOG:
                gx = g - libdevice.exp(y) * total
            else:
                gx = (g * y).to(OUT_T).to(COMPUTE) - y * total
            tl.store(gx_ptr + offs, gx.to(OUT_T), mask=mask)


# -- class-index losses -----------------------------------------------------------------------------------------

@triton.jit
def _target(t_ptr, row, C, ignore_index):
    """(class, counts, bad): the row's target clamped into range, whether it is not ignored, and
    whether it is not ignored yet out of range."""
    t = tl.load(t_ptr + row).to(tl.int64)
    valid = t != ignore_index
    inrange = (t >= 0) & (t < C)
    return tl.where(inrange, t, 0), valid, valid & (inrange == 0)


@triton.jit
def _ce_fwd_kernel(x_ptr, t_ptr, w_ptr, loss_ptr, wrow_ptr, C, inner, ignore_index, keep, smooth_c,
                   HAS_W: tl.constexpr, SMOOTH: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Per row: loss = keep * w_t (lse - x_t) + smooth_c * (lse * sum(w) - sum(w x)) (0 if ignored)
    and the row's weight w_t (0 if ignored), for the mean's denominator."""
    row = tl.program_id(0).to(tl.int64)
    base = _row_base(row, C, inner)
    tc, valid, bad = _target(t_ptr, row, C, ignore_index)
    x_t = tl.load(x_ptr + base + tc * inner).to(COMPUTE)
    if HAS_W:
        w_t = tl.load(w_ptr + tc).to(COMPUTE)
    else:
        w_t = tl.full((), 1.0, COMPUTE)
    cols = tl.arange(0, BLOCK)
    m_l = tl.full((BLOCK,), float("-inf"), COMPUTE)
    s_l = tl.zeros((BLOCK,), COMPUTE)
    swx = tl.zeros((BLOCK,), COMPUTE)
    sw = tl.zeros((BLOCK,), COMPUTE)
    for start in range(0, C, BLOCK):
        x, mask = _load_row(x_ptr, base, start + cols, C, inner, COMPUTE, COMPUTE)
        m_l, s_l = _online(m_l, s_l, x)
        if SMOOTH:
            if HAS_W:
                w = tl.load(w_ptr + start + cols, mask=mask, other=0).to(COMPUTE)
            else:
                w = mask.to(COMPUTE)
            swx += tl.where(mask, w * x, 0.0)
            sw += w
    m, s = _lanes_total(m_l, s_l)
    lse = m + libdevice.log(s)
    loss = keep * w_t * (lse - x_t)
    if SMOOTH:
        loss += smooth_c * (lse * tl.sum(sw, 0) - tl.sum(swx, 0))
    loss = tl.where(valid, loss, 0.0)
    loss = tl.where(bad, float("nan"), loss)
    tl.store(loss_ptr + row, loss.to(loss_ptr.dtype.element_ty))
    tl.store(wrow_ptr + row, tl.where(valid, w_t, 0.0).to(wrow_ptr.dtype.element_ty))


@triton.jit
def _ce_bwd_kernel(x_ptr, t_ptr, w_ptr, g_ptr, total_ptr, gx_ptr, C, inner, ignore_index, keep, smooth_c,
                   HAS_W: tl.constexpr, SMOOTH: tl.constexpr, PER_ROW: tl.constexpr, MEAN: tl.constexpr,
                   COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """gx = (softmax(x) a - b) * scale: a = keep w_t + smooth_c sum(w), b_c = keep w_t [c == t] +
    smooth_c w_c; zero for ignored rows; scale = grad (per row or the 0-d one, / total for mean)."""
    row = tl.program_id(0).to(tl.int64)
    base = _row_base(row, C, inner)
    tc, valid, bad = _target(t_ptr, row, C, ignore_index)
    if HAS_W:
        w_t = tl.load(w_ptr + tc).to(COMPUTE)
    else:
        w_t = tl.full((), 1.0, COMPUTE)
    if PER_ROW:
        scale = tl.load(g_ptr + row).to(COMPUTE)
    else:
        scale = tl.load(g_ptr).to(COMPUTE)
        if MEAN:
            scale = scale / tl.load(total_ptr).to(COMPUTE)
    cols = tl.arange(0, BLOCK)
    m_l = tl.full((BLOCK,), float("-inf"), COMPUTE)
    s_l = tl.zeros((BLOCK,), COMPUTE)
    sw = tl.zeros((BLOCK,), COMPUTE)
    for start in range(0, C, BLOCK):
        x, mask = _load_row(x_ptr, base, start + cols, C, inner, COMPUTE, COMPUTE)
        m_l, s_l = _online(m_l, s_l, x)
        if SMOOTH:
            if HAS_W:
                sw += tl.load(w_ptr + start + cols, mask=mask, other=0).to(COMPUTE)
            else:
                sw += mask.to(COMPUTE)
    m, s = _lanes_total(m_l, s_l)
    lse = m + libdevice.log(s)
    a = keep * w_t
    if SMOOTH:
        a += smooth_c * tl.sum(sw, 0)
    for start in range(0, C, BLOCK):
        c = start + cols
        x, mask = _load_row(x_ptr, base, c, C, inner, COMPUTE, COMPUTE)
        b = tl.where(c == tc, keep * w_t, 0.0)
        if SMOOTH:
            if HAS_W:
                b += smooth_c * tl.load(w_ptr + c, mask=mask, other=0).to(COMPUTE)
            else:
                b += smooth_c
        gx = (libdevice.exp(x - lse) * a - b) * scale
        gx = tl.where(valid, gx, 0.0)
        gx = tl.where(bad, float("nan"), gx)
        tl.store(gx_ptr + base + c * inner, gx.to(gx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _nll_rows_kernel(x_ptr, t_ptr, w_ptr, loss_ptr, wrow_ptr, R, C, inner, ignore_index, HAS_W: tl.constexpr,
                     LOSS: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Per row: loss = -w_t x[t] (0 if ignored) when LOSS, and the row weight w_t (0 if ignored)."""
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = r < R
    t = tl.load(t_ptr + r, mask=live, other=0).to(tl.int64)
    valid = (t != ignore_index) & live
    inrange = (t >= 0) & (t < C)
    ok = valid & inrange
    tc = tl.where(inrange, t, 0)
    if HAS_W:
        w = tl.load(w_ptr + tc, mask=ok, other=0).to(COMPUTE)
    else:
        w = ok.to(COMPUTE)
    tl.store(wrow_ptr + r, tl.where(valid, w, 0.0).to(wrow_ptr.dtype.element_ty), mask=live)
    if LOSS:
        x = tl.load(x_ptr + _row_base(r, C, inner) + tc * inner, mask=ok, other=0).to(COMPUTE)
        loss = tl.where(ok, -w * x, 0.0)
        loss = tl.where(valid & (inrange == 0), float("nan"), loss)
        tl.store(loss_ptr + r, loss.to(loss_ptr.dtype.element_ty), mask=live)


@triton.jit
def _nll_bwd_kernel(t_ptr, w_ptr, g_ptr, total_ptr, gx_ptr, R, C, inner, ignore_index, HAS_W: tl.constexpr,
                    PER_ROW: tl.constexpr, MEAN: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """gx (zero-filled) [row, t] = -w_t * scale for each counted row."""
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = r < R
    t = tl.load(t_ptr + r, mask=live, other=0).to(tl.int64)
    valid = (t != ignore_index) & live
    inrange = (t >= 0) & (t < C)
    tc = tl.where(inrange, t, 0)
    if HAS_W:
        w = tl.load(w_ptr + tc, mask=valid & inrange, other=0).to(COMPUTE)
    else:
        w = tl.full((BLOCK,), 1.0, COMPUTE)
    if PER_ROW:
        scale = tl.load(g_ptr + r, mask=live, other=0).to(COMPUTE)
    else:
        scale = tl.load(g_ptr).to(COMPUTE)
        if MEAN:
            scale = scale / tl.load(total_ptr).to(COMPUTE)
    coef = tl.where(inrange, -w * scale, float("nan"))
    tl.store(gx_ptr + _row_base(r, C, inner) + tc * inner, coef.to(gx_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _total_kernel(a_ptr, w_ptr, out_ptr, R, MEAN: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """out = sum(a) (/ sum(w) if MEAN), one program, fixed order: the loss reduction on the device."""
    acc = tl.zeros((BLOCK,), COMPUTE)
    accw = tl.zeros((BLOCK,), COMPUTE)
    for start in range(0, R, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < R
        acc += tl.load(a_ptr + offs, mask=mask, other=0).to(COMPUTE)
        if MEAN:
            accw += tl.load(w_ptr + offs, mask=mask, other=0).to(COMPUTE)
    total = tl.sum(acc, 0)
    if MEAN:
        total = total / tl.sum(accw, 0)
    tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))


# -- normalisation ----------------------------------------------------------------------------------------------

@triton.jit
def _param(ptr, row, c, mask, groups, cpg, hw, COMPUTE: tl.constexpr):
    """The affine parameter of row elements c: channel (row % groups) * cpg + c // hw (layer/rms norm:
    groups = hw = 1, so channel c; group norm: the group's channels, hw elements each)."""
    return tl.load(ptr + (row % groups) * cpg + c // hw, mask=mask, other=0).to(COMPUTE)


@triton.jit
def _row_stats(x_ptr, base, L, eps, CENTER: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
               BLOCK: tl.constexpr):
    """(mean, rstd) of a row of L elements (mean 0 without CENTER: rms norm); two passes when the
    row spans several blocks (exact variance, no sum-of-squares cancellation)."""
    cols = tl.arange(0, BLOCK)
    if SINGLE:
        mask = cols < L
        x = tl.load(x_ptr + base + cols, mask=mask, other=0).to(COMPUTE)
        if CENTER:
            mean = tl.sum(x, 0) / L
        else:
            mean = tl.zeros((), COMPUTE)
        d = tl.where(mask, x - mean, 0.0)
        var = tl.sum(d * d, 0) / L
    else:
        if CENTER:
            acc = tl.zeros((BLOCK,), COMPUTE)
            for start in range(0, L, BLOCK):
                acc += tl.load(x_ptr + base + start + cols, mask=start + cols < L, other=0).to(COMPUTE)
            mean = tl.sum(acc, 0) / L
        else:
            mean = tl.zeros((), COMPUTE)
        acc2 = tl.zeros((BLOCK,), COMPUTE)
        for start in range(0, L, BLOCK):
            mask = start + cols < L
            x = tl.load(x_ptr + base + start + cols, mask=mask, other=0).to(COMPUTE)
            d = tl.where(mask, x - mean, 0.0)
            acc2 += d * d
        var = tl.sum(acc2, 0) / L
    return mean, libdevice.rsqrt(var + eps)


@triton.jit
def _norm_fwd_kernel(x_ptr, w_ptr, b_ptr, y_ptr, L, groups, cpg, hw, eps, HAS_W: tl.constexpr,
                     HAS_B: tl.constexpr, CENTER: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                     BLOCK: tl.constexpr):
    """y = (x - mean) * rstd * w + b over each row of L elements."""
    row = tl.program_id(0).to(tl.int64)
    base = row * L
    mean, rstd = _row_stats(x_ptr, base, L, eps, CENTER, SINGLE, COMPUTE, BLOCK)
    cols = tl.arange(0, BLOCK)
    for start in range(0, L, BLOCK):
        c = start + cols
        mask = c < L
        y = (tl.load(x_ptr + base + c, mask=mask, other=0).to(COMPUTE) - mean) * rstd
        if HAS_W:
            y = y * _param(w_ptr, row, c, mask, groups, cpg, hw, COMPUTE)
        if HAS_B:
            y = y + _param(b_ptr, row, c, mask, groups, cpg, hw, COMPUTE)
        tl.store(y_ptr + base + c, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _norm_bwd_kernel(g_ptr, x_ptr, w_ptr, dx_ptr, stats_ptr, R, L, groups, cpg, hw, eps,
                     HAS_W: tl.constexpr, CENTER: tl.constexpr, NEED_DX: tl.constexpr, SINGLE: tl.constexpr,
                     COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """dx = rstd (gxh - mean(gxh) - xhat mean(gxh xhat)), gxh = g w (no mean(gxh) term without
    CENTER); stores the row's mean and rstd for the parameter gradients: stats (2, R)."""
    row = tl.program_id(0).to(tl.int64)
    base = row * L
    mean, rstd = _row_stats(x_ptr, base, L, eps, CENTER, SINGLE, COMPUTE, BLOCK)
    tl.store(stats_ptr + row, mean)
    tl.store(stats_ptr + R + row, rstd)
    if NEED_DX:
        cols = tl.arange(0, BLOCK)
        acc1 = tl.zeros((BLOCK,), COMPUTE)
        acc2 = tl.zeros((BLOCK,), COMPUTE)
        for start in range(0, L, BLOCK):
            c = start + cols
            mask = c < L
            xhat = tl.where(mask, (tl.load(x_ptr + base + c, mask=mask, other=0).to(COMPUTE) - mean) * rstd, 0.0)
            gxh = tl.load(g_ptr + base + c, mask=mask, other=0).to(COMPUTE)
            if HAS_W:
                gxh = gxh * _param(w_ptr, row, c, mask, groups, cpg, hw, COMPUTE)
            acc1 += gxh * xhat
            acc2 += gxh
        c1 = tl.sum(acc1, 0) / L
        c2 = tl.sum(acc2, 0) / L
        for start in range(0, L, BLOCK):
            c = start + cols
            mask = c < L
            xhat = (tl.load(x_ptr + base + c, mask=mask, other=0).to(COMPUTE) - mean) * rstd
            gxh = tl.load(g_ptr + base + c, mask=mask, other=0).to(COMPUTE)
            if HAS_W:
                gxh = gxh * _param(w_ptr, row, c, mask, groups, cpg, hw, COMPUTE)
            dx = gxh - xhat * c1
            if CENTER:
                dx = dx - c2
            tl.store(dx_ptr + base + c, (dx * rstd).to(dx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _col_parts_kernel(g_ptr, x_ptr, stats_ptr, parts_ptr, R, L, rows_per, half, COMPUTE: tl.constexpr,
                      BLOCK: tl.constexpr):
    """Partial sums over a chunk of rows of g * xhat and g, per column: parts (2, K, L) (half =
    K * L), from the rows' mean and rstd in stats (2, R)."""
    k = tl.program_id(0)
    cols = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < L
    accw = tl.zeros((BLOCK,), COMPUTE)
    accb = tl.zeros((BLOCK,), COMPUTE)
    r0 = k * rows_per
    r1 = tl.minimum(r0 + rows_per, R)
    offs = r0.to(tl.int64) * L + cols  # advanced by L per row (64-bit pointer arithmetic)
    for r in range(r0, r1):
        g = tl.load(g_ptr + offs, mask=mask, other=0).to(COMPUTE)
        x = tl.load(x_ptr + offs, mask=mask, other=0).to(COMPUTE)
        accw += g * (x - tl.load(stats_ptr + r)) * tl.load(stats_ptr + R + r)
        accb += g
        offs += L
    out = parts_ptr + k.to(tl.int64) * L + cols
    tl.store(out, accw, mask=mask)
    tl.store(out + half, accb, mask=mask)


@triton.jit
def _chan_parts_kernel(x_ptr, g_ptr, mean_ptr, rstd_ptr, p1_ptr, p2_ptr, N, C, HW, sn, cpg, n_per,
                       MODE: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Per channel c of x (N, C, HW), partial sums over a chunk of samples n: MODE 0 sum(x); MODE 1
    sum((x - mean)^2); MODE 2 sum(g * xhat) and sum(g). The statistics of (n, c) sit at
    n * sn + c // cpg (batch norm: sn 0, cpg 1; group norm: sn groups, cpg channels per group)."""
    c = tl.program_id(0)
    k = tl.program_id(1)
    cols = tl.arange(0, BLOCK)
    acc1 = tl.zeros((BLOCK,), COMPUTE)
    acc2 = tl.zeros((BLOCK,), COMPUTE)
    n0 = k * n_per
    n1 = tl.minimum(n0 + n_per, N)
    base = (n0.to(tl.int64) * C + c) * HW  # advanced by C * HW per sample
    for n in range(n0, n1):
        if MODE != 0:
            s = n * sn + c // cpg
            mu = tl.load(mean_ptr + s).to(COMPUTE)
            rs = tl.load(rstd_ptr + s).to(COMPUTE)
        for start in range(0, HW, BLOCK):
            mask = start + cols < HW
            x = tl.load(x_ptr + base + start + cols, mask=mask, other=0).to(COMPUTE)
            if MODE == 0:
                acc1 += x
            elif MODE == 1:
                d = tl.where(mask, x - mu, 0.0)
                acc1 += d * d
            else:
                g = tl.load(g_ptr + base + start + cols, mask=mask, other=0).to(COMPUTE)
                acc1 += tl.where(mask, g * (x - mu) * rs, 0.0)
                acc2 += g
        base += C * HW
    tl.store(p1_ptr + k.to(tl.int64) * C + c, tl.sum(acc1, 0))
    if MODE == 2:
        tl.store(p2_ptr + k.to(tl.int64) * C + c, tl.sum(acc2, 0))


@triton.jit
def _col_sum_kernel(p_ptr, out_ptr, K, L, count, COMPUTE: tl.constexpr, BLOCK_K: tl.constexpr,
                    BLOCK_L: tl.constexpr):
    """out[j] = sum over k of p[k, j], divided by the integer `count` (exact in any float type)."""
    _col_sum_tile(p_ptr, out_ptr, K, L, count, COMPUTE, BLOCK_K, BLOCK_L)


@triton.jit
def _col_sum_tile(p_ptr, out_ptr, K, L, count, COMPUTE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_L: tl.constexpr):
    """Program 0's block of columns (BLOCK_L) of _col_sum_kernel. A (BLOCK_K, BLOCK_L) tile per
    step: K is often the 256 partial sums of a parts kernel, and a row-at-a-time walk would chain
    256 dependent loads (37 us for L = 128 on an H200)."""
    cols = tl.program_id(0).to(tl.int64) * BLOCK_L + tl.arange(0, BLOCK_L)
    cmask = cols < L
    acc = tl.zeros((BLOCK_K, BLOCK_L), COMPUTE)
    for k0 in range(0, K, BLOCK_K):
        rows = k0 + tl.arange(0, BLOCK_K)
        mask = (rows < K)[:, None] & cmask[None, :]
        acc += tl.load(p_ptr + rows.to(tl.int64)[:, None] * L + cols[None, :], mask=mask, other=0).to(COMPUTE)
    tl.store(out_ptr + cols, (tl.sum(acc, 0) / count).to(out_ptr.dtype.element_ty), mask=cmask)


@triton.jit
def _col_sum2_kernel(p_ptr, out0_ptr, out1_ptr, K, L, half, COMPUTE: tl.constexpr, BLOCK_K: tl.constexpr,
                     BLOCK_L: tl.constexpr):
    """Both column sums of parts p (2, K, L) (half = K * L) in one launch, axis 1 picking the half:
    out0 and out1 (L,)."""
    if tl.program_id(1) == 0:
        _col_sum_tile(p_ptr, out0_ptr, K, L, 1, COMPUTE, BLOCK_K, BLOCK_L)
    else:
        _col_sum_tile(p_ptr + half, out1_ptr, K, L, 1, COMPUTE, BLOCK_K, BLOCK_L)


@triton.jit
def _bn_stats_kernel(mean_ptr, var_ptr, rstd_ptr, rm_ptr, rv_ptr, C, eps, momentum, unbias, TRAIN: tl.constexpr,
                     HAS_RM: tl.constexpr, HAS_RV: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Training: rstd from the batch variance, running stats moved toward the batch ones (variance
    unbiased). Evaluation: mean and rstd from the running stats."""
    c = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = c < C
    if TRAIN:
        mean = tl.load(mean_ptr + c, mask=mask, other=0).to(COMPUTE)
        var = tl.load(var_ptr + c, mask=mask, other=0).to(COMPUTE)
        if HAS_RM:
            rm = tl.load(rm_ptr + c, mask=mask, other=0).to(COMPUTE)
            tl.store(rm_ptr + c, ((1 - momentum) * rm + momentum * mean).to(rm_ptr.dtype.element_ty), mask=mask)
        if HAS_RV:
            rv = tl.load(rv_ptr + c, mask=mask, other=0).to(COMPUTE)
            tl.store(rv_ptr + c, ((1 - momentum) * rv + momentum * var * unbias).to(rv_ptr.dtype.element_ty),
                     mask=mask)
    else:
        mean = tl.load(rm_ptr + c, mask=mask, other=0).to(COMPUTE)
        var = tl.load(rv_ptr + c, mask=mask, other=0).to(COMPUTE)
        tl.store(mean_ptr + c, mean, mask=mask)
    tl.store(rstd_ptr + c, libdevice.rsqrt(var + eps), mask=mask)


@triton.jit
def _bn_apply_kernel(x_ptr, g_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, sg_ptr, sgx_ptr, out_ptr, n, C, HW, count,
                     BACKWARD: tl.constexpr, TRAIN: tl.constexpr, HAS_W: tl.constexpr, HAS_B: tl.constexpr,
                     COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """Forward: y = (x - mean_c) rstd_c w_c + b_c. Backward: dx = w_c rstd_c (g - sum_g/count -
    xhat sum_gxhat/count) when training, g w_c rstd_c in evaluation."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    c = (i // HW) % C
    x = tl.load(x_ptr + i, mask=mask, other=0).to(COMPUTE)
    mu = tl.load(mean_ptr + c, mask=mask, other=0).to(COMPUTE)
    rs = tl.load(rstd_ptr + c, mask=mask, other=0).to(COMPUTE)
    if HAS_W:
        scale = rs * tl.load(w_ptr + c, mask=mask, other=0).to(COMPUTE)
    else:
        scale = rs
    if BACKWARD:
        g = tl.load(g_ptr + i, mask=mask, other=0).to(COMPUTE)
        if TRAIN:
            sg = tl.load(sg_ptr + c, mask=mask, other=0).to(COMPUTE)
            sgx = tl.load(sgx_ptr + c, mask=mask, other=0).to(COMPUTE)
            y = scale * (g - sg / count - (x - mu) * rs * (sgx / count))
        else:
            y = g * scale
    else:
        y = (x - mu) * scale
        if HAS_B:
            y += tl.load(b_ptr + c, mask=mask, other=0).to(COMPUTE)
    tl.store(out_ptr + i, y.to(out_ptr.dtype.element_ty), mask=mask)


# -- glu, prelu, binary cross-entropy --------------------------------------------------------------------------

@triton.jit
def _glu_kernel(x_ptr, y_ptr, n, half, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """y = a * sigmoid(b) with x (outer, 2, half) (half = H * inner): a = x[o, 0], b = x[o, 1]."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    o = i // half
    a_off = i + o * half
    a = tl.load(x_ptr + a_off, mask=mask, other=0).to(COMPUTE)
    b = tl.load(x_ptr + a_off + half, mask=mask, other=0).to(COMPUTE)
    tl.store(y_ptr + i, (a / (1 + libdevice.exp(-b))).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _prelu_kernel(x_ptr, w_ptr, y_ptr, n, C, inner, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    x = tl.load(x_ptr + i, mask=mask, other=0).to(COMPUTE)
    w = tl.load(w_ptr + (i // inner) % C, mask=mask, other=0).to(COMPUTE)
    tl.store(y_ptr + i, tl.where(x > 0, x, w * x).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bce_kernel(x_ptr, t_ptr, w_ptr, y_ptr, n, HAS_W: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """(t - 1) max(log(1 - x), -100) - t max(log(x), -100), times w (torch's clamped logs)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    x = tl.load(x_ptr + i, mask=mask, other=0.5).to(COMPUTE)
    t = tl.load(t_ptr + i, mask=mask, other=0).to(COMPUTE)
    loss = (t - 1) * tl.maximum(libdevice.log1p(-x), -100.0) - t * tl.maximum(libdevice.log(x), -100.0)
    if HAS_W:
        loss = loss * tl.load(w_ptr + i, mask=mask, other=0).to(COMPUTE)
    tl.store(y_ptr + i, loss.to(y_ptr.dtype.element_ty), mask=mask)


# -- host side -------------------------------------------------------------------------------------------------

_kernel = launcher.cached_kernel


def _compute(d):
    """The Triton compute dtype (and our dtype for scratch buffers) of a floating dtype."""
    return (tl.float64, dt.float64) if d is dt.float64 else (tl.float32, dt.float32)


def _row_block(n):
    """(SINGLE, BLOCK) for rows of n elements."""
    if n <= ROW_BLOCK:
        return True, max(16, launcher.next_power_of_2(max(n, 1)))
    return False, LOOP_BLOCK


def _around(shape, dim):
    """(C, inner, rows) of a contiguous tensor seen as (outer, C, inner) around dim."""
    if not shape:
        return 1, 1, 1
    C = shape[dim]
    inner = math.prod(shape[dim + 1:])
    rows = math.prod(shape) // C if C else 0
    return C, inner, rows


def _dense(t):
    return None if t is None else creation.contiguous(t)


def _grid1(n, block=FLAT_BLOCK):
    return (launcher.cdiv(n, block),)


# softmax family

def _softmax_op(op, log):
    def kernel(x, dim, dtype=None):
        spec = op.meta(x, dim, dtype)
        res = empty(spec.shape, spec.dtype, spec.device)
        if res.numel() == 0:
            return res
        xc = creation.contiguous(x)
        C, inner, rows = _around(xc._shape, spec.dim)
        single, block = _row_block(C)
        _kernel(_softmax_kernel, LOG=log, SINGLE=single, COMPUTE=_compute(spec.dtype)[0], BLOCK=block)(
            (rows,), xc, res, C, inner)
        return res
    op.register(CUDA, planned(kernel))


def _softmax_backward_op(op, log):
    def kernel(grad, y, dim):
        spec = op.meta(grad, y, dim)
        res = empty(spec.shape, spec.dtype, spec.device)
        if res.numel() == 0:
            return res
        g, yc = creation.contiguous(grad), creation.contiguous(y)
        C, inner, rows = _around(yc._shape, spec.dim)
        single, block = _row_block(C)
        _kernel(_softmax_bwd_kernel, LOG=log, SINGLE=single, COMPUTE=_compute(spec.dtype)[0], BLOCK=block)(
            (rows,), g, yc, res, C, inner)
        return res
    op.register(CUDA, planned(kernel))


_softmax_op(nn.softmax, log=False)
_softmax_op(nn.log_softmax, log=True)
_softmax_backward_op(nn.softmax_backward_data, log=False)
_softmax_backward_op(nn.log_softmax_backward_data, log=True)


# class-index losses

class _Rows:
    """A class-indexed loss's input seen as rows: x (N, C, *) -> rows (n, *) with C classes at
    stride inner; a 1-D input is one row. The target is contiguous, one entry per row."""

    def __init__(self, x, target):
        self.x = creation.contiguous(x)
        if x.ndim == 1:
            self.C, self.inner, self.rows = x._shape[0], 1, 1
            target = views.reshape(target, (1,))
        else:
            self.C, self.inner, self.rows = _around(x._shape, 1)
        self.target = creation.contiguous(target)


def _finish(rows_loss, rows_w, res, n, mean, compute):
    """res (0-d) = sum(rows_loss) (/ sum(rows_w) for mean), on the device."""
    _kernel(_total_kernel, MEAN=mean, COMPUTE=compute, BLOCK=FLAT_BLOCK)((1,), rows_loss, rows_w, res, n)


def _total_weight(target, rows, C, inner, weight, ignore_index, compute, ct):
    """The total weight of the counted targets (0-d, compute dtype): the mean's denominator."""
    wrow = empty((max(rows, 1),), ct, target._device)
    total = empty((), ct, target._device)
    if rows:
        _kernel(_nll_rows_kernel, HAS_W=weight is not None, LOSS=False, COMPUTE=compute, BLOCK=FLAT_BLOCK)(
            _grid1(rows), wrow, target, weight if weight is not None else wrow, wrow, wrow, rows, C, inner,
            ignore_index)
    _finish(wrow, wrow, total, rows, False, compute)
    return total


def _loss_output(spec, reduction, rw, compute, ct, launch):
    """Run `launch(loss_rows, weight_rows)` then reduce as asked; returns the loss tensor."""
    res = empty(spec.shape, spec.dtype, spec.device)
    wrow = empty((max(rw.rows, 1),), ct, spec.device)
    if reduction == "none":
        if rw.rows:
            launch(res, wrow)
        return res
    lrow = empty((max(rw.rows, 1),), ct, spec.device)
    if rw.rows:
        launch(lrow, wrow)
    _finish(lrow, wrow, res, rw.rows, reduction == "mean", compute)
    return res


def _cross_entropy(x, target, weight, reduction, ignore_index, label_smoothing):
    spec = nn.cross_entropy.meta(x, target, weight, reduction, ignore_index, label_smoothing)
    rw = _Rows(x, target)
    compute, ct = _compute(spec.dtype)
    w = _dense(weight)
    ls = max(label_smoothing, 0.0)
    smooth = ls > 0 and rw.C > 0
    block = _row_block(rw.C)[1]

    def launch(lrow, wrow):
        _kernel(_ce_fwd_kernel, HAS_W=w is not None, SMOOTH=smooth, COMPUTE=compute, BLOCK=block)(
            (rw.rows,), rw.x, rw.target, w if w is not None else wrow, lrow, wrow, rw.C, rw.inner, ignore_index,
            1.0 - ls, ls / max(rw.C, 1))
    return _loss_output(spec, reduction, rw, compute, ct, launch)


def _cross_entropy_backward(grad, x, target, weight, reduction, ignore_index, label_smoothing):
    spec = nn.cross_entropy_backward.meta(grad, x, target, weight, reduction, ignore_index, label_smoothing)
    res = empty(spec.shape, spec.dtype, spec.device)
    rw = _Rows(x, target)
    if res.numel() == 0 or rw.rows == 0:
        return res
    compute, ct = _compute(spec.dtype)
    w = _dense(weight)
    g = creation.contiguous(grad)
    per_row = reduction == "none" and x.ndim > 1
    mean = reduction == "mean"
    total = _total_weight(rw.target, rw.rows, rw.C, rw.inner, w, ignore_index, compute, ct) if mean else g
    ls = max(label_smoothing, 0.0)
    single, block = _row_block(rw.C)
    _kernel(_ce_bwd_kernel, HAS_W=w is not None, SMOOTH=ls > 0, PER_ROW=per_row, MEAN=mean, COMPUTE=compute,
            BLOCK=block)((rw.rows,), rw.x, rw.target, w if w is not None else g, g, total, res, rw.C, rw.inner,
                         ignore_index, 1.0 - ls, ls / rw.C)
    return res


def _nll_loss(x, target, weight, reduction, ignore_index):
    spec = nn.nll_loss.meta(x, target, weight, reduction, ignore_index)
    rw = _Rows(x, target)
    compute, ct = _compute(spec.dtype)
    w = _dense(weight)

    def launch(lrow, wrow):
        _kernel(_nll_rows_kernel, HAS_W=w is not None, LOSS=True, COMPUTE=compute, BLOCK=FLAT_BLOCK)(
            _grid1(rw.rows), rw.x, rw.target, w if w is not None else wrow, lrow, wrow, rw.rows, rw.C, rw.inner,
            ignore_index)
    return _loss_output(spec, reduction, rw, compute, ct, launch)


def _nll_loss_backward(grad, target, weight, reduction, ignore_index, shape):
    spec = nn.nll_loss_backward.meta(grad, target, weight, reduction, ignore_index, shape)
    res = creation.full(spec.shape, 0, spec.dtype, device=spec.device)
    shape = tuple(shape)
    if res.numel() == 0:
        return res
    if len(shape) == 1:
        C, inner, rows = shape[0], 1, 1
        target = views.reshape(target, (1,))
    else:
        C, inner, rows = _around(shape, 1)
    t = creation.contiguous(target)
    compute, ct = _compute(spec.dtype)
    w = _dense(weight)
    g = creation.contiguous(grad)
    mean = reduction == "mean"
    total = _total_weight(t, rows, C, inner, w, ignore_index, compute, ct) if mean else g
    _kernel(_nll_bwd_kernel, HAS_W=w is not None, PER_ROW=reduction == "none" and len(shape) > 1, MEAN=mean,
            COMPUTE=compute, BLOCK=FLAT_BLOCK)(_grid1(rows), t, w if w is not None else g, g, total, res, rows, C,
                                               inner, ignore_index)
    return res


def _binary_cross_entropy(x, target, weight):
    spec = nn.binary_cross_entropy.meta(x, target, weight)
    res = empty(spec.shape, spec.dtype, spec.device)
    n = res.numel()
    if n == 0:
        return res
    xc, tc = creation.contiguous(x), creation.contiguous(target)
    w = None if weight is None else creation.contiguous(views.expand(weight, tuple(x._shape)))
    _kernel(_bce_kernel, HAS_W=w is not None, COMPUTE=_compute(spec.dtype)[0], BLOCK=FLAT_BLOCK)(
        _grid1(n), xc, tc, w if w is not None else xc, res, n)
    return res


nn.cross_entropy.register(CUDA, planned(_cross_entropy))
nn.cross_entropy_backward.register(CUDA, planned(_cross_entropy_backward))
nn.nll_loss.register(CUDA, planned(_nll_loss))
nn.nll_loss_backward.register(CUDA, planned(_nll_loss_backward))
nn.binary_cross_entropy.register(CUDA, _binary_cross_entropy)


# normalisation

class _Layout:
    """A norm's rows: `rows` of `L` contiguous elements, the affine parameter of element c of row r
    at (r % groups) * cpg + c // hw."""

    def __init__(self, rows, L, groups=1, cpg=0, hw=1):
        self.rows, self.L, self.groups, self.cpg, self.hw = rows, L, groups, cpg, hw


def _norm_forward(x, weight, bias, eps, lay, center):
    res = empty(x._shape, x._dtype, x._device)
    if lay.rows == 0 or lay.L == 0:
        return res
    xc, w, b = creation.contiguous(x), _dense(weight), _dense(bias)
    single, block = _row_block(lay.L)
    _kernel(_norm_fwd_kernel, HAS_W=w is not None, HAS_B=b is not None, CENTER=center, SINGLE=single,
            COMPUTE=_compute(x._dtype)[0], BLOCK=block)(
        (lay.rows,), xc, w if w is not None else xc, b if b is not None else xc, res, lay.L, lay.groups, lay.cpg,
        lay.hw, float(eps))
    return res


def _half(t, i):
    """t[i] of a (2, ...) buffer, as a view."""
    return views.select(t, 0, i)


def _zeros_like(t):
    return creation.full(tuple(t._shape), 0, t._dtype, device=t._device)


def _norm_rows_backward(grad, x, weight, eps, lay, center, need_dx):
    """(dx or None, xc, g, stats): dx and the per-row statistics of a row norm, stats (2, rows)
    holding each row's mean, then each row's rstd (one allocation: the backward's hot path)."""
    compute, ct = _compute(x._dtype)
    xc, g, w = creation.contiguous(x), creation.contiguous(grad), _dense(weight)
    stats = empty((2, lay.rows), ct, x._device)
    dx = empty(x._shape, x._dtype, x._device) if need_dx else None
    single, block = _row_block(lay.L)
    _kernel(_norm_bwd_kernel, HAS_W=w is not None, CENTER=center, NEED_DX=need_dx, SINGLE=single, COMPUTE=compute,
            BLOCK=block)((lay.rows,), g, xc, w if w is not None else xc, dx if dx is not None else xc, stats,
                         lay.rows, lay.L, lay.groups, lay.cpg, lay.hw, float(eps))
    return dx, xc, g, stats


def _col_blocks(K, L):
    """(BLOCK_K, BLOCK_L) of a column sum of (K, L) parts."""
    block_l = min(128, launcher.next_power_of_2(L))
    return min(launcher.next_power_of_2(K), 4096 // block_l), block_l


def _col_sum(parts, K, L, out, count=1):
    """out = parts (K, L) summed over K, / count."""
    block_k, block_l = _col_blocks(K, L)
    _kernel(_col_sum_kernel, COMPUTE=_compute(out._dtype)[0], BLOCK_K=block_k, BLOCK_L=block_l)(
        _grid1(L, block_l), parts, out, K, L, count)
    return out


def _split(n, parts=PARTS):
    """(chunks, per chunk) cutting n items into at most `parts` chunks."""
    per = max(1, launcher.cdiv(n, parts))
    return max(1, launcher.cdiv(n, per)), per


def _row_norm_backward(grad, x, weight, bias, eps, k, center, needs):
    """layer_norm / rms_norm backward over the last k dims: (dx, dweight, dbias)."""
    L = math.prod(x._shape[x.ndim - k:])
    rows = math.prod(x._shape[:x.ndim - k])
    lay = _Layout(rows, L)
    need_dx = bool(needs[0])
    need_w = len(needs) > 1 and needs[1] and weight is not None
    need_b = len(needs) > 2 and needs[2] and bias is not None
    if rows == 0 or L == 0:
        dx = empty(x._shape, x._dtype, x._device) if need_dx else None
        return dx, _zeros_like(weight) if need_w else None, _zeros_like(bias) if need_b else None
    dx, xc, g, stats = _norm_rows_backward(grad, x, weight, eps, lay, center, need_dx)
    if not (need_w or need_b):
        return dx, None, None
    compute, ct = _compute(x._dtype)
    K, per = _split(rows)
    parts = empty((2, K, L), ct, x._device)  # per chunk of rows: sums of g * xhat, then of g
    block = min(FLAT_BLOCK, max(128, launcher.next_power_of_2(L)))  # no idle lanes for narrow rows
    _kernel(_col_parts_kernel, COMPUTE=compute, BLOCK=block)(
        (K, launcher.cdiv(L, block)), g, xc, stats, parts, rows, L, per, K * L)
    dw = empty(weight._shape, weight._dtype, x._device) if need_w else None
    db = empty(bias._shape, bias._dtype, x._device) if need_b else None
    if need_w and need_b:  # both column sums in one launch
        src, out0, out1, n = parts, dw, db, 2
    else:
        src, out0, out1, n = (parts, dw, dw, 1) if need_w else (_half(parts, 1), db, db, 1)
    block_k, block_l = _col_blocks(K, L)
    _kernel(_col_sum2_kernel, COMPUTE=compute, BLOCK_K=block_k, BLOCK_L=block_l)(
        (launcher.cdiv(L, block_l), n), src, out0, out1, K, L, K * L)
    return dx, dw, db


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    nn.layer_norm.meta(x, normalized_shape, weight, bias, eps)
    k = len(normalized_shape)
    lay = _Layout(math.prod(x._shape[:x.ndim - k]), math.prod(x._shape[x.ndim - k:]))
    return _norm_forward(x, weight, bias, eps, lay, True)


def _layer_norm_backward(grad, x, normalized_shape, weight, bias, eps, needs):
    return _row_norm_backward(grad, x, weight, bias, eps, len(normalized_shape), True, needs)


def _rms_norm(x, normalized_shape, weight=None, eps=None):
    nn.rms_norm.meta(x, normalized_shape, weight, eps)
    if x._dtype.is_complex:  # torch's composite (backends/cuda/complex.py)
        from vibetensor.backends.cuda import complex as cx
        return cx.rms_norm(x, normalized_shape, weight, eps)
    k = len(normalized_shape)
    lay = _Layout(math.prod(x._shape[:x.ndim - k]), math.prod(x._shape[x.ndim - k:]))
    return _norm_forward(x, weight, None, nn.rms_eps(x, eps), lay, False)


def _rms_norm_backward(grad, x, normalized_shape, weight, eps, needs):
    dx, dw, _ = _row_norm_backward(grad, x, weight, None, nn.rms_eps(x, eps), len(normalized_shape), False,
                                   tuple(needs) + (False,))
    return dx, dw


def _group_layout(x, num_groups):
    n, c = x._shape[0], x._shape[1]
    hw = math.prod(x._shape[2:])
    return _Layout(n * num_groups, c // num_groups * hw, num_groups, c // num_groups, hw)


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    nn.group_norm.meta(x, num_groups, weight, bias, eps)
    return _norm_forward(x, weight, bias, eps, _group_layout(x, num_groups), True)


def _channel_sums(x, g, mean, rstd, sn, cpg, mode, count=1):
    """Per-channel sums over (N, HW) of x (N, C, HW), divided by count: mode 0 x, 1 (x - mean)^2,
    2 (g xhat, g); (C,) tensors in the compute dtype."""
    compute, ct = _compute(x._dtype)
    N, C = x._shape[0], x._shape[1]
    HW = math.prod(x._shape[2:])
    K, per = _split(N, max(1, 1024 // max(C, 1)))
    p1 = empty((K, C), ct, x._device)
    p2 = empty((K, C), ct, x._device) if mode == 2 else p1
    block = min(FLAT_BLOCK, max(16, launcher.next_power_of_2(HW)))
    _kernel(_chan_parts_kernel, MODE=mode, COMPUTE=compute, BLOCK=block)(
        (C, K), x, g if g is not None else x, mean if mean is not None else x, rstd if rstd is not None else x,
        p1, p2, N, C, HW, sn, cpg, per)
    s1 = _col_sum(p1, K, C, empty((C,), ct, x._device), count)
    s2 = _col_sum(p2, K, C, empty((C,), ct, x._device)) if mode == 2 else None
    return s1, s2


def _as_param(s, param):
    """A (C,) compute-dtype sum as a gradient of `param`'s shape and dtype."""
    return views.reshape(creation.to(s, param._dtype, s._device), tuple(param._shape))


def _group_norm_backward(grad, x, num_groups, weight, bias, eps, needs):
    lay = _group_layout(x, num_groups)
    need_dx = bool(needs[0])
    need_w = needs[1] and weight is not None
    need_b = needs[2] and bias is not None
    if x.numel() == 0:
        dx = empty(x._shape, x._dtype, x._device) if need_dx else None
        return dx, _zeros_like(weight) if need_w else None, _zeros_like(bias) if need_b else None
    dx, xc, g, stats = _norm_rows_backward(grad, x, weight, eps, lay, True, need_dx)
    mean, rstd = _half(stats, 0), _half(stats, 1)
    dw = db = None
    if need_w or need_b:
        sgx, sg = _channel_sums(xc, g, mean, rstd, num_groups, lay.cpg, 2)
        dw = _as_param(sgx, weight) if need_w else None
        db = _as_param(sg, bias) if need_b else None
    return dx, dw, db


def _bn_statistics(xc, running_mean, running_var, training, momentum, eps):
    """(mean, rstd) per channel in the compute dtype: the batch's (moving the running stats toward
    them) when training, else the running ones."""
    compute, ct = _compute(xc._dtype)
    C = xc._shape[1]
    count = xc.numel() // C
    rstd = empty((C,), ct, xc._device)
    if training:
        mean, _ = _channel_sums(xc, None, None, None, 0, 1, 0, count)
        var, _ = _channel_sums(xc, None, mean, None, 0, 1, 1, count)
    else:
        mean, var = empty((C,), ct, xc._device), None
    rm, rv = running_mean, running_var
    _kernel(_bn_stats_kernel, TRAIN=bool(training), HAS_RM=rm is not None, HAS_RV=rv is not None,
            COMPUTE=compute, BLOCK=FLAT_BLOCK)(
        _grid1(C), mean, var if var is not None else mean, rstd, rm if rm is not None else mean,
        rv if rv is not None else mean, C, float(eps), 0.0 if momentum is None else float(momentum),
        count / max(count - 1, 1))
    for t in (rm, rv):
        if training and t is not None:
            bump_version(t)
    return mean, rstd


def _batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps):
    spec = nn.batch_norm.meta(x, weight, bias, running_mean, running_var, training, momentum, eps)
    res = empty(spec.shape, spec.dtype, spec.device)
    n = x.numel()
    if n == 0:
        return res
    xc, w, b = creation.contiguous(x), _dense(weight), _dense(bias)
    mean, rstd = _bn_statistics(xc, running_mean, running_var, training, momentum, eps)
    C = x._shape[1]
    _kernel(_bn_apply_kernel, BACKWARD=False, TRAIN=bool(training), HAS_W=w is not None, HAS_B=b is not None,
            COMPUTE=_compute(x._dtype)[0], BLOCK=FLAT_BLOCK)(
        _grid1(n), xc, xc, w if w is not None else xc, b if b is not None else xc, mean, rstd, mean, mean, res, n,
        C, n // C // x._shape[0], n // C)
    return res


def _batch_norm_backward(grad, x, weight, bias, running_mean, running_var, training, momentum, eps, needs):
    need_dx = bool(needs[0])
    need_w = needs[1] and weight is not None
    need_b = needs[2] and bias is not None
    n = x.numel()
    if n == 0:
        dx = empty(x._shape, x._dtype, x._device) if need_dx else None
        return dx, _zeros_like(weight) if need_w else None, _zeros_like(bias) if need_b else None
    xc, g, w = creation.contiguous(x), creation.contiguous(grad), _dense(weight)
    C = x._shape[1]
    # the statistics again, without touching the running ones (the forward already moved them)
    mean, rstd = _bn_statistics(xc, None if training else running_mean, None if training else running_var,
                                training, momentum, eps)
    sgx, sg = _channel_sums(xc, g, mean, rstd, 0, 1, 2)
    dx = None
    if need_dx:
        dx = empty(x._shape, x._dtype, x._device)
        _kernel(_bn_apply_kernel, BACKWARD=True, TRAIN=bool(training), HAS_W=w is not None, HAS_B=False,
                COMPUTE=_compute(x._dtype)[0], BLOCK=FLAT_BLOCK)(
            _grid1(n), xc, g, w if w is not None else xc, xc, mean, rstd, sg, sgx, dx, n, C, n // C // x._shape[0],
            n // C)
    return dx, _as_param(sgx, weight) if need_w else None, _as_param(sg, bias) if need_b else None


nn.layer_norm.register(CUDA, planned(_layer_norm))
nn.layer_norm_backward.register(CUDA, planned(_layer_norm_backward))
nn.rms_norm.register(CUDA, planned(_rms_norm))
nn.rms_norm_backward.register(CUDA, planned(_rms_norm_backward))
nn.group_norm.register(CUDA, _group_norm)
nn.group_norm_backward.register(CUDA, _group_norm_backward)
nn.batch_norm.register(CUDA, _batch_norm)
nn.batch_norm_backward.register(CUDA, _batch_norm_backward)


# glu, prelu

def _glu(x, dim):
    spec = nn.glu.meta(x, dim)
    res = empty(spec.shape, spec.dtype, spec.device)
    n = res.numel()
    if n == 0:
        return res
    d = dim % x.ndim
    half = x._shape[d] // 2 * math.prod(x._shape[d + 1:])
    _kernel(_glu_kernel, COMPUTE=_compute(spec.common)[0], BLOCK=FLAT_BLOCK)(
        _grid1(n), creation.contiguous(x), res, n, half)
    return res


def _prelu(x, weight):
    spec = nn.prelu.meta(x, weight)
    res = empty(spec.shape, spec.dtype, spec.device)
    n = res.numel()
    if n == 0:
        return res
    C = weight.numel()
    inner = math.prod(x._shape[2:]) if C > 1 else 1
    _kernel(_prelu_kernel, COMPUTE=_compute(spec.dtype)[0], BLOCK=FLAT_BLOCK)(
        _grid1(n), creation.contiguous(x), creation.contiguous(weight), res, n, C, inner)
    return res


nn.glu.register(CUDA, _glu)
nn.prelu.register(CUDA, _prelu)
