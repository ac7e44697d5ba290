"""CUDA kernels of the foreach ops and fused optimizer steps: multi-tensor apply.

One launch updates every tensor of a dtype group, whatever their number. The kernel reads a
device table of int64: one row per tensor (its data pointers, cast in-kernel with
`.to(tl.pointer_type(...))`, its numel and a spare slot), then one (tensor, chunk) pair per
program. The table is built on the host, uploaded from pinned memory with an asynchronous copy and
cached under the tensors' data pointers, offsets, shapes, strides and dtypes (two levels: see
"tables" below): parameters, their states and (with the caching allocator's stable reuse) their
gradients keep their addresses from step to step, so a steady-state step uploads nothing. Tables
live in slabs of their own, so that making one never moves the next step's gradients. A table
used while a CUDA graph is being captured is kept for good (the graph's kernels read it at every
replay).

    table: [row 0 .. row n-1][(tensor, chunk) for program 0 .. nch-1]      int64
    row:   [ptr0, ptr1, ptr2, ptr3, ptr4, ptr5, numel, spare]             spare: a scalar's bits
                                                                           or the first chunk index

What the fast path does not cover (integer or complex dtypes, non-contiguous or broadcasting
operands, mixed dtypes within a row) runs the ops' per-tensor loop instead (ops/foreach.py).
"""
import math
import threading
from collections import OrderedDict
from operator import attrgetter

import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.backends.cuda.creation import empty_outside_graph_pool
from vibetensor.dispatch import DispatchKey, get
from vibetensor.ops import foreach as fe
from vibetensor.ops.meta import bump_version
from vibetensor.runtime.cuda import graphs, launcher, memory
from vibetensor.runtime.cuda import stream as streams
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, alias, empty

CUDA = DispatchKey.CUDA
CHUNK = 2048          # elements per program
COLS = 8              # int64 slots per table row
NUMEL, SPARE = 6, 7   # the row slots after the pointers
FINISH_BLOCK = 1024   # chunk partials reduced per iteration by the norm finishing kernels

_TL = {dt.float32: tl.float32, dt.float64: tl.float64, dt.bfloat16: tl.bfloat16, dt.float16: tl.float16}
_COMPUTE = {dt.float32: tl.float32, dt.float64: tl.float64, dt.bfloat16: tl.float32, dt.float16: tl.float32}

# the kernels' op codes (their own: the elementwise kernels' numbering moves as ops are added)
UNARY_CODES = {"sqrt": 0, "neg": 1, "abs": 2, "exp": 3, "log": 4, "reciprocal": 5, "sign": 6, "sigmoid": 7}
BINARY_CODES = {"add": 10, "sub": 11, "mul": 12, "div": 13, "maximum": 14, "minimum": 15, "pow": 16}
COPY, ZERO = -1, -2
# the other operand's kind, as the kernels' Y constexpr
Y_LIST, Y_SCALAR, Y_SCALARLIST, Y_TENSOR = 0, 1, 2, 3


def _bits(value, is_float=True):
    """A Python number as an int64 kernel argument: a float64's bit pattern (Triton would pass a
    Python float as float32), or the integer itself. Bit patterns are remembered (an optimiser
    passes the same lr every step; NumPy's scalar round trip costs a microsecond); 0.0 and -0.0
    are one dict key with two patterns, told apart by the sign."""
    if not is_float:
        return int(value)
    b = _BITS.get(value)
    if b is None:
        b = int(np.float64(value).view(np.int64))
        if value != 0 and len(_BITS) < 1024:
            _BITS[value] = b
    elif b == 0 and math.copysign(1.0, value) < 0:
        return _NEG_ZERO
    return b


_BITS = {0: 0}  # (a zero key also matches -0.0: its sign is checked)
_NEG_ZERO = int(np.float64(-0.0).view(np.int64))


# -- kernels ------------------------------------------------------------------------------------------

@triton.jit
def _scalar(bits, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """A block of the float64 whose bit pattern is `bits`, in COMPUTE."""
    return tl.full((BLOCK,), bits, tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)


@triton.jit
def _math(x, y, alpha, OP: tl.constexpr, COMPUTE: tl.constexpr):
    """The unary (y unused) and binary ops of the foreach family, in COMPUTE."""
    if OP == 0:
        r = _sqrt(x, COMPUTE)
    elif OP == 1:
        r = -x
    elif OP == 2:
        r = tl.abs(x)
    elif OP == 3:
        r = tl.exp(x)
    elif OP == 4:
        r = tl.log(x)
    elif OP == 5:
        r = _div(tl.full(x.shape, 1.0, COMPUTE), x, COMPUTE)
    elif OP == 6:
        r = tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, tl.where(x == 0, 0.0, x))).to(COMPUTE)  # NaN stays
    elif OP == 7:
        r = tl.sigmoid(x)
    elif OP == 10:
        r = x + y * alpha
    elif OP == 11:
        r = x - y * alpha
    elif OP == 12:
        r = x * y
    elif OP == 13:
        r = _div(x, y, COMPUTE)
    elif OP == 14:  # NaN propagates, as torch.maximum / clamp_min
        r = tl.where((x > y) | (x != x), x, y)
    elif OP == 15:
        r = tl.where((x < y) | (x != x), x, y)
    else:
        r = libdevice.pow(x, y)
    return r


@triton.jit
def _chunk(table, base, CHUNK: tl.constexpr):
    """(table row of this program's tensor, element offsets of its chunk, their mask)."""
    e = table + base + 2 * tl.program_id(0)
    t = tl.load(e)
    c = tl.load(e + 1)
    row = table + t * 8
    offs = c * CHUNK + tl.arange(0, CHUNK)
    return row, offs, offs < tl.load(row + 6)


@triton.jit
def _ptr(row, i, DT: tl.constexpr):
    return tl.load(row + i).to(tl.pointer_type(DT))


@triton.jit
def _sqrt(x, COMPUTE: tl.constexpr):
    """IEEE square root (Triton's float32 tl.sqrt is approximate; its float64 one is exact)."""
    if COMPUTE == tl.float32:
        r = tl.sqrt_rn(x)
    else:
        r = tl.sqrt(x)
    return r


@triton.jit
def _div(x, y, COMPUTE: tl.constexpr):
    """IEEE division, as torch's kernels compute it."""
    if COMPUTE == tl.float32:
        r = tl.div_rn(x, y)
    else:
        r = x / y
    return r


@triton.jit(do_not_specialize=["bits", "alpha_bits"])
def _foreach_ew(table, base, s_ptr, bits, alpha_bits, OP: tl.constexpr, ARITY: tl.constexpr,
                Y: tl.constexpr, DT: tl.constexpr, COMPUTE: tl.constexpr, CHUNK: tl.constexpr):
    """out = op(x[, y]) for row slots (out, x, y): unary, binary with a list / number / per-tensor
    number / 0-d device tensor, copy and zero."""
    row, offs, mask = _chunk(table, base, CHUNK)
    if OP == -2:
        r = tl.zeros((CHUNK,), COMPUTE)
    else:
        x = tl.load(_ptr(row, 1, DT) + offs, mask=mask).to(COMPUTE)
        if OP == -1:
            r = x
        elif ARITY == 1:
            r = _math(x, x, x, OP, COMPUTE)
        else:
            if Y == 0:
                y = tl.load(_ptr(row, 2, DT) + offs, mask=mask).to(COMPUTE)
            elif Y == 1:
                y = _scalar(bits, COMPUTE, CHUNK)
            elif Y == 2:
                y = _scalar(tl.load(row + 7), COMPUTE, CHUNK)
            else:
                y = tl.load(s_ptr + tl.zeros((CHUNK,), tl.int32)).to(COMPUTE)
            alpha = _scalar(alpha_bits, COMPUTE, CHUNK)
            r = _math(x, y, alpha, OP, COMPUTE)
    tl.store(_ptr(row, 0, DT) + offs, r.to(DT), mask=mask)


@triton.jit(do_not_specialize=["bits"])
def _foreach_ternary(table, base, bits, OP: tl.constexpr, Y: tl.constexpr, DT: tl.constexpr,
                     COMPUTE: tl.constexpr, CHUNK: tl.constexpr):
    """Row slots (out, x, t1, t2): addcmul (OP 0), addcdiv (OP 1): x + value * t1 (*|/) t2;
    lerp (OP 2): x + w * (t1 - x), the weight a number (Y 1) or a tensor in slot t2 (Y 0).
    Y 2: the number is the row's own (a list of scalars)."""
    row, offs, mask = _chunk(table, base, CHUNK)
    x = tl.load(_ptr(row, 1, DT) + offs, mask=mask).to(COMPUTE)
    a = tl.load(_ptr(row, 2, DT) + offs, mask=mask).to(COMPUTE)
    if Y == 0:
        w = tl.load(_ptr(row, 3, DT) + offs, mask=mask).to(COMPUTE)
    elif Y == 1:
        w = _scalar(bits, COMPUTE, CHUNK)
    else:
        w = _scalar(tl.load(row + 7), COMPUTE, CHUNK)
    if OP == 2:  # torch's lerp: from whichever end is nearer, for accuracy
        d = a - x
        r = tl.where(tl.abs(w) < 0.5, x + w * d, a - d * (1 - w))
    else:
        b = tl.load(_ptr(row, 3, DT) + offs, mask=mask).to(COMPUTE)
        if OP == 0:
            r = x + w * (a * b)
        else:
            r = x + w * _div(a, b, COMPUTE)
    tl.store(_ptr(row, 0, DT) + offs, r.to(DT), mask=mask)


@triton.jit(do_not_specialize=["p_bits"])
def _norm_partial(table, base, partial, part_off, p_bits, ORD: tl.constexpr, DT: tl.constexpr,
                  COMPUTE: tl.constexpr, CHUNK: tl.constexpr):
    """partial[part_off + program] = sum |x|^p over the chunk (max |x| for ORD 2 = inf).
    ORD 0: p = 2, 1: p = 1, 2: inf, 3: any other p > 0."""
    row, offs, mask = _chunk(table, base, CHUNK)
    x = tl.load(_ptr(row, 1, DT) + offs, mask=mask, other=0).to(COMPUTE)
    ax = tl.abs(x)
    if ORD == 0:
        v = tl.sum(x * x, 0)
    elif ORD == 1:
        v = tl.sum(ax, 0)
    elif ORD == 2:
        nan = tl.sum((ax != ax).to(tl.int32), 0)
        v = tl.where(nan > 0, float("nan"), tl.max(ax, 0))
    else:
        p = _scalar(p_bits, COMPUTE, CHUNK)
        v = tl.sum(tl.where(mask, tl.exp(tl.log(ax) * p), 0.0), 0)
    tl.store(partial + part_off + tl.program_id(0), v.to(partial.dtype.element_ty))


@triton.jit
def _reduce_partials(partial, start, n, ORD: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """The sum (max for ORD 2) of partial[start : start + n]."""
    acc = tl.zeros((BLOCK,), COMPUTE)
    nan = tl.zeros((BLOCK,), tl.int32)
    for s in range(0, n, BLOCK):
        idx = s + tl.arange(0, BLOCK)
        v = tl.load(partial + start + idx, mask=idx < n, other=0).to(COMPUTE)
        if ORD == 2:
            nan += (v != v).to(tl.int32)
            acc = tl.maximum(acc, v)
        else:
            acc += v
    if ORD == 2:
        r = tl.where(tl.sum(nan, 0) > 0, float("nan"), tl.max(acc, 0))
    else:
        r = tl.sum(acc, 0)
    return r


@triton.jit
def _root(r, inv_p_bits, ORD: tl.constexpr, COMPUTE: tl.constexpr):
    if ORD == 0:
        r = _sqrt(r, COMPUTE)
    elif ORD == 3:
        inv_p = inv_p_bits.to(tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)
        r = tl.exp(tl.log(r) * inv_p)
    return r


@triton.jit(do_not_specialize=["inv_p_bits"])
def _norm_finish(table, partial, out, inv_p_bits, ORD: tl.constexpr, COMPUTE: tl.constexpr,
                 CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """out[t] = the norm of tensor t from its chunks' partials (row slot 7: its first chunk)."""
    t = tl.program_id(0)
    row = table + t * 8
    numel = tl.load(row + 6)
    r = _reduce_partials(partial, tl.load(row + 7), (numel + CHUNK - 1) // CHUNK, ORD, COMPUTE, BLOCK)
    tl.store(out + t, _root(r, inv_p_bits, ORD, COMPUTE).to(out.dtype.element_ty))


@triton.jit(do_not_specialize=["n", "inv_p_bits"])
def _norm_total(partial, n, out, inv_p_bits, ORD: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """out[0] = the norm over every chunk partial (the norm of all the tensors together)."""
    r = _reduce_partials(partial, 0, n, ORD, COMPUTE, BLOCK)
    tl.store(out, _root(r, inv_p_bits, ORD, COMPUTE).to(out.dtype.element_ty))


@triton.jit(do_not_specialize=["n", "inv_p_bits", "max_norm_bits", "eps_bits"])
def _clip_total(partial, n, out, inv_p_bits, max_norm_bits, eps_bits, ORD: tl.constexpr, COMPUTE: tl.constexpr,
                BLOCK: tl.constexpr):
    """out[0] = the norm over the chunk partials partial[1 : 1 + n]; partial[0] = clip_grad_norm_'s
    coefficient min(1, max_norm / (norm + eps)), rounded to out's dtype after each op as torch's
    ops (add, reciprocal, mul, clamp on the 0-d norm) round it."""
    norm = _root(_reduce_partials(partial, 1, n, ORD, COMPUTE, BLOCK), inv_p_bits, ORD, COMPUTE).to(
        out.dtype.element_ty)
    tl.store(out, norm)
    eps = eps_bits.to(tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)
    max_norm = max_norm_bits.to(tl.int64).to(tl.float64, bitcast=True).to(COMPUTE)
    shifted = (norm.to(COMPUTE) + eps).to(out.dtype.element_ty).to(COMPUTE)
    inv = _div(1.0, shifted, COMPUTE).to(out.dtype.element_ty).to(COMPUTE)
    coef = (inv * max_norm).to(out.dtype.element_ty).to(COMPUTE)
    coef = tl.where(coef > 1.0, 1.0, coef)  # clamp(max=1): NaN stays NaN
    tl.store(partial, coef.to(partial.dtype.element_ty))


@triton.jit(do_not_specialize=["lr_bits", "beta1_bits", "beta2_bits", "wd_bits", "eps_bits"])
def _adam(table, base, lr_ptr, lr_bits, beta1_bits, beta2_bits, wd_bits, eps_bits,
          DT: tl.constexpr, COMPUTE: tl.constexpr, ADAMW: tl.constexpr, AMSGRAD: tl.constexpr,
          MAXIMIZE: tl.constexpr, WD: tl.constexpr, LR_TENSOR: tl.constexpr, CHUNK: tl.constexpr):
    """torch's fused Adam/AdamW on row slots (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
    step); the step was already incremented; scalars and bias corrections in float64."""
    row, offs, mask = _chunk(table, base, CHUNK)
    zero = tl.zeros((CHUNK,), tl.int32)
    step = tl.load(_ptr(row, 5, tl.float32) + zero).to(tl.float64)
    if LR_TENSOR:
        lr = tl.load(lr_ptr + zero).to(tl.float64)
    else:
        lr = _scalar(lr_bits, tl.float64, CHUNK)
    beta1 = _scalar(beta1_bits, tl.float64, CHUNK)
    beta2 = _scalar(beta2_bits, tl.float64, CHUNK)
    wd = _scalar(wd_bits, tl.float64, CHUNK)
    eps = _scalar(eps_bits, tl.float64, CHUNK).to(COMPUTE)
    bias_correction1 = 1.0 - libdevice.pow(beta1, step)
    bias_correction2_sqrt = tl.sqrt(1.0 - libdevice.pow(beta2, step)).to(COMPUTE)
    step_size = (lr / bias_correction1).to(COMPUTE)
    p_ptr = _ptr(row, 0, DT) + offs
    g_ptr = _ptr(row, 1, DT) + offs
    m_ptr = _ptr(row, 2, DT) + offs
    v_ptr = _ptr(row, 3, DT) + offs
    p = tl.load(p_ptr, mask=mask).to(COMPUTE)
    g = tl.load(g_ptr, mask=mask).to(COMPUTE)
    m = tl.load(m_ptr, mask=mask).to(COMPUTE)
    v = tl.load(v_ptr, mask=mask).to(COMPUTE)
    if MAXIMIZE:
        g = -g
    if WD:
        if ADAMW:
            p = p - (lr * wd).to(COMPUTE) * p
        else:
            g = g + wd.to(COMPUTE) * p
    m = beta1.to(COMPUTE) * m + (1.0 - beta1).to(COMPUTE) * g
    v = beta2.to(COMPUTE) * v + (1.0 - beta2).to(COMPUTE) * g * g
    if AMSGRAD:
        vmax_ptr = _ptr(row, 4, DT) + offs
        vmax = tl.maximum(tl.load(vmax_ptr, mask=mask).to(COMPUTE), v)
        tl.store(vmax_ptr, vmax.to(DT), mask=mask)
        denom = _div(_sqrt(vmax, COMPUTE), bias_correction2_sqrt, COMPUTE) + eps
    else:
        denom = _div(_sqrt(v, COMPUTE), bias_correction2_sqrt, COMPUTE) + eps
    p = p - _div(step_size * m, denom, COMPUTE)
    tl.store(p_ptr, p.to(DT), mask=mask)
    tl.store(m_ptr, m.to(DT), mask=mask)
    tl.store(v_ptr, v.to(DT), mask=mask)


@triton.jit(do_not_specialize=["lr_bits", "wd_bits", "momentum_bits", "dampening_bits"])
def _sgd(table, base, lr_ptr, lr_bits, wd_bits, momentum_bits, dampening_bits,
         DT: tl.constexpr, COMPUTE: tl.constexpr, MOMENTUM: tl.constexpr, NESTEROV: tl.constexpr,
         MAXIMIZE: tl.constexpr, WD: tl.constexpr, FIRST: tl.constexpr, LR_TENSOR: tl.constexpr,
         CHUNK: tl.constexpr):
    """torch's fused SGD on row slots (param, grad, momentum_buffer)."""
    row, offs, mask = _chunk(table, base, CHUNK)
    if LR_TENSOR:
        lr = tl.load(lr_ptr + tl.zeros((CHUNK,), tl.int32)).to(COMPUTE)
    else:
        lr = _scalar(lr_bits, COMPUTE, CHUNK)
    p_ptr = _ptr(row, 0, DT) + offs
    p = tl.load(p_ptr, mask=mask).to(COMPUTE)
    g = tl.load(_ptr(row, 1, DT) + offs, mask=mask).to(COMPUTE)
    if MAXIMIZE:
        g = -g
    if WD:
        g = g + _scalar(wd_bits, COMPUTE, CHUNK) * p
    if MOMENTUM:
        momentum = _scalar(momentum_bits, COMPUTE, CHUNK)
        b_ptr = _ptr(row, 2, DT) + offs
        if FIRST:
            buf = g
        else:
            dampening = _scalar(dampening_bits, COMPUTE, CHUNK)
            buf = momentum * tl.load(b_ptr, mask=mask).to(COMPUTE) + (1 - dampening) * g
        tl.store(b_ptr, buf.to(DT), mask=mask)
        if NESTEROV:
            g = g + momentum * buf
        else:
            g = buf
    tl.store(p_ptr, (p - lr * g).to(DT), mask=mask)


# -- tables -----------------------------------------------------------------------------------------
#
# A call's tables are cached in two levels. Its tensors' geometry (device, offset, shape, strides,
# dtype: `_GEO`) picks a Grouping: the dtype groups, each with its table minus the addresses. Its
# tensors' data pointers then pick the uploaded tables. Gradients are new tensors every step
# (zero_grad(set_to_none=True)) and the caching allocator need not hand back the same addresses,
# so the second level misses often: such a miss costs one NumPy write per pointer column and an
# upload, not a rebuild. Uploaded tables are never rewritten (a captured graph reads them at
# every replay, and kernels still queued may read them), so each address set has its own.

_GEO = attrgetter("_device", "_offset", "_shape", "_stride", "_dtype")  # [2:]: what `check` reads
_DATA = attrgetter("_storage.data.ptr")  # (a CPU tensor's NumPy data has no .ptr: AttributeError)
_MAX_TABLES = 512
_MAX_GROUPINGS = 256
_UNSEEN = object()
FIRST_CHUNKS = "first chunks"  # spare= value: each row's spare slot holds its first chunk (norms)


class Table:
    """One dtype group's uploaded table: the device tensor, the program count; `pending` is the
    upload still owed when the table was built during a capture (else None)."""
    __slots__ = ("dev", "base", "n_chunks", "rows", "dtype", "pending", "grid")

    def __init__(self, device, dtype, flat, rows, n_chunks):
        graph, self.pending = graphs.current_graph(), None
        if graph is None:
            stream = streams.current_stream(device.index or 0)
            self.dev = _table_memory(flat.size, device, stream)
            _upload(self.dev, flat, stream)
        else:  # capturing: no pinned allocation or event now (the driver refuses both on a capturing
            # stream); the table lives outside the graph's pool and the first replay uploads it
            self.dev = empty_outside_graph_pool((flat.size,), dt.int64, device)
            self.pending = _UploadOnce(self.dev, flat)
            graph.add_replay_hook(self.pending)
        self.base, self.n_chunks, self.rows, self.dtype = rows * COLS, n_chunks, rows, dtype
        self.grid = (n_chunks,)


class Layout:
    """A dtype group's table minus its addresses: the list positions of its rows, and the flat
    table with numels, chunk pairs (and first chunks) written and the pointer slots zero."""
    __slots__ = ("dtype", "idx", "positions", "template", "rows", "n_chunks")

    def __init__(self, dtype, positions, numels, first_in_spare):
        counts = (numels + CHUNK - 1) // CHUNK
        first = np.zeros(len(numels), np.int64)
        np.cumsum(counts[:-1], out=first[1:])
        total = int(counts.sum())
        rows = np.zeros((len(numels), COLS), np.int64)
        rows[:, NUMEL] = numels
        if first_in_spare:
            rows[:, SPARE] = first
        pairs = np.empty((total, 2), np.int64)
        pairs[:, 0] = np.repeat(np.arange(len(numels)), counts)
        pairs[:, 1] = np.arange(total) - np.repeat(first, counts)
        self.template = np.concatenate((rows.ravel(), pairs.ravel()))
        self.dtype, self.positions, self.rows, self.n_chunks = dtype, positions, len(numels), total
        self.idx = np.array(positions, np.intp)

    def flat(self, ptrs, spare):
        """The table's int64 contents. ptrs: per row slot, the byte addresses of that column's
        tensors in list order (an int64 array), or None; spare: per-list-position int64 values, or None."""
        flat = self.template.copy()
        rows = flat[:self.rows * COLS].reshape(self.rows, COLS)  # (rows, COLS), a view into flat
        for j, p in enumerate(ptrs):
            if p is not None:
                rows[:, j] = p[self.idx]
        if spare is not None:
            rows[:, SPARE] = spare[self.idx]
        return flat


class Grouping:
    """A call's tables minus their addresses: its dtype groups' Layouts, and per column the byte
    offsets of its tensors (added to their data pointers)."""
    __slots__ = ("layouts", "offsets", "device")

    def __init__(self, layouts, offsets, device):
        self.layouts, self.offsets, self.device = layouts, offsets, device

    def upload(self, data, spare):
        """[(Table, list positions of its rows)] per dtype group, for these data pointers."""
        ptrs = []  # per column, its tensors' byte addresses
        for d, off in zip(data, self.offsets):
            ptrs.append(None if d is None else ptrs[d] if d.__class__ is int else np.array(d, np.int64) + off)
        spare = None if spare is None or spare is FIRST_CHUNKS else np.array(spare, np.int64)
        return [(Table(self.device, lay.dtype, lay.flat(ptrs, spare), lay.rows, lay.n_chunks), lay.positions)
                for lay in self.layouts]


_SLAB = 1 << 15  # int64s per slab of table memory (256 KiB)
_slabs = {}  # device index -> [slab tensor, its first free int64]
_slab_lock = threading.Lock()


def _table_memory(n, device, stream):
    """An int64 device buffer of n for a table, usable on `stream`: a view into a slab, which
    returns to the allocator when its last table is evicted. Tables come and go as gradients
    move; allocated one by one from the step's own pool they would move the next step's
    gradients in turn, and the cache would never settle (measured on the reversal step: a miss
    every step that way; none after the second step with slabs)."""
    index = device.index or 0
    with _slab_lock:  # (misses only) two threads must not carve the same bytes
        slab = _slabs.get(index)
        if slab is None or slab[1] + n > slab[0]._shape[0]:
            slab = _slabs[index] = [empty((max(_SLAB, n),), dt.int64, device), 0]
        buf, at = slab
        slab[1] = at + n + (n & 1)  # 16-byte aligned tables (Triton specialises pointers on it)
    buf._storage.data.record_stream(stream)  # its reuse, once free, waits for `stream`
    return alias(buf, (n,), (1,), at)


def _upload(dev, flat, stream):
    """Copy the int64 array flat into dev asynchronously on stream, through pinned memory that is
    reused only once the copy is done."""
    host = memory.pinned_empty(flat.nbytes)
    block = memory.block_of(host)  # (host starts at block.ptr)
    host.view(np.int64)[:] = flat
    memory.copy_h2d(dev.data_ptr(), block.ptr, flat.nbytes, stream, blocking=False)
    block.record_stream(stream)


class _UploadOnce:
    """A replay hook: uploads a table built during capture before the graph's first replay."""
    __slots__ = ("dev", "flat")

    def __init__(self, dev, flat):
        self.dev, self.flat = dev, flat

    def __call__(self, stream):
        if self.flat is not None:
            _upload(self.dev, self.flat, stream)
            self.flat = None


class Entry:
    __slots__ = ("groups", "keep")

    def __init__(self, groups):
        self.groups, self.keep = groups, False  # groups: [(Table, [list position of each row])]


_groupings = {}  # (tag, check, first_in_spare, per column geometry) -> Grouping, or None: no fast path
_cache = OrderedDict()  # (Grouping, per column data pointers, spare) -> Entry
_kept = []  # entries a captured graph reads: never evicted


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _contiguous(shape, stride):
    if 0 in shape:  # empty: contiguous whatever its strides, as torch
        return True
    expected = 1
    for size, st in zip(reversed(shape), reversed(stride)):
        if size != 1 and st != expected:
            return False
        expected *= size
    return True


def same_dense(sigs):
    """The row's dtype when its tensors are contiguous float tensors of one shape and dtype, else None."""
    first = next(s for s in sigs if s is not None)
    dtype = first[4]
    if dtype not in _TL:
        return None
    for s in sigs:
        if s is not None and (s[2] != first[2] or s[4] is not dtype or not _contiguous(s[2], s[3])):
            return None
    return dtype


def _signatures(columns):
    """(geometry, data pointers): per column None, its tensors' _GEO / _DATA, or, for a list
    passed again (an in-place op's out= is its input), the index of its first column (read and
    hashed once)."""
    geo, data = [], []
    for j, col in enumerate(columns):
        if col is None:
            geo.append(None)
            data.append(None)
            continue
        for i in range(j):
            if columns[i] is col:
                geo.append(i)
                data.append(i)
                break
        else:
            geo.append(tuple(map(_GEO, col)))
            data.append(tuple(map(_DATA, col)))
    return tuple(geo), tuple(data)


def _grouping(geo, first_in_spare, check):
    """The Grouping of a call's geometry, or None when the fast path does not apply (tensors on
    several devices, or a row that `check` refuses)."""
    geo = [geo[g] if g.__class__ is int else g for g in geo]
    present = [g for g in geo if g is not None]
    device = present[0][0][0]
    if any(s[0] is not device for g in present for s in g):
        return None
    by_dtype = {}
    for i, row in enumerate(zip(*present)):
        dtype = check([None if g is None else g[i] for g in geo])
        if dtype is None:
            return None
        by_dtype.setdefault(dtype, []).append((i, _numel(row[0][2])))
    layouts = [Layout(dtype, [i for i, _ in members], np.array([n for _, n in members], np.int64), first_in_spare)
               for dtype, members in by_dtype.items()]
    offsets = [None if g is None else np.array([s[1] * s[4].itemsize for s in g], np.int64) for g in geo]
    return Grouping(layouts, offsets, device)


def tables(tag, columns, spare=None, check=same_dense):
    """The cached tables of a call (built and uploaded on a miss), or None when the fast path does
    not apply. columns: per row slot, a list of tensors or None; spare: per-row int64 values (a
    scalar's bits), or FIRST_CHUNKS. check(row of _GEO tuples) -> the row's dtype, or None."""
    try:
        geo, data = _signatures(columns)
    except AttributeError:  # a CPU tensor among them: the loop raises torch's device error
        return None
    first_in_spare = spare is FIRST_CHUNKS
    key = (tag, check, first_in_spare, geo)
    grouping = _groupings.get(key, _UNSEEN)
    if grouping is _UNSEEN:
        grouping = _grouping(geo, first_in_spare, check)
        if len(_groupings) >= _MAX_GROUPINGS:
            _groupings.clear()
        _groupings[key] = grouping
    if grouping is None:
        return None
    key = (grouping, data, None if spare is None or first_in_spare else tuple(spare))
    entry = _cache.get(key)
    if entry is None:
        entry = _cache[key] = Entry(grouping.upload(data, spare))
        if len(_cache) > _MAX_TABLES:
            for old in list(_cache)[:_MAX_TABLES // 4]:
                del _cache[old]  # entries a graph reads stay alive through _kept
    if not entry.keep and graphs.is_capturing():
        entry.keep = True
        _kept.append(entry)
    elif entry.keep:  # an eager call before the capturing graph's first replay: upload now
        for table, _ in entry.groups:
            if table.pending is not None and table.pending.flat is not None and not graphs.is_capturing():
                table.pending(streams.current_stream(table.dev._device.index or 0))
    return entry.groups


def _launchable(groups):
    """The groups with work (all-empty tensors make a table of no chunks: nothing to launch)."""
    return [g for g in groups if g[0].n_chunks]


# -- foreach elementwise -----------------------------------------------------------------------------

def _scalar_ok(x):
    return isinstance(x, (bool, int, float))


def _binary(name, code):
    loop = fe.LOOPS[name]
    has_alpha = name in ("_foreach_add", "_foreach_sub")

    def kernel(tensors, other, *rest, out=None):
        fe.tensor_list(name, tensors)
        kind = fe.other_kind(name, tensors, other)
        fe.check_out(name, tensors, out)
        alpha = rest[0] if (has_alpha and rest) else 1
        if kind == fe.TENSOR and other._device.type == "cpu":
            other, kind = other.item(), fe.SCALAR  # a CPU number: free to read
        if not _scalar_ok(alpha) or kind == fe.SCALAR and not _scalar_ok(other) or \
                kind == fe.SCALARLIST and not all(_scalar_ok(x) for x in other):
            return loop(tensors, other, *rest, out=out)
        outs = _outs(tensors, out)
        y = other if kind == fe.LIST else None
        spare = [_bits(x, True) for x in other] if kind == fe.SCALARLIST else None
        groups = tables("ew", (outs, tensors, y), spare)
        if groups is None or kind == fe.TENSOR and other._device is not tensors[0]._device:
            return loop(tensors, other, *rest, out=out)
        y_kind = {fe.LIST: Y_LIST, fe.SCALAR: Y_SCALAR, fe.SCALARLIST: Y_SCALARLIST, fe.TENSOR: Y_TENSOR}[kind]
        bits = _bits(other, True) if kind == fe.SCALAR else 0
        for table, _ in _launchable(groups):
            s_ptr = other if kind == fe.TENSOR else table.dev
            _ew_kernel(code, 2, y_kind, table.dtype)(table.grid, table.dev, table.base, s_ptr, bits,
                                                       _bits(alpha, True))
        return _finish(tensors, out, outs)
    return kernel


def _unary(name, code):
    loop = fe.LOOPS[name]

    def kernel(tensors, out=None):
        fe.tensor_list(name, tensors)
        fe.check_out(name, tensors, out)
        outs = _outs(tensors, out)
        groups = tables("ew", (outs, None if code == ZERO else tensors, None))
        if groups is None:
            return loop(tensors, out=out)
        for table, _ in _launchable(groups):
            _ew_kernel(code, 1, 0, table.dtype)(table.grid, table.dev, table.base, table.dev, 0, 0)
        return _finish(tensors, out, outs)
    return kernel


def _outs(tensors, out):
    if out is not None:
        return out
    return [empty(t._shape, t._dtype, t._device) for t in tensors]


def _finish(tensors, out, outs):
    if out is None:
        return outs
    _bump_all(out)
    return None


_kernels = {}


def _ew_kernel(code, arity, y_kind, dtype):
    key = ("ew", code, arity, y_kind, dtype)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_foreach_ew, OP=code, ARITY=arity, Y=y_kind, DT=_TL[dtype],
                                            COMPUTE=_COMPUTE[dtype], CHUNK=CHUNK)
    return k


def _ternary_kernel(code, y_kind, dtype):
    key = ("ternary", code, y_kind, dtype)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_foreach_ternary, OP=code, Y=y_kind, DT=_TL[dtype],
                                            COMPUTE=_COMPUTE[dtype], CHUNK=CHUNK)
    return k


def _pointwise(name, code):
    loop = fe.LOOPS[name]

    def kernel(tensors, tensors1, tensors2, value=1, out=None):
        fe.tensor_list(name, tensors)
        kind = fe.other_kind(name, tensors, value, "scalars")
        fe.check_out(name, tensors, out)
        if kind not in (fe.SCALAR, fe.SCALARLIST) or not all(_scalar_ok(x) for x in (
                value if kind == fe.SCALARLIST else [value])) or len(tensors1) != len(tensors) or \
                len(tensors2) != len(tensors):
            return loop(tensors, tensors1, tensors2, value, out=out)
        outs = _outs(tensors, out)
        spare = [_bits(x, True) for x in value] if kind == fe.SCALARLIST else None
        groups = tables("ternary", (outs, tensors, tensors1, tensors2), spare)
        if groups is None:
            return loop(tensors, tensors1, tensors2, value, out=out)
        y_kind = Y_SCALAR if kind == fe.SCALAR else Y_SCALARLIST
        bits = _bits(value, True) if kind == fe.SCALAR else 0
        for table, _ in _launchable(groups):
            _ternary_kernel(code, y_kind, table.dtype)(table.grid, table.dev, table.base, bits)
        return _finish(tensors, out, outs)
    return kernel


def _lerp(tensors, ends, weight, out=None):
    name = "_foreach_lerp"
    fe.tensor_list(name, tensors)
    fe.tensor_list(name, ends, "tensors1", 2)
    fe.same_length(name, tensors, ends)
    kind = fe.other_kind(name, tensors, weight, "weight")
    fe.check_out(name, tensors, out)
    if kind not in (fe.SCALAR, fe.LIST) or kind == fe.SCALAR and not _scalar_ok(weight):
        return fe.LOOPS[name](tensors, ends, weight, out=out)
    outs = _outs(tensors, out)
    groups = tables("ternary", (outs, tensors, ends, weight if kind == fe.LIST else None))
    if groups is None:
        return fe.LOOPS[name](tensors, ends, weight, out=out)
    y_kind = Y_LIST if kind == fe.LIST else Y_SCALAR
    bits = _bits(weight, True) if kind == fe.SCALAR else 0
    for table, _ in _launchable(groups):
        _ternary_kernel(2, y_kind, table.dtype)(table.grid, table.dev, table.base, bits)
    return _finish(tensors, out, outs)


def _copy(tensors, src, non_blocking=False, out=None):
    name = "_foreach_copy_"
    fe.tensor_list(name, tensors)
    fe.tensor_list(name, src, "src", 2)
    fe.same_length(name, tensors, src)
    groups = tables("ew", (tensors, src, None))
    if groups is None:
        return fe.LOOPS["_foreach_copy"](tensors, src, non_blocking, out=out)
    for table, _ in _launchable(groups):
        _ew_kernel(COPY, 1, 0, table.dtype)(table.grid, table.dev, table.base, table.dev, 0, 0)
    _bump_all(tensors)


# -- norms ---------------------------------------------------------------------------------------------

def _ord_code(ord):  # noqa: A002
    """(kernel ORD, p, 1/p) for the norms the kernels compute, or None (0, -inf, p < 0: the loop)."""
    p = float(ord)
    if p == 2:
        return 0, 2.0, 0.5
    if p == 1:
        return 1, 1.0, 1.0
    if p == float("inf"):
        return 2, p, 0.0
    if p > 0 and p == p:
        return 3, p, 1.0 / p
    return None


def _norm_groups(tensors):
    """Tables whose rows carry their first chunk (slot 7), for the per-tensor finish."""
    return tables("norm", (None, tensors), FIRST_CHUNKS)


def _new_kernel(key, fn, **constexprs):
    """The Kernel of fn with these constexprs, remembered under key. Callers write
    `_kernels.get(key) or _new_kernel(key, fn, ...)`: a hit builds no keyword arguments."""
    k = _kernels[key] = launcher.Kernel(fn, **constexprs)
    return k


def _partials(table, partial, part_off, code, p):
    key = ("norm_partial", code, table.dtype)
    k = _kernels.get(key) or _new_kernel(key, _norm_partial, ORD=code, DT=_TL[table.dtype],
                                         COMPUTE=_COMPUTE[table.dtype], CHUNK=CHUNK)
    k(table.grid, table.dev, table.base, partial, part_off, _bits(p, True))


def _norm(tensors, ord=2, dtype=None):  # noqa: A002
    name = "_foreach_norm"
    fe.tensor_list(name, tensors)
    code = _ord_code(ord)
    groups = _norm_groups(tensors) if code is not None and (dtype is None or dtype in _TL) else None
    if groups is None:
        return fe.LOOPS[name](tensors, ord, dtype)
    code, p, inv_p = code
    result = [None] * len(tensors)
    device = tensors[0]._device
    for table, idx in groups:
        compute = dt.float64 if table.dtype is dt.float64 else dt.float32
        partial = empty((max(table.n_chunks, 1),), compute, device)
        out = empty((table.rows,), dtype or table.dtype, device)
        if table.n_chunks:
            _partials(table, partial, 0, code, p)
        key = ("norm_finish", code, compute)
        k = _kernels.get(key) or _new_kernel(key, _norm_finish, ORD=code, COMPUTE=_TL[compute], CHUNK=CHUNK,
                                             BLOCK=FINISH_BLOCK)
        k((table.rows,), table.dev, partial, out, _bits(inv_p, True))
        for r, i in enumerate(idx):
            result[i] = alias(out, (), (), r)
    return result


def _total_norm(tensors, ord):  # noqa: A002
    """The norm of all the tensors together (clip_grad_norm_'s total): G + 1 launches, no host sync."""
    fe.tensor_list("_total_norm", tensors)
    code = _ord_code(ord)
    groups = _norm_groups(tensors) if code is not None else None
    if groups is None:
        return fe.LOOPS["_total_norm"](tensors, ord)
    code, p, inv_p = code
    device = tensors[0]._device
    dtypes = [table.dtype for table, _ in groups]
    compute = dt.float64 if dt.float64 in dtypes else dt.float32
    result_dtype = dtypes[0]
    for d in dtypes[1:]:
        result_dtype = dt.promote_types(result_dtype, d)
    n = sum(table.n_chunks for table, _ in groups)
    partial = empty((max(n, 1),), compute, device)
    off = 0
    for table, _ in _launchable(groups):
        if table.n_chunks:
            _partials(table, partial, off, code, p)
        off += table.n_chunks
    out = empty((), result_dtype, device)
    key = ("norm_total", code, compute)
    k = _kernels.get(key) or _new_kernel(key, _norm_total, ORD=code, COMPUTE=_TL[compute], BLOCK=FINISH_BLOCK)
    k((1,), partial, n, out, _bits(inv_p, True))
    return out


def _clip_by_total_norm(tensors, max_norm, ord):  # noqa: A002
    """clip_grad_norm_ in three launches and no host sync, from one table whose rows hold each
    tensor as both input and output: the norm's chunk partials, the total norm with the clip
    coefficient (written at partial[0]), the scaling in place. Several dtypes: the loop (a
    coefficient cast per dtype, as clip_grads_with_norm_ does)."""
    name = "_clip_by_total_norm_"
    fe.tensor_list(name, tensors)
    code = _ord_code(ord) if _scalar_ok(max_norm) else None
    groups = tables("norm", (tensors, tensors), FIRST_CHUNKS) if code is not None else None
    if groups is None or len(groups) != 1:
        return fe.LOOPS[name](tensors, max_norm, ord)
    code, p, inv_p = code
    table = groups[0][0]
    compute = dt.float64 if table.dtype is dt.float64 else dt.float32
    device = tensors[0]._device
    partial = empty((table.n_chunks + 1,), compute, device)  # [coefficient, chunk partials...]
    total = empty((), table.dtype, device)
    if table.n_chunks:
        _partials(table, partial, 1, code, p)
    key = ("clip_total", code, compute)
    k = _kernels.get(key) or _new_kernel(key, _clip_total, ORD=code, COMPUTE=_TL[compute], BLOCK=FINISH_BLOCK)
    k((1,), partial, table.n_chunks, total, _bits(inv_p), _bits(max_norm), _bits(1e-6))
    if table.n_chunks:
        _ew_kernel(BINARY_CODES["mul"], 2, Y_TENSOR, table.dtype)(table.grid, table.dev, table.base, partial, 0,
                                                                  _bits(1))
    _bump_all(tensors)
    return total


def _bump_all(*lists):
    """bump_version of every tensor of the lists, inlined (an optimiser step writes hundreds)."""
    for lst in lists:
        for t in lst:
            t._version.value += 1


# -- fused optimizer steps -------------------------------------------------------------------------------

def _adam_row(sigs):
    """Param, grad and states dense of one float dtype; the step a float32 scalar."""
    step = sigs[5]
    if step is None or step[4] is not dt.float32 or _numel(step[2]) != 1:
        return None
    return same_dense(sigs[:5])


def _dense(grads):
    """Gradients in their parameters' layout, which the fused kernels need (torch's AccumulateGrad
    keeps that contract; ours may store e.g. a transposed mm gradient): a copy where not."""
    from vibetensor.ops import creation as c
    return [g if _contiguous(g._shape, g._stride) else c.contiguous(g) for g in grads]


def _lr(lr, device):
    """(LR_TENSOR, the lr tensor or None, its bits): a CUDA tensor lr is read by the kernel."""
    if isinstance(lr, Tensor):
        if lr._device.type == "cpu":
            return False, None, _bits(lr.item(), True)
        if lr._device is not device or lr.numel() != 1:
            raise RuntimeError(f"lr tensor must be a 1-element tensor on {device}, got {tuple(lr.shape)} on "
                               f"{lr._device}")
        return True, lr, 0
    return False, None, _bits(lr, True)


def _fused_adam(decoupled):
    name = "_fused_adamw_" if decoupled else "_fused_adam_"

    def kernel(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
               weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None):
        fe.check_fused(name, (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None,
                              state_steps), grad_scale, found_inf)
        columns = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None, state_steps)
        groups = tables("adam", columns, check=_adam_row) or \
            tables("adam", (params, _dense(grads), *columns[2:]), check=_adam_row)
        if groups is None:
            raise NotImplementedError(f"{name}: on CUDA every param, grad and state must be a contiguous float "
                                      "tensor of one dtype per param on one device, with float32 step tensors")
        lr_tensor, lr_t, lr_bits = _lr(lr, params[0]._device)
        scalars = (lr_bits, _bits(beta1, True), _bits(beta2, True), _bits(weight_decay, True), _bits(eps, True))
        for table, _ in _launchable(groups):
            key = ("adam", decoupled, bool(amsgrad), bool(maximize), weight_decay != 0, lr_tensor, table.dtype)
            k = _kernels.get(key) or _new_kernel(
                key, _adam, DT=_TL[table.dtype], COMPUTE=_COMPUTE[table.dtype], ADAMW=decoupled,
                AMSGRAD=bool(amsgrad), MAXIMIZE=bool(maximize), WD=weight_decay != 0, LR_TENSOR=lr_tensor, CHUNK=CHUNK)
            k(table.grid, table.dev, table.base, lr_t if lr_tensor else table.dev, *scalars)
        _bump_all(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else ())
    return name, kernel


def _fused_sgd(params, grads, momentum_buffer_list, weight_decay, momentum, lr, dampening, nesterov, maximize,
               is_first_step, grad_scale=None, found_inf=None):
    name = "_fused_sgd_"
    use_buf = momentum != 0
    fe.check_fused(name, (params, grads, momentum_buffer_list if use_buf else None), grad_scale, found_inf)
    bufs = momentum_buffer_list if use_buf else None
    groups = tables("sgd", (params, grads, bufs)) or tables("sgd", (params, _dense(grads), bufs))
    if groups is None:
        raise NotImplementedError(f"{name}: on CUDA every param, grad and momentum buffer must be a contiguous "
                                  "float tensor of one dtype per param on one device")
    lr_tensor, lr_t, lr_bits = _lr(lr, params[0]._device)
    for table, _ in _launchable(groups):
        key = ("sgd", use_buf, bool(nesterov), bool(maximize), weight_decay != 0, bool(is_first_step), lr_tensor,
               table.dtype)
        k = _kernels.get(key) or _new_kernel(
            key, _sgd, DT=_TL[table.dtype], COMPUTE=_COMPUTE[table.dtype], MOMENTUM=use_buf, NESTEROV=bool(nesterov),
            MAXIMIZE=bool(maximize), WD=weight_decay != 0, FIRST=bool(is_first_step), LR_TENSOR=lr_tensor,
            CHUNK=CHUNK)
        k(table.grid, table.dev, table.base, lr_t if lr_tensor else table.dev, lr_bits, _bits(weight_decay, True),
          _bits(momentum, True), _bits(dampening, True))
    _bump_all(params, momentum_buffer_list if use_buf else ())


# -- fill (a fallback until the creation kernels have one) ------------------------------------------

def _fill(self, value, out=None):
    """fill_ of a CUDA tensor: the fill kernel on a contiguous result, else a broadcast copy of a
    0-d tensor (also how a 0-d tensor value is written, with no host read)."""
    from vibetensor.backends.cuda import creation
    from vibetensor.ops import shape_ops as so
    so.fill_meta(self, value)
    res = out if out is not None else empty(self._shape, self._dtype, self._device)
    n = res.numel()
    if isinstance(value, Tensor) or not res.is_contiguous():
        src = value if isinstance(value, Tensor) else creation.full((), value, res._dtype, res._device)
        creation.copy_(res, src)
    elif n:
        is_float = res._dtype.is_floating_point
        (creation.fill_float if is_float else creation.fill_int)(((n + 1023) // 1024,), res, _bits(value, is_float),
                                                                 n)
    if out is not None:
        bump_version(res)
    return res


# -- registration ----------------------------------------------------------------------------------

_AS = {"clamp_min": "maximum", "clamp_max": "minimum"}  # with numbers, the same math
for _n in fe.BINARY:
    fe.OPS["_foreach_" + _n].register(CUDA, _binary("_foreach_" + _n, BINARY_CODES[_AS.get(_n, _n)]))
for _n in fe.UNARY:
    fe.OPS["_foreach_" + _n].register(CUDA, _unary("_foreach_" + _n, ZERO if _n == "zero" else UNARY_CODES[_n]))
fe.OPS["_foreach_addcmul"].register(CUDA, _pointwise("_foreach_addcmul", 0))
fe.OPS["_foreach_addcdiv"].register(CUDA, _pointwise("_foreach_addcdiv", 1))
fe.OPS["_foreach_lerp"].register(CUDA, _lerp)
fe.OPS["_foreach_copy"].register(CUDA, _copy)
fe.OPS["_foreach_norm"].register(CUDA, _norm)
fe.OPS["_total_norm"].register(CUDA, _total_norm)
fe.OPS["_clip_by_total_norm_"].register(CUDA, _clip_by_total_norm)
for _name, _kernel in (_fused_adam(False), _fused_adam(True)):
    fe.OPS[_name].register(CUDA, _kernel)
fe.OPS["_fused_sgd_"].register(CUDA, _fused_sgd)
if CUDA not in get("fill").table:
    get("fill").register(CUDA, _fill)
