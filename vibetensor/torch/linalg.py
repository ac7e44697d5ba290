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


from vibetensor.torch.functional import linalg_vander as vander, multi_dot  # noqa: E402


def vecdot(x, y, *, dim=-1, out=None):
    """sum(conj(x) * y) along dim, broadcast."""
    from vibetensor.torch import sum as _sum
    prod = (x.conj() if x.dtype.is_complex else x) * y
    result = _sum(prod, dim)
    return result if out is None else out.copy_(result)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    from vibetensor.torch import diagonal as _diagonal
    return _diagonal(A, offset, dim1, dim2)


# -- inverses, determinants, solves, decompositions (vibetensor/ops/decompositions.py) -------------------------

from vibetensor.ops import decompositions as _d  # noqa: E402
from vibetensor.ops.decompositions import LinAlgError  # noqa: E402,F401  (torch.linalg.LinAlgError)
from vibetensor.tensor import dtype as _dt  # noqa: E402


def _done(result, out):
    if out is None:
        return result
    if isinstance(result, tuple):
        for o, r_ in zip(out, result):
            o.copy_(r_)
        return out
    return out.copy_(result)


def _info(A):
    """The `info` of the *_ex functions: zeros (int32, one per matrix) when the op succeeded."""
    from vibetensor.ops import creation as _c
    return _c.full(tuple(A.shape[:-2]), 0, _dt.int32, device=A.device)


def inv(A, *, out=None):
    return _done(_d.linalg_inv(A), out)


def inv_ex(A, *, check_errors=False, out=None):
    return _done((_d.linalg_inv(A), _info(A)), out)


def det(A, *, out=None):
    return _done(_d.linalg_det(A), out)


def slogdet(A, *, out=None):
    return _done(_d.linalg_slogdet(A), out)


def _vector_rhs(A, B):
    """torch's rule: B is a (batch of) vector(s) when it is 1-D or A's shape without its last dim."""
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def solve(A, B, *, left=True, out=None):
    """X with A X = B (left) or X A = B; B a matrix or a vector (torch's rule)."""
    from vibetensor.ops import views as _v
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return _done(_v.transpose(solve(_v.transpose(A, -2, -1), _v.transpose(B, -2, -1)), -2, -1), out)
    if _vector_rhs(A, B):
        return _done(_v.squeeze(_d.linalg_solve(A, _v.unsqueeze(B, -1)), (B.ndim,)), out)
    return _done(_d.linalg_solve(A, B), out)


def solve_ex(A, B, *, left=True, check_errors=False, out=None):
    return _done((solve(A, B, left=left), _info(A)), out)


def cholesky(A, *, upper=False, out=None):
    return _done(_d.linalg_cholesky(A, upper), out)


def cholesky_ex(A, *, upper=False, check_errors=False, out=None):
    return _done((_d.linalg_cholesky(A, upper), _info(A)), out)


def qr(A, mode="reduced", *, out=None):
    return _done(_d.linalg_qr(A, mode), out)


def eigh(A, UPLO="L", *, out=None):
    return _done(_d.linalg_eigh(A, UPLO), out)


def _householder_q(A, tau, columns):
    """H_1 H_2 ... H_k (first `columns` columns), H_i = I - tau_i v_i v_i^H with v_i the i-th column of A
    below the diagonal, 1 on it and 0 above (LAPACK's orgqr), built with differentiable ops."""
    import vibetensor.torch as _torch
    if A.dtype in (_dt.bfloat16, _dt.float16):
        from vibetensor.ops.meta import TYPE_NAMES
        raise NotImplementedError(f'"orgqr_cpu" not implemented for \'{TYPE_NAMES[A.dtype]}\'')
    m = A.shape[-2]
    rows = _torch.arange(m, device=A.device).unsqueeze(-1)  # (m, 1)
    eye = _torch.eye(m, dtype=A.dtype, device=A.device)
    q = eye.expand(*A.shape[:-2], m, m)
    for i in range(tau.shape[-1]):
        v = _torch.where(rows > i, A[..., :, i:i + 1], _torch.where(rows == i, 1.0, 0.0).to(A.dtype))  # (*, m, 1)
        h = eye - tau[..., i, None, None] * (v @ v.mH)
        q = q @ h
    return q[..., :, :columns]


def householder_product(A, tau, *, out=None):
    """The first n columns of the product of the Householder reflectors stored in A (m, n) and tau (k,)."""
    if A.ndim < 2 or A.shape[-2] < A.shape[-1]:
        raise RuntimeError("torch.linalg.householder_product: input.shape[-2] must be greater than or equal to "
                           "input.shape[-1]")
    if tau.shape[-1] > A.shape[-1]:
        raise RuntimeError("torch.linalg.householder_product: input.shape[-1] must be greater than or equal to "
                           "tau.shape[-1]")
    q = _householder_q(A, tau, A.shape[-1])
    if tau.shape[-1] == 0:  # no reflectors: the identity's columns, still in A's graph (a zero gradient), as torch
        import vibetensor.torch as _torch
        q = _torch.where(_torch.tensor(True, device=A.device), q, A)
    return _done(q, out)


def eig(A, *, out=None):
    return _done(_d.linalg_eig(A), out)


def eigvals(A, *, out=None):
    return _done(_d.linalg_eig(A)[0], out)


def eigvalsh(A, UPLO="L", *, out=None):
    return _done(_d.linalg_eigh(A, UPLO)[0], out)


def matrix_power(A, n, *, out=None):
    """A^n by repeated squaring (n < 0: of the inverse; n = 0: identities)."""
    from vibetensor.ops import creation as _c
    from vibetensor.ops import linalg as _la
    from vibetensor.ops import views as _v
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError("linalg.matrix_power: A must be batches of square matrices, but they are "
                           f"{A.shape[-2] if A.ndim >= 2 else 1} by {A.shape[-1] if A.ndim else 1} matrices")
    if n == 0:  # identities that still depend on A (with a zero gradient), as torch's
        from vibetensor.ops import elementwise as _ew
        eye = _c.eye(A.shape[-1], A.shape[-1], A.dtype, device=A.device)
        return _done(_ew.where(_c.full((), True, _dt.bool_, device=A.device), _v.expand(eye, tuple(A.shape)), A), out)
    base = _d.linalg_inv(A) if n < 0 else A
    n = abs(n)
    result = None
    while n:
        if n & 1:
            result = base if result is None else _la.matmul(result, base)
        n >>= 1
        if n:
            base = _la.matmul(base, base)
    return _done(result if result is not A else _c.clone(A), out)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, tol=None, out=None):
    """The number of singular values above max(atol, rtol * largest) (rtol defaults to eps * max(m, n))."""
    from vibetensor.ops import elementwise as _ew
    if tol is not None:
        atol, rtol = tol, 0.0
    s = svdvals(A) if not hermitian else _ew.abs(eigvalsh(A))
    if s.shape[-1] == 0:
        from vibetensor.ops import creation as _c
        return _done(_c.full(tuple(s.shape[:-1]), 0, _dt.int64, device=A.device), out)
    thresh = _tolerance(r.amax(s, (-1,), True), atol, rtol, A)
    return _done(r.sum(_ew.gt(s, thresh), (-1,), False, _dt.int64), out)


def _tolerance(top, atol, rtol, A):
    """max(atol, rtol * top) per matrix (top: (*batch, 1), the largest singular value), torch's rule:
    rtol defaults to eps * max(m, n) where atol is not positive, else 0; atol and rtol may be
    tensors with one value per matrix."""
    import vibetensor.torch as _torch
    as_col = lambda v: v.unsqueeze(-1) if isinstance(v, _torch.Tensor) else v  # noqa: E731
    atol, rtol = as_col(atol), as_col(rtol)
    if rtol is None:
        default = _finfo_eps(A.dtype.to_real()) * max(A.shape[-2:])
        rtol = default if atol is None else _torch.where(_torch.as_tensor(atol) > 0, 0.0, default)
    thresh = top * rtol
    return thresh if atol is None else _torch.maximum(thresh, _torch.as_tensor(atol, dtype=thresh.dtype))


lstsq_result = r._return_type("linalg_lstsq", "solution residuals rank singular_values")


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares (m >= n) or minimum-norm (m < n) solution of A X = B through a QR factorisation,
    with what torch's driver returns beside it: rank (gelsy, gelsd, gelss), singular values (gelsd,
    gelss), squared residuals (not gelsy; when m > n and A has full rank)."""
    from vibetensor.ops import creation as _c
    driver = driver or "gelsy"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    m, n = A.shape[-2:]
    if m >= n:
        q, rr = qr(A)
        x = solve_triangular(rr, q.mH @ b, upper=True)
    else:  # A^H = Q R: X = Q R^-H B, the solution of least norm
        q, rr = qr(A.mH)
        x = q @ solve_triangular(rr.mH, b, upper=False)
    empty = lambda dtype: _c.empty((0,), dtype, device=A.device)  # noqa: E731
    rank = matrix_rank(A, rtol=rcond) if driver != "gels" else empty(_dt.int64)
    values = svdvals(A).detach() if driver in ("gelsd", "gelss") else empty(A.dtype.to_real())  # (not tracked)
    residuals = (x.real if x.dtype.is_complex else x).reshape(-1)[:0]  # empty, but tracked as torch's is
    if driver != "gelsy" and m > n and bool((matrix_rank(A) == n).all()):
        diff = A @ x - b
        residuals = (diff.abs() ** 2 if diff.dtype.is_complex else diff * diff).sum(-2)
    return lstsq_result(x.squeeze(-1) if vector else x, residuals, rank, values)


def lu_factor(A, *, pivot=True, out=None):
    """(LU, pivots): A = P L U by partial pivoting, L unit-lower and U upper packed in LU."""
    if not pivot:
        raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")
    return _done(_d.linalg_lu_factor(A), out)


def lu_factor_ex(A, *, pivot=True, check_errors=False, out=None):
    lu_, piv = lu_factor(A, pivot=pivot)
    return _done((lu_, piv, _info(A)), out)


def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True, *, out=None):
    """(P, L, U) from lu_factor's packed result: L (*, m, k) unit-lower, U (*, k, n) upper."""
    from vibetensor.ops import creation as _c
    from vibetensor.ops import shape_ops as _s
    m, n = LU_data.shape[-2:]
    k = min(m, n)
    empty = lambda: _c.empty((0,), LU_data.dtype, device=LU_data.device)  # noqa: E731
    P = _d.lu_permutation(LU_pivots, m, LU_data.dtype) if unpack_pivots else empty()
    if not unpack_data:
        return _done((P, empty(), empty()), out)
    L = _s.tril(LU_data, -1)[..., :, :k] + _c.eye(m, k, LU_data.dtype, device=LU_data.device)
    U = _s.triu(LU_data)[..., :k, :]
    return _done((P, L, U), out)


def lu(A, *, pivot=True, out=None):
    """(P, L, U) with A = P L U."""
    lu_, piv = lu_factor(A, pivot=pivot)
    return _done(lu_unpack(lu_, piv), out)


def lu_solve(LU, pivots, B, *, left=True, adjoint=False, out=None):
    """X with A X = B (A^H X = B when adjoint; X A = B when not left) for A = P L U given packed: two
    triangular solves and the row permutation."""
    if not left:  # X A = B  <=>  A^H X^H = B^H;  X A^H = B  <=>  A X^H = B^H
        return _done(lu_solve(LU, pivots, B.mH, adjoint=not adjoint).mH, out)
    P = _d.lu_permutation(pivots, LU.shape[-1], LU.dtype)
    if not adjoint:  # U^-1 L^-1 P^T B
        y = solve_triangular(LU, P.mT @ B, upper=False, unitriangular=True)
        return _done(solve_triangular(LU, y, upper=True), out)
    w = solve_triangular(LU.mH, B, upper=False)  # U^-H B (U^H is lower)
    v = solve_triangular(LU.mH, w, upper=True, unitriangular=True)  # L^-H w
    return _done(P @ v, out)


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """X with A X = B (or X A = B) reading only A's upper or lower triangle (and not its diagonal when
    unitriangular); solved through linalg_solve of that triangle, so the gradient lands on it alone."""
    from vibetensor.ops import creation as _c
    from vibetensor.ops import elementwise as _ew
    from vibetensor.ops import shape_ops as _s
    if B.ndim < 2:
        raise RuntimeError("linalg.solve_triangular: The input tensor B must have at least 2 dimensions.")
    tri = _s.triu(A, 1 if unitriangular else 0) if upper else _s.tril(A, -1 if unitriangular else 0)
    if unitriangular:
        tri = _ew.add(tri, _c.eye(A.shape[-1], A.shape[-1], A.dtype, device=A.device))
    return _done(solve(tri, B, left=left), out)


def pinv(A, *, atol=None, rtol=None, hermitian=False, out=None):
    """The Moore-Penrose pseudo-inverse from the SVD (or eigh when hermitian), singular values at or
    below max(atol, rtol * largest) treated as zero (torch's composite), differentiated with torch's
    pinv_backward (which holds for rank-deficient matrices too)."""
    return _done(_PseudoInverse.apply(A, atol, rtol, hermitian), out)


def _pinv_value(A, atol, rtol, hermitian):
    from vibetensor.torch import where as _where
    if hermitian:  # A = V diag(L) V^H: the inverse divides by the signed eigenvalues
        s, v = eigh(A)
        u, vh = v, v.mH
    else:
        u, s, vh = svd(A, full_matrices=False)
    if s.shape[-1] == 0:
        return A.mT.clone()
    tol = _tolerance(s.abs().amax(-1, keepdim=True), atol, rtol, A)
    s_inv = _where(s.abs() > tol, 1 / s, 0.0).to(A.dtype)  # (*batch, k)
    return (vh.mH * s_inv.unsqueeze(-2)) @ u.mH


def _pinv_backward(grad, A, pinv_a):
    """torch's pinv_backward, in the smaller of the two matrix shapes."""
    pinv_h, grad_h = pinv_a.mH, grad.mH
    if A.shape[-2] <= A.shape[-1]:
        k = grad_h @ pinv_a
        k_pinv_h = k @ pinv_h
        return -(pinv_a @ k).mH + k_pinv_h - (A @ pinv_a) @ k_pinv_h + (pinv_h @ pinv_a) @ (grad_h - k @ A)
    k = pinv_a @ grad_h
    pinv_h_k = pinv_h @ k
    return -(k @ pinv_a).mH + (grad_h - A @ k) @ pinv_a @ pinv_h + pinv_h_k - pinv_h_k @ pinv_a @ A


def _pseudo_inverse():
    from vibetensor.autograd.function import Function

    class PseudoInverse(Function):
        @staticmethod
        def forward(ctx, A, atol, rtol, hermitian):
            result = _pinv_value(A, atol, rtol, hermitian)
            ctx.save_for_backward(A, result)
            return result

        @staticmethod
        def backward(ctx, grad):
            A, result = ctx.saved_tensors
            return _pinv_backward(grad, A, result), None, None, None
    return PseudoInverse


_PseudoInverse = _pseudo_inverse()


def cond(A, p=None, *, out=None):
    """The condition number: sigma_max / sigma_min for p in (None, 2), the inverse for -2, else
    norm(A, p) * norm(inv(A), p)."""
    if p in (None, 2, -2):
        s = svdvals(A)
        big, small = s[..., 0], s[..., -1]
        return _done(small / big if p == -2 else big / small, out)
    return _done(norm(A, p, dim=(-2, -1)) * norm(inv(A), p, dim=(-2, -1)), out)


def tensorinv(A, ind=2, *, out=None):
    """The inverse of A seen as a matrix (prod of its first ind dims) x (prod of the rest)."""
    import math as _math
    if ind <= 0:
        raise RuntimeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
    rows, cols = A.shape[:ind], A.shape[ind:]
    if _math.prod(rows) != _math.prod(cols):
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           "prod(self.shape[:ind]), but got " f"{_math.prod(cols)} != {_math.prod(rows)}")
    return _done(inv(A.reshape(_math.prod(rows), _math.prod(cols))).reshape(tuple(cols) + tuple(rows)), out)


def tensorsolve(A, B, dims=None, *, out=None):
    """X with tensordot(A, X, X.ndim) == B (dims of A moved to the end first)."""
    import math as _math
    if dims is not None:
        A = A.movedim(list(dims), list(range(A.ndim - len(dims), A.ndim)))
    x_shape = tuple(A.shape[B.ndim:])
    n = _math.prod(x_shape)
    if _math.prod(A.shape[:B.ndim]) != n:
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[other.ndim:]) == "
                           f"prod(self.shape[:other.ndim]), but got {n} != {_math.prod(A.shape[:B.ndim])}")
    return _done(solve(A.reshape(n, n), B.reshape(n)).reshape(x_shape), out)


def _finfo_eps(dtype):
    import numpy as _np
    return float(_np.finfo(dtype.np).eps)


__all__ = ["inv", "inv_ex", "det", "slogdet", "solve", "solve_ex", "cholesky", "cholesky_ex", "qr", "householder_product", "eig", "eigvals", "eigh", "eigvalsh",
           "matrix_power", "matrix_rank", "lstsq", "lu_factor", "lu_factor_ex", "lu", "lu_solve", "solve_triangular", "pinv", "cond", "tensorinv", "tensorsolve", "vander", "multi_dot", "vecdot", "diagonal", "vector_norm", "matrix_norm", "norm", "svdvals", "svd", "cross", "matrix_exp", "matmul"]
