"""torch.* operator functions: argument parsing and defaults, then one call into the op.

Each function is the user-facing signature of one op (torch's names and defaults); the op itself
takes normalised positional arguments (see vibetensor/ops/).
"""
from vibetensor.ops import elementwise as ew


def add(input, other, *, alpha=1, out=None):
    return ew.add(input, other, alpha, out=out)


def sub(input, other, *, alpha=1, out=None):
    return ew.sub(input, other, alpha, out=out)


def mul(input, other, *, out=None):
    return ew.mul(input, other, out=out)


def div(input, other, *, rounding_mode=None, out=None):
    return ew.div(input, other, rounding_mode, out=out)


def neg(input, *, out=None):
    return ew.neg(input, out=out)


def exp(input, *, out=None):
    return ew.exp(input, out=out)


def eq(input, other, *, out=None):
    return ew.eq(input, other, out=out)


subtract, multiply, divide, negative, true_divide = sub, mul, div, neg, div
