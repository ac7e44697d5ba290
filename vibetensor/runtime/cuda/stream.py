"""Streams and events with torch.cuda's API: Stream, Event, the per-thread current stream.

The default stream of each device is the legacy NULL stream (handle 0), as in PyTorch, so work
on it orders with everything. Capture into a CUDA graph needs another stream (`Stream()`).
"""
import threading

from vibetensor.runtime.cuda import device_errors
from vibetensor.runtime.cuda import driver as drv


class Stream:
    """A CUDA stream on one device. `Stream(device=None, priority=0)`; lower priority numbers run
    first (range from `priority_range()`); `Stream.default(i)` wraps the NULL stream."""
    __slots__ = ("device_index", "handle", "cuda_stream", "priority", "_owned", "__weakref__")

    def __init__(self, device=None, priority=0, _handle=None):
        index = drv.current_device() if device is None else _index(device)
        self.device_index, self.priority = index, priority
        if _handle is not None:
            self.handle, self._owned = _handle, False
            self.cuda_stream = int(_handle)  # (torch.cuda.Stream's int handle: a slot, read per launch)
            return
        cu = drv._driver()
        with drv.on_device(index):  # created in its device's context; the current device stays
            lo, hi = priority_range()
            clamped = max(hi, min(lo, priority))  # greatest priority is the smallest number
            self.handle = drv.call(cu.cuStreamCreateWithPriority, cu.CUstream_flags.CU_STREAM_NON_BLOCKING, clamped)
        self.cuda_stream = int(self.handle)
        self._owned = True

    @classmethod
    def default(cls, index):
        s = _defaults.get(index)
        if s is None:
            from cuda.bindings import driver as cu
            s = _defaults[index] = cls(index, 0, _handle=cu.CUstream(0))
        return s

    @property
    def device(self):
        from vibetensor.tensor.device import device
        return device("cuda", self.device_index)

    def query(self):
        """True when all work queued on the stream has finished."""
        return _on(self.device_index, _query, drv._driver().cuStreamQuery, self.handle)

    def synchronize(self):
        _on(self.device_index, drv.call, drv._driver().cuStreamSynchronize, self.handle)
        device_errors.check(self.device_index)  # a kernel's out-of-range index raises here

    def wait_event(self, event):
        _on(self.device_index, drv.call, drv._driver().cuStreamWaitEvent, self.handle, event.handle, 0)

    def wait_stream(self, stream):
        """Work queued here after this call waits for everything queued on `stream` so far."""
        if stream is not self:
            self.wait_event(stream.record_event())

    def record_event(self, event=None):
        return _on(self.device_index, self._record_event, event)  # a new event belongs to the stream's device

    def _record_event(self, event):
        event = event or Event()
        event.record(self)
        return event

    # Identity: one Stream object per handle (defaults are cached), and the allocator hashes
    # streams on every malloc/free, so the C-level identity hash matters.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __repr__(self):
        return f"<torch.cuda.Stream device=cuda:{self.device_index} cuda_stream={hex(int(self.handle))}>"

    def __del__(self):
        if getattr(self, "_owned", False):
            try:
                drv._driver().cuStreamDestroy(self.handle)
            except Exception:  # interpreter shutdown: the driver may be gone already
                pass


class Event:
    """A CUDA event: record on a stream, wait, query, synchronize, elapsed_time (ms)."""
    __slots__ = ("handle", "enable_timing", "recorded", "__weakref__")

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        cu = drv._driver()
        drv.ensure_context()
        flags = 0 if enable_timing else int(cu.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        if blocking:
            flags |= int(cu.CUevent_flags.CU_EVENT_BLOCKING_SYNC)
        self.handle = drv.call(cu.cuEventCreate, flags)
        self.enable_timing, self.recorded = enable_timing, False

    def record(self, stream=None):
        stream = stream or current_stream()
        _on(stream.device_index, drv.call, drv._driver().cuEventRecord, self.handle, stream.handle)
        self.recorded = True

    def wait(self, stream=None):
        (stream or current_stream()).wait_event(self)

    def query(self):
        """True when the work before the recorded point has finished."""
        return _query(drv._driver().cuEventQuery, self.handle)

    def synchronize(self):
        drv.call(drv._driver().cuEventSynchronize, self.handle)

    def elapsed_time(self, end):
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if not (self.recorded and end.recorded):
            raise RuntimeError("Both events must be recorded before calculating elapsed time.")
        return drv.call(drv._driver().cuEventElapsedTime, self.handle, end.handle)

    def __del__(self):
        try:
            drv._driver().cuEventDestroy(self.handle)
        except Exception:
            pass


def _on(index, fn, *args):
    """fn(*args) with device `index` and its context current: the NULL stream's handle (0) names the
    current context's own, so work on another device's default stream needs that device current
    (torch's device guard). A cheap test when it already is."""
    if drv.in_context(index):
        return fn(*args)
    with drv.on_device(index):
        return fn(*args)


def _query(fn, handle):
    """A stream/event query: True done, False still running, CudaError on a real failure."""
    err, = fn(handle)
    if int(err) == int(drv._driver().CUresult.CUDA_ERROR_NOT_READY):
        return False
    if int(err) != 0:
        raise drv._error(fn.__name__, err)
    return True


def _index(device):
    if isinstance(device, int):
        return device
    if device is None:
        return drv.current_device()
    d = getattr(device, "index", None)
    if d is None and isinstance(device, str):
        _, _, n = device.partition(":")
        d = int(n) if n else None
    return drv.current_device() if d is None else d


_defaults = {}
class _Local(threading.local):
    """Per-thread current stream per device (`streams`) and their raw handles (`handles`, what
    launches read). Class defaults, so readers use plain attribute access (a getattr with a default
    that misses raises internally: ~1 us a lookup)."""
    streams = None
    handles = None


_local = _Local()


def priority_range():
    """(least, greatest) priority numbers, as torch.cuda.Stream.priority_range."""
    return tuple(drv.call(drv._driver().cuCtxGetStreamPriorityRange))


def current_stream(device=None):
    return current_stream_at(device if device.__class__ is int else drv.current_device() if device is None
                             else _index(device))


def current_stream_at(index):
    """This thread's current stream on device `index` (an int), its caches read directly: the
    allocator asks on every malloc, the autograd stream hooks for every node made and run."""
    streams = _local.streams
    if streams is not None:
        s = streams.get(index)
        if s is not None:
            return s
    s = _defaults.get(index)
    return s if s is not None else Stream.default(index)


def set_stream(stream):
    streams = _local.streams
    if streams is None:
        streams = _local.streams = {}
        _local.handles = {}
    streams[stream.device_index] = stream
    _local.handles[stream.device_index] = stream.cuda_stream  # what launches read: one dict lookup


def current_stream_handle(device_index):
    """The raw handle of this thread's current stream on a device (0: the NULL stream). The
    launch path's version of current_stream(), without building objects."""
    handles = _local.handles
    return handles.get(device_index, 0) if handles else 0


class stream:
    """`with torch.cuda.stream(s):` makes s the current stream (and its device current)."""

    def __init__(self, s):
        self.s, self.prev_stream, self.guard = s, None, None

    def __enter__(self):
        if self.s is None:
            return None
        self.guard = drv.device_guard(self.s.device_index).__enter__()
        self.prev_stream = current_stream(self.s.device_index)
        set_stream(self.s)
        return self.s

    def __exit__(self, *exc):
        if self.s is None:
            return
        set_stream(self.prev_stream)
        self.guard.__exit__(*exc)


def synchronize(device=None):
    with drv.on_device(drv.current_device() if device is None else _index(device)):
        drv.call(drv._driver().cuCtxSynchronize)
