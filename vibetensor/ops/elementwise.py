"""Elementwise operators: declarations, dtype rules and validation.

One op = one line: its name, how the dtype it computes in follows from its operands, which dtypes
it refuses (with torch's exception type and message), and its result dtype. The meta function
turns the op's arguments into a Spec:
  shape   - the broadcast shape
  dtype   - the result dtype
  device  - where it runs
  common  - the dtype the kernel computes in (differs from dtype for comparisons and abs of complex)
Each op's rules are compiled at declaration into a table {operands' result_type: (dtype, common)
or Refusal}, so a call costs one dict lookup beyond broadcasting and promotion.

Kernels (backends/<device>/elementwise.py) take the op's positional arguments and out=:
  unary:   kernel(a, out=None)          binary:  kernel(a, b, out=None)
Where torch takes a Python number in a tensor position, so do we (`scalars=` below says where).
An in-place variant is the same op called with out=<first input>.
"""
from collections import namedtuple

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.device import CPU
from vibetensor.tensor.tensor import Tensor

Spec = namedtuple("Spec", "shape dtype device common")
_NAMES = m.TYPE_NAMES
_NUMBERS = (bool, int, float, complex)

# dtype groups
BOOL = (dt.bool_,)
INTS = (dt.uint8, dt.int8, dt.int16, dt.int32, dt.int64)
INTEGRAL = BOOL + INTS
FLOATS = (dt.float16, dt.bfloat16, dt.float32, dt.float64)
COMPLEX = (dt.complex64, dt.complex128)
NOT_FLOAT = INTEGRAL + COMPLEX

# how the computation dtype follows from the operands' result_type
SAME = "same"                 # compute in the result_type
TO_FLOAT = "to_float"         # bool/integral compute in the default float dtype (true division, exp, ...)
TO_DOUBLE = "to_double"       # always float64 / complex128 (float_power)
# the result dtype, given the computation dtype
AS_COMPUTED = "as_computed"
TO_BOOL = "to_bool"           # comparisons, predicates, logical ops
TO_REAL = "to_real"           # abs of complex is real


class Refusal:
    """An op's answer for a dtype it does not support: the exception torch raises."""
    __slots__ = ("exc", "msg")

    def __init__(self, exc, msg):
        self.exc, self.msg = exc, msg

    def throw(self):
        raise self.exc(self.msg)


def missing(kernel, dtypes):
    """torch's AT_DISPATCH error: the kernel has no instance for these dtypes."""
    return {d: Refusal(NotImplementedError, f'"{kernel}" not implemented for \'{_NAMES[d]}\'') for d in dtypes}


def refuse(dtypes, exc, msg):
    return {d: Refusal(exc, msg) for d in dtypes}


def _compute_dtype(promote, d):
    if promote == TO_DOUBLE:
        return dt.complex128 if d.is_complex else dt.float64
    return d


def table(promote=SAME, result=AS_COMPUTED, refused=None):
    """{operands' result_type: (result dtype, compute dtype) | Refusal | None}. None means
    "integral under TO_FLOAT": look up the default float dtype's entry at call time."""
    refused = refused or {}
    out = {}
    for d in dt.ALL:
        if promote == TO_FLOAT and d.category < 2:
            out[d] = None
            continue
        c = _compute_dtype(promote, d)
        if c in refused:
            out[d] = refused[c]
        else:
            r = dt.bool_ if result == TO_BOOL else c.to_real() if result == TO_REAL else c
            out[d] = (r, c)
    return out


def lookup(tab, common):
    """The (result dtype, compute dtype) of `common` in an op's table; raises the op's refusal."""
    entry = tab[common]
    if entry is None:
        entry = tab[dt.get_default_dtype()]
    if entry.__class__ is Refusal:
        entry.throw()
    return entry


# -- geometry and promotion of operands ------------------------------------------------------------------

def _not_tensor(name, x, arg, pos):
    return TypeError(f"{name}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")


def check_number(name, x, arg="other", pos=2):
    """A Python number operand (NumPy scalars count, as in torch); TypeError otherwise. Python ints
    must fit int64 or uint64, as torch's argument parser requires (OverflowError)."""
    if x.__class__ in _NUMBERS or isinstance(x, _NUMBERS):
        if x.__class__ is int and x not in _INT_RANGE:
            raise OverflowError("int too big to convert" if x > 0 else "can't convert negative int to unsigned")
        return x
    item = getattr(x, "item", None)  # NumPy scalars
    if item is not None and getattr(x, "shape", None) == () and not isinstance(x, Tensor):
        return item()
    raise _not_tensor(name, x, arg, pos)


_INT_RANGE = range(-2 ** 63, 2 ** 64)  # Python ints torch accepts (int64 or uint64); `in` is O(1)


def memoize_binary(spec_of):
    """m.memoize_spec for a binary op's spec: the cache key sees a number's type, not its value, so
    ints out of range are refused before it."""
    cache = m.spec_cache()

    def meta(a, b):  # m.memoize_spec's key, built inline for two operands (the hot path)
        if isinstance(a, Tensor):
            ka = (a._dtype, a._shape, a._device)
        else:
            if a.__class__ is int and a not in _INT_RANGE:
                check_number("", a)
            ka = type(a)
        if isinstance(b, Tensor):
            kb = (b._dtype, b._shape, b._device)
        else:
            if b.__class__ is int and b not in _INT_RANGE:
                check_number("", b)
            kb = type(b)
        spec = cache.get((ka, kb))
        if spec is None:
            spec = m.remember(cache, (ka, kb), spec_of(a, b))
        return spec
    meta.uncached = spec_of
    return meta


def binary_geometry(name, a, b):
    """(shape, result_type, device) of two operands, either of which may be a Python number."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            sa, sb = a._shape, b._shape
            shape = sa if sa == sb else sh.broadcast_shapes(sa, sb)
            common = a._dtype if a._dtype is b._dtype else dt.result_type(a, b)
            da = a._device
            device = da if da is b._device or da == b._device else m.common_device(name, (a, b))
            return shape, common, device
        return a._shape, dt.result_type(a, b), a._device
    if isinstance(b, Tensor):
        return b._shape, dt.result_type(a, b), b._device
    return (), dt.result_type(a, b), CPU


def geometry(name, operands, promoted):
    """(shape, result_type, device) of any operands; only `promoted` ones take part in promotion."""
    shape = sh.broadcast_shapes(*(t._shape for t in operands if isinstance(t, Tensor)))
    return shape, dt.result_type(*promoted), m.common_device(name, operands)


# -- c10's checked Scalar conversion ------------------------------------------------------------------------
_C_NAMES = {dt.bool_: "bool", dt.uint8: "uint8_t", dt.int8: "int8_t", dt.int16: "int16_t", dt.int32: "int",
            dt.int64: "int64_t", dt.float16: "c10::Half", dt.bfloat16: "c10::BFloat16", dt.float32: "float",
            dt.float64: "double", dt.complex64: "c10::complex<float>", dt.complex128: "c10::complex<double>"}
_LIMITS = {}


def _limits(d):
    if d not in _LIMITS:
        import ml_dtypes
        import numpy as np
        info = ml_dtypes.finfo(d.np) if d is dt.bfloat16 else np.iinfo(d.np) if d.category == 1 \
            else np.finfo(d.to_real().np)
        _LIMITS[d] = (int(info.min), int(info.max)) if d.category == 1 else (float(info.min), float(info.max))
    return _LIMITS[d]


def check_scalar(value, d):
    """Scalar.to<T>(): RuntimeError when `value` does not fit dtype `d` (c10::overflows rules:
    unsigned types accept negatives down to -max, which wrap; infinities fit floating types)."""
    if d is dt.bool_:
        return value
    if isinstance(value, complex):
        if not d.is_complex and value.imag != 0:
            raise _overflow(d)
        value = value.real
    lo, hi = _limits(d)
    if d.category == 1:
        if isinstance(value, float):
            bad = value != value or not lo <= value <= hi
        else:
            bad = value > hi or (value < -hi if d is dt.uint8 else value < lo)
    else:
        bad = value == value and value not in _INFINITIES and not lo <= value <= hi
    if bad:
        raise _overflow(d)
    return value


_INFINITIES = (float("inf"), float("-inf"))


def _overflow(d):
    return RuntimeError(f"value cannot be converted to type {_C_NAMES[d]} without overflow")


# -- out= dtype rules --------------------------------------------------------------------------------------------
# Binary ops and float-valued unary ops cast their result into any out= dtype it safely casts to
# (meta.output checks that); torch's other unary ops want out= of exactly the result dtype. A rule
# is check(spec, out, inplace, args), run by kernels before writing to a user's tensor.

def exact_out(template, inplace_too=False):
    """out= must have the result dtype; `template` formats {out} and {result} (torch's wording). In-place
    calls are left to the cast check, as torch does, unless `inplace_too`."""
    def check(spec, out, inplace, args):
        if out._dtype is not spec.dtype and (inplace_too or not inplace):
            raise RuntimeError(template.format(out=_NAMES[out._dtype], result=_NAMES[spec.dtype]))
    return check


SAME_OUT = exact_out("Found dtype {out} but expected {result}")


def _abs_out(spec, out, inplace, args):
    if not spec.common.is_complex:
        SAME_OUT(spec, out, inplace, args)
    elif out._dtype.is_complex and out._dtype is not spec.common:  # else the real result casts into out
        raise RuntimeError(f"Found dtype {_NAMES[out._dtype]} but expected {_NAMES[spec.common]}")


def _bool_out(name):
    return exact_out(f"{name} does not support non-boolean outputs.")


def _float_power_out(spec, out, inplace, args):
    what = "base given to float_power_" if inplace else "output given to float_power"
    exact_out(f"the {what} has dtype {{out}} but the operation's result requires dtype {{result}}",
              inplace_too=True)(spec, out, inplace, args)


# -- declaring ops --------------------------------------------------------------------------------------------

# torch's barebones unsigned types (uint16/32/64) have CPU kernels for these ops only (torch 2.13); ops that
# compute in a floating type (exp, div, ...) take them too. The others refuse them, naming torch's kernel.
_BAREBONES_OK = {"mul", "conj", "signbit", "floor", "ceil", "trunc", "round", "nan_to_num", "eq", "ne", "isclose",
                 "isnan", "isinf", "isposinf", "isneginf", "isfinite", "isreal", "bitwise_and", "bitwise_or",
                 "bitwise_xor", "where"}
_BAREBONES_KERNELS = {"add": "add_stub", "sub": "add_stub", "pow": "pow", "sgn": "sign_cpu",
                      "relu": "clamp_min_scalar_cpu", "fmax": "maximum_cpu", "fmin": "minimum_cpu",
                      "clamp": "clamp_scalar_cpu", "lerp": "lerp_kernel_scalar", "bitwise_left_shift": "lshift_cpu",
                      "bitwise_right_shift": "rshift_cpu"}


def _refuse_barebones(name, tab):
    """The op's table refuses the barebones unsigned types it would compute in (unless torch has the kernel)."""
    if name in _BAREBONES_OK:
        return
    kernel = _BAREBONES_KERNELS.get(name, f"{name}_cpu")
    for d in dt.BAREBONES:
        entry = tab.get(d)
        if entry.__class__ is tuple and entry[1] is d:
            tab[d] = Refusal(NotImplementedError, f'"{kernel}" not implemented for \'{_NAMES[d]}\'')


def _declare(name, meta, tab, arity, check_out=None, overlap_ok=None):
    """`overlap_ok(spec)`: torch lets this call write into a tensor whose elements share memory."""
    _refuse_barebones(name, tab)
    meta.table, meta.arity, meta.check_out, meta.overlap_ok = tab, arity, check_out, overlap_ok
    return declare(name, meta=meta, family="elementwise")


def unary(name, promote=SAME, refused=None, result=AS_COMPUTED, out=None):
    """An op of one tensor: kernel(a, out=None). `out` is its out= dtype rule (None: cast)."""
    tab = table(promote, result, refused)

    def meta(a):
        if not isinstance(a, Tensor):
            raise _not_tensor(name, a, "input", 1)
        r, c = lookup(tab, a._dtype)
        return Spec(a._shape, r, a._device, c)
    return _declare(name, m.memoize_spec(meta), tab, 1, out)


# which operands of a binary op may be Python numbers (torch's Python signatures)
ANY = "any"          # add, sub, mul, div: either or both
OTHER = "other"      # eq, fmod, copysign ...: the second only
EITHER = "either"    # remainder, pow, xlogy, bitwise ops: one of the two
NONE = "none"        # maximum, atan2, logical_and ...: tensors only


def binary_spec(name, tab, scalars, a, b, complex32=False):
    """The Spec of a binary op: checks operand types, broadcasts, promotes, looks up the table."""
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        a, b = _check_scalars(name, scalars, a, b)
    try:
        shape, common, device = binary_geometry(name, a, b)
    except NotImplementedError:
        if not complex32:
            raise
        shape, common, device = _complex32_geometry(name, a, b)
    r, c = lookup(tab, common)
    return Spec(shape, r, device, c)


def _complex32_geometry(name, a, b):
    """float16 meeting a complex 0-d tensor or number promotes to complex32, which we lack. Ops whose
    result doesn't show it and that torch runs in complex32 (eq, ne, float_power) use complex64."""
    shape = sh.broadcast_shapes(*(x._shape for x in (a, b) if isinstance(x, Tensor)))
    return shape, dt.complex64, m.common_device(name, (a, b))


def _check_scalars(name, scalars, a, b):
    if not isinstance(a, Tensor):
        if scalars == ANY or (scalars == EITHER and isinstance(b, Tensor)):
            a = check_number(name, a, "input", 1)
        else:
            raise _not_tensor(name, a, "input", 1)
    if not isinstance(b, Tensor):
        if scalars == NONE:
            raise _not_tensor(name, b, "other", 2)
        b = check_number(name, b)
    return a, b


def binary(name, promote=SAME, refused=None, result=AS_COMPUTED, scalars=OTHER, out=None, complex32=False):
    """An op of two operands: kernel(a, b, out=None)."""
    tab = table(promote, result, refused)

    def meta(a, b):
        return binary_spec(name, tab, scalars, a, b, complex32)
    return _declare(name, memoize_binary(meta), tab, 2, out)


def _sub_check(a, b):
    """torch refuses `-` with any bool operand (a bool tensor or True/False), whatever the result."""
    ba = a is True or a is False or (isinstance(a, Tensor) and a._dtype is dt.bool_)
    bb = b is True or b is False or (isinstance(b, Tensor) and b._dtype is dt.bool_)
    if ba and bb:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if ba or bb:
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def _alpha_check(spec, alpha):
    if alpha.__class__ is int and alpha == 1:
        return
    if isinstance(alpha, bool):
        if spec.common is not dt.bool_:
            raise RuntimeError("Boolean alpha only supported for Boolean results.")
        return
    alpha = check_number("add", alpha, "alpha", 3)
    if isinstance(alpha, float) and spec.common.category < 2:
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    if isinstance(alpha, complex) and not spec.common.is_complex:
        raise RuntimeError("For non-complex input tensors, argument alpha must not be a complex number.")
    check_scalar(alpha, spec.common)


_ARITH = table()


def _add_meta(name):
    def operands_spec(a, b):
        if name == "sub":
            _sub_check(a, b)
        return binary_spec(name, _ARITH, ANY, a, b)
    operands_spec = memoize_binary(operands_spec)

    def meta(a, b, alpha=1):
        spec = operands_spec(a, b)
        if not (alpha.__class__ is int and alpha == 1):
            _alpha_check(spec, alpha)
        return spec
    return meta


# -- arithmetic ------------------------------------------------------------------------------------------------
add = _declare("add", _add_meta("add"), _ARITH, 2)         # add(a, b, alpha=1): a + alpha * b
sub = _declare("sub", _add_meta("sub"), _ARITH, 2)         # sub(a, b, alpha=1): a - alpha * b
mul = binary("mul", scalars=ANY)

_DIV = {None: table(TO_FLOAT),
        "trunc": table(refused=missing("div_trunc_cpu", BOOL + COMPLEX + dt.BAREBONES)),
        "floor": table(refused=missing("div_floor_cpu", BOOL + COMPLEX + dt.BAREBONES))}
_DIV_SPECS = {mode: memoize_binary(lambda a, b, tab=tab: binary_spec("div", tab, ANY, a, b))
              for mode, tab in _DIV.items()}


def _div_meta(a, b, rounding_mode=None):
    spec_of = _DIV_SPECS.get(rounding_mode) if isinstance(rounding_mode, (str, type(None))) else None
    if spec_of is None:
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                           f"'{rounding_mode}'")
    return spec_of(a, b)


div = _declare("div", _div_meta, _DIV[None], 2)  # div(a, b, rounding_mode=None|'trunc'|'floor'); modes keep the dtype
remainder = binary("remainder", refused=missing("remainder_cpu", BOOL + COMPLEX), scalars=EITHER)
fmod = binary("fmod", refused=missing("fmod_cpu", BOOL + COMPLEX))

_POW = table(refused=missing("pow", BOOL))


_pow_operands = memoize_binary(lambda a, b: binary_spec("pow", _POW, EITHER, a, b))


def _pow_meta(a, b):
    """torch's pow: an integral base refuses a negative Python-int exponent; scalar exponents are
    converted with overflow checks (ints and reduced floats); x ** True / x ** False short-circuit
    to a copy / ones, so they work on bool tensors too."""
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = check_number("pow", b, "exponent", 2)
        spec = binary_geometry("pow", a, b)
        common = spec[1]
        if common is dt.bool_ and b.__class__ is bool:
            return Spec(spec[0], common, spec[2], common)
        if common in dt.BAREBONES and b.__class__ in (bool, int) and b == 1:  # x ** 1: torch copies, no kernel
            return Spec(spec[0], common, spec[2], common)
        r, c = lookup(_POW, common)
        if c.category == 1:
            if isinstance(b, int) and b < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            check_scalar(b, c)
        elif c is dt.float16 or c is dt.bfloat16:
            check_scalar(b, c)
        return Spec(spec[0], r, spec[2], c)
    return _pow_operands(a, b)


pow = _declare("pow", _pow_meta, _POW, 2)                                   # noqa: A001
_FLOAT_POWER = table(TO_DOUBLE)


def _float_power_meta(a, b):
    """pow in float64 (complex128): torch widens both operands first, so they never promote with each
    other (a barebones unsigned type meets any type here)."""
    try:
        return binary_spec("float_power", _FLOAT_POWER, EITHER, a, b, complex32=True)
    except RuntimeError:
        if not any(isinstance(x, Tensor) and x._dtype in dt.BAREBONES for x in (a, b)):
            raise
        wide = dt.complex128 if any(_is_complex(x) for x in (a, b)) else dt.float64
        shape = sh.broadcast_shapes(*(x._shape for x in (a, b) if isinstance(x, Tensor)))
        return Spec(shape, wide, m.common_device("float_power", (a, b)), wide)


def _is_complex(x):
    return x._dtype.is_complex if isinstance(x, Tensor) else isinstance(x, complex)


float_power = _declare("float_power", memoize_binary(_float_power_meta), _FLOAT_POWER, 2, _float_power_out)
neg = unary("neg", refused=refuse(BOOL, RuntimeError, "Negation, the `-` operator, on a bool tensor is not "
                                  "supported. If you are trying to invert a mask, use the `~` or "
                                  "`logical_not()` operator instead."), out=SAME_OUT)
abs = unary("abs", refused=missing("abs_cpu", BOOL), result=TO_REAL, out=_abs_out)        # noqa: A001
reciprocal = unary("reciprocal", TO_FLOAT)
sign = unary("sign", refused=refuse(COMPLEX, NotImplementedError, "Unlike NumPy, torch.sign is not intended to "
                                    "support complex numbers. Please use torch.sgn instead."), out=SAME_OUT)
sgn = unary("sgn", out=SAME_OUT)
conj = unary("conj", out=SAME_OUT)  # the complex conjugate, materialised (vibetensor has no lazy conj bit)
signbit = unary("signbit", refused=refuse(COMPLEX, NotImplementedError,
                                          "signbit is not implemented for complex tensors."), result=TO_BOOL,
                out=_bool_out("signbit"))


def _rounding(name):
    return unary(name, refused={**missing(f"{name}_vml_cpu", BOOL),
                                **refuse(COMPLEX, NotImplementedError, f"{name} is not supported for complex inputs")},
                 out=SAME_OUT)


floor = _rounding("floor")
ceil = _rounding("ceil")
trunc = _rounding("trunc")
frac = unary("frac", refused=missing("frac_cpu", NOT_FLOAT), out=SAME_OUT)

_ROUND = table(refused=missing("round_vml_cpu", BOOL + COMPLEX))
_ROUND_DECIMALS = table(refused=missing("round_cpu", NOT_FLOAT))


def _round_meta(a, decimals=0):
    if not isinstance(a, Tensor):
        raise _not_tensor("round", a, "input", 1)
    if not isinstance(decimals, int) or isinstance(decimals, bool):
        raise TypeError(f"round(): argument 'decimals' must be int, not {type(decimals).__name__}")
    r, c = lookup(_ROUND if decimals == 0 else _ROUND_DECIMALS, a._dtype)
    return Spec(a._shape, r, a._device, c)


round = _declare("round", _round_meta, _ROUND, 1, SAME_OUT)                           # noqa: A001  round(a, decimals=0)

# -- exponentials, logarithms, trigonometry --------------------------------------------------------------------
exp = unary("exp", TO_FLOAT)
exp2 = unary("exp2", TO_FLOAT)
expm1 = unary("expm1", TO_FLOAT)
log = unary("log", TO_FLOAT)
log2 = unary("log2", TO_FLOAT)
log10 = unary("log10", TO_FLOAT)
log1p = unary("log1p", TO_FLOAT)
sqrt = unary("sqrt", TO_FLOAT)
rsqrt = unary("rsqrt", TO_FLOAT)
sin = unary("sin", TO_FLOAT)
cos = unary("cos", TO_FLOAT)
tan = unary("tan", TO_FLOAT)
asin = unary("asin", TO_FLOAT)
acos = unary("acos", TO_FLOAT)
atan = unary("atan", TO_FLOAT)
sinh = unary("sinh", TO_FLOAT)
cosh = unary("cosh", TO_FLOAT)
tanh = unary("tanh", TO_FLOAT)
asinh = unary("asinh", TO_FLOAT)
acosh = unary("acosh", TO_FLOAT)
atanh = unary("atanh", TO_FLOAT)
sigmoid = unary("sigmoid", TO_FLOAT)
erf = unary("erf", TO_FLOAT, missing("erf_vml_cpu", COMPLEX))
erfc = unary("erfc", TO_FLOAT, missing("erfc_vml_cpu", COMPLEX))
deg2rad = unary("deg2rad", TO_FLOAT, refuse(COMPLEX, RuntimeError, "deg2rad is not supported for complex tensors."))
rad2deg = unary("rad2deg", TO_FLOAT, refuse(COMPLEX, RuntimeError, "rad2deg is not supported for complex tensors."))
relu = unary("relu", refused={**refuse(BOOL, RuntimeError, "Boolean inputs not supported for relu"),
                              **refuse(COMPLEX, NotImplementedError, "clamp is not supported for complex types")})

_LOGIT = table(TO_FLOAT, refused=missing("logit_cpu", COMPLEX))


def _logit_meta(a, eps=None):
    """logit(a, eps=None): log(z / (1 - z)), z = a clamped to [eps, 1 - eps] when eps is given."""
    if not isinstance(a, Tensor):
        raise _not_tensor("logit", a, "input", 1)
    r, c = lookup(_LOGIT, a._dtype)
    if eps is not None:
        check_scalar(check_number("logit", eps, "eps", 2), dt.float32 if c.itemsize < 4 else c)
    return Spec(a._shape, r, a._device, c)


logit = _declare("logit", _logit_meta, _LOGIT, 1)

atan2 = binary("atan2", TO_FLOAT, missing("atan2_cpu", COMPLEX), scalars=NONE)
hypot = binary("hypot", refused=missing("hypot_cpu", NOT_FLOAT), scalars=NONE)
logaddexp = binary("logaddexp", refused=missing("logaddexp_cpu", INTEGRAL), scalars=NONE)
logaddexp2 = binary("logaddexp2", refused=missing("logaddexp2_cpu", NOT_FLOAT), scalars=NONE)
xlogy = binary("xlogy", TO_FLOAT, missing("xlogy_cpu", COMPLEX), scalars=EITHER)
copysign = binary("copysign", TO_FLOAT, missing("copysign_cpu", COMPLEX))

# -- min/max, clamping, selection --------------------------------------------------------------------------------
maximum = binary("maximum", refused=refuse(COMPLEX, RuntimeError, "maximum not implemented for complex tensors."),
                 scalars=NONE)
minimum = binary("minimum", refused=refuse(COMPLEX, RuntimeError, "minimum not implemented for complex tensors."),
                 scalars=NONE)
fmax = binary("fmax", refused=refuse(COMPLEX, RuntimeError, "fmax not implemented for complex tensors."), scalars=NONE)
fmin = binary("fmin", refused=refuse(COMPLEX, RuntimeError, "fmin not implemented for complex tensors."), scalars=NONE)

_HEAVISIDE = table(refused=refuse(COMPLEX, RuntimeError, "heaviside is not yet implemented for complex tensors."))


def _heaviside_meta(a, values):
    if not isinstance(values, Tensor):
        raise _not_tensor("heaviside", values, "values", 2)
    spec = binary_spec("heaviside", _HEAVISIDE, NONE, a, values)
    if a._dtype is not values._dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    return spec


heaviside = _declare("heaviside", _heaviside_meta, _HEAVISIDE, 2,
                     exact_out("heaviside is not yet implemented for tensors with different dtypes."))

_CLAMP_COMPLEX = refuse(COMPLEX, NotImplementedError, "clamp is not supported for complex types")
_CLAMP = {  # by which bounds are given: torch runs different kernels (and refuses bool differently)
    "scalar": table(refused={**missing("clamp_scalar_cpu", BOOL), **_CLAMP_COMPLEX}),
    "min_scalar": table(refused={**missing("clamp_min_scalar_cpu", BOOL), **_CLAMP_COMPLEX}),
    "max_scalar": table(refused={**missing("clamp_max_scalar_cpu", BOOL), **_CLAMP_COMPLEX}),
    "tensor": table(refused={**missing("clamp_cpu", BOOL), **_CLAMP_COMPLEX}),
    "min_tensor": table(refused=_CLAMP_COMPLEX),  # clamp_min with a tensor is maximum: bool works
    "max_tensor": table(refused=_CLAMP_COMPLEX),
}


def _clamp_meta(a, min=None, max=None):                                      # noqa: A002
    """clamp(a, min, max): bounds are numbers or tensors, either may be None (not both); the result
    dtype promotes over all three; number bounds must fit it (checked conversion)."""
    if not isinstance(a, Tensor):
        raise _not_tensor("clamp", a, "input", 1)
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    bounds = [x for x in (min, max) if x is not None]
    tensors = isinstance(min, Tensor) or isinstance(max, Tensor)
    for i, x in enumerate((min, max)):
        if x is not None and not isinstance(x, Tensor):
            check_number("clamp", x, ("min", "max")[i], i + 2)
    if tensors and not all(isinstance(x, Tensor) for x in bounds):
        raise TypeError("clamp(): min and max must both be tensors or both numbers")
    kind = ("" if min is not None and max is not None else "min_" if min is not None else "max_") + \
        ("tensor" if tensors else "scalar")
    shape, common, device = geometry("clamp", (a, *bounds), (a, *bounds))
    r, c = lookup(_CLAMP[kind], common)
    if not tensors:
        for x in bounds:
            check_scalar(x, c)
    return Spec(shape, r, device, c)




def _clamp_out(spec, out, inplace, args):
    if not any(isinstance(x, Tensor) for x in args[1:]):  # number bounds: torch's unary kernel
        SAME_OUT(spec, out, inplace, args)


clamp = _declare("clamp", _clamp_meta, _CLAMP["scalar"], 1, _clamp_out)                  # clamp(a, min=None, max=None)

_WHERE = table()


def _where_meta(condition, a, b):
    """where(condition, a, b): a and b promote (either may be a number, which must fit the result);
    condition is bool (uint8 is accepted with torch's deprecation warning)."""
    if not isinstance(condition, Tensor):
        raise _not_tensor("where", condition, "condition", 1)
    if condition._dtype is not dt.bool_:
        if condition._dtype is not dt.uint8:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                               f"{_NAMES[condition._dtype]}")
        import warnings
        warnings.warn("where received a uint8 condition tensor. This behavior is deprecated and will be removed "
                      "in a future version of PyTorch. Use a boolean condition instead.", UserWarning, stacklevel=4)
    a = a if isinstance(a, Tensor) else check_number("where", a, "input", 2)
    b = b if isinstance(b, Tensor) else check_number("where", b, "other", 3)
    shape, common, device = geometry("where", (condition, a, b), (a, b))
    r, c = lookup(_WHERE, common)
    if c is not dt.float16 and c is not dt.bfloat16:  # torch lets numbers overflow to inf in half types
        for x in (a, b):
            if not isinstance(x, Tensor):
                check_scalar(x, c)
    return Spec(shape, r, device, c)


where = _declare("where", _where_meta, _WHERE, 3)

_LERP = {"scalar": table(refused=missing("lerp_kernel_scalar", INTEGRAL + dt.BAREBONES)),
         "tensor": table(refused=missing("lerp_kernel_tensor", INTEGRAL + dt.BAREBONES))}


def _lerp_meta(a, b, weight):
    """lerp(a, b, weight): a and b share a dtype (no promotion); a tensor weight too, unless 0-d."""
    if not isinstance(a, Tensor):
        raise _not_tensor("lerp", a, "input", 1)
    if not isinstance(b, Tensor):
        raise _not_tensor("lerp", b, "end", 2)
    if b._dtype is not a._dtype:
        raise RuntimeError(f"expected dtype {_C_NAMES[a._dtype]} for `end` but got dtype {_C_NAMES[b._dtype]}")
    if isinstance(weight, Tensor):
        if weight._dtype is not a._dtype and weight.ndim:
            raise RuntimeError(f"expected dtype {_C_NAMES[a._dtype]} for `weight` but got dtype "
                               f"{_C_NAMES[weight._dtype]}")
        shape, common, device = geometry("lerp", (a, b, weight), (a, weight))  # a 0-d weight may promote
        r, c = lookup(_LERP["tensor"], common)
    else:
        check_number("lerp", weight, "weight", 3)
        shape, _, device = geometry("lerp", (a, b), (a,))
        r, c = lookup(_LERP["scalar"], a._dtype)
        check_scalar(weight, dt.float32 if c.itemsize < 4 else c)
    return Spec(shape, r, device, c)


lerp = _declare("lerp", _lerp_meta, _LERP["tensor"], 3)


def _nan_to_num_meta(a, nan=None, posinf=None, neginf=None):
    """nan_to_num(a, nan, posinf, neginf): None means 0 / the dtype's largest / its lowest finite value."""
    if not isinstance(a, Tensor):
        raise _not_tensor("nan_to_num", a, "input", 1)
    for arg, x in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if x is not None and (isinstance(x, complex) or not isinstance(x, (int, float))):
            raise TypeError(f"nan_to_num(): argument '{arg}' must be float, not {type(x).__name__}")
    return Spec(a._shape, a._dtype, a._device, a._dtype)


nan_to_num = _declare("nan_to_num", _nan_to_num_meta, table(), 1,
                      exact_out("nan_to_num: dtype of out: {out} should be same as input: {result}"),
                      overlap_ok=lambda spec: spec.dtype.category < 2)  # integers: a plain copy

# -- comparisons, predicates -----------------------------------------------------------------------------------
eq = binary("eq", result=TO_BOOL, complex32=True)
ne = binary("ne", result=TO_BOOL, complex32=True)
lt = binary("lt", refused=missing("lt_cpu", COMPLEX), result=TO_BOOL)
le = binary("le", refused=missing("le_cpu", COMPLEX), result=TO_BOOL)
gt = binary("gt", refused=missing("gt_cpu", COMPLEX), result=TO_BOOL)
ge = binary("ge", refused=missing("ge_cpu", COMPLEX), result=TO_BOOL)

_ISCLOSE = table(result=TO_BOOL)


def _isclose_meta(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """isclose: |a - b| <= atol + rtol * |b| (or a == b); a and b must share a dtype."""
    if not isinstance(a, Tensor):
        raise _not_tensor("isclose", a, "input", 1)
    if not isinstance(b, Tensor):
        raise _not_tensor("isclose", b, "other", 2)
    if a._dtype is not b._dtype:
        raise RuntimeError(f"{_NAMES[a._dtype]} did not match {_NAMES[b._dtype]}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    return binary_spec("isclose", _ISCLOSE, NONE, a, b)


isclose = _declare("isclose", _isclose_meta, _ISCLOSE, 2)              # isclose(a, b, rtol, atol, equal_nan)

isnan = unary("isnan", result=TO_BOOL)
isinf = unary("isinf", result=TO_BOOL)
isposinf = unary("isposinf", refused=refuse(COMPLEX, RuntimeError, "isposinf does not support complex inputs."),
                 result=TO_BOOL, out=_bool_out("isposinf"))
isneginf = unary("isneginf", refused=refuse(COMPLEX, RuntimeError, "isneginf does not support complex inputs."),
                 result=TO_BOOL, out=_bool_out("isneginf"))
isfinite = unary("isfinite", result=TO_BOOL)
isreal = unary("isreal", result=TO_BOOL)

# -- logical and bitwise ---------------------------------------------------------------------------------------
logical_and = binary("logical_and", result=TO_BOOL, scalars=NONE)
logical_or = binary("logical_or", result=TO_BOOL, scalars=NONE)
logical_xor = binary("logical_xor", result=TO_BOOL, scalars=NONE)
logical_not = unary("logical_not", result=TO_BOOL)
bitwise_and = binary("bitwise_and", refused=missing("bitwise_and_cpu", FLOATS + COMPLEX), scalars=EITHER)
bitwise_or = binary("bitwise_or", refused=missing("bitwise_or_cpu", FLOATS + COMPLEX), scalars=EITHER)
bitwise_xor = binary("bitwise_xor", refused=missing("bitwise_xor_cpu", FLOATS + COMPLEX), scalars=EITHER)
bitwise_not = unary("bitwise_not", refused=missing("bitwise_not_cpu", FLOATS + COMPLEX), out=SAME_OUT)
bitwise_left_shift = binary("bitwise_left_shift", refused=missing("lshift_cpu", BOOL + FLOATS + COMPLEX),
                            scalars=EITHER)
bitwise_right_shift = binary("bitwise_right_shift", refused=missing("rshift_cpu", BOOL + FLOATS + COMPLEX),
                             scalars=EITHER)

# -- special functions (torch.special and their torch.* names) --------------------------------------------------
HALVES = (dt.float16, dt.bfloat16)

erfinv = unary("erfinv", TO_FLOAT, missing("erfinv_vml_cpu", COMPLEX))
lgamma = unary("lgamma", TO_FLOAT, missing("lgamma_vml_cpu", COMPLEX))
digamma = unary("digamma", TO_FLOAT, missing("digamma", COMPLEX))
i0 = unary("i0", TO_FLOAT, missing("i0_vml_cpu", COMPLEX))
special_i0e = unary("special_i0e", TO_FLOAT, missing("i0e_cpu", COMPLEX))
special_i1 = unary("special_i1", TO_FLOAT, missing("i1_cpu", COMPLEX))
special_i1e = unary("special_i1e", TO_FLOAT, missing("i1e_cpu", COMPLEX))
special_entr = unary("special_entr", TO_FLOAT, missing("entr_cpu", COMPLEX))
special_erfcx = unary("special_erfcx", TO_FLOAT, missing("erfcx_cpu", HALVES + COMPLEX))
special_ndtri = unary("special_ndtri", TO_FLOAT, missing("ndtri_cpu", HALVES + COMPLEX))
special_log_ndtr = unary("special_log_ndtr", TO_FLOAT, missing("log_ndtr_cpu", HALVES + COMPLEX))
sinc = unary("sinc", TO_FLOAT)
special_xlog1py = binary("special_xlog1py", TO_FLOAT, missing("xlog1py_cpu", COMPLEX), scalars=EITHER)
special_zeta = binary("special_zeta", TO_FLOAT, missing("zeta_cpu", HALVES + COMPLEX), scalars=EITHER)
# orthogonal polynomials p(x, n) (n truncated to an integer); torch gives them no derivative
POLYNOMIALS = ("chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
               "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
               "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l",
               "legendre_polynomial_p")
for _name in POLYNOMIALS:
    globals()["special_" + _name] = binary("special_" + _name, TO_FLOAT, missing(f"{_name}_cpu", HALVES + COMPLEX),
                                           scalars=EITHER)
nextafter = binary("nextafter", refused=missing("nextafter_cpu", NOT_FLOAT), scalars=NONE)


def _check_int(name, value, arg, pos):
    """An int argument (bools refused, as torch's parser does)."""
    if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name}(): argument '{arg}' (position {pos}) must be int, not {type(value).__name__}")


# polygamma(n, x) computes digamma for n = 0 and trigamma for n = 1: torch names those kernels
_POLYGAMMA = [table(TO_FLOAT, refused=missing(kernel, COMPLEX)) for kernel in ("digamma", "trigamma", "polygamma")]


def _polygamma_meta(a, n):
    """polygamma(a, n): the n-th derivative of digamma (torch.polygamma(n, a); the tensor comes first
    here, as the in-place form writes into it)."""
    _check_int("polygamma", n, "n", 1)
    if not isinstance(a, Tensor):
        raise _not_tensor("polygamma", a, "input", 2)
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    r, c = lookup(_POLYGAMMA[min(n, 2)], a._dtype)
    return Spec(a._shape, r, a._device, c)


polygamma = _declare("polygamma", _polygamma_meta, _POLYGAMMA[2], 1)

_LDEXP = table(refused=missing("ldexp_cpu", NOT_FLOAT))


def _ldexp_meta(a, e):
    """ldexp(a, e) = a * 2^e for a floating tensor and an integral one, exact (std::ldexp in double,
    rounded once to a's dtype; e wraps to a C int). The front door sends any other operands to
    a * pow(2.0, e), as torch does."""
    if not isinstance(a, Tensor):
        raise _not_tensor("ldexp", a, "input", 1)
    if not isinstance(e, Tensor):
        raise _not_tensor("ldexp", e, "other", 2)
    if e._dtype.category != 1:
        raise NotImplementedError(f"\"ldexp_cpu_exp\" not implemented for '{_NAMES[e._dtype]}'")
    shape, _, device = binary_geometry("ldexp", a, e)
    r, c = lookup(_LDEXP, a._dtype)
    return Spec(shape, r, device, c)


ldexp = _declare("ldexp", _ldexp_meta, _LDEXP, 2)


def _two_pow(dtype, device, e):
    """2 ** e as torch's ldexp forms it from its input's dtype: float32 for integral and float32
    inputs, else a 0-d 2.0 of that dtype meeting e (a complex64 input and float16 exponents meet in
    complex32, as in torch)."""
    if dtype.category < 2 or dtype is dt.float32:
        return pow(2.0, e)
    from vibetensor.ops import creation  # it sits above us in the import order
    return pow(creation.full((), 2.0, dtype, device=device), e)


def _ldexp_pow(a, e, out=None):
    """torch's general ldexp (float exponents, integral inputs, or an out= of another dtype):
    a * 2 ** e, one op for autograd as in torch (LdexpBackward0's formula, not mul's and pow's)."""
    return mul(a, _two_pow(a._dtype, a._device, e), out=out)


ldexp_pow = declare("ldexp_pow", composite=_ldexp_pow, family="elementwise")


def _frexp_meta(a, out=None):
    """frexp(a) -> (mantissa, exponent): a = mantissa * 2^exponent, |mantissa| in [0.5, 1), int32
    exponents; out=(mantissa, exponent) must have exactly those dtypes."""
    if not isinstance(a, Tensor):
        raise _not_tensor("frexp", a, "input", 1)
    if a._dtype.category != 2:
        raise RuntimeError("torch.frexp() only supports floating-point dtypes")
    if out is not None:
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(o, Tensor) for o in out)):
            raise TypeError("frexp(): argument 'out' must be tuple of Tensors")
        if out[0]._dtype is not a._dtype:
            raise RuntimeError(f"torch.frexp() expects mantissa to have dtype {_CPP_NAMES[a._dtype]} but got "
                               f"{_CPP_NAMES[out[0]._dtype]}")
        if out[1]._dtype is not dt.int32:
            raise RuntimeError(f"torch.frexp() expects exponent to have int dtype but got "
                               f"{_CPP_NAMES[out[1]._dtype]}")
    return Spec(a._shape, a._dtype, a._device, a._dtype)


frexp = declare("frexp", meta=_frexp_meta, family="elementwise")   # frexp(a) -> (mantissa, exponent)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# One formula per differentiable op, following torch's derivatives.yaml; the contract is in
# vibetensor/autograd/derivatives.py: formula(ctx, grad, *op_args) -> a gradient per positional
# argument (None: none), broadcast shapes and dtypes fixed up by the engine. Formulas use the ops
# above, so they are differentiable again (create_graph=True). Ops not listed here (comparisons,
# predicates, bitwise: integer/bool results) never carry gradients, or (heaviside)
# raise NotImplementedError at backward time.
import math as _math  # noqa: E402

from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative, \
    zeros_like as _zeros_like  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


@_derivative(add)
def _add_backward(ctx, grad, a, b, alpha=1):
    return grad, (grad if alpha == 1 else mul(grad, _conj(alpha)))


@_derivative(sub, name=lambda a, b, alpha=1: "SubBackward0" if isinstance(a, Tensor) else "RsubBackward1")
def _sub_backward(ctx, grad, a, b, alpha=1):
    return grad, (neg(grad) if alpha == 1 else mul(grad, -_conj(alpha)))


@_derivative(mul, save=(0, 1))
def _mul_backward(ctx, grad, a, b):
    return (mul(grad, _conj(b)) if _needs(ctx, 0) else None,
            mul(grad, _conj(a)) if _needs(ctx, 1) else None)


@_derivative(div, save=lambda a, b, rounding_mode=None: (0, 1) if rounding_mode is None else ())
def _div_backward(ctx, grad, a, b, rounding_mode=None):
    if rounding_mode is not None:  # piecewise constant
        return _zeros_like(grad), _zeros_like(grad)
    return (div(grad, _conj(b)) if _needs(ctx, 0) else None,
            mul(neg(grad), _conj(div(div(a, b), b))) if _needs(ctx, 1) else None)


def _pow_saves(a, b):
    return (0, 1, "result") if isinstance(b, Tensor) else (0,) if isinstance(a, Tensor) else (1, "result")


def _pow_name(a, b):
    return "PowBackward0" if not isinstance(b, Tensor) else "PowBackward1" if isinstance(a, Tensor) else "PowBackward2"


@_derivative(pow, save=_pow_saves, name=_pow_name)
def _pow_backward(ctx, grad, a, b):
    ga = gb = None
    if _needs(ctx, 0):
        if not isinstance(b, Tensor):
            ga = _zeros_like(grad) if b == 0 else mul(grad, _conj(mul(b, pow(a, b - 1))))
        else:
            ga = where(eq(b, 0), 0.0, mul(grad, _conj(mul(b, pow(a, sub(b, 1))))))
    if _needs(ctx, 1):
        if isinstance(a, Tensor):
            ga_log = where(logical_and(eq(a, 0), ge(b, 0)), 0.0, mul(ctx.result, log(a)))
            gb = mul(grad, _conj(ga_log))
        elif a == 0:
            gb = where(ge(b, 0), 0.0, mul(grad, mul(ctx.result, float("-inf"))))
        else:
            gb = mul(grad, _conj(mul(ctx.result, _math.log(a) if not isinstance(a, complex) else _cmath_log(a))))
    return ga, gb


def _cmath_log(a):
    import cmath
    return cmath.log(a)


@_derivative(float_power, save=_pow_saves, name=_pow_name)
def _float_power_backward(ctx, grad, a, b):
    """float_power(a, b) is pow in double (complex128): pow's formula on the widened operands."""
    from vibetensor.ops import creation as _c
    wide = dt.complex128 if grad._dtype.is_complex else dt.float64
    widen = lambda x: _c.to(x, wide, x._device) if isinstance(x, Tensor) and x._dtype is not wide else x  # noqa: E731
    return _pow_backward(ctx, grad, widen(a), widen(b))


# unary ops: (op, what to save, grad_input(grad, x, y)) with x the input, y the result
_LN2, _LN10, _TWO_OVER_SQRT_PI = _math.log(2.0), _math.log(10.0), 2.0 / _math.sqrt(_math.pi)


def _zero(g, x, y):
    return _zeros_like(g)


_UNARY_DERIVATIVES = [
    (neg, (), lambda g, x, y: neg(g)),
    (exp, "result", lambda g, x, y: mul(g, _conj(y))),
    (exp2, "result", lambda g, x, y: mul(mul(g, _conj(y)), _LN2)),
    (expm1, "result", lambda g, x, y: mul(g, add(_conj(y), 1))),
    (log, 0, lambda g, x, y: div(g, _conj(x))),
    (log2, 0, lambda g, x, y: div(g, mul(_conj(x), _LN2))),
    (log10, 0, lambda g, x, y: div(g, mul(_conj(x), _LN10))),
    (log1p, 0, lambda g, x, y: div(g, _conj(add(x, 1)))),
    (sqrt, "result", lambda g, x, y: div(g, mul(2, _conj(y)))),
    (rsqrt, "result", lambda g, x, y: mul(mul(-0.5, g), _conj(pow(y, 3)))),
    (reciprocal, "result", lambda g, x, y: mul(neg(g), _conj(mul(y, y)))),
    (sin, 0, lambda g, x, y: mul(g, _conj(cos(x)))),
    (cos, 0, lambda g, x, y: mul(g, neg(_conj(sin(x))))),
    (tan, "result", lambda g, x, y: mul(g, _conj(add(pow(y, 2), 1)))),
    (asin, 0, lambda g, x, y: mul(g, _conj(rsqrt(add(mul(neg(x), x), 1))))),
    (acos, 0, lambda g, x, y: mul(g, neg(_conj(rsqrt(add(mul(neg(x), x), 1)))))),
    (atan, 0, lambda g, x, y: div(g, _conj(add(mul(x, x), 1)))),
    (sinh, 0, lambda g, x, y: mul(g, _conj(cosh(x)))),
    (cosh, 0, lambda g, x, y: mul(g, _conj(sinh(x)))),
    (tanh, "result", lambda g, x, y: mul(g, _conj(sub(1, mul(y, y))))),
    (asinh, 0, lambda g, x, y: mul(g, _conj(rsqrt(add(pow(x, 2), 1))))),
    (acosh, 0, lambda g, x, y: mul(g, _conj(rsqrt(sub(pow(x, 2), 1))))),
    (atanh, 0, lambda g, x, y: mul(g, div(1, _conj(sub(1, pow(x, 2)))))),
    (sigmoid, "result", lambda g, x, y: mul(mul(g, _conj(sub(1, y))), _conj(y))),
    (erf, 0, lambda g, x, y: mul(mul(_TWO_OVER_SQRT_PI, exp(neg(pow(x, 2)))), g)),
    (erfc, 0, lambda g, x, y: mul(mul(-_TWO_OVER_SQRT_PI, exp(neg(pow(x, 2)))), g)),
    (abs, 0, lambda g, x, y: mul(g, sgn(x))),
    (deg2rad, (), lambda g, x, y: mul(g, _math.pi / 180)),
    (rad2deg, (), lambda g, x, y: mul(g, 180 / _math.pi)),
    (frac, (), lambda g, x, y: g),
    (sign, (), _zero),
    (floor, (), _zero),
    (ceil, (), _zero),
    (trunc, (), _zero),
]


def _unary_derivative(op, save, grad_input):
    @_derivative(op, save=save)
    def formula(ctx, grad, x, *params):
        return grad_input(grad, x, ctx.result)
    formula.__name__ = f"_{op.name.split('::')[-1]}_backward"
    return formula


for _op, _save, _fn in _UNARY_DERIVATIVES:
    _unary_derivative(_op, _save, _fn)


@_derivative(conj)
def _conj_backward(ctx, grad, x):
    return conj(grad) if grad._dtype.is_complex else grad


@_derivative(sgn, save=0)
def _sgn_backward(ctx, grad, x):
    if x._dtype.is_complex:  # torch's sgn_backward: (g - sgn(x)^2 conj(g)) / 2|x|, 0 where x == 0
        s, mag = sgn(x), abs(x)
        return (where(eq(mag, 0), 0.0, div(sub(grad, mul(mul(s, s), conj(grad))), mul(mag, 2))),)
    return _zeros_like(grad)


@_derivative(round)
def _round_backward(ctx, grad, x, decimals=0):
    return _zeros_like(grad)


@_derivative(logit, save=0)
def _logit_backward(ctx, grad, x, eps=None):
    if eps is None:
        return where(logical_or(lt(x, 0), gt(x, 1)), float("nan"), div(grad, mul(x, sub(1, x))))
    return where(logical_or(lt(x, eps), gt(x, 1 - eps)), 0.0, div(grad, mul(x, sub(1, x))))


@_derivative(nan_to_num, save=0)
def _nan_to_num_backward(ctx, grad, x, *params):
    return mul(grad, isfinite(x))


# binary ops
@_derivative(atan2, save=(0, 1))
def _atan2_backward(ctx, grad, a, b):
    recip = reciprocal(add(mul(a, a), mul(b, b)))
    return (mul(mul(grad, b), recip) if _needs(ctx, 0) else None,
            mul(mul(grad, neg(a)), recip) if _needs(ctx, 1) else None)


@_derivative(hypot, save=(0, 1, "result"))
def _hypot_backward(ctx, grad, a, b):
    y = ctx.result
    return (div(mul(grad, a), y) if _needs(ctx, 0) else None,
            div(mul(grad, b), y) if _needs(ctx, 1) else None)


@_derivative(logaddexp, save=(0, 1))
def _logaddexp_backward(ctx, grad, a, b):  # (conjugated for complex numbers, as torch's)
    return (div(grad, _conj(add(exp(sub(b, a)), 1))) if _needs(ctx, 0) else None,
            div(grad, _conj(add(exp(sub(a, b)), 1))) if _needs(ctx, 1) else None)


@_derivative(logaddexp2, save=(0, 1))
def _logaddexp2_backward(ctx, grad, a, b):
    return (div(grad, add(pow(2, sub(b, a)), 1)) if _needs(ctx, 0) else None,
            div(grad, add(pow(2, sub(a, b)), 1)) if _needs(ctx, 1) else None)


@_derivative(xlogy, save=(0, 1))
def _xlogy_backward(ctx, grad, a, b):
    return (mul(grad, xlogy(ne(a, 0), b)) if _needs(ctx, 0) else None,
            div(mul(grad, a), b) if _needs(ctx, 1) else None)


def _extremum_derivative(op, wins):
    """maximum/minimum: the gradient goes to the winner, split evenly on ties (torch's rule)."""
    @_derivative(op, save=(0, 1))
    def formula(ctx, grad, a, b):
        half = where(eq(a, b), div(grad, 2), grad)
        return (where(wins(b, a), 0.0, half) if _needs(ctx, 0) else None,
                where(wins(a, b), 0.0, half) if _needs(ctx, 1) else None)
    return formula


_extremum_derivative(maximum, gt)
_extremum_derivative(minimum, lt)


def _fextremum_derivative(op, keeps):
    """fmax/fmin: self gets the gradient where it was chosen (it wins, ties, or other is NaN)."""
    @_derivative(op, save=(0, 1))
    def formula(ctx, grad, a, b):
        chosen = logical_or(keeps(a, b), isnan(b))
        return (where(chosen, grad, 0.0) if _needs(ctx, 0) else None,
                where(chosen, 0.0, grad) if _needs(ctx, 1) else None)
    return formula


_fextremum_derivative(fmax, ge)
_fextremum_derivative(fmin, le)


@_derivative(fmod, save=(0, 1))
def _fmod_backward(ctx, grad, a, b):
    return grad, (mul(neg(grad), div(a, b, "trunc")) if _needs(ctx, 1) else None)


@_derivative(remainder, save=(0, 1))
def _remainder_backward(ctx, grad, a, b):
    return (grad if _needs(ctx, 0) else None,
            mul(neg(grad), div(a, b, "floor")) if _needs(ctx, 1) else None)


@_derivative(copysign, save=(0, "result"))
def _copysign_backward(ctx, grad, a, b):
    ratio = where(eq(a, 0), 0.0, div(ctx.result, a))
    return mul(grad, ratio), (_zeros_like(b) if _needs(ctx, 1) else None)


@_derivative(clamp, save=(0, 1, 2))
def _clamp_backward(ctx, grad, x, lo=None, hi=None):
    if not isinstance(lo, Tensor) and not isinstance(hi, Tensor):
        inside = ge(x, lo) if hi is None else le(x, hi) if lo is None else logical_and(ge(x, lo), le(x, hi))
        return where(inside, grad, 0.0)
    if lo is not None and hi is not None:  # torch's clamp_backward_min_max
        return (where(logical_and(ge(x, lo), le(x, hi)), grad, 0.0) if _needs(ctx, 0) else None,
                where(logical_and(lt(x, lo), lt(lo, hi)), grad, 0.0) if _needs(ctx, 1) else None,
                where(logical_or(gt(x, hi), lt(hi, lo)), grad, 0.0) if _needs(ctx, 2) else None)
    if lo is not None:
        return where(ge(x, lo), grad, 0.0), where(lt(x, lo), grad, 0.0), None
    return where(le(x, hi), grad, 0.0), None, where(gt(x, hi), grad, 0.0)


@_derivative(where, save=0)
def _where_backward(ctx, grad, condition, a, b):
    return (None,
            where(condition, grad, 0.0) if _needs(ctx, 1) else None,
            where(condition, 0.0, grad) if _needs(ctx, 2) else None)


@_derivative(lerp, save=lambda a, b, weight: (0, 1, 2) if isinstance(weight, Tensor) and weight._requires_grad
             else (2,))
def _lerp_backward(ctx, grad, a, b, weight):
    return (mul(grad, _conj(sub(1, weight))) if _needs(ctx, 0) else None,
            mul(grad, _conj(weight)) if _needs(ctx, 1) else None,
            mul(grad, _conj(sub(b, a))) if _needs(ctx, 2) else None)


# special functions
from vibetensor.ops.reduction import CPP_NAMES as _CPP_NAMES, _return_type  # noqa: E402  (it imports us: late)

frexp_result = _return_type("frexp", "mantissa exponent")   # torch.return_types.frexp
_SQRT_PI, _SQRT_2PI = _math.sqrt(_math.pi), _math.sqrt(2 * _math.pi)


def _where_tiny(x, value, otherwise):
    """where(|x| > eps(x), otherwise(x'), value), with x' = x off the tiny values (torch's i1 backward:
    the formulas divide by x, and where differentiates both branches)."""
    eps = _FINFO_EPS[x._dtype]
    big = gt(abs(x), eps)
    return where(big, otherwise(where(big, x, eps)), value)


_FINFO_EPS = {dt.float16: 2.0 ** -10, dt.bfloat16: 2.0 ** -7, dt.float32: 2.0 ** -23, dt.float64: 2.0 ** -52}

_SPECIAL_DERIVATIVES = [
    (erfinv, "result", lambda g, x, y: mul(mul(0.5 * _SQRT_PI, exp(pow(y, 2))), g)),
    (lgamma, 0, lambda g, x, y: mul(g, digamma(x))),
    (digamma, 0, lambda g, x, y: mul(g, polygamma(x, 1))),
    (i0, 0, lambda g, x, y: mul(g, special_i1(x))),
    (special_i0e, (0, "result"), lambda g, x, y: mul(g, sub(special_i1e(x), mul(sgn(x), y)))),
    (special_i1, (0, "result"), lambda g, x, y: mul(g, _where_tiny(x, 0.5, lambda s: sub(i0(s), div(y, s))))),
    (special_i1e, (0, "result"), lambda g, x, y: mul(g, _where_tiny(
        x, 0.5, lambda s: sub(special_i0e(s), mul(y, add(sgn(s), reciprocal(s))))))),
    (special_erfcx, (0, "result"), lambda g, x, y: mul(sub(mul(mul(2.0, x), y), 2.0 / _SQRT_PI), g)),
    (special_ndtri, "result", lambda g, x, y: mul(mul(g, _SQRT_2PI), exp(div(pow(y, 2), 2)))),
    (special_log_ndtr, (0, "result"), lambda g, x, y: mul(div(g, _SQRT_2PI), exp(neg(add(y, div(pow(x, 2), 2)))))),
    (special_entr, 0, lambda g, x, y: mul(g, neg(add(log(x), 1)))),
    (sinc, 0, lambda g, x, y: _sinc_backward(g, x)),
]


def _sinc_backward(grad, x):
    """(pi x cos(pi x) - sin(pi x)) / (pi x^2), 0 at x = 0."""
    x_pi = mul(x, _math.pi)
    x_sq_pi = mul(mul(x, x), _math.pi)
    out = div(mul(grad, _conj(sub(mul(x_pi, cos(x_pi)), sin(x_pi)))), _conj(x_sq_pi))
    return where(eq(x_sq_pi, 0.0), 0.0, out)


for _op, _save, _fn in _SPECIAL_DERIVATIVES:
    _unary_derivative(_op, _save, _fn)


@_derivative(polygamma, save=0)
def _polygamma_backward(ctx, grad, x, n):
    return mul(grad, polygamma(x, n + 1)), None


@_derivative(special_xlog1py, save=(0, 1))
def _xlog1py_backward(ctx, grad, a, b):
    ga = gb = None
    if _needs(ctx, 0):
        ga = special_xlog1py(grad, b)
        if isinstance(b, Tensor):  # torch: 0 where a == 0 and b <= -1 (log1p(b) is -inf or NaN there)
            ga = where(logical_and(eq(a, 0.0), le(b, -1.0)), 0.0, ga)
    if _needs(ctx, 1):
        gb = div(mul(grad, a), add(b, 1))
    return ga, gb


@_derivative(special_zeta, save=(0, 1))
def _zeta_backward(ctx, grad, s, q):
    if _needs(ctx, 0):
        raise NotImplementedError("the derivative for 'zeta' is not implemented.")
    minus_s = neg(s) if isinstance(s, Tensor) else -s
    return None, (mul(grad, mul(minus_s, special_zeta(add(s, 1), q))) if _needs(ctx, 1) else None)


@_derivative(nextafter, save=(0, 1))
def _nextafter_backward(ctx, grad, a, b):
    """torch: the step is locally the identity in a (zero where a == b: no step), constant in b."""
    ga = where(eq(a, b), 0.0, grad) if _needs(ctx, 0) else None
    return ga, (_zeros_like(grad) if _needs(ctx, 1) else None)


@_derivative(ldexp, save=(1,))
def _ldexp_backward(ctx, grad, a, e):
    return ldexp(grad, e), None


@_derivative(ldexp_pow, save=(1, "result"), name="LdexpBackward0")
def _ldexp_pow_backward(ctx, grad, a, e, out=None):
    """torch's order of roundings: grad * 2^e, and grad * result * ln 2 (two roundings in half types)."""
    ga = mul(grad, _two_pow(a.dtype, a.device, e)) if _needs(ctx, 0) else None
    ge = mul(mul(grad, ctx.result), _math.log(2.0)) if _needs(ctx, 1) else None
    return ga, ge


@_derivative(frexp, save=("result",))
def _frexp_backward(ctx, grad, a):
    return ldexp(grad[0], neg(ctx.result[1]))   # grad / 2^exponent, exactly


from vibetensor.autograd import nondifferentiable as _nondifferentiable  # noqa: E402

for _name in POLYNOMIALS:  # torch: outputs that never require grad
    _nondifferentiable(globals()["special_" + _name])
