"""torch.* elementwise functions, Tensor operators and methods: argument parsing and defaults, then
one call into the op.

Each function is the user-facing signature of one op (torch's names and defaults); the op itself
takes normalised positional arguments and validates them (see vibetensor/ops/elementwise.py).
Methods are the same functions; in-place methods (`x.exp_()`) call the op with out=self, and exist
exactly where torch has them.
"""
import operator

import numpy as np

from vibetensor.ops import elementwise as ew
from vibetensor.ops.meta import TYPE_NAMES
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.tensor_methods import inplace, method

__all__ = []


def _exporter(namespace):
    """The @_export decorator of a front-door module (special.py uses it too): puts fn, under `name`,
    into that module's namespace and its __all__."""
    def export(fn, name=None):
        name = name or fn.__name__
        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = namespace["__name__"]  # special's functions are built here but live there
        namespace[name] = fn
        namespace["__all__"].append(name)
        return fn
    return export


_export = _exporter(globals())


def _unary_fn(op, name, export=_export):
    def fn(input, *, out=None):
        return op(input, out=out)
    return export(fn, name)


def _binary_fn(op, name, export=_export):
    def fn(input, other, *, out=None):
        return op(input, other, out=out)
    return export(fn, name)


# -- the plain ops: torch.<name>(input[, other], *, out=None) ------------------------------------------------
_UNARY = ("neg abs reciprocal sign sgn signbit floor ceil trunc frac exp exp2 expm1 log log2 log10 log1p sqrt "
          "rsqrt sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh sigmoid erf erfc deg2rad rad2deg "
          "isposinf isneginf logical_not bitwise_not erfinv lgamma digamma i0 sinc").split()
_UNARY_NO_OUT = "isnan isinf isfinite isreal".split()
_BINARY = ("mul remainder fmod atan2 hypot logaddexp logaddexp2 xlogy copysign maximum minimum fmax "
           "fmin eq ne lt le gt ge logical_and logical_or logical_xor bitwise_and bitwise_or bitwise_xor "
           "bitwise_left_shift bitwise_right_shift nextafter").split()
for _name in _UNARY:
    _unary_fn(getattr(ew, _name), _name)
for _name in _UNARY_NO_OUT:
    _export((lambda op: lambda input: op(input))(getattr(ew, _name)), _name)
for _name in _BINARY:
    _binary_fn(getattr(ew, _name), _name)


@_export
def add(input, other, *, alpha=1, out=None):
    return ew.add(input, other, alpha, out=out)


@_export
def sub(input, other, *, alpha=1, out=None):
    return ew.sub(input, other, alpha, out=out)


@_export
def rsub(input, other, *, alpha=1):
    """other - alpha * input."""
    if not isinstance(input, Tensor):
        raise TypeError(f"rsub(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    return ew.sub(other, input, alpha)


@_export
def div(input, other, *, rounding_mode=None, out=None):
    return ew.div(input, other, rounding_mode, out=out)


@_export
def true_divide(input, other, *, out=None):
    return ew.div(input, other, None, out=out)


@_export
def floor_divide(input, other, *, out=None):
    return ew.div(input, other, "floor", out=out)


@_export
def pow(input, exponent, *, out=None):                                     # noqa: A001
    return ew.pow(input, exponent, out=out)


@_export
def square(input, *, out=None):
    return ew.pow(input, 2, out=out)


@_export
def round(input, *, decimals=0, out=None):                                  # noqa: A001
    return ew.round(input, decimals, out=out)


@_export
def logit(input, eps=None, *, out=None):
    return ew.logit(input, eps, out=out)


@_export
def heaviside(input, values, *, out=None):
    return ew.heaviside(input, values, out=out)


@_export
def relu(input):
    return ew.relu(input)


@_export
def positive(input):
    """The input itself (torch returns the same object); bool tensors are refused like unary +."""
    if not isinstance(input, Tensor):
        raise TypeError(f"positive(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    if input._dtype is dt.bool_:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


@_export
def clamp(input, min=None, max=None, *, out=None):                          # noqa: A002
    return ew.clamp(input, min, max, out=out)


@_export
def clamp_min(input, min, *, out=None):                                     # noqa: A002
    return ew.clamp(input, min, None, out=out)


@_export
def clamp_max(input, max, *, out=None):                                     # noqa: A002
    return ew.clamp(input, None, max, out=out)


@_export
def where(condition, input=None, other=None, *, out=None):
    """where(condition, input, other); where(condition) is condition.nonzero(as_tuple=True)."""
    if input is None and other is None:
        nonzero = getattr(condition, "nonzero", None)
        if nonzero is None:
            raise NotImplementedError("torch.where(condition) needs Tensor.nonzero, which is not implemented yet")
        return nonzero(as_tuple=True)
    return ew.where(condition, input, other, out=out)


@_export
def lerp(input, end, weight, *, out=None):
    return ew.lerp(input, end, weight, out=out)


@_export
def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None):
    return ew.nan_to_num(input, nan, posinf, neginf, out=out)


@_export
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return ew.isclose(input, other, rtol, atol, equal_nan)


@_export
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Python bool: every element isclose (shapes must broadcast)."""
    return _all(ew.isclose(input, other, rtol, atol, equal_nan))


@_export
def equal(input, other):
    """Python bool: same shape and equal values (dtypes may differ; NaN is not equal to itself)."""
    for pos, (arg, x) in enumerate((("input", input), ("other", other)), 1):
        if not isinstance(x, Tensor):
            raise TypeError(f"equal(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    if input._shape != other._shape:
        return False
    return _all(ew.eq(input, other))


def _all(t):
    """All elements true, as a Python bool (a host read: the answer is host data)."""
    return bool(np.all(np.asarray(t.cpu())))


@_export
def polygamma(n, input, *, out=None):
    """The n-th derivative of digamma (the op takes the tensor first)."""
    return ew.polygamma(input, _int_arg(n), out=out)


def _int_arg(n):
    """An int argument as torch's parser reads it: NumPy integers count; bools and floats are left for
    the op to refuse."""
    if n.__class__ is int or isinstance(n, (bool, float)):
        return n
    try:
        return operator.index(n)
    except TypeError:
        return n


@_export
def frexp(input, *, out=None):
    """(mantissa, exponent) with input = mantissa * 2 ** exponent, |mantissa| in [0.5, 1), int32 exponents."""
    return ew.frexp(input, out=out)


@_export
def ldexp(input, other, *, out=None):
    """input * 2 ** other. torch's two routes: a floating input with integral exponents (and out=, if
    any, of input's dtype) is the exact ldexp op; anything else is input * _pow2(input, other)."""
    for pos, (arg, x) in enumerate((("input", input), ("other", other)), 1):
        if not isinstance(x, Tensor):
            raise TypeError(f"ldexp(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    if isinstance(out, Tensor) and out._dtype.category < 2:
        raise RuntimeError(f"ldexp can't be cast to the desired output type {TYPE_NAMES[out._dtype]}")
    if other._dtype.category < 2 and input._dtype.category == 2 and (out is None or out._dtype is input._dtype):
        return ew.ldexp(input, other, out=out)
    return ew.ldexp_pow(input, other, out=out)


# -- aliases, as torch names them ------------------------------------------------------------------------------
_ALIASES = {"subtract": sub, "multiply": globals()["mul"], "divide": div, "negative": globals()["neg"],
            "absolute": globals()["abs"], "fix": globals()["trunc"], "clip": clamp,
            "arcsin": globals()["asin"], "arccos": globals()["acos"], "arctan": globals()["atan"],
            "arcsinh": globals()["asinh"], "arccosh": globals()["acosh"], "arctanh": globals()["atanh"],
            "arctan2": globals()["atan2"], "greater": globals()["gt"], "greater_equal": globals()["ge"],
            "less": globals()["lt"], "less_equal": globals()["le"], "not_equal": globals()["ne"]}
for _alias, _fn in _ALIASES.items():
    globals()[_alias] = _fn
    __all__.append(_alias)


@_export
def float_power(input, exponent, *, out=None):
    """input ** exponent in float64 (complex128 for complex operands); out= must be exactly that dtype."""
    return ew.float_power(input, exponent, out=out)


# -- methods: every function above but rsub; in-place forms where torch has them --------------------------------
def _abs_(self):
    if isinstance(self, Tensor) and self._dtype.is_complex:
        raise RuntimeError("In-place abs is not supported for complex tensors.")
    return ew.abs(self, out=self)


_INPLACE = {"abs": _abs_, "absolute": _abs_, "relu": lambda self: ew.relu(self, out=self)}
_NO_INPLACE = {"rsub", "signbit", "logaddexp", "logaddexp2", "where", "maximum", "minimum", "fmax", "fmin",
               "positive", "isclose", "equal", "allclose", "isnan", "isinf", "isposinf", "isneginf", "isfinite",
               "isreal", "frexp", "polygamma"}
for _name in list(__all__):
    _fn = globals()[_name]
    if _name not in ("rsub", "where", "polygamma"):
        method(_fn, _name)
    if _name not in _NO_INPLACE:
        method(_INPLACE[_name] if _name in _INPLACE else inplace(_fn), _name + "_")
method(lambda self, condition, other: ew.where(condition, self, other), "where")  # x.where(cond, y)
method(lambda self, n: ew.polygamma(self, _int_arg(n)), "polygamma")           # x.polygamma(n)
method(lambda self, n: ew.polygamma(self, _int_arg(n), out=self), "polygamma_")

# torch.<name>_ module functions (torch.relu_(x), torch.exp_(x)...), for the names torch has them
for _name in ("neg negative abs reciprocal square floor ceil round trunc fix frac exp exp2 expm1 log log2 log10 "
              "log1p sqrt rsqrt sin cos tan asin acos atan arcsin arccos arctan sinh cosh tanh asinh acosh atanh "
              "arcsinh arccosh arctanh sigmoid logit erf erfc clamp clip clamp_min clamp_max xlogy nan_to_num relu "
              "deg2rad rad2deg i0 sinc ldexp").split():
    globals()[_name + "_"] = getattr(Tensor, _name + "_")
    __all__.append(_name + "_")


# -- operators -------------------------------------------------------------------------------------------------
_NUMBER = (Tensor, bool, int, float, complex)


def _other(x):
    """The right operand of an operator, or None when we don't know its type (-> NotImplemented)."""
    if isinstance(x, _NUMBER):
        return x
    if isinstance(x, np.generic) and x.shape == ():
        return x.item()
    return None


_PLAIN = frozenset((Tensor, bool, int, float, complex))  # operand classes taken as they are, without _other


def _operators(forward, reflected, in_place):
    def f(self, other):
        if other.__class__ not in _PLAIN:
            other = _other(other)
            if other is None:
                return NotImplemented
        return forward(self, other)

    def r(self, other):
        if other.__class__ not in _PLAIN:
            other = _other(other)
            if other is None:
                return NotImplemented
        return reflected(self, other)

    def i(self, other):
        if other.__class__ not in _PLAIN:
            other = _other(other)
            if other is None:
                return NotImplemented
        return in_place(self, other)
    return f, r, i


_OPERATORS = {
    # x + n and n + x are both add(x, n), as in torch (the order shows with complex infinities). The op
    # itself where the call is (a, b) with the defaults (alpha=1, rounding_mode=None): no lambda's frame
    "add": (ew.add, ew.add, lambda a, b: ew.add(a, b, 1, out=a)),
    "sub": (ew.sub, lambda a, b: ew.sub(b, a, 1), lambda a, b: ew.sub(a, b, 1, out=a)),
    "mul": (ew.mul, ew.mul, lambda a, b: ew.mul(a, b, out=a)),
    # torch: other / x is x.reciprocal() * other
    "truediv": (ew.div, lambda a, b: ew.mul(ew.reciprocal(a), b),
                lambda a, b: ew.div(a, b, None, out=a)),
    "floordiv": (lambda a, b: ew.div(a, b, "floor"), lambda a, b: ew.div(b, a, "floor"),
                 lambda a, b: ew.div(a, b, "floor", out=a)),
    "mod": (ew.remainder, lambda a, b: ew.remainder(b, a), lambda a, b: ew.remainder(a, b, out=a)),
    "pow": (ew.pow, lambda a, b: ew.pow(b, a), lambda a, b: ew.pow(a, b, out=a)),
    "and": (ew.bitwise_and, lambda a, b: ew.bitwise_and(b, a), lambda a, b: ew.bitwise_and(a, b, out=a)),
    "or": (ew.bitwise_or, lambda a, b: ew.bitwise_or(b, a), lambda a, b: ew.bitwise_or(a, b, out=a)),
    "xor": (ew.bitwise_xor, lambda a, b: ew.bitwise_xor(b, a), lambda a, b: ew.bitwise_xor(a, b, out=a)),
    "lshift": (ew.bitwise_left_shift, lambda a, b: ew.bitwise_left_shift(b, a),
               lambda a, b: ew.bitwise_left_shift(a, b, out=a)),
    "rshift": (ew.bitwise_right_shift, lambda a, b: ew.bitwise_right_shift(b, a),
               lambda a, b: ew.bitwise_right_shift(a, b, out=a)),
}
for _name, (_f, _r, _i) in _OPERATORS.items():
    _f, _r, _i = _operators(_f, _r, _i)
    setattr(Tensor, f"__{_name}__", _f)
    setattr(Tensor, f"__r{_name}__", _r)
    setattr(Tensor, f"__i{_name}__", _i)
Tensor.__div__, Tensor.__rdiv__, Tensor.__idiv__ = Tensor.__truediv__, Tensor.__rtruediv__, Tensor.__itruediv__

for _name, _op in (("eq", ew.eq), ("ne", ew.ne), ("lt", ew.lt), ("le", ew.le), ("gt", ew.gt), ("ge", ew.ge)):
    setattr(Tensor, f"__{_name}__", _operators(_op, None, None)[0])

Tensor.__neg__ = lambda self: ew.neg(self)
Tensor.__pos__ = positive
Tensor.__abs__ = lambda self: ew.abs(self)


def _invert(self):
    if self._dtype.category > 1:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return ew.bitwise_not(self)


Tensor.__invert__ = _invert
Tensor.__hash__ = object.__hash__  # (defining __eq__ above does not reset it; by identity, in C, as torch)
