"""CUDA kernels of complex64 / complex128 tensors: elementwise math, casting copies, fill, sum/mean/prod, logspace.

A complex tensor's storage is interleaved (re, im) pairs of its real dtype. Kernels take a float view of
it (`floats`: the same memory as float32/float64, strides doubled): the real part of element k sits at
offset o(k), the imaginary part at o(k) + 1. They load both halves, compute in the real dtype, and store
both. Real tensors (any dtype) and Python numbers join as (x, 0) and (re, im), as torch promotes them.

The math follows torch's CUDA kernels, which reach two libraries: c10::complex (products and quotients
as c10's operators: a naive product, numpy's scaled quotient; thrust's asin, acos, atan, asinh, acosh,
atanh: complex_math.py) and, in its jiterated kernels, the C++ library's functions (exp, sinh, cosh and
their special values; the quotient of rsqrt, sigmoid and sinc with its recovery of infinities). add's
alpha multiplies as a complex number; pow(z, 2) is z z; exp/log/pow as exp(y log x); reciprocal and sqrt
with their special values.

The other backend files route complex operands here with one early branch each: elementwise.launch
and launch_general, creation.full / copy_ / eye / logspace, reduction._reduce (sum and mean reduce the
view_as_real pairs with the real kernels; prod has its own kernel), indexing (a complex alpha), nn
(rms_norm). Scans are in complex_scan.py.
"""
import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.backends.cuda import complex_math as cm
from vibetensor.backends.cuda import creation as cuda_creation
from vibetensor.backends.cuda.elementwise import _FINFO, _as_operand, _geometry, _offset
from vibetensor.ops import creation
from vibetensor.ops import elementwise as ew
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, alias, empty, make_tensor

BLOCK = 512
CX, REAL, NUM, NONE = 0, 1, 2, 3  # operand kinds: complex tensor, real tensor, Python number, absent

# codes 0.. (`_unary`), 100.. (`_binary`), 200.. (`_param`); ops not listed raise NotImplementedError
UNARY = ["neg", "reciprocal", "abs", "sgn", "exp", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt",
         "sin", "cos", "tan", "sinh", "cosh", "tanh", "sigmoid", "isnan", "isinf", "isfinite", "isreal",
         "identity", "one", "conj", "logical_not", "asin", "acos", "atan", "asinh", "acosh", "atanh", "exp2", "sinc",
         "square", "silu"]
BINARY = ["add", "sub", "mul", "div", "div_scalar", "pow", "eq", "ne", "logical_and", "logical_or", "logical_xor",
          "logaddexp"]
PARAM = ["where", "isclose", "nan_to_num", "addcmul", "addcdiv", "lerp", "lerp_scalar"]
CODE = {**{n: i for i, n in enumerate(UNARY)}, **{n: 100 + i for i, n in enumerate(BINARY)},
        **{n: 200 + i for i, n in enumerate(PARAM)}}
_COMPUTE = {dt.complex64: tl.float32, dt.complex128: tl.float64}


def floats(t):
    """A complex tensor as its real dtype with doubled strides: element k's real part, for kernels."""
    return make_tensor(t._storage, t._shape, tuple(2 * s for s in t._stride), 2 * t._offset, t._dtype.to_real(),
                       t._version)


def pairs(t):
    """view_as_real of a complex tensor, without autograd's view bookkeeping (inside kernels)."""
    return make_tensor(t._storage, t._shape + (2,), tuple(2 * s for s in t._stride) + (1,), 2 * t._offset,
                       t._dtype.to_real(), t._version)


def parts(t):
    """(real part, imaginary part) of a complex tensor, as strided real views."""
    shape, stride = t._shape, tuple(2 * s for s in t._stride)
    return tuple(make_tensor(t._storage, shape, stride, 2 * t._offset + k, t._dtype.to_real(), t._version)
                 for k in (0, 1))


def _f64_bits(v):
    return int(np.float64(v).view(np.int64))


# -- complex arithmetic (device functions; each returns (re, im)) ---------------------------------------------------

@triton.jit
def _number(bits, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    return tl.full((BLOCK,), bits, tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)


@triton.jit
def _cmul(a, b, c, d):
    """c10::complex's product: (ac - bd) + (ad + bc)i, no special-value recovery."""
    return a * c - b * d, a * d + b * c


@triton.jit
def _cdiv(a, b, c, d):
    """c10::complex's quotient (numpy's scaled division): divide by the larger of |c|, |d| first."""
    abs_c = tl.abs(c)
    abs_d = tl.abs(d)
    c_big = abs_c >= abs_d
    both_zero = (abs_c == 0) & (abs_d == 0)
    rat1 = d / tl.where(both_zero, 1.0, c)
    scl1 = 1.0 / (c + d * rat1)
    rat2 = c / d
    scl2 = 1.0 / (d + c * rat2)
    re = tl.where(c_big, tl.where(both_zero, a / abs_c, (a + b * rat1) * scl1), (a * rat2 + b) * scl2)
    im = tl.where(c_big, tl.where(both_zero, b / abs_d, (b - a * rat1) * scl1), (b * rat2 - a) * scl2)
    return re, im


@triton.jit
def _cdiv_recover(a, b, c, d):
    """c10's quotient, then the C++ library's recovery of infinities where both parts came out NaN (the
    quotient of torch's jiterated kernels: rsqrt, sigmoid, sinc): x / 0 is inf; inf / finite keeps the
    infinite direction; finite / inf is 0."""
    re, im = _cdiv(a, b, c, d)
    both_nan = (re != re) & (im != im)
    a_inf = tl.abs(a) == float("inf")
    b_inf = tl.abs(b) == float("inf")
    c_inf = tl.abs(c) == float("inf")
    d_inf = tl.abs(d) == float("inf")
    zero = tl.zeros_like(a)
    # denominator 0 (and a number on top): copysign(inf, c) times each part
    by_zero = (c == 0) & (d == 0) & ((a == a) | (b == b))
    s = libdevice.copysign(zero + float("inf"), c)
    # an infinite numerator over a finite denominator: inf times the direction of (a', b') / (c, d)
    top_inf = (a_inf | b_inf) & (tl.abs(c) < float("inf")) & (tl.abs(d) < float("inf"))
    a1 = libdevice.copysign(tl.where(a_inf, 1.0, 0.0) + zero, a)
    b1 = libdevice.copysign(tl.where(b_inf, 1.0, 0.0) + zero, b)
    # a finite numerator over an infinite denominator: 0 times the direction
    bottom_inf = (c_inf | d_inf) & (tl.abs(a) < float("inf")) & (tl.abs(b) < float("inf"))
    c1 = libdevice.copysign(tl.where(c_inf, 1.0, 0.0) + zero, c)
    d1 = libdevice.copysign(tl.where(d_inf, 1.0, 0.0) + zero, d)
    re2 = tl.where(by_zero, s * a, tl.where(top_inf, float("inf") * (a1 * c + b1 * d), 0.0 * (a * c1 + b * d1)))
    im2 = tl.where(by_zero, s * b, tl.where(top_inf, float("inf") * (b1 * c - a1 * d), 0.0 * (b * c1 - a * d1)))
    fix = both_nan & (by_zero | top_inf | bottom_inf)
    return tl.where(fix, re2, re), tl.where(fix, im2, im)


@triton.jit
def _creciprocal(a, b):
    """torch's reciprocal_wrapper: NaN if a part is NaN or both are infinite, 0 if one is, else 1 / z."""
    inf_a = tl.abs(a) == float("inf")
    inf_b = tl.abs(b) == float("inf")
    nan = (a != a) | (b != b) | (inf_a & inf_b)
    zero = tl.zeros_like(a)
    re, im = _cdiv(zero + 1, zero, a, b)
    re = tl.where(nan, float("nan"), tl.where(inf_a | inf_b, 0.0, re))
    im = tl.where(nan, float("nan"), tl.where(inf_a | inf_b, 0.0, im))
    return re, im


@triton.jit
def _cexp(a, b):
    """The C++ library's complex exp: exp(a) (cos b + i sin b), with exp(a + 0i) = exp(a) + 0i and the
    infinite real parts of C99's annex G."""
    pos_inf = a == float("inf")
    neg_inf = a == float("-inf")
    b_finite = (b == b) & (tl.abs(b) != float("inf"))
    # exp(-inf + i(inf|nan)) = 0: evaluate at b = 1
    bb = tl.where(neg_inf & ~b_finite, 1.0, b)
    e = libdevice.exp(a)
    re = e * libdevice.cos(bb)
    im = e * libdevice.sin(bb)
    # exp(+inf + i(0|inf|nan)) = (inf, b), with an infinite b as NaN
    keep = pos_inf & ((b == 0) | ~b_finite)
    re = tl.where(keep, a, re)
    im = tl.where(keep, tl.where(tl.abs(b) == float("inf"), float("nan"), b), im)
    re = tl.where(b == 0, e, re)
    im = tl.where(b == 0, b, im)
    return re, im


@triton.jit
def _clog(a, b):
    """log|z| + i arg z."""
    return libdevice.log(libdevice.hypot(a, b)), libdevice.atan2(b, a)


@triton.jit
def _csqrt(a, b):
    """The principal square root, without cancellation: t = sqrt((|a| + |z|) / 2); a >= 0 gives
    (t, b / 2t), a < 0 gives (|b| / 2t, copysign(t, b)); sqrt(x + i inf) = inf + i inf."""
    h = libdevice.hypot(a, b)
    t = libdevice.sqrt(tl.abs(a) * 0.5 + h * 0.5)
    zero = (a == 0) & (b == 0)
    t2 = tl.where(zero, 1.0, t) * 2
    re = tl.where(a >= 0, t, tl.abs(b) / t2)
    im = tl.where(a >= 0, b / t2, libdevice.copysign(t, b))
    b_inf = tl.abs(b) == float("inf")
    re = tl.where(b_inf, float("inf"), tl.where(zero, 0.0, re))
    im = tl.where(b_inf | zero, b, im)
    return re, im


@triton.jit
def _csinh(a, b):
    """The C++ library's sinh (torch's jiterated kernels): sinh a cos b + i cosh a sin b, except
    sinh(+-0 + i(inf|nan)) = +-0 + i nan, sinh(+-inf + i(inf|nan)) = +-inf + i nan, and a non-finite a
    on the real axis stays itself (a finite one where cosh a overflows gives inf * 0 = nan, as torch)."""
    re = libdevice.sinh(a) * libdevice.cos(b)
    im = libdevice.cosh(a) * libdevice.sin(b)
    a_finite = tl.abs(a) < float("inf")
    keep_a = ((a == 0) | (tl.abs(a) == float("inf"))) & ~(tl.abs(b) < float("inf"))
    real_axis = (b == 0) & ~a_finite
    re = tl.where(real_axis | keep_a, a, re)
    im = tl.where(real_axis, b, tl.where(keep_a, float("nan"), im))
    return re, im


@triton.jit
def _ccosh(a, b):
    """The C++ library's cosh: cosh a cos b + i sinh a sin b, except cosh(+-0 + i(inf|nan)) = nan + 0i,
    cosh(+-inf + i(inf|nan)) = inf + i nan, and cosh(+-inf + 0i) = inf + 0i."""
    re = libdevice.cosh(a) * libdevice.cos(b)
    im = libdevice.sinh(a) * libdevice.sin(b)
    b_bad = ~(tl.abs(b) < float("inf"))
    a_inf = tl.abs(a) == float("inf")
    re = tl.where(a_inf & b_bad, float("inf"), re)
    im = tl.where(a_inf & b_bad, float("nan"), tl.where((a == 0) & b_bad, 0.0, im))
    return re, tl.where((b == 0) & ~(tl.abs(a) < float("inf")), b, im)


@triton.jit
def _ctanh(a, b):
    """thrust's ctanh: Kahan's formula t = tan b, s = sinh a, beta = 1 + t^2,
    tanh z = (beta s sqrt(1 + s^2) + i t) / (1 + beta s^2); for large |a|, sign(a) + 4 sin b cos b e^(-2|a|) i;
    tanh(+-inf + iy) = +-1 +- 0i, tanh(nan + 0i) = nan + 0i, a finite a with a non-finite b gives nan + i nan."""
    if a.dtype == tl.float64:
        BIG: tl.constexpr = 22.0
    else:
        BIG: tl.constexpr = 11.0
    big = tl.abs(a) >= BIG
    small_a = tl.where(big, 0.0, a)
    t = libdevice.tan(b)
    beta = 1 + t * t
    s = libdevice.sinh(small_a)
    rho = libdevice.sqrt(1 + s * s)
    denom = 1 + beta * s * s
    e = libdevice.exp(-tl.abs(a))
    zero = tl.zeros_like(a)
    sc = libdevice.sin(b) * libdevice.cos(b)
    re = tl.where(big, libdevice.copysign(zero + 1, a), beta * rho * s / denom)
    im = tl.where(big, 4 * sc * e * e, t / denom)
    b_inf = tl.abs(b) == float("inf")
    a_inf = tl.abs(a) == float("inf")
    re = tl.where(~(tl.abs(b) < float("inf")) & (tl.abs(a) < float("inf")), float("nan"), re)
    im = tl.where(a_inf, libdevice.copysign(zero, tl.where(b_inf, b, sc)), im)
    im = tl.where((a != a) & (b == 0), b, im)
    return re, im


@triton.jit
def _cexpm1(a, b):
    """c10's expm1: expm1(a) cos b - 2 sin^2(b / 2) + i e^a sin b."""
    h = libdevice.sin(b * 0.5)
    return libdevice.expm1(a) * libdevice.cos(b) - 2 * h * h, libdevice.exp(a) * libdevice.sin(b)


@triton.jit
def _cpow(a, b, c, d):
    """exp(y log x), as the C++ library's pow."""
    lr, li = _clog(a, b)
    mr, mi = _cmul(c, d, lr, li)
    return _cexp(mr, mi)


@triton.jit
def _unary(a, b, OP: tl.constexpr):
    zero = tl.zeros_like(a)  # (not a * 0: NaN for infinite a)
    if OP == 0:
        re, im = -a, -b
    elif OP == 1:
        re, im = _creciprocal(a, b)
    elif OP == 2:
        re, im = libdevice.hypot(a, b), zero
    elif OP == 3:  # sgn: z / |z|, 0 at 0
        h = libdevice.hypot(a, b)
        z = (a == 0) & (b == 0)
        re, im = tl.where(z, 0.0, a / h), tl.where(z, 0.0, b / h)
    elif OP == 4:
        re, im = _cexp(a, b)
    elif OP == 5:
        re, im = _clog(a, b)
    elif OP == 6:  # log2, log10: each part of log z divided by the real constant, correctly rounded (an
        re, im = _clog(a, b)  # infinite part leaves the other compared exactly)
        ln = zero + 0.6931471805599453
        re, im = libdevice.div_rn(re, ln), libdevice.div_rn(im, ln)
    elif OP == 7:
        re, im = _clog(a, b)
        ln = zero + 2.302585092994046
        re, im = libdevice.div_rn(re, ln), libdevice.div_rn(im, ln)
    elif OP == 8:
        re, im = cm.log1p(a, b)
    elif OP == 9:
        re, im = _cexpm1(a, b)
    elif OP == 10:
        re, im = _csqrt(a, b)
    elif OP == 11:  # rsqrt: 1 / sqrt z
        sr, si = _csqrt(a, b)
        re, im = _cdiv_recover(zero + 1, zero, sr, si)
    elif OP == 12:  # sin z = -i sinh(iz)
        p, q = _csinh(-b, a)
        re, im = q, -p
    elif OP == 13:  # cos z = cosh(iz)
        re, im = _ccosh(-b, a)
    elif OP == 14:  # tan z = -i tanh(iz)
        p, q = _ctanh(-b, a)
        re, im = q, -p
    elif OP == 15:
        re, im = _csinh(a, b)
    elif OP == 16:
        re, im = _ccosh(a, b)
    elif OP == 17:
        re, im = _ctanh(a, b)
    elif OP == 18:  # sigmoid: 1 / (1 + exp(-z))
        er, ei = _cexp(-a, -b)
        re, im = _cdiv_recover(zero + 1, zero, er + 1, ei)
    elif OP == 19:
        re, im = (a != a) | (b != b), zero
    elif OP == 20:
        re, im = (tl.abs(a) == float("inf")) | (tl.abs(b) == float("inf")), zero
    elif OP == 21:
        re, im = (tl.abs(a) < float("inf")) & (tl.abs(b) < float("inf")), zero
    elif OP == 22:
        re, im = b == 0, zero
    elif OP == 23:
        re, im = a, b
    elif OP == 24:  # z ** 0: torch fills ones
        re, im = zero + 1, zero
    elif OP == 25:
        re, im = a, -b
    elif OP == 26:  # logical_not: both parts zero
        re, im = (a == 0) & (b == 0), zero
    elif OP == 27:
        re, im = cm.casin(a, b)
    elif OP == 28:
        re, im = cm.cacos(a, b)
    elif OP == 29:
        re, im = cm.catan(a, b)
    elif OP == 30:
        re, im = cm.casinh(a, b)
    elif OP == 31:
        re, im = cm.cacosh(a, b)
    elif OP == 32:
        re, im = cm.catanh(a, b)
    elif OP == 33:  # exp2: exp(ln 2 z), ln 2 a real factor (torch's exp2_impl)
        re, im = _cexp(a * 0.6931471805599453, b * 0.6931471805599453)
    elif OP == 35:  # square (and pow(z, 2)): z z, c10's product, as torch
        re, im = _cmul(a, b, a, b)
    elif OP == 36:  # silu: z / (1 + exp(-z)) (c10's quotient)
        er, ei = _cexp(-a, -b)
        re, im = _cdiv(a, b, er + 1, ei)
    else:  # sinc: sin(pi z) / (pi z), pi a complex factor (c10's product); 1 at 0
        pr, pim = _cmul(zero + 3.141592653589793, zero, a, b)
        p, q = _csinh(-pim, pr)  # sin w = -i sinh(iw)
        re, im = _cdiv_recover(q, -p, pr, pim)
        at_zero = (a == 0) & (b == 0)
        re, im = tl.where(at_zero, 1.0, re), tl.where(at_zero, 0.0, im)
    return re, im


@triton.jit
def _binary(a, b, c, d, p0, p1, OP: tl.constexpr):
    if OP == 100:  # add: x + alpha * y, alpha a complex number
        sr, si = _cmul(p0, p1, c, d)
        re, im = a + sr, b + si
    elif OP == 101:
        sr, si = _cmul(p0, p1, c, d)
        re, im = a - sr, b - si
    elif OP == 102:
        re, im = _cmul(a, b, c, d)
    elif OP == 103:
        re, im = _cdiv(a, b, c, d)
    elif OP == 104:  # division by a number: times its reciprocal, as torch's CUDA kernel
        zero = tl.zeros_like(c)
        rr, ri = _cdiv(zero + 1, zero, c, d)
        re, im = _cmul(a, b, rr, ri)
    elif OP == 105:
        re, im = _cpow(a, b, c, d)
    elif OP == 106:
        re, im = (a == c) & (b == d), tl.zeros_like(a)
    elif OP == 107:
        re, im = (a != c) | (b != d), tl.zeros_like(a)
    elif OP == 111:
        re, im = cm.clogaddexp(a, b, c, d)
    else:  # logical and/or/xor: a number is true when either part is nonzero
        x = (a != 0) | (b != 0)
        y = (c != 0) | (d != 0)
        if OP == 108:
            r = x & y
        elif OP == 109:
            r = x | y
        else:
            r = x ^ y
        re, im = r, tl.zeros_like(a)
    return re, im


@triton.jit
def _lerp(a, b, c, d, wr, wi):
    """torch's lerp: x + w (y - x) for |w| < 0.5, else y - (y - x)(1 - w)."""
    dr, di = c - a, d - b
    fr, fi = _cmul(wr, wi, dr, di)
    gr, gi = _cmul(dr, di, 1 - wr, -wi)
    small = libdevice.hypot(wr, wi) < 0.5
    return tl.where(small, a + fr, c - gr), tl.where(small, b + fi, d - gi)


@triton.jit
def _param(a, b, c, d, e, f, p0, p1, p2, OP: tl.constexpr):
    if OP == 200:  # where(condition (a), y, z)
        pick = a != 0
        re, im = tl.where(pick, c, e), tl.where(pick, d, f)
    elif OP == 201:  # isclose(x, y, rtol p0, atol p1, equal_nan p2), torch's formula
        close = (a == c) & (b == d)
        close = close | ((p2 != 0) & ((a != a) | (b != b)) & ((c != c) | (d != d)))
        sr, si = _cmul(p0, tl.zeros_like(p0), c, d)
        allowed = p1 + libdevice.hypot(sr, si)
        actual = libdevice.hypot(a - c, b - d)
        close = close | ((actual < float("inf")) & (actual <= allowed))
        re, im = close, tl.zeros_like(a)
    elif OP == 202:  # nan_to_num of each part: NaN -> p0, inf -> p1, -inf -> p2
        re = tl.where(a != a, p0, tl.where(a == float("inf"), p1, tl.where(a == float("-inf"), p2, a)))
        im = tl.where(b != b, p0, tl.where(b == float("inf"), p1, tl.where(b == float("-inf"), p2, b)))
    elif OP == 203:  # addcmul: x + value * y * z, value = (p0, p1), in torch's order
        vr, vi = _cmul(p0, p1, c, d)
        sr, si = _cmul(vr, vi, e, f)
        re, im = a + sr, b + si
    elif OP == 204:  # addcdiv: x + value * (y / z)
        qr, qi = _cdiv(c, d, e, f)
        sr, si = _cmul(p0, p1, qr, qi)
        re, im = a + sr, b + si
    elif OP == 205:  # lerp with a tensor weight (z)
        re, im = _lerp(a, b, c, d, e, f)
    else:  # lerp with a number weight (p0, p1)
        re, im = _lerp(a, b, c, d, p0, p1)
    return re, im


@triton.jit
def _operand(ptr, i, o, mask, re_bits, im_bits, KIND: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr,
             BLOCK: tl.constexpr):
    """(re, im) of an operand: a complex tensor's pair, a real tensor's (x, 0), a number's bits, or zeros."""
    if KIND == 0:
        if CONTIG:
            off = 2 * i
        else:
            off = o
        re = tl.load(ptr + off, mask=mask, other=0).to(COMPUTE)
        im = tl.load(ptr + off + 1, mask=mask, other=0).to(COMPUTE)
    elif KIND == 1:
        if CONTIG:
            off = i
        else:
            off = o
        re = tl.load(ptr + off, mask=mask, other=0).to(COMPUTE)
        im = tl.zeros((BLOCK,), COMPUTE)
    elif KIND == 2:
        re = _number(re_bits, COMPUTE, BLOCK)
        im = _number(im_bits, COMPUTE, BLOCK)
    else:
        re = tl.zeros((BLOCK,), COMPUTE)
        im = tl.zeros((BLOCK,), COMPUTE)
    return re, im


@triton.jit
def _cx_kernel(x_ptr, y_ptr, z_ptr, out_ptr, xr, xi, yr, yi, zr, zi, p0_bits, p1_bits, p2_bits, n, n1, n2, n3,
               xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, zs0, zs1, zs2, zs3, os0, os1, os2, os3,
               OP: tl.constexpr, X_KIND: tl.constexpr, Y_KIND: tl.constexpr, Z_KIND: tl.constexpr,
               OUT_COMPLEX: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """out = OP(x, y, z) elementwise over a 4-d index space; strides in elements of each pointer (a
    complex operand's float view: doubled)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    if CONTIG:
        xo = i
        yo = i
        zo = i
        if OUT_COMPLEX:
            oo = 2 * i
        else:
            oo = i
    else:
        xo = _offset(i, n1, n2, n3, xs0, xs1, xs2, xs3)
        yo = _offset(i, n1, n2, n3, ys0, ys1, ys2, ys3)
        zo = _offset(i, n1, n2, n3, zs0, zs1, zs2, zs3)
        oo = _offset(i, n1, n2, n3, os0, os1, os2, os3)
    a, b = _operand(x_ptr, i, xo, mask, xr, xi, X_KIND, CONTIG, COMPUTE, BLOCK)
    c, d = _operand(y_ptr, i, yo, mask, yr, yi, Y_KIND, CONTIG, COMPUTE, BLOCK)
    e, f = _operand(z_ptr, i, zo, mask, zr, zi, Z_KIND, CONTIG, COMPUTE, BLOCK)
    p0 = _number(p0_bits, COMPUTE, BLOCK)
    p1 = _number(p1_bits, COMPUTE, BLOCK)
    p2 = _number(p2_bits, COMPUTE, BLOCK)
    if OP < 100:
        re, im = _unary(a, b, OP)
    elif OP < 200:
        re, im = _binary(a, b, c, d, p0, p1, OP)
    else:
        re, im = _param(a, b, c, d, e, f, p0, p1, p2, OP)
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + oo, re.to(ty), mask=mask)
    if OUT_COMPLEX:
        tl.store(out_ptr + oo + 1, im.to(ty), mask=mask)


_kernels = {}


def _kind(t):
    if t is None:
        return NONE
    if isinstance(t, Tensor):
        return CX if t._dtype.is_complex else REAL
    return NUM


def run(name, common, operands, res, params=()):
    """Compute op `name` of up to three operands (complex or real tensors, numbers) in the complex
    dtype `common` into `res` (complex, or real/bool for abs and the predicates)."""
    n = res.numel()
    if n == 0:
        return res
    code = CODE.get(name)
    if code is None or common not in _COMPUTE:
        raise NotImplementedError(f"{name}: {common} tensors on CUDA are not supported yet")
    ops3 = [_as_operand(t, res) if t is not None else None for t in operands] + [None] * (3 - len(operands))
    kinds = tuple(_kind(t) for t in ops3)
    if all(k >= NUM for k in kinds):
        raise NotImplementedError(f"{name}: no tensor operand on CUDA")
    out_complex = res._dtype.is_complex
    out = floats(res) if out_complex else res
    contig, sizes, strides = _geometry(name, res, [0 if t is None else t for t in ops3])
    ptrs, bits = [], []
    for t, k in zip(ops3, kinds):
        ptrs.append(floats(t) if k == CX else t if k == REAL else out)
        v = complex(t) if k == NUM else 0j
        bits += [_f64_bits(v.real), _f64_bits(v.imag)]
    p = [_f64_bits(float(v)) for v in params] + [0] * (3 - len(params))
    compute = _COMPUTE[common]
    key = (code, kinds, out_complex, contig, compute)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_cx_kernel, OP=code, X_KIND=kinds[0], Y_KIND=kinds[1], Z_KIND=kinds[2],
                                            OUT_COMPLEX=out_complex, CONTIG=contig, COMPUTE=compute, BLOCK=BLOCK)
    if contig:
        geometry = [1, 1, 1] + [0] * 16
    else:  # complex operands' strides count floats
        scale = [2 if k == CX else 1 for k in kinds] + [2 if out_complex else 1]
        geometry = list(sizes) + [s * f for st, f in zip(strides, scale) for s in st]
    k((launcher.cdiv(n, BLOCK),), *ptrs, out, *bits, *p, n, *geometry)
    return res


# -- entry points of elementwise.py's kernels --------------------------------------------------------------------

_POW_SHORTCUTS = {0: "one", 1: "identity", 0.5: "sqrt", -0.5: "rsqrt", -1: "reciprocal", 2: "square"}


def launch(name, spec, a, b, res, alpha=1):
    """elementwise.launch for a complex common dtype."""
    params = ()
    b = _as_operand(b, res) if b is not None else None
    if name == "float_power":  # pow in complex128 (spec.common) with a complex exponent: no shortcuts, as torch
        name = "pow"
        b = complex(b) if b is not None and not isinstance(b, Tensor) else b
    if name in ("add", "sub"):
        alpha = complex(alpha)  # torch multiplies y by alpha as a complex number, also alpha = 1
        params = (alpha.real, alpha.imag)
    elif name == "div" and b is not None and not isinstance(b, Tensor):
        name = "div_scalar"
    elif name == "pow" and b is not None and not isinstance(b, Tensor):
        # torch: x ** 0 fills ones, x ** 1 copies; real .5, -.5, -1 run sqrt, rsqrt, reciprocal
        if isinstance(b, complex):
            name = _POW_SHORTCUTS.get(b, "pow") if b in (0, 1) else "pow"
        else:
            name = _POW_SHORTCUTS.get(b, "pow")
        if name != "pow":
            b = None
    return run(name, spec.common, (a,) if b is None else (a, b), res, params)


def launch_general(name, common, operands, res, params=()):
    """elementwise.launch_general for a complex common dtype."""
    if name == "isclose":
        params = (params[0], params[1], float(bool(params[2])))
    elif name in ("addcmul", "addcdiv", "lerp_scalar"):  # a complex parameter: (re, im)
        value = complex(params[0])
        params = (value.real, value.imag)
    return run(name, common, operands, res, params)


def nan_to_num(spec, res, a, nan=None, posinf=None, neginf=None):
    """torch: nan_to_num of the real and the imaginary part, with the real dtype's limits."""
    big = _FINFO[spec.dtype.to_real()]
    run("nan_to_num", spec.common, (a,), res,
        (0.0 if nan is None else nan, big if posinf is None else posinf, -big if neginf is None else neginf))


# -- fill and casting copies (creation.py's full, copy_ and eye) ---------------------------------------------------

@triton.jit
def _fill_kernel(out_ptr, re_bits, im_bits, n, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + 2 * i, _number(re_bits, ty, BLOCK), mask=mask)
    tl.store(out_ptr + 2 * i + 1, _number(im_bits, ty, BLOCK), mask=mask)


@triton.jit
def _cast_kernel(src, dst, n, n1, n2, n3, n4, n5, s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, d4, d5,
                 SRC_COMPLEX: tl.constexpr, DST_COMPLEX: tl.constexpr, DST_BOOL: tl.constexpr, BLOCK: tl.constexpr):
    """dst[i] = src[i] over a 6-d index space, either side complex (a float view): real -> complex
    gives (x, 0), complex -> real keeps the real part, complex -> bool tests both parts."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    c0, c1, c2, c3, c4, c5 = cuda_creation.unravel6(i, n1, n2, n3, n4, n5)
    so = c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5
    do = c0 * d0 + c1 * d1 + c2 * d2 + c3 * d3 + c4 * d4 + c5 * d5
    ty = dst.dtype.element_ty
    re = tl.load(src + so, mask=mask)
    if SRC_COMPLEX:
        im = tl.load(src + so + 1, mask=mask)
        if DST_BOOL:
            re = (re != 0) | (im != 0)
    else:
        im = tl.zeros_like(re)
    tl.store(dst + do, re.to(ty), mask=mask)
    if DST_COMPLEX:
        tl.store(dst + do + 1, im.to(ty), mask=mask)


fill_kernel = launcher.Kernel(_fill_kernel, BLOCK=1024)
_cast_kernels = {}


def fill(t, value):
    """Fill a contiguous complex tensor with a number."""
    n = t.numel()
    if n:
        value = complex(value)
        fill_kernel((launcher.cdiv(n, 1024),), floats(t), _f64_bits(value.real), _f64_bits(value.imag), n)
    return t


def copy(dst, src):
    """The strided, casting copy between two CUDA tensors (src broadcast to dst) when either is complex."""
    n = dst.numel()
    if n == 0:
        return
    from vibetensor.tensor.iterator import broadcast_strides
    src_stride = broadcast_strides(src._shape, src._stride, dst._shape)
    sizes, (ss, ds) = cuda_creation.geometry6("copy_", dst._shape, src_stride, dst._stride)
    s_cx, d_cx = src._dtype.is_complex, dst._dtype.is_complex
    key = (s_cx, d_cx, dst._dtype is dt.bool_)
    k = _cast_kernels.get(key)
    if k is None:
        k = _cast_kernels[key] = launcher.Kernel(_cast_kernel, SRC_COMPLEX=s_cx, DST_COMPLEX=d_cx,
                                                 DST_BOOL=key[2], BLOCK=1024)
    k((launcher.cdiv(n, 1024),), floats(src) if s_cx else src, floats(dst) if d_cx else dst, n, *sizes,
      *[2 * s if s_cx else s for s in ss], *[2 * s if d_cx else s for s in ds])


# -- logspace (creation.py's) --------------------------------------------------------------------------------------

@triton.jit
def _logspace_kernel(out_ptr, n, halfway, sr, si, er, ei, dr, di, base, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """torch's complex logspace: element i is base ** (start + step i) for i < halfway, else
    base ** (end - step (n - 1 - i)), complex arithmetic in COMPUTE (the numbers come as float64 bits)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    first = i < halfway
    k = tl.where(first, i, n - 1 - i).to(COMPUTE)
    step_r = _number(dr, COMPUTE, BLOCK) * k
    step_i = _number(di, COMPUTE, BLOCK) * k
    exp_r = tl.where(first, _number(sr, COMPUTE, BLOCK) + step_r, _number(er, COMPUTE, BLOCK) - step_r)
    exp_i = tl.where(first, _number(si, COMPUTE, BLOCK) + step_i, _number(ei, COMPUTE, BLOCK) - step_i)
    zero = tl.zeros((BLOCK,), COMPUTE)
    re, im = _cpow(_number(base, COMPUTE, BLOCK), zero, exp_r, exp_i)
    ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + 2 * i, re.to(ty), mask=mask)
    tl.store(out_ptr + 2 * i + 1, im.to(ty), mask=mask)


def _pow_of_real(base, z):
    """base ** z for a real base and complex z, in double, as the C++ library's pow(T, complex<T>)."""
    import cmath
    import math
    if base > 0:
        r, theta = base ** z.real, z.imag * math.log(base)
        return complex(r * math.cos(theta), r * math.sin(theta))
    return 0j if base == 0 else cmath.exp(z * cmath.log(complex(base)))


def logspace(res, start, end, steps, base):
    """res (a fresh (steps,) complex tensor) = torch's CUDA logspace: start, end, the step and base held
    in the complex dtype, the step (end - start) / (steps - 1) as c10's quotient (times 1 / (steps - 1))."""
    if steps == 1:  # torch fills pow(base, start) computed in double
        return fill(res, _pow_of_real(float(base), complex(start)))
    if steps == 0:
        return res
    real = res._dtype.to_real().np.type
    start, end = complex(start), complex(end)
    s = (real(start.real), real(start.imag))
    e = (real(end.real), real(end.imag))
    scale = real(1) / real(steps - 1)
    step = (real(e[0] - s[0]) * scale, real(e[1] - s[1]) * scale)
    target = res if res.is_contiguous() else empty(res._shape, res._dtype, res._device)
    k = launcher.cached_kernel(_logspace_kernel, COMPUTE=_COMPUTE[res._dtype], BLOCK=BLOCK)
    k((launcher.cdiv(steps, BLOCK),), floats(target), steps, steps // 2,
      *[_f64_bits(v) for v in (*s, *e, *step, real(base))])
    if target is not res:
        creation.copy_(res, target)
    return res


# -- complex parameters of other ops -------------------------------------------------------------------------------

def scaled_source(op, src, shape, src_stride, alpha, src_indexed):
    """(alpha * src over `shape` (read with src_stride) as a new contiguous tensor, its strides, 1): how a
    complex alpha reaches indexing.py's kernels, whose own alpha is real (torch adds src * alpha)."""
    if src_indexed:
        raise NotImplementedError(f"{op}: a complex alpha with an indexed source on CUDA is not supported")
    scaled = ew.mul(alias(src, tuple(shape), tuple(src_stride), src._offset), alpha)
    return scaled, scaled._stride, 1 + 0j


def rms_norm(x, normalized_shape, weight, eps):
    """torch's rms_norm of complex x, its composite: x rsqrt(mean(x^2) + eps) weight (x^2 the complex
    square, not |x|^2), in x's dtype."""
    from vibetensor.ops import nn as nn_ops
    y = nn_ops.rms_norm_composite(x, normalized_shape, weight, eps)
    return y if y._dtype is x._dtype else creation.to(y, x._dtype, x._device)


# -- reductions (reduction.py's sum, mean, prod) ---------------------------------------------------------------------

@triton.jit
def _cmul_combine(ar, ai, br, bi):
    return ar * br - ai * bi, ar * bi + ai * br


@triton.jit
def _prod_kernel(x_ptr, out_ptr, rows, cols, R: tl.constexpr, C: tl.constexpr, COMPUTE: tl.constexpr):
    """x is a contiguous (rows, cols) complex matrix (float view): out[row] = the product of its row,
    for a tile of R rows, in the complex dtype (c10's product at each step)."""
    row = tl.program_id(0).to(tl.int64) * R + tl.arange(0, R)  # (R,)
    row_ok = row < rows
    acc_r = tl.full((R, C), 1.0, COMPUTE)
    acc_i = tl.zeros((R, C), COMPUTE)
    for k in range(0, cols, C):
        col = k + tl.arange(0, C)  # (C,)
        m = row_ok[:, None] & (col < cols)[None, :]
        off = (row[:, None] * cols + col[None, :]) * 2
        vr = tl.load(x_ptr + off, mask=m, other=1.0).to(COMPUTE)
        vi = tl.load(x_ptr + off + 1, mask=m, other=0.0).to(COMPUTE)
        acc_r, acc_i = _cmul_combine(acc_r, acc_i, vr, vi)
    pr, pi = tl.reduce((acc_r, acc_i), 1, _cmul_combine)  # (R,)
    tl.store(out_ptr + row * 2, pr.to(out_ptr.dtype.element_ty), mask=row_ok)
    tl.store(out_ptr + row * 2 + 1, pi.to(out_ptr.dtype.element_ty), mask=row_ok)


def _prod(x, dims, res):
    """res (contiguous, complex) = the product of x over dims."""
    from vibetensor.backends.cuda import reduction as red
    if res.numel() == 0:
        return
    x, rows, cols = red._rows(x, dims)
    if cols == 0:
        fill(res, 1)
        return
    c = min(launcher.next_power_of_2(cols), 256)
    rr = min(launcher.next_power_of_2(rows), max(1, 1024 // c))
    k = launcher.cached_kernel(_prod_kernel, R=rr, C=c, COMPUTE=_COMPUTE[x._dtype])
    k((launcher.cdiv(rows, rr),), floats(x), floats(res), rows, cols)


def reduce(a, spec, op, res, fresh, mean):
    """reduction._reduce for a complex compute dtype: sum and mean reduce the (re, im) pairs with the
    real kernels; prod multiplies complex numbers."""
    from vibetensor.backends.cuda import reduction as red
    compute = spec.compute
    x = a if a._dtype is compute else creation.to(a, compute, a._device)
    dense = res._dtype is compute and (fresh or res.is_contiguous())
    flat = res if dense else empty(res._shape, compute, res._device)
    if op == red.SUM:
        red._reduce(pairs(x), spec._replace(compute=compute.to_real()), red.SUM, pairs(flat), True, mean)
    elif op == red.PROD:
        _prod(x, spec.dims, flat)
    else:
        raise NotImplementedError("max/min: complex inputs on CUDA are not supported")
    if flat is not res:
        creation.copy_(res, flat)
    return res

