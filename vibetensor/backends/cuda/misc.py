"""CUDA kernels of the ops that fit no other family: special functions (i0e, i1e, zeta, polygamma),
frexp/ldexp, conj, searching and counting (searchsorted, bucketize, isin, histc, bincount, unique),
one_hot, embedding_renorm_, segment_reduce, hash_tensor, and small linear-algebra composites (trace,
dot, vdot, addr, linalg_cross, dist, renorm).

Where an op is exactly a few existing CUDA ops, its kernel composes them (no host sync, capturable);
the special functions follow torch's CUDA formulas (Cephes series, in float32 for half types).
Ops whose result size is data (unique, bincount, one_hot without num_classes, histc with an
unset range) read it on the host, a synchronisation, as torch's CUDA kernels do.
"""
import math

import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.backends.cuda.creation import geometry6, unravel6
from vibetensor.backends.cuda.indexing import _err, _host, _report, from_f64, launch_indexed, true_positions
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, joining, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import linalg as la
from vibetensor.ops import nn
from vibetensor.ops import reduction as r
from vibetensor.ops import scatter as sc
from vibetensor.ops import sorting as so
from vibetensor.ops.meta import TYPE_NAMES, bump_version, common_device, output
from vibetensor.ops.scans import check_input
from vibetensor.runtime.cuda import device_errors, launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.iterator import broadcast_strides
from vibetensor.tensor.tensor import Tensor, empty

CUDA = DispatchKey.CUDA
BLOCK = 1024
SEARCH_BLOCK = 256
HALVES = (dt.float16, dt.bfloat16)
_TL = {dt.float16: tl.float16, dt.bfloat16: tl.bfloat16, dt.float32: tl.float32, dt.float64: tl.float64,
       dt.int8: tl.int8, dt.int16: tl.int16, dt.int32: tl.int32, dt.int64: tl.int64, dt.uint8: tl.uint8}
_kernel = launcher.cached_kernel


def _grid(n, block=BLOCK):
    return (launcher.cdiv(n, block),)


def _bits(value, is_float):
    """A Python number as a kernel's int64 argument (a float64's bit pattern for floats: Triton
    would pass a float as float32)."""
    return int(np.float64(value).view(np.int64)) if is_float else int(value)


def _compute(d):
    """The Triton dtype arithmetic runs in for dtype d (half types in float32, as torch's kernels)."""
    return tl.float32 if d in HALVES else _TL[d]


def _finish(res, out):
    if out is not None:
        bump_version(res)
    return res


def _store(op, out, spec, value):
    """Write value (a CUDA tensor) into a new result or into out=."""
    res = output(op, out, spec.shape, spec.dtype, spec.device)
    creation.copy_(res, value)
    return _finish(res, out)


def _as_number(x, res):
    """A CPU 0-d tensor meeting CUDA ones joins as a number, as in torch."""
    if isinstance(x, Tensor) and x._device != res._device and x._device.type == "cpu":
        return x.item()
    return x


def _host_values(*tensors):
    """Several 0-d CUDA tensors' values on the host in one copy (a synchronisation)."""
    stacked = joining.stack([creation.to(t, dt.float64, t._device) for t in tensors], 0)
    return [float(v) for v in _host(stacked)]


def _dense(t, shape=None):
    """t as a contiguous tensor (a copy only when needed), optionally reshaped."""
    t = t if t.is_contiguous() else creation.contiguous(t)
    return t if shape is None else views.reshape(t, shape)


# -- special functions: torch's CUDA formulas (Cephes) ----------------------------------------------------------

I0E_A = tl.constexpr((
    -4.41534164647933937950E-18, 3.33079451882223809783E-17, -2.43127984654795469359E-16, 1.71539128555513303061E-15,
    -1.16853328779934516808E-14, 7.67618549860493561688E-14, -4.85644678311192946090E-13, 2.95505266312963983461E-12,
    -1.72682629144155570723E-11, 9.67580903537323691224E-11, -5.18979560163526290666E-10, 2.65982372468238665035E-9,
    -1.30002500998624804212E-8, 6.04699502254191894932E-8, -2.67079385394061173391E-7, 1.11738753912010371815E-6,
    -4.41673835845875056359E-6, 1.64484480707288970893E-5, -5.75419501008210370398E-5, 1.88502885095841655729E-4,
    -5.76375574538582365885E-4, 1.63947561694133579842E-3, -4.32430999505057594430E-3, 1.05464603945949983183E-2,
    -2.37374148058994688156E-2, 4.93052842396707084878E-2, -9.49010970480476444210E-2, 1.71620901522208775349E-1,
    -3.04682672343198398683E-1, 6.76795274409476084995E-1))
I0E_B = tl.constexpr((
    -7.23318048787475395456E-18, -4.83050448594418207126E-18, 4.46562142029675999901E-17, 3.46122286769746109310E-17,
    -2.82762398051658348494E-16, -3.42548561967721913462E-16, 1.77256013305652638360E-15, 3.81168066935262242075E-15,
    -9.55484669882830764870E-15, -4.15056934728722208663E-14, 1.54008621752140982691E-14, 3.85277838274214270114E-13,
    7.18012445138366623367E-13, -1.79417853150680611778E-12, -1.32158118404477131188E-11, -3.14991652796324136454E-11,
    1.18891471078464383424E-11, 4.94060238822496958910E-10, 3.39623202570838634515E-9, 2.26666899049817806459E-8,
    2.04891858946906374183E-7, 2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
    8.04490411014108831608E-1))
I1E_A = tl.constexpr((  # double precision; float32 uses the last 17 (torch's float coefficients)
    2.77791411276104639959E-18, -2.11142121435816608115E-17, 1.55363195773620046921E-16, -1.10559694773538630805E-15,
    7.60068429473540693410E-15, -5.04218550472791168711E-14, 3.22379336594557470981E-13, -1.98397439776494371520E-12,
    1.17361862988909016308E-11, -6.66348972350202774223E-11, 3.62559028155211703701E-10, -1.88724975172282928790E-9,
    9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7, -8.56872026469545474066E-7,
    3.47025130813767847674E-6, -1.32731636560394358279E-5, 4.78156510755005422638E-5, -1.61760815825896745588E-4,
    5.12285956168575772895E-4, -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
    2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1, -1.76416518357834055153E-1,
    2.52587186443633654823E-1))
I1E_A32 = tl.constexpr(I1E_A.value[12:])
I1E_B = tl.constexpr((  # double precision; float32 uses the last 7
    7.51729631084210481353E-18, 4.41434832307170791151E-18, -4.65030536848935832153E-17, -3.20952592199342395980E-17,
    2.96262899764595013876E-16, 3.30820231092092828324E-16, -1.88035477551078244854E-15, -3.81440307243700780478E-15,
    1.04202769841288027642E-14, 4.27244001671195135429E-14, -2.10154184277266431302E-14, -4.08355111109219731823E-13,
    -7.19855177624590851209E-13, 2.03562854414708950722E-12, 1.41258074366137813316E-11, 3.25260358301548823856E-11,
    -1.89749581235054123450E-11, -5.58974346219658380687E-10, -3.83538038596423702205E-9, -2.63146884688951950684E-8,
    -2.51223623787020892529E-7, -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
    7.78576235018280120474E-1))
I1E_B32 = tl.constexpr(I1E_B.value[18:])
ZETA_A = tl.constexpr((12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9, 7.47242496e10,
                       -2.950130727918164224e12, 1.1646782814350067249e14, -4.5979787224074726105e15,
                       1.8152105401943546773e17, -7.1661652561756670113e18))
ZETA_MAX_TERMS = tl.constexpr(1 << 20)  # a guard against endless series (torch's loop runs until a >= 9: q near -2^53)


@triton.jit
def _chbevl(x, C: tl.constexpr):
    """Cephes' Chebyshev series sum_k C[k] T_k(x/2), by Clenshaw's recurrence."""
    b0 = tl.zeros_like(x) + C[0]
    b1 = tl.zeros_like(x)
    b2 = tl.zeros_like(x)
    for k in tl.static_range(1, len(C)):
        b2 = b1
        b1 = b0
        b0 = x * b1 - b2 + C[k]
    return 0.5 * (b0 - b2)


@triton.jit
def _i0e(x):
    a = tl.abs(x)
    small = _chbevl(a / 2.0 - 2.0, I0E_A)
    big = _chbevl(32.0 / a - 2.0, I0E_B) / libdevice.sqrt(a)
    return tl.where(a <= 8.0, small, big)


@triton.jit
def _i1e(x):
    a = tl.abs(x)
    if x.dtype == tl.float64:
        small = _chbevl(a / 2.0 - 2.0, I1E_A) * a
        big = _chbevl(32.0 / a - 2.0, I1E_B) / libdevice.sqrt(a)
    else:
        small = _chbevl(a / 2.0 - 2.0, I1E_A32) * a
        big = _chbevl(32.0 / a - 2.0, I1E_B32) / libdevice.sqrt(a)
    r = tl.where(a <= 8.0, small, big)
    return tl.where(x < 0, -r, r)


@triton.jit
def _zeta(x, q):
    """Hurwitz zeta(x, q), Cephes' algorithm as torch's CUDA kernel runs it (lane by lane: each
    lane leaves the loops where torch's scalar code returns)."""
    MACHEP: tl.constexpr = 1.11022302462515654042E-16
    special = (x == 1) | (x < 1) | ((q <= 0) & ((q == tl.floor(q)) | (x != tl.floor(x))))
    spec_val = tl.where(x == 1, float("inf"), tl.where(x < 1, float("nan"),
                        tl.where(q == tl.floor(q), float("inf"), float("nan"))))
    s = libdevice.pow(q, -x)
    a = q
    b = tl.zeros_like(q)
    i = tl.zeros(x.shape, tl.int32)
    done = special
    result = tl.where(special, spec_val, s)
    active = ~special
    while tl.max(active.to(tl.int32), 0) > 0:  # Euler-Maclaurin's direct terms, until a >= 9 (or converged)
        i = tl.where(active, i + 1, i)
        a = tl.where(active, a + 1, a)
        b = tl.where(active, libdevice.pow(a, -x), b)
        s = tl.where(active, s + b, s)
        conv = active & (-MACHEP * s < b) & (b < MACHEP * s)
        result = tl.where(conv, s, result)
        done = done | conv
        more = ((i < 9) | (a <= 9.0)) & (i < ZETA_MAX_TERMS)
        active = active & ~conv & more
    tail = ~done  # the asymptotic tail with Bernoulli terms
    w = a
    s = s + b * w / (x - 1)
    s = s - 0.5 * b
    a = tl.zeros_like(x) + 1
    k = tl.zeros_like(x)
    for j in tl.static_range(12):
        a = a * (x + k)
        b = b / w
        t = a * b / ZETA_A[j]
        s = s + t
        conv = tail & (tl.abs(t / s) < MACHEP)
        result = tl.where(conv, s, result)
        tail = tail & ~conv
        k = k + 1
        a = a * (x + k)
        b = b / w
        k = k + 1
    return tl.where(tail, s, result)


@triton.jit
def _trigamma(x):
    """torch's calc_trigamma (CUDA): reflection below 1/2, six recurrence steps, then the series."""
    PI: tl.constexpr = 3.14159265358979323846
    reflect = x < 0.5
    sin_pi_x = libdevice.sin(PI * x)
    result = tl.where(reflect, -(PI * PI) / (sin_pi_x * sin_pi_x), 0.0)  # (sin(pi inf) is NaN)
    sign = tl.where(reflect, -1.0, 1.0).to(x.dtype)
    x = tl.where(reflect, 1 - x, x)
    for _ in tl.static_range(6):
        result = result + 1 / (x * x)
        x = x + 1
    ixx = 1 / (x * x)
    result = result + (1 + 1 / (2 * x) + ixx * (1.0 / 6 - ixx * (1.0 / 30 - ixx * (1.0 / 42)))) / x
    return sign * result


@triton.jit
def _polygamma(x, n):
    """n >= 2: (-1)^(n+1) n! zeta(n + 1, x), torch's formula."""
    nf = (tl.zeros_like(x) + n).to(x.dtype)
    factorial = libdevice.exp(libdevice.lgamma(nf + 1))
    sign = tl.where(n % 2 == 1, 1.0, -1.0).to(x.dtype)
    return sign * factorial * _zeta(nf + 1, x)


@triton.jit
def _frexp(x):
    """(mantissa, exponent): x = mantissa * 2^exponent with |mantissa| in [0.5, 1), from the bits (Triton's
    float ops flush subnormals, CUDA's frexp does not); zero, inf and NaN give themselves and exponent 0."""
    if x.dtype == tl.float64:
        IT: tl.constexpr = tl.int64
        M: tl.constexpr = 52
        EMAX: tl.constexpr = 0x7FF
        HALF: tl.constexpr = 1022  # the biased exponent of [0.5, 1)
        TOP: tl.constexpr = 63
    else:
        IT: tl.constexpr = tl.int32
        M: tl.constexpr = 23
        EMAX: tl.constexpr = 0xFF
        HALF: tl.constexpr = 126
        TOP: tl.constexpr = 31
    bits = x.to(IT, bitcast=True)
    field = (bits >> M) & EMAX
    frac = bits & ((1 << M) - 1)
    special = ((field == 0) & (frac == 0)) | (field == EMAX)
    subnormal = (field == 0) & (frac != 0)
    lead = TOP - libdevice.clz(frac)  # the highest set bit of a subnormal's fraction
    shift = tl.where(subnormal, M - lead, 0).to(IT)
    frac = tl.where(subnormal, (frac << shift) & ((1 << M) - 1), frac)
    e = tl.where(subnormal, lead - (HALF + M - 1), field - HALF).to(tl.int32)
    sign = bits & ~((1 << TOP) - 1)
    m = (sign | (HALF << M) | frac).to(x.dtype, bitcast=True)
    return tl.where(special, x, m), tl.where(special, 0, e)


@triton.jit
def _special_kernel(x_ptr, y_ptr, out_ptr, out2_ptr, xbits, ybits, n, n1, n2, n3, n4, n5,
                    x0, x1, x2, x3, x4, x5, y0, y1, y2, y3, y4, y5, o0, o1, o2, o3, o4, o5,
                    p0, p1, p2, p3, p4, p5, param,
                    OP: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK: tl.constexpr):
    """out (and out2) = f(x (, y)) over a 6-d space; numbers come as float64 bit patterns.
    OP: 0 i0e, 1 i1e, 2 zeta(x, y), 3 trigamma, 4 polygamma(param, x), 5 ldexp(x, y), 6 frexp -> (out, out2)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    c0, c1, c2, c3, c4, c5 = unravel6(i, n1, n2, n3, n4, n5)
    oo = c0 * o0 + c1 * o1 + c2 * o2 + c3 * o3 + c4 * o4 + c5 * o5
    if X_SCALAR:
        x = tl.full((BLOCK,), xbits, tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)
    else:
        x = tl.load(x_ptr + (c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5), mask=mask).to(COMPUTE)
    if OP == 0:
        r = _i0e(x)
    elif OP == 1:
        r = _i1e(x)
    elif OP == 2:
        if Y_SCALAR:
            y = tl.full((BLOCK,), ybits, tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)
        else:
            y = tl.load(y_ptr + (c0 * y0 + c1 * y1 + c2 * y2 + c3 * y3 + c4 * y4 + c5 * y5), mask=mask).to(COMPUTE)
        r = _zeta(x, y)
    elif OP == 3:
        r = _trigamma(x)
    elif OP == 4:
        r = _polygamma(x, param)
    elif OP == 5:  # std::ldexp in double, one rounding to the result; exponents wrap to a C int
        e = tl.load(y_ptr + (c0 * y0 + c1 * y1 + c2 * y2 + c3 * y3 + c4 * y4 + c5 * y5), mask=mask, other=0)
        r = from_f64(libdevice.ldexp(x.to(tl.float64), e.to(tl.int32)), out_ptr.dtype.element_ty)
    else:
        r, e = _frexp(x)
        po = c0 * p0 + c1 * p1 + c2 * p2 + c3 * p3 + c4 * p4 + c5 * p5
        tl.store(out2_ptr + po, e, mask=mask)
    tl.store(out_ptr + oo, r.to(out_ptr.dtype.element_ty), mask=mask)


I0E, I1E, ZETA, TRIGAMMA, POLYGAMMA, LDEXP, FREXP = range(7)


def _strides_at(x, shape):
    return broadcast_strides(x._shape, x._stride, shape) if isinstance(x, Tensor) else (0,) * len(shape)


def _pointwise(op, code, compute, operands, res, res2=None, param=0):
    """res (, res2) = the special function `code` of one or two operands (tensors or numbers)."""
    n = res.numel()
    if n == 0:
        return
    x, y = (list(operands) + [None])[:2]
    x, y = _as_number(x, res), _as_number(y, res)
    shape = tuple(res._shape)
    aux = res2 if res2 is not None else res
    sizes, strides = geometry6(op, shape, _strides_at(x, shape), _strides_at(y, shape), res._stride,
                               broadcast_strides(aux._shape, aux._stride, shape))
    x_scalar, y_scalar = not isinstance(x, Tensor), y is not None and not isinstance(y, Tensor)
    kernel = _kernel(_special_kernel, OP=code, X_SCALAR=x_scalar, Y_SCALAR=y_scalar, COMPUTE=compute, BLOCK=BLOCK)
    kernel(_grid(n), res if x_scalar else x, res if (y is None or y_scalar) else y, res, aux,
           _bits(x, True) if x_scalar else 0, _bits(y, True) if y_scalar else 0, n, *sizes,
           *[s for st in strides for s in st], int(param))


def _target(op, spec, out, first, args):
    """The result: new, or out= checked by the op's dtype rule (in place when out is the first operand)."""
    check = getattr(op.meta, "check_out", None)
    if check is not None and isinstance(out, Tensor):
        check(spec, out, out is first, args)
    return output(op.name[4:], out, spec.shape, spec.dtype, spec.device, inplace=out is first)


def _float_compute(spec):
    if spec.common.is_complex:
        raise NotImplementedError(f"complex tensors on CUDA are not supported by this op yet ({spec.common})")
    return tl.float64 if spec.common is dt.float64 else tl.float32


def _register_unary(op, code):
    def kernel(a, out=None):
        spec = op.meta(a)
        res = _target(op, spec, out, a, (a,))
        _pointwise(op.name[4:], code, _float_compute(spec), (a,), res)
        return _finish(res, out)
    op.register(CUDA, kernel)


def _zeta_kernel(a, b, out=None):
    op = ew.special_zeta
    spec = op.meta(a, b)
    res = _target(op, spec, out, a, (a, b))
    _pointwise("special_zeta", ZETA, _float_compute(spec), (a, b), res)
    return _finish(res, out)


def _polygamma_kernel(a, n, out=None):
    op = ew.polygamma
    spec = op.meta(a, n)
    if n == 0:  # torch's polygamma(0, x) is its digamma kernel
        return ew.digamma(a, out=out)
    res = _target(op, spec, out, a, (a,))
    _pointwise("polygamma", TRIGAMMA if n == 1 else POLYGAMMA, _float_compute(spec), (a,), res, param=n)
    return _finish(res, out)


def _ldexp_kernel(a, e, out=None):
    op = ew.ldexp
    spec = op.meta(a, e)
    res = _target(op, spec, out, a, (a, e))
    _pointwise("ldexp", LDEXP, _float_compute(spec), (a, e), res)
    return _finish(res, out)


def _frexp_kernel(a, out=None):
    spec = ew.frexp.meta(a, out)
    mantissa_out, exponent_out = out if out is not None else (None, None)
    mantissa = output("frexp", mantissa_out, spec.shape, spec.dtype, spec.device)
    exponent = output("frexp", exponent_out, spec.shape, dt.int32, spec.device)
    _pointwise("frexp", FREXP, tl.float64 if spec.dtype is dt.float64 else tl.float32, (a,), mantissa, exponent)
    if out is not None:
        bump_version(mantissa)
        bump_version(exponent)
    return ew.frexp_result(mantissa, exponent)


def _conj_kernel(a, out=None):
    """The conjugate, materialised: a copy for real tensors, the imaginary half negated for complex."""
    op = ew.conj
    spec = op.meta(a)
    res = _target(op, spec, out, a, (a,))
    if a._dtype.is_complex:
        src, dst = views.view_as_real(a), views.view_as_real(res)
        creation.copy_(views.select(dst, -1, 0), views.select(src, -1, 0))
        ew.neg(views.select(src, -1, 1), out=views.select(dst, -1, 1))
    elif res is not a:
        creation.copy_(res, a)
    return _finish(res, out)


_register_unary(ew.special_i0e, I0E)
_register_unary(ew.special_i1e, I1E)
ew.special_zeta.register(CUDA, _zeta_kernel)
ew.polygamma.register(CUDA, _polygamma_kernel)
ew.ldexp.register(CUDA, _ldexp_kernel)
ew.frexp.register(CUDA, _frexp_kernel)
ew.conj.register(CUDA, _conj_kernel)


# -- binary search: searchsorted, bucketize, isin (sorted), segment ids ------------------------------------------

SEARCH, CONTAINS, SEGMENT = 0, 1, 2


@triton.jit
def _search_kernel(seq, sorter, vals, out, n, per_row, m, steps, vbits,
                   MODE: tl.constexpr, RIGHT: tl.constexpr, SORTER: tl.constexpr, VSCALAR: tl.constexpr,
                   VFLOAT: tl.constexpr, CT: tl.constexpr, CMP: tl.constexpr, INVERT: tl.constexpr,
                   BLOCK: tl.constexpr):
    """Value k (contiguous, flat) searches row k // per_row of seq (contiguous rows of m >= 1) with
    torch's cus_lower_bound / cus_upper_bound (`!(mid >= v)` goes right, which places NaNs):
      MODE 0: out[k] = the bound (through sorter's order when SORTER)
      MODE 1: out[k] = whether the sorted row holds the value (xor INVERT)
      MODE 2: out[k] = the segment of position k % per_row among the row's m offsets (upper bound - 1;
              m - 1 for positions before the first or at/after the last offset)."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    base = (k // per_row) * m
    if MODE == 2:
        v = (k % per_row).to(CMP)
    elif VSCALAR:
        v = tl.full((BLOCK,), vbits, tl.int64)
        if VFLOAT:
            v = from_f64(v.to(tl.float64, bitcast=True), CT)
        v = v.to(CT).to(CMP)
    else:
        v = tl.load(vals + k, mask=inside, other=0).to(CT).to(CMP)
    lo = tl.zeros((BLOCK,), tl.int64)
    hi = tl.zeros((BLOCK,), tl.int64) + m
    for _ in range(steps):
        active = lo < hi
        mid = lo + ((hi - lo) >> 1)
        ld = inside & active
        pos = base + mid
        if SORTER:
            pos = base + tl.load(sorter + pos, mask=ld, other=0)
        s = tl.load(seq + pos, mask=ld, other=0).to(CT).to(CMP)
        if RIGHT:
            go = ~(s > v)
        else:
            go = ~(s >= v)
        lo = tl.where(active & go, mid + 1, lo)
        hi = tl.where(active & ~go, mid, hi)
    if MODE == 0:
        tl.store(out + k, lo.to(out.dtype.element_ty), mask=inside)
    elif MODE == 1:
        at = tl.minimum(lo, m - 1)
        s = tl.load(seq + base + at, mask=inside, other=0).to(CT).to(CMP)
        hit = (lo < m) & (s == v)
        if INVERT:
            hit = ~hit
        tl.store(out + k, hit.to(out.dtype.element_ty), mask=inside)
    else:
        last = tl.load(seq + base + m - 1, mask=inside, other=0).to(CMP)
        ids = lo - 1
        ids = tl.where((ids < 0) | (v >= last), m - 1, ids)
        tl.store(out + k, ids.to(out.dtype.element_ty), mask=inside)


def _cmp_dtype(d):
    return tl.float32 if d in HALVES else _TL[d]


def _search(target, seq, values, per_row, mode, compute=None, right=False, sorter=None, invert=False):
    """Launch _search_kernel: seq (contiguous rows), values (contiguous tensor, a number, or None
    for MODE 2) into the contiguous tensor target."""
    n = target.numel()
    if n == 0:
        return target
    m = seq._shape[-1] if seq.ndim else 1
    compute = compute or seq._dtype
    vscalar = values is not None and not isinstance(values, Tensor)
    vfloat = vscalar and compute.is_floating_point
    kernel = _kernel(_search_kernel, MODE=mode, RIGHT=bool(right) or mode == SEGMENT, SORTER=sorter is not None,
                     VSCALAR=vscalar, VFLOAT=vfloat, CT=_TL[compute], CMP=_cmp_dtype(compute), INVERT=bool(invert),
                     BLOCK=SEARCH_BLOCK)
    vals = target if values is None or vscalar else values
    kernel(_grid(n, SEARCH_BLOCK), seq, sorter if sorter is not None else seq, vals, target, n, max(per_row, 1), m,
           m.bit_length(), _bits(values, vfloat) if vscalar else 0)
    return target


def _on_device(t, device):
    return t if not isinstance(t, Tensor) or t._device == device else creation.to(t, t._dtype, device)


def _search_op(op, spec, seq, values, right, sorter, out):
    res = output(op, out, spec.shape, spec.dtype, spec.device)
    n, m = res.numel(), seq._shape[-1]
    if n == 0:
        return _finish(res, out)
    if m == 0:
        creation.copy_(res, creation.full((), 0, res._dtype, device=res._device))
        return _finish(res, out)
    if sorter is not None and sorter.numel():
        lo, hi = _host_values(*r.aminmax(sorter, None, False))  # torch checks the range on the host too
        if lo < 0 or hi >= m:
            raise RuntimeError("torch.searchsorted(): sorter index out of range")
    values = _on_device(values, res._device)
    vals = _dense(values) if isinstance(values, Tensor) else values
    per_row = n if seq.ndim == 1 else values._shape[-1]
    target = res if res.is_contiguous() else empty(spec.shape, spec.dtype, spec.device)
    _search(target, _dense(seq), vals, per_row, SEARCH, spec.compute, right,
            _dense(sorter) if sorter is not None else None)
    if target is not res:
        creation.copy_(res, target)
    return _finish(res, out)


def _searchsorted(seq, values, out_int32=False, right=False, sorter=None, out=None):
    spec = so.searchsorted.meta(seq, values, out_int32, right, sorter, out)
    return _search_op("searchsorted", spec, seq, values, right, sorter, out)


def _bucketize(values, boundaries, out_int32=False, right=False, out=None):
    spec = so.bucketize.meta(values, boundaries, out_int32, right, out)
    return _search_op("bucketize", spec, boundaries, values, right, None, out)


# -- isin ----------------------------------------------------------------------------------------------------------

ISIN_LOOP_MAX = 4096  # test sets up to this size are scanned; larger ones are sorted and searched


@triton.jit
def _isin_kernel(e, t, out, n, m, n1, n2, n3, n4, n5, e0, e1, e2, e3, e4, e5,
                 CT: tl.constexpr, CMP: tl.constexpr, INVERT: tl.constexpr, BLOCK: tl.constexpr):
    """out[k] (contiguous) = whether element k (any strides) equals one of the m test elements."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    x = tl.load(e + (c0 * e0 + c1 * e1 + c2 * e2 + c3 * e3 + c4 * e4 + c5 * e5), mask=inside, other=0)
    x = x.to(CT).to(CMP)
    hit = k < 0
    for j in range(m):
        hit = hit | (x == tl.load(t + j).to(CT).to(CMP))
    if INVERT:
        hit = ~hit
    tl.store(out + k, hit.to(out.dtype.element_ty), mask=inside)


def _isin(elements, test_elements, assume_unique=False, invert=False, out=None):
    spec = so.isin.meta(elements, test_elements, assume_unique, invert, out)
    device, compute = spec.device, spec.compute
    if compute.is_complex:
        raise NotImplementedError("isin: complex tensors on CUDA are not supported yet")
    res = output("isin", out, spec.shape, dt.bool_, device)
    n = res.numel()
    if n == 0:
        return _finish(res, out)
    if not isinstance(elements, Tensor):
        elements = creation.full((), elements, compute, device=device)
    if not isinstance(test_elements, Tensor):
        test_elements = creation.full((1,), test_elements, compute, device=device)
    elements, test_elements = _on_device(elements, device), _on_device(test_elements, device)
    tests = _dense(test_elements, (-1,))
    m = tests.numel()
    target = res if res.is_contiguous() else empty(spec.shape, dt.bool_, device)
    if m == 0:
        creation.copy_(target, creation.full((), bool(invert), dt.bool_, device=device))
    elif m > ISIN_LOOP_MAX and DispatchKey.CUDA in so.sort.table:
        ordered = so.sort(creation.to(tests, compute, device), 0, False, False)[0]
        _search(target, ordered, _dense(elements, (-1,)), n, CONTAINS, compute, invert=invert)
    else:
        sizes, (es,) = geometry6("isin", tuple(elements._shape), elements._stride)
        kernel = _kernel(_isin_kernel, CT=_TL[compute], CMP=_cmp_dtype(compute), INVERT=bool(invert),
                         BLOCK=SEARCH_BLOCK)
        kernel(_grid(n, SEARCH_BLOCK), elements, tests, target, n, m, *sizes, *es)
    if target is not res:
        creation.copy_(res, target)
    return _finish(res, out)


so.searchsorted.register(CUDA, _searchsorted)
so.bucketize.register(CUDA, _bucketize)
so.isin.register(CUDA, _isin)


# -- histc, bincount: atomic counting ------------------------------------------------------------------------------

@triton.jit
def _histc_kernel(x, counts, n, nbins, lo_bits, hi_bits, n1, n2, n3, n4, n5, x0, x1, x2, x3, x4, x5,
                  FLOAT: tl.constexpr, CT: tl.constexpr, BLOCK: tl.constexpr):
    """torch's getBin: bin = (int)((x - lo) * nbins / (hi - lo)) for lo <= x <= hi, the top edge in
    the last bin; the bounds in the accumulate type (float32, float64, or int64 for integers)."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    v = tl.load(x + (c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5), mask=inside, other=0).to(CT)
    lo = tl.full((BLOCK,), lo_bits, tl.int64)
    hi = tl.full((BLOCK,), hi_bits, tl.int64)
    if FLOAT:
        lo = lo.to(tl.float64, bitcast=True).to(CT)
        hi = hi.to(tl.float64, bitcast=True).to(CT)
        if CT == tl.float64:
            b = ((v - lo) * nbins / (hi - lo)).to(tl.int32).to(tl.int64)
        else:  # IEEE division, as CUDA's (Triton's float32 `/` may be approximate)
            b = tl.div_rn((v - lo) * nbins, hi - lo).to(tl.int32).to(tl.int64)
    else:
        b = ((v - lo) * nbins) // (hi - lo)
    ok = inside & (v >= lo) & (v <= hi)
    b = tl.where(b >= nbins, nbins - 1, tl.where(b < 0, 0, b))
    tl.atomic_add(counts + b, tl.full((BLOCK,), 1, tl.int64), mask=ok)


def _histc(a, bins=100, min=0, max=0, out=None):  # noqa: A002
    check_input("histc", a)
    d = a._dtype
    if d is dt.float16:
        raise RuntimeError("HalfTensor is not supported")
    if d is dt.bool_ or d is dt.bfloat16 or d.is_complex:
        raise NotImplementedError(f"\"histc\" not implemented for '{TYPE_NAMES[d]}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if out is not None and out._dtype is not d:
        raise RuntimeError(f"torch.histogram: input tensor and hist tensor should have the same dtype, but got "
                           f"input {TYPE_NAMES[d]} and hist {TYPE_NAMES[out._dtype]}")
    if not (math.isfinite(min) and math.isfinite(max)):
        raise RuntimeError(f"torch.histc: range of [{min:g}, {max:g}] is not finite")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    is_float = d.is_floating_point
    convert = (lambda v: float(np.float32(v)) if d is dt.float32 else float(v)) if is_float else int
    lo, hi = convert(min), convert(max)
    if lo == hi and a.numel():  # the data's range: read on the host, as torch does
        lo, hi = (convert(v) for v in _host_values(*r.aminmax(a, None, False)))
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if is_float and not (math.isfinite(lo) and math.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo:g}, {hi:g}] is not finite")
    if not lo < hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    counts = creation.full((bins,), 0, dt.int64, device=a._device)
    n = a.numel()
    if n:
        sizes, (xs,) = geometry6("histc", tuple(a._shape), a._stride)
        kernel = _kernel(_histc_kernel, FLOAT=is_float, CT=tl.float64 if d is dt.float64 else
                         tl.float32 if is_float else tl.int64, BLOCK=BLOCK)
        kernel(_grid(n), a, counts, n, bins, _bits(lo, is_float), _bits(hi, is_float), *sizes, *xs)
    res = output("histc", out, (bins,), d, a._device)
    creation.copy_(res, counts)
    return _finish(res, out)


@triton.jit
def _bincount_kernel(x, w, out, n, xs, ws, WEIGHTS: tl.constexpr, BLOCK: tl.constexpr):
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    v = tl.load(x + k * xs, mask=inside, other=0).to(tl.int64)
    if WEIGHTS:
        add = tl.load(w + k * ws, mask=inside, other=0).to(out.dtype.element_ty)
    else:
        add = tl.full((BLOCK,), 1, tl.int64)
    tl.atomic_add(out + v, add, mask=inside)


def _bincount(a, weights=None, minlength=0):
    spec = so.bincount.meta(a, weights, minlength)
    device = a._device
    n = a.numel()
    if n == 0:  # torch: int64 zeros, weights or not
        return creation.full((minlength,), 0, dt.int64, device=device)
    weights = _on_device(weights, device)
    if weights is not None:
        common_device("bincount", (a, weights))
    lo, hi = _host_values(*r.aminmax(a, None, False))  # the result size is data: a sync, as torch's
    if lo < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    size = max(int(hi) + 1, minlength)
    res = creation.full((size,), 0, spec.dtype, device=device)
    kernel = _kernel(_bincount_kernel, WEIGHTS=weights is not None, BLOCK=BLOCK)
    kernel(_grid(n), a, weights if weights is not None else res, res, n, a._stride[0],
           weights._stride[0] if weights is not None else 0)
    return res


so.histc.register(CUDA, _histc)
so.bincount.register(CUDA, _bincount)


# -- unique, unique_consecutive --------------------------------------------------------------------------------

def _rows(a, dim):
    """(rows (n, m) contiguous, rest shape): the elements as one column, or the slices along dim as rows."""
    if a._dtype is dt.bool_:  # compared and sorted as bytes
        a = views.view_dtype(a, dt.uint8)
    if dim is None:
        return _dense(a, (a.numel(), 1)), ()
    moved = _dense(views.movedim(a, (dim,), (0,)))
    rest = tuple(moved._shape[1:])
    return views.reshape(moved, (moved._shape[0], sh.numel(rest))), rest


def _lexsort(rows):
    """The stable order of the rows of (n, m): one stable sort per column, last column first."""
    n, m = rows._shape
    if m == 1:
        return so.sort(views.select(rows, 1, 0), 0, False, True)[1]
    perm = None
    for j in reversed(range(m)):
        column = views.select(rows, 1, j)
        key = column if perm is None else sc.index_select(column, 0, perm)
        order = so.sort(_dense(key), 0, False, True)[1]
        perm = order if perm is None else sc.index_select(perm, 0, order)
    return perm


def _group_starts(rows):
    """(starts, k): where each run of equal consecutive rows starts (NaN equals nothing) and how
    many runs; reads k on the host (a synchronisation)."""
    n = rows._shape[0]
    first = creation.full((n,), True, dt.bool_, device=rows._device)
    if n > 1:
        changed = r.any(ew.ne(views.narrow(rows, 0, 1, n - 1), views.narrow(rows, 0, 0, n - 1)), 1, False)
        creation.copy_(views.narrow(first, 0, 1, n - 1), changed)
    return true_positions(first)


def _group_ids(bounds, n):
    """The run of each of the n rows (int64), from the runs' bounds (starts, then n): a segment search."""
    return _search(empty((n,), dt.int64, bounds._device), bounds, None, n, SEGMENT, dt.int64)


def _unique_results(a, dim, rows, rest, order, return_inverse):
    """(output, inverse, counts) from the rows taken in `order` (None: as they are)."""
    n = rows._shape[0]
    ordered = rows if order is None else sc.index_select(rows, 0, order)
    starts, k = _group_starts(ordered)
    bounds = joining.cat([starts, creation.full((1,), n, dt.int64, device=a._device)], 0)
    counts = ew.sub(views.narrow(bounds, 0, 1, k), views.narrow(bounds, 0, 0, k))
    picked = sc.index_select(ordered, 0, starts)  # (k, m)
    if a._dtype is dt.bool_:
        picked = views.view_dtype(picked, dt.bool_)
    if dim is None:
        output_ = views.reshape(picked, (k,))
    else:
        output_ = _dense(views.movedim(views.reshape(picked, (k,) + rest), (0,), (dim,)))
    inverse_shape = tuple(a._shape) if dim is None else (n,)
    if not return_inverse:
        return output_, empty((0,), dt.int64, a._device), counts
    ids = _group_ids(bounds, n)
    if order is None:
        inverse = ids
    else:
        inverse = empty((n,), dt.int64, a._device)
        launch_indexed("unique", (n,), ids, (1,), order, (1,), inverse, (0,), src_indexed=False, ddim=1, check=False)
    return output_, views.reshape(inverse, inverse_shape), counts


def _empty_unique(a, dim):
    out_shape = (0,) if dim is None else tuple(a._shape)
    inverse_shape = tuple(a._shape) if dim is None else (0,)
    return (empty(out_shape, a._dtype, a._device), empty(inverse_shape, dt.int64, a._device),
            empty((0,), dt.int64, a._device))


def _unique(a, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    spec = so.unique.meta(a, sorted, return_inverse, return_counts, dim)
    if a.numel() == 0:
        return _empty_unique(a, spec.dim)
    if DispatchKey.CUDA not in so.sort.table:
        raise NotImplementedError("unique: needs sort on CUDA, which is not available yet")
    rows, rest = _rows(a, spec.dim)
    return _unique_results(a, spec.dim, rows, rest, _lexsort(rows), return_inverse)


def _unique_consecutive(a, return_inverse=False, return_counts=False, dim=None):
    spec = so.unique_consecutive.meta(a, return_inverse, return_counts, dim)
    if a.numel() == 0:
        return _empty_unique(a, spec.dim)
    rows, rest = _rows(a, spec.dim)
    return _unique_results(a, spec.dim, rows, rest, None, return_inverse)


so.unique.register(CUDA, _unique)
so.unique_consecutive.register(CUDA, _unique_consecutive)


# -- one_hot, embedding_renorm_ ------------------------------------------------------------------------------------

def _one_hot(x, num_classes=-1):
    """torch's CUDA one_hot: zeros scattered with ones; class values out of range are reported by the
    scatter at the next synchronisation (no sync here unless num_classes must be read from the data)."""
    nn.one_hot.meta(x, num_classes)
    shape = tuple(x._shape)
    if x.numel() == 0:
        return empty(shape + (num_classes,), dt.int64, x._device)
    if num_classes == -1:
        num_classes = int(_host_values(r.amax(x, None, False))[0]) + 1
    elif num_classes < 1:
        raise RuntimeError("num_classes should be positive")
    res = creation.full(shape + (num_classes,), 0, dt.int64, device=x._device)
    return sc.scatter(res, -1, views.unsqueeze(x, -1), 1, out=res)


@triton.jit
def _first_kernel(idx, first, err, K, nw, code, BLOCK: tl.constexpr):
    """first[row] = the smallest position k whose index names the row (so each row is renormed once)."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < K
    j = tl.load(idx + k, mask=inside, other=0).to(tl.int64)
    ok = (j >= 0) & (j < nw)
    _report(err, inside & ~ok, j, code, 0, nw, BLOCK)
    tl.atomic_min(first + tl.where(ok, j, 0), k, mask=inside & ok)


@triton.jit
def _renorm_rows_kernel(w, idx, first, dim, s0, s1, nw, max_bits, p_bits, inv_p_bits,
                        NORM: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """torch's renorm_kernel for the row named by position k (if k is its first occurrence): the
    row's p-norm in the accumulate type, and the row scaled by max_norm / (norm + 1e-7) above max_norm."""
    k = tl.program_id(0)
    j = tl.load(idx + k).to(tl.int64)
    ok = (j >= 0) & (j < nw)
    jj = tl.where(ok, j, 0)
    if ok & (tl.load(first + jj) == k):
        lane = tl.arange(0, BLOCK)
        p = tl.full((BLOCK,), p_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        acc = tl.zeros((BLOCK,), ACC)
        row = w + jj * s0
        for c in range(0, dim, BLOCK):
            cols = c + lane
            x = tl.load(row + cols * s1, mask=cols < dim, other=0).to(ACC)
            if NORM == 1:
                acc += tl.abs(x)
            elif NORM == 2:
                acc += x * x
            else:
                acc += tl.where(cols < dim, libdevice.pow(x, p), 0.0)
        total = tl.sum(acc, 0)
        inv_p = tl.full((), inv_p_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        norm = libdevice.pow(total, inv_p)
        max_norm = tl.full((), max_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        if norm > max_norm:
            factor = from_f64(max_norm.to(tl.float64) / (norm.to(tl.float64) + 1e-7), w.dtype.element_ty)
            for c in range(0, dim, BLOCK):
                cols = c + lane
                x = tl.load(row + cols * s1, mask=cols < dim, other=0)
                tl.store(row + cols * s1, (x.to(ACC) * factor.to(ACC)).to(x.dtype), mask=cols < dim)


def _embedding_renorm_(weight, indices, max_norm, norm_type):
    nn.embedding_renorm_.meta(weight, indices, max_norm, norm_type)
    common_device("embedding_renorm_", (weight, indices))
    if weight._dtype not in _TL or not weight._dtype.is_floating_point:
        raise NotImplementedError(f"\"embedding_renorm_\" not implemented for '{TYPE_NAMES[weight._dtype]}'")
    flat = _dense(indices, (-1,))
    K, (nw, dim) = flat.numel(), weight._shape
    if K and dim:
        first = creation.full((nw,), K, dt.int64, device=weight._device)
        _kernel(_first_kernel, BLOCK=BLOCK)(_grid(K), flat, first, _err(weight), K, nw,
                                            device_errors.code_of("embedding_renorm_"))
        norm = 1 if norm_type == 1 else 2 if norm_type == 2 else 0
        acc = tl.float64 if weight._dtype is dt.float64 else tl.float32
        block = max(16, min(1024, launcher.next_power_of_2(dim)))
        _kernel(_renorm_rows_kernel, NORM=norm, ACC=acc, BLOCK=block)(
            (K,), weight, flat, first, dim, weight._stride[0], weight._stride[1], nw, _bits(max_norm, True),
            _bits(norm_type, True), _bits(1.0 / norm_type, True))
    bump_version(weight)
    return weight


nn.one_hot.register(CUDA, _one_hot)
nn.embedding_renorm_.register(CUDA, _embedding_renorm_)


# -- segment_reduce, segment_ids ---------------------------------------------------------------------------------

SEG_SUM, SEG_MEAN, SEG_MAX, SEG_MIN, SEG_PROD = range(5)
_SEG_CODES = {"sum": SEG_SUM, "mean": SEG_MEAN, "max": SEG_MAX, "min": SEG_MIN, "prod": SEG_PROD}
_SEG_START = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "max": float("-inf"), "min": float("inf")}


@triton.jit
def _offsets_kernel(lengths, offsets, S, BLOCK: tl.constexpr):
    """offsets[row] = (0, cumsum(lengths[row])): S + 1 bounds per row of S lengths."""
    row = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, BLOCK)
    carry = tl.sum(tl.zeros((BLOCK,), tl.int64), 0)
    tl.store(offsets + row * (S + 1) + lane, tl.zeros((BLOCK,), tl.int64), mask=lane == 0)
    for c in range(0, S, BLOCK):
        cols = c + lane
        length = tl.load(lengths + row * S + cols, mask=cols < S, other=0).to(tl.int64)
        tl.store(offsets + row * (S + 1) + 1 + cols, carry + tl.cumsum(length, 0), mask=cols < S)
        carry += tl.sum(length, 0)


@triton.jit
def _segment_reduce_kernel(data, offsets, out, S, L, inner, init_bits, REDUCE: tl.constexpr, HAS_INIT: tl.constexpr,
                           CT: tl.constexpr, BLOCK: tl.constexpr):
    """torch's segment_reduce_forward_kernel: output (o, s, i) folds data[o, start:end, i] one element
    after the other in the data's dtype (from `initial`); mean divides by the segment's length, NaN
    for an empty segment without `initial`."""
    pid = tl.program_id(0).to(tl.int64)
    o = pid // S
    s = pid % S
    cols = tl.program_id(1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < inner
    start = tl.load(offsets + o * (S + 1) + s)
    end = tl.load(offsets + o * (S + 1) + s + 1)
    lo = tl.minimum(tl.maximum(start, 0), L)
    hi = tl.minimum(tl.maximum(end, lo), L)
    DT: tl.constexpr = out.dtype.element_ty
    acc = from_f64(tl.full((BLOCK,), init_bits, tl.int64).to(tl.float64, bitcast=True), DT).to(CT)
    base = data + o * L * inner + cols
    for j in range(lo, hi):
        v = tl.load(base + j * inner, mask=inside, other=0).to(CT)
        if REDUCE == 0 or REDUCE == 1:
            acc = acc + v
        elif REDUCE == 2:  # std::max(acc, v), NaN data wins
            acc = tl.where(v != v, v, tl.where(acc < v, v, acc))
        elif REDUCE == 3:
            acc = tl.where(v != v, v, tl.where(v < acc, v, acc))
        else:
            acc = acc * v
        acc = acc.to(DT).to(CT)
    if REDUCE == 1:
        count = (end - start).to(tl.float32).to(DT).to(CT)  # c10: int64 -> float -> the dtype
        mean = tl.where(acc == acc, acc / count, acc)
        if HAS_INIT:
            acc = tl.where(end - start > 0, mean, acc)
        else:
            acc = tl.where(end - start > 0, mean, float("nan"))
    tl.store(out + (o * S + s) * inner + cols, acc.to(DT), mask=inside)


def _offsets(bounds, from_lengths):
    """int64 offsets (*outer, S + 1), contiguous, from lengths (*outer, S) or given offsets."""
    if not from_lengths:
        return _dense(creation.to(bounds, dt.int64, bounds._device))
    lengths = _dense(bounds)
    S = lengths._shape[-1]
    rows = sh.numel(lengths._shape[:-1])
    offsets = empty(tuple(lengths._shape[:-1]) + (S + 1,), dt.int64, bounds._device)
    if rows:
        _kernel(_offsets_kernel, BLOCK=256)((rows,), lengths, offsets, S)
    return offsets


def _check_lengths(lengths, size):
    """torch's checks of lengths when not unsafe, read on the host (torch syncs here too)."""
    if lengths.numel() == 0:
        return
    negative = r.any(ew.lt(lengths, 0), None, False)
    mismatch = r.any(ew.ne(r.sum(lengths, (-1,), False, dt.int64), size), None, False)
    bad_negative, bad_sum = _host_values(negative, mismatch)
    if bad_negative:
        raise RuntimeError("lengths contains negative value!")
    if bad_sum:
        raise RuntimeError("segment_reduce(): Expected all rows of lengths along axis to sum to "
                           "data.size(lengths.dim()-1) when !unsafe.")


def _segment_ids(bounds, size, from_lengths, unsafe):
    sc.segment_ids_meta(bounds, size, from_lengths, unsafe)
    offsets = _offsets(bounds, from_lengths)
    res = empty(tuple(bounds._shape[:-1]) + (size,), dt.int64, bounds._device)
    return _search(res, offsets, None, size, SEGMENT, dt.int64)


def _segment_reduce(data, reduce, lengths=None, indices=None, offsets=None, axis=0, unsafe=False, initial=None):
    axis, bounds, from_lengths, S, shape = sc.segment_reduce_meta(data, reduce, lengths, indices, offsets, axis,
                                                                  unsafe, initial)
    common_device("segment_reduce", (data, bounds))
    if tuple(bounds._shape[:-1]) != tuple(data._shape[:axis]):
        raise RuntimeError(f"segment_reduce(): expected lengths/offsets of shape {list(data._shape[:axis])} plus "
                           f"one dim, but got {list(bounds._shape)}")
    L = data._shape[axis]
    if from_lengths and not unsafe:
        _check_lengths(bounds, L)
    res = empty(shape, data._dtype, data._device)
    outer, inner = sh.numel(data._shape[:axis]), sh.numel(data._shape[axis + 1:])
    if res.numel():
        starts = _offsets(bounds, from_lengths)
        block = max(16, min(1024, launcher.next_power_of_2(inner)))
        start = _SEG_START[reduce] if initial is None else float(initial)
        kernel = _kernel(_segment_reduce_kernel, REDUCE=_SEG_CODES[reduce], HAS_INIT=initial is not None,
                         CT=_compute(data._dtype), BLOCK=block)
        kernel((outer * S, launcher.cdiv(inner, block)), _dense(data), starts, res, S, L, inner, _bits(start, True))
    return res


sc.segment_ids.register(CUDA, _segment_ids)
sc.segment_reduce.register(CUDA, _segment_reduce)


# -- linear algebra composites: trace, dot, vdot, addr, cross, dist, renorm ---------------------------------------

def _trace(a):
    """torch's CUDA trace: the diagonal's sum (integers and bools sum to int64)."""
    if not isinstance(a, Tensor) or a.ndim != 2:
        return la.trace.meta(a)  # raises torch's error
    return r.sum(views.diagonal(a, 0, 0, 1), None, False, None)


def _vector_view(v, rows):
    """A 1-d tensor as a (1, n) row or an (n, 1) column matrix view."""
    from vibetensor.tensor.tensor import alias
    n, s = v._shape[0], v._stride[0]
    return alias(v, (1, n), (1, s), v._offset) if rows else alias(v, (n, 1), (s, 1), v._offset)


def _product(name):
    def kernel(a, b, out=None):
        spec = getattr(la, name).meta(a, b, out)
        d = spec.dtype
        if d.category < 2:  # torch's CUDA dot dispatches floating types only (vdot of reals is dot)
            raise NotImplementedError(f"\"dot\" not implemented for '{TYPE_NAMES[d]}'")
        if d.is_complex and name == "vdot":  # vdot conjugates its first vector (complex.py has the kernels)
            a = ew.conj(a)
        value = la.mm(_vector_view(a, True), _vector_view(b, False))  # (1, 1), cuBLAS, float32 accumulation
        return _store(name, out, spec, views.reshape(value, ()))
    getattr(la, name).register(CUDA, kernel)


def _dtype_scalar(value, d):
    """alpha/beta as torch's kernels hold them: converted to the result dtype."""
    value = la.scalar(value, d)
    return float(np.array(value, dtype=np.float64).astype(d.np)) if d.is_floating_point else value


def _addr(input, v1, v2, beta=1, alpha=1, out=None):  # noqa: A002
    """torch's addr kernel: beta * input + (alpha * v1) * v2 in the result dtype (rounded after each
    operation for half types, as torch's scalar_t arithmetic); bool: (beta and input) or (alpha and v1 and v2)."""
    spec = la.addr.meta(input, v1, v2, beta, alpha, out)
    d, device = spec.dtype, spec.device
    col = views.unsqueeze(creation.to(v1, d, device), 1)  # (m, 1)
    row = creation.to(v2, d, device)                       # (n,)
    if d is dt.bool_:
        value = ew.logical_and(col, row) if alpha else creation.full(spec.shape, False, d, device=device)
        if beta:
            value = ew.logical_or(input, value)
    else:
        value = ew.mul(ew.mul(col, _dtype_scalar(alpha, d)), row)
        beta = _dtype_scalar(beta, d)
        if beta != 0:
            value = ew.add(ew.mul(creation.to(input, d, device), beta), value)
    res = output("addr", out, spec.shape, d, device, inplace=out is input)
    creation.copy_(res, value)
    return _finish(res, out)


def _cross(a, b, dim=-1, out=None):
    """(a1 b2 - a2 b1, a2 b0 - a0 b2, a0 b1 - a1 b0) along dim, in the tensors' dtype."""
    spec = la.linalg_cross.meta(a, b, dim, out)
    d = sh.wrap_dim(dim, a.ndim)
    x, y = views.expand(a, spec.shape), views.expand(b, spec.shape)
    xs = [views.select(x, d, i) for i in range(3)]
    ys = [views.select(y, d, i) for i in range(3)]
    value = empty(spec.shape, spec.dtype, spec.device)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        ew.sub(ew.mul(xs[j], ys[k]), ew.mul(xs[k], ys[j]), out=views.select(value, d, i))
    if out is None:
        return value
    return _store("linalg_cross", out, spec, value)


def _dist(a, b, p=2, out=None):
    """torch's dist: the p-norm of a - b."""
    spec = la.dist.meta(a, b, p, out)
    return _store("dist", out, spec, r.vector_norm(ew.sub(a, b), p, None, False, None))


def _renorm(a, p, dim, maxnorm, out=None):
    """torch's renorm: each slice's norm in the accumulate type (float32 for half types), the factor
    maxnorm / (norm + 1e-7) where it exceeds maxnorm (else 1) cast to a's dtype, then a * factor."""
    spec = la.renorm.meta(a, p, dim, maxnorm, out)
    acc = la.renorm_norm_dtype(a._dtype)
    norm = r.vector_norm(a, p, la.renorm_dims(a, dim), True, None if acc is a._dtype else acc)
    factor = ew.where(ew.gt(norm, maxnorm), ew.div(maxnorm, ew.add(norm, 1e-7)), 1.0)
    if factor._dtype is not a._dtype:
        factor = creation.to(factor, a._dtype, a._device)
    res = output("renorm", out, spec.shape, spec.dtype, spec.device, inplace=out is a)
    ew.mul(a, factor, out=res)
    return _finish(res, out)


# -- hash_tensor ------------------------------------------------------------------------------------------------
# torch's xor_sum (hash_tensor mode 0): the xor of the elements' 64-bit patterns, floats widened to
# float64 (half types too), integers to int64 (sign-extended), bools as 0/1. Xor is order-free, so any
# reduction order gives torch's bits.

@triton.jit(do_not_specialize=["cols"])
def _xor_rows_kernel(x_ptr, out_ptr, cols, FLOAT: tl.constexpr, BOOL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), tl.int64)
    for start in range(0, cols, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        m = offs < cols
        v = tl.load(x_ptr + row * cols + offs, mask=m, other=0)
        if FLOAT:
            bits = v.to(tl.float64).to(tl.int64, bitcast=True)
        elif BOOL:
            bits = tl.where(v != 0, tl.full((BLOCK,), 1, tl.int64), tl.zeros((BLOCK,), tl.int64))
        else:
            bits = v.to(tl.int64)
        acc = acc ^ tl.where(m, bits, tl.zeros((BLOCK,), tl.int64))
    tl.store(out_ptr + row, tl.xor_sum(acc, 0).to(tl.uint64, bitcast=True))


def _hash_tensor(a, dim=None, keepdim=False, mode=0, out=None):
    from vibetensor.backends.cuda.reduction import _rows  # (the reduced dims last, as a (rows, cols) matrix)
    spec = r.hash_tensor.meta(a, dim, keepdim, mode, out)
    res = output("hash_tensor", out, spec.shape, dt.uint64, spec.device)
    if res.numel() == 0:
        return _finish(res, out)
    x, rows, cols = _rows(a, spec.dims)
    buf = res if res.is_contiguous() else empty(res._shape, dt.uint64, res._device)
    _kernel(_xor_rows_kernel, FLOAT=a._dtype.is_floating_point, BOOL=a._dtype is dt.bool_, BLOCK=BLOCK)(
        (rows,), x, buf, cols)
    if buf is not res:
        creation.copy_(res, buf)
    return _finish(res, out)


r.hash_tensor.register(CUDA, _hash_tensor)
la.trace.register(CUDA, _trace)
_product("dot")
_product("vdot")
la.addr.register(CUDA, _addr)
la.linalg_cross.register(CUDA, _cross)
la.dist.register(CUDA, _dist)
la.renorm.register(CUDA, _renorm)
