"""Front door: torch.linalg (norms, cross, matrix_exp, svd, svdvals, matmul): torch's signatures and
defaults, then one op call."""
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as r
from vibetensor.torch.reduction import _dims


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    return r.vector_norm(x, ord, _dims(dim, "linalg_vector_norm"), keepdim, dtype, out=out)


def _matrix_dims(dim, op):
    dims = _dims(dim, op)
    return (dims,) if isinstance(dims, int) else dims


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    return la.matrix_norm(A, ord, _matrix_dims(dim, "linalg_matrix_norm"), keepdim, dtype, out=out)


def norm(A, ord=None, dim=None, keepdim=False, *, out=None, dtype=None):
    """A matrix norm when ord is given and there are two dims (dim of length 2, or a 2-D input
    without dim); else a vector norm (ord=None is the 2-norm / Frobenius norm)."""
    dims = None if dim is None else _matrix_dims(dim, "linalg_norm")
    if dims is not None and len(dims) not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got "
                           f"[{', '.join(map(str, dims))}]")
    if dims is None and ord is not None and A.ndim not in (1, 2):
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got "
                           f"{A.ndim}D.")
    if isinstance(ord, str) or ord is not None and (len(dims) == 2 if dims is not None else A.ndim == 2):
        return la.matrix_norm(A, ord, dims or (0, 1), keepdim, dtype, out=out)
    return r.vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype, out=out)


def svdvals(A, *, driver=None, out=None):
    return la.linalg_svdvals(A, out=out)


def svd(A, full_matrices=True, *, driver=None, out=None):
    return la.linalg_svd(A, full_matrices, out=out)


def cross(input, other, *, dim=-1, out=None):
    return la.linalg_cross(input, other, dim, out=out)


def matrix_exp(A):
    return la.linalg_matrix_exp(A)


def matmul(input, other, *, out=None):
    return la.matmul(input, other, out=out)


__all__ = ["vector_norm", "matrix_norm", "norm", "svdvals", "svd", "cross", "matrix_exp", "matmul"]
