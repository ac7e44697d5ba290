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
from vibetensor.ops import creation, elementwise as ew, reduction as r, views
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
BLOCK = 2048
CHUNK = 16 * BLOCK  # elements of a row one program reduces
SUM, MAX, MIN, PROD = 0, 1, 2, 3


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _combine(acc, v, OP: tl.constexpr):
    if OP == 0:
        r = acc + v
    elif OP == 1:
        r = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
    elif OP == 2:
        r = tl.minimum(acc, v, propagate_nan=tl.PropagateNan.ALL)
    else:
        r = acc * v
    return r


@triton.jit
def _finish(acc, OP: tl.constexpr):
    # (exclusive branches: Triton compiles code after a constexpr-guarded return too)
    if OP == 0:
        r = tl.sum(acc, 0)
    elif OP == 3:
        r = tl.reduce(acc, 0, _mul)
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
    if op == SUM or op == PROD:
        acc = _ACC.get(compute, tl.int64)
        identity = float(op == PROD) if compute.is_floating_point else int(op == PROD)
    else:
        if not compute.is_floating_point:  # integers have no NaN: the arg kernel's values
            _extreme(a, spec.dims, op == MAX, res, None)
            return res
        acc = _ACC[compute]
        identity = float("-inf") if op == MAX else float("inf")
    x = a if a._dtype is compute else creation.to(a, compute, a._device)
    x, rows, cols = _rows(x, spec.dims)
    if cols == 0:  # an empty reduced dim: the identity (NaN for a mean)
        if res.numel():
            fill = float("nan") if mean else identity
            creation.copy_(res, creation.full(res._shape, fill, res._dtype, device=res._device))
        return res
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

    if op == SUM or op == PROD:
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
_register("prod", PROD)
_register("amax", MAX)
_register("amin", MIN)

# -- the arg family: argmax/argmin, max/min (with and without dim), aminmax, integer amax/amin -------------------

@triton.jit
def _arg_kernel(x_ptr, val_ptr, idx_ptr, cols, IS_MAX: tl.constexpr, WANT_VAL: tl.constexpr,
                WANT_IDX: tl.constexpr, CMP: tl.constexpr, BLOCK: tl.constexpr):
    """One program per row of a (rows, cols) matrix: each lane keeps its best (value, index), the
    first index winning ties and a NaN beating everything; then the lanes agree on the smallest
    index among the winners. The value is re-read at that index, so it is exact in any dtype."""
    row = tl.program_id(0).to(tl.int64)
    base = x_ptr + row * cols
    lanes = tl.arange(0, BLOCK)
    first = tl.load(base).to(CMP)
    best = tl.zeros((BLOCK,), CMP) + first
    best_i = tl.zeros((BLOCK,), tl.int64)
    for start in range(0, cols, BLOCK):
        offs = start + lanes
        m = offs < cols
        v = tl.load(base + offs, mask=m, other=0).to(CMP)
        if IS_MAX:
            better = v > best
        else:
            better = v < best
        better = m & (better | ((v != v) & (best == best)))
        best = tl.where(better, v, best)
        best_i = tl.where(better, offs, best_i)
    nan = best != best
    has_nan = tl.max(nan.to(tl.int32), 0) > 0
    if IS_MAX:
        ext = tl.max(best, 0)
    else:
        ext = tl.min(best, 0)
    winner = tl.where(has_nan, nan, best == ext)
    idx = tl.min(tl.where(winner, best_i, cols), 0)
    if WANT_IDX:
        tl.store(idx_ptr + row, idx)
    if WANT_VAL:
        tl.store(val_ptr + row, tl.load(base + idx))


_CMP = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64}
ARG_BLOCK = 1024
_arg_kernels = {}


def _dense_out(t):
    return t if t is None or t.is_contiguous() else empty(t._shape, t._dtype, t._device)


def _extreme(a, dims, is_max, values, indices):
    """Write the extreme of `a` over `dims` into `values` and/or its index into `indices` (either may
    be None); indices count along the reduced dims in row-major order."""
    if a._dtype.is_complex:
        raise NotImplementedError("max/min: complex inputs on CUDA are not supported")
    x, rows, cols = _rows(a, dims)
    if rows == 0 or cols == 0:
        return
    cmp = _CMP.get(a._dtype, tl.int64)
    key = (is_max, values is not None, indices is not None, cmp)
    k = _arg_kernels.get(key)
    if k is None:
        k = _arg_kernels[key] = launcher.Kernel(_arg_kernel, IS_MAX=is_max, WANT_VAL=values is not None,
                                                WANT_IDX=indices is not None, CMP=cmp, BLOCK=ARG_BLOCK)
    v, i = _dense_out(values), _dense_out(indices)
    k((rows,), x, v if v is not None else x, i if i is not None else x, cols)
    for dense, user in ((v, values), (i, indices)):
        if dense is not user:
            creation.copy_(user, dense)


def _done(res, out):
    if out is not None:
        bump_version(res)
    return res


def _register_arg(name, is_max):
    o = getattr(r, name)

    def kernel(a, dim=None, keepdim=False, out=None):
        spec = o.meta(a, dim, keepdim, out)
        res = output(name, out, spec.shape, dt.int64, spec.device)
        _extreme(a, spec.dims, is_max, None, res)
        return _done(res, out)
    o.register(CUDA, kernel)


def _register_max_all(name, is_max):
    o = getattr(r, name)

    def kernel(a, out=None):
        spec = o.meta(a, out)
        res = output(name, out, spec.shape, spec.dtype, spec.device)
        _extreme(a, spec.dims, is_max, res, None)
        return _done(res, out)
    o.register(CUDA, kernel)


def _register_max_dim(name, is_max, result):
    o = getattr(r, name)

    def kernel(a, dim, keepdim=False, out=None):
        spec = o.meta(a, dim, keepdim, out)
        values_out, indices_out = out if out is not None else (None, None)
        values = output(name, values_out, spec.shape, spec.dtype, spec.device)
        indices = output(name, indices_out, spec.shape, dt.int64, spec.device)
        _extreme(a, spec.dims, is_max, values, indices)
        if out is not None:
            bump_version(values)
            bump_version(indices)
        return result(values, indices)
    o.register(CUDA, kernel)


def _aminmax(a, dim=None, keepdim=False, out=None):
    spec = r.aminmax.meta(a, dim, keepdim, out)
    lo_out, hi_out = out if out is not None else (None, None)
    lo = output("aminmax", lo_out, spec.shape, spec.dtype, spec.device)
    hi = output("aminmax", hi_out, spec.shape, spec.dtype, spec.device)
    _extreme(a, spec.dims, False, lo, None)
    _extreme(a, spec.dims, True, hi, None)
    if out is not None:
        bump_version(lo)
        bump_version(hi)
    return r.return_types.aminmax(lo, hi)


_register_arg("argmax", True)
_register_arg("argmin", False)
_register_max_all("max", True)
_register_max_all("min", False)
_register_max_dim("max_dim", True, r.return_types.max)
_register_max_dim("min_dim", False, r.return_types.min)
r.aminmax.register(CUDA, _aminmax)


# -- composites of the kernels above and elementwise ones ------------------------------------------------------

def _store(name, out, spec, value, dtype=None):
    res = output(name, out, spec.shape, dtype or spec.dtype, spec.device)
    creation.copy_(res, value)
    return _done(res, out)


def _count(a, dims):
    n = 1
    for d in dims:
        n *= a._shape[d]
    return n


def _acc_float(a, dtype=None):
    """a in the dtype statistics accumulate in: float32 for half types, else its own float dtype."""
    d = dtype or a._dtype
    if d.is_complex:
        raise NotImplementedError("complex statistics on CUDA are not supported yet")
    acc = dt.float32 if d in (dt.float16, dt.bfloat16) else d
    return a if a._dtype is acc else creation.to(a, acc, a._device)


def _nansum(a, dim=None, keepdim=False, dtype=None, out=None):
    spec = r.nansum.meta(a, dim, keepdim, dtype, out)
    x = a if a._dtype.category < 2 else ew.where(ew.isnan(a), 0, a)
    return _store("nansum", out, spec, r.sum(x, spec.dims, keepdim, spec.dtype))


def _nanmean(a, dim=None, keepdim=False, dtype=None, out=None):
    spec = r.nanmean.meta(a, dim, keepdim, dtype, out)
    x = a if dtype is None else creation.to(a, dtype, a._device)
    valid = ew.logical_not(ew.isnan(x))
    total = r.sum(ew.where(valid, x, 0), spec.dims, keepdim, None)
    return _store("nanmean", out, spec, ew.div(total, r.sum(valid, spec.dims, keepdim, None)))


def _any_all(name):
    o = getattr(r, name)

    def kernel(a, dim=None, keepdim=False, out=None):
        spec = o.meta(a, dim, keepdim, out)
        x = a if a._dtype is spec.compute else creation.to(a, spec.compute, a._device)
        if not spec.dims and a.ndim:  # dim=(): nothing reduces
            return _store(name, out, spec, ew.ne(x, 0))
        if name == "any":
            value = ew.gt(r.sum(ew.ne(x, 0), spec.dims, keepdim, None), 0)
        else:
            value = ew.eq(r.sum(ew.eq(x, 0), spec.dims, keepdim, None), 0)
        return _store(name, out, spec, value)
    o.register(CUDA, kernel)


def _count_nonzero(a, dim=None):
    spec = r.count_nonzero.meta(a, dim)
    return r.sum(ew.ne(a, 0), spec.dims, False, None)


def _moments(a, dims, correction, keepdim):
    """(variance, mean) over dims in the accumulation dtype: two passes (mean, then squared deviations)."""
    x = _acc_float(a)
    n = _count(a, dims)
    mean_kept = ew.div(r.sum(x, dims, True, None), n)
    d = ew.sub(x, mean_kept)
    var = ew.div(r.sum(ew.mul(d, d), dims, keepdim, None), max(0, n - correction))
    return var, (mean_kept if keepdim else views.reshape(mean_kept, var._shape))


def _var_like(name, sqrt, with_mean):
    o = getattr(r, name)

    def kernel(a, dim=None, correction=1, keepdim=False, out=None):
        spec = o.meta(a, dim, correction, keepdim, out)
        var, mean = _moments(a, spec.dims, correction, keepdim)
        stat = ew.sqrt(var) if sqrt else var
        if not with_mean:
            return _store(name, out, spec, stat)
        return _store(name, None, spec, stat), _store(name, None, spec, mean, a._dtype)
    o.register(CUDA, kernel)


def _logsumexp(a, dim, keepdim=False, out=None):
    spec = r.logsumexp.meta(a, dim, keepdim, out)
    x = a if a._dtype is spec.dtype else creation.to(a, spec.dtype, a._device)
    dims = spec.dims
    if x.numel() == 0:
        return _store("logsumexp", out, spec, ew.log(r.sum(ew.exp(x), dims, keepdim, None)))
    # shift by the max; an infinite max shifts by 0 so inf - inf never makes NaN
    shift = r.amax(x, dims, True)
    shift = ew.where(ew.isinf(shift), 0, shift)
    total = ew.log(r.sum(ew.exp(ew.sub(x, shift)), dims, keepdim, None))
    return _store("logsumexp", out, spec, ew.add(total, shift if keepdim else views.reshape(shift, total._shape)))


def _vector_norm(a, ord=2, dim=None, keepdim=False, dtype=None, out=None):
    spec = r.vector_norm.meta(a, ord, dim, keepdim, dtype, out)
    x = a if a._dtype is spec.compute else creation.to(a, spec.compute, a._device)
    mag, dims = ew.abs(_acc_float(x)), spec.dims
    if ord == 2:
        value = ew.sqrt(r.sum(ew.mul(mag, mag), dims, keepdim, None))
    elif ord == 1:
        value = r.sum(mag, dims, keepdim, None)
    elif ord == float("inf"):
        value = r.amax(mag, dims, keepdim)
    elif ord == -float("inf"):
        value = r.amin(mag, dims, keepdim)
    elif ord == 0:
        value = r.sum(ew.ne(mag, 0), dims, keepdim, None)
    else:
        value = ew.pow(r.sum(ew.pow(mag, float(ord)), dims, keepdim, None), 1.0 / ord)
    return _store("norm", out, spec, value)


r.nansum.register(CUDA, _nansum)
r.nanmean.register(CUDA, _nanmean)
_any_all("any")
_any_all("all")
r.count_nonzero.register(CUDA, _count_nonzero)
_var_like("var", False, False)
_var_like("std", True, False)
_var_like("var_mean", False, True)
_var_like("std_mean", True, True)
r.logsumexp.register(CUDA, _logsumexp)
r.vector_norm.register(CUDA, _vector_norm)

