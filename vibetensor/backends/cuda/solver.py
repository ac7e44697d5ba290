"""CUDA kernels of the decompositions on cuSOLVER (nvmath-python's cusolverDn bindings): linalg_lu_factor,
linalg_det, linalg_slogdet, linalg_inv, linalg_solve, linalg_cholesky, linalg_qr, geqrf, linalg_eigh,
linalg_eig, linalg_svd, linalg_svdvals; lu_permutation (a Triton kernel) and linalg_matrix_exp (matrix
products, as torch's Taylor-18 with scaling and squaring).

cuSOLVER is column-major. A matrix copied into "Fortran" strides (each matrix's columns contiguous,
matrices one after another, torch's LAPACK layout) is what cuSOLVER reads, and the results come back
as tensors with those strides, as torch's do; a row-major matrix is its transpose to cuSOLVER (svd of
wide matrices uses that). The 64-bit generic API (Xgetrf, Xpotrf, ...) runs once per matrix of a
batch on one handle per thread and device, bound to the current stream; workspaces come from our
caching allocator (capturable: no cudaMalloc).

Host synchronisation as torch's: the ops that raise on a failed factorisation (inv, solve, cholesky:
singular or not positive-definite; eigh, svd: no convergence; eig: non-finite input) read the info
array back, once, after all the work is queued; det, slogdet, lu_factor, qr, geqrf, lu_permutation
and matrix_exp never synchronise. Complex matrices use the same calls with complex data types (Hermitian
for cholesky and eigh, unitary factors for qr and svd; eigenvalues and singular values real).
"""
import threading

import numpy as np
import triton
import triton.language as tl

from vibetensor.dispatch import DispatchKey, get
from vibetensor.ops import creation, views
from vibetensor.ops import decompositions as d
from vibetensor.ops import elementwise as ew
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.ops.shape_ops import tril, triu
from vibetensor.runtime.cuda import blas
from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import launcher
from vibetensor.runtime.cuda import stream as streams
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.shape import contiguous_strides
from vibetensor.tensor.tensor import array, empty, empty_cpu, make_tensor

CUDA = DispatchKey.CUDA
_DATA = {dt.float32: 0, dt.float64: 1, dt.complex64: 4, dt.complex128: 5}  # cudaDataType: CUDA_R/C_32F/64F
LOWER, UPPER = 0, 1                      # cublasFillMode_t
NOVECTOR, VECTOR = 0, 1                  # cusolverEigMode_t
NO_TRANS = 0                             # cublasOperation_t


# -- handles, workspaces, layouts -------------------------------------------------------------------------------------

def _cusolver():
    import nvmath.bindings.cusolverDn as cusolver  # imported on first use
    return cusolver


class _Handle:
    """One cuSOLVER handle (and its Xgetrf/... params object) and the stream it is bound to."""

    def __init__(self):
        self.lib = _cusolver()
        drv.ensure_context()
        self.handle = self.lib.create()
        self.params = self.lib.create_params()
        self.stream = None


_local = threading.local()  # cuSOLVER handles must not be shared across threads


def _solver(device_index):
    """(cusolverDn module, handle, params) of this thread and device, bound to the current stream."""
    h = blas.thread_handle(_local, device_index, lambda index: _Handle())
    s = streams.current_stream(device_index).cuda_stream
    if s != h.stream:
        h.lib.set_stream(h.handle, s)
        h.stream = s
    return h.lib, h.handle, h.params


def _workspace(nbytes, device):
    """Device scratch from our allocator, on the current stream (freed, stream-ordered, when dropped)."""
    return empty((max(int(nbytes), 1),), dt.uint8, device)


def _host_workspace(nbytes):
    buf = np.empty(max(int(nbytes), 1), np.uint8)
    return buf, buf.ctypes.data


def _data_type(op, a):
    code = _DATA.get(a._dtype)
    if code is None:
        raise NotImplementedError(f"{op}: {a._dtype} matrices on CUDA are not supported yet (float32, float64, "
                                  "complex64 and complex128 are)")
    return code


def _fortran_strides(shape):
    """Each (m, n) matrix column-major, the matrices one after another (torch's LAPACK layout)."""
    *batch, m, n = shape
    return contiguous_strides(tuple(batch) + (m * n,))[:-1] + (1, max(m, 1))


def _fortran(shape, dtype, device):
    return creation.empty_strided(tuple(shape), _fortran_strides(tuple(shape)), dtype, device)


def _fortran_copy(a, shape=None):
    """A fresh column-major copy of a, broadcast to `shape` (its batch dims)."""
    f = _fortran(shape or a._shape, a._dtype, a._device)
    creation.copy_(f, a)
    return f


def _rewrap(t, shape, stride):
    """A new (non-view) tensor over t's memory with another geometry: how a buffer that cuSOLVER
    filled becomes an op's result."""
    return make_tensor(t._storage, tuple(shape), tuple(stride), t._offset, t._dtype)


def _batch(shape):
    b = 1
    for s in shape[:-2]:
        b *= s
    return b


def _pointers(t, count, per):
    """The addresses of t's `count` consecutive blocks of `per` elements."""
    base, step = t.data_ptr(), per * t._dtype.itemsize
    return [base + i * step for i in range(count)]


def _host_ints(t):
    """t's values on the host: a synchronisation (the ops that check errors, as torch's do)."""
    host = empty_cpu(tuple(t._shape), t._dtype)
    creation.copy_(host, t)
    return array(host).reshape(-1)


def _first_failure(info):
    """(batch index, info) of the first matrix whose info is not 0, or None."""
    bad = np.flatnonzero(info)
    return None if bad.size == 0 else (int(bad[0]), int(info[bad[0]]))


def _check(name, info, batched, message):
    """torch's _linalg_check_errors: raise RuntimeError with `message(info)` for the first failure."""
    failure = _first_failure(_host_ints(info))
    if failure is None:
        return
    index, code = failure
    where = f"(Batch element {index}): " if batched else ""
    if code < 0:
        raise RuntimeError(f"{name}: {where}Argument {-code} has illegal value. Most certainly there is a bug in the "
                           "implementation calling the backend library.")
    raise RuntimeError(f"{name}: {where}{message(code)}")


# -- LU: lu_factor, det, slogdet, inv, solve ------------------------------------------------------------------------

def _getrf(f):
    """LU of each column-major matrix of f, in place: (pivots int64 (*batch, k), info int32 (batch,))."""
    *batch, m, n = f._shape
    count, k = _batch(f._shape), min(m, n)
    dtype = _data_type("linalg.lu_factor", f)
    lib, h, params = _solver(f._device.index)
    ipiv = empty(tuple(batch) + (k,), dt.int64, f._device)
    info = empty((count,), dt.int32, f._device)
    dev_bytes, host_bytes = lib.xgetrf_buffer_size(h, params, m, n, dtype, f.data_ptr(), m, dtype)
    work = _workspace(dev_bytes, f._device)
    host, host_ptr = _host_workspace(host_bytes)
    for a, p, i in zip(_pointers(f, count, m * n), _pointers(ipiv, count, k), _pointers(info, count, 1)):
        lib.xgetrf(h, params, m, n, dtype, a, m, p, dtype, work.data_ptr(), dev_bytes, host_ptr, host_bytes, i)
    return ipiv, info


def _getrs(lu, ipiv, b):
    """Solve A X = B in place of b (column-major, (*batch, n, k)) from getrf's lu and pivots."""
    *batch, n, k = b._shape
    count = _batch(b._shape)
    dtype = _data_type("linalg.solve", b)
    lib, h, params = _solver(b._device.index)
    info = empty((count,), dt.int32, b._device)
    for a, p, x, i in zip(_pointers(lu, count, n * n), _pointers(ipiv, count, n), _pointers(b, count, n * k),
                          _pointers(info, count, 1)):
        lib.xgetrs(h, params, NO_TRANS, n, k, dtype, a, n, p, dtype, x, n, i)
    return b


def _lu_factor(a):
    specs = d.linalg_lu_factor.meta(a)
    if a.numel() == 0:
        return d.lu_factor_result(creation.clone(a), creation.full(specs[1].shape, 0, dt.int32, device=a._device))
    f = _fortran_copy(a)
    ipiv, _ = _getrf(f)  # a zero pivot is no error here (lu_factor_ex reads info; torch's lu_factor would raise)
    return d.lu_factor_result(f, creation.to(ipiv, dt.int32, a._device))


def _permutation_sign(ipiv):
    """(-1)^(number of row swaps) per matrix, from getrf's 1-based pivots (*batch, k)."""
    k = ipiv._shape[-1]
    rows = creation.arange(1, k + 1, 1, dt.int64, device=ipiv._device)
    swaps = r.sum(ew.ne(ipiv, rows), (-1,), False, None)
    return ew.add(ew.mul(ew.remainder(swaps, 2), -2), 1)  # int64 (*batch,)


def _lu_diagonal(a):
    """(U's diagonal (*batch, n), the permutation's sign (*batch,)) of LU with partial pivoting."""
    f = _fortran_copy(a)
    ipiv, _ = _getrf(f)
    return views.diagonal(f, 0, -2, -1), _permutation_sign(ipiv)


def _det(a):
    spec = d.linalg_det.meta(a)
    if a.numel() == 0:
        return creation.full(spec.shape, 1, spec.dtype, device=spec.device)
    diag, sign = _lu_diagonal(a)
    return ew.mul(r.prod(diag, -1, False, None), sign)


def _slogdet(a):
    specs = d.linalg_slogdet.meta(a)
    if a.numel() == 0:
        return d.slogdet_result(creation.full(specs[0].shape, 1, specs[0].dtype, device=a._device),
                                creation.full(specs[1].shape, 0, specs[1].dtype, device=a._device))
    diag, sign = _lu_diagonal(a)
    phase = ew.sgn(diag) if diag._dtype.is_complex else ew.sign(diag)
    sign = ew.mul(r.prod(phase, -1, False, None), sign)
    return d.slogdet_result(sign, r.sum(ew.log(ew.abs(diag)), (-1,), False, None))


def _singular_inverse(code):
    return f"The diagonal element {code} is zero, the inversion could not be completed because the input matrix " \
           "is singular."


def _inv(a):
    spec = d.linalg_inv.meta(a)
    if a.numel() == 0:
        return creation.clone(a)
    n = a._shape[-1]
    f = _fortran_copy(a)
    ipiv, info = _getrf(f)
    eye = creation.eye(n, n, a._dtype, device=a._device)
    x = _getrs(f, ipiv, _fortran_copy(eye, spec.shape))
    _check("linalg.inv", info, a.ndim > 2, _singular_inverse)
    return x


def _solve(a, b):
    spec = d.linalg_solve.meta(a, b)
    if a.numel() == 0 or b.numel() == 0:
        return creation.full(spec.shape, 0, spec.dtype, device=spec.device)
    batch = tuple(spec.shape[:-2])
    n = a._shape[-1]
    f = _fortran_copy(a, batch + (n, n))
    ipiv, info = _getrf(f)
    x = _getrs(f, ipiv, _fortran_copy(b, spec.shape))
    _check("torch.linalg.solve", info, a.ndim > 2, lambda code: "The solver failed because the input matrix is "
                                                                "singular.")
    return x


# -- Cholesky ---------------------------------------------------------------------------------------------------------

def _cholesky(a, upper=False):
    spec = d.linalg_cholesky.meta(a, upper)
    if a.numel() == 0:
        return creation.clone(a)
    dtype = _data_type("linalg.cholesky", a)
    n = a._shape[-1]
    count = _batch(a._shape)
    f = _fortran_copy(a)  # LAPACK reads the lower triangle only
    lib, h, params = _solver(a._device.index)
    info = empty((count,), dt.int32, a._device)
    dev_bytes, host_bytes = lib.xpotrf_buffer_size(h, params, LOWER, n, dtype, f.data_ptr(), n, dtype)
    work = _workspace(dev_bytes, a._device)
    host, host_ptr = _host_workspace(host_bytes)
    for m_, i in zip(_pointers(f, count, n * n), _pointers(info, count, 1)):
        lib.xpotrf(h, params, LOWER, n, dtype, m_, n, dtype, work.data_ptr(), dev_bytes, host_ptr, host_bytes, i)
    lower = tril(f)  # cuSOLVER leaves the strict upper triangle as it was
    _check("linalg.cholesky", info, a.ndim > 2,
           lambda code: f"The factorization could not be completed because the input is not positive-definite (the "
                        f"leading minor of order {code} is not positive-definite).")
    if not upper:
        return lower
    if lower._dtype.is_complex:
        lower = ew.conj(lower)
    return _rewrap(lower, spec.shape, lower._stride[:-2] + (lower._stride[-1], lower._stride[-2]))  # L^H


# -- QR: geqrf, linalg_qr -----------------------------------------------------------------------------------------------

def _geqrf_into(f):
    """Householder QR of each column-major matrix of f in place: tau (*batch, k)."""
    *batch, m, n = f._shape
    count, k = _batch(f._shape), min(m, n)
    dtype = _data_type("linalg.qr", f)
    lib, h, params = _solver(f._device.index)
    tau = empty(tuple(batch) + (k,), f._dtype, f._device)
    info = empty((count,), dt.int32, f._device)
    dev_bytes, host_bytes = lib.xgeqrf_buffer_size(h, params, m, n, dtype, f.data_ptr(), m, dtype, tau.data_ptr(),
                                                   dtype)
    work = _workspace(dev_bytes, f._device)
    host, host_ptr = _host_workspace(host_bytes)
    for a, t, i in zip(_pointers(f, count, m * n), _pointers(tau, count, k), _pointers(info, count, 1)):
        lib.xgeqrf(h, params, m, n, dtype, a, m, dtype, t, dtype, work.data_ptr(), dev_bytes, host_ptr, host_bytes, i)
    return tau


_ORGQR = {dt.float32: "sorgqr", dt.float64: "dorgqr", dt.complex64: "cungqr", dt.complex128: "zungqr"}


def _orgqr(q, tau):
    """Form the first q.shape[-1] columns of H_1 ... H_k in place of q (column-major (*batch, m, c), the
    reflectors in its first k columns)."""
    *batch, m, c = q._shape
    k = tau._shape[-1]
    count = _batch(q._shape)
    lib, h, _ = _solver(q._device.index)
    name = _ORGQR[q._dtype]
    size_fn, run = getattr(lib, name + "_buffer_size"), getattr(lib, name)
    lwork = size_fn(h, m, c, k, q.data_ptr(), m, tau.data_ptr())  # in elements
    work = _workspace(max(int(lwork), 1) * q._dtype.itemsize, q._device)
    info = empty((count,), dt.int32, q._device)
    for a, t, i in zip(_pointers(q, count, m * c), _pointers(tau, count, k), _pointers(info, count, 1)):
        run(h, m, c, k, a, m, t, work.data_ptr(), int(lwork), i)
    return q


def _geqrf(a):
    specs = d.geqrf.meta(a)
    if a.numel() == 0:
        return d.geqrf_result(creation.clone(a), creation.full(specs[1].shape, 0, a._dtype, device=a._device))
    _data_type("geqrf", a)
    f = _fortran_copy(a)
    return d.geqrf_result(f, _geqrf_into(f))


def _qr(a, mode="reduced"):
    specs = d.linalg_qr.meta(a, mode)
    *batch, m, n = a._shape
    k = min(m, n)
    if a.numel() == 0:
        q = creation.full((0,), 0, a._dtype, device=a._device) if mode == "r" else \
            creation.contiguous(views.expand(creation.eye(*specs[0].shape[-2:], a._dtype, device=a._device),
                                             specs[0].shape))
        return d.qr_result(q, creation.full(specs[1].shape, 0, a._dtype, device=a._device))
    _data_type("linalg.qr", a)
    f = _fortran_copy(a)
    tau = _geqrf_into(f)
    rows = m if mode == "complete" else k
    rr = triu(views.narrow(f, -2, 0, rows))
    if mode == "r":
        return d.qr_result(creation.full((0,), 0, a._dtype, device=a._device), rr)
    columns = specs[0].shape[-1]
    q = _fortran(tuple(batch) + (m, columns), a._dtype, a._device)
    creation.copy_(views.narrow(q, -1, 0, k), views.narrow(f, -1, 0, k))  # the reflectors
    return d.qr_result(_orgqr(q, tau), rr)


# -- symmetric eigenvalues ------------------------------------------------------------------------------------------------

def _no_convergence(kind):
    return lambda code: f"The algorithm failed to converge because the input matrix is ill-conditioned or has too " \
                        f"many repeated {kind} (error code: {code})."


def _eigh(a, uplo="L"):
    specs = d.linalg_eigh.meta(a, uplo)
    if a.numel() == 0:
        return d.eigh_result(creation.full(specs[0].shape, 0, specs[0].dtype, device=a._device), creation.clone(a))
    dtype = _data_type("linalg.eigh", a)
    n = a._shape[-1]
    count = _batch(a._shape)
    f = _fortran_copy(a)  # becomes the eigenvectors (columns)
    w = empty(specs[0].shape, specs[0].dtype, a._device)  # (real for Hermitian matrices too)
    wtype = _DATA[w._dtype]
    lib, h, params = _solver(a._device.index)
    fill = LOWER if uplo == "L" else UPPER
    info = empty((count,), dt.int32, a._device)
    dev_bytes, host_bytes = lib.xsyevd_buffer_size(h, params, VECTOR, fill, n, dtype, f.data_ptr(), n, wtype,
                                                   w.data_ptr(), dtype)
    work = _workspace(dev_bytes, a._device)
    host, host_ptr = _host_workspace(host_bytes)
    for m_, v, i in zip(_pointers(f, count, n * n), _pointers(w, count, n), _pointers(info, count, 1)):
        lib.xsyevd(h, params, VECTOR, fill, n, dtype, m_, n, wtype, v, dtype, work.data_ptr(), dev_bytes, host_ptr,
                   host_bytes, i)
    _check("linalg.eigh", info, a.ndim > 2, _no_convergence("eigenvalues"))
    return d.eigh_result(w, f)


# -- general eigenvalues (complex results) -------------------------------------------------------------------------------

def _eig(a):
    specs = d.linalg_eig.meta(a)
    if a.numel() == 0:
        return d.eig_result(empty(specs[0].shape, specs[0].dtype, a._device), empty(specs[1].shape, specs[1].dtype,
                                                                                    a._device))
    dtype = _data_type("linalg.eig", a)
    nonfinite = r.sum(ew.logical_not(ew.isfinite(a)), None, False, dt.int32)
    if _host_ints(nonfinite)[0]:  # torch checks first (a synchronisation), and so do we
        raise RuntimeError("torch.linalg.eig: input tensor should not contain infs or NaNs.")
    *batch, n, _ = a._shape
    count = _batch(a._shape)
    f = _fortran_copy(a)
    per = n if a._dtype.is_complex else 2 * n  # real input: real parts, then imaginary parts (LAPACK's wr, wi)
    w = empty(tuple(batch) + (per,), a._dtype, a._device)
    vr = _fortran(a._shape, a._dtype, a._device)
    lib, h, params = _solver(a._device.index)
    info = empty((count,), dt.int32, a._device)
    dev_bytes, host_bytes = lib.xgeev_buffer_size(h, params, NOVECTOR, VECTOR, n, dtype, f.data_ptr(), n, dtype,
                                                  w.data_ptr(), dtype, 0, n, dtype, vr.data_ptr(), n, dtype)
    work = _workspace(dev_bytes, a._device)
    host, host_ptr = _host_workspace(host_bytes)
    for m_, v, e, i in zip(_pointers(f, count, n * n), _pointers(w, count, per), _pointers(vr, count, n * n),
                           _pointers(info, count, 1)):
        lib.xgeev(h, params, NOVECTOR, VECTOR, n, dtype, m_, n, dtype, v, dtype, 0, n, dtype, e, n, dtype,
                  work.data_ptr(), dev_bytes, host_ptr, host_bytes, i)
    _check("torch.linalg.eig", info, a.ndim > 2, _no_convergence("eigenvalues"))
    if a._dtype.is_complex:
        return d.eig_result(w, vr)
    return d.eig_result(*_complex_eigen(w, vr, specs))


def _complex_eigen(w, vr, specs):
    """LAPACK's real form -> complex eigenvalues and eigenvectors: a conjugate pair (imaginary part > 0
    first) shares columns j, j+1 of VR as v_j = VR[:, j] + i VR[:, j+1], v_j+1 = conj(v_j)."""
    n = vr._shape[-1]
    wr, wi = views.narrow(w, -1, 0, n), views.narrow(w, -1, n, n)
    values = empty(specs[0].shape, specs[0].dtype, w._device)
    pairs = views.view_as_real(values)
    creation.copy_(views.select(pairs, -1, 0), wr)
    creation.copy_(views.select(pairs, -1, 1), wi)
    first = views.unsqueeze(ew.gt(wi, 0), -2)    # (*batch, 1, n): column j starts a pair
    second = views.unsqueeze(ew.lt(wi, 0), -2)   # column j ends one
    zero = creation.full(vr._shape[:-1] + (1,), 0, vr._dtype, device=vr._device)
    cat = get("cat")
    following = cat([views.narrow(vr, -1, 1, n - 1), zero], -1)   # column j + 1 at j
    preceding = cat([zero, views.narrow(vr, -1, 0, n - 1)], -1)   # column j - 1 at j
    real = ew.where(second, preceding, vr)
    imag = ew.where(first, following, ew.where(second, ew.neg(vr), 0.0))
    vectors = empty(specs[1].shape, specs[1].dtype, w._device)
    parts = views.view_as_real(vectors)
    creation.copy_(views.select(parts, -1, 0), real)
    creation.copy_(views.select(parts, -1, 1), imag)
    return values, vectors


# -- singular values ---------------------------------------------------------------------------------------------------------

def _gesvd(a, full_matrices, compute_uv):
    """(U, S, Vh) of each matrix by cuSOLVER's gesvd, which wants m >= n: a wide A goes in as the tall
    A^T (its row-major copy, read column-major), and U, Vh swap roles (A = V_c S U_c^T)."""
    *batch, m, n = a._shape
    batch = tuple(batch)
    count, k = _batch(a._shape), min(m, n)
    dtype = _data_type("linalg.svd", a)
    tall = m >= n
    cm, cn = (m, n) if tall else (n, m)  # what cuSOLVER sees: (cm, cn), cm >= cn = k
    c = _fortran_copy(a) if tall else _row_major_copy(a)  # (A^T for complex too: U, Vh come out right)
    s = empty(batch + (k,), a._dtype.to_real(), a._device)
    stype = _DATA[s._dtype]
    job = (ord("A") if full_matrices else ord("S")) if compute_uv else ord("N")
    u_cols = cm if full_matrices else cn
    if not compute_uv:
        u = vt = None
    elif tall:  # U_c (m, u_cols) and Vt_c (n, n), column-major: U and Vh as they are
        u = _fortran(batch + (cm, u_cols), a._dtype, a._device)
        vt = _fortran(batch + (cn, cn), a._dtype, a._device)
    else:  # column-major U_c (n, u_cols) is row-major Vh (u_cols, n); Vt_c (m, m) is row-major U
        u = empty(batch + (u_cols, cm), a._dtype, a._device)
        vt = empty(batch + (cn, cn), a._dtype, a._device)
    lib, h, params = _solver(a._device.index)
    info = empty((count,), dt.int32, a._device)
    u_ptr, vt_ptr = (u.data_ptr(), vt.data_ptr()) if compute_uv else (0, 0)
    dev_bytes, host_bytes = lib.xgesvd_buffer_size(h, params, job, job, cm, cn, dtype, c.data_ptr(), cm, stype,
                                                   s.data_ptr(), dtype, u_ptr, cm, dtype, vt_ptr, cn, dtype)
    work = _workspace(dev_bytes, a._device)
    host, host_ptr = _host_workspace(host_bytes)
    us = _pointers(u, count, cm * u_cols) if compute_uv else [0] * count
    vts = _pointers(vt, count, cn * cn) if compute_uv else [0] * count
    for x, sv, uu, vv, i in zip(_pointers(c, count, m * n), _pointers(s, count, k), us, vts, _pointers(info, count, 1)):
        lib.xgesvd(h, params, job, job, cm, cn, dtype, x, cm, stype, sv, dtype, uu, cm, dtype, vv, cn, dtype,
                   work.data_ptr(), dev_bytes, host_ptr, host_bytes, i)
    _check("linalg.svd", info, a.ndim > 2, _no_convergence("singular values"))
    if not compute_uv:
        return s
    return (u, s, vt) if tall else (vt, s, u)


def _row_major_copy(a):
    c = empty(a._shape, a._dtype, a._device)
    creation.copy_(c, a)
    return c


def _svd_empty(a, spec, full_matrices, compute_uv):
    """torch's results for matrices with no elements: zero singular values, identity (full) or empty vectors."""
    s = creation.full(spec.shape if not compute_uv else spec.s.shape, 0, a._dtype.to_real(), device=a._device)
    if not compute_uv:
        return s

    def eye(sp):
        return creation.contiguous(views.expand(creation.eye(*sp.shape[-2:], a._dtype, device=a._device), sp.shape))
    return eye(spec.u), s, eye(spec.vh)


def _svdvals(a, out=None):
    spec = la.linalg_svdvals.meta(a, out)
    s = _svd_empty(a, spec, False, False) if a.numel() == 0 else _gesvd(a, False, False)
    return _finish("linalg_svdvals", out, spec, s)


def _linalg_svd(a, full_matrices=True, out=None):
    spec = la.linalg_svd.meta(a, full_matrices, out)
    if a.numel() == 0:
        return la.svd_result(*_svd_empty(a, spec, full_matrices, True))
    return la.svd_result(*_gesvd(a, full_matrices, True))


def _finish(name, out, spec, value):
    """value as the op's result, or copied into out."""
    if out is None:
        return value
    res = output(name, out, spec.shape, spec.dtype, spec.device)
    creation.copy_(res, value)
    bump_version(res)
    return res


# -- matrix exponential ----------------------------------------------------------------------------------------------------
# torch's compute_T18_scale_square (Bader, Blanes, Casas 2019): the degree-18 Taylor approximant of
# A / 2^s from 5 matrix products, then s squarings. s depends on the data; torch reads it on the host.
# We do not synchronise: every matrix is squared MAX_SQUARINGS times, each time kept only where s is
# larger (a select on the device), so matrices whose s would exceed MAX_SQUARINGS (1-norm above
# theta * 2^20, about 1e6) are approximated less accurately than torch's.

# float32 and the half types compute in float64 and round once. Scaling and squaring amplifies rounding
# errors (by 2^s, and more where the result cancels): torch's float32 result is off in the last digits
# of its badly conditioned entries, ours would be off differently; rounded from float64 it is never
# the less accurate one.

MAX_SQUARINGS = 20
_VIA_FLOAT64 = (dt.float32, dt.float16, dt.bfloat16, dt.complex64)
_T18 = ((0.0, -1.00365581030144618291e-01, -8.02924648241156932449e-03, -8.92138498045729985177e-04, 0.0),
        (0.0, 3.97849749499645077844e-01, 1.36783778460411720168e+00, 4.98289622525382669416e-01,
         -6.37898194594723280150e-04),
        (-1.09676396052962061844e+01, 1.68015813878906206114e+00, 5.71779846478865511061e-02,
         -6.98210122488052056106e-03, 3.34975017086070470649e-05),
        (-9.04316832390810593223e-02, -6.76404519071381882256e-02, 6.75961301770459654925e-02,
         2.95552570429315521194e-02, -1.39180257516060693404e-05),
        (0.0, 0.0, -9.23364619367118555360e-02, -1.69364939002081722752e-02, -1.40086798182036094347e-05))
THETA18 = 1.090863719290036e+00  # torch's float64 bound of the 1-norm for Taylor-18
_coefficients = {}  # (device, dtype) -> the (5, 5) table on the device, uploaded once


def _t18_table(dtype, device):
    key = (device, dtype)
    t = _coefficients.get(key)
    if t is None:
        from vibetensor.tensor.tensor import from_array
        t = _coefficients[key] = creation.to(from_array(np.array(_T18, dtype.np)), dtype, device)
    return t


def _t18(a):
    """torch's compute_T18 of a (B, n, n): B_i = sum_j b_ij [I, A, A^2, A^3, A^6]_j (one product with the
    coefficient table); A^9 = B_0 B_4 + B_3; T = B_1 + (B_2 + A^9) A^9."""
    count, n, _ = a._shape
    bmm = la.matmul
    a2 = bmm(a, a)
    a3 = bmm(a2, a)
    a6 = bmm(a3, a3)
    eye = views.expand(creation.eye(n, n, a._dtype, device=a._device), a._shape)
    powers = get("cat")([views.unsqueeze(x, 0) for x in (eye, a, a2, a3, a6)], 0)  # (5, B, n, n)
    bs = la.mm(_t18_table(a._dtype, a._device), views.reshape(powers, (5, count * n * n)))
    b0, b1, b2, b3, b4 = (views.reshape(views.select(bs, 0, i), a._shape) for i in range(5))
    a9 = ew.add(b3, bmm(b0, b4))
    return ew.add(b1, bmm(ew.add(b2, a9), a9))


def _matrix_exp(a, out=None):
    spec = la.linalg_matrix_exp.meta(a, out)
    n = a._shape[-1]
    if a.numel() == 0:
        return _finish("linalg_matrix_exp", out, spec, creation.clone(a))
    if n == 1:  # (as torch: the exponential of the one element, in a's dtype)
        return _finish("linalg_matrix_exp", out, spec, ew.exp(a))
    if a._dtype in _VIA_FLOAT64:
        wide = _matrix_exp(creation.to(a, dt.complex128 if a._dtype.is_complex else dt.float64, a._device))
        return _finish("linalg_matrix_exp", out, spec, creation.to(wide, a._dtype, a._device))
    _data_type("linalg.matrix_exp", a)
    x = views.reshape(creation.contiguous(a), (-1, n, n))              # (B, n, n)
    norm = r.amax(r.sum(ew.abs(x), (-2,), False, None), (-1,), False)  # the 1-norm, (B,)
    s = ew.clamp(ew.ceil(ew.log2(ew.div(norm, THETA18))), 0, MAX_SQUARINGS)
    s = views.unsqueeze(views.unsqueeze(s, -1), -1)                    # (B, 1, 1)
    e = _t18(ew.div(x, ew.exp2(s)))
    steps = creation.arange(0, MAX_SQUARINGS, 1, s._dtype, device=a._device)
    more = ew.gt(s, steps)                                             # (B, 1, MAX_SQUARINGS): squaring k is due
    for k in range(MAX_SQUARINGS):
        e = ew.where(views.narrow(more, -1, k, 1), la.matmul(e, e), e)
    return _finish("linalg_matrix_exp", out, spec, views.reshape(e, a._shape))


# -- lu_permutation -----------------------------------------------------------------------------------------------------

@triton.jit
def _permutation_kernel(piv, p, M, K, BLOCK_M: tl.constexpr):
    """One program per matrix: the K row swaps of piv (1-based, int32) applied to 0..M-1 in registers
    (perm[i]: the row of A that ends in row i), then P[perm[i], i] = 1 in the zeroed (B, M, M) P.
    A pivot out of range is clamped (torch checks it on the device)."""
    b = tl.program_id(0).to(tl.int64)
    idx = tl.arange(0, BLOCK_M)
    perm = idx
    for i in range(K):
        q = tl.load(piv + b * K + i).to(tl.int32) - 1
        q = tl.minimum(tl.maximum(q, 0), M - 1)
        at_i = tl.sum(tl.where(idx == i, perm, 0), axis=0)
        at_q = tl.sum(tl.where(idx == q, perm, 0), axis=0)
        perm = tl.where(idx == i, at_q, tl.where(idx == q, at_i, perm))
    one = tl.full((BLOCK_M,), 1, p.dtype.element_ty)
    tl.store(p + b * M * M + perm.to(tl.int64) * M + idx, one, mask=idx < M)


_permutation_kernels = {}  # BLOCK_M -> Kernel


def _lu_permutation(pivots, m, dtype):
    spec = d.lu_permutation.meta(pivots, m, dtype)
    if spec.dtype.is_complex:  # the real permutation matrix, cast
        return creation.to(_lu_permutation(pivots, m, spec.dtype.to_real()), spec.dtype, spec.device)
    p = creation.full(spec.shape, 0, spec.dtype, device=spec.device)
    count = _batch(spec.shape)
    k = pivots._shape[-1]
    if count == 0 or m == 0 or k == 0:
        if m and k == 0:  # no swaps: identities
            creation.copy_(p, creation.eye(m, m, spec.dtype, device=spec.device))
        return p
    block = triton.next_power_of_2(m)
    kern = _permutation_kernels.get(block)
    if kern is None:
        kern = _permutation_kernels[block] = launcher.Kernel(_permutation_kernel, BLOCK_M=block)
    kern((count,), creation.contiguous(pivots), p, m, k)
    return p


# -- registration ---------------------------------------------------------------------------------------------------------

d.linalg_lu_factor.register(CUDA, _lu_factor)
d.linalg_det.register(CUDA, _det)
d.linalg_slogdet.register(CUDA, _slogdet)
d.linalg_inv.register(CUDA, _inv)
d.linalg_solve.register(CUDA, _solve)
d.linalg_cholesky.register(CUDA, _cholesky)
d.linalg_qr.register(CUDA, _qr)
d.geqrf.register(CUDA, _geqrf)
d.linalg_eigh.register(CUDA, _eigh)
d.linalg_eig.register(CUDA, _eig)
d.lu_permutation.register(CUDA, _lu_permutation)
la.linalg_svd.register(CUDA, _linalg_svd)
la.linalg_svdvals.register(CUDA, _svdvals)
la.linalg_matrix_exp.register(CUDA, _matrix_exp)
