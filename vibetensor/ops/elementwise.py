"""Elementwise operators: declarations and their dtype rules.

Each op is one line naming its dtype rule; the meta function turns operands into a Spec:
  shape   - the broadcast shape
  dtype   - the result dtype
  device  - where it runs
  common  - the dtype inputs are computed in (differs from dtype for comparisons and predicates)
Kernels (backends/<device>/elementwise.py) receive normalised arguments:
  unary:   kernel(a, out=None)
  binary:  kernel(a, b, out=None)   (a or b may be a Python number, never both)
An in-place variant is the same op called with out=<first input>.
"""
from collections import namedtuple

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor

Spec = namedtuple("Spec", "shape dtype device common")

# dtype rules
SAME = "same"                 # result_type of the operands
TO_FLOAT = "to_float"         # integral/bool promote to the default float dtype (true division, exp, ...)
TO_BOOL = "to_bool"           # compute in result_type, return bool (comparisons)
LOGICAL = "logical"           # any dtype in, bool out (logical_and, ...)
INTEGRAL = "integral"         # integral or bool only (bitwise ops)
REAL = "real"                 # no complex (maximum, remainder, ...)
NO_BOOL = "no_bool"           # no bool (sub, neg)
FLOAT_PRED = "float_pred"     # any dtype in, bool out, unary (isnan, isinf, ...)

_NAMES = m.TYPE_NAMES


def _check(name, rule, common, operands):
    if rule == INTEGRAL and common.category > 1:
        raise RuntimeError(f'"{name}_cpu" not implemented for \'{_NAMES[common]}\'')
    if rule == REAL and common.is_complex:
        raise RuntimeError(f"{name} does not support complex inputs.")
    if rule == NO_BOOL and common is dt.bool_:
        if name == "neg":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are "
                               "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. Use the "
                           "`^` or `logical_xor()` operator instead.")


def spec_of(name, rule, *operands):
    """The Spec of an elementwise op; validates shapes, devices and dtypes (torch's messages)."""
    for x in operands:
        if not isinstance(x, (Tensor, bool, int, float, complex)):
            raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor or Number, "
                            f"not {type(x).__name__}")
    shape, common, device = m.elementwise(name, *operands)
    _check(name, rule, common, operands)
    if rule == TO_FLOAT and common.category < 2:
        return Spec(shape, dt.get_default_dtype(), device, dt.get_default_dtype())
    if rule in (TO_BOOL, LOGICAL, FLOAT_PRED):
        return Spec(shape, dt.bool_, device, common)
    return Spec(shape, common, device, common)


def _declare(name, rule, arity):
    def meta(*operands):
        return spec_of(name, rule, *operands)
    meta.rule, meta.arity = rule, arity
    return declare(name, meta=meta, family="elementwise")


def unary(name, rule=SAME):
    return _declare(name, rule, 1)


def binary(name, rule=SAME):
    return _declare(name, rule, 2)


# -- arithmetic ----------------------------------------------------------------------------------------
add = binary("add")                   # add(a, b, alpha=1): a + alpha * b
sub = binary("sub", NO_BOOL)          # sub(a, b, alpha=1)
mul = binary("mul")
div = binary("div", TO_FLOAT)         # div(a, b, rounding_mode=None|'trunc'|'floor'); modes keep the dtype
neg = unary("neg", NO_BOOL)
exp = unary("exp", TO_FLOAT)

# -- comparisons ------------------------------------------------------------------------------------------
eq = binary("eq", TO_BOOL)
