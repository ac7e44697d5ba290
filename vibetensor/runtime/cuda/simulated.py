"""A fake CUDA device for testing the allocator's logic on CPU.

It implements the device interface the allocator asks for (see allocator.py's docstring) with
bookkeeping only: raw_malloc hands out fake addresses and counts bytes against a capacity, streams
are counters of submitted/completed work that the test advances by hand, and events complete when
their stream's work up to the record point (and everything the stream waited on) has completed.
So a test decides exactly when "the GPU" finishes, which is what event-gated reuse depends on.
"""
import itertools

from vibetensor.runtime.cuda.allocator import DeviceOutOfMemory

MiB = 1 << 20
_SEGMENT_ALIGN = 2 * MiB  # cudaMalloc hands out 2 MiB-aligned ranges for allocations this size


class SimStream:
    """A stream as a queue of fake kernels: `launch()` enqueues one, `finish()` drains the queue."""
    __slots__ = ("device", "cuda_stream", "submitted", "completed", "waits")

    def __init__(self, device, handle):
        self.device, self.cuda_stream = device, handle  # `cuda_stream`: torch.cuda.Stream's int handle
        self.submitted = self.completed = 0
        self.waits = []  # events this stream waits on before running later work

    def launch(self, n=1):
        self.submitted += n

    def finish(self):
        for e in self.waits:
            e.synchronize()
        self.completed = self.submitted

    synchronize = finish

    def query(self):
        return self.completed >= self.submitted and all(e.query() for e in self.waits)

    def __repr__(self):
        return f"<SimStream {self.cuda_stream:#x} device={self.device.index}>"


class SimEvent:
    """Completes when its stream has completed the work submitted before `record`."""
    __slots__ = ("stream", "target", "deps")

    def __init__(self):
        self.stream, self.target, self.deps = None, 0, ()

    def record(self, stream):
        self.stream, self.target, self.deps = stream, stream.submitted, tuple(stream.waits)

    def query(self):
        if self.stream is None:
            return True
        return self.stream.completed >= self.target and all(d.query() for d in self.deps)

    def synchronize(self):
        if self.stream is not None:
            for d in self.deps:
                d.synchronize()
            self.stream.completed = max(self.stream.completed, self.target)


class _AsyncPool:
    """The driver's stream-ordered pool (cudaMallocAsync) in miniature: freed chunks stay reserved
    and are reused best-fit, at once by their own stream, by other streams once the free's event
    has completed; `trim_to` returns idle chunks to the device."""

    def __init__(self, device):
        self.device = device
        self.chunks = {}   # ptr -> size of every reserved chunk
        self.free = []     # [(size, ptr, stream, event)] idle chunks
        self.used = self.used_high = self.reserved_high = 0

    @property
    def reserved(self):
        return sum(self.chunks.values())

    def malloc(self, nbytes, stream):
        size = -(-nbytes // 512) * 512
        best = None
        for i, (sz, ptr, s, ev) in enumerate(self.free):
            if sz >= size and (s is stream or ev.query()) and (best is None or sz < self.free[best][0]):
                best = i
        if best is not None:
            sz, ptr, _, _ = self.free.pop(best)
        else:
            ptr, sz = self.device.raw_malloc(size), size
            self.chunks[ptr] = sz
            self.reserved_high = max(self.reserved_high, self.reserved)
        self.used += sz
        self.used_high = max(self.used_high, self.used)
        return ptr

    def free_chunk(self, ptr, stream):
        sz = self.chunks[ptr]
        ev = SimEvent()
        ev.record(stream)
        self.used -= sz
        self.free.append((sz, ptr, stream, ev))

    def trim_to(self, keep):
        idle = sorted(self.free, key=lambda c: -c[0])
        for c in idle:
            if self.reserved <= keep:
                break
            if c[3].query():
                self.free.remove(c)
                del self.chunks[c[1]]
                self.device.raw_free(c[1])


class SimulatedDevice:
    """A device with `capacity` bytes. `other_usage` models memory held outside our allocator
    (other processes, the CUDA context): it counts against capacity in `mem_get_info`."""

    def __init__(self, capacity=1 << 30, index=0, other_usage=0):
        self.index, self.capacity, self.other_usage = index, capacity, other_usage
        self._next_addr = 0x7F0000000000 + index * (1 << 40)
        self.live = {}  # ptr -> nbytes of every raw allocation
        self.num_malloc = self.num_free = 0
        self._handles = itertools.count(1)
        self.default_stream = SimStream(self, 0)
        self.streams = [self.default_stream]
        self._current = self.default_stream
        self.async_pool = _AsyncPool(self)

    # -- raw memory --------------------------------------------------------------------------
    @property
    def used(self):
        return sum(self.live.values())

    def raw_malloc(self, nbytes):
        if self.used + self.other_usage + nbytes > self.capacity:
            raise DeviceOutOfMemory(nbytes)
        ptr = self._next_addr
        self._next_addr += -(-nbytes // _SEGMENT_ALIGN) * _SEGMENT_ALIGN
        self.live[ptr] = nbytes
        self.num_malloc += 1
        return ptr

    def raw_free(self, ptr):
        if ptr not in self.live:
            raise RuntimeError(f"simulated device: free of unknown pointer {ptr:#x}")
        del self.live[ptr]
        self.num_free += 1

    def mem_get_info(self):
        return self.capacity - self.used - self.other_usage, self.capacity

    # -- streams and events ------------------------------------------------------------------
    def new_stream(self):
        s = SimStream(self, 0x1000 * next(self._handles))
        self.streams.append(s)
        return s

    def current_stream(self):
        return self._current

    def set_current_stream(self, stream):
        self._current = stream

    def create_event(self):
        return SimEvent()

    def stream_wait_event(self, stream, event):
        stream.waits.append(event)

    def synchronize(self):
        for s in self.streams:
            s.finish()

    # -- stream-ordered pool (backend:cudaMallocAsync) ---------------------------------------
    def malloc_async(self, nbytes, stream):
        return self.async_pool.malloc(nbytes, stream)

    def free_async(self, ptr, stream):
        self.async_pool.free_chunk(ptr, stream)

    def pool_trim_to(self, nbytes):
        self.async_pool.trim_to(nbytes)

    def pool_usage(self):
        """(reserved current, reserved high, used current, used high), as cudaMemPoolGetAttribute."""
        p = self.async_pool
        return p.reserved, p.reserved_high, p.used, p.used_high

    def pool_reset_peaks(self):
        p = self.async_pool
        p.reserved_high, p.used_high = p.reserved, p.used
