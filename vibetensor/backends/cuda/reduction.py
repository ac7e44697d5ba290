"""CUDA kernels of the reductions sum, mean, prod, amax, amin over any set of dims.

No copy for the common layouts: ignoring size-1 dims, a dense input whose memory runs as
[kept dims][reduced dims][kept dims] (any dims order in memory: a transposed input too) is a
(outer, red, inner) block. inner == 1 is a row reduction (`_rows_kernel`: tiles of whole rows, or
of row chunks); otherwise a column reduction (`_cols_kernel`: tiles of `inner` columns walked down
`red`, coalesced). Other layouts are permuted to rows and copied first.

Bandwidth: each program streams 4096-element tiles (16-byte loads); when the tiles of a reduction
are too few to fill the SMs (a full reduction, few long rows, short-and-wide columns), each row or
column is split into chunks whose partials (accumulation dtype) a second, tiny pass reduces. The
split depends only on the shape and the SM count, so results are deterministic (no atomics). Sums
accumulate in float32 for half types and float32, float64 for float64, int64 for integers;
amax/amin propagate NaN. Per signature (dtype, shape, strides, dims) the launches are planned
once (`_Plan`), so a repeated call is a dict lookup and one or two launches.
"""
import triton
import triton.language as tl

from vibetensor.backends.cuda.plan import planned
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, elementwise as ew, reduction as r, views
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import driver as drv, launcher
from vibetensor.runtime.cuda.launcher import cdiv, next_power_of_2
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
TILE = 4096  # elements a program loads per step: 32 per thread of 4 warps, 8 x 16 bytes in float32
# Splitting rows (columns) into chunks: aim for WAVES programs per SM (enough loads in flight to
# saturate memory), each chunk at least MIN_STEPS tiles (shorter chunks cost more partials than
# they gain). Columns have their own pair: their partials are a row of `inner` values per chunk.
# Chosen on an H200 (benchmarks/cuda_ops.py --sweep, 256 MiB float32, share of copy bandwidth):
# full sum 93% at 64/2 (79% at 4/8), column sums 94% at 8/8 (80% at 4/8, 73% at 12/8).
WAVES, MIN_STEPS = 64, 2
COL_WAVES, COL_MIN_STEPS = 8, 8
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
def _finish(acc, OP: tl.constexpr, AXIS: tl.constexpr):
    # (exclusive branches: Triton compiles code after a constexpr-guarded return too)
    if OP == 0:
        r = tl.sum(acc, AXIS)
    elif OP == 3:
        r = tl.reduce(acc, AXIS, _mul)
    else:
        if OP == 1:
            r = tl.max(acc, AXIS)
        else:
            r = tl.min(acc, AXIS)
        # lanes kept NaN (tl.maximum propagates it); tl.max/tl.min across lanes would drop it
        r = tl.where(tl.sum((acc != acc).to(tl.int32), AXIS) > 0, float("nan"), r)
    return r


@triton.jit
def _rows_kernel(x_ptr, out_ptr, rows, cols, span, chunks, count, OP: tl.constexpr, ACC: tl.constexpr,
                 IDENTITY: tl.constexpr, MEAN: tl.constexpr, R: tl.constexpr, C: tl.constexpr):
    """x is (rows, cols) row-major: out[row, chunk] = reduction of x[row, chunk*span : (chunk+1)*span]
    for a tile of R rows (span is a multiple of C), divided by the integer `count` if MEAN (exact
    in float64, unlike a float scale, which Triton would pass as float32)."""
    row = tl.program_id(0).to(tl.int64) * R + tl.arange(0, R)  # (R,)
    chunk = tl.program_id(1)
    start = chunk.to(tl.int64) * span
    row_ok = row < rows
    base = x_ptr + row[:, None] * cols  # (R, 1)
    acc = tl.full((R, C), IDENTITY, ACC)
    for k in range(0, span, C):
        col = start + k + tl.arange(0, C)  # (C,)
        v = tl.load(base + col[None, :], mask=row_ok[:, None] & (col < cols)[None, :], other=IDENTITY)
        acc = _combine(acc, v.to(ACC), OP)
    res = _finish(acc, OP, 1)  # (R,)
    if MEAN:
        res = res / count
    tl.store(out_ptr + row * chunks + chunk, res.to(out_ptr.dtype.element_ty), mask=row_ok)


@triton.jit
def _cols_kernel(x_ptr, out_ptr, red, inner, span, chunks, count, OP: tl.constexpr, ACC: tl.constexpr,
                 IDENTITY: tl.constexpr, MEAN: tl.constexpr, R: tl.constexpr, I: tl.constexpr):
    """x is (outer, red, inner) row-major: out[o, chunk, i] = reduction of x[o, chunk*span :
    (chunk+1)*span, i] for a tile of I columns (span is a multiple of R); MEAN as in _rows_kernel."""
    tiles = tl.cdiv(inner, I)
    pid = tl.program_id(0)
    o = (pid // tiles).to(tl.int64)
    col = (pid % tiles).to(tl.int64) * I + tl.arange(0, I)  # (I,)
    chunk = tl.program_id(1)
    start = chunk.to(tl.int64) * span
    col_ok = col < inner
    base = x_ptr + o * red * inner + col[None, :]  # (1, I)
    acc = tl.full((R, I), IDENTITY, ACC)
    for k in range(0, span, R):
        j = start + k + tl.arange(0, R)  # (R,)
        v = tl.load(base + j[:, None] * inner, mask=(j < red)[:, None] & col_ok[None, :], other=IDENTITY)
        acc = _combine(acc, v.to(ACC), OP)
    res = _finish(acc, OP, 0)  # (I,)
    if MEAN:
        res = res / count
    tl.store(out_ptr + (o * chunks + chunk) * inner + col, res.to(out_ptr.dtype.element_ty), mask=col_ok)


_ACC = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64}
_PARTIAL = {tl.float32: dt.float32, tl.float64: dt.float64, tl.int64: dt.int64}
# compute dtypes the kernel reaches by converting each element as it loads it, exactly as a
# converting copy would (the accumulation dtype is the compute dtype): no copy of the input first
_LOAD_CONVERTS = (dt.float32, dt.float64, dt.int64)
_kernels = {}


def _kernel(fn, op, acc, identity, mean, a, b):
    key = (fn, op, acc, identity, mean, a, b)
    k = _kernels.get(key)
    if k is None:
        tile = dict(R=a, C=b) if fn is _rows_kernel else dict(R=a, I=b)
        k = _kernels[key] = launcher.Kernel(fn, OP=op, ACC=acc, IDENTITY=identity, MEAN=mean, **tile)
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


def _blocks(shape, stride, dims):
    """(outer, red, inner) when the dense memory of a tensor runs as [kept][reduced][kept] (size-1
    dims ignored) with the kept dims in their logical order, so the result is laid out as the
    kernels write it; None otherwise."""
    live = [d for d in range(len(shape)) if shape[d] != 1]
    order = sorted(live, key=lambda d: -stride[d])  # outermost first
    expect = 1
    for d in reversed(order):
        if stride[d] != expect:
            return None
        expect *= shape[d]
    kept = [d for d in order if d not in dims]
    if kept != sorted(kept):
        return None
    sizes, phase = [1, 1, 1], 0  # phase: 0 outer kept dims, 1 reduced dims, 2 inner kept dims
    for d in order:
        if d in dims:
            if phase == 2:
                return None
            phase = 1
        elif phase == 1:
            phase = 2
        sizes[phase] *= shape[d]
    return tuple(sizes)


def _row_tiles(rows, cols, sms, split):
    """(R, C, row tiles, span, chunks) of a row reduction."""
    c = min(next_power_of_2(cols), TILE)
    rr = min(next_power_of_2(rows), TILE // c)
    tiles, steps = cdiv(rows, rr), cdiv(cols, c)
    programs = WAVES * sms
    chunks = min(cdiv(steps, MIN_STEPS), cdiv(programs, tiles)) if split and tiles < programs else 1
    span = cdiv(steps, chunks) * c
    return rr, c, tiles, span, cdiv(cols, span)


def _col_tiles(outer, red, inner, sms, split):
    """(R, I, column tiles, span, chunks) of a column reduction."""
    i = min(next_power_of_2(inner), 512)
    rr = min(next_power_of_2(red), TILE // i)
    tiles = outer * cdiv(inner, i)
    programs = COL_WAVES * sms
    if tiles < programs and (not split or cdiv(red, rr) < 2 * COL_MIN_STEPS):
        # short columns (or the pass over partials, which is not split): narrower tiles, more programs
        while i > 32 and tiles < programs:
            i //= 2
            rr = min(next_power_of_2(red), TILE // i)
            tiles = outer * cdiv(inner, i)
    steps = cdiv(red, rr)
    chunks = min(cdiv(steps, COL_MIN_STEPS), cdiv(programs, tiles)) if split and tiles < programs else 1
    span = cdiv(steps, chunks) * rr
    return rr, i, tiles, span, cdiv(red, span)


class _Plan:
    """The launches of one reduction signature: an optional permute-and-copy of the input to rows
    (`perm`), the first pass (kernel, grid, scalar args) into the result or into partials of
    shape/dtype `partials`, and the second pass over the partials. `first` None: nothing to
    launch (an empty input; `fill` the value an empty reduction gives, if any); `extreme`: integer
    amax/amin, which the arg kernel computes."""
    __slots__ = ("perm", "first", "partials", "second", "fill", "extreme")

    def __init__(self, first=None, perm=None, partials=None, second=None, fill=None, extreme=False):
        self.first, self.perm, self.partials, self.second = first, perm, partials, second
        self.fill, self.extreme = fill, extreme

    def run(self, x, res, dims, op):
        if self.first is None:
            if self.extreme:
                _extreme(x, dims, op == MAX, res, None)
            elif self.fill is not None and res.numel():
                creation.copy_(res, creation.full(res._shape, self.fill, res._dtype, device=res._device))
            return
        if self.perm is not None:
            x = creation.contiguous(views.permute(x, self.perm))
        kernel, grid, args = self.first
        if self.second is None:
            kernel(grid, x, res, *args)
            return
        partials = empty(self.partials[0], self.partials[1], x._device)
        kernel(grid, x, partials, *args)
        kernel, grid, args = self.second
        kernel(grid, partials, res, *args)


def _plan(x, compute, dims, op, mean):
    """The launches reducing x (converted to `compute` as it is loaded) over dims."""
    if compute.is_complex or x._dtype.is_complex:
        raise NotImplementedError("complex reductions on CUDA are not supported yet")
    if op == SUM or op == PROD:
        acc = _ACC.get(compute, tl.int64)
        identity = float(op == PROD) if compute.is_floating_point else int(op == PROD)
    else:
        if not compute.is_floating_point:  # integers have no NaN: the arg kernel's values
            return _Plan(extreme=True)
        acc = _ACC[compute]
        identity = float("-inf") if op == MAX else float("inf")
    count = 1
    for d in dims:
        count *= x._shape[d]
    if count == 0:  # an empty reduced dim: the identity (NaN for a mean)
        return _Plan(fill=float("nan") if mean else identity)
    if x.numel() == 0:
        return _Plan()
    blocks, perm = _blocks(x._shape, x._stride, dims), None
    if blocks is None:  # permuted to rows and copied
        keep = [d for d in range(x.ndim) if d not in dims]
        perm, blocks = tuple(keep + list(dims)), (x.numel() // count, count, 1)
    outer, red, inner = blocks
    sms = drv.properties(x._device.index or 0)["multi_processor_count"]
    if inner == 1:
        rr, c, tiles, span, chunks = _row_tiles(outer, red, sms, True)
        first = (_kernel(_rows_kernel, op, acc, identity, mean and chunks == 1, rr, c), (tiles, chunks),
                 (outer, red, span, chunks, count))
        if chunks == 1:
            return _Plan(first, perm)
        rr, c, tiles, span, _ = _row_tiles(outer, chunks, sms, False)
        second = (_kernel(_rows_kernel, op, acc, identity, mean, rr, c), (tiles, 1), (outer, chunks, span, 1, count))
        return _Plan(first, perm, ((outer, chunks), _PARTIAL[acc]), second)
    rr, i, tiles, span, chunks = _col_tiles(outer, red, inner, sms, True)
    first = (_kernel(_cols_kernel, op, acc, identity, mean and chunks == 1, rr, i), (tiles, chunks),
             (red, inner, span, chunks, count))
    if chunks == 1:
        return _Plan(first, perm)
    rr, i, tiles, span, _ = _col_tiles(outer, chunks, inner, sms, False)
    second = (_kernel(_cols_kernel, op, acc, identity, mean, rr, i), (tiles, 1), (chunks, inner, span, 1, count))
    return _Plan(first, perm, ((outer, chunks, inner), _PARTIAL[acc]), second)


_plans = {}


def _reduce(a, spec, op, res, fresh, mean=False):
    """res = the reduction of a over spec.dims; `fresh`: res is a new (contiguous) tensor."""
    compute = spec.compute
    if compute.is_complex:  # (re, im) pairs: backends/cuda/complex.py
        from vibetensor.backends.cuda import complex as cx
        return cx.reduce(a, spec, op, res, fresh, mean)
    x = a if a._dtype is compute or compute in _LOAD_CONVERTS else creation.to(a, compute, a._device)
    key = (x._dtype, compute, x._shape, x._stride, x._device, spec.dims, op, mean)
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) > 4096:
            _plans.clear()
        plan = _plans[key] = _plan(x, compute, spec.dims, op, mean)
    flat = res if fresh or res.is_contiguous() else empty(res._shape, res._dtype, res._device)
    plan.run(x, flat, spec.dims, op)
    if flat is not res:
        creation.copy_(res, flat)
    return res


def _register(name, op, mean=False):
    o = getattr(r, name)

    if op == SUM or op == PROD:
        def kernel(a, dim=None, keepdim=False, dtype=None, out=None):
            spec = o.meta(a, dim, keepdim, dtype, out)
            res = output(name, out, spec.shape, spec.dtype, spec.device)
            _reduce(a, spec, op, res, out is None, mean)
            if out is not None:
                bump_version(res)
            return res
    else:
        def kernel(a, dim=None, keepdim=False, out=None):
            spec = o.meta(a, dim, keepdim, out)
            res = output(name, out, spec.shape, spec.dtype, spec.device)
            _reduce(a, spec, op, res, out is None)
            if out is not None:
                bump_version(res)
            return res
    o.register(CUDA, planned(kernel))  # (a replay skips meta and _Plan.run's Python too)


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
        if a._dtype.is_complex:  # torch: the variances of the real and the imaginary parts, added
            return _complex_var(name, spec, a, correction, keepdim, out, sqrt, with_mean)
        var, mean = _moments(a, spec.dims, correction, keepdim)
        stat = ew.sqrt(var) if sqrt else var
        if not with_mean:
            return _store(name, out, spec, stat)
        return _store(name, None, spec, stat), _store(name, None, spec, mean, a._dtype)
    o.register(CUDA, kernel)


def _complex_var(name, spec, a, correction, keepdim, out, sqrt, with_mean):
    from vibetensor.backends.cuda import complex as cx
    var = ew.add(*(r.var(part, spec.dims, correction, keepdim) for part in cx.parts(a)))
    stat = ew.sqrt(var) if sqrt else var
    if not with_mean:
        return _store(name, out, spec, stat)
    return _store(name, None, spec, stat), r.mean(a, spec.dims, keepdim, None)


def _logsumexp(a, dim, keepdim=False, out=None):
    spec = r.logsumexp.meta(a, dim, keepdim, out)
    x = a if a._dtype is spec.dtype else creation.to(a, spec.dtype, a._device)
    dims = spec.dims
    if x.numel() == 0:
        return _store("logsumexp", out, spec, ew.log(r.sum(ew.exp(x), dims, keepdim, None)))
    # shift by the max; an infinite max shifts by 0 so inf - inf never makes NaN
    shift = r.amax(_real_part(x), dims, True)  # (complex: of the real parts, as torch)
    shift = ew.where(ew.isinf(shift), 0, shift)
    total = ew.log(r.sum(ew.exp(ew.sub(x, shift)), dims, keepdim, None))
    return _store("logsumexp", out, spec, ew.add(total, shift if keepdim else views.reshape(shift, total._shape)))


def _real_part(x):
    from vibetensor.backends.cuda import complex as cx
    return cx.parts(x)[0] if x._dtype.is_complex else x


def _vector_norm(a, ord=2, dim=None, keepdim=False, dtype=None, out=None):
    spec = r.vector_norm.meta(a, ord, dim, keepdim, dtype, out)
    x = a if a._dtype is spec.compute else creation.to(a, spec.compute, a._device)
    mag, dims = ew.abs(x if x._dtype.is_complex else _acc_float(x)), spec.dims  # (|z| is real)
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

