"""torch.* matrix products and their Tensor methods (mm, bmm, matmul and `@`, addmm, addmv, dot,
vdot, mv, outer): torch's signatures and defaults, then one op call."""
from vibetensor.ops import linalg as la
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.tensor_methods import inplace, method


def mm(input, mat2, *, out=None):
    return la.mm(input, mat2, out=out)


def bmm(input, mat2, *, out=None):
    return la.bmm(input, mat2, out=out)


def matmul(input, other, *, out=None):
    return la.matmul(input, other, out=out)


def addmm(input, mat1, mat2, *, beta=1, alpha=1, out=None):
    return la.addmm(input, mat1, mat2, beta, alpha, out=out)


def addmv(input, mat, vec, *, beta=1, alpha=1, out=None):
    return la.addmv(input, mat, vec, beta, alpha, out=out)


def mv(input, vec, *, out=None):
    return la.mv(input, vec, out=out)


def dot(input, tensor, *, out=None):
    return la.dot(input, tensor, out=out)


def vdot(input, other, *, out=None):
    return la.vdot(input, other, out=out)


def outer(input, vec2, *, out=None):
    return la.outer(input, vec2, out=out)


ger = outer

for _fn in (mm, bmm, matmul, addmm, addmv, mv, dot, vdot, outer):
    method(_fn)
method(outer, "ger")
method(inplace(addmm))
method(inplace(addmv))


# `a @ b`. Like torch there is no __imatmul__: `a @= b` rebinds a to a new tensor.
def _matmul_operator(self, other):
    return la.matmul(self, other) if isinstance(other, Tensor) else NotImplemented


def _rmatmul_operator(self, other):
    return la.matmul(other, self) if isinstance(other, Tensor) else NotImplemented


Tensor.__matmul__ = _matmul_operator
Tensor.__rmatmul__ = _rmatmul_operator

__all__ = ["mm", "bmm", "matmul", "addmm", "addmv", "mv", "dot", "vdot", "outer", "ger"]
