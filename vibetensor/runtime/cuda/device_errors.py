"""Device-side errors: an out-of-range index found by a kernel becomes a Python IndexError at the
next synchronisation, and the CUDA context stays usable.

Each device has one small int64 buffer, allocated once from our allocator:

    [code, bad index, dim, size]     code 0: no error; else 1 + the position of the op's name in _OPS

A kernel that checks indices skips every out-of-range access (so nothing illegal is touched) and
records the first one with an atomic compare-and-swap on `code`. Nothing reads the buffer on the
op path (no sync): the host looks at it only where it waits for the device anyway (synchronize,
Stream/Event.synchronize, device-to-host copies), and only if a checking kernel ran since the last
look, so programs that never index pay nothing. Under CUDA graph capture nothing is read (that would
sync); a graph that captured checking kernels makes every later synchronisation look, since its
replays may set the flag.
"""
import ctypes
import threading

from vibetensor.runtime.cuda import driver as drv

NBYTES = 32
_lock = threading.Lock()
_OPS = []            # op names; the code of _OPS[k] is k + 1
_codes = {}          # name -> code
_buffers = {}        # device index -> Allocation (kept for the life of the process)
_pending = set()     # devices on which a checking kernel was launched since the last look
_sticky = set()      # devices with checking kernels captured into a graph: always look


def code_of(op):
    """The error code that names `op` in the buffer (one per op name, assigned on first use)."""
    code = _codes.get(op)
    if code is None:
        with _lock:
            code = _codes.get(op)
            if code is None:
                _OPS.append(op)
                code = _codes[op] = len(_OPS)
    return code


def buffer_ptr(index):
    """The device address of device `index`'s error buffer, allocated (and zeroed) on first use.
    Marks the device as needing a look at the next synchronisation: call it once per launch."""
    alloc = _buffers.get(index)
    if alloc is None:
        alloc = _allocate(index)
    _pending.add(index)
    from vibetensor.runtime.cuda import graphs
    if graphs.is_capturing():
        _sticky.add(index)
    return alloc.ptr


def _allocate(index):
    from vibetensor.runtime import cuda as rt
    from vibetensor.runtime.cuda import stream as streams
    with _lock:
        alloc = _buffers.get(index)
        if alloc is not None:
            return alloc
        from vibetensor.runtime.cuda import graphs
        default = streams.Stream.default(index)
        # never from a graph's private pool: the buffer outlives every graph (the default stream is
        # not a capture stream). Zeroed on the current stream, before the first kernel that uses it,
        # unless that stream is capturing (a captured memset would only run at replay)
        alloc = rt.get_allocator(index).malloc(NBYTES, default)
        zero_on = default if graphs.is_capturing() else streams.current_stream(index)
        drv.call(drv._driver().cuMemsetD8Async, alloc.ptr, 0, NBYTES, zero_on.handle)
        _buffers[index] = alloc
        return alloc


def check(index=None):
    """Raise the pending device-side error of device `index` (every device with one if None), and
    clear it. Call only where the host has just waited for the device's work."""
    if not _pending and not _sticky:
        return
    from vibetensor.runtime.cuda import graphs
    if graphs.is_capturing():
        return
    devices = [index] if index is not None else sorted(_pending | _sticky)
    for i in devices:
        if i in _pending or i in _sticky:
            _check_device(i)


_readers = {}  # device index -> a private non-blocking stream: the read waits for no other work


def _check_device(index):
    from vibetensor.runtime.cuda import stream as streams
    alloc = _buffers.get(index)
    _pending.discard(index)
    if alloc is None:
        return
    cu = drv._driver()
    host = (ctypes.c_int64 * 4)()
    with drv.device_guard(index):
        s = _readers.get(index)
        if s is None:
            s = _readers[index] = streams.Stream(index)
        drv.call(cu.cuMemcpyDtoHAsync, ctypes.addressof(host), alloc.ptr, NBYTES, s.handle)
        drv.call(cu.cuStreamSynchronize, s.handle)
        code, bad, dim, size = list(host)
        if code == 0:
            return
        drv.call(cu.cuMemsetD8Async, alloc.ptr, 0, NBYTES, s.handle)
        drv.call(cu.cuStreamSynchronize, s.handle)
    raise IndexError(message(code, bad, dim, size))


def message(code, bad, dim, size):
    op = _OPS[code - 1] if 0 < code <= len(_OPS) else "unknown op"
    return f"{op}(): index {bad} is out of bounds for dimension {dim} with size {size}"


def _reset():
    """Forget the pending marks (tests)."""
    _pending.clear()
    _sticky.clear()
