"""torch.* elementwise functions, Tensor operators and methods: argument parsing and defaults, then one call into the op.

Each function is the user-facing signature of one op (torch's names and defaults); the op itself
takes normalised positional arguments (see vibetensor/ops/).
"""
from vibetensor.ops import elementwise as ew
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.tensor_methods import inplace, method

_NUMBER = (Tensor, bool, int, float, complex)


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


# -- operators ---------------------------------------------------------------------------------------

def _binary_operator(op, *fixed):
    def forward(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(self, other, *fixed)

    def reflected(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(other, self, *fixed)

    def in_place(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(self, other, *fixed, out=self)
    return forward, reflected, in_place


for _name, _op, _fixed in (("add", ew.add, (1,)), ("sub", ew.sub, (1,)), ("mul", ew.mul, ()),
                           ("truediv", ew.div, (None,))):
    _f, _r, _i = _binary_operator(_op, *_fixed)
    setattr(Tensor, f"__{_name}__", _f)
    setattr(Tensor, f"__r{_name}__", _r)
    setattr(Tensor, f"__i{_name}__", _i)

Tensor.__eq__ = lambda self, other: ew.eq(self, other) if isinstance(other, _NUMBER) else NotImplemented
Tensor.__neg__ = lambda self: ew.neg(self)
Tensor.__hash__ = lambda self: id(self)

# -- op methods ----------------------------------------------------------------------------------------
for _fn in (add, sub, mul, div, neg, exp, eq):
    method(_fn)
    method(inplace(_fn))
for _alias, _target in (("subtract", sub), ("multiply", mul), ("divide", div), ("true_divide", div),
                        ("negative", neg)):
    method(_target, _alias)
    method(inplace(_target), _alias + "_")



__all__ = ["add", "sub", "mul", "div", "neg", "exp", "eq", "subtract", "multiply", "divide", "negative", "true_divide"]
