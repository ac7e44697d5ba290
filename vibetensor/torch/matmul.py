"""torch.* matrix products, linear algebra and their Tensor methods (mm, bmm, matmul and `@`, addmm,
addmv, baddbmm, addbmm, addr, dot, vdot, inner, mv, outer, cross, trace, matrix_exp, dist, renorm,
addcmul, addcdiv, mvlgamma): torch's signatures and defaults, then one op call."""
import warnings

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


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    return la.baddbmm(input, batch1, batch2, beta, alpha, out=out)


def addbmm(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    return la.addbmm(input, batch1, batch2, beta, alpha, out=out)


def addr(input, vec1, vec2, *, beta=1, alpha=1, out=None):
    return la.addr(input, vec1, vec2, beta, alpha, out=out)


def inner(input, other, *, out=None):
    return la.inner(input, other, out=out)


_cross_warned = False


def cross(input, other, dim=None, *, out=None):
    """Without dim: the first dim of size 3, with torch's (once per process) deprecation warning."""
    global _cross_warned
    if dim is None:
        if not _cross_warned:
            _cross_warned = True
            warnings.warn("Using torch.cross without specifying the dim arg is deprecated.\nPlease either pass the "
                          "dim explicitly or simply use torch.linalg.cross.\nThe default value of dim will change to "
                          "agree with that of linalg.cross in a future release.", UserWarning, stacklevel=2)
        dim = la.default_cross_dim(input.shape)
    return la.linalg_cross(input, other, dim, out=out)


def trace(input):
    return la.trace(input)


def matrix_exp(A):
    return la.linalg_matrix_exp(A)


def dist(input, other, p=2):
    return la.dist(input, other, float(p) if isinstance(p, Tensor) else p)


def renorm(input, p, dim, maxnorm, *, out=None):
    return la.renorm(input, p, dim, maxnorm, out=out)


def addcmul(input, tensor1, tensor2, *, value=1, out=None):
    return la.addcmul(input, tensor1, tensor2, value, out=out)


def addcdiv(input, tensor1, tensor2, *, value=1, out=None):
    return la.addcdiv(input, tensor1, tensor2, value, out=out)


def mvlgamma(input, p, *, out=None):
    return la.mvlgamma(input, p, out=out)


for _fn in (mm, bmm, matmul, addmm, addmv, mv, dot, vdot, outer, baddbmm, addbmm, addr, inner, cross, trace,
            matrix_exp, dist, renorm, addcmul, addcdiv, mvlgamma):
    method(_fn)
method(outer, "ger")
for _fn in (addmm, addmv, baddbmm, addbmm, addr, renorm, addcmul, addcdiv, mvlgamma):
    method(inplace(_fn))


# `a @ b`. Like torch there is no __imatmul__: `a @= b` rebinds a to a new tensor.
def _matmul_operator(self, other):
    return la.matmul(self, other) if isinstance(other, Tensor) else NotImplemented


def _rmatmul_operator(self, other):
    return la.matmul(other, self) if isinstance(other, Tensor) else NotImplemented


Tensor.__matmul__ = _matmul_operator
Tensor.__rmatmul__ = _rmatmul_operator

__all__ = ["mm", "bmm", "matmul", "addmm", "addmv", "mv", "dot", "vdot", "outer", "ger", "baddbmm", "addbmm", "addr",
           "inner", "cross", "trace", "matrix_exp", "dist", "renorm", "addcmul", "addcdiv", "mvlgamma"]
