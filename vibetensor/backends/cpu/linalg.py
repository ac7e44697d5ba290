"""CPU kernels of the matmul family and matrix norms, on NumPy (BLAS for float/complex).

Half types are multiplied in float32 and rounded once, as torch's CPU kernels do; integer
products wrap like torch's (modular arithmetic makes the accumulation width irrelevant).
"""
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.backends.cpu.reduction import write
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def _product(name, meta, product):
    """Register kernel(a, b, out=None) computing product(x, y) in the compute dtype."""
    def kernel(a, b, out=None):
        spec = meta(a, b, out)
        ct = np_compute(spec.dtype)
        return write(name, out, spec, product(operand(a, ct), operand(b, ct)))
    getattr(la, name).register(CPU, kernel)


def _add_product(name, product):
    """addmm / addmv: beta * input + alpha * product. beta == 0 ignores input (NaN included); alpha
    == 0 skips the product only where torch calls BLAS (float32/64, complex): half types still
    compute it, so a NaN there survives, as in torch."""
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
        res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is input)
        np.copyto(array(res), value, casting="unsafe")
        if out is not None:
            bump_version(res)
        return res
    op.register(CPU, kernel)


def _matrix_norm(a, ord, dim=(-2, -1), keepdim=False, dtype=None, out=None):
    spec = la.matrix_norm.meta(a, ord, dim, keepdim, dtype, out)
    if ord == "fro":
        return r.vector_norm(a, 2, dim, keepdim, dtype, out=out)
    x = operand(a, np_compute(spec.compute))
    x = np.moveaxis(x, spec.dims, (-2, -1))  # (..., m, n)
    if min(x.shape[-2:]) == 0:
        nuc = np.zeros(x.shape[:-2], x.real.dtype)
    else:
        nuc = _nuclear(x)
    if keepdim:
        nuc = np.expand_dims(nuc, spec.dims)
    return write("norm", out, spec, nuc)


def _nuclear(x):
    """Sum of singular values of each (m, n) matrix. Like torch's LAPACK path: a matrix holding NaN
    fails to converge (an error naming its batch element), one holding inf gives NaN."""
    nan = np.isnan(x).any(axis=(-2, -1))
    if nan.any():
        where = f"(Batch element {int(np.flatnonzero(nan)[0])}): " if x.ndim > 2 else ""
        raise RuntimeError(f"linalg.svd: {where}The algorithm failed to converge because the input matrix "
                           "contained non-finite values.")
    finite = np.isfinite(x).all(axis=(-2, -1))
    s = np.linalg.svd(np.where(finite[..., None, None], x, 0), compute_uv=False).sum(-1)
    return np.where(finite, s, np.nan).astype(s.dtype)


_product("mm", la.mm.meta, np.matmul)
_product("bmm", la.bmm.meta, np.matmul)
_product("mv", la.mv.meta, np.matmul)
_product("dot", la.dot.meta, np.dot)
_product("vdot", la.vdot.meta, np.vdot)
_add_product("addmm", np.matmul)
_add_product("addmv", np.matmul)
la.matrix_norm.register(CPU, _matrix_norm)
