"""CUDA kernels for creation and copy: fill, and copy_ across devices, dtypes and strides.

copy_ picks the cheapest route: one memcpy when both sides are contiguous with the same dtype;
otherwise a strided, casting Triton copy on the device (staging host data through a contiguous
buffer of the destination's dtype first).
"""
import numpy as np
import triton
import triton.language as tl

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation as c
from vibetensor.ops.meta import bump_version
from vibetensor.runtime.cuda import graphs, launcher, memory
from vibetensor.runtime.cuda import stream as streams
from vibetensor.tensor.iterator import broadcast_strides, collapse
from vibetensor.tensor.tensor import array, empty, empty_cpu

CUDA = DispatchKey.CUDA
BLOCK = 1024
MAX_DIMS = 4


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
def _copy_kernel(src, dst, n, n1, n2, n3, s0, s1, s2, s3, d0, d1, d2, d3, BLOCK: tl.constexpr):
    """dst[i] = src[i] over a 4-d index space (sizes n0..n3, only n1..n3 needed to unravel)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    i3 = i % n3
    r = i // n3
    i2 = r % n2
    r = r // n2
    i1 = r % n1
    i0 = r // n1
    v = tl.load(src + i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3, mask=mask)
    tl.store(dst + i0 * d0 + i1 * d1 + i2 * d2 + i3 * d3, v.to(dst.dtype.element_ty), mask=mask)


fill_float = launcher.Kernel(_fill_kernel, IS_FLOAT=True, BLOCK=BLOCK)
fill_int = launcher.Kernel(_fill_kernel, IS_FLOAT=False, BLOCK=BLOCK)
copy_kernel = launcher.Kernel(_copy_kernel, BLOCK=BLOCK)


def _grid(n):
    return (triton.cdiv(n, BLOCK),)


def full(shape, value, dtype, device=None):
    value = c.full_meta(shape, value, dtype)  # torch's overflow check and conversion, before allocating
    if dtype.is_complex:
        raise NotImplementedError("full: complex tensors on CUDA are not supported yet")
    t = empty(shape, dtype, device)
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
    if dst._dtype.is_complex or src._dtype.is_complex:  # a same-dtype dense copy is a memcpy instead
        raise NotImplementedError("copy_: strided or casting copies of complex tensors are not supported on "
                                  "CUDA yet")
    n = dst.numel()
    if n == 0:
        return
    src_stride = broadcast_strides(src._shape, src._stride, dst._shape)
    shape, (ss, ds) = collapse(dst._shape, src_stride, dst._stride)
    if len(shape) > MAX_DIMS:
        raise NotImplementedError(f"copy_: more than {MAX_DIMS} non-mergeable dims on CUDA")
    pad = MAX_DIMS - len(shape)
    shape, ss, ds = (1,) * pad + shape, (0,) * pad + ss, (0,) * pad + ds
    copy_kernel(_grid(n), src, dst, n, shape[1], shape[2], shape[3], *ss, *ds)


def copy_(dst, src):
    c.copy_meta(dst, src)
    stream = streams.current_stream(dst._device.index if dst.is_cuda else src._device.index)
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
    bump_version(dst)
    return dst


def _dense(src, dtype):
    """A contiguous CUDA copy of src in `dtype`."""
    out = empty(src._shape, dtype, src._device)
    _device_copy(out, src)
    return out


c.full.register(CUDA, full)
c.copy_.register(CUDA, copy_)
