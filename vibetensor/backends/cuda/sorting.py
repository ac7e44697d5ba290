"""CUDA kernels of the order statistics: sort (argsort, msort), topk, kthvalue, median / nanmedian
(whole tensor and along a dim), mode.

Everything starts from one stable sort of each row of a contiguous (rows, n) matrix (the input with
the op's dim moved last; backends/cuda/scan.rows_of). A first pass turns each element into an int64
key whose signed order is torch's: -0.0 equals 0.0, every NaN is the greatest value, and a descending
sort flips the bits (~key); ties are broken by position, so the sort is stable in both directions
(torch's stable order; a valid order where its unstable sort leaves ties unspecified). Then:

  rows of n <= SORT_BLOCK: one program sorts an (R, BLOCK) tile in registers (a bitonic network of
      compare-and-swap steps over (key, position) pairs, as Triton's tl.sort but carrying positions);
  longer rows: blocks of SORT_BLOCK are sorted that way, then merge passes double the sorted run
      width: each element's place in the merged run is its place in its own run plus the number of
      elements of the partner run ordered before it (a binary search).
The last pass writes the positions of the first `kout` elements of each row (topk), and a gather
reads their values from the input (exact bits). Only the key and gather passes depend on the dtype,
so the big sorting kernels compile once. kthvalue, median and mode read their element off the
sorted rows.
"""
import numpy as np
import triton
import triton.language as tl

from vibetensor.backends.cuda.scan import block_of, cdiv, dense_of, done, finish, rows_of
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, views
from vibetensor.ops import sorting as s
from vibetensor.ops.meta import output
from vibetensor.ops.scans import out_pair
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
SORT_BLOCK = 256    # the longest row one program sorts in registers
TILE = 1024         # elements per sorting program: R rows x BLOCK
LOG_TILE = 10
MERGE_BLOCK = 1024  # elements per merging program
ELEMENTS = 1024     # elements per program of the elementwise passes
INT, FLOAT32, FLOAT64 = 0, 1, 2  # how values become keys


@triton.jit
def _key(v, descending, KIND: tl.constexpr):
    """An int64 whose signed order is torch's sort order of v (~ of it when descending)."""
    if KIND == 0:
        k = v.to(tl.int64)
    elif KIND == 1:  # float32, and the half types widened to it exactly
        f = v.to(tl.float32)
        b = f.to(tl.int32, bitcast=True)
        b = tl.where(f == 0, 0, b)                       # -0.0 == 0.0
        b = tl.where(b < 0, b ^ 0x7FFFFFFF, b)           # negative floats: larger magnitude, smaller key
        b = tl.where(f != f, 0x7FFFFFFF, b)              # every NaN above +inf
        k = b.to(tl.int64)
    else:
        f = v.to(tl.float64)
        b = f.to(tl.int64, bitcast=True)
        b = tl.where(f == 0, 0, b)
        b = tl.where(b < 0, b ^ 0x7FFFFFFFFFFFFFFF, b)
        k = tl.where(f != f, 0x7FFFFFFFFFFFFFFF, b)
    return tl.where(descending != 0, ~k, k)


@triton.jit
def _indicator(N_DIMS: tl.constexpr, J: tl.constexpr):
    """0, 1 along hypercube dim J (counted from the innermost), broadcastable to [2] * N_DIMS."""
    return tl.reshape(tl.arange(0, 2), [1] * (N_DIMS - J - 1) + [2] + [1] * J)


@triton.jit
def _compare_swap(k, i, flip, J: tl.constexpr, N_DIMS: tl.constexpr):
    """One bitonic step along hypercube dim J: each (key, position) pair meets its partner and the two
    are put in order (reversed where flip is 1)."""
    pk = k ^ tl.xor_sum(k, N_DIMS - 1 - J, True)
    pi = i ^ tl.xor_sum(i, N_DIMS - 1 - J, True)
    greater = (k > pk) | ((k == pk) & (i > pi))
    swap = greater != (flip ^ _indicator(N_DIMS, J))
    return tl.where(swap, pk, k), tl.where(swap, pi, i)


@triton.jit
def _bitonic_sort(k, i, LOG_B: tl.constexpr, N_DIMS: tl.constexpr):
    """Sort the (key, position) pairs of each row of an (R, 2**LOG_B) tile of 2**N_DIMS elements."""
    hk = tl.reshape(k, [2] * N_DIMS)
    hi = tl.reshape(i, [2] * N_DIMS)
    for stage in tl.static_range(1, LOG_B + 1):
        if stage < LOG_B:  # bitonic sequences: alternate directions
            flip = _indicator(N_DIMS, stage)
        else:  # the last merge: ascending everywhere
            flip = _indicator(N_DIMS, 0) * 0
        for step in tl.static_range(stage):
            hk, hi = _compare_swap(hk, hi, flip, stage - 1 - step, N_DIMS)
    return tl.reshape(hk, k.shape), tl.reshape(hi, i.shape)


@triton.jit(do_not_specialize=["total", "descending"])
def _key_kernel(x_ptr, key_ptr, total, descending, KIND: tl.constexpr, BLOCK: tl.constexpr):
    """key = _key(x) elementwise: the only pass besides _take_kernel that knows the dtype, so the big
    sorting kernels compile once for all dtypes."""
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = e < total
    tl.store(key_ptr + e, _key(tl.load(x_ptr + e, mask=m, other=0), descending, KIND), mask=m)


@triton.jit(do_not_specialize=["total", "n", "kout"])
def _take_kernel(x_ptr, pos_ptr, out_ptr, total, n, kout, BLOCK: tl.constexpr):
    """out[row, j] = x[row, pos[row, j]] for the (rows, kout) pos and out (total = rows * kout)."""
    e = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = e < total
    row = e // kout
    p = tl.load(pos_ptr + e, mask=m, other=0)
    tl.store(out_ptr + e, tl.load(x_ptr + row * n + p, mask=m), mask=m)


@triton.jit(do_not_specialize=["rows", "n", "kout"])
def _block_sort_kernel(key_ptr, pos_out, key_out, rows, n, kout, FINAL: tl.constexpr, R: tl.constexpr,
                       BLOCK: tl.constexpr, LOG_B: tl.constexpr, N_DIMS: tl.constexpr):
    """Sort block b of rows [rb*R, rb*R + R) of the (rows, n) keys (program rb * blocks + b). FINAL
    (one block per row): write the first kout positions of each row to the (rows, kout) pos_out;
    else the sorted keys and positions to the (rows, n) key_out/pos_out, for the merge passes."""
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.cdiv(n, BLOCK)
    rb = pid // blocks
    b = pid % blocks
    row = rb * R + tl.arange(0, R)[:, None]                 # (R, 1)
    j = b * BLOCK + tl.arange(0, BLOCK)[None, :]            # (1, BLOCK)
    m = (row < rows) & (j < n)
    key = tl.load(key_ptr + row * n + j, mask=m, other=0x7FFFFFFFFFFFFFFF)  # padding sorts last
    pos = j + tl.zeros((R, BLOCK), tl.int64)
    key, pos = _bitonic_sort(key, pos, LOG_B, N_DIMS)
    if FINAL:
        tl.store(pos_out + row * kout + j, pos, mask=m & (j < kout))
    else:
        tl.store(key_out + row * n + j, key, mask=m)
        tl.store(pos_out + row * n + j, pos, mask=m)


@triton.jit(do_not_specialize=["rows", "n", "kout", "width", "steps"])
def _merge_kernel(key_ptr, pos_ptr, key_out, pos_out, rows, n, kout, width, steps,
                  FINAL: tl.constexpr, BLOCK: tl.constexpr):
    """Merge the sorted runs [2r*width, (2r+1)*width) and [(2r+1)*width, (2r+2)*width) of each row of
    the (rows, n) keys/positions. (key, position) pairs are all distinct, so an element's rank in the
    partner run is the count of partner pairs below it: `steps` rounds of binary search. FINAL: write
    the first kout positions of each row to the (rows, kout) pos_out."""
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.cdiv(n, BLOCK)
    row = pid // blocks
    p = (pid % blocks) * BLOCK + tl.arange(0, BLOCK)
    m = p < n
    base = row * n
    k = tl.load(key_ptr + base + p, mask=m, other=0)
    i = tl.load(pos_ptr + base + p, mask=m, other=0)
    run = p // width
    start = run * width
    partner = tl.where(run % 2 == 0, start + width, start - width)
    lo = tl.zeros((BLOCK,), tl.int64)
    hi = tl.maximum(tl.minimum(partner + width, n) - partner, 0)  # 0: no partner past the row's end
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        pk = tl.load(key_ptr + base + partner + mid, mask=m & active, other=0)
        pi = tl.load(pos_ptr + base + partner + mid, mask=m & active, other=0)
        below = (pk < k) | ((pk == k) & (pi < i))
        lo = tl.where(active & below, mid + 1, lo)
        hi = tl.where(active & (below == 0), mid, hi)
    dest = (run // 2) * (2 * width) + (p - start) + lo
    if FINAL:
        tl.store(pos_out + row * kout + dest, i, mask=m & (dest < kout))
    else:
        tl.store(key_out + base + dest, k, mask=m)
        tl.store(pos_out + base + dest, i, mask=m)


@triton.jit(do_not_specialize=["rows", "n", "k"])
def _pick_kernel(vals_ptr, idx_ptr, out_ptr, out_i_ptr, rows, n, k, WHICH: tl.constexpr, BLOCK: tl.constexpr):
    """From each ascending sorted row (NaNs last): the element at position k (WHICH 0) and, among the
    elements equal to it, the index of the first one (torch's CUDA kthvalue returns the smallest
    index holding the k-th value: measured on an H200); the median, the lower middle or, with NaNs,
    the first NaN (1); the lower middle of the non-NaN elements (2)."""
    row = tl.program_id(0).to(tl.int64)
    base = row * n
    if WHICH == 0:
        kv = tl.load(vals_ptr + base + k)
        first = tl.full((BLOCK,), n, tl.int64)
        for start in range(0, k + 1, BLOCK):  # the stable sort keeps ties in index order, up to position k
            offs = (start + tl.arange(0, BLOCK)).to(tl.int64)
            v = tl.load(vals_ptr + base + offs, mask=offs <= k, other=0)
            tie = (offs <= k) & ((v == kv) | ((v != v) & (kv != kv)))
            first = tl.minimum(first, tl.where(tie, offs, n))
        pos = tl.min(first, 0)
    else:
        nans = tl.zeros((BLOCK,), tl.int64)
        for start in range(0, n, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            f = tl.load(vals_ptr + base + offs, mask=offs < n, other=0).to(tl.float32)
            nans += (f != f).to(tl.int64)
        nan_count = tl.sum(nans, 0)
        if WHICH == 1:
            pos = tl.where(nan_count > 0, n - nan_count, (n - 1) // 2)
        else:
            pos = tl.maximum((n - nan_count - 1) // 2, 0)
    tl.store(out_ptr + row, tl.load(vals_ptr + base + pos))
    tl.store(out_i_ptr + row, tl.load(idx_ptr + base + pos))


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit(do_not_specialize=["rows", "n"])
def _mode_kernel(vals_ptr, idx_ptr, out_ptr, out_i_ptr, rows, n, CMP: tl.constexpr, BLOCK: tl.constexpr):
    """The most frequent value of each ascending sorted row: the first longest run of equal values
    (the smallest value among equally frequent ones; a NaN equals nothing), and the position of its
    run's last element. A run may cross blocks: the start of the open run is carried along."""
    row = tl.program_id(0).to(tl.int64)
    base = row * n
    lanes = tl.arange(0, BLOCK).to(tl.int64)
    best = row * 0
    best_pos = row * 0
    carry = row * 0
    for start in range(0, n, BLOCK):
        p = start + lanes
        m = p < n
        v = tl.load(vals_ptr + base + p, mask=m, other=0).to(CMP)
        prev = tl.load(vals_ptr + base + p - 1, mask=m & (p > 0), other=0).to(CMP)
        nxt = tl.load(vals_ptr + base + p + 1, mask=(p + 1) < n, other=0).to(CMP)
        starts = m & ((p == 0) | (v != prev))
        ends = m & ((p == n - 1) | (v != nxt))
        run_start = tl.associative_scan(tl.where(starts, p, carry), 0, _max)
        count = tl.where(ends, p - run_start + 1, 0)
        top = tl.max(count, 0)
        at = tl.min(tl.where(count == top, p, n), 0)
        best_pos = tl.where(top > best, at, best_pos)
        best = tl.maximum(best, top)
        carry = tl.max(run_start, 0)
    tl.store(out_ptr + row, tl.load(vals_ptr + base + best_pos))
    tl.store(out_i_ptr + row, tl.load(idx_ptr + base + best_pos))


# -- launching ---------------------------------------------------------------------------------------------

_kernels = {}


def _cached(key, make):
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = make()
    return k


def _block_kernel(final, block):
    log_b = block.bit_length() - 1
    return _cached(("block", final, block), lambda: launcher.Kernel(
        _block_sort_kernel, FINAL=final, R=TILE // block, BLOCK=block, LOG_B=log_b, N_DIMS=LOG_TILE))


def _merge(final):
    return _cached(("merge", final), lambda: launcher.Kernel(_merge_kernel, FINAL=final, BLOCK=MERGE_BLOCK))


def _key_kind(dtype):
    if dtype.is_complex or dtype is dt.uint64:  # (uint64 keys would need unsigned order)
        raise NotImplementedError(f"sorting {dtype} tensors is not supported on CUDA")
    if not dtype.is_floating_point:
        return INT
    return FLOAT64 if dtype is dt.float64 else FLOAT32


def sort_positions(x, rows, n, descending, idx, kout):
    """The positions of the first kout elements of each row of the contiguous (rows, n) x in stable
    sorted order (equal elements keep their order), into the contiguous (rows, kout) idx."""
    kind = _key_kind(x._dtype)
    keys = empty((rows, n), dt.int64, x._device)
    total = rows * n
    _cached(("key", kind), lambda: launcher.Kernel(_key_kernel, KIND=kind, BLOCK=ELEMENTS))(
        (cdiv(total, ELEMENTS),), x, keys, total, int(bool(descending)))
    if n <= SORT_BLOCK:
        block = block_of(n, SORT_BLOCK)
        _block_kernel(True, block)((cdiv(rows, TILE // block),), keys, idx, keys, rows, n, kout)
        return
    pos = empty((rows, n), dt.int64, x._device)
    _block_kernel(False, SORT_BLOCK)((rows * cdiv(n, SORT_BLOCK),), keys, pos, keys, rows, n, kout)
    keys2, pos2 = empty((rows, n), dt.int64, x._device), empty((rows, n), dt.int64, x._device)
    grid = (rows * cdiv(n, MERGE_BLOCK),)
    width = SORT_BLOCK
    while width < n:
        steps = width.bit_length()  # binary search over 0..width
        if 2 * width >= n:  # the last pass writes the results
            _merge(True)(grid, keys, pos, keys, idx, rows, n, kout, width, steps)
        else:
            _merge(False)(grid, keys, pos, keys2, pos2, rows, n, kout, width, steps)
            keys, pos, keys2, pos2 = keys2, pos2, keys, pos
        width *= 2


def take_rows(x, n, idx, vals, kout):
    """vals[row, j] = x[row, idx[row, j]]: the contiguous (rows, n) x at the (rows, kout) positions."""
    total = idx.numel()
    _cached(("take",), lambda: launcher.Kernel(_take_kernel, BLOCK=ELEMENTS))(
        (cdiv(total, ELEMENTS),), x, idx, vals, total, n, kout)


def sort_rows(x, rows, n, descending, vals, idx, kout):
    """The first kout elements of each row of the contiguous (rows, n) x, sorted stably, into the
    contiguous (rows, kout) vals and their positions into idx."""
    sort_positions(x, rows, n, descending, idx, kout)
    take_rows(x, n, idx, vals, kout)


def _sorted(a, d, descending, values, indices, kout):
    """values, indices (a's shape with kout along d) = the first kout elements of a sorted along d."""
    if values.numel() == 0:
        return
    x, rows, n = rows_of(a, d)
    v = dense_of(values, d, avoid=a)
    i = dense_of(indices, d, avoid=a)
    sort_rows(x, rows, n, descending, v[0], i[0], kout)
    finish(v, i)


def _pair(name, out, shape, a):
    """The (values, indices) results: new, or out=(values, indices) checked."""
    values_out, indices_out = out_pair(name, out)
    return (output(name, values_out, shape, a._dtype, a._device),
            output(name, indices_out, shape, dt.int64, a._device))


def _flat_out(t, a):
    """(buffer, target): t as a contiguous buffer of its elements in row order (see dense_of)."""
    if t.is_contiguous() and t._storage is not a._storage:
        return t, None
    return empty(t._shape, t._dtype, t._device), t


def _sorted_rows(a, d):
    """(values, positions, rows, n): every row of a along d sorted ascending, as (rows, n) tensors."""
    x, rows, n = rows_of(a, d)
    vals, pos = empty((rows, n), a._dtype, a._device), empty((rows, n), dt.int64, a._device)
    sort_rows(x, rows, n, False, vals, pos, n)
    return vals, pos, rows, n


PICK, MEDIAN, NANMEDIAN = 0, 1, 2
_CMP = {dt.float64: tl.float64}


def _select(a, d, values, indices, which, k=0):
    """values, indices (one element per row along d) = the element picked off each sorted row:
    position k (PICK), the median (MEDIAN, NANMEDIAN), or the mode (None)."""
    if values.numel() == 0:
        return
    if a.ndim == 0:  # one element: itself, at index 0 (bool and complex too, as torch)
        creation.copy_(values, a)
        creation.copy_(indices, creation.full((), 0, dt.int64, device=a._device))
        return
    vals, pos, rows, n = _sorted_rows(a, d)
    v, i = _flat_out(values, a), _flat_out(indices, a)
    if which is None:
        cmp = _CMP.get(a._dtype, tl.float32) if a._dtype.is_floating_point else tl.int64
        kernel = _cached(("mode", cmp), lambda: launcher.Kernel(_mode_kernel, CMP=cmp, BLOCK=1024))
        kernel((rows,), vals, pos, v[0], i[0], rows, n)
    else:
        kernel = _cached(("pick", which), lambda: launcher.Kernel(_pick_kernel, WHICH=which, BLOCK=1024))
        kernel((rows,), vals, pos, v[0], i[0], rows, n, k)
    finish(v, i)


# -- the ops ------------------------------------------------------------------------------------------------

def _sort(a, dim=-1, descending=False, stable=False, out=None):
    spec = s.sort.meta(a, dim, descending, stable, out)
    values, indices = _pair("sort", out, spec.shape, a)
    _sorted(a, spec.dim, descending, values, indices, spec.shape[spec.dim] if spec.shape else 1)
    done(out, values, indices)
    return s.return_types.sort(values, indices)


def _topk(a, k, dim=-1, largest=True, sorted=True, out=None):
    spec = s.topk.meta(a, k, dim, largest, sorted, out)
    values, indices = _pair("topk", out, spec.shape, a)
    _sorted(a, spec.dim, largest, values, indices, k)
    done(out, values, indices)
    return s.return_types.topk(values, indices)


def _kthvalue(a, k, dim=-1, keepdim=False, out=None):
    spec = s.kthvalue.meta(a, k, dim, keepdim, out)
    values, indices = _pair("kthvalue", out, spec.shape, a)
    _select(a, spec.dim, values, indices, PICK, k - 1)
    done(out, values, indices)
    return s.return_types.kthvalue(values, indices)


def _by_dim(name, op, which):
    def kernel(a, dim=-1, keepdim=False, out=None):
        spec = op.meta(a, dim, keepdim, out)
        values, indices = _pair(name, out, spec.shape, a)
        _select(a, spec.dim, values, indices, which)
        done(out, values, indices)
        return getattr(s.return_types, name)(values, indices)
    op.register(CUDA, kernel)


def _whole(name, op, which):
    """median()/nanmedian() of all elements: the median of one row of them."""
    def kernel(a, out=None):
        spec = op.meta(a)
        res = output(name, out, spec.shape, spec.dtype, spec.device)
        if a.numel() == 0:  # NaN, cast to the dtype as torch's fill_ does
            fill = float("nan") if a._dtype.category >= 2 else np.array(np.nan).astype(a._dtype.np).item()
            creation.copy_(res, creation.full((), fill, a._dtype, device=a._device))
        else:
            flat = views.reshape(a, (1, a.numel()))
            _select(flat, 1, views.reshape(res, (1,)), empty((1,), dt.int64, a._device), which)
        done(out, res)
        return res
    op.register(CUDA, kernel)


s.sort.register(CUDA, _sort)
s.topk.register(CUDA, _topk)
s.kthvalue.register(CUDA, _kthvalue)
_by_dim("median", s.median_dim, MEDIAN)
_by_dim("nanmedian", s.nanmedian_dim, NANMEDIAN)
_by_dim("mode", s.mode, None)
_whole("median", s.median, MEDIAN)
_whole("nanmedian", s.nanmedian, NANMEDIAN)
