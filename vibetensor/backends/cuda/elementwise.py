"""CUDA kernels of the elementwise ops: two Triton kernels, specialised per op and dtype.

`_ew_kernel` (the hot path) loads up to two operands (tensors of any strides after collapsing to
<= 4 dims, broadcasting by zero strides, or Python numbers passed as 64-bit patterns so float64
scalars stay exact), converts them to the compute dtype (float32 for half types, as torch's CUDA
kernels do), applies the op chosen by the `OP` constexpr (Triton prunes the other branches), and
stores in the result's dtype. A contiguous fast path skips the index arithmetic.

`_gx_kernel` is the same engine with a third operand and three float parameters (passed as float64
bit patterns): where, clamp with bounds, lerp, addcmul/addcdiv, and the ops with parameters
(round(decimals), logit(eps), nan_to_num, the activations of activation.py and their backward).

Op codes: unary math 0-99 (`_unary_math`), binary 100-199 (`_binary_math`), with parameters
200-299 (`_param_math`). The tables below map each vt:: op name to its code; ops not in them have
no CUDA kernel yet and raise NotImplementedError from the dispatcher.
"""
import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice
from triton.runtime.jit import constexpr_function

from vibetensor.dispatch import DispatchKey, get, ops
from vibetensor.backends.cuda.plan import planned
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.iterator import broadcast_strides, collapse
from vibetensor.tensor.tensor import Tensor

CUDA = DispatchKey.CUDA
BLOCK = 1024
MAX_DIMS = 4

# codes 0.. in this order (`_unary_math`); "square" and "identity" have no op of their own
UNARY = ["neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos",
         "tan", "tanh", "sigmoid", "erf", "erfc", "floor", "ceil", "trunc", "reciprocal", "relu", "asin", "acos",
         "atan", "sinh", "cosh", "square", "isnan", "isinf", "isfinite", "logical_not", "bitwise_not", "sign",
         "asinh", "acosh", "atanh", "deg2rad", "rad2deg", "frac", "sgn", "signbit", "isposinf", "isneginf",
         "isreal", "erfinv", "lgamma", "digamma", "i0", "special_i1", "special_erfcx", "special_ndtri",
         "special_log_ndtr", "sinc", "special_entr", "round", "logit", "identity",
         # activations (registered by activation.py)
         "silu", "mish", "hardsigmoid", "hardswish", "log_sigmoid", "gelu", "gelu_tanh"]
# codes 100.. in this order (`_binary_math`)
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "pow", "atan2",
          "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "fmod",
          "remainder", "copysign", "hypot", "logaddexp", "logaddexp2", "xlogy", "special_xlog1py", "fmax", "fmin",
          "heaviside", "nextafter", "bitwise_left_shift", "bitwise_right_shift", "div_trunc", "div_floor",
          "float_power", "prelu", "glu"]
# codes 200.. in this order (`_param_math`): operands x (, y (, z)) and parameters p0, p1, p2
PARAM = ["where", "clamp", "clamp_min", "clamp_max", "lerp", "lerp_scalar", "addcmul", "addcdiv", "round_decimals",
         "logit_eps", "nan_to_num", "hardtanh", "leaky_relu", "elu", "softplus", "hardshrink", "softshrink",
         "threshold", "isclose",
         # activation_backward(grad, x, ...): x = grad, y = input
         "gelu_backward", "gelu_tanh_backward", "silu_backward", "mish_backward", "elu_backward",
         "leaky_relu_backward", "softplus_backward", "log_sigmoid_backward", "hardswish_backward",
         "threshold_backward"]
CODE = {**{n: i for i, n in enumerate(UNARY)}, **{n: 100 + i for i, n in enumerate(BINARY)},
        **{n: 200 + i for i, n in enumerate(PARAM)}}
_int_dtype = constexpr_function(tl.core.get_int_dtype)  # (bits, signed) -> tl int dtype, at compile time
_INT_AS_COPY = ("floor", "ceil", "trunc", "round")  # integers round to themselves


@triton.jit
def _offset(i, n1, n2, n3, s0, s1, s2, s3):
    """Memory offset of flat index i in a 4-d index space with the given element strides."""
    i3 = i % n3
    r = i // n3
    i2 = r % n2
    r = r // n2
    i1 = r % n1
    i0 = r // n1
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3


@triton.jit
def _scalar(bits, COMPUTE: tl.constexpr, FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    v = tl.full((BLOCK,), bits, tl.int64)
    if FLOAT:
        v = v.to(tl.float64, bitcast=True)
    return v.to(COMPUTE)


@triton.jit
def _param(bits, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """A float parameter (float64 bits) in the compute dtype (truncated toward 0 for integers)."""
    return tl.full((BLOCK,), bits, tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)


@triton.jit
def _digamma(x):
    """torch's calc_digamma: reflection below 0, recurrence up to 10, then the asymptotic series."""
    xd = x.to(tl.float64)
    PI: tl.constexpr = 3.14159265358979323846
    is_int = xd == libdevice.trunc(xd)
    frac = xd - libdevice.trunc(xd)
    result = tl.where(xd < 0, -PI / libdevice.tan(PI * frac), 0.0).to(x.dtype)
    x = tl.where(x < 0, 1 - x, x)
    for _ in tl.static_range(10):
        small = x < 10
        result = tl.where(small, result - 1 / x, result)
        x = tl.where(small, x + 1, x)
    z = 1 / (x * x)
    poly = 8.33333333333333333333E-2
    poly = poly * z - 2.10927960927960927961E-2
    poly = poly * z + 7.57575757575757575758E-3
    poly = poly * z - 4.16666666666666666667E-3
    poly = poly * z + 3.96825396825396825397E-3
    poly = poly * z - 8.33333333333333333333E-3
    poly = poly * z + 8.33333333333333333333E-2
    y = tl.where(x < 1.0e17, z * poly, 0.0)
    r = tl.log(x) - 0.5 / x - y + result
    r = tl.where(x == 10, result + 2.25175258906672110764, r)  # a whole x lands exactly on 10
    r = tl.where((xd < 0) & is_int, float("nan"), r)
    return tl.where(xd == 0, tl.where(libdevice.signbit(xd) != 0, float("inf"), float("-inf")), r)


@triton.jit
def _unary_math(x, OP: tl.constexpr):
    if OP == 0:
        r = -x
    elif OP == 1:
        r = tl.abs(x)
    elif OP == 2:
        r = tl.exp(x)
    elif OP == 3:
        r = tl.exp2(x)
    elif OP == 4:
        r = libdevice.expm1(x)
    elif OP == 5:
        r = tl.log(x)
    elif OP == 6:
        r = tl.log2(x)
    elif OP == 7:
        r = libdevice.log10(x)
    elif OP == 8:
        r = libdevice.log1p(x)
    elif OP == 9:
        r = tl.sqrt(x)
    elif OP == 10:
        r = tl.rsqrt(x)
    elif OP == 11:
        r = tl.sin(x)
    elif OP == 12:
        r = tl.cos(x)
    elif OP == 13:
        r = libdevice.tan(x)
    elif OP == 14:
        r = libdevice.tanh(x)
    elif OP == 15:
        r = tl.sigmoid(x)
    elif OP == 16:
        r = tl.erf(x)
    elif OP == 17:
        r = libdevice.erfc(x)
    elif OP == 18:
        r = tl.floor(x)
    elif OP == 19:
        r = tl.ceil(x)
    elif OP == 20:
        r = libdevice.trunc(x)
    elif OP == 21:
        r = 1 / x
    elif OP == 22:  # relu keeps NaN, as torch's
        r = tl.where(x < 0, 0, x)
    elif OP == 23:
        r = libdevice.asin(x)
    elif OP == 24:
        r = libdevice.acos(x)
    elif OP == 25:
        r = libdevice.atan(x)
    elif OP == 26:
        r = libdevice.sinh(x)
    elif OP == 27:
        r = libdevice.cosh(x)
    elif OP == 28:
        r = x * x
    elif OP == 29:
        r = x != x
    elif OP == 30:
        r = (x == float("inf")) | (x == float("-inf"))
    elif OP == 31:
        r = (x == x) & (x != float("inf")) & (x != float("-inf"))
    elif OP == 32:
        r = x == 0
    elif OP == 33:
        r = ~x
    elif OP == 34:  # sign (of NaN: 0), torch's (0 < x) - (x < 0); no int -1 -> bfloat16 conversion:
        # Triton 3.6 folds where(c, -1, 0) -> bf16/f16 into a vectorised selp(1, 0) (negatives gave +1)
        r = (x > 0).to(x.dtype) - (x < 0).to(x.dtype)
    elif OP == 35:
        r = libdevice.asinh(x)
    elif OP == 36:
        r = libdevice.acosh(x)
    elif OP == 37:
        r = libdevice.atanh(x)
    elif OP == 38:  # deg2rad / rad2deg: one multiply by the constant, as torch
        r = x * 0.017453292519943295
    elif OP == 39:
        r = x * 57.29577951308232
    elif OP == 40:
        r = x - libdevice.trunc(x)
    elif OP == 41:  # sgn of a real number is its sign (as code 34)
        r = (x > 0).to(x.dtype) - (x < 0).to(x.dtype)
    elif OP == 42:
        if x.dtype.is_floating():
            r = libdevice.signbit(x) != 0
        else:
            r = x < 0
    elif OP == 43:
        r = x == float("inf")
    elif OP == 44:
        r = x == float("-inf")
    elif OP == 45:  # isreal of a real tensor
        r = (x == x) | (x != x)
    elif OP == 46:
        r = libdevice.erfinv(x)
    elif OP == 47:
        r = libdevice.lgamma(x)
    elif OP == 48:
        r = _digamma(x)
    elif OP == 49:
        r = libdevice.cyl_bessel_i0(x)
    elif OP == 50:
        r = libdevice.cyl_bessel_i1(x)
    elif OP == 51:
        r = libdevice.erfcx(x)
    elif OP == 52:
        r = libdevice.normcdfinv(x)
    elif OP == 53:  # torch's calc_log_ndtr
        t = x * 0.7071067811865476
        r = tl.where(x < -1, tl.log(libdevice.erfcx(-t) / 2) - t * t, libdevice.log1p(-libdevice.erfc(t) / 2))
    elif OP == 54:  # sinc: sin(pi x) / (pi x), 1 at 0
        p = x * 3.141592653589793
        r = tl.where(x == 0, 1.0, tl.sin(p) / tl.where(x == 0, 1.0, p))
    elif OP == 55:  # entr: -x log x, 0 at 0, -inf below (NaN stays)
        r = tl.where(x > 0, -x * tl.log(tl.where(x > 0, x, 1.0)),
                     tl.where(x == 0, 0.0, tl.where(x < 0, float("-inf"), x)))
    elif OP == 56:  # round half to even
        r = libdevice.nearbyint(x)
    elif OP == 57:  # logit without eps
        r = tl.log(x / (1 - x))
    elif OP == 58:
        r = x
    elif OP == 59:  # silu
        r = x / (1 + tl.exp(-x))
    elif OP == 60:  # mish
        r = x * libdevice.tanh(libdevice.log1p(tl.exp(x)))
    elif OP == 61:  # hardsigmoid (NaN propagates, as torch's)
        r = tl.minimum(tl.maximum(x + 3, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0,
                       propagate_nan=tl.PropagateNan.ALL) * 0.16666666666666666
    elif OP == 62:  # hardswish
        r = x * tl.minimum(tl.maximum(x + 3, 0.0, propagate_nan=tl.PropagateNan.ALL), 6.0,
                           propagate_nan=tl.PropagateNan.ALL) * 0.16666666666666666
    elif OP == 63:  # log_sigmoid
        r = tl.minimum(x, 0.0) - libdevice.log1p(tl.exp(-tl.abs(x)))
    elif OP == 64:  # gelu (erf)
        r = x * 0.5 * (1 + tl.erf(x * 0.7071067811865476))
    else:  # gelu (tanh)
        inner = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        r = 0.5 * x * (1 + libdevice.tanh(inner))
    return r


@triton.jit
def _ipow(x, y):
    """Integer x ** y by squaring; negative exponents as torch: 1 -> 1, -1 -> +-1, others -> 0."""
    r = x * 0 + 1
    b = x
    e = y
    for _ in range(64):
        r = tl.where((e & 1) != 0, r * b, r)
        b = b * b
        e = e >> 1
    odd = (y & 1) != 0
    small = tl.where(x == 1, 1, tl.where(x == -1, tl.where(odd, -1, 1), 0)).to(x.dtype)
    return tl.where(y < 0, small, r)


@triton.jit
def _nextafter(x, y, FT: tl.constexpr):
    """The next value of dtype FT after x towards y, by stepping the bit pattern. bfloat16 steps its
    float32 image by 2^16 (its bits are float32's top half)."""
    if FT == tl.bfloat16:
        WT = tl.float32
        SHIFT: tl.constexpr = 16
    else:
        WT = FT
        SHIFT: tl.constexpr = 0
    IT: tl.constexpr = _int_dtype(WT.primitive_bitwidth, True)
    xf = x.to(WT)
    yf = y.to(WT)
    xi = xf.to(IT, bitcast=True)
    one = tl.full(xi.shape, 1, IT)
    step = one << SHIFT
    up = (xf < yf) == (xf > 0)
    stepped = tl.where(up, xi + step, xi - step).to(IT)
    tiny = tl.where(yf > 0, step, (one << (WT.primitive_bitwidth - 1)) | step).to(WT, bitcast=True)  # +-subnormal
    r = tl.where(xf == 0, tiny, stepped.to(WT, bitcast=True))
    r = tl.where(xf == yf, yf, r)
    return tl.where((xf != xf) | (yf != yf), float("nan"), r.to(x.dtype))


@triton.jit
def _binary_math(x, y, alpha, OP: tl.constexpr, OUT_TY: tl.constexpr):
    if OP == 100:
        r = x + y * alpha
    elif OP == 101:
        r = x - y * alpha
    elif OP == 102:
        r = x * y
    elif OP == 103:
        r = x / y
    elif OP == 104:  # NaN propagates, as torch.maximum
        r = tl.where((x > y) | (x != x), x, y)
    elif OP == 105:
        r = tl.where((x < y) | (x != x), x, y)
    elif OP == 106:
        r = x == y
    elif OP == 107:
        r = x != y
    elif OP == 108:
        r = x < y
    elif OP == 109:
        r = x <= y
    elif OP == 110:
        r = x > y
    elif OP == 111:
        r = x >= y
    elif OP == 112:
        if x.dtype.is_floating():
            r = libdevice.pow(x, y)
        else:
            r = _ipow(x, y)
    elif OP == 113:
        r = libdevice.atan2(x, y)
    elif OP == 114:
        r = (x != 0) & (y != 0)
    elif OP == 115:
        r = (x != 0) | (y != 0)
    elif OP == 116:
        r = (x != 0) ^ (y != 0)
    elif OP == 117:
        r = x & y
    elif OP == 118:
        r = x | y
    elif OP == 119:
        r = x ^ y
    elif OP == 120:  # fmod: C's remainder, the sign of x
        if x.dtype.is_floating():
            r = libdevice.fmod(x, y)
        else:
            r = x % y
    elif OP == 121:  # remainder: Python's, the sign of y
        if x.dtype.is_floating():
            m = libdevice.fmod(x, y)
        else:
            m = x % y
        r = tl.where((m != 0) & ((y < 0) != (m < 0)), m + y, m)
    elif OP == 122:
        r = libdevice.copysign(x, y)
    elif OP == 123:
        r = libdevice.hypot(x, y)
    elif OP == 124:  # logaddexp, as torch: equal infinities give themselves
        m = tl.maximum(x, y)
        r = tl.where((x == y) & (tl.abs(x) == float("inf")), x, m + libdevice.log1p(tl.exp(-tl.abs(x - y))))
    elif OP == 125:
        m = tl.maximum(x, y)
        r = tl.where((x == y) & (tl.abs(x) == float("inf")), x,
                     m + libdevice.log1p(tl.exp2(-tl.abs(x - y))) * 1.4426950408889634)
    elif OP == 126:  # xlogy: 0 where x == 0, NaN where y is
        r = tl.where(y != y, float("nan"), tl.where(x == 0, 0.0, x * tl.log(y)))
    elif OP == 127:
        r = tl.where(y != y, float("nan"), tl.where(x == 0, 0.0, x * libdevice.log1p(y)))
    elif OP == 128:  # fmax/fmin: NaN loses
        r = tl.where(x != x, y, tl.where(y != y, x, tl.maximum(x, y)))
    elif OP == 129:
        r = tl.where(x != x, y, tl.where(y != y, x, tl.minimum(x, y)))
    elif OP == 130:
        r = tl.where(x == 0, y, (x > 0).to(x.dtype))
    elif OP == 131:
        r = _nextafter(x, y, OUT_TY)
    elif OP == 132:  # shifts: counts outside [0, bits) give 0 (or the sign for a right shift)
        BITS: tl.constexpr = x.dtype.primitive_bitwidth
        ok = (y >= 0) & (y < BITS)
        r = tl.where(ok, x << tl.where(ok, y, 0), 0)
    elif OP == 133:
        BITS: tl.constexpr = x.dtype.primitive_bitwidth
        ok = (y >= 0) & (y < BITS)
        if x.dtype.is_int_unsigned():
            r = tl.where(ok, x >> tl.where(ok, y, 0), 0)
        else:
            r = x >> tl.where(ok, y, BITS - 1)
    elif OP == 134:  # div(rounding_mode='trunc')
        if x.dtype.is_floating():
            r = libdevice.trunc(x / y)
        else:
            r = x // y  # Triton's integer division truncates, as C
    elif OP == 135:  # div(rounding_mode='floor'), torch's div_floor_floating / div_floor_integer
        if x.dtype.is_floating():
            mod = libdevice.fmod(x, y)
            div = (x - mod) / y
            div = tl.where((mod != 0) & ((y < 0) != (mod < 0)), div - 1, div)
            fl = tl.floor(div)
            fl = tl.where(div - fl > 0.5, fl + 1, fl)
            r = tl.where(div != 0, fl, libdevice.copysign(div * 0, x / y))
            r = tl.where(y == 0, x / y, r)
        else:
            q = x // y
            r = tl.where(((x < 0) != (y < 0)) & (x % y != 0), q - 1, q)
    elif OP == 136:  # float_power: always float64
        r = libdevice.pow(x, y)
    elif OP == 137:  # prelu
        r = tl.where(x > 0, x, x * y)
    else:  # glu: a * sigmoid(b)
        r = x * tl.sigmoid(y)
    return r


@triton.jit
def _param_math(x, y, z, p0, p1, p2, OP: tl.constexpr, OUT_TY: tl.constexpr):
    if OP == 200:  # where(cond, a, b)
        r = tl.where(x != 0, y, z)
    elif OP == 201:  # clamp: NaN in any operand propagates
        lo = tl.where((x < y) | (y != y), y, x)
        r = tl.where((lo > z) | (z != z), z, lo)
    elif OP == 202:
        r = tl.where((x < y) | (y != y), y, x)
    elif OP == 203:
        r = tl.where((x > y) | (y != y), y, x)
    elif OP == 204:  # lerp, exact at both ends: small weights from x, large ones from y
        d = y - x
        r = tl.where(tl.abs(z) < 0.5, x + z * d, y - d * (1 - z))
    elif OP == 205:
        d = y - x
        r = tl.where(tl.abs(p0) < 0.5, x + p0 * d, y - d * (1 - p0))
    elif OP == 206:
        r = x + p0 * (y * z)
    elif OP == 207:
        r = x + p0 * (y / z)
    elif OP == 208:  # round(decimals): p0 = 10 ** |decimals|, p1 != 0 when decimals < 0
        r = tl.where(p1 != 0, libdevice.nearbyint(x / p0) * p0, libdevice.nearbyint(x * p0) / p0)
    elif OP == 209:  # logit(eps)
        c = tl.where(x < p0, p0, tl.where(x > 1 - p0, 1 - p0, x))
        r = tl.log(c / (1 - c))
    elif OP == 210:  # nan_to_num
        r = tl.where(x != x, p0, tl.where(x == float("inf"), p1, tl.where(x == float("-inf"), p2, x)))
    elif OP == 211:  # hardtanh: clamp to [p0, p1]
        lo = tl.where((x < p0) | (p0 != p0), p0, x)
        r = tl.where((lo > p1) | (p1 != p1), p1, lo)
    elif OP == 212:
        r = tl.where(x > 0, x, x * p0)
    elif OP == 213:  # elu(alpha, scale, input_scale)
        r = tl.where(x <= 0, libdevice.expm1(x * p2) * (p0 * p1), x * p1)
    elif OP == 214:  # softplus(beta, threshold)
        bx = x * p0
        r = tl.where(bx > p1, x, libdevice.log1p(tl.exp(bx)) / p0)
    elif OP == 215:
        r = tl.where((x >= -p0) & (x <= p0), 0, x)
    elif OP == 216:
        r = tl.where(x > p0, x - p0, tl.where(x < -p0, x + p0, x * 0))
    elif OP == 217:  # threshold(threshold, value)
        r = tl.where(x <= p0, p1, x)
    elif OP == 218:  # isclose(rtol, atol, equal_nan)
        close = x == y
        close = close | ((p2 != 0) & (x != x) & (y != y))
        allowed = p1 + tl.abs(p0 * y)
        actual = tl.abs(x - y)
        r = close | ((actual == actual) & (actual != float("inf")) & (actual <= allowed))
    elif OP == 219:  # gelu backward: x = grad, y = input
        cdf = 0.5 * (1 + tl.erf(y * 0.7071067811865476))
        pdf = tl.exp(-0.5 * y * y) * 0.3989422804014327
        r = x * (cdf + y * pdf)
    elif OP == 220:
        y2 = y * y
        t = libdevice.tanh(0.7978845608028654 * y * (1 + 0.044715 * y2))
        r = x * (0.5 * (1 + t) + 0.5 * y * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * y2))
    elif OP == 221:
        s = tl.sigmoid(y)
        r = x * (s * (1 + y * (1 - s)))
    elif OP == 222:
        t = libdevice.tanh(libdevice.log1p(tl.exp(y)))
        r = x * (t + y * tl.sigmoid(y) * (1 - t * t))
    elif OP == 223:
        r = x * tl.where(y <= 0, tl.exp(y * p2) * (p0 * p1 * p2), p1)
    elif OP == 224:
        r = tl.where(y > 0, x, x * p0)
    elif OP == 225:
        by = y * p0
        r = tl.where(by > p1, x, x * tl.sigmoid(by))
    elif OP == 226:
        r = x * tl.sigmoid(-y)
    elif OP == 227:  # hardswish backward
        r = tl.where(y < -3, 0.0, tl.where(y <= 3, x * (y / 3 + 0.5), x))
    else:  # threshold backward (relu's): a mask, so NaN gradients below the threshold become 0
        r = tl.where(y <= p0, 0.0, x)
    return r


@triton.jit
def _ew_contig(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               SCALAR_FLOAT: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """The contiguous case: seven arguments instead of twenty-two (host time is per argument)."""
    _ew_kernel(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,
               0, 0, 0, 0, OP, ARITY, X_SCALAR, Y_SCALAR, SCALAR_FLOAT, True, COMPUTE, BLOCK)


@triton.jit
def _ew_kernel(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n, n1, n2, n3,
               xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, os0, os1, os2, os3,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               SCALAR_FLOAT: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    if CONTIG:
        xo = i
        yo = i
        oo = i
    else:
        xo = _offset(i, n1, n2, n3, xs0, xs1, xs2, xs3)
        yo = _offset(i, n1, n2, n3, ys0, ys1, ys2, ys3)
        oo = _offset(i, n1, n2, n3, os0, os1, os2, os3)
    if X_SCALAR:
        x = _scalar(xbits, COMPUTE, SCALAR_FLOAT, BLOCK)
    else:
        x = tl.load(x_ptr + xo, mask=mask).to(COMPUTE)
    if ARITY == 1:
        r = _unary_math(x, OP)
    else:
        if Y_SCALAR:
            y = _scalar(ybits, COMPUTE, SCALAR_FLOAT, BLOCK)
        else:
            y = tl.load(y_ptr + yo, mask=mask).to(COMPUTE)
        alpha = _scalar(alpha_bits, COMPUTE, SCALAR_FLOAT, BLOCK)
        r = _binary_math(x, y, alpha, OP, out_ptr.dtype.element_ty)
    tl.store(out_ptr + oo, r.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gx_contig(x_ptr, y_ptr, z_ptr, out_ptr, xbits, ybits, zbits, p0, p1, p2, n,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               Z_SCALAR: tl.constexpr, SCALAR_FLOAT: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    _gx_kernel(x_ptr, y_ptr, z_ptr, out_ptr, xbits, ybits, zbits, p0, p1, p2, n, 1, 1, 1,
               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
               OP, ARITY, X_SCALAR, Y_SCALAR, Z_SCALAR, SCALAR_FLOAT, True, COMPUTE, BLOCK)


@triton.jit
def _gx_kernel(x_ptr, y_ptr, z_ptr, out_ptr, xbits, ybits, zbits, p0, p1, p2, n, n1, n2, n3,
               xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, zs0, zs1, zs2, zs3, os0, os1, os2, os3,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               Z_SCALAR: tl.constexpr, SCALAR_FLOAT: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr,
               BLOCK: tl.constexpr):
    """Up to three operands and three float parameters; OP picks the math (unary, binary or param)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    if CONTIG:
        xo = i
        yo = i
        zo = i
        oo = i
    else:
        xo = _offset(i, n1, n2, n3, xs0, xs1, xs2, xs3)
        yo = _offset(i, n1, n2, n3, ys0, ys1, ys2, ys3)
        zo = _offset(i, n1, n2, n3, zs0, zs1, zs2, zs3)
        oo = _offset(i, n1, n2, n3, os0, os1, os2, os3)
    if X_SCALAR:
        x = _scalar(xbits, COMPUTE, SCALAR_FLOAT, BLOCK)
    else:
        x = tl.load(x_ptr + xo, mask=mask).to(COMPUTE)
    y = x
    z = x
    if ARITY >= 2:
        if Y_SCALAR:
            y = _scalar(ybits, COMPUTE, SCALAR_FLOAT, BLOCK)
        else:
            y = tl.load(y_ptr + yo, mask=mask).to(COMPUTE)
    if ARITY >= 3:
        if Z_SCALAR:
            z = _scalar(zbits, COMPUTE, SCALAR_FLOAT, BLOCK)
        else:
            z = tl.load(z_ptr + zo, mask=mask).to(COMPUTE)
    a = _param(p0, COMPUTE, BLOCK)
    b = _param(p1, COMPUTE, BLOCK)
    c = _param(p2, COMPUTE, BLOCK)
    if OP < 100:
        r = _unary_math(x, OP)
    elif OP < 200:
        r = _binary_math(x, y, a, OP, out_ptr.dtype.element_ty)
    else:
        r = _param_math(x, y, z, a, b, c, OP, out_ptr.dtype.element_ty)
    tl.store(out_ptr + oo, r.to(out_ptr.dtype.element_ty), mask=mask)


# the compute dtype in Triton for each common dtype (half types compute in float32)
_COMPUTE = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64,
            dt.int8: tl.int8, dt.int16: tl.int16, dt.int32: tl.int32, dt.int64: tl.int64, dt.uint8: tl.uint8,
            dt.bool_: tl.int8}
_kernels = {}


def _kernel(code, arity, x_scalar, y_scalar, scalar_float, contig, compute):
    key = (code, x_scalar, y_scalar, scalar_float, contig, compute)
    k = _kernels.get(key)
    if k is None:
        settings = dict(OP=code, ARITY=arity, X_SCALAR=x_scalar, Y_SCALAR=y_scalar, SCALAR_FLOAT=scalar_float,
                        COMPUTE=compute, BLOCK=BLOCK)
        k = _kernels[key] = launcher.Kernel(_ew_contig, **settings) if contig else \
            launcher.Kernel(_ew_kernel, CONTIG=False, **settings)
    return k


def _bits(value, is_float):
    """A Python number as the kernel's int64 scalar argument (a float64 bit pattern for floats)."""
    if is_float:
        return int(np.float64(value).view(np.int64))
    return int(value)


def compute_of(name, common):
    compute = _COMPUTE.get(common)
    if compute is None:
        raise NotImplementedError(f"{name}: {common} is not supported by the CUDA kernels yet")
    return compute


def _as_operand(x, res):
    """A CPU 0-d tensor meeting CUDA ones joins as a number, as in torch."""
    if isinstance(x, Tensor) and x._device is not res._device and x._device.type == "cpu":
        return x.item()
    return x


def _geometry(name, res, operands):
    """(contig, sizes, strides per operand then res) of the operands (numbers get zero strides)."""
    tensors = [t for t in operands if isinstance(t, Tensor)]
    if res.is_contiguous() and all(t._shape == res._shape and t.is_contiguous() for t in tensors):
        return True, None, None
    shape, strides = collapse(res._shape, *(broadcast_strides(t._shape, t._stride, res._shape)
                                            if isinstance(t, Tensor) else (0,) * res.ndim for t in operands),
                              res._stride)
    if len(shape) > MAX_DIMS:
        raise NotImplementedError(f"{name}: more than {MAX_DIMS} non-mergeable dims on CUDA")
    pad = MAX_DIMS - len(shape)
    return False, ((1,) * pad + shape)[1:], [(0,) * pad + s for s in strides]


def launch(name, spec, a, b, res, alpha=1):
    """Compute op `name` of operands a (and b) into `res` (allocated by the caller)."""
    n = res.numel()
    if n == 0:
        return res
    if spec.common.is_complex:  # (re, im) pairs: backends/cuda/complex.py
        from vibetensor.backends.cuda import complex as cx
        return cx.launch(name, spec, a, b, res, alpha)
    compute = compute_of(name, spec.common)
    if name == "bitwise_not" and spec.common is dt.bool_:
        name = "logical_not"  # bools are stored as bytes: ~1 would be -2, i.e. still True
    if name in _INT_AS_COPY and not spec.common.is_floating_point:
        name = "identity"
    code, arity = CODE[name], (1 if b is None else 2)
    a, b = _as_operand(a, res), _as_operand(b, res)
    x_scalar, y_scalar = not isinstance(a, Tensor), arity == 2 and not isinstance(b, Tensor)
    scalar_float = spec.common.is_floating_point
    if x_scalar and (arity == 1 or y_scalar):
        raise NotImplementedError(f"{name}: no tensor operand on CUDA")
    contig, sizes, strides = _geometry(name, res, (a, b if b is not None else a))
    kernel = _kernel(code, arity, x_scalar, y_scalar, scalar_float, contig, compute)
    x = a if not x_scalar else res
    y = b if arity == 2 and not y_scalar else res
    scalars = (_bits(a, scalar_float) if x_scalar else 0, _bits(b, scalar_float) if y_scalar else 0,
               _bits(alpha, scalar_float))
    grid = ((n + BLOCK - 1) // BLOCK,)
    if contig:
        kernel(grid, x, y, res, *scalars, n)
    else:
        kernel(grid, x, y, res, *scalars, n, *sizes, *strides[0], *strides[1], *strides[2])
    return res


_gkernels = {}


def launch_general(name, common, operands, res, params=(), compute=None):
    """Compute op `name` (any code) of up to three operands (tensors or numbers; the first a tensor
    unless another is) and up to three float parameters into `res`."""
    n = res.numel()
    if n == 0:
        return res
    if common.is_complex:  # (re, im) pairs: backends/cuda/complex.py
        from vibetensor.backends.cuda import complex as cx
        return cx.launch_general(name, common, operands, res, params)
    compute = compute or compute_of(name, common)
    code, arity = CODE[name], len(operands)
    ops3 = [_as_operand(t, res) for t in operands] + [0] * (3 - arity)
    scalar = tuple(not isinstance(t, Tensor) for t in ops3)
    if all(scalar[:arity]):
        raise NotImplementedError(f"{name}: no tensor operand on CUDA")
    scalar_float = common.is_floating_point
    contig, sizes, strides = _geometry(name, res, ops3[:arity])
    key = (code, arity, scalar, scalar_float, contig, compute)
    k = _gkernels.get(key)
    if k is None:
        settings = dict(OP=code, ARITY=arity, X_SCALAR=scalar[0], Y_SCALAR=scalar[1], Z_SCALAR=scalar[2],
                        SCALAR_FLOAT=scalar_float, COMPUTE=compute, BLOCK=BLOCK)
        k = _gkernels[key] = launcher.Kernel(_gx_contig, **settings) if contig else \
            launcher.Kernel(_gx_kernel, CONTIG=False, **settings)
    ptrs = [t if not s else res for t, s in zip(ops3, scalar)]
    bits = [0 if not s else _bits(t, scalar_float) for t, s in zip(ops3, scalar)]
    p = [_bits(float(v), True) for v in params] + [0] * (3 - len(params))
    grid = ((n + BLOCK - 1) // BLOCK,)
    if contig:
        k(grid, *ptrs, res, *bits, *p, n)
    else:
        pad = [(0,) * MAX_DIMS] * (3 - arity)
        k(grid, *ptrs, res, *bits, *p, n, *sizes, *[s for st in strides[:-1] + pad for s in st], *strides[-1])
    return res


def target(op, spec, out, first, args):
    """The result tensor: new, or the user's out= checked by the op's dtype rule (in-place when it
    is the first operand)."""
    check = getattr(op.meta, "check_out", None)
    if check is not None and isinstance(out, Tensor):
        check(spec, out, out is first, args)
    return output(op.name[4:], out, spec.shape, spec.dtype, spec.device, inplace=out is first)


def finish(res, out):
    if out is not None:
        bump_version(res)
    return res


def _register(name, arity):
    op = get(name)
    meta = op.meta

    if arity == 1:
        def kernel(a, out=None):
            spec = meta(a)
            res = target(op, spec, out, a, (a,))
            launch(name, spec, a, None, res)
            return finish(res, out)
    elif name in ("add", "sub"):
        def kernel(a, b, alpha=1, out=None):
            spec = meta(a, b, alpha)
            res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
            launch(name, spec, a, b, res, alpha)
            return finish(res, out)
    else:
        def kernel(a, b, out=None):
            spec = meta(a, b)
            res = target(op, spec, out, a, (a, b))
            launch(name, spec, a, b, res)
            return finish(res, out)
    op.register(CUDA, planned(kernel))


# ops with a kernel of their own below, or registered by activation.py
_SPECIAL = {"div", "round", "logit", "square", "identity", "silu", "mish", "hardsigmoid", "hardswish", "log_sigmoid",
            "gelu", "gelu_tanh", "div_trunc", "div_floor", "prelu", "glu"}
# special functions whose CUDA results are libdevice's (or torch's series), ulps from torch's own
SPECIAL_FNS = ["erfinv", "lgamma", "digamma", "i0", "special_i1", "special_erfcx", "special_ndtri",
               "special_log_ndtr", "special_entr", "special_xlog1py"]
REGISTERED = [n for n in UNARY + BINARY if "vt::" + n in ops() and n not in _SPECIAL]
for _name in REGISTERED:
    _register(_name, 1 if _name in UNARY else 2)
REGISTERED = [n for n in REGISTERED if n not in SPECIAL_FNS] + ["div", "round", "logit"]


def _with_params(name, launch_fn):
    """Register kernel(*args, out=None, **params) for an op whose launch_fn(spec, res, *args, **params)
    picks the code, operands and parameters."""
    op = get(name)
    meta = op.meta

    def kernel(*args, out=None, **params):
        spec = meta(*args, **params)
        res = target(op, spec, out, args[0], args)
        launch_fn(spec, res, *args, **params)
        return finish(res, out)
    op.register(CUDA, planned(kernel))


def _div(spec, res, a, b, rounding_mode=None):
    if rounding_mode is None:
        launch("div", spec, a, b, res)
    else:
        launch_general("div_" + rounding_mode, spec.common, (a, b), res)


def _round(spec, res, a, decimals=0):
    if decimals == 0 or not spec.common.is_floating_point:
        launch("round", spec, a, None, res)
    else:
        launch_general("round_decimals", spec.common, (a,), res, (10.0 ** abs(decimals), decimals < 0))


def _logit(spec, res, a, eps=None):
    if eps is None or eps < 0:
        launch("logit", spec, a, None, res)
    else:
        launch_general("logit_eps", spec.common, (a,), res, (eps,))


def _clamp(spec, res, a, lo=None, hi=None):
    if lo is not None and hi is not None:
        launch_general("clamp", spec.common, (a, lo, hi), res)
    else:
        launch_general("clamp_min" if lo is not None else "clamp_max", spec.common, (a, lo if hi is None else hi), res)


def _where(spec, res, condition, a, b):
    launch_general("where", spec.common, (condition, a, b), res)


def _lerp(spec, res, a, b, weight):
    if isinstance(weight, Tensor) and weight._device is res._device:
        launch_general("lerp", spec.common, (a, b, weight), res)
    else:
        launch_general("lerp_scalar", spec.common, (a, b), res, (weight if spec.common.is_complex else float(weight),))


_FINFO = {dt.float16: 65504.0, dt.bfloat16: 3.3895313892515355e38, dt.float32: 3.4028234663852886e38,
          dt.float64: 1.7976931348623157e308}


def _nan_to_num(spec, res, a, nan=None, posinf=None, neginf=None):
    if spec.dtype.is_complex:  # each part (backends/cuda/complex.py)
        from vibetensor.backends.cuda import complex as cx
        return cx.nan_to_num(spec, res, a, nan, posinf, neginf)
    if not spec.dtype.is_floating_point:
        launch_general("identity", spec.common, (a,), res)
        return
    big = _FINFO[spec.dtype]
    launch_general("nan_to_num", spec.common, (a,), res,
                   (0.0 if nan is None else nan, big if posinf is None else posinf, -big if neginf is None else neginf))


def _isclose(spec, res, a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    # integers: distances measured in float64 (no wrapping), as torch
    compute = None if spec.common.is_floating_point else tl.float64
    launch_general("isclose", spec.common, (a, b), res, (rtol, atol, bool(equal_nan)), compute=compute)


for _name, _fn in (("div", _div), ("round", _round), ("logit", _logit), ("clamp", _clamp), ("where", _where),
                   ("lerp", _lerp), ("nan_to_num", _nan_to_num), ("isclose", _isclose)):
    _with_params(_name, _fn)
REGISTERED += ["clamp", "where", "lerp", "nan_to_num", "isclose"]


# -- addcmul / addcdiv (declared with the linalg family) ----------------------------------------------------------

def _addc(name):
    from vibetensor.ops import linalg as la
    op = get(name)

    def kernel(input, t1, t2, value=1, out=None):
        spec = op.meta(input, t1, t2, value, out)
        res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is input)
        value = la.addc_value(value, spec.dtype)
        launch_general(name, spec.dtype, (input, t1, t2), res, (value,))
        return finish(res, out)
    op.register(CUDA, planned(kernel))


_addc("addcmul")
_addc("addcdiv")
