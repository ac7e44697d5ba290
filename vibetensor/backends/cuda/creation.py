"""CUDA kernels for creation and copy: fill, and copy_ across devices, dtypes and strides.

copy_ picks the cheapest route: one memcpy when both sides are contiguous with the same dtype;
otherwise a strided, casting Triton copy on the device (staging host data through a contiguous
buffer of the destination's dtype first).
"""
import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.backends.cuda.plan import planned
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation as c
from vibetensor.ops.meta import bump_version
from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import graphs, launcher, memory
from vibetensor.runtime.cuda import stream as streams
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.iterator import broadcast_strides, collapse
from vibetensor.tensor.tensor import array, empty, empty_cpu

CUDA = DispatchKey.CUDA
BLOCK = 1024
MAX_DIMS = 6  # dims a strided kernel unravels (after collapsing mergeable ones)


@triton.jit
def _fill_kernel(out_ptr, bits, n, IS_FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    """out[:] = value, where `bits` is the value as int64, or a float64's bit pattern (exact for
    every dtype: Triton would pass a Python float as float32)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    v = tl.full((BLOCK,), bits, tl.int64)
    if IS_FLOAT:
        v = v.to(tl.float64, bitcast=True)
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def unravel6(k, n1, n2, n3, n4, n5):
    """The coordinates (c0..c5) of flat index k in a 6-d index space of sizes (n0, n1..n5). Sizes of 1
    are compile-time constants (Triton specialises integer arguments equal to 1), so the padding dims
    of a collapsed shape cost no division."""
    c5 = k % n5
    r = k // n5
    c4 = r % n4
    r = r // n4
    c3 = r % n3
    r = r // n3
    c2 = r % n2
    r = r // n2
    c1 = r % n1
    c0 = r // n1
    return c0, c1, c2, c3, c4, c5


@triton.jit
def _copy_kernel(src, dst, n, n1, n2, n3, n4, n5, s0, s1, s2, s3, s4, s5, d0, d1, d2, d3, d4, d5,
                 BLOCK: tl.constexpr):
    """dst[i] = src[i] over a 6-d index space (sizes n0..n5, only n1..n5 needed to unravel)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    c0, c1, c2, c3, c4, c5 = unravel6(i, n1, n2, n3, n4, n5)
    v = tl.load(src + c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4 + c5 * s5, mask=mask)
    tl.store(dst + c0 * d0 + c1 * d1 + c2 * d2 + c3 * d3 + c4 * d4 + c5 * d5, v.to(dst.dtype.element_ty),
             mask=mask)


def geometry6(op, shape, *strides):
    """(n1..n5, [6 strides per operand]) of an iteration space, collapsed and padded to 6 dims: the
    arguments of kernels that unravel with unravel6."""
    shape, strides = collapse(tuple(shape), *[tuple(s) for s in strides])
    if len(shape) > MAX_DIMS:
        raise NotImplementedError(f"{op}: more than {MAX_DIMS} non-mergeable dims on CUDA")
    pad = MAX_DIMS - len(shape)
    return ((1,) * pad + shape)[1:], [(0,) * pad + s for s in strides]


fill_float = launcher.Kernel(_fill_kernel, IS_FLOAT=True, BLOCK=BLOCK)
fill_int = launcher.Kernel(_fill_kernel, IS_FLOAT=False, BLOCK=BLOCK)
copy_kernel = launcher.Kernel(_copy_kernel, BLOCK=BLOCK)


def _grid(n):
    return (launcher.cdiv(n, BLOCK),)


def _complex():
    from vibetensor.backends.cuda import complex as cx  # (it imports this module)
    return cx


def full(shape, value, dtype, device=None):
    value = c.full_meta(shape, value, dtype)  # torch's overflow check and conversion, before allocating
    t = empty(shape, dtype, device)
    if dtype.is_complex:
        return _complex().fill(t, value)
    n = t.numel()
    if n:
        is_float = isinstance(value, float) or dtype.is_floating_point
        bits = int(np.float64(value).view(np.int64)) if is_float else int(value)
        (fill_float if is_float else fill_int)(_grid(n), t, bits, n)
    return t


def _contiguous_same(dst, src):
    return dst._dtype is src._dtype and dst.is_contiguous() and src.is_contiguous() and \
        tuple(dst._shape) == tuple(src._shape)


def _device_copy(dst, src):
    """Strided, casting copy between two CUDA tensors of the same shape (src may broadcast)."""
    if dst._dtype.is_complex or src._dtype.is_complex:  # (re, im) pairs
        return _complex().copy(dst, src)
    n = dst.numel()
    if n == 0:
        return
    src_stride = broadcast_strides(src._shape, src._stride, dst._shape)
    sizes, (ss, ds) = geometry6("copy_", dst._shape, src_stride, dst._stride)
    copy_kernel(_grid(n), src, dst, n, *sizes, *ss, *ds)


def copy_(dst, src):
    c.copy_meta(dst, src)
    if dst.is_cuda and src.is_cuda and dst._device.index != src._device.index:
        _peer_copy(dst, src)
    else:
        index = dst._device.index if dst.is_cuda else src._device.index
        if drv.in_context(index):
            _copy_on_device(dst, src, index)
        else:  # the tensors' GPU is not the current one: run there, on its current stream (torch's device guard)
            with drv.on_device(index):
                _copy_on_device(dst, src, index)
    bump_version(dst)
    return dst


def _copy_on_device(dst, src, index):
    """copy_ where one GPU is involved (device `index`, current): device-device, host-device, device-host."""
    stream = streams.current_stream(index)
    if dst.is_cuda and src.is_cuda:
        if _contiguous_same(dst, src):
            memory.copy_d2d(dst.data_ptr(), src.data_ptr(), dst.numel() * dst.itemsize, stream)
        else:
            _device_copy(dst, src)
    elif dst.is_cuda:  # host -> device
        host = array(src)
        if not (_contiguous_same(dst, src) and host.flags.c_contiguous):
            host = np.ascontiguousarray(np.broadcast_to(host, dst._shape).astype(dst._dtype.np))
        block = memory.block_of(host)  # pinned memory: the copy may run asynchronously
        target = dst if dst.is_contiguous() else empty(dst._shape, dst._dtype, dst._device)
        memory.copy_h2d(target.data_ptr(), host.ctypes.data, host.nbytes, stream, blocking=block is None)
        if target is not dst:
            _device_copy(dst, target)
        if block is not None:
            block.record_stream(stream)
    else:  # device -> host: the host waits for the bytes, which a graph capture cannot do
        graphs.check_not_capturing("copy from CUDA to CPU (e.g. .cpu(), .item(), .tolist(), printing)")
        dense = src if src.is_contiguous() and src._dtype is dst._dtype else _dense(src, dst._dtype)
        staging = empty_cpu(dense._shape, dense._dtype)
        memory.copy_d2h(array(staging).ctypes.data, dense.data_ptr(), dense.numel() * dense.itemsize, stream,
                        blocking=True)
        np.copyto(array(dst), array(staging), casting="unsafe")


def _peer_copy(dst, src):
    """Between two GPUs, as torch does it: on the source's current stream, after the work already
    queued on both devices' current streams, and before any work queued later on the destination's.
    Strided or casting copies go through dense buffers on either side of one cuMemcpyPeerAsync."""
    if dst.numel() == 0:
        return
    si, di = src._device.index, dst._device.index
    same_dtype = src._dtype is dst._dtype
    with drv.on_device(si):
        dense_src = src if same_dtype and src.is_contiguous() and tuple(src._shape) == tuple(dst._shape) else \
            _dense_broadcast(src, dst)
    with drv.on_device(di):
        dst_stream = streams.current_stream(di)
        target = dst if dst.is_contiguous() else empty(dst._shape, dst._dtype, dst._device)
        ready = dst_stream.record_event()  # dst's memory may still be in use on its stream
    with drv.on_device(si):
        src_stream = streams.current_stream(si)
        src_stream.wait_event(ready)
        memory.copy_peer(target.data_ptr(), di, dense_src.data_ptr(), si, dst.numel() * dst.itemsize, src_stream)
        done = src_stream.record_event()
    with drv.on_device(di):
        dst_stream.wait_event(done)
        if target is not dst:
            _device_copy(dst, target)


def _dense_broadcast(src, dst):
    """src broadcast to dst's shape, contiguous, in dst's dtype, on src's device."""
    out = empty(dst._shape, dst._dtype, src._device)
    _device_copy(out, src)
    return out


def _dense(src, dtype):
    """A contiguous CUDA copy of src in `dtype`."""
    out = empty(src._shape, dtype, src._device)
    _device_copy(out, src)
    return out


# -- ranges: arange, linspace, eye -----------------------------------------------------------------------------------
# Computed on the device (no host data copied: capturable), in the arithmetic torch's CUDA kernels use:
# arange in accscalar_t (float32 for float32 and half types, double for float64, int64 for integers);
# linspace two-sided, step in float for integer results and in the dtype otherwise.

@triton.jit
def _range_kernel(out_ptr, n, start_bits, end_bits, step_bits, steps, LINSPACE: tl.constexpr,
                  ACC: tl.constexpr, INT: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    if INT and not LINSPACE:  # integer arange: exact int64 arithmetic
        v = tl.full((BLOCK,), start_bits, tl.int64) + tl.full((BLOCK,), step_bits, tl.int64) * i
    else:
        start = tl.full((BLOCK,), start_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        step = tl.full((BLOCK,), step_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
        if LINSPACE:
            end = tl.full((BLOCK,), end_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
            back = (steps - 1 - i).to(ACC)
            v = tl.where(i < steps // 2, start + step * i.to(ACC), end - step * back)
        else:
            v = start + step * i.to(ACC)
    tl.store(out_ptr + i, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _eye_kernel(out_ptr, n, cols, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + i, ((i // cols) == (i % cols)).to(tl.float32).to(out_ptr.dtype.element_ty), mask=i < n)


_range_kernels = {}
eye_kernel = launcher.Kernel(_eye_kernel, BLOCK=BLOCK)


def _range_launch(res, n, start, end, step, steps, linspace):
    d = res._dtype
    if d.is_complex:
        raise NotImplementedError(f"{'linspace' if linspace else 'arange'}: complex tensors on CUDA are not "
                                  "supported yet")
    integral = d.category < 2
    acc = tl.float64 if d is dt.float64 else tl.float32
    key = (linspace, acc, integral)
    k = _range_kernels.get(key)
    if k is None:
        k = _range_kernels[key] = launcher.Kernel(_range_kernel, LINSPACE=linspace, ACC=acc, INT=integral,
                                                  BLOCK=BLOCK)
    target = res if res.is_contiguous() else empty(res._shape, d, res._device)
    if integral and not linspace:
        bits = (int(start), 0, int(step))
    else:
        bits = tuple(int(np.float64(v).view(np.int64)) for v in (start, end, step))
    k(_grid(n), target, n, *bits, steps)
    if target is not res:
        copy_(res, target)


def _device_of(device, out):
    return out._device if device is None and out is not None else device


def arange(start, end, step, dtype, device=None, out=None):
    shape = c.arange_meta(start, end, step, dtype)
    res = c.range_output("arange", out, shape, dtype, _device_of(device, out))
    if shape[0]:
        _range_launch(res, shape[0], start, 0, step, 0, False)
    return _bumped(res, out)


def linspace(start, end, steps, dtype, device=None, out=None):
    shape = c.linspace_meta(start, end, steps, dtype)
    res = c.range_output("linspace", out, shape, dtype, _device_of(device, out))
    if dtype.is_complex and steps:  # each part: the real linspace of those parts of start and end
        start, end = complex(start), complex(end)
        for part, lo, hi in zip(_complex().parts(res), (start.real, start.imag), (end.real, end.imag)):
            linspace(lo, hi, steps, dtype.to_real(), out=part)
    elif steps == 1:  # the start alone (both ends equal, so either formula gives it)
        _range_launch(res, 1, start, start, 0.0, 1, True)
    elif steps:
        if dtype.category < 2:  # torch: integer endpoints, a float step, the sum truncated
            start, end = int(start), int(end)
            step = float(np.float32(end - start) / np.float32(steps - 1))
        elif dtype is dt.float64:
            step = (float(end) - float(start)) / (steps - 1)
        else:
            step = float(np.float32(np.float32(end) - np.float32(start)) / np.float32(steps - 1))
        _range_launch(res, steps, start, end, step, steps, True)
    return _bumped(res, out)


def eye(n, m, dtype, device=None, out=None):
    shape = c.eye_meta(n, m, dtype)
    res = c.range_output("eye", out, shape, dtype, _device_of(device, out))
    count = n * m
    if count:
        # complex: the real identity, cast (its imaginary parts 0)
        target = res if res.is_contiguous() and not dtype.is_complex else empty(res._shape, dtype.to_real(),
                                                                                 res._device)
        eye_kernel(_grid(count), target, count, m)
        if target is not res:
            copy_(res, target)
    return _bumped(res, out)


@triton.jit
def _logspace_kernel(out_ptr, n, start_bits, end_bits, step_bits, base_bits, steps,
                     KIND: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """torch's CUDA logspace: base ** (start + step * i) for the first half, base ** (end - step *
    (steps - 1 - i)) for the rest. KIND 0: integer results (float32 arithmetic, truncated); 1: float32 /
    float64 (in that type); 2: half types (each operation rounded to the dtype, as c10::Half's)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    DT: tl.constexpr = out_ptr.dtype.element_ty
    start = tl.full((BLOCK,), start_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
    end = tl.full((BLOCK,), end_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
    step = tl.full((BLOCK,), step_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
    base = tl.full((BLOCK,), base_bits, tl.int64).to(tl.float64, bitcast=True).to(ACC)
    first = i < steps // 2
    back = steps - i - 1
    if KIND == 2:
        up = (step * i.to(tl.float32).to(DT).to(ACC)).to(DT).to(ACC)
        down = (step * back.to(tl.float32).to(DT).to(ACC)).to(DT).to(ACC)
        e = tl.where(first, (start + up).to(DT).to(ACC), (end - down).to(DT).to(ACC))
    else:
        e = tl.where(first, start + step * i.to(ACC), end - step * back.to(ACC))
    if KIND == 0:  # truncated to an integer: the power correctly rounded to float (Triton's powf can miss 10^2)
        r = libdevice.pow(base.to(tl.float64), e.to(tl.float64)).to(tl.float32)
    else:
        r = libdevice.pow(base, e)
    tl.store(out_ptr + i, r.to(DT), mask=mask)


def _logspace_scalars(start, end, steps, base, dtype):
    """(start, end, step, base) as torch's CUDA kernel holds them (see _logspace_kernel's KIND)."""
    f32 = np.float32
    if dtype.category < 2:
        s, e = int(start), int(end)
        return float(f32(s)), float(f32(e)), float(f32(e - s) / f32(steps - 1)), float(f32(base))
    t = dtype.np.type
    if dtype in (dt.float32, dt.float64):
        s, e = t(start), t(end)
        return float(s), float(e), float((e - s) / t(steps - 1)), float(t(base))
    s, e = t(f32(start)), t(f32(end))
    step = t(f32(t(f32(e) - f32(s))) / f32(t(f32(steps - 1))))
    return float(s), float(e), float(step), float(t(f32(base)))


def logspace(start, end, steps, base, dtype, device=None, out=None):
    shape = c.linspace_meta(start, end, steps, dtype)
    res = c.range_output("logspace", out, shape, dtype, _device_of(device, out))
    if dtype.is_complex:  # backends/cuda/complex.py
        return _bumped(_complex().logspace(res, start, end, steps, base), out)
    if steps == 1:  # torch fills pow(base, start), computed in double
        copy_(res, full((1,), float(np.power(np.float64(base), np.float64(start))), dtype, res._device))
    elif steps:
        kind = 0 if dtype.category < 2 else 1 if dtype in (dt.float32, dt.float64) else 2
        acc = tl.float64 if dtype is dt.float64 else tl.float32
        target = res if res.is_contiguous() else empty(res._shape, dtype, res._device)
        bits = [int(np.float64(v).view(np.int64)) for v in _logspace_scalars(start, end, steps, base, dtype)]
        launcher.cached_kernel(_logspace_kernel, KIND=kind, ACC=acc, BLOCK=BLOCK)(_grid(steps), target, steps,
                                                                                   *bits, steps)
        if target is not res:
            copy_(res, target)
    return _bumped(res, out)


def _bumped(res, out):
    if out is not None:
        bump_version(res)
    return res


c.full.register(CUDA, full)
c.copy_.register(CUDA, copy_)
c.arange.register(CUDA, arange)
c.linspace.register(CUDA, linspace)
c.eye.register(CUDA, eye)
c.logspace.register(CUDA, logspace)


def empty_outside_graph_pool(shape, dtype, device):
    """A tensor from the ordinary pool (allocated for the NULL stream, which no capture allocates
    for), never from a capturing graph's private pool. For buffers whose contents are written
    outside the graph (before a replay): a private-pool block may be one that an earlier kernel of
    the same graph used for a temporary and freed, and that kernel would overwrite the buffer on
    every replay (torch allocates such buffers before capture)."""
    with streams.stream(streams.Stream.default(device.index or 0)):
        return empty(shape, dtype, device)


# contiguous() and clone() are composites (empty_like + copy_); on CUDA they replay a plan, so a
# repeated layout copy costs one allocation and one launch on the host
c.contiguous.register(CUDA, planned(c._contiguous))
c.clone.register(CUDA, planned(c._clone))
