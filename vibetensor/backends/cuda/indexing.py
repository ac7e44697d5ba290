"""CUDA kernels of the indexing ops: gather/scatter family, index_* ops, embedding, masks, take/put,
advanced indexing (index, index_put_), nonzero and masked_select.

Almost every op here is one shape of loop: walk an iteration space (up to 6 dims after collapsing),
read an index, and either read the source at the indexed place (a gather) or write the destination
there (a scatter: a store, or an atomic add/max/min for reductions). `_indexed_kernel` is that loop;
each op only says which iteration space, which strides, which side the index addresses.

Index bounds are checked on the device (DESIGN rule 7): an out-of-range index is skipped (nothing
illegal is touched) and recorded in the device's error buffer (runtime/cuda/device_errors.py), which
the host reads at the next synchronisation and raises as IndexError. Nothing here syncs, except the
ops whose result size is host data (nonzero, masked_select, masked_scatter, boolean-mask indexing),
as in torch. Atomic reductions of half types and small integers run in a float32/int32 copy.
"""
import numpy as np
import triton
import triton.language as tl
from triton.runtime.jit import constexpr_function

from vibetensor.backends.cuda.creation import geometry6, unravel6
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, nn, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import indexing as ix
from vibetensor.ops import scatter as m
from vibetensor.ops.meta import bump_version, common_device
from vibetensor.runtime.cuda import device_errors, launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.iterator import broadcast_strides
from vibetensor.tensor.tensor import Tensor, array, empty, empty_cpu, from_array

CUDA = DispatchKey.CUDA
_int_dtype = constexpr_function(tl.core.get_int_dtype)  # (bits, signed) -> tl int dtype, at compile time
BLOCK = 1024
STORE, ADD, MAX, MIN, MUL = 0, 1, 2, 3, 4


# -- kernels ------------------------------------------------------------------------------------------------------

@triton.jit
def _report(err, bad, orig, code, dim, size, BLOCK: tl.constexpr):
    """Record the first out-of-range index of this block in the error buffer, if any (rare path:
    one reduction per block when all is well)."""
    if tl.max(bad.to(tl.int32), 0) > 0:
        lane = tl.arange(0, BLOCK)
        first = tl.min(tl.where(bad, lane, BLOCK), 0)
        value = tl.sum(tl.where(lane == first, orig, 0), 0)
        zero = value * 0
        old = tl.atomic_cas(err, zero, zero + code)  # the first error of the whole grid wins
        if old == 0:
            tl.store(err + 1, value)
            tl.store(err + 2, zero + dim)
            tl.store(err + 3, zero + size)


@triton.jit
def _scalar(bits, FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    """A Python number passed as int64 (a float64's bit pattern if FLOAT), as a block."""
    v = tl.full((BLOCK,), bits, tl.int64)
    if FLOAT:
        v = v.to(tl.float64, bitcast=True)
    return v


@triton.jit
def _indexed_kernel(src, idx, dst, err, n, n1, n2, n3, n4, n5,
                    s0, s1, s2, s3, s4, s5, i0, i1, i2, i3, i4, i5, d0, d1, d2, d3, d4, d5,
                    sdim, ddim, size, code, dim, skip, value_bits, alpha_bits,
                    SRC_INDEXED: tl.constexpr, MODE: tl.constexpr, SCALAR: tl.constexpr, FLOAT: tl.constexpr,
                    ALPHA: tl.constexpr, WRAP: tl.constexpr, CHECK: tl.constexpr, SKIP: tl.constexpr,
                    BLOCK: tl.constexpr):
    """For each point k of the iteration space (sizes n0..n5, strides s/i/d per operand):
         SRC_INDEXED:  dst[k] = src[k + idx[k] * sdim]          (gather)
         else:         dst[k + idx[k] * ddim] (op)= src[k]      (scatter; src may be a scalar)
    where the indexed operand's own stride along the indexed dim is 0 in its stride list."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    so = c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5
    io = c0 * i0 + c1 * i1 + c2 * i2 + c3 * i3 + c4 * i4 + c5 * i5
    do = c0 * d0 + c1 * d1 + c2 * d2 + c3 * d3 + c4 * d4 + c5 * d5
    orig = tl.load(idx + io, mask=mask, other=0).to(tl.int64)
    j = orig
    if WRAP:
        j = tl.where(j < 0, j + size, j)
    if CHECK:
        ok = (j >= 0) & (j < size)
        _report(err, mask & ~ok, orig, code, dim, size, BLOCK)
        mask = mask & ok
    if SKIP:
        mask = mask & (orig != skip)
    j = tl.where(mask, j, 0)
    if SRC_INDEXED:
        so = so + j * sdim
    else:
        do = do + j * ddim
    if SCALAR:
        v = _scalar(value_bits, FLOAT, BLOCK)
    else:
        v = tl.load(src + so, mask=mask)
    if ALPHA:
        if FLOAT:
            v = v.to(tl.float64) * _scalar(alpha_bits, FLOAT, BLOCK)
        else:
            v = v.to(tl.int64) * _scalar(alpha_bits, FLOAT, BLOCK)
    v = v.to(dst.dtype.element_ty)
    if MODE == 0:
        tl.store(dst + do, v, mask=mask)
    elif MODE == 1:
        tl.atomic_add(dst + do, v, mask=mask)
    elif MODE == 2:
        tl.atomic_max(dst + do, v, mask=mask)
    elif MODE == 3:
        tl.atomic_min(dst + do, v, mask=mask)
    else:
        _atomic_mul(dst + tl.where(mask, do, 0), v, mask)


@triton.jit
def _atomic_mul(ptrs, v, mask):
    """*ptrs *= v for the lanes in mask, by compare-and-swap loops (Triton has no atomic multiply);
    bit patterns decide success, so NaN and -0.0 cannot loop or lose updates. Lanes outside the mask
    must still point at valid memory: they swap a value with itself, which changes nothing."""
    IT: tl.constexpr = _int_dtype(v.dtype.primitive_bitwidth, True)
    done = ~mask
    old = tl.load(ptrs, mask=mask, other=0, volatile=True)
    while tl.max((~done).to(tl.int32), 0) > 0:
        new = tl.where(done, old, old * v)
        prev = tl.atomic_cas(ptrs, old, new)
        done = done | (prev.to(IT, bitcast=True) == old.to(IT, bitcast=True))
        old = prev


@triton.jit
def _linear_kernel(idx, lin, err, n, n1, n2, n3, n4, n5, i0, i1, i2, i3, i4, i5, size, stride, code, dim,
                   FIRST: tl.constexpr, BLOCK: tl.constexpr):
    """lin[k] (+)= wrap(idx[k]) * stride: one index tensor's part of the element offsets that
    advanced indexing reads or writes (lin is contiguous over the broadcast index shape)."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    io = c0 * i0 + c1 * i1 + c2 * i2 + c3 * i3 + c4 * i4 + c5 * i5
    orig = tl.load(idx + io, mask=mask, other=0).to(tl.int64)
    j = tl.where(orig < 0, orig + size, orig)
    ok = (j >= 0) & (j < size)
    _report(err, mask & ~ok, orig, code, dim, size, BLOCK)
    part = tl.where(ok, j, 0) * stride
    if not FIRST:
        part = part + tl.load(lin + k, mask=mask, other=0)
    tl.store(lin + k, part, mask=mask)


@triton.jit
def _masked_fill_kernel(x, mask_ptr, dst, value_ptr, n, n1, n2, n3, n4, n5,
                        x0, x1, x2, x3, x4, x5, m0, m1, m2, m3, m4, m5, d0, d1, d2, d3, d4, d5, value_bits,
                        FROM_PTR: tl.constexpr, FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    """dst = where(mask, value, x); the value is a number, or read from a 0-d device tensor."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    xo = c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5
    mo = c0 * m0 + c1 * m1 + c2 * m2 + c3 * m3 + c4 * m4 + c5 * m5
    do = c0 * d0 + c1 * d1 + c2 * d2 + c3 * d3 + c4 * d4 + c5 * d5
    v = tl.load(x + xo, mask=inside)
    pick = tl.load(mask_ptr + mo, mask=inside, other=0) != 0
    if FROM_PTR:
        fill = tl.load(value_ptr + k * 0, mask=inside)
    else:
        fill = _scalar(value_bits, FLOAT, BLOCK)
    out_ty = dst.dtype.element_ty
    tl.store(dst + do, tl.where(pick, fill.to(out_ty), v.to(out_ty)), mask=inside)


@triton.jit
def _count_kernel(x, counts, n, n1, n2, n3, n4, n5, x0, x1, x2, x3, x4, x5, BLOCK: tl.constexpr):
    """counts[block] = number of nonzero elements of x among this block's flat positions."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    xo = c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5
    nz = inside & (tl.load(x + xo, mask=inside, other=0) != 0)
    tl.store(counts + tl.program_id(0), tl.sum(nz.to(tl.int32), 0))


@triton.jit
def _compact_kernel(x, starts, pos, n, n1, n2, n3, n4, n5, x0, x1, x2, x3, x4, x5, BLOCK: tl.constexpr):
    """pos[starts[block] + rank] = flat position of each nonzero element, in order."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    c0, c1, c2, c3, c4, c5 = unravel6(k, n1, n2, n3, n4, n5)
    xo = c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3 + c4 * x4 + c5 * x5
    nz = (inside & (tl.load(x + xo, mask=inside, other=0) != 0)).to(tl.int32)
    rank = tl.cumsum(nz, 0) - nz
    start = tl.load(starts + tl.program_id(0))
    tl.store(pos + start + rank, k, mask=nz != 0)


@triton.jit
def _coord_kernel(pos, out, n, ncols, col, div, mod, BLOCK: tl.constexpr):
    """out[k, col] = (pos[k] // div) % mod: one coordinate column of nonzero()."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    p = tl.load(pos + k, mask=inside, other=0)
    tl.store(out + k * ncols + col, (p // div) % mod, mask=inside)


@triton.jit
def from_f64(x, DT: tl.constexpr):
    """A float64 value in dtype DT as C++ converts a double: through float for the half types
    (c10::Half and BFloat16 are made from floats)."""
    if DT == tl.float16 or DT == tl.bfloat16:
        return x.to(tl.float32).to(DT)
    else:
        return x.to(DT)


@triton.jit
def _index_reduce_kernel(src, idx, res, err, cols, K, size, n1, n2, n3, n4, n5,
                         s0, s1, s2, s3, s4, s5, r0, r1, r2, r3, r4, r5, sdim, rdim, istride, ident_bits, code, dim,
                         REDUCE: tl.constexpr, INCLUDE_SELF: tl.constexpr, FLOAT: tl.constexpr, CT: tl.constexpr,
                         BLOCK: tl.constexpr):
    """index_reduce without atomics: each lane owns one column (a point of the space without `dim`)
    and folds source[..., k, ...] into res[..., index[k], ...] for k in order (so prod and half types
    round after each step, as torch's atomic CAS loops do). REDUCE: 0 prod, 1 mean (the sum), 2 amax,
    3 amin; without INCLUDE_SELF the indexed places first take the reduction's identity."""
    c = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = c < cols
    c0, c1, c2, c3, c4, c5 = unravel6(c, n1, n2, n3, n4, n5)
    so = c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5
    ro = c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3 + c4 * r4 + c5 * r5
    DT: tl.constexpr = res.dtype.element_ty
    if not INCLUDE_SELF:
        ident = tl.full((BLOCK,), ident_bits, tl.int64)
        if FLOAT:
            ident = from_f64(ident.to(tl.float64, bitcast=True), DT)
        else:
            ident = ident.to(DT)
        for k in range(K):
            j = tl.load(idx + k * istride).to(tl.int64)
            ok = (j >= 0) & (j < size)
            tl.store(res + ro + tl.where(ok, j, 0) * rdim, ident, mask=inside & ok)
    reporter = (tl.arange(0, BLOCK) == 0) & (tl.program_id(0) == 0)
    for k in range(K):
        j = tl.load(idx + k * istride).to(tl.int64)
        ok = (j >= 0) & (j < size)
        _report(err, reporter & ~ok, c * 0 + j, code, dim, size, BLOCK)
        m = inside & ok
        at = res + ro + tl.where(ok, j, 0) * rdim
        cur = tl.load(at, mask=m, other=0, volatile=True).to(CT)
        v = tl.load(src + so + k * sdim, mask=m, other=0).to(CT)
        if REDUCE == 0:
            new = cur * v
        elif REDUCE == 1:
            new = cur + v
        elif REDUCE == 2:  # NaN propagates, as torch's maximum
            new = tl.where((v > cur) | (v != v), v, cur)
        else:
            new = tl.where((v < cur) | (v != v), v, cur)
        tl.store(at, new.to(DT), mask=m)


_TL_OF = {dt.float32: tl.float32, dt.float64: tl.float64, dt.int8: tl.int8, dt.int16: tl.int16, dt.int32: tl.int32,
          dt.int64: tl.int64, dt.uint8: tl.uint8}


def _kernel(fn, **constexprs):
    return launcher.cached_kernel(fn, BLOCK=BLOCK, **constexprs)


def _grid(n):
    return (launcher.cdiv(n, BLOCK),)


# -- host helpers ------------------------------------------------------------------------------------------------

_err_args = {}


def _err(t):
    """The error buffer of t's device, as a kernel pointer argument."""
    index = t._device.index or 0
    ptr = device_errors.buffer_ptr(index)
    a = _err_args.get(index)
    if a is None or a.ptr != ptr:
        a = _err_args[index] = launcher.PointerArg(ptr, dt.int64)
    return a


def _on(op, self, *tensors):
    """The tensors on self's device, after torch's device check (CPU 0-d tensors may join: they
    are copied over, as torch does)."""
    common_device(op, (self,) + tensors)
    return [creation.to(t, t._dtype, self._device) if isinstance(t, Tensor) and t._device != self._device else t
            for t in tensors]


def _nd(t):
    """(shape, stride) with a 0-d tensor seen as 1-d of size 1 (torch's ensure_nonempty_dim)."""
    return (tuple(t._shape), tuple(t._stride)) if t.ndim else ((1,), (0,))


def _without(stride, dim):
    """The strides with the indexed dim's own stride zeroed (the index supplies that offset)."""
    s = list(stride)
    s[dim] = 0
    return tuple(s)


def _bits(value, is_float):
    return int(np.float64(value).view(np.int64)) if is_float else int(value)


def launch_indexed(op, shape, src, src_stride, index, index_stride, dst, dst_stride, *, src_indexed,
                   sdim=0, ddim=0, size=0, dim=0, mode=STORE, value=None, alpha=None, wrap=False, check=True,
                   skip=None):
    """Run `_indexed_kernel` over `shape` (see its docstring). `value`: a number written instead of
    src (src is then ignored). Returns nothing; the caller allocated dst."""
    n = sh.numel(shape)
    if n == 0:
        return
    if dst._dtype.is_complex:
        return _complex_indexed(op, shape, src, src_stride, index, index_stride, dst, dst_stride,
                                dict(src_indexed=src_indexed, sdim=sdim, ddim=ddim, size=size, dim=dim, mode=mode,
                                     wrap=wrap, check=check, skip=skip), value, alpha)
    sizes, (ss, ist, ds) = geometry6(op, shape, src_stride, index_stride, dst_stride)
    is_float = dst._dtype.is_floating_point
    scalar = value is not None
    kernel = _kernel(_indexed_kernel, SRC_INDEXED=src_indexed, MODE=mode, SCALAR=scalar, FLOAT=is_float,
                     ALPHA=alpha is not None, WRAP=wrap, CHECK=check, SKIP=skip is not None)
    kernel(_grid(n), dst if scalar else src, index, dst, _err(dst), n, *sizes, *ss, *ist, *ds, sdim, ddim, size,
           device_errors.code_of(op), dim, 0 if skip is None else skip,
           _bits(value, is_float) if scalar else 0, _bits(alpha, is_float) if alpha is not None else 0)


def _complex_indexed(op, shape, src, src_stride, index, index_stride, dst, dst_stride, kw, value, alpha):
    """launch_indexed into a complex dst, on its float view: a complex src moves (re, im) pairs (one more
    dim of size 2; an atomic add adds each part); a number or a real src fills each part alone."""
    from vibetensor.backends.cuda.complex import floats, parts
    if alpha is not None:
        alpha = complex(alpha)
        if alpha.imag:  # alpha * src first, then a plain add (backends/cuda/complex.py)
            from vibetensor.backends.cuda.complex import scaled_source
            src, src_stride, alpha = scaled_source(op, src, shape, src_stride, alpha, kw["src_indexed"])
        alpha = alpha.real
    double = tuple(2 * s for s in dst_stride)
    if value is not None or not src._dtype.is_complex:  # each part alone: the number's parts, or (real src, 0)
        kw = {**kw, "ddim": 2 * kw["ddim"]}
        v = complex(value) if value is not None else None
        re_part, im_part = parts(dst)
        if v is None:
            launch_indexed(op, shape, src, src_stride, index, index_stride, re_part, double, **kw, alpha=alpha)
        else:
            launch_indexed(op, shape, re_part, src_stride, index, index_stride, re_part, double, **kw, value=v.real)
        launch_indexed(op, shape, im_part, src_stride, index, index_stride, im_part, double, **kw,
                       value=0.0 if v is None else v.imag)
        return
    if src._dtype is not dst._dtype:
        raise NotImplementedError(f"{op}: {src._dtype} values into a {dst._dtype} tensor on CUDA are not supported yet")
    kw = {**kw, "sdim": 2 * kw["sdim"], "ddim": 2 * kw["ddim"]}
    launch_indexed(op, tuple(shape) + (2,), floats(src), tuple(2 * s for s in src_stride) + (1,), index,
                   tuple(index_stride) + (0,), floats(dst), double + (1,), **kw, alpha=alpha)


def _work(res, mode):
    """The tensor an atomic reduction accumulates in: res itself, or a float32/int32 copy for the
    types atomics do not cover (half types, 8/16-bit integers)."""
    if mode == STORE:
        return res
    d = res._dtype
    if d is dt.bool_ or (d.is_complex and mode != ADD):  # (complex sums add each part)
        raise NotImplementedError(f"scatter reductions of {d} tensors on CUDA are not supported yet")
    if d in (dt.float16, dt.bfloat16):  # products round in the dtype at each step, as torch's CAS loops
        return res if mode == MUL else creation.to(res, dt.float32, res._device)
    if d in (dt.int8, dt.int16, dt.uint8):
        return creation.to(res, dt.int32, res._device)
    return res


def _finish(res, work):
    if work is not res:
        creation.copy_(res, work)


def _copy_of(op, self, out, shape=None):
    """The tensor a writing op writes into: self (in place), out=, or a new tensor holding self."""
    shape = tuple(self._shape) if shape is None else tuple(shape)
    res = m.result(op, out, shape, self._dtype, self._device, self)
    if res is not self:
        creation.copy_(res, self)
    return res


def _done(res, out):
    if out is not None:
        bump_version(res)
    return res


# -- gather / scatter ------------------------------------------------------------------------------------------------

def gather(self, dim, index, sparse_grad=False, out=None):
    dim = m.gather_meta(self, dim, index)
    index, = _on("gather", self, index)
    res = m.result("gather", out, tuple(index._shape), self._dtype, self._device)
    if index.numel():
        shape, istride = _nd(index)
        sshape, sstride = _nd(self)
        launch_indexed("gather", shape, self, _without(sstride, dim), index, istride, res, _nd(res)[1],
                       src_indexed=True, sdim=sstride[dim], size=sshape[dim], dim=dim)
    return _done(res, out)


_MODES = {None: STORE, "sum": ADD, "amax": MAX, "amin": MIN, "prod": MUL}
_IDENTITY = {"sum": 0, "mean": 0, "prod": 1, "amax": float("-inf"), "amin": float("inf")}


def _scatter_into(op, work, dim, index, src, mode, value=None):
    """work[... index ...] (op)= src (or value) along dim, over index's shape."""
    shape, istride = _nd(index)
    wshape, wstride = _nd(work)
    src_stride = _nd(src)[1] if value is None else (0,) * len(shape)
    launch_indexed(op, shape, src, src_stride, index, istride, work, _without(wstride, dim), src_indexed=False,
                   ddim=wstride[dim], size=wshape[dim], dim=dim, mode=mode, value=value)


def _identity(reduce, d):
    v = _IDENTITY[reduce]
    if isinstance(v, float) and not d.is_floating_point:
        info = np.iinfo(d.np)
        v = int(info.min if reduce == "amax" else info.max)
    return v


def _scatter(op, self, dim, index, src, reduce, include_self, out, reduces):
    dim = m.scatter_meta(self, dim, index, src, reduce, reduces)
    index, src = _on(op, self, index, src)
    if reduce is not None:
        m.check_reduce_dtype("scatter_gather_tensor_cuda_reduce", reduce, self._dtype)
    value = None if isinstance(src, Tensor) else m.scalar_for(src, self._dtype)
    res = _copy_of(op, self, out)
    if index.numel() == 0:
        return _done(res, out)
    mode = ADD if reduce == "mean" else _MODES[reduce]
    work = _work(res, mode)
    if not include_self:  # the reached places start from the reduction's identity
        _scatter_into(op, work, dim, index, None, STORE, value=_identity(reduce, work._dtype))
    _scatter_into(op, work, dim, index, src, mode, value)
    if reduce == "mean":
        if not work._dtype.is_floating_point:
            raise NotImplementedError(f"{op}: reduce='mean' of integer tensors on CUDA is not supported yet")
        count = creation.full(tuple(work._shape), 1, work._dtype, device=work._device)
        if not include_self:
            _scatter_into(op, count, dim, index, None, STORE, value=0)
        _scatter_into(op, count, dim, index, None, ADD, value=1)
        creation.copy_(res, ew.div(work, count))
    else:
        _finish(res, work)
    return _done(res, out)


def scatter(self, dim, index, src, reduce=None, out=None):
    if reduce is not None:
        if reduce not in m.LEGACY_REDUCES:
            raise RuntimeError("reduce argument must be either add or multiply.")
        reduce = m.LEGACY_REDUCES[reduce]
    return _scatter("scatter", self, dim, index, src, reduce, True, out, None)


def scatter_add(self, dim, index, src, out=None):
    return _scatter("scatter_add", self, dim, index, src, "sum", True, out, None)


def scatter_reduce(self, dim, index, src, reduce, include_self=True, out=None):
    return _scatter("scatter_reduce", self, dim, index, src, reduce, include_self, out, m.SCATTER_REDUCES)


# -- index_* ------------------------------------------------------------------------------------------------------

def _slice_index(index, dim, ndim):
    """Strides of a vector index seen over an iteration space of `ndim` dims: it varies along dim only."""
    s = [0] * ndim
    s[dim] = index._stride[0] if index.ndim else 0
    return tuple(s)


def index_select(self, dim, index, out=None):
    dim, shape = m.index_select_meta(self, dim, index)
    index, = _on("index_select", self, index)
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError("index_select(): self and result must have the same scalar type")
    res = m.result("index_select", out, shape, self._dtype, self._device)
    k = index.numel()
    if k:
        sshape, sstride = _nd(self)
        space = list(sshape)
        space[dim] = k
        rstride = sh.contiguous_strides(tuple(space)) if res.ndim != len(space) else res._stride
        launch_indexed("index_select", space, self, _without(sstride, dim), index, _slice_index(index, dim, len(space)),
                       res, rstride, src_indexed=True, sdim=sstride[dim], size=sshape[dim], dim=dim)
    return _done(res, out)


def _index_write(op, res, dim, index, source, mode, alpha=None, value=None, space=None, wrap=False):
    """res[..., index[k], ...] (op)= source[..., k, ...] (or value) along dim, over source's shape
    (the metas make it res's shape apart from dim; 0-d tensors count as 1-d)."""
    rshape, rstride = _nd(res)
    space = tuple(_nd(source)[0] if space is None else space)
    src_stride = (0,) * len(space) if value is not None else _nd(source)[1]
    launch_indexed(op, space, source, src_stride, index, _slice_index(index, dim, len(space)), res,
                   _without(rstride, dim), src_indexed=False, ddim=rstride[dim], size=rshape[dim], dim=dim, mode=mode,
                   value=value, alpha=alpha, wrap=wrap)


def index_add(self, dim, index, source, alpha=1, out=None):
    dim = m.index_func_meta("index_add", self, dim, index, source)
    index, source = _on("index_add", self, index, source)
    alpha = m.scalar_for(alpha, self._dtype)
    res = _copy_of("index_add", self, out)
    if index.numel():
        work = _work(res, ADD)
        _index_write("index_add", work, dim, index, source, ADD, alpha=None if alpha == 1 else alpha)
        _finish(res, work)
    return _done(res, out)


def index_copy(self, dim, index, source, out=None):
    dim = m.index_copy_meta(self, dim, index, source)
    index, source = _on("index_copy", self, index, source)
    res = _copy_of("index_copy", self, out)
    if index.numel():
        _index_write("index_copy", res, dim, index, source, STORE)
    return _done(res, out)


def index_fill(self, dim, index, value, out=None):
    dim = m.index_fill_meta(self, dim, index, value)
    index, = _on("index_fill", self, index)
    fill = m.scalar_for(value, self._dtype)
    if out is None:
        res = creation.copy_(creation.empty_like(self), self)
    else:
        res = _copy_of("index_fill", self, out)
    k = index.numel()
    if k:
        space = list(_nd(res)[0])
        space[dim] = k
        _index_write("index_fill", res, dim, index, res, STORE, value=fill, space=space, wrap=True)
    return _done(res, out)


_INDEX_REDUCE_CODES = {"prod": 0, "mean": 1, "amax": 2, "amin": 3}
_HALF = (dt.float16, dt.bfloat16)


def index_reduce(self, dim, index, source, reduce, include_self=True, out=None):
    """res[..., index[k], ...] (reduce)= source[..., k, ...]; mean divides the sums by the counts
    (plus one with include_self), floor division for integers, as torch."""
    dim = m.index_reduce_meta(self, dim, index, source, reduce, include_self)
    index, source = _on("index_reduce", self, index, source)
    if self._dtype.is_complex:
        raise NotImplementedError("index_reduce: complex tensors on CUDA are not supported yet")
    res = _copy_of("index_reduce", self, out)
    k = index.numel()
    if k:
        work, src = res, source
        if res._dtype is dt.bool_:  # folded as bytes (prod, amax, amin of 0/1 are and, or, and)
            work, src = views.view_dtype(res, dt.uint8), views.view_dtype(source, dt.uint8)
        rshape, rstride = _nd(work)
        sshape, sstride = _nd(src)
        col_shape = rshape[:dim] + rshape[dim + 1:]
        cols = sh.numel(col_shape)
        if cols:
            d = work._dtype
            sizes, (ss, rs) = geometry6("index_reduce", col_shape, sstride[:dim] + sstride[dim + 1:],
                                        rstride[:dim] + rstride[dim + 1:])
            ident = _identity("sum" if reduce == "mean" else reduce, d)
            kernel = _kernel(_index_reduce_kernel, REDUCE=_INDEX_REDUCE_CODES[reduce], INCLUDE_SELF=bool(include_self),
                             FLOAT=d.is_floating_point, CT=tl.float32 if d in _HALF else _TL_OF[d])
            kernel(_grid(cols), src, index, work, _err(work), cols, k, rshape[dim], *sizes, *ss, *rs, sstride[dim],
                   rstride[dim], index._stride[0] if index.ndim else 0, _bits(ident, d.is_floating_point),
                   device_errors.code_of("index_reduce"), dim)
        if reduce == "mean":
            counts = creation.full(tuple(res._shape), 1 if include_self else 0, res._dtype, device=res._device)
            ones = creation.full(tuple(source._shape), 1, res._dtype, device=res._device)
            index_add(counts, dim, index, ones, out=counts)
            counts = ew.clamp(counts, 1, None)
            ew.div(res, counts, None if res._dtype.is_floating_point else "floor", out=res)
    return _done(res, out)


# -- masks ----------------------------------------------------------------------------------------------------------

def masked_fill(self, mask, value, out=None):
    shape = m.masked_fill_meta(self, mask, value)
    mask, = _on("masked_fill", self, mask)
    res = m.result("masked_fill", out, shape, self._dtype, self._device, self)
    n = sh.numel(shape)
    if n and self._dtype.is_complex:  # where(mask, value, self) (complex math: complex.py)
        fill = value if isinstance(value, Tensor) and value.is_cuda else m.scalar_for(value, self._dtype)
        creation.copy_(res, ew.where(mask, fill, self))
    elif n:
        from_ptr = isinstance(value, Tensor) and value.is_cuda
        vbits = 0
        if not from_ptr:
            fill = m.scalar_for(value, self._dtype)
            vbits = _bits(fill, self._dtype.is_floating_point)
        sizes, (xs, ms, ds) = geometry6("masked_fill", shape, broadcast_strides(self._shape, self._stride, shape),
                                        broadcast_strides(mask._shape, mask._stride, shape), res._stride)
        kernel = _kernel(_masked_fill_kernel, FROM_PTR=from_ptr, FLOAT=self._dtype.is_floating_point)
        kernel(_grid(n), self, mask, res, value if from_ptr else res, n, *sizes, *xs, *ms, *ds, vbits)
    return _done(res, out)


def true_positions(x):
    """(positions, count): the flat (C-order) positions of x's nonzero elements as an int64 CUDA
    tensor of shape (count,). Reads the count on the host: a synchronisation, as torch's nonzero."""
    n = x.numel()
    if n == 0:
        return empty((0,), dt.int64, x._device), 0
    if x._dtype.is_complex:  # nonzero: either part
        x = ew.ne(x, 0)
    shape = tuple(x._shape) or (1,)
    sizes, (xs,) = geometry6("nonzero", shape, x._stride if x.ndim else (0,))
    blocks = launcher.cdiv(n, BLOCK)
    counts = empty((blocks,), dt.int32, x._device)
    _kernel(_count_kernel)((blocks,), x, counts, n, *sizes, *xs)
    host = _host(counts).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(host)[:-1]]).astype(np.int64)
    total = int(host.sum())
    pos = empty((total,), dt.int64, x._device)
    if total:
        starts_dev = creation.to(from_array(starts), dt.int64, x._device)
        _kernel(_compact_kernel)((blocks,), x, starts_dev, pos, n, *sizes, *xs)
    return pos, total


def _host(t):
    """A device tensor's values as a NumPy array (a device-to-host copy: a sync)."""
    host = empty_cpu(tuple(t._shape), t._dtype)
    creation.copy_(host, t)
    return array(host)


def nonzero(self, out=None):
    if out is not None and isinstance(out, Tensor) and out._dtype is not dt.int64:
        raise RuntimeError(f"nonzero: Expected out tensor to have scalar type Long but got scalar type"
                           f"{m.NAMES[out._dtype]}")
    pos, count = true_positions(self)
    ndim = self.ndim
    res = m.result("nonzero", out, (count, ndim), dt.int64, self._device)
    if count and ndim:
        target = res if res.is_contiguous() else empty((count, ndim), dt.int64, self._device)
        div = 1
        for d in reversed(range(ndim)):
            _kernel(_coord_kernel)(_grid(count), pos, target, count, ndim, d, div, self._shape[d])
            div *= self._shape[d]
        _finish(res, target)
    return _done(res, out)


def masked_select(self, mask, out=None):
    shape = m.masked_select_meta(self, mask)
    mask, = _on("masked_select", self, mask)
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError("masked_select(): self and result must have the same scalar type")
    pos, count = true_positions(views.expand(mask, shape) if tuple(mask._shape) != tuple(shape) else mask)
    res = m.result("masked_select", out, (count,), self._dtype, self._device)
    if count:
        flat = creation.contiguous(views.expand(self, shape) if tuple(self._shape) != tuple(shape) else self)
        launch_indexed("masked_select", (count,), flat, (0,), pos, (1,), res, res._stride, src_indexed=True, sdim=1,
                       check=False)
    return _done(res, out)


def masked_scatter(self, mask, source, out=None):
    shape = m.masked_scatter_meta(self, mask, source)
    mask, source = _on("masked_scatter", self, mask, source)
    pos, count = true_positions(views.expand(mask, shape) if tuple(mask._shape) != tuple(shape) else mask)
    if count > source.numel():
        raise RuntimeError("Number of elements of source < number of ones in mask")
    res = _copy_of("masked_scatter", self, out, shape)
    if count:
        work = res if res.is_contiguous() else creation.contiguous(res)
        flat_src = views.reshape(creation.contiguous(source), (-1,))
        launch_indexed("masked_scatter", (count,), flat_src, (1,), pos, (1,), work, (0,), src_indexed=False, ddim=1,
                       check=False)
        _finish(res, work)
    return _done(res, out)


# -- take / put ---------------------------------------------------------------------------------------------------

def take(self, index, out=None):
    m.take_meta(self, index)
    index, = _on("take", self, index)
    n = self.numel()
    if index.numel() and n == 0:
        raise IndexError("take(): tried to take from an empty tensor")
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError(f"take(): self and out expected to have the same dtype, but got self.dtype = "
                           f"{m.NAMES[self._dtype]} and out.dtype = {m.NAMES[out._dtype]}")
    res = m.result("take", out, tuple(index._shape), self._dtype, self._device)
    if index.numel():
        flat = creation.contiguous(self)
        shape, istride = _nd(index)
        launch_indexed("take", shape, flat, (0,) * len(shape), index, istride, res, _nd(res)[1], src_indexed=True,
                       sdim=1, size=n, wrap=True)
    return _done(res, out)


def put(self, index, source, accumulate=False, out=None):
    m.put_meta(self, index, source)
    index, source = _on("put", self, index, source)
    n = self.numel()
    if index.numel() and n == 0:
        raise IndexError("put_(): Tried to put elements into an empty tensor")
    if out is None:
        res = creation.copy_(creation.empty_like(self), self)
    else:
        res = _copy_of("put", self, out)
    k = index.numel()
    if k:
        mode = ADD if accumulate else STORE
        work = _work(res, mode)
        work = work if work.is_contiguous() else creation.contiguous(work)
        idx = views.reshape(index, (-1,))
        src = views.reshape(source, (-1,))
        launch_indexed("put", (k,), src, src._stride, idx, idx._stride, work, (0,), src_indexed=False, ddim=1, size=n,
                       mode=mode, wrap=True)
        _finish(res, work)
    return _done(res, out)


# -- embedding ---------------------------------------------------------------------------------------------------

def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False):
    spec = nn.embedding.meta(weight, indices, padding_idx, scale_grad_by_freq)
    indices, = _on("embedding", weight, indices)
    res = empty(tuple(spec.shape), spec.dtype, spec.device)
    flat = views.reshape(indices, (-1,))
    rows, cols = flat.numel(), weight._shape[1]
    launch_indexed("embedding", (rows, cols), weight, (0, weight._stride[1]), flat, (flat._stride[0], 0), res,
                   (cols, 1), src_indexed=True, sdim=weight._stride[0], size=weight._shape[0], dim=0)
    return res


def embedding_dense_backward(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """Each index's gradient row summed into its weight row (float32 atomics for half types); none
    for padding_idx; divided by the index's frequency with scale_grad_by_freq."""
    spec = nn.embedding_dense_backward.meta(grad, indices, num_weights, padding_idx, scale_grad_by_freq)
    cols = spec.shape[1]
    acc = dt.float32 if spec.dtype in (dt.float16, dt.bfloat16) else spec.dtype
    work = creation.full(tuple(spec.shape), 0, acc, device=spec.device)
    flat = views.reshape(indices, (-1,))
    rows = flat.numel()
    g = views.reshape(grad, (rows, cols))
    if scale_grad_by_freq and rows:
        counts = creation.full((num_weights,), 0, acc, device=spec.device)
        launch_indexed("embedding_backward", (rows,), counts, (0,), flat, flat._stride, counts, (0,),
                       src_indexed=False, ddim=1, size=num_weights, mode=ADD, value=1)
        freq = empty((rows,), acc, spec.device)
        launch_indexed("embedding_backward", (rows,), counts, (0,), flat, flat._stride, freq, (1,), src_indexed=True,
                       sdim=1, size=num_weights)
        g = ew.div(g, views.reshape(freq, (rows, 1)))
    launch_indexed("embedding_backward", (rows, cols), g, g._stride, flat, (flat._stride[0], 0), work, (0, 1),
                   src_indexed=False, ddim=cols, size=num_weights, mode=ADD,
                   skip=padding_idx if padding_idx is not None and padding_idx >= 0 else None)
    return work if acc is spec.dtype else creation.to(work, spec.dtype, spec.device)


# -- advanced indexing: index, index_put_ ----------------------------------------------------------------------------

def _expand(self, indices):
    """Per-dim index tensors (None = whole dim), masks replaced by their nonzero() columns."""
    out = []
    for i in indices:
        if i is None:
            out.append(None)
        elif ix.is_mask(i):
            coords = nonzero(i if i._device == self._device else creation.to(i, i._dtype, self._device))  # (n, i.ndim): a synchronisation, as torch's
            out += [views.select(coords, 1, j) for j in range(i.ndim)]
        else:
            out.append(i if i._device == self._device else creation.to(i, i._dtype, self._device))
    return out


def _layout(self_shape, target_stride, expanded, bshape):
    """The iteration space of an advanced index (torch's result shape) and, in its order, the
    strides of the target restrided (0 over the index dims) and of the linear offsets."""
    at = [d for d, i in enumerate(expanded) if i is not None]
    rest = [d for d in range(len(self_shape)) if d not in at]
    lin_stride = sh.contiguous_strides(bshape)
    nb = len(bshape)
    if at[-1] - at[0] + 1 == len(at):  # adjacent: the index dims are replaced in place
        before, after = [d for d in rest if d < at[0]], [d for d in rest if d > at[-1]]
    else:  # torch moves the index dims to the front
        before, after = [], rest
    shape = tuple(self_shape[d] for d in before) + tuple(bshape) + tuple(self_shape[d] for d in after)
    target = tuple(target_stride[d] for d in before) + (0,) * nb + tuple(target_stride[d] for d in after)
    lin = (0,) * len(before) + tuple(lin_stride) + (0,) * len(after)
    return shape, target, lin


def _linearize(op, target, expanded, bshape):
    """int64 element offsets into target (contiguous over bshape): sum of wrapped index * stride,
    each index checked against its dim's size on the device."""
    lin = empty(tuple(bshape), dt.int64, target._device)
    n = lin.numel()
    if n == 0:
        return lin
    first = True
    for j, (d, i) in enumerate((d, i) for d, i in enumerate(expanded) if i is not None):
        sizes, (ist,) = geometry6(op, bshape, broadcast_strides(i._shape, i._stride, bshape))
        _kernel(_linear_kernel, FIRST=first)(_grid(n), i, lin, _err(target), n, *sizes, *ist, target._shape[d],
                                             target._stride[d], device_errors.code_of(op), j)
        first = False
    return lin


def _entries(expanded):
    return [None if i is None else (i._shape, i._stride, i._dtype) for i in expanded]


def index(self, indices):
    ix.check_indices(self, indices)
    expanded = _expand(self, indices)
    if all(i is None for i in expanded):
        return creation.clone(self)
    spec = ix.IndexSpec(self._shape, self._stride, _entries(expanded))
    out = creation.empty_strided(spec.shape, spec.stride, self._dtype, self._device)
    if 0 in spec.shape:
        return out
    expanded += [None] * (self.ndim - len(expanded))
    lin = _linearize("index", self, expanded, spec.index_shape)
    shape, src_stride, lin_stride = _layout(self._shape, self._stride, expanded, spec.index_shape)
    launch_indexed("index", shape, self, src_stride, lin, lin_stride, out, out._stride, src_indexed=True, sdim=1,
                   check=False)
    return out


def index_put_(self, indices, values, accumulate=False):
    ix.check_indices(self, indices)
    if ix.has_internal_overlap(self):
        import warnings
        warnings.warn("Use of index_put_ on expanded tensors is deprecated. Please clone() the tensor before "
                      "performing this operation. This also applies to advanced indexing e.g. "
                      "tensor[indices] = tensor", UserWarning, stacklevel=3)
    mask_dim = None if accumulate else ix.masked_fill_mask(self, indices, values)
    if mask_dim is not None:
        return _put_masked_fill(self, indices, mask_dim, values)
    values, = _on("index_put_", self, values)
    ix.assert_no_overlap(self, values)
    for i in indices:
        ix.assert_no_overlap(self, i)
    expanded = _expand(self, indices)
    if all(i is None for i in expanded):
        raise NotImplementedError("index_put_: at least one index tensor is needed")
    spec = ix.IndexSpec(self._shape, self._stride, _entries(expanded))
    ix.check_put(self, spec.shape, values)
    if 0 not in spec.shape:
        expanded += [None] * (self.ndim - len(expanded))
        mode = ADD if accumulate else STORE
        work = _work(self, mode)
        lin = _linearize("index_put_", work, expanded, spec.index_shape)
        shape, dst_stride, lin_stride = _layout(work._shape, work._stride, expanded, spec.index_shape)
        launch_indexed("index_put_", shape, values, broadcast_strides(values._shape, values._stride, shape), lin,
                       lin_stride, work, dst_stride, src_indexed=False, ddim=1, check=False, mode=mode)
        _finish(self, work)
    bump_version(self)
    return self


def _put_masked_fill(self, indices, dim, values):
    """x[mask] = one value: masked_fill_ with the mask placed at its dims (values is a 1-element CPU tensor)."""
    ix.assert_no_internal_overlap(self)
    mask = indices[dim]
    after = self.ndim - dim - mask.ndim
    placed = views.reshape(mask, tuple(mask._shape) + (1,) * after) if after else mask
    fill = array(values).reshape(()).item()
    if not self._dtype.is_complex and isinstance(fill, complex):
        fill = fill.real
    masked_fill(self, placed if placed._dtype is dt.bool_ else creation.to(placed, dt.bool_, placed._device), fill,
                out=self)
    return self


for _name in ("gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
              "index_fill", "index_reduce", "masked_fill", "masked_scatter", "masked_select", "take", "put", "nonzero"):
    getattr(m, _name).register(CUDA, globals()[_name])
nn.embedding.register(CUDA, embedding)
nn.embedding_dense_backward.register(CUDA, embedding_dense_backward)
ix.index.register(CUDA, index)
ix.index_put_.register(CUDA, index_put_)
