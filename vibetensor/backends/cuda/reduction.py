"""CUDA kernels of the reductions sum, mean, amax, amin over any set of dims.

The reduced dims are moved last and made contiguous (a copy only when they are not already), so
every reduction is a row reduction of a (rows, cols) matrix. Each row is split into chunks that
separate programs reduce into a (rows, chunks) buffer of partials, which a second launch reduces:
a full reduction of a large tensor keeps every SM busy instead of one. Sums accumulate in float32
for half types and float32, float64 for float64, int64 for integers; amax/amin propagate NaN.
"""
import triton
import triton.language as tl

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, reduction as r, views
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
BLOCK = 2048
CHUNK = 16 * BLOCK  # elements of a row one program reduces
SUM, MAX, MIN = 0, 1, 2


@triton.jit
def _combine(acc, v, OP: tl.constexpr):
    if OP == 0:
        return acc + v
    elif OP == 1:
        return tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
    else:
        return tl.minimum(acc, v, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _finish(acc, OP: tl.constexpr):
    # (exclusive branches: Triton compiles code after a constexpr-guarded return too)
    if OP == 0:
        r = tl.sum(acc, 0)
    else:
        if OP == 1:
            r = tl.max(acc, 0)
        else:
            r = tl.min(acc, 0)
        # lanes kept NaN (tl.maximum propagates it); tl.max/tl.min across lanes would drop it
        r = tl.where(tl.sum((acc != acc).to(tl.int32), 0) > 0, float("nan"), r)
    return r


@triton.jit
def _reduce_kernel(x_ptr, out_ptr, cols, chunks, count, OP: tl.constexpr, ACC: tl.constexpr,
                   IDENTITY: tl.constexpr, MEAN: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """out[row, chunk] = reduction of x[row, chunk*CHUNK : (chunk+1)*CHUNK] (divided by the integer
    `count` if MEAN: exact in float64, unlike a float scale, which Triton would pass as float32)."""
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1).to(tl.int64)
    base = x_ptr + row * cols
    acc = tl.full((BLOCK,), IDENTITY, ACC)
    start = chunk * CHUNK
    for k in range(0, CHUNK, BLOCK):
        offs = start + k + tl.arange(0, BLOCK)
        v = tl.load(base + offs, mask=offs < cols, other=IDENTITY).to(ACC)
        acc = _combine(acc, v, OP)
    res = _finish(acc, OP)
    if MEAN:
        res = res / count
    tl.store(out_ptr + row * chunks + chunk, res.to(out_ptr.dtype.element_ty))


_ACC = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64}
_kernels = {}


def _kernel(op, acc, identity, mean):
    key = (op, acc, identity, mean)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_reduce_kernel, OP=op, ACC=acc, IDENTITY=identity, MEAN=mean,
                                            CHUNK=CHUNK, BLOCK=BLOCK)
    return k


def _rows(a, dims):
    """a as a contiguous (rows, cols) matrix whose rows are the reduced elements."""
    keep = [d for d in range(a.ndim) if d not in dims]
    perm = keep + list(dims)
    x = views.permute(a, tuple(perm)) if perm != list(range(a.ndim)) else a
    x = creation.contiguous(x)
    cols = 1
    for d in dims:
        cols *= a._shape[d]
    return x, a.numel() // max(cols, 1) if cols else 0, cols


def _reduce(name, a, spec, op, res, mean=False):
    compute = spec.compute
    if compute.is_complex:
        raise NotImplementedError(f"{name}: complex reductions on CUDA are not supported yet")
    if op == SUM:
        acc = _ACC.get(compute, tl.int64)
        identity = 0.0 if compute.is_floating_point else 0
    else:
        if not compute.is_floating_point:
            raise NotImplementedError(f"{name}: integer {name} on CUDA is not supported yet")
        acc = _ACC[compute]
        identity = float("-inf") if op == MAX else float("inf")
    x = a if a._dtype is compute else creation.to(a, compute, a._device)
    x, rows, cols = _rows(x, spec.dims)
    if rows == 0:
        return res
    chunks = triton.cdiv(max(cols, 1), CHUNK)
    flat = res if res.is_contiguous() else empty(res._shape, res._dtype, res._device)
    if chunks == 1:  # one pass straight into the result
        _kernel(op, acc, identity, mean)((rows, 1), x, flat, cols, 1, cols)
    else:  # partials in the accumulation dtype, then one more pass
        partial_dtype = {tl.float32: dt.float32, tl.float64: dt.float64, tl.int64: dt.int64}[acc]
        partials = empty((rows, chunks), partial_dtype, a._device)
        _kernel(op, acc, identity, False)((rows, chunks), x, partials, cols, chunks, 1)
        _kernel(op, acc, identity, mean)((rows, 1), partials, flat, chunks, 1, cols)
    if flat is not res:
        creation.copy_(res, flat)
    return res


def _register(name, op, mean=False):
    o = getattr(r, name)

    if op == SUM:
        def kernel(a, dim=None, keepdim=False, dtype=None, out=None):
            spec = o.meta(a, dim, keepdim, dtype, out)
            res = output(name, out, spec.shape, spec.dtype, spec.device)
            _reduce(name, a, spec, op, res, mean)
            if out is not None:
                bump_version(res)
            return res
    else:
        def kernel(a, dim=None, keepdim=False, out=None):
            spec = o.meta(a, dim, keepdim, out)
            res = output(name, out, spec.shape, spec.dtype, spec.device)
            _reduce(name, a, spec, op, res)
            if out is not None:
                bump_version(res)
            return res
    o.register(CUDA, kernel)


_register("sum", SUM)
_register("mean", SUM, mean=True)
_register("amax", MAX)
_register("amin", MIN)
