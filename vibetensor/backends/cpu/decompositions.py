"""CPU kernels of the inverses, determinants, solves and decompositions, on numpy.linalg (LAPACK, in
the tensor's own precision as torch's CPU path). LAPACK failures become torch's RuntimeErrors,
naming the batch element."""
import numpy as np

from vibetensor.backends.cpu.reduction import write
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import decompositions as d
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def _first_bad(bad):
    """The flat batch index of the first failing matrix."""
    return int(np.flatnonzero(bad.reshape(-1))[0])


def _batch_prefix(a, bad):
    """'(Batch element k): ' for the first failing matrix of a batch (none for a single matrix)."""
    if a.ndim <= 2:
        return ""
    return f"(Batch element {_first_bad(bad)}): "


def _singular(a):
    """Which matrices of a (*batch, n, n) are exactly singular in LAPACK's LU (a zero pivot)."""
    with np.errstate(all="ignore"):
        sign, _ = np.linalg.slogdet(a)
    return sign == 0


def _zero_pivot(x):
    """getrf's info for a singular (n, n) matrix: the 1-based index of U's first zero diagonal element. The
    error path only, so the NumPy LU (LAPACK's unblocked order) is fine; where its rounding finds no exact zero,
    the smallest pivot."""
    u = np.abs(np.diagonal(_getrf(x)[0]))
    zero = np.flatnonzero(u == 0)
    return int(zero[0] if zero.size else np.argmin(u)) + 1


def _inv(a):
    spec = d.linalg_inv.meta(a)
    x = array(a)
    bad = _singular(x) if x.size else np.zeros(x.shape[:-2], bool)
    if bad.any():
        k = _zero_pivot(x.reshape((-1,) + x.shape[-2:])[_first_bad(bad)])
        raise d.LinAlgError(f"linalg.inv: {_batch_prefix(x, bad)}The diagonal element {k} is zero, the inversion "
                            "could not be completed because the input matrix is singular.")
    return write("linalg_inv", None, spec, np.linalg.inv(x) if x.size else x)


def _det(a):
    spec = d.linalg_det.meta(a)
    x = array(a)
    return write("linalg_det", None, spec, np.linalg.det(x) if x.size else np.ones(x.shape[:-2], x.dtype))


def _slogdet(a):
    specs = d.linalg_slogdet.meta(a)
    x = array(a)
    if x.size:
        with np.errstate(all="ignore"):
            sign, logabsdet = np.linalg.slogdet(x)
    else:
        sign, logabsdet = np.ones(x.shape[:-2], x.dtype), np.zeros(x.shape[:-2], x.real.dtype)
    return d.slogdet_result(*(write("linalg_slogdet", None, s, v) for s, v in zip(specs, (sign, logabsdet))))


def _solve(a, b):
    spec = d.linalg_solve.meta(a, b)
    x, y = array(a), array(b)
    if x.size and y.size:
        bad = _singular(x)
        if bad.any():
            raise d.LinAlgError(f"torch.linalg.solve: {_batch_prefix(x, bad)}The solver failed because the "
                                "input matrix is singular.")
        value = np.linalg.solve(x, y)
    else:
        value = np.zeros(spec.shape, x.dtype)
    return write("linalg_solve", None, spec, value)


def _leading_minor(x):
    """The order of the first leading minor of a (single) matrix that is not positive-definite."""
    for k in range(1, x.shape[-1] + 1):
        try:
            np.linalg.cholesky(x[:k, :k])
        except np.linalg.LinAlgError:
            return k
    return x.shape[-1]


def _cholesky(a, upper=False):
    spec = d.linalg_cholesky.meta(a, upper)
    x = array(a)
    if not x.size:
        return write("linalg_cholesky", None, spec, x)
    herm = np.tril(x) + np.conj(np.swapaxes(np.tril(x, -1), -1, -2))  # LAPACK reads the lower triangle only
    flat = herm.reshape((-1,) + x.shape[-2:])
    out = np.empty_like(flat)
    for i, m in enumerate(flat):
        try:
            out[i] = np.linalg.cholesky(m) if np.isfinite(m).all() else np.full_like(m, np.nan)
        except np.linalg.LinAlgError:
            where = f"(Batch element {i}): " if x.ndim > 2 else ""
            raise d.LinAlgError(f"linalg.cholesky: {where}The factorization could not be completed because the "
                                f"input is not positive-definite (the leading minor of order {_leading_minor(m)} is "
                                "not positive-definite).") from None
    out = out.reshape(x.shape)
    return write("linalg_cholesky", None, spec, np.conj(np.swapaxes(out, -1, -2)) if upper else out)


def _qr(a, mode="reduced"):
    specs = d.linalg_qr.meta(a, mode)
    x = array(a)
    if x.size:
        q, rr = (None, np.linalg.qr(x, mode="r")) if mode == "r" else np.linalg.qr(x, mode=mode)
    else:
        q = np.broadcast_to(np.eye(*specs[0].shape[-2:], dtype=x.dtype), specs[0].shape) if mode != "r" else None
        rr = np.zeros(specs[1].shape, x.dtype)
    q = np.zeros((0,), x.dtype) if q is None else q
    return d.qr_result(*(write("linalg_qr", None, s, v) for s, v in zip(specs, (q, rr))))


def _eigh(a, uplo="L"):
    specs = d.linalg_eigh.meta(a, uplo)
    x = array(a)
    if x.size:
        if not np.isfinite(x).all():
            raise RuntimeError("linalg.eigh: The algorithm failed to converge because the input matrix is "
                               "ill-conditioned or has too many repeated eigenvalues (error code: 1).")
        lam, vec = np.linalg.eigh(x, UPLO=uplo)
    else:
        lam, vec = np.zeros(specs[0].shape, x.real.dtype), x
    return d.eigh_result(*(write("linalg_eigh", None, s, v) for s, v in zip(specs, (lam, vec))))


def _getrf(x):
    """LAPACK's getrf in NumPy: (LU, 1-based pivots) of each (m, n) matrix by partial pivoting (the first
    largest |a| (|re| + |im| for complex, as izamax) in each column; a zero pivot is left unscaled)."""
    m, n = x.shape[-2:]
    k = min(m, n)
    lu = x.reshape((-1, m, n)).copy()
    piv = np.zeros((lu.shape[0], k), np.int32)
    rows = np.arange(lu.shape[0])
    for j in range(k):
        col = lu[:, j:, j]
        size = np.abs(col.real) + np.abs(col.imag) if np.iscomplexobj(col) else np.abs(col)
        p = j + np.argmax(size, axis=1) if size.shape[1] else np.full(lu.shape[0], j)
        piv[:, j] = p + 1
        top = lu[rows, j, :].copy()
        lu[rows, j, :] = lu[rows, p, :]
        lu[rows, p, :] = top
        pivot = lu[:, j, j]
        nonzero = pivot != 0
        scaled = lu[:, j + 1:, j] / np.where(nonzero, pivot, 1)[:, None]
        lu[:, j + 1:, j] = np.where(nonzero[:, None], scaled, lu[:, j + 1:, j])
        lu[:, j + 1:, j + 1:] -= lu[:, j + 1:, j, None] * lu[:, j, None, j + 1:]
    return lu.reshape(x.shape), piv.reshape(x.shape[:-2] + (k,))


def _lu_factor(a):
    specs = d.linalg_lu_factor.meta(a)
    lu, piv = _getrf(array(a)) if a.numel() else (array(a), np.zeros(specs[1].shape, np.int32))
    return d.lu_factor_result(*(write("linalg_lu_factor", None, s, v) for s, v in zip(specs, (lu, piv))))


def _lu_permutation(pivots, m, dtype):
    spec = d.lu_permutation.meta(pivots, m, dtype)
    batch = int(np.prod(pivots.shape[:-1], dtype=np.int64))
    piv = array(pivots).reshape((batch, pivots.shape[-1])).astype(np.int64) - 1
    if piv.size and (piv.min() < 0 or piv.max() >= m):
        raise RuntimeError("lu_unpack: pivots out of range")
    perm = np.tile(np.arange(m), (batch, 1))  # perm[i]: the row of A that ends up in row i
    rows = np.arange(piv.shape[0])
    for i in range(piv.shape[1]):
        a, b = perm[rows, i].copy(), perm[rows, piv[:, i]].copy()
        perm[rows, i], perm[rows, piv[:, i]] = b, a
    eye = np.zeros((batch, m, m), spec.dtype.np)
    eye[rows[:, None], perm, np.arange(m)[None, :]] = 1  # P[perm[i], i] = 1: A = P L U
    return write("lu_permutation", None, spec, eye.reshape(spec.shape))


def _eig(a):
    specs = d.linalg_eig.meta(a)
    x = array(a)
    if x.size:
        if not np.isfinite(x).all():
            raise RuntimeError("linalg.eig: input tensor should not contain infs or NaNs.")
        lam, vec = np.linalg.eig(x)
    else:
        lam, vec = np.zeros(specs[0].shape, specs[0].dtype.np), x
    return d.eig_result(*(write("linalg_eig", None, s, v) for s, v in zip(specs, (lam, vec))))


def _geqrf(a):
    specs = d.geqrf.meta(a)
    x = array(a)
    if x.size:
        h, tau = np.linalg.qr(x, mode="raw")  # h is the packed matrix transposed (LAPACK's column order)
        packed = np.swapaxes(h, -1, -2)
    else:
        packed, tau = x, np.zeros(specs[1].shape, x.dtype)
    return d.geqrf_result(*(write("geqrf", None, s, v) for s, v in zip(specs, (packed, tau))))


d.geqrf.register(CPU, _geqrf)
d.linalg_eig.register(CPU, _eig)
d.linalg_lu_factor.register(CPU, _lu_factor)
d.lu_permutation.register(CPU, _lu_permutation)
d.linalg_inv.register(CPU, _inv)
d.linalg_det.register(CPU, _det)
d.linalg_slogdet.register(CPU, _slogdet)
d.linalg_solve.register(CPU, _solve)
d.linalg_cholesky.register(CPU, _cholesky)
d.linalg_qr.register(CPU, _qr)
d.linalg_eigh.register(CPU, _eigh)
