"""CPU kernels of the matmul family, linear algebra and norms, on NumPy (BLAS/LAPACK for
float/complex).

Products of half types are computed in float32 and rounded once, as torch's CPU kernels do;
integer products wrap like torch's (modular arithmetic makes the accumulation width irrelevant).
Kernels torch writes as per-element arithmetic in the tensor's own type (addr, cross) compute in
that type here too, so float16/bfloat16 round after each operation as they do in torch.
"""
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.backends.cpu.reduction import fresh, write
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import elementwise as ew
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def _store(name, out, spec, value, inplace=False):
    """Write value into a new result or into out (in-place when out is the op's input)."""
    res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=inplace)
    np.copyto(array(res), value, casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


def _number(value, dtype, ct):
    return np.array(la.scalar(value, dtype)).astype(ct)


# -- products ------------------------------------------------------------------------------------------------

def _product(name, meta, product):
    """Register kernel(a, b, out=None) computing product(x, y) in the compute dtype."""
    def kernel(a, b, out=None):
        spec = meta(a, b, out)
        ct = np_compute(spec.dtype)
        return fresh(name, out, spec, product(operand(a, ct), operand(b, ct)))  # NumPy's products are new arrays
    getattr(la, name).register(CPU, kernel)


def _add_product(name, product):
    """addmm / addmv / baddbmm: beta * input + alpha * product. beta == 0 ignores input (NaN
    included); alpha == 0 skips the product only where torch calls BLAS (float32/64, complex):
    half types still compute it, so a NaN there survives, as in torch."""
    op = getattr(la, name)

    def kernel(input, a, b, beta=1, alpha=1, out=None):
        spec = op.meta(input, a, b, beta, alpha, out)
        ct = np_compute(spec.dtype)
        beta, alpha = la.scalar(beta, spec.dtype), la.scalar(alpha, spec.dtype)
        value = np.zeros(spec.shape, ct)
        blas = spec.dtype.kind in "fc" and spec.dtype.itemsize > 2
        if alpha != 0 or not blas:
            value = product(operand(a, ct), operand(b, ct))
            if alpha != 1:
                value = np.multiply(value, np.array(alpha).astype(ct))
        if beta != 0:
            value = value + np.multiply(operand(input, ct), np.array(beta).astype(ct))
        return _store(name, out, spec, value, inplace=out is input)
    op.register(CPU, kernel)


def _addbmm(input, b1, b2, beta=1, alpha=1, out=None):
    """One addmm_ per batch into the result, as torch: beta scales input once, and each step
    rounds to the result dtype (which matters for half types)."""
    spec = la.addbmm.meta(input, b1, b2, beta, alpha, out)
    ct, rt = np_compute(spec.dtype), spec.dtype.np
    beta, alpha = _number(beta, spec.dtype, ct), _number(alpha, spec.dtype, ct)
    x, y = operand(b1, ct), operand(b2, ct)
    acc = np.broadcast_to(operand(input, ct), spec.shape) if beta != 0 else np.zeros(spec.shape, ct)
    if len(x) == 0:
        acc = acc * beta
    for k in range(len(x)):
        acc = ((acc * beta if k == 0 else acc) + alpha * (x[k] @ y[k])).astype(rt).astype(ct)
    return _store("addbmm", out, spec, acc, inplace=out is input)


def _addr(input, v1, v2, beta=1, alpha=1, out=None):
    """beta * input + (alpha * v1) * v2 in the result dtype; bool is (beta and input) or (alpha
    and v1 and v2). beta == 0 ignores input."""
    spec = la.addr.meta(input, v1, v2, beta, alpha, out)
    t = spec.dtype.np
    x, a, b = operand(input, t), operand(v1, t)[:, None], operand(v2, t)
    if spec.dtype.kind == "b":
        value = np.logical_and(np.logical_and(bool(alpha), a), b)
        if beta:
            value = np.logical_or(x, value)
    else:
        beta, alpha = _number(beta, spec.dtype, t), _number(alpha, spec.dtype, t)
        value = (alpha * a) * b
        if beta != 0:
            value = beta * x + value
    return _store("addr", out, spec, np.broadcast_to(value, spec.shape), inplace=out is input)


_product("mm", la.mm.meta, np.matmul)
_product("bmm", la.bmm.meta, np.matmul)
_product("mv", la.mv.meta, np.matmul)
_product("dot", la.dot.meta, np.dot)
_product("vdot", la.vdot.meta, np.vdot)
_add_product("addmm", np.matmul)
_add_product("addmv", np.matmul)
_add_product("baddbmm", np.matmul)
la.addbmm.register(CPU, _addbmm)
la.addr.register(CPU, _addr)


# -- cross, trace --------------------------------------------------------------------------------------------

def _cross(a, b, dim=-1, out=None):
    """(a1 b2 - a2 b1, a2 b0 - a0 b2, a0 b1 - a1 b0) along dim, in the tensors' own dtype."""
    spec = la.linalg_cross.meta(a, b, dim, out)
    d = dim % a.ndim
    x = np.broadcast_to(operand(a, spec.dtype.np), spec.shape)
    y = np.broadcast_to(operand(b, spec.dtype.np), spec.shape)
    x0, x1, x2 = (np.take(x, i, axis=d) for i in range(3))
    y0, y1, y2 = (np.take(y, i, axis=d) for i in range(3))
    value = np.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], axis=d)
    return write("linalg_cross", out, spec, value)


# torch's trace accumulates float in double and integers in int64 (at::acc_type on CPU)
_TRACE_ACC = {"f": np.float64, "c": np.complex128, "i": np.int64, "u": np.int64}


def _trace(a):
    spec = la.trace.meta(a)
    x = array(a)
    return write("trace", None, spec, np.trace(x, dtype=_TRACE_ACC[x.dtype.kind if x.dtype.kind in "fciu" else "f"]))


la.linalg_cross.register(CPU, _cross)
la.trace.register(CPU, _trace)


# -- matrix functions ------------------------------------------------------------------------------------------
# exp(A) by scaling and squaring with the [13/13] Pade approximant (Higham 2005), batched: each
# matrix is scaled by its own 2^-s, and squared back s times.

_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0, 129060195264000.0,
           10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def _expm(x):
    """exp of each matrix of x (*batch, n, n), in x's (double) precision; non-finite -> NaN."""
    n = x.shape[-1]
    finite = np.isfinite(x).all(axis=(-2, -1))
    x = np.where(finite[..., None, None], x, 0)
    norm1 = np.abs(x).sum(axis=-2).max(axis=-1) if n else np.zeros(x.shape[:-2])
    s = np.maximum(0, np.ceil(np.log2(np.maximum(norm1, 1e-300) / _THETA13))).astype(np.int64)
    a = x / (2.0 ** s)[..., None, None]
    b, eye = _PADE13, np.eye(n, dtype=x.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    e = np.linalg.solve(v - u, v + u) if n else v
    for k in range(int(s.max(initial=0))):
        e = np.where((s > k)[..., None, None], e @ e, e)
    return np.where(finite[..., None, None], e, np.nan)


def _matrix_exp(a, out=None):
    spec = la.linalg_matrix_exp.meta(a, out)
    wide = np.complex128 if spec.dtype.is_complex else np.float64
    return write("linalg_matrix_exp", out, spec, _expm(array(a).astype(wide)))


def _svd(x, full_matrices, compute_uv):
    """np.linalg.svd with torch's LAPACK behaviour: a matrix holding NaN fails to converge (an error
    naming its batch element), one holding inf gives NaN throughout; empty matrices give identity
    (full) or empty singular vectors."""
    *batch, m, n = x.shape
    k = min(m, n)
    if k == 0 or x.size == 0:
        s = np.zeros(x.shape[:-2] + (k,), x.real.dtype)
        eye = lambda d, cols: np.broadcast_to(np.eye(d, cols, dtype=x.dtype), tuple(batch) + (d, cols))  # noqa: E731
        return (eye(m, m if full_matrices else k), s, eye(n if full_matrices else k, n)) if compute_uv else s
    nan = np.isnan(x).any(axis=(-2, -1))
    if nan.any():
        where = f"(Batch element {int(np.flatnonzero(nan)[0])}): " if x.ndim > 2 else ""
        raise RuntimeError(f"linalg.svd: {where}The algorithm failed to converge because the input matrix "
                           "contained non-finite values.")
    finite = np.isfinite(x).all(axis=(-2, -1))
    res = np.linalg.svd(np.where(finite[..., None, None], x, 0), full_matrices=full_matrices, compute_uv=compute_uv)
    if compute_uv:
        return tuple(np.where(finite[..., None, None] if v.ndim == x.ndim else finite[..., None], v, np.nan)
                     for v in (res.U, res.S, res.Vh))
    return np.where(finite[..., None], res, np.nan)


def _svdvals(a, out=None):
    spec = la.linalg_svdvals.meta(a, out)
    return write("linalg_svdvals", out, spec, _svd(operand(a, np_compute(a._dtype)), False, False))


def _linalg_svd(a, full_matrices=True, out=None):
    spec = la.linalg_svd.meta(a, full_matrices, out)
    u, s, vh = _svd(operand(a, np_compute(a._dtype)), full_matrices, True)
    return la.svd_result(*(write("linalg_svd", None, sp, v) for sp, v in zip(spec, (u, s, vh))))


la.linalg_matrix_exp.register(CPU, _matrix_exp)
la.linalg_svdvals.register(CPU, _svdvals)
la.linalg_svd.register(CPU, _linalg_svd)


# -- norms ---------------------------------------------------------------------------------------------------

def _renorm(a, p, dim, maxnorm, out=None):
    """a * factor, factor = maxnorm / (norm + 1e-7) where a slice's norm exceeds maxnorm, else 1;
    the norm and the factor in torch's accumulate type (float32 for half types)."""
    spec = la.renorm.meta(a, p, dim, maxnorm, out)
    acc = la.renorm_norm_dtype(a._dtype)
    norm = array(r.vector_norm(a, p, la.renorm_dims(a, dim), True, acc))
    nt = norm.dtype.type
    factor = np.where(norm > nt(maxnorm), nt(maxnorm) / (norm + nt(1e-7)), nt(1))
    t = spec.dtype.np
    return _store("renorm", out, spec, array(a) * factor.astype(t), inplace=out is a)


def _dist(a, b, p=2, out=None):
    spec = la.dist.meta(a, b, p, out)
    return write("dist", out, spec, array(r.vector_norm(ew.sub(a, b), p, None, False, None)))


la.renorm.register(CPU, _renorm)
la.dist.register(CPU, _dist)


# -- fused multiply-add family -----------------------------------------------------------------------------

def _addc(name, combine):
    """input + combine(value * t1, t2), half types in float32 (torch's addcmul/addcdiv kernels)."""
    op = getattr(la, name)

    def kernel(input, t1, t2, value=1, out=None):
        spec = op.meta(input, t1, t2, value, out)
        ct = np_compute(spec.dtype)
        scaled = np.array(la.addc_value(value, spec.dtype)).astype(ct) * operand(t1, ct)
        return _store(name, out, spec, operand(input, ct) + combine(scaled, operand(t2, ct)), inplace=out is input)
    op.register(CPU, kernel)


_addc("addcmul", np.multiply)
_addc("addcdiv", np.true_divide)
