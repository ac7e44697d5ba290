"""Matrix inverses, determinants, solves and decompositions: linalg_inv, linalg_det, linalg_slogdet,
linalg_solve, linalg_cholesky, linalg_qr, linalg_eigh. Declarations, torch's checks, and the
derivatives (torch's formulas, written with ops so they differentiate again).

Every op works on batches of matrices (*batch, m, n) in float32/float64/complex64/complex128; half
types are refused as torch's CPU LAPACK path refuses them.
"""
import collections

from vibetensor.dispatch import declare
from vibetensor.ops import creation, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import meta as m
from vibetensor.ops import reduction as r
from vibetensor.ops.linalg import matmul, square_matrices
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

Spec = collections.namedtuple("Spec", "shape dtype device")
slogdet_result = r._return_type("linalg_slogdet", "sign logabsdet")
qr_result = r._return_type("linalg_qr", "Q R")
eigh_result = r._return_type("linalg_eigh", "eigenvalues eigenvectors")


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: LAPACK reported a singular or not positive-definite matrix."""

# torch's LAPACK routine names, for the half-type refusal
_KERNELS = {"geqrf": "geqrf_cpu", "linalg_eig": "linalg_eig_out_cpu", "linalg_lu_factor": "lu_cpu", "linalg_inv": "linalg_inv_out_cpu", "linalg_det": "lu_cpu", "linalg_slogdet": "lu_cpu",
            "linalg_solve": "linalg_solve_cpu", "linalg_cholesky": "cholesky_cpu", "linalg_qr": "linalg_qr_cpu",
            "linalg_eigh": "linalg_eigh_cpu"}


def _check(op, a, name="A", square=True):
    if not isinstance(a, Tensor):
        raise TypeError(f"{op}(): argument '{name}' (position 1) must be Tensor, not {type(a).__name__}")
    user = op.replace("linalg_", "linalg.")
    if square:
        square_matrices(user, a)
    else:
        if a.ndim < 2:
            raise RuntimeError(f"{user}: The input tensor {name} must have at least 2 dimensions.")
        r.check_float_input(user, a)
    if a._dtype in (dt.float16, dt.bfloat16):
        raise NotImplementedError(f'"{_KERNELS[op]}" not implemented for \'{m.TYPE_NAMES[a._dtype]}\'')


def _inv_meta(a):
    _check("linalg_inv", a)
    return Spec(a._shape, a._dtype, a._device)


def _det_meta(a):
    _check("linalg_det", a)
    return Spec(a._shape[:-2], a._dtype, a._device)


def _slogdet_meta(a):
    _check("linalg_slogdet", a)
    batch = a._shape[:-2]
    return Spec(batch, a._dtype, a._device), Spec(batch, a._dtype.to_real(), a._device)


def _solve_meta(a, b):
    """solve(A (*, n, n), B (*, n, k)) -> X (broadcast batch, n, k); the vector case is the front door's."""
    _check("linalg_solve", a)
    if not isinstance(b, Tensor):
        raise TypeError(f"linalg_solve(): argument 'B' (position 2) must be Tensor, not {type(b).__name__}")
    if b._dtype is not a._dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{m.TYPE_NAMES[a._dtype]} and B of type {m.TYPE_NAMES[b._dtype]} instead")
    if b.ndim < 2 or b._shape[-2] != a._shape[-1]:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({a._shape[-2]}x{a._shape[-1]} and {'x'.join(map(str, b._shape[-2:]))})")
    batch = sh.broadcast_shapes(a._shape[:-2], b._shape[:-2])
    return Spec(tuple(batch) + b._shape[-2:], a._dtype, m.common_device("linalg_solve", (a, b)))


def _cholesky_meta(a, upper=False):
    _check("linalg_cholesky", a)
    return Spec(a._shape, a._dtype, a._device)


def _qr_meta(a, mode="reduced"):
    _check("linalg_qr", a, square=False)
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or "
                           "'complete'")
    *batch, rows, cols = a._shape
    k = min(rows, cols)
    batch = tuple(batch)
    q = batch + ((0,) if mode == "r" else (rows, rows if mode == "complete" else k))
    rr = batch + (rows if mode == "complete" else k, cols)
    return Spec(q if mode != "r" else (0,), a._dtype, a._device), Spec(rr, a._dtype, a._device)


def _eigh_meta(a, uplo="L"):
    _check("linalg_eigh", a)
    if uplo not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {uplo}")
    return Spec(a._shape[:-1], a._dtype.to_real(), a._device), Spec(a._shape, a._dtype, a._device)


def _lu_factor_meta(a):
    """LU (*batch, m, n) packing unit-lower L and upper U, and the 1-based row pivots (*batch, min(m, n))."""
    _check("linalg_lu_factor", a, square=False)
    *batch, rows, cols = a._shape
    return Spec(a._shape, a._dtype, a._device), Spec(tuple(batch) + (min(rows, cols),), dt.int32, a._device)


def _eig_meta(a):
    """Eigenvalues (*batch, n) and eigenvectors (*batch, n, n) of general matrices: always complex."""
    _check("linalg_eig", a)
    cd = a._dtype.to_complex()
    return Spec(a._shape[:-1], cd, a._device), Spec(a._shape, cd, a._device)


def _geqrf_meta(a):
    """LAPACK's geqrf: R and the Householder vectors packed in one (*batch, m, n) matrix, and tau (*batch, k)."""
    _check("geqrf", a, square=False)
    return Spec(a._shape, a._dtype, a._device), Spec(a._shape[:-2] + (min(a._shape[-2:]),), a._dtype, a._device)


def _lu_permutation_meta(pivots, m, dtype):
    """P (*batch, m, m) with A = P L U, from LAPACK's 1-based row swaps (*batch, k)."""
    if not isinstance(pivots, Tensor) or pivots._dtype is not dt.int32:
        raise RuntimeError("lu_unpack: LU_pivots is expected to be a contiguous tensor of torch.int32 dtype. "
                           "Note: this function is intended to be used with the output produced by torch.linalg.lu_factor")
    if pivots.ndim < 1 or pivots._shape[-1] > m:
        raise RuntimeError(f"lu_unpack: Expected LU_pivots.size(-1) <= {m} but got {pivots._shape[-1:]}")
    return Spec(pivots._shape[:-1] + (m, m), dtype, pivots._device)


def _declare(name, meta):
    return declare(name, meta=meta, family="decompositions")


linalg_inv = _declare("linalg_inv", _inv_meta)                  # linalg_inv(A)
linalg_det = _declare("linalg_det", _det_meta)                  # linalg_det(A)
linalg_slogdet = _declare("linalg_slogdet", _slogdet_meta)      # linalg_slogdet(A) -> (sign, logabsdet)
linalg_solve = _declare("linalg_solve", _solve_meta)            # linalg_solve(A, B): A X = B, B (*, n, k)
linalg_cholesky = _declare("linalg_cholesky", _cholesky_meta)   # linalg_cholesky(A, upper=False)
linalg_qr = _declare("linalg_qr", _qr_meta)                     # linalg_qr(A, mode) -> (Q, R)
linalg_eigh = _declare("linalg_eigh", _eigh_meta)               # linalg_eigh(A, UPLO) -> (eigenvalues, eigenvectors)
linalg_eig = _declare("linalg_eig", _eig_meta)                  # linalg_eig(A) -> (eigenvalues, eigenvectors), complex
eig_result = r._return_type("linalg_eig", "eigenvalues eigenvectors")
geqrf = _declare("geqrf", _geqrf_meta)                          # geqrf(A) -> (a, tau); no derivative, as torch
geqrf_result = r._return_type("geqrf", "a tau")
linalg_lu_factor = _declare("linalg_lu_factor", _lu_factor_meta)  # linalg_lu_factor(A) -> (LU, pivots), partial pivoting
lu_factor_result = r._return_type("linalg_lu_factor", "LU pivots")
lu_permutation = _declare("lu_permutation", _lu_permutation_meta)  # lu_permutation(pivots, m, dtype) -> P


# -- derivatives (autograd) -----------------------------------------------------------------------------------------

from vibetensor.autograd import derivative as _derivative, nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.autograd.derivatives import conj as _conj  # noqa: E402


def _mH(t):
    return _conj(views.transpose(t, -2, -1))


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


def _col(t):
    """(*batch) -> (*batch, 1, 1): one number per matrix."""
    return views.unsqueeze(views.unsqueeze(t, -1), -1)


def _eye_like(a, n):
    return creation.eye(n, n, a._dtype, device=a._device)


def _tril(t, k=0):
    from vibetensor.ops.shape_ops import tril
    return tril(t, k)


@_derivative(linalg_inv, save="result")
def _inv_derivative(ctx, grad, a):
    """-A^-H G A^-H."""
    inv_h = _mH(ctx.result)
    return ew.neg(matmul(inv_h, matmul(grad, inv_h)))


@_derivative(linalg_det, save=(0, "result"))
def _det_derivative(ctx, grad, a):
    """g conj(det) A^-H (A invertible)."""
    return ew.mul(_col(ew.mul(grad, _conj(ctx.result))), _mH(linalg_inv(a)))


@_derivative(linalg_slogdet, save=0)
def _slogdet_derivative(ctx, grads, a):
    """d logabsdet = Re tr(A^-1 dA): g A^-H (the sign of a real matrix is locally constant)."""
    if a._dtype.is_complex:
        raise NotImplementedError("the derivative of linalg.slogdet of complex matrices is not implemented in "
                                  "vibetensor")
    return ew.mul(_col(grads[1]), _mH(linalg_inv(a)))


@_derivative(linalg_solve, save=(0, "result"))
def _solve_derivative(ctx, grad, a, b):
    """gB = A^-H G; gA = -gB X^H."""
    g_b = linalg_solve(_mH(a), grad)
    g_a = ew.neg(matmul(g_b, _mH(ctx.result))) if _needs(ctx, 0) else None
    return g_a, g_b


def _hermitian_half(x):
    """0.5 (X + tril(X, -1)^H) of a lower-triangular X: torch's Phi for Cholesky."""
    return ew.mul(ew.add(x, _mH(_tril(x, -1))), 0.5)


@_derivative(linalg_cholesky, save="result")
def _cholesky_derivative(ctx, grad, a, upper=False):
    """torch's cholesky_backward: L^-H Phi(tril(L^H gL)) L^-1."""
    lo = _mH(ctx.result) if upper else ctx.result
    g = _mH(grad) if upper else grad
    phi = _hermitian_half(_tril(matmul(_mH(lo), g)))
    left = linalg_solve(_mH(lo), phi)                         # L^-H Phi
    return _mH(linalg_solve(_mH(lo), _mH(left)))              # (L^-H (L^-H Phi)^H)^H = L^-H Phi L^-1


def _copyltu(x):
    """tril(X) + tril(X, -1)^H: the lower triangle mirrored onto the upper one."""
    return ew.add(_tril(x), _mH(_tril(x, -1)))


def _qr_square_part(q, rr, g_q, g_r):
    """m >= n: M = R gR^H - gQ^H Q, gA = [gQ + Q copyltu(M)] R^-H."""
    m_ = ew.sub(matmul(rr, _mH(g_r)), matmul(_mH(g_q), q))
    g_a = ew.add(g_q, matmul(q, _copyltu(m_)))
    return _mH(linalg_solve(rr, _mH(g_a)))                    # gA R^-H = (R^-1 gA^H)^H


@_derivative(linalg_qr, save=(0, "result"))
def _qr_derivative(ctx, grads, a, mode="reduced"):
    """m >= n (reduced, or complete of a square matrix): the square formula. m < n: A = [X Y] with
    X = Q U, Y = Q V (R = [U V]): gX from the square formula with gQ + Y gV^H, gY = Q gV."""
    from vibetensor.dispatch import get
    g_q, g_r = grads
    q, rr = ctx.result
    rows, cols = a._shape[-2:]
    if mode == "r":
        raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                           "Please use linalg.qr(A, mode='reduced') if you are going to differentiate through "
                           "linalg.qr.")
    if mode == "complete" and rows > cols:
        raise NotImplementedError("The QR decomposition is not differentiable when mode='complete' and "
                                  "nrows > ncols.")
    if rows >= cols:
        return _qr_square_part(q, rr, g_q, g_r)
    u = views.narrow(rr, -1, 0, rows)
    g_u, g_v = views.narrow(g_r, -1, 0, rows), views.narrow(g_r, -1, rows, cols - rows)
    y = views.narrow(a, -1, rows, cols - rows)
    g_x = _qr_square_part(q, u, ew.add(g_q, matmul(y, _mH(g_v))), g_u)
    return get("cat")([g_x, matmul(q, g_v)], -1)


@_derivative(linalg_eigh, save="result")
def _eigh_derivative(ctx, grads, a, uplo="L"):
    """V (diag(gL) + skew(V^H gV) / (L_j - L_i)) V^H (distinct eigenvalues)."""
    g_l, g_v = grads
    lam, v = ctx.result
    n = a._shape[-1]
    eye = creation.eye(n, n, dt.bool_, device=a._device)
    vhgv = matmul(_mH(v), g_v)
    skew = ew.mul(ew.sub(vhgv, _mH(vhgv)), 0.5)
    gaps = ew.where(eye, 1.0, ew.sub(views.unsqueeze(lam, -2), views.unsqueeze(lam, -1)))  # L_j - L_i
    inner = ew.where(eye, 0.0, ew.div(skew, gaps))
    inner = ew.add(inner, ew.mul(views.unsqueeze(g_l, -1), eye))
    if a._dtype.is_complex:
        inner = _as(inner, a._dtype)
    return matmul(v, matmul(inner, _mH(v)))


@_derivative(linalg_eig, save=(0, "result"))
def _eig_derivative(ctx, grads, a):
    """torch's linalg_eig_backward: gA = V^-H (diag(gL) + (V^H gV - V^H V diag(re(V^H gV))) / conj(E)) V^H,
    E[i, j] = L[j] - L[i] (1 on the diagonal); its real part for a real A."""
    g_l, g_v = grads
    lam, v = ctx.result
    n = a._shape[-1]
    eye = creation.eye(n, n, dt.bool_, device=v._device)
    v_h = _mH(v)
    vhgv = matmul(v_h, g_v)
    re_diag = views.select(views.view_as_real(views.diagonal(vhgv, 0, -2, -1)), -1, 0)  # (*batch, n), real
    inner = ew.sub(vhgv, matmul(v_h, ew.mul(v, views.unsqueeze(_as(re_diag, v._dtype), -2))))
    gaps = ew.where(eye, 1.0, ew.sub(views.unsqueeze(lam, -2), views.unsqueeze(lam, -1)))
    inner = ew.div(inner, _conj(gaps))
    inner = ew.where(eye, views.unsqueeze(g_l, -1), inner)
    g_a = linalg_solve(v_h, matmul(inner, v_h))
    return g_a if a._dtype.is_complex else views.select(views.view_as_real(creation.contiguous(g_a)), -1, 0)


def _as(t, d):
    return t if t._dtype is d else creation.to(t, d, t._device)


@_derivative(linalg_lu_factor, save=("result",))
def _lu_factor_derivative(ctx, grads, a):
    """torch's lu_factor_ex_backward / linalg_lu_backward, with L (m, k), U (k, n) unpacked from LU and
    gL = gLU[..., :k], gU = gLU[..., :k, :]. Square: gA = P L^-H [tril(L^H gL, -1) + triu(gU U^H)] U^-H;
    wide and tall matrices add the rectangular block's part."""
    from vibetensor.dispatch import get
    from vibetensor.ops.shape_ops import triu
    cat = get("cat")
    g = grads[0]
    lu, pivots = ctx.result
    rows, cols = a._shape[-2:]
    k = min(rows, cols)
    lower = ew.add(views.narrow(_tril(lu, -1), -1, 0, k), creation.eye(rows, k, lu._dtype, device=lu._device))
    upper = views.narrow(triu(lu), -2, 0, k)
    g_l, g_u = views.narrow(g, -1, 0, k), views.narrow(g, -2, 0, k)
    perm = lu_permutation(pivots, rows, a._dtype)
    left_lh = lambda lo, y: linalg_solve(_mH(lo), y)           # noqa: E731  L^-H Y
    right_uh = lambda y, up: _mH(linalg_solve(up, _mH(y)))     # noqa: E731  Y U^-H
    if rows == cols:
        phi = ew.add(_tril(matmul(_mH(lower), g_l), -1), triu(matmul(g_u, _mH(upper))))
        return matmul(perm, right_uh(left_lh(lower, phi), upper))
    if rows < cols:  # wide: U = [U1 U2], U1 (k, k)
        u1 = views.narrow(upper, -1, 0, k)
        x = ew.sub(matmul(_mH(lower), g_l), matmul(triu(g_u), _mH(upper)))
        x = right_uh(_tril(x, -1), u1)
        x = cat([ew.add(x, triu(views.narrow(g_u, -1, 0, k))), views.narrow(g_u, -1, k, cols - k)], -1)
        return matmul(perm, left_lh(lower, x))
    l1 = views.narrow(lower, -2, 0, k)  # tall: L = [L1; L2], L1 (k, k)
    x = ew.sub(matmul(g_u, _mH(upper)), matmul(_mH(lower), _tril(g_l, -1)))
    x = left_lh(l1, triu(x))
    x = cat([ew.add(x, _tril(views.narrow(g_l, -2, 0, k), -1)), views.narrow(g_l, -2, k, rows - k)], -2)
    return matmul(perm, right_uh(x, upper))


_nondifferentiable(lu_permutation)
