"""CUDA kernels of the scans: cumsum, cumprod, cummax, cummin, logcumsumexp.

Every scan runs along the rows of a contiguous (rows, cols) matrix: the input with the scan dim moved
last. A program scans an (R, BLOCK) tile (R rows of one BLOCK-wide chunk) with tl.associative_scan.
A row longer than one block takes three steps: each chunk's total, an inclusive scan of those totals
along the row (the same code, recursively), then a scan of each chunk starting from the total of the
chunks before it. So no length is too long, and a long row keeps many programs busy.

As torch's CUDA scans, sums and products accumulate in float32 for float32 (float64 for float64)
and in int64 for integers. Half types: along a dim that is neither the last nor the only one of
more than one element, torch walks each column sequentially, rounding every partial result to the
half type; `_outer_kernel` does exactly that (the same bits, so gradients built from scans match
too). Elsewhere torch's tree and cub scans round their partials in orders of their own: there half
types accumulate in float32 and round each output once (the more accurate result). cummax/cummin carry
(value, index) pairs combined as torch's scan_with_indices: the later element wins ties, and a NaN
wins from where it appears until the next NaN. logcumsumexp combines with torch's
_log_add_exp_helper. reverse=True scans from the end by reading and writing the row backwards.
"""
import math

import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, views
from vibetensor.ops import scans as s
from vibetensor.ops.meta import bump_version, output
from vibetensor.ops.sorting import return_types
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import empty

CUDA = DispatchKey.CUDA
SUM, PROD, MAX, MIN, LSE = 0, 1, 2, 3, 4
MAX_BLOCK = 1024  # the widest chunk of a row one program scans
TILE = 1024       # elements per program: R rows x BLOCK columns


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _log_add_exp(a, b):
    """torch's _log_add_exp_helper: a NaN propagates; equal infinities give themselves (no inf - inf)."""
    a_nan = a != a
    b_nan = b != b
    lo = tl.where(b_nan, b, tl.where(a_nan, a, tl.minimum(a, b)))
    hi = tl.where(b_nan, b, tl.where(a_nan, a, tl.maximum(a, b)))
    r = libdevice.log1p(libdevice.exp(lo - hi)) + hi
    return tl.where((lo != hi) | (tl.abs(lo) != float("inf")), r, a)


@triton.jit
def _max_pair(v1, i1, v2, i2):
    # (v1, i1) comes first: the later one wins if it is a NaN, or >= a non-NaN
    right = (v2 != v2) | ((v1 == v1) & (v2 >= v1))
    return tl.where(right, v2, v1), tl.where(right, i2, i1)


@triton.jit
def _min_pair(v1, i1, v2, i2):
    right = (v2 != v2) | ((v1 == v1) & (v2 <= v1))
    return tl.where(right, v2, v1), tl.where(right, i2, i1)


@triton.jit(do_not_specialize=["rows", "cols", "chunks", "reverse"])
def _scan_kernel(x_ptr, xi_ptr, carry_ptr, carry_i_ptr, out_ptr, out_i_ptr, rows, cols, chunks, reverse,
                 OP: tl.constexpr, ACC: tl.constexpr, PAIR_IN: tl.constexpr, TOTALS: tl.constexpr,
                 R: tl.constexpr, BLOCK: tl.constexpr):
    """Inclusive scan of chunk c of rows [rb*R, rb*R + R) of the (rows, cols) x (program rb*chunks + c).
    Logical position j of a row is column j (cols-1-j when `reverse`). A chunk c > 0 starts from
    carry[row, c - 1], the scan of the chunks before it. PAIR_IN: the (value, index) pairs of a
    cummax/cummin come from x and xi (else index = position). TOTALS: write only each row's last
    scanned value to out[row, c] (the chunk totals, in ACC)."""
    pid = tl.program_id(0).to(tl.int64)
    rb = pid // chunks
    c = pid % chunks
    row = rb * R + tl.arange(0, R)[:, None]                     # (R, 1)
    lane = tl.arange(0, BLOCK)[None, :]                         # (1, BLOCK)
    j = c * BLOCK + lane                                        # (1, BLOCK) logical positions
    m = (row < rows) & (j < cols)                               # (R, BLOCK)
    col = tl.where(reverse != 0, cols - 1 - j, j)
    offs = row * cols + col
    # lanes past the end come after every valid one, so their value never reaches a valid output
    v = tl.load(x_ptr + offs, mask=m, other=0).to(ACC)
    has_carry = (row < rows) & (c > 0) & (TOTALS == 0)          # (R, 1): totals are the chunk's own
    carry_offs = row * chunks + c - 1
    if OP == 2 or OP == 3:
        if PAIR_IN:
            idx = tl.load(xi_ptr + offs, mask=m, other=0)
        else:
            idx = j + tl.zeros((R, BLOCK), tl.int64)
        cv = tl.load(carry_ptr + carry_offs, mask=has_carry, other=0).to(ACC)
        ci = tl.load(carry_i_ptr + carry_offs, mask=has_carry, other=0)
        if OP == 2:
            v, idx = tl.associative_scan((v, idx), 1, _max_pair)
            wv, wi = _max_pair(cv, ci, v, idx)
        else:
            v, idx = tl.associative_scan((v, idx), 1, _min_pair)
            wv, wi = _min_pair(cv, ci, v, idx)
        v = tl.where(has_carry, wv, v)
        idx = tl.where(has_carry, wi, idx)
    else:
        cv = tl.load(carry_ptr + carry_offs, mask=has_carry, other=0).to(ACC)
        if OP == 0:
            v = tl.associative_scan(v, 1, _add)
            w = cv + v
        elif OP == 1:
            v = tl.associative_scan(v, 1, _mul)
            w = cv * v
        else:
            v = tl.associative_scan(v, 1, _log_add_exp)
            w = _log_add_exp(cv, v)
        v = tl.where(has_carry, w, v)
    if TOTALS:
        last = tl.minimum(cols - c * BLOCK, BLOCK) - 1
        sel = (row < rows) & (lane == last)
        total_offs = row * chunks + c + lane * 0
        tl.store(out_ptr + total_offs, v.to(out_ptr.dtype.element_ty), mask=sel)
        if OP == 2 or OP == 3:
            tl.store(out_i_ptr + total_offs, idx, mask=sel)
    else:
        tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=m)
        if OP == 2 or OP == 3:
            tl.store(out_i_ptr + offs, idx, mask=m)


@triton.jit(do_not_specialize=["columns", "C", "inner", "reverse"])
def _outer_kernel(x_ptr, out_ptr, columns, C, inner, reverse, OP: tl.constexpr, HALF: tl.constexpr,
                  BLOCK: tl.constexpr):
    """torch's tensor_kernel_scan_outer_dim for a half type: the contiguous x seen as (outer, C, inner),
    one lane per (o, i) column walking its C elements in order (from the end when `reverse`), the
    running sum or product rounded to HALF after every step."""
    col = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = col < columns
    o = col // inner
    base = o * C * inner + (col - o * inner)
    if OP == 0:
        acc = tl.zeros((BLOCK,), tl.float32)
    else:
        acc = tl.full((BLOCK,), 1.0, tl.float32)
    for c in range(0, C):
        offs = base + tl.where(reverse != 0, C - 1 - c, c).to(tl.int64) * inner
        v = tl.load(x_ptr + offs, mask=m, other=0).to(tl.float32)
        if OP == 0:
            acc = (acc + v).to(HALF).to(tl.float32)
        else:
            acc = (acc * v).to(HALF).to(tl.float32)
        tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=m)


_HALF = (dt.float16, dt.bfloat16)
_TL_HALF = {dt.float16: tl.float16, dt.bfloat16: tl.bfloat16}
OUTER_BLOCK = 128  # columns per program of _outer_kernel
_ACC_DTYPE = {tl.float32: dt.float32, tl.float64: dt.float64, tl.int64: dt.int64}
_kernels = {}


def acc_of(dtype):
    """The Triton type a scan accumulates (and compares) in."""
    if dtype.is_floating_point:
        return tl.float64 if dtype is dt.float64 else tl.float32
    return tl.int64


def _kernel(op, acc, pair_in, totals, r, block):
    key = (op, acc, pair_in, totals, r, block)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_scan_kernel, OP=op, ACC=acc, PAIR_IN=pair_in, TOTALS=totals,
                                            R=r, BLOCK=block)
    return k


def cdiv(a, b):
    """ceil(a / b) (triton.cdiv is a constexpr function: slow to call from the host)."""
    return -(-a // b)


def block_of(n, widest=None):
    """The chunk width for rows of n elements: 32, 256 or 1024 (at most `widest`, MAX_BLOCK by
    default). Few widths keep the number of compiled variants small."""
    return min(widest or MAX_BLOCK, 32 if n <= 32 else 256 if n <= 256 else 1024)


def scan_rows(op, x, xi, out, out_i, rows, cols, reverse=0):
    """out = the inclusive scan of each row of the contiguous (rows, cols) x ((value, index) pairs
    x, xi -> out, out_i for MAX/MIN; xi None: index = position). out may be x (in place)."""
    acc = acc_of(x._dtype)
    pair = op in (MAX, MIN)
    block = block_of(cols)
    r = TILE // block
    chunks = cdiv(cols, block)
    grid = (cdiv(rows, r) * chunks,)
    xi_arg = x if xi is None else xi
    carry, carry_i = x, (out_i if pair else x)  # placeholders: a single chunk reads no carry
    if chunks > 1:  # chunk totals, then their scan along the row (in place)
        carry = empty((rows, chunks), _ACC_DTYPE[acc], x._device)
        carry_i = empty((rows, chunks), dt.int64, x._device) if pair else carry
        _kernel(op, acc, xi is not None, True, r, block)(grid, x, xi_arg, x, carry_i, carry, carry_i,
                                                          rows, cols, chunks, reverse)
        scan_rows(op, carry, carry_i if pair else None, carry, carry_i if pair else None, rows, chunks)
    _kernel(op, acc, xi is not None, False, r, block)(grid, x, xi_arg, carry, carry_i, out,
                                                       out_i if pair else x, rows, cols, chunks, reverse)


# -- layout: the scan dim last -------------------------------------------------------------------------------

def move_last(t, d):
    """The view of t with dim d last."""
    return views.permute(t, tuple(i for i in range(t.ndim) if i != d) + (d,))


def rows_of(a, d):
    """(x, rows, cols): a with dim d moved last and made contiguous (a 0-d tensor is one row of one)."""
    if a.ndim == 0:
        return a, 1, 1
    x = a if d == a.ndim - 1 else move_last(a, d)
    cols = a._shape[d]
    return (x if x.is_contiguous() else creation.contiguous(x)), (a.numel() // cols if cols else 0), cols


def dense_of(res, d, avoid=None):
    """(buffer, target): a contiguous buffer laid out as `res` with dim d last, and the view of res it
    must be copied into afterwards (None when the buffer is res itself). A result sharing memory with
    `avoid` (an input the kernel still reads) gets a buffer of its own."""
    moved = res if res.ndim == 0 or d == res.ndim - 1 else move_last(res, d)
    if moved.is_contiguous() and (avoid is None or res._storage is not avoid._storage):
        return moved, None
    return empty(moved._shape, res._dtype, res._device), moved


def finish(*pairs):
    """Copy each (buffer, target) of dense_of into its target."""
    for buf, target in pairs:
        if target is not None:
            creation.copy_(target, buf)


def done(out, *results):
    if out is not None:
        for t in results:
            bump_version(t)


# -- the ops ------------------------------------------------------------------------------------------------

def _widens(src, dst):
    """The kernel may load src and widen it to dst itself (exactly what converting first would give)."""
    if src.category < 2:
        return dst is dt.int64
    return (src in _HALF and dst is dt.float32) or (src.is_floating_point and dst is dt.float64)


def _scan(name, op, a, d, compute, values, indices=None, reverse=False):
    """Write the scan of a along d (converted to `compute` first) into values (and indices)."""
    if compute.is_complex:  # (re, im) pairs: backends/cuda/complex_scan.py
        from vibetensor.backends.cuda import complex_scan
        return complex_scan.scan(name, op, a, d, compute, values, reverse)
    if a.numel() == 0:
        return
    src = a if a._dtype is compute or _widens(a._dtype, compute) else creation.to(a, compute, a._device)
    if op in (SUM, PROD) and compute in _HALF and _walks_columns(a, d):
        return _outer_scan(op, src, d, compute, values, reverse)
    x, rows, cols = rows_of(src, d)
    v = dense_of(values, d)
    i = dense_of(indices, d) if indices is not None else (None, None)
    scan_rows(op, x, None, v[0], i[0], rows, cols, int(bool(reverse)))
    finish(v, i)


def _walks_columns(a, d):
    """Does torch's CUDA scan of a along d take its sequential outer-dim kernel (not the last dim, and
    not the only dim of more than one element, which goes to cub)?"""
    return a.ndim > 1 and d != a.ndim - 1 and a.numel() != a._shape[d]


def _outer_scan(op, x, d, half, values, reverse):
    """values = the scan of x along d by torch's outer-dim kernel (see _outer_kernel)."""
    x = creation.contiguous(x)
    shape = x._shape
    C, inner = shape[d], math.prod(shape[d + 1:])
    columns = x.numel() // C
    buf = values if values.is_contiguous() and values._storage is not x._storage else \
        empty(values._shape, values._dtype, values._device)
    launcher.cached_kernel(_outer_kernel, OP=op, HALF=_TL_HALF[half], BLOCK=OUTER_BLOCK)(
        (cdiv(columns, OUTER_BLOCK),), x, buf, columns, C, inner, int(bool(reverse)))
    if buf is not values:
        creation.copy_(values, buf)


def _cumulative(op, scan_op):
    name = op.name.split("::")[-1]

    def kernel(a, dim, dtype=None, reverse=False, out=None):
        spec = op.meta(a, dim, dtype, reverse, out)
        res = output(name, out, spec.shape, spec.dtype, spec.device)
        _scan(name, scan_op, a, spec.dim, spec.compute, res, reverse=reverse)
        done(out, res)
        return res
    op.register(CUDA, kernel)


def _cummaxmin(op, scan_op):
    name = op.name.split("::")[-1]

    def kernel(a, dim, out=None):
        spec = op.meta(a, dim, out)
        if a._dtype is dt.uint64 and a.ndim and a.numel():  # compared as int64, values >= 2**63 misorder
            raise NotImplementedError(f"{name}: uint64 tensors are not supported on CUDA")
        values_out, indices_out = s.out_pair(name, out)
        values = output(name, values_out, spec.shape, a._dtype, spec.device)
        indices = output(name, indices_out, spec.shape, dt.int64, spec.device)
        if a.ndim == 0 and a.numel():  # one element: itself, at index 0 (complex too, as torch)
            creation.copy_(values, a)
            creation.copy_(indices, creation.full((), 0, dt.int64, device=a._device))
        else:
            _scan(name, scan_op, a, spec.dim, a._dtype, values, indices)
        done(out, values, indices)
        return getattr(return_types, name)(values, indices)
    op.register(CUDA, kernel)


def _logcumsumexp(a, dim, reverse=False, out=None):
    spec = s.logcumsumexp.meta(a, dim, reverse, out)
    res = output("logcumsumexp", out, spec.shape, spec.dtype, spec.device)
    _scan("logcumsumexp", LSE, a, spec.dim, a._dtype, res, reverse=reverse)
    done(out, res)
    return res


_cumulative(s.cumsum, SUM)
_cumulative(s.cumprod, PROD)
_cummaxmin(s.cummax, MAX)
_cummaxmin(s.cummin, MIN)
s.logcumsumexp.register(CUDA, _logcumsumexp)
