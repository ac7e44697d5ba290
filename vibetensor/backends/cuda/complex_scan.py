"""CUDA scans of complex64 / complex128 tensors: cumsum, cumprod, logcumsumexp (scan.py routes them here).

cumsum adds the real and the imaginary parts independently: it is scan.py's real cumsum of the (re, im)
pairs (view_as_real) along the same dim. cumprod and logcumsumexp combine whole complex numbers, with c10's
product (as torch's CUDA scan with std::multiplies) or torch's complex _log_add_exp_helper. Each program
walks a span of columns of R rows in order, one row per lane (the combine appears once in the code:
logaddexp's is large, and a tree scan inlining it at every level takes minutes to compile); as in
scan.py, a row longer than one span is scanned span by span, each starting from the scan of the span
totals before it.
"""
import triton
import triton.language as tl

from vibetensor.backends.cuda import complex_math as cm
from vibetensor.backends.cuda import scan as sc
from vibetensor.backends.cuda.complex import floats, pairs
from vibetensor.ops import creation
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import alias, empty


@triton.jit
def _mul(ar, ai, br, bi):
    """c10's complex product (no special-value recovery)."""
    return ar * br - ai * bi, ar * bi + ai * br


@triton.jit
def _log_add_exp(ar, ai, br, bi):
    return cm.clogaddexp(ar, ai, br, bi)


@triton.jit(do_not_specialize=["rows", "cols", "chunks", "span", "reverse", "fold"])
def _cscan_kernel(x_ptr, carry_ptr, out_ptr, rows, cols, chunks, span, reverse, fold, OP: tl.constexpr,
                  ACC: tl.constexpr, TOTALS: tl.constexpr, R: tl.constexpr):
    """Inclusive scan of columns [c*span, c*span + span) of rows [rb*R, rb*R + R) of the contiguous complex
    (rows, cols) x (program rb*chunks + c); x_ptr, carry_ptr and out_ptr are float views of complex tensors.
    Logical position j of a row is column j (cols-1-j when `reverse`). A chunk c > 0 starts from
    carry[row, c - 1]. TOTALS: write only each row's scan of its chunk to out[row, c]. fold: a row's first
    element is combined with the identity (1 or -inf), as torch's scans do (so (x + i inf) * 1 is NaN + i inf,
    and an element with real part -inf starts logcumsumexp at -inf + 0i); not in scans of chunk totals."""
    pid = tl.program_id(0).to(tl.int64)
    rb = pid // chunks
    c = pid % chunks
    row = rb * R + tl.arange(0, R)                              # (R,)
    live = row < rows
    started = live & (c > 0) & (TOTALS == 0)                    # rows that start from a carry
    carry_offs = (row * chunks + c - 1) * 2
    if OP == 1:
        identity = 1.0
    else:
        identity = float("-inf")
    ar = tl.load(carry_ptr + carry_offs, mask=started, other=identity).to(ACC)
    ai = tl.load(carry_ptr + carry_offs + 1, mask=started, other=0).to(ACC)
    for t in range(0, span):
        j = c * span + t
        m = live & (j < cols)
        col = tl.where(reverse != 0, cols - 1 - j, j)
        offs = (row * cols + col) * 2
        vr = tl.load(x_ptr + offs, mask=m, other=0).to(ACC)
        vi = tl.load(x_ptr + offs + 1, mask=m, other=0).to(ACC)
        # combine(running, element); the first element as torch's combine(element, identity)
        pr = tl.where(started, ar, vr)
        pi = tl.where(started, ai, vi)
        qr = tl.where(started, vr, ar)
        qi = tl.where(started, vi, ai)
        if OP == 1:
            wr, wi = _mul(pr, pi, qr, qi)
        else:
            wr, wi = _log_add_exp(pr, pi, qr, qi)
        as_is = ~started & ((fold == 0) | (c > 0))
        ar = tl.where(m, tl.where(as_is, vr, wr), ar)
        ai = tl.where(m, tl.where(as_is, vi, wi), ai)
        started = started | m
        if not TOTALS:
            tl.store(out_ptr + offs, ar.to(out_ptr.dtype.element_ty), mask=m)
            tl.store(out_ptr + offs + 1, ai.to(out_ptr.dtype.element_ty), mask=m)
    if TOTALS:
        total_offs = (row * chunks + c) * 2
        tl.store(out_ptr + total_offs, ar.to(out_ptr.dtype.element_ty), mask=live)
        tl.store(out_ptr + total_offs + 1, ai.to(out_ptr.dtype.element_ty), mask=live)


SPAN = 256  # columns one program walks
_kernels = {}


def _kernel(op, acc, totals, r):
    key = (op, acc, totals, r)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_cscan_kernel, OP=op, ACC=acc, TOTALS=totals, R=r)
    return k


def _scan_rows(op, x, out, rows, cols, reverse=0, fold=1):
    """out = the inclusive scan (PROD or LSE) of each row of the contiguous complex (rows, cols) x."""
    acc = tl.float64 if x._dtype is dt.complex128 else tl.float32
    r = 128 if rows > 16 else 16
    span = min(cols, SPAN)
    chunks = sc.cdiv(cols, span)
    grid = (sc.cdiv(rows, r) * chunks,)
    carry = x  # a placeholder: a single chunk reads no carry
    if chunks > 1:  # chunk totals, then their scan along the row (in place)
        carry = empty((rows, chunks), x._dtype, x._device)
        _kernel(op, acc, True, r)(grid, floats(x), floats(x), floats(carry), rows, cols, chunks, span, reverse, fold)
        _scan_rows(op, carry, carry, rows, chunks, fold=0)
    _kernel(op, acc, False, r)(grid, floats(x), floats(carry), floats(out), rows, cols, chunks, span, reverse, fold)


def _as_vector(t):
    """A 0-d tensor as a 1-element vector view (so the pairs' extra dim is never the scanned one)."""
    return alias(t, (1,), (1,), t._offset) if t.ndim == 0 else t


def scan(name, op, a, d, compute, values, reverse=False):
    """scan._scan for a complex compute dtype: values = the scan of a (converted to `compute`) along d."""
    if a.numel() == 0:
        return
    if op not in (sc.SUM, sc.PROD, sc.LSE):
        raise NotImplementedError(f"{name}: complex tensors are not supported on CUDA")
    x = _as_vector(a if a._dtype is compute else creation.to(a, compute, a._device))
    values = _as_vector(values)
    if op == sc.SUM:  # each part on its own: the real cumsum of the (re, im) pairs
        return sc._scan(name, sc.SUM, pairs(x), d, compute.to_real(), pairs(values), reverse=reverse)
    rows_x, rows, cols = sc.rows_of(x, d)
    v = sc.dense_of(values, d)
    _scan_rows(op, rows_x, v[0], rows, cols, int(bool(reverse)))
    sc.finish(v)
