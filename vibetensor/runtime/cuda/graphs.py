"""CUDA graphs: capture the work queued on a stream, replay it with one launch.

    g = CUDAGraph()
    with graph(g, stream=s):     # capture on a side stream (the NULL stream cannot be captured)
        ...                      # launches queue into the graph instead of running
    g.replay()

During capture, `is_capturing()` is True for this thread: ops that would synchronise check it and
raise (an op that syncs during capture would invalidate the capture).

State that must change between replays (the Philox offset of random ops) is kept by the backends
in `g.extras`, with a hook `g.add_replay_hook(fn)`: fn(stream) runs before each launch, queued on
the replay stream (e.g. a one-thread kernel writing the next offset into a device buffer that the
captured kernels read).
"""
import threading

from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import stream as streams

_capturing = threading.local()
_side_streams = {}  # device index -> the default capture stream (one per device, as torch's)


def current_graph():
    """The CUDAGraph this thread is capturing into, or None."""
    return getattr(_capturing, "graph", None)


def is_capturing():
    """True while this thread is capturing into a CUDA graph."""
    return getattr(_capturing, "graph", None) is not None


def is_current_stream_capturing():
    """torch.cuda.is_current_stream_capturing: the current stream is the one being captured."""
    g = current_graph()
    return g is not None and streams.current_stream(g.device_index) is g.stream


def is_stream_capturing(stream):
    """Whether `stream` is being captured into a CUDA graph (by this thread, on it or on a stream it
    joined): a driver query, for the rare paths that must tell (an event recorded there is never
    recorded for real)."""
    cu = drv._driver()
    status = drv.call(cu.cuStreamIsCapturing, stream.handle)
    return status == cu.CUstreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE


def check_not_capturing(op):
    """Ops that must synchronise with the host call this first (item, nonzero, printing...)."""
    if is_capturing():
        raise RuntimeError(f"{op}: cannot synchronise with the host while capturing a CUDA graph "
                           "(the operation's result is host data); move it outside the captured region")


_MODES = {"global": "CU_STREAM_CAPTURE_MODE_GLOBAL", "thread_local": "CU_STREAM_CAPTURE_MODE_THREAD_LOCAL",
          "relaxed": "CU_STREAM_CAPTURE_MODE_RELAXED"}


class CUDAGraph:
    """A captured graph, its executable instance, and its private memory pool.

    Allocations made on the capture stream while capturing come from the graph's private pool
    (the replayed kernels keep using those addresses); the pool stays reserved until the graph is
    reset or dies. Pass `pool=` (another graph's `pool()` or `graph_pool_handle()`) to share one."""

    def __init__(self):
        self.graph = self.exec = self.stream = None
        self.pool_id = None
        self.extras = {}         # backends' per-capture state (e.g. one Philox record per generator)
        self._before_replay = []  # fn(stream), run before each launch

    @property
    def device_index(self):
        return self.stream.device_index

    def pool(self):
        return self.pool_id

    def add_replay_hook(self, fn):
        self._before_replay.append(fn)

    def capture_begin(self, stream=None, pool=None, capture_error_mode="thread_local"):
        from vibetensor.runtime import cuda as rt
        stream = stream or streams.current_stream()
        if stream.cuda_stream == 0:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream "
                               "(use torch.cuda.Stream() and torch.cuda.stream(s))")
        if is_capturing():
            raise RuntimeError("CUDAGraph.capture_begin: this thread is already capturing a CUDA graph")
        if self.exec is not None or self.graph is not None:
            raise RuntimeError("CUDAGraph.capture_begin: this graph was already captured; call reset() first")
        if capture_error_mode not in _MODES:
            raise ValueError(f"capture_error_mode must be one of {sorted(_MODES)}, got {capture_error_mode!r}")
        self.pool_id = pool if pool is not None else rt.graph_pool_handle()
        allocator = rt.get_allocator(stream.device_index)
        capture_handle = stream.cuda_stream
        allocator.begin_allocate_to_pool(self.pool_id, lambda s: s.cuda_stream == capture_handle)
        cu = drv._driver()
        mode = getattr(cu.CUstreamCaptureMode, _MODES[capture_error_mode])
        try:
            drv.call(cu.cuStreamBeginCapture, stream.handle, mode)
        except Exception:
            allocator.end_allocate_to_pool(self.pool_id)
            raise
        self.stream = stream
        _capturing.graph = self

    def capture_end(self, instantiate=True):
        """End the capture; `instantiate=False` (the block raised) discards what was captured."""
        from vibetensor.runtime import cuda as rt
        cu = drv._driver()
        _capturing.graph = None
        try:
            self.graph = drv.call(cu.cuStreamEndCapture, self.stream.handle)
        finally:
            rt.get_allocator(self.stream.device_index).end_allocate_to_pool(self.pool_id)
        if instantiate:
            self.exec = drv.call(cu.cuGraphInstantiate, self.graph, 0)

    def replay(self, stream=None):
        if self.exec is None:
            raise RuntimeError("CUDAGraph.replay: the graph has not been captured")
        s = stream or streams.current_stream(self.stream.device_index)
        for hook in self._before_replay:
            hook(s)
        drv.call(drv._driver().cuGraphLaunch, self.exec, s.handle)

    def reset(self):
        cu = drv._driver()
        if self.exec is not None:
            cu.cuGraphExecDestroy(self.exec)
        if self.graph is not None:
            cu.cuGraphDestroy(self.graph)
        self._before_replay, self.extras = [], {}  # their buffers return to the pool before it is released
        if self.pool_id is not None and self.stream is not None:
            from vibetensor.runtime import cuda as rt
            rt.get_allocator(self.stream.device_index).release_pool(self.pool_id)
        self.graph = self.exec = self.pool_id = None

    def __del__(self):
        try:
            self.reset()
        except Exception:
            pass


def default_capture_stream(device_index=None):
    """One side stream per device for captures that name none (creating streams per capture would
    leak driver streams until the garbage collector ran)."""
    index = drv.current_device() if device_index is None else device_index
    s = _side_streams.get(index)
    if s is None:
        s = _side_streams[index] = streams.Stream(index)
    return s


class graph:
    """`with graph(g, pool=None, stream=None, capture_error_mode="thread_local"):` captures the block
    into g on stream s (a side stream by default), allocating from g's private pool (or the shared
    `pool`). If the block raises, the capture is ended and discarded, and the error propagates.
    (torch's default mode is "global", which also fails unsafe calls made by other threads, such as
    a loader thread's page-locked allocations; pass it to get that.)"""

    def __init__(self, cuda_graph, pool=None, stream=None, capture_error_mode="thread_local"):
        self.g, self.pool, self.s, self.mode = cuda_graph, pool, stream, capture_error_mode
        self.ctx = None

    def __enter__(self):
        s = self.s or default_capture_stream()
        s.wait_stream(streams.current_stream(s.device_index))  # capture starts after prior work
        self.ctx = streams.stream(s)
        self.ctx.__enter__()
        try:
            self.g.capture_begin(s, self.pool, self.mode)
        except Exception:
            self.ctx.__exit__(None, None, None)
            raise
        return self.g

    def __exit__(self, exc_type, exc, tb):
        try:
            self.g.capture_end(instantiate=exc_type is None)
        except Exception:
            if exc_type is None:
                raise  # a failed capture; a raising block's own error wins
        finally:
            self.ctx.__exit__(exc_type, exc, tb)
            if exc_type is not None:
                self.g.reset()
        return False
