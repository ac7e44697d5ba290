"""CUDA graphs: capture the work queued on a stream, replay it with one launch.

    g = CUDAGraph()
    with graph(g, stream=s):     # capture on a side stream (the NULL stream cannot be captured)
        ...                      # launches queue into the graph instead of running
    g.replay()

During capture, `is_capturing()` is True for that stream: ops that would synchronise check it
and raise (an op that syncs during capture would invalidate the capture).
"""
import threading

from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import stream as streams

_capturing = threading.local()


def is_capturing():
    """True while this thread is capturing into a CUDA graph."""
    return getattr(_capturing, "graph", None) is not None


def check_not_capturing(op):
    """Ops that must synchronise with the host call this first (item, nonzero, printing...)."""
    if is_capturing():
        raise RuntimeError(f"{op}: cannot synchronise with the host while capturing a CUDA graph "
                           "(the operation's result is host data); move it outside the captured region")


class CUDAGraph:
    """A captured graph, its executable instance, and its private memory pool.

    Allocations made on the capture stream while capturing come from the graph's private pool
    (the replayed kernels keep using those addresses); the pool stays reserved until the graph is
    reset or dies. Pass `pool=` (another graph's `pool()` or `graph_pool_handle()`) to share one."""

    def __init__(self):
        self.graph = self.exec = self.stream = None
        self.pool_id = None

    def pool(self):
        return self.pool_id

    def capture_begin(self, stream, pool=None):
        from vibetensor.runtime import cuda as rt
        if stream.cuda_stream == 0:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream "
                               "(use torch.cuda.Stream() and torch.cuda.stream(s))")
        self.pool_id = pool if pool is not None else rt.graph_pool_handle()
        allocator = rt.get_allocator(stream.device_index)
        capture_handle = stream.cuda_stream
        allocator.begin_allocate_to_pool(self.pool_id, lambda s: s.cuda_stream == capture_handle)
        cu = drv._driver()
        mode = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        try:
            drv.call(cu.cuStreamBeginCapture, stream.handle, mode)
        except Exception:
            allocator.end_allocate_to_pool(self.pool_id)
            raise
        self.stream = stream
        _capturing.graph = self

    def capture_end(self):
        from vibetensor.runtime import cuda as rt
        cu = drv._driver()
        _capturing.graph = None
        try:
            self.graph = drv.call(cu.cuStreamEndCapture, self.stream.handle)
        finally:
            rt.get_allocator(self.stream.device_index).end_allocate_to_pool(self.pool_id)
        self.exec = drv.call(cu.cuGraphInstantiate, self.graph, 0)

    def replay(self, stream=None):
        if self.exec is None:
            raise RuntimeError("CUDAGraph.replay: the graph has not been captured")
        s = stream or streams.current_stream(self.stream.device_index)
        drv.call(drv._driver().cuGraphLaunch, self.exec, s.handle)

    def reset(self):
        cu = drv._driver()
        if self.exec is not None:
            cu.cuGraphExecDestroy(self.exec)
        if self.graph is not None:
            cu.cuGraphDestroy(self.graph)
        if self.pool_id is not None and self.stream is not None:
            from vibetensor.runtime import cuda as rt
            rt.get_allocator(self.stream.device_index).release_pool(self.pool_id)
        self.graph = self.exec = self.pool_id = None

    def __del__(self):
        try:
            self.reset()
        except Exception:
            pass


class graph:
    """`with graph(g, pool=None, stream=s):` captures the block into g on stream s (a fresh side
    stream by default), allocating from g's private pool (or the shared `pool`)."""

    def __init__(self, cuda_graph, pool=None, stream=None):
        self.g, self.pool, self.s = cuda_graph, pool, stream
        self.ctx = None

    def __enter__(self):
        s = self.s or streams.Stream()
        s.wait_stream(streams.current_stream(s.device_index))  # capture starts after prior work
        self.ctx = streams.stream(s)
        self.ctx.__enter__()
        self.g.capture_begin(s, self.pool)
        return self.g

    def __exit__(self, *exc):
        try:
            self.g.capture_end()
        finally:
            self.ctx.__exit__(*exc)
