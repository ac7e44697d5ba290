"""CPU kernels of the elementwise ops, on NumPy.

Operands are converted to the op's compute dtype (half types compute in float32, as torch's CPU
kernels do), the ufunc writes straight into the output's bytes, and NumPy casts on the way out.
Kernels that take several NumPy steps build their result first and copy it in last, so an
in-place call whose output aliases an input reads every input before it writes.
"""
import ml_dtypes
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.backends.cpu import special as sp
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import elementwise as ew
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, array, empty

CPU = DispatchKey.CPU
_INF = float("inf")


def _target(op, spec, out, first, args):
    """The user's out= tensor, checked (dtype rule, then cast, shape and resize; in-place when it is
    the first operand); a tensor more than one of whose elements share memory is refused."""
    inplace = out is first
    check = op.meta.check_out
    if check is not None and isinstance(out, Tensor):
        check(spec, out, inplace, args)
    res = output(op.name[4:], out, spec.shape, spec.dtype, spec.device, inplace=inplace)
    overlap_ok = op.meta.overlap_ok
    for n, st in zip(res._shape, res._stride) if overlap_ok is None or not overlap_ok(spec) else ():
        if st == 0 and n > 1:
            raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers "
                               "to a single memory location. Please clone() the tensor before performing the "
                               "operation.")
    return res


def _write(spec, res, compute):
    """compute(dst) into out= tensor `res`. A half-precision result bound for a wider out is rounded
    to its own dtype first (torch computes the result dtype, then copies into out)."""
    if res._dtype is spec.dtype or spec.dtype not in _HALVES:
        compute(array(res))
    else:
        tmp = np.empty(spec.shape, spec.dtype.np)
        compute(tmp)
        np.copyto(array(res), tmp, casting="unsafe")
    bump_version(res)
    return res


_HALVES = (dt.float16, dt.bfloat16)


def _result(op, name, spec, out, first, args, compute):
    """compute(dst) into a fresh output, or into the user's out= tensor (`first` is the operand that
    makes it in-place): the one ending of every kernel factory below."""
    if out is None:
        res = empty(spec.shape, spec.dtype, spec.device)
        compute(array(res))
        return res
    return _write(spec, _target(op, spec, out, first, args), compute)


def _unary(op, fn):
    """Register fn(x, out_array) as the kernel of a one-tensor op: kernel(a, out=None)."""
    meta, name = op.meta, op.name[4:]

    def kernel(a, out=None):
        spec = meta(a)
        x = operand(a, np_compute(spec.common))
        if out is None:  # the hot path of _result, inlined: a fresh output, no closure
            res = empty(spec.shape, spec.dtype, spec.device)
            fn(x, array(res))
            return res
        return _result(op, name, spec, out, a, (a,), lambda dst: fn(x, dst))
    op.register(CPU, kernel)


def _binary(op, fn):
    """Register fn(x, y, out_array) as the kernel of a two-operand op: kernel(a, b, out=None)."""
    meta, name = op.meta, op.name[4:]

    def kernel(a, b, out=None):
        spec = meta(a, b)
        ct = np_compute(spec.common)
        x, y = operand(a, ct), operand(b, ct)
        if out is None:
            res = empty(spec.shape, spec.dtype, spec.device)
            fn(x, y, array(res))
            return res
        return _result(op, name, spec, out, a, (a, b), lambda dst: fn(x, y, dst))
    op.register(CPU, kernel)


def _with_params(op, fn):
    """Register fn(spec, out_array, *args) as the kernel of an op with parameters or odd operands:
    kernel(*args, out=None); fn converts its own operands."""
    meta, name = op.meta, op.name[4:]

    def kernel(*args, out=None, **params):
        spec = meta(*args, **params)
        return _result(op, name, spec, out, args[0], args, lambda dst: fn(spec, dst, *args, **params))
    op.register(CPU, kernel)


def _ufunc(f):
    """A NumPy ufunc writing into the output array (casting to the output dtype)."""
    return lambda *xs_out: f(*xs_out[:-1], out=xs_out[-1], casting="unsafe")


def _put(out, value):
    np.copyto(out, value, casting="unsafe")


def _is_int(x):
    return x.dtype.kind in "iub"


# -- complex arithmetic as torch's vectorized CPU kernels do it ----------------------------------------------------
# NumPy's complex product, reciprocal and z / |z| round differently at overflow, underflow and infinities:
# they put -inf where torch's vectorized kernels (Vectorized<c10::complex>) get inf - inf = nan, and back.
# These follow torch's formulas operation for operation (each step rounded in the complex dtype's part
# type), so NaN/inf land where torch's do on contiguous tensors (torch's scalar loop, which strided tensors
# and the tail take, uses fused multiply-adds: torch itself is not consistent there).

def _parts(z):
    z = np.asarray(z)
    return (z.real, z.imag) if z.dtype.kind == "c" else (z, np.zeros_like(z))


def _complex(re, im):
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), np.result_type(re.dtype, np.complex64))
    out.real, out.imag = re, im
    return out


def cmul(x, y):
    """(a + bi)(c + di) = (ac - bd) + (ad + bc)i, unfused."""
    (a, b), (c, d) = _parts(x), _parts(y)
    return _complex(a * c - b * d, a * d + b * c)


def _creciprocal(z):
    """1 / z by Smith's division of 1 + 0i (c10's complex operator/, NumPy's reciprocal has its own)."""
    c, d = _parts(z)
    one, zero = c.dtype.type(1), c.dtype.type(0)
    wide = np.abs(c) >= np.abs(d)  # False where either is NaN, as in C
    both_zero = wide & (c == 0) & (d == 0)
    rat = np.where(wide, d / c, c / d)
    scl = one / np.where(wide, c + d * rat, d + c * rat)
    re = np.where(wide, (one + zero * rat) * scl, (one * rat + zero) * scl)
    im = np.where(wide, (zero - one * rat) * scl, (zero * rat - one) * scl)
    re = np.where(both_zero, one / np.abs(c), re)  # 1 / (0 + 0i): inf + nan i
    im = np.where(both_zero, zero / np.abs(d), im)
    return _complex(re, im)


def _mul(x, y, out):
    if x.dtype.kind == "c":  # (the compute dtype: both operands have it)
        _put(out, cmul(x, y))
    else:
        np.multiply(x, y, out=out, casting="unsafe")


def _reciprocal(x, out):
    if x.dtype.kind == "c":
        _put(out, _creciprocal(x))
    else:
        np.reciprocal(x, out=out, casting="unsafe")


# -- arithmetic ------------------------------------------------------------------------------------------------

def _add(op, ufunc):
    """add/sub: a +- alpha * b (the hot path: no parameter parsing beyond alpha == 1)."""
    meta, name = op.meta, op.name[4:]

    def kernel(a, b, alpha=1, out=None):
        spec = meta(a, b, alpha)
        ct = np_compute(spec.common)
        x, y = operand(a, ct), operand(b, ct)
        if not (alpha.__class__ is int and alpha == 1) or ct.kind == "c":  # torch: complex b is always
            y = np.multiply(y, operand(alpha, ct), dtype=ct)                 # scaled ((1+0j) * inf has a nan)
        if out is None:
            res = empty(spec.shape, spec.dtype, spec.device)
            ufunc(x, y, out=array(res), casting="unsafe")
            return res
        return _result(op, name, spec, out, a, (a, b), lambda dst: ufunc(x, y, out=dst, casting="unsafe"))
    op.register(CPU, kernel)


def _check_divisor(y, out):
    """torch's CPU integer division raises on a zero divisor it meets (none when out is empty)."""
    if out.size and not np.all(y):
        raise RuntimeError("ZeroDivisionError")


def _div(spec, out, a, b, rounding_mode=None):
    ct = np_compute(spec.common)
    x, y = operand(a, ct), operand(b, ct)
    if rounding_mode is None:
        np.true_divide(x, y, out=out, casting="unsafe")
        return
    integral = spec.common.category < 2
    if integral:
        _check_divisor(y, out)
    if rounding_mode == "floor":
        np.floor_divide(x, y, out=out, casting="unsafe")  # NumPy's float floor division is torch's algorithm
    elif integral:  # C division: round toward zero, exact for all int64
        q = np.floor_divide(x, y)
        _put(out, q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0))))
    else:
        _put(out, np.trunc(np.true_divide(x, y)))


def _int_checked(f):
    """remainder/fmod: integral divisors must be nonzero."""
    def fn(x, y, out):
        if _is_int(x):
            _check_divisor(y, out)
        f(x, y, out=out, casting="unsafe")
    return fn


def _pow(spec, out, a, b):
    ct = np_compute(spec.common)
    if ct == np.bool_:  # bool ** True / bool ** False: torch's copy / fill shortcuts
        if b:
            _put(out, operand(a, ct))
        else:
            out.fill(True)
        return
    x = operand(a, ct)
    if isinstance(b, Tensor) or not isinstance(a, Tensor):
        y = operand(b, ct)
        if x.dtype.kind in "iu" and y.dtype.kind == "i" and (y < 0).any():
            _put(out, _int_pow_negative(x, y))
        else:
            np.power(x, y, out=out, casting="unsafe")
        return
    _pow_scalar(x, b, out, ct, spec.common is dt.float16)


def _int_pow_negative(x, y):
    """Integer powers with negative exponents, as torch: 1 -> 1, -1 -> +-1, anything else -> 0."""
    negative = y < 0
    r = np.power(x, np.where(negative, 0, y))
    odd = (y % 2) != 0
    small = np.where(x == 1, 1, np.where(x == -1, np.where(odd, -1, 1), 0)).astype(r.dtype)
    return np.where(negative, small, r)


def _pow_scalar(x, e, out, ct, half):
    """tensor ** number with torch's shortcuts (they differ from pow at inf/nan: (-inf) ** 0.5 is nan;
    float16 takes no root shortcuts)."""
    if e == 0:
        out.fill(1)
    elif e == 1:
        _put(out, x)
    elif x.dtype.kind == "c" and e in (2, 3, -1):  # torch's complex shortcuts: base * base (* base), 1 / base
        _put(out, cmul(x, x) if e == 2 else cmul(cmul(x, x), x) if e == 3 else _creciprocal(x))
    elif x.dtype.kind in "fc" and e in ((2, 3, -1, -2) if half else (0.5, 2, 3, -0.5, -1, -2)):
        if e == 0.5:
            np.sqrt(x, out=out, casting="unsafe")
        elif e == 2:
            np.multiply(x, x, out=out, casting="unsafe")
        elif e == 3:
            _put(out, x * x * x)
        elif e == -0.5:
            _put(out, 1 / np.sqrt(x))
        elif e == -1:
            np.divide(1, x, out=out, casting="unsafe")
        else:
            _put(out, 1 / (x * x))
    elif half and e in (0.5, -0.5):  # C pow, which NumPy would replace by sqrt for a scalar 0.5
        np.power(x, np.full(x.shape, e, ct), out=out, casting="unsafe")
    else:
        np.power(x, operand(e, ct), out=out, casting="unsafe")


def _sign(x, out):
    if x.dtype == np.bool_:
        _put(out, x)
        return
    s = np.sign(x)
    _put(out, np.where(np.isnan(x), 0, s) if x.dtype.kind == "f" else s)  # torch: sign(nan) is 0


def _sgn(x, out):
    if x.dtype.kind != "c":
        _sign(x, out)
        return
    r = np.abs(x)  # hypot: no underflow
    safe = np.where(r == 0, 1, r)
    _put(out, np.where(r == 0, 0, _complex(x.real / safe, x.imag / safe)))  # each part over |z|, as torch


def _integral_identity(f):
    """floor/ceil/trunc/round of integers are copies (NumPy would return floats)."""
    def fn(x, out):
        if _is_int(x):
            _put(out, x)
        else:
            f(x, out=out, casting="unsafe")
    return fn


def _round(spec, out, a, decimals=0):
    x = operand(a, np_compute(spec.common))
    if decimals == 0:
        _integral_identity(np.rint)(x, out)
        return
    ten = np.array(np.float64(10.0) ** (-decimals if decimals < 0 else decimals)).astype(x.dtype)
    _put(out, np.rint(x / ten) * ten if decimals < 0 else np.rint(x * ten) / ten)


def _frac(x, out):
    _put(out, x - np.trunc(x))


def _rsqrt(x, out):
    np.divide(1, np.sqrt(x), out=out, casting="unsafe")


def _log2(x, out):
    """Complex: torch divides log(z)'s parts by log(2) (NumPy multiplies by 1 / log(2))."""
    if x.dtype.kind == "c":
        ln = np.log(x)
        ln2 = x.real.dtype.type(np.log(2.0))
        _put(out, _complex(ln.real / ln2, ln.imag / ln2))
    else:
        np.log2(x, out=out, casting="unsafe")


def _log1p(x, out):
    """Complex: torch's CPU log1p (c10 complex_math, after NumPy PR 22611): u = 1 + z;
    z if u == 1, else log(u) when u - 1 == z exactly, else log(u) * (z / (u - 1))."""
    if x.dtype.kind != "c":
        np.log1p(x, out=out, casting="unsafe")
        return
    one = x.real.dtype.type(1)
    u = _complex(x.real + one, x.imag)  # z + T(1): a real added to the real part only
    log_u = np.log(u)
    um1 = _complex(u.real - one, u.imag)
    scaled = cmul(log_u, x / um1)  # (NumPy's complex division is Smith's, as c10's)
    _put(out, np.where(u == one, x, np.where(um1 == x, log_u, scaled)))


def _sigmoid(x, out):
    t = np.exp(-x)
    t += 1
    np.divide(1, t, out=out, casting="unsafe")


def _logit(spec, out, a, eps=None):
    z = operand(a, np_compute(spec.common))
    if eps is not None:
        z = np.clip(z, eps, 1 - eps)  # NaN stays NaN
    _put(out, np.log(z / (1 - z)))


def _special(f):
    """A function of special.py (computed in float64) as fn(x, out)."""
    return lambda x, out: _put(out, f(x))


def _nan_to_num(spec, out, a, nan=None, posinf=None, neginf=None):
    x = array(a)
    if x.dtype.kind in "iub":
        _put(out, x)
        return
    if x.dtype.kind == "c":
        real = _replace_nonfinite(x.real, nan, posinf, neginf)
        imag = _replace_nonfinite(x.imag, nan, posinf, neginf)
        _put(out, real + 1j * imag)
        return
    _put(out, _replace_nonfinite(x, nan, posinf, neginf))


def _replace_nonfinite(x, nan, posinf, neginf):
    info = ml_dtypes.finfo(x.dtype)  # NumPy's finfo knows no bfloat16
    hi = np.array(info.max if posinf is None else posinf).astype(x.dtype)
    lo = np.array(info.min if neginf is None else neginf).astype(x.dtype)
    return np.where(x != x, np.array(0.0 if nan is None else nan).astype(x.dtype),
                    np.where(x == _INF, hi, np.where(x == -_INF, lo, x)))


def _logaddexp(x, y, out):
    if x.dtype.kind != "c":
        np.logaddexp(x, y, out=out, casting="unsafe")
        return
    # complex: m + log(1 + exp(other - m)) with m the operand of larger real part
    bigger = x.real >= y.real
    m, o = np.where(bigger, x, y), np.where(bigger, y, x)
    _put(out, m + np.log1p(np.exp(o - m)))


def _xlogy(x, y, out):
    r = x * np.log(y)
    r = np.where(x == 0, 0, r)
    _put(out, np.where(np.isnan(y), np.nan, r))


def _heaviside(x, values, out):
    _put(out, np.where(x == 0, values, x > 0))


def _clamp(spec, out, a, lo=None, hi=None):
    ct = np_compute(spec.common)
    x = operand(a, ct)
    if lo is not None and hi is not None:
        _put(out, np.minimum(np.maximum(x, operand(lo, ct)), operand(hi, ct)))
    elif lo is not None:
        np.maximum(x, operand(lo, ct), out=out, casting="unsafe")
    else:
        np.minimum(x, operand(hi, ct), out=out, casting="unsafe")


def _where(spec, out, condition, a, b):
    ct = np_compute(spec.common)
    cond = array(condition)
    _put(out, np.where(cond if cond.dtype == np.bool_ else cond.astype(np.bool_), operand(a, ct), operand(b, ct)))


def _lerp(spec, out, a, b, weight):
    """torch's formula, exact at both ends: small weights from a, large ones from b."""
    ct = np_compute(spec.common)
    x, y = operand(a, ct), operand(b, ct)
    w = operand(weight, ct)
    diff = y - x
    _put(out, np.where(np.abs(w) < 0.5, x + w * diff, y - diff * (1 - w)))


def _isclose(spec, out, a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    ct = np_compute(spec.common)
    x, y = operand(a, ct), operand(b, ct)
    close = x == y
    if equal_nan and x.dtype.kind in "fc":
        close |= np.isnan(x) & np.isnan(y)
    if rtol != 0 or atol != 0:
        if x.dtype.kind in "iub":  # torch measures integer distances without wrapping
            x, y = x.astype(np.float64), y.astype(np.float64)
        allowed = atol + np.abs(rtol * y)
        actual = np.abs(x - y)
        close |= np.isfinite(actual) & (actual <= allowed)
    _put(out, close)


def _shift(left):
    """Shifts as torch: counts outside [0, bits) give 0 (left, or right of unsigned) or the sign."""
    def fn(x, y, out):
        bits = x.dtype.itemsize * 8
        ok = (y >= 0) & (y < bits)
        if left:
            _put(out, np.where(ok, np.left_shift(x, np.where(ok, y, 0)), 0))
        elif x.dtype.kind == "u":
            _put(out, np.where(ok, np.right_shift(x, np.where(ok, y, 0)), 0))
        else:
            np.right_shift(x, np.where(ok, y, bits - 1).astype(x.dtype), out=out, casting="unsafe")
    return fn


def _isreal(x, out):
    if x.dtype.kind == "c":
        np.equal(x.imag, 0, out=out, casting="unsafe")
    else:
        out.fill(True)


def _times(c):
    return lambda x, out: np.multiply(x, np.array(c, x.dtype), out=out, casting="unsafe")


def _equal_to(value):
    return lambda x, out: np.equal(x, value, out=out, casting="unsafe")


# -- special functions ------------------------------------------------------------------------------------------

def _sinc(x, out):
    """sin(pi x) / (pi x), 1 at 0: torch's formula, in the compute dtype (so sinc(1) is ~1e-8 in float32)."""
    product = x * np.array(np.pi, x.dtype)
    _put(out, np.where(x == 0, 1, np.sin(product) / np.where(x == 0, 1, product)))


def _entr(x, out):
    """-x log x for x > 0, 0 at 0, -inf below (NaN stays)."""
    positive = x > 0
    _put(out, np.where(positive, -x * np.log(np.where(positive, x, 1)), np.where(x == 0, 0, np.where(x < 0, -_INF, x))))


def _xlog1py(x, y, out):
    r = np.where(x == 0, 0, x * np.log1p(y))
    _put(out, np.where(np.isnan(y), np.nan, r))


def _nextafter(spec, out, a, b):
    """In the operands' own dtype (bfloat16 and float16 step by their own ulps: no float32 compute)."""
    ct = spec.common.np
    np.nextafter(operand(a, ct), operand(b, ct), out=out, casting="unsafe")


def _polygamma(spec, out, a, n):
    if n == 1 and np_compute(spec.common) == np.float32:  # torch's own float32 trigamma, to match it
        _put(out, sp.trigamma_float32(operand(a, np.float32)))
    else:
        _put(out, sp.polygamma(n, array(a)))


def _ldexp(spec, out, a, e):
    """std::ldexp in double (exact, one rounding to the result dtype); exponents wrap to a C int."""
    _put(out, np.ldexp(operand(a, np.float64), array(e).astype(np.int32)))


def _frexp(a, out=None):
    spec = ew.frexp.meta(a, out)
    mantissa_out, exponent_out = out if out is not None else (None, None)
    mantissa, exponent = np.frexp(operand(a, np_compute(spec.dtype)))  # half types are exact in float32
    m = output("frexp", mantissa_out, spec.shape, spec.dtype, spec.device)
    e = output("frexp", exponent_out, spec.shape, dt.int32, spec.device)
    _put(array(m), mantissa)
    _put(array(e), exponent)
    if mantissa_out is not None:
        bump_version(m)
        bump_version(e)
    return ew.frexp_result(m, e)


# -- registration: one line per op -------------------------------------------------------------------------------
_add(ew.add, np.add)
_add(ew.sub, np.subtract)
_binary(ew.mul, _mul)
_with_params(ew.div, _div)
_binary(ew.remainder, _int_checked(np.remainder))
_binary(ew.fmod, _int_checked(np.fmod))
_with_params(ew.pow, _pow)
_binary(ew.float_power, _ufunc(np.power))
_unary(ew.neg, _ufunc(np.negative))
_unary(ew.abs, _ufunc(np.absolute))
_unary(ew.reciprocal, _reciprocal)
_unary(ew.sign, _sign)
_unary(ew.sgn, _sgn)
_unary(ew.conj, _ufunc(np.conjugate))
_unary(ew.signbit, _ufunc(np.signbit))
_unary(ew.floor, _integral_identity(np.floor))
_unary(ew.ceil, _integral_identity(np.ceil))
_unary(ew.trunc, _integral_identity(np.trunc))
_with_params(ew.round, _round)
_unary(ew.frac, _frac)
_unary(ew.log2, _log2)
_unary(ew.log1p, _log1p)
for _name, _f in (("exp", np.exp), ("exp2", np.exp2), ("expm1", np.expm1), ("log", np.log),
                  ("log10", np.log10), ("sqrt", np.sqrt), ("sin", np.sin), ("cos", np.cos),
                  ("tan", np.tan), ("asin", np.arcsin), ("acos", np.arccos), ("atan", np.arctan),
                  ("sinh", np.sinh), ("cosh", np.cosh), ("tanh", np.tanh), ("asinh", np.arcsinh),
                  ("acosh", np.arccosh), ("atanh", np.arctanh)):
    _unary(getattr(ew, _name), _ufunc(_f))
_unary(ew.deg2rad, _times(np.pi / 180))  # torch multiplies by the constant; NumPy's deg2rad rounds twice
_unary(ew.rad2deg, _times(180 / np.pi))
_unary(ew.rsqrt, _rsqrt)
_unary(ew.sigmoid, _sigmoid)
_with_params(ew.logit, _logit)
_unary(ew.erf, _special(sp.erf))
_unary(ew.erfc, _special(sp.erfc))
_unary(ew.relu, lambda x, out: np.maximum(x, 0, out=out, casting="unsafe"))
_with_params(ew.nan_to_num, _nan_to_num)
_binary(ew.atan2, _ufunc(np.arctan2))
_binary(ew.hypot, _ufunc(np.hypot))
_binary(ew.logaddexp, _logaddexp)
_binary(ew.logaddexp2, _ufunc(np.logaddexp2))
_binary(ew.xlogy, _xlogy)
_binary(ew.copysign, _ufunc(np.copysign))
_binary(ew.maximum, _ufunc(np.maximum))
_binary(ew.minimum, _ufunc(np.minimum))
_binary(ew.fmax, _ufunc(np.fmax))
_binary(ew.fmin, _ufunc(np.fmin))
_binary(ew.heaviside, _heaviside)
_with_params(ew.clamp, _clamp)
_with_params(ew.where, _where)
_with_params(ew.lerp, _lerp)
_binary(ew.eq, _ufunc(np.equal))
_binary(ew.ne, _ufunc(np.not_equal))
_binary(ew.lt, _ufunc(np.less))
_binary(ew.le, _ufunc(np.less_equal))
_binary(ew.gt, _ufunc(np.greater))
_binary(ew.ge, _ufunc(np.greater_equal))
_with_params(ew.isclose, _isclose)
_unary(ew.isnan, _ufunc(np.isnan))
_unary(ew.isinf, _ufunc(np.isinf))
_unary(ew.isposinf, _equal_to(_INF))
_unary(ew.isneginf, _equal_to(-_INF))
_unary(ew.isfinite, _ufunc(np.isfinite))
_unary(ew.isreal, _isreal)
_binary(ew.logical_and, _ufunc(np.logical_and))
_binary(ew.logical_or, _ufunc(np.logical_or))
_binary(ew.logical_xor, _ufunc(np.logical_xor))
_unary(ew.logical_not, _ufunc(np.logical_not))
_binary(ew.bitwise_and, _ufunc(np.bitwise_and))
_binary(ew.bitwise_or, _ufunc(np.bitwise_or))
_binary(ew.bitwise_xor, _ufunc(np.bitwise_xor))
_unary(ew.bitwise_not, _ufunc(np.invert))
_binary(ew.bitwise_left_shift, _shift(left=True))
_binary(ew.bitwise_right_shift, _shift(left=False))
_unary(ew.erfinv, _special(sp.erfinv))
_unary(ew.lgamma, _special(sp.lgamma))
_unary(ew.digamma, _special(sp.digamma))
_with_params(ew.polygamma, _polygamma)
_unary(ew.i0, _special(sp.i0))
_unary(ew.special_i0e, _special(sp.i0e))
_unary(ew.special_i1, _special(sp.i1))
_unary(ew.special_i1e, _special(sp.i1e))
_unary(ew.special_erfcx, _special(sp.erfcx))
_unary(ew.special_ndtri, _special(sp.ndtri))
_unary(ew.special_log_ndtr, _special(sp.log_ndtr))
_unary(ew.special_entr, _entr)
_unary(ew.sinc, _sinc)
_binary(ew.special_xlog1py, _xlog1py)
_binary(ew.special_zeta, lambda x, q, out: _put(out, sp.zeta(x, q)))
for _name, _fn in (("chebyshev_polynomial_t", sp.chebyshev_t), ("chebyshev_polynomial_u", sp.chebyshev_u),
                   ("chebyshev_polynomial_v", sp.chebyshev_v), ("chebyshev_polynomial_w", sp.chebyshev_w),
                   ("shifted_chebyshev_polynomial_t", sp.shifted_chebyshev_t),
                   ("shifted_chebyshev_polynomial_u", sp.shifted_chebyshev_u),
                   ("shifted_chebyshev_polynomial_v", sp.shifted_chebyshev_v),
                   ("shifted_chebyshev_polynomial_w", sp.shifted_chebyshev_w),
                   ("hermite_polynomial_h", sp.hermite_h), ("hermite_polynomial_he", sp.hermite_he),
                   ("laguerre_polynomial_l", sp.laguerre_l), ("legendre_polynomial_p", sp.legendre_p)):
    _binary(getattr(ew, "special_" + _name), lambda x, n, out, f=_fn: _put(out, f(x, n)))
_with_params(ew.nextafter, _nextafter)
_with_params(ew.ldexp, _ldexp)
ew.frexp.register(CPU, _frexp)
