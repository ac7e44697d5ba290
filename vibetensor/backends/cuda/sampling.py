"""CUDA kernels of grid sampling: grid_sampler (torch's grid_sample) and grid_sampler_backward, 2-d and
3-d, bilinear / nearest / bicubic (2-d), padding zeros / border / reflection, align_corners.

The arithmetic is torch's CUDA kernels' (GridSampler.cuh), step for step: coordinates and sums in the
accumulation type (float32 for the half types, float64 for float64); a coordinate that is non-finite
or beyond int range becomes -100 (out of bounds: reads zero); the forward clip is fmax/fmin (NaN clips
to 0) while the backward's clip_coordinates_set_grad lets NaN through, as torch's do.

One program handles BLOCK output locations and loops over the channels, so the taps and weights are
computed once per location. The backward adds the input gradient with atomics into a zeroed
accumulator (float32 for the half types) and writes each location's grid gradient once. 2-d runs as
3-d with one depth plane and no z taps (NDIM=2), so one kernel serves both.
"""
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import conv as ops
from vibetensor.ops import creation
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
BLOCK = 128
_MODE = {"bilinear": 0, "nearest": 1, "bicubic": 2}
_PAD = {"zeros": 0, "border": 1, "reflection": 2}
_ACC = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64}
_ACC_DT = {dt.float16: dt.float32, dt.bfloat16: dt.float32, dt.float32: dt.float32, dt.float64: dt.float64}


# -- coordinates (device) -------------------------------------------------------------------------------------------
# `size` is the dim's length as a float tensor of the accumulation type (never a specialised constant).

@triton.jit
def _unnormalize(coord, size, align):
    """torch's grid_sampler_unnormalize: [-1, 1] -> pixel coordinates."""
    return tl.where(align != 0, ((coord + 1) * 0.5) * (size - 1), ((coord + 1) * size - 1) * 0.5)


@triton.jit
def _unnormalize_grad(size, align):
    """d _unnormalize / d coord."""
    return tl.where(align != 0, (size - 1) * 0.5, size * 0.5)


@triton.jit
def _clip(c, size):
    """torch's clip_coordinates: min(size - 1, fmax(c, 0)) (NaN -> 0)."""
    c = tl.where(c > 0, c, 0.0)
    return tl.where(c < size - 1, c, size - 1)


@triton.jit
def _clip_grad(c, size):
    """torch's clip_coordinates_set_grad: (clipped c, d clipped / d c); NaN passes with derivative 1."""
    low = c <= 0
    high = c >= size - 1
    out = tl.where(low, 0.0, tl.where(high, size - 1, c))
    return out, tl.where(low | high, 0.0, 1.0)


@triton.jit
def _reflect_grad(c, low, span):
    """torch's reflect_coordinates_set_grad about [low, low + span] (twice_low / 2, (twice_high -
    twice_low) / 2): (reflected c, d reflected / d c); a span of 0 gives (0, 0)."""
    d = c - low
    mult = tl.where(d < 0, -1.0, 1.0)
    d = tl.abs(d)
    safe_span = tl.where(span == 0, 1.0, span)
    # IEEE division and C's fmod: Triton's float `/` is approximate and its `%` is x - floor(x / y) * y,
    # either of which can flip the parity at an exact multiple of the span (a grid value of +-1)
    extra = libdevice.fmod(d, safe_span)
    flips = tl.floor(libdevice.div_rn(d, safe_span))
    even = libdevice.fmod(flips, tl.zeros_like(flips) + 2.0) == 0
    out = tl.where(even, extra + low, span - extra + low)
    grad = tl.where(even, mult, -mult)
    return tl.where(span == 0, 0.0, out), tl.where(span == 0, 0.0, grad)


@triton.jit
def _reflect_bounds(c, size, align):
    """(low, span) of the reflection: [0, size - 1] with align_corners, else [-0.5, size - 0.5]."""
    low = tl.where(align != 0, tl.zeros_like(c), tl.zeros_like(c) - 0.5)
    return low, tl.where(align != 0, size - 1, size)


@triton.jit
def _safe(c):
    """torch's safe_downgrade_to_int_range: non-finite or beyond int32 -> -100 (out of bounds)."""
    bad = (c != c) | (c > 2147483646.0) | (c < -2147483648.0)
    return tl.where(bad, -100.0, c)


@triton.jit
def _pad(c, size, pad, align):
    """torch's compute_coordinates: the padding mode (0 zeros, 1 border, 2 reflection) applied to a pixel
    coordinate."""
    low, span = _reflect_bounds(c, size, align)
    reflected, _ = _reflect_grad(c, low, span)
    c = tl.where(pad == 1, _clip(c, size), tl.where(pad == 2, _clip(reflected, size), c))
    return _safe(c)


@triton.jit
def _source_grad(coord, size, pad, align):
    """torch's grid_sampler_compute_source_index_set_grad: (pixel coordinate, d it / d grid)."""
    c = _unnormalize(coord, size, align)
    g = _unnormalize_grad(size, align)
    border, g_border = _clip_grad(c, size)
    low, span = _reflect_bounds(c, size, align)
    reflected, g_reflect = _reflect_grad(c, low, span)
    reflected, g_clip = _clip_grad(reflected, size)
    c = tl.where(pad == 1, border, tl.where(pad == 2, reflected, c))
    g = tl.where(pad == 1, g * g_border, tl.where(pad == 2, g * g_reflect * g_clip, g))
    return _safe(c), g


@triton.jit
def _linear_taps(c):
    """Bilinear taps along one dim: (lower index (int64), weight of the lower, weight of the upper)."""
    f = tl.floor(c)
    return f.to(tl.int64), (f + 1) - c, c - f


@triton.jit
def _inside(i, n):
    return (i >= 0) & (i < n)


@triton.jit
def _cubic_coefficients(t):
    """torch's get_cubic_upsample_coefficients (A = -0.75): weights of taps -1, 0, 1, 2."""
    x2 = 1.0 - t
    c0 = ((-0.75 * (t + 1.0) + 3.75) * (t + 1.0) - 6.0) * (t + 1.0) + 3.0
    c1 = ((1.25 * t - 2.25) * t) * t + 1
    c2 = ((1.25 * x2 - 2.25) * x2) * x2 + 1
    c3 = ((-0.75 * (x2 + 1.0) + 3.75) * (x2 + 1.0) - 6.0) * (x2 + 1.0) + 3.0
    return c0, c1, c2, c3


@triton.jit
def _cubic_coefficients_grad(t):
    """torch's get_cubic_coefficients_grad: minus the derivatives of the weights in t."""
    x = -1.0 - t
    c0 = (2.25 * x + 7.5) * x + 6.0
    x = -t
    c1 = (-3.75 * x - 4.5) * x
    x = 1.0 - t
    c2 = (3.75 * x - 4.5) * x
    x = 2.0 - t
    c3 = (-2.25 * x + 7.5) * x - 6.0
    return c0, c1, c2, c3


@triton.jit
def _bounded(c, size, n, pad, align):
    """A cubic tap's index after padding (torch's get_value_bounded: (int) truncation) and whether it
    is inside."""
    i = _pad(c, size, pad, align).to(tl.int64)
    return i, _inside(i, n)


# -- forward --------------------------------------------------------------------------------------------------------

@triton.jit
def _plane(acc, ptr, zo, zok, wz, y0, y1, vy0, vy1, wy0, wy1, x0, x1, vx0, vx1, wx0, wx1, sH, sW, ACC: tl.constexpr):
    """acc + the 4 bilinear taps of one depth plane, in torch's order (nw, ne, sw, se)."""
    acc += tl.load(ptr + zo + y0 * sH + x0 * sW, mask=zok & vy0 & vx0, other=0).to(ACC) * (wx0 * wy0 * wz)
    acc += tl.load(ptr + zo + y0 * sH + x1 * sW, mask=zok & vy0 & vx1, other=0).to(ACC) * (wx1 * wy0 * wz)
    acc += tl.load(ptr + zo + y1 * sH + x0 * sW, mask=zok & vy1 & vx0, other=0).to(ACC) * (wx0 * wy1 * wz)
    acc += tl.load(ptr + zo + y1 * sH + x1 * sW, mask=zok & vy1 & vx1, other=0).to(ACC) * (wx1 * wy1 * wz)
    return acc


@triton.jit
def _cubic_row(ptr, yo, vy, xo0, xo1, xo2, xo3, vx0, vx1, vx2, vx3, c0, c1, c2, c3, ACC: tl.constexpr):
    """torch's cubic_interp1d of the 4 taps of one row."""
    v0 = tl.load(ptr + yo + xo0, mask=vy & vx0, other=0).to(ACC)
    v1 = tl.load(ptr + yo + xo1, mask=vy & vx1, other=0).to(ACC)
    v2 = tl.load(ptr + yo + xo2, mask=vy & vx2, other=0).to(ACC)
    v3 = tl.load(ptr + yo + xo3, mask=vy & vx3, other=0).to(ACC)
    return v0 * c0 + v1 * c1 + v2 * c2 + v3 * c3


@triton.jit
def _sample_point(grid, total, P, OH, OW, gN, gD, gH, gW, gK, ID, IH, IW, flags, NDIM: tl.constexpr,
                  ACC: tl.constexpr, BLOCK: tl.constexpr):
    """What forward and backward both start from, per output location i = (n, p) of this program:
    (pad, align, i, mask, n, p, zero, width, height, depth (as ACC vectors), grid x, y, z (z = 0 in 2-d))."""
    pad, align = (flags - 2) // 2, (flags - 2) % 2
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < total
    n = i // P
    p = i % P
    ow = p % OW
    oh = (p // OW) % OH
    od = p // (OW * OH)
    g = grid + n * gN + od * gD + oh * gH + ow * gW
    zero = tl.zeros((BLOCK,), ACC)
    x = tl.load(g, mask=mask, other=0).to(ACC)
    y = tl.load(g + gK, mask=mask, other=0).to(ACC)
    if NDIM == 3:
        z = tl.load(g + 2 * gK, mask=mask, other=0).to(ACC)
    else:
        z = zero
    return pad, align, i, mask, n, p, zero, zero + IW, zero + IH, zero + ID, x, y, z


@triton.jit
def _cubic_taps(f, size, n, pad, align):
    """The 4 bicubic taps f-1 .. f+2 along one dim, each padded on its own: 4 indices, 4 valid flags."""
    i0, v0 = _bounded(f - 1, size, n, pad, align)
    i1, v1 = _bounded(f, size, n, pad, align)
    i2, v2 = _bounded(f + 1, size, n, pad, align)
    i3, v3 = _bounded(f + 2, size, n, pad, align)
    return i0, i1, i2, i3, v0, v1, v2, v3


@triton.jit
def _nearest(ix, iy, iz, IW, IH, ID, mask):
    """Nearest source voxel (round half to even, as nearbyint) and whether it lies inside."""
    xi = libdevice.rint(ix).to(tl.int64)
    yi = libdevice.rint(iy).to(tl.int64)
    zi = libdevice.rint(iz).to(tl.int64)
    return xi, yi, zi, mask & _inside(xi, IW) & _inside(yi, IH) & _inside(zi, ID)


@triton.jit
def _linear_corners(ix, iy, iz, IW, IH, ID, mask, zero, NDIM: tl.constexpr):
    """Bi/trilinear corners: per dim the lower index, the two weights and the two inside flags (2-d:
    one z plane of weight 1; the z flags carry the mask)."""
    x0, wx0, wx1 = _linear_taps(ix)
    y0, wy0, wy1 = _linear_taps(iy)
    z0, wz0, wz1 = _linear_taps(iz)
    if NDIM == 2:
        wz0 = zero + 1.0
    vx0, vx1 = _inside(x0, IW), _inside(x0 + 1, IW)
    vy0, vy1 = _inside(y0, IH), _inside(y0 + 1, IH)
    vz0, vz1 = _inside(z0, ID) & mask, _inside(z0 + 1, ID) & mask
    return x0, wx0, wx1, vx0, vx1, y0, wy0, wy1, vy0, vy1, z0, wz0, wz1, vz0, vz1


@triton.jit
def _grid_sample_kernel(inp, grid, out, total, C, P, ID, IH, IW, OH, OW, sN, sC, sD, sH, sW, gN, gD, gH, gW, gK,
                        flags, MODE: tl.constexpr, NDIM: tl.constexpr,
                        ACC: tl.constexpr, BLOCK: tl.constexpr):
    """out (N, C, P) contiguous, P = OD * OH * OW; input (N, C, ID, IH, IW) and grid (N, OD, OH, OW, NDIM)
    strided (2-d: ID = 1, sD = gD = 0); flags = 2 + 2 * padding mode + align_corners (see _flags)."""
    pad, align, i, mask, n, p, zero, wf, hf, df, x, y, z = _sample_point(
        grid, total, P, OH, OW, gN, gD, gH, gW, gK, ID, IH, IW, flags, NDIM, ACC, BLOCK)
    src = inp + n * sN
    dst = out + n * C * P + p
    if MODE == 2:  # bicubic (2-d): 4 x 4 taps, each index padded on its own
        ix = _unnormalize(x, wf, align)
        iy = _unnormalize(y, hf, align)
        fx = tl.floor(ix)
        fy = tl.floor(iy)
        cx0, cx1, cx2, cx3 = _cubic_coefficients(ix - fx)
        cy0, cy1, cy2, cy3 = _cubic_coefficients(iy - fy)
        xi0, xi1, xi2, xi3, vx0, vx1, vx2, vx3 = _cubic_taps(fx, wf, IW, pad, align)
        yi0, yi1, yi2, yi3, vy0, vy1, vy2, vy3 = _cubic_taps(fy, hf, IH, pad, align)
        xo0, xo1, xo2, xo3 = xi0 * sW, xi1 * sW, xi2 * sW, xi3 * sW
        vx0, vx1, vx2, vx3 = vx0 & mask, vx1 & mask, vx2 & mask, vx3 & mask
        for c in range(C):
            r0 = _cubic_row(src, yi0 * sH, vy0, xo0, xo1, xo2, xo3, vx0, vx1, vx2, vx3, cx0, cx1, cx2, cx3, ACC)
            r1 = _cubic_row(src, yi1 * sH, vy1, xo0, xo1, xo2, xo3, vx0, vx1, vx2, vx3, cx0, cx1, cx2, cx3, ACC)
            r2 = _cubic_row(src, yi2 * sH, vy2, xo0, xo1, xo2, xo3, vx0, vx1, vx2, vx3, cx0, cx1, cx2, cx3, ACC)
            r3 = _cubic_row(src, yi3 * sH, vy3, xo0, xo1, xo2, xo3, vx0, vx1, vx2, vx3, cx0, cx1, cx2, cx3, ACC)
            tl.store(dst, (r0 * cy0 + r1 * cy1 + r2 * cy2 + r3 * cy3).to(out.dtype.element_ty), mask=mask)
            src += sC
            dst += P
    else:
        ix = _pad(_unnormalize(x, wf, align), wf, pad, align)
        iy = _pad(_unnormalize(y, hf, align), hf, pad, align)
        if NDIM == 3:
            iz = _pad(_unnormalize(z, df, align), df, pad, align)
        else:
            iz = zero
        if MODE == 1:  # nearest
            xi, yi, zi, ok = _nearest(ix, iy, iz, IW, IH, ID, mask)
            off = zi * sD + yi * sH + xi * sW
            for c in range(C):
                v = tl.load(src + off, mask=ok, other=0)
                tl.store(dst, v.to(out.dtype.element_ty), mask=mask)
                src += sC
                dst += P
        else:  # bilinear / trilinear
            x0, wx0, wx1, vx0, vx1, y0, wy0, wy1, vy0, vy1, z0, wz0, wz1, vz0, vz1 = _linear_corners(
                ix, iy, iz, IW, IH, ID, mask, zero, NDIM)
            x1, y1, z1 = x0 + 1, y0 + 1, z0 + 1
            for c in range(C):
                acc = _plane(zero, src, z0 * sD, vz0, wz0, y0, y1, vy0, vy1, wy0, wy1, x0, x1, vx0, vx1, wx0, wx1,
                             sH, sW, ACC)
                if NDIM == 3:
                    acc = _plane(acc, src, z1 * sD, vz1, wz1, y0, y1, vy0, vy1, wy0, wy1, x0, x1, vx0, vx1, wx0,
                                 wx1, sH, sW, ACC)
                tl.store(dst, acc.to(out.dtype.element_ty), mask=mask)
                src += sC
                dst += P


# -- backward -------------------------------------------------------------------------------------------------------

@triton.jit
def _corner_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y, gy_off, vy, wy, sy, x, vx, wx, sx,
                     sH, sW, GW, ACC: tl.constexpr):
    """One trilinear corner: its share of the input gradient (atomic) and of the grid gradient;
    sx, sy, sz are -1 for a lower tap, +1 for an upper one (torch's signs)."""
    ok = zok & vy & vx
    tl.atomic_add(gptr + gzo + gy_off + x, (wx * wy * wz) * go, mask=ok)
    v = tl.load(ptr + zo + y * sH + x * sW, mask=ok, other=0).to(ACC)
    gix += sx * v * (wy * wz) * go
    giy += sy * v * (wx * wz) * go
    giz += sz * v * (wx * wy) * go
    return gix, giy, giz


@triton.jit
def _plane_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y0, y1, vy0, vy1, wy0, wy1,
                    x0, x1, vx0, vx1, wx0, wx1, sH, sW, GW, ACC: tl.constexpr):
    """The 4 corners of one depth plane, in torch's order (nw, ne, sw, se)."""
    gix, giy, giz = _corner_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y0, y0 * GW, vy0, wy0, -1.0,
                                     x0, vx0, wx0, -1.0, sH, sW, GW, ACC)
    gix, giy, giz = _corner_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y0, y0 * GW, vy0, wy0, -1.0,
                                     x1, vx1, wx1, 1.0, sH, sW, GW, ACC)
    gix, giy, giz = _corner_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y1, y1 * GW, vy1, wy1, 1.0,
                                     x0, vx0, wx0, -1.0, sH, sW, GW, ACC)
    gix, giy, giz = _corner_backward(gix, giy, giz, go, ptr, gptr, zo, gzo, zok, wz, sz, y1, y1 * GW, vy1, wy1, 1.0,
                                     x1, vx1, wx1, 1.0, sH, sW, GW, ACC)
    return gix, giy, giz


@triton.jit
def _cubic_column_backward(gix, giy, go, ptr, gptr, xi, vx, cx, gcx, yi0, yi1, yi2, yi3, vy0, vy1, vy2, vy3,
                           cy0, cy1, cy2, cy3, gcy0, gcy1, gcy2, gcy3, sH, sW, GW, ACC: tl.constexpr):
    """Bicubic x tap i against its 4 y taps j (torch's inner loop)."""
    v = tl.load(ptr + yi0 * sH + xi * sW, mask=vx & vy0, other=0).to(ACC)
    tl.atomic_add(gptr + yi0 * GW + xi, go * cx * cy0, mask=vx & vy0)
    gix -= v * gcx * cy0 * go
    giy -= v * gcy0 * cx * go
    v = tl.load(ptr + yi1 * sH + xi * sW, mask=vx & vy1, other=0).to(ACC)
    tl.atomic_add(gptr + yi1 * GW + xi, go * cx * cy1, mask=vx & vy1)
    gix -= v * gcx * cy1 * go
    giy -= v * gcy1 * cx * go
    v = tl.load(ptr + yi2 * sH + xi * sW, mask=vx & vy2, other=0).to(ACC)
    tl.atomic_add(gptr + yi2 * GW + xi, go * cx * cy2, mask=vx & vy2)
    gix -= v * gcx * cy2 * go
    giy -= v * gcy2 * cx * go
    v = tl.load(ptr + yi3 * sH + xi * sW, mask=vx & vy3, other=0).to(ACC)
    tl.atomic_add(gptr + yi3 * GW + xi, go * cx * cy3, mask=vx & vy3)
    gix -= v * gcx * cy3 * go
    giy -= v * gcy3 * cx * go
    return gix, giy


@triton.jit
def _grid_sample_backward_kernel(gout, inp, grid, ginp, ggrid, total, C, P, ID, IH, IW, OH, OW,
                                 sN, sC, sD, sH, sW, gN, gD, gH, gW, gK, flags,
                                 MODE: tl.constexpr, NDIM: tl.constexpr,
                                 ACC: tl.constexpr, BLOCK: tl.constexpr):
    """gout (N, C, P) contiguous; ginp (N, C, ID, IH, IW) contiguous accumulator (+= with atomics);
    ggrid (N, P, NDIM) contiguous, written once per location; flags as the forward's."""
    pad, align, i, mask, n, p, zero, wf, hf, df, x, y, z = _sample_point(
        grid, total, P, OH, OW, gN, gD, gH, gW, gK, ID, IH, IW, flags, NDIM, ACC, BLOCK)
    GW = IW                 # ginp's row stride
    plane = IH * IW         # ginp's depth stride
    S = ID * plane          # ginp's channel stride
    src = inp + n * sN
    gsrc = ginp + n * C * S
    go_ptr = gout + n * C * P + p
    gix, giy, giz = zero, zero, zero
    if MODE == 2:  # bicubic (2-d)
        ix = _unnormalize(x, wf, align)
        iy = _unnormalize(y, hf, align)
        mx = _unnormalize_grad(wf, align)
        my = _unnormalize_grad(hf, align)
        mz = zero
        fx = tl.floor(ix)
        fy = tl.floor(iy)
        cx0, cx1, cx2, cx3 = _cubic_coefficients(ix - fx)
        cy0, cy1, cy2, cy3 = _cubic_coefficients(iy - fy)
        gcx0, gcx1, gcx2, gcx3 = _cubic_coefficients_grad(ix - fx)
        gcy0, gcy1, gcy2, gcy3 = _cubic_coefficients_grad(iy - fy)
        xi0, xi1, xi2, xi3, vx0, vx1, vx2, vx3 = _cubic_taps(fx, wf, IW, pad, align)
        yi0, yi1, yi2, yi3, vy0, vy1, vy2, vy3 = _cubic_taps(fy, hf, IH, pad, align)
        vx0, vx1, vx2, vx3 = vx0 & mask, vx1 & mask, vx2 & mask, vx3 & mask
        for c in range(C):
            go = tl.load(go_ptr, mask=mask, other=0).to(ACC)
            gix, giy = _cubic_column_backward(gix, giy, go, src, gsrc, xi0, vx0, cx0, gcx0, yi0, yi1, yi2, yi3,
                                              vy0, vy1, vy2, vy3, cy0, cy1, cy2, cy3, gcy0, gcy1, gcy2, gcy3,
                                              sH, sW, GW, ACC)
            gix, giy = _cubic_column_backward(gix, giy, go, src, gsrc, xi1, vx1, cx1, gcx1, yi0, yi1, yi2, yi3,
                                              vy0, vy1, vy2, vy3, cy0, cy1, cy2, cy3, gcy0, gcy1, gcy2, gcy3,
                                              sH, sW, GW, ACC)
            gix, giy = _cubic_column_backward(gix, giy, go, src, gsrc, xi2, vx2, cx2, gcx2, yi0, yi1, yi2, yi3,
                                              vy0, vy1, vy2, vy3, cy0, cy1, cy2, cy3, gcy0, gcy1, gcy2, gcy3,
                                              sH, sW, GW, ACC)
            gix, giy = _cubic_column_backward(gix, giy, go, src, gsrc, xi3, vx3, cx3, gcx3, yi0, yi1, yi2, yi3,
                                              vy0, vy1, vy2, vy3, cy0, cy1, cy2, cy3, gcy0, gcy1, gcy2, gcy3,
                                              sH, sW, GW, ACC)
            src += sC
            gsrc += S
            go_ptr += P
    else:
        ix, mx = _source_grad(x, wf, pad, align)
        iy, my = _source_grad(y, hf, pad, align)
        if NDIM == 3:
            iz, mz = _source_grad(z, df, pad, align)
        else:
            iz, mz = zero, zero
        if MODE == 1:  # nearest: the input gradient only; the grid gradient is zero
            xi, yi, zi, ok = _nearest(ix, iy, iz, IW, IH, ID, mask)
            goff = zi * plane + yi * GW + xi
            for c in range(C):
                go = tl.load(go_ptr, mask=mask, other=0).to(ACC)
                tl.atomic_add(gsrc + goff, go, mask=ok)
                gsrc += S
                go_ptr += P
            mx, my, mz = zero, zero, zero
        else:
            x0, wx0, wx1, vx0, vx1, y0, wy0, wy1, vy0, vy1, z0, wz0, wz1, vz0, vz1 = _linear_corners(
                ix, iy, iz, IW, IH, ID, mask, zero, NDIM)
            x1, y1, z1 = x0 + 1, y0 + 1, z0 + 1
            for c in range(C):
                go = tl.load(go_ptr, mask=mask, other=0).to(ACC)
                gix, giy, giz = _plane_backward(gix, giy, giz, go, src, gsrc, z0 * sD, z0 * plane, vz0, wz0, -1.0,
                                                y0, y1, vy0, vy1, wy0, wy1, x0, x1, vx0, vx1, wx0, wx1, sH, sW, GW,
                                                ACC)
                if NDIM == 3:
                    gix, giy, giz = _plane_backward(gix, giy, giz, go, src, gsrc, z1 * sD, z1 * plane, vz1, wz1,
                                                    1.0, y0, y1, vy0, vy1, wy0, wy1, x0, x1, vx0, vx1, wx0, wx1,
                                                    sH, sW, GW, ACC)
                src += sC
                gsrc += S
                go_ptr += P
    gg = ggrid + i * NDIM
    tl.store(gg, (mx * gix).to(ggrid.dtype.element_ty), mask=mask)
    tl.store(gg + 1, (my * giy).to(ggrid.dtype.element_ty), mask=mask)
    if NDIM == 3:
        tl.store(gg + 2, (mz * giz).to(ggrid.dtype.element_ty), mask=mask)


# -- host ---------------------------------------------------------------------------------------------------------

_kernels = {}


def _kernel(fn, mode, ndim, dtype):
    key = (fn, mode, ndim, dtype)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(fn, MODE=_MODE[mode], NDIM=ndim, ACC=_ACC[dtype], BLOCK=BLOCK)
    return k


def _flags(padding_mode, align_corners):
    """The padding mode and align_corners as one runtime integer that is never 1 (Triton compiles a
    separate kernel for an integer argument equal to 1): 6 variants share one compiled kernel."""
    return 2 + 2 * _PAD[padding_mode] + int(bool(align_corners))


def _geometry(input, grid):
    """(ID, IH, IW, input strides (N, C, D, H, W), out spatial (OD, OH, OW), grid strides (N, D, H, W, k)),
    2-d given a depth of 1 and zero depth strides."""
    if input.ndim == 4:
        n, c, h, w = input._stride
        gn, gh, gw, gk = grid._stride
        return (1,) + tuple(input._shape[2:]), (n, c, 0, h, w), (1,) + tuple(grid._shape[1:3]), (gn, 0, gh, gw, gk)
    return tuple(input._shape[2:]), tuple(input._stride), tuple(grid._shape[1:4]), tuple(grid._stride)


def _check_mode(mode, padding_mode):
    if mode not in _MODE or padding_mode not in _PAD:
        raise RuntimeError(f"grid_sampler(): unknown mode {mode!r} or padding_mode {padding_mode!r}")


def _grid_sampler(input, grid, mode, padding_mode, align_corners):
    spec = ops.grid_sampler.meta(input, grid, mode, padding_mode, align_corners)
    _check_mode(mode, padding_mode)
    res = empty(spec.shape, spec.dtype, spec.device)
    nb, c = input._shape[:2]
    (d_, h_, w_), strides, (od, oh, ow), gstrides = _geometry(input, grid)
    p = od * oh * ow
    total = nb * p
    if total and c:
        k = _kernel(_grid_sample_kernel, mode, input.ndim - 2, spec.dtype)
        k((triton.cdiv(total, BLOCK),), input, grid, res, total, c, p, d_, h_, w_, oh, ow, *strides, *gstrides,
          _flags(padding_mode, align_corners))
    return res


def _grid_sampler_backward(grad, input, grid, mode, padding_mode, align_corners):
    spec = ops.grid_sampler_backward.meta(grad, input, grid, mode, padding_mode, align_corners)
    _check_mode(mode, padding_mode)
    ops.check_dtype("grid_sampler_backward_cuda", input, ops.FLOATS)
    acc_dt = _ACC_DT[spec.dtype]
    g_input = creation.full(spec.shape, 0, acc_dt, device=spec.device)
    g_grid = empty(tuple(grid._shape), grid._dtype, grid._device)
    nb, c = input._shape[:2]
    (d_, h_, w_), strides, (od, oh, ow), gstrides = _geometry(input, grid)
    p = od * oh * ow
    total = nb * p
    if total:
        gout = creation.contiguous(grad)
        k = _kernel(_grid_sample_backward_kernel, mode, input.ndim - 2, spec.dtype)
        k((triton.cdiv(total, BLOCK),), gout, input, grid, g_input, g_grid, total, c, p, d_, h_, w_, oh, ow,
          *strides, *gstrides, _flags(padding_mode, align_corners))
    if acc_dt is not spec.dtype:
        g_input = creation.to(g_input, spec.dtype, spec.device)
    return g_input, g_grid


ops.grid_sampler.register(CUDA, _grid_sampler)
ops.grid_sampler_backward.register(CUDA, _grid_sampler_backward)

