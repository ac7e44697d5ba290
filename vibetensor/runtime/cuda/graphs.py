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
    """A captured graph and its executable instance."""

    def __init__(self):
        self.graph = self.exec = self.stream = None

    def capture_begin(self, stream):
        if stream.cuda_stream == 0:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream "
                               "(use torch.cuda.Stream() and torch.cuda.stream(s))")
        cu = drv._driver()
        mode = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
        drv.call(cu.cuStreamBeginCapture, stream.handle, mode)
        self.stream = stream
        _capturing.graph = self

    def capture_end(self):
        cu = drv._driver()
        _capturing.graph = None
        self.graph = drv.call(cu.cuStreamEndCapture, self.stream.handle)
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
        self.graph = self.exec = None

    def __del__(self):
        try:
            self.reset()
        except Exception:
            pass


class graph:
    """`with graph(g, stream=s):` captures the block into g on stream s (a fresh side stream by default)."""

    def __init__(self, cuda_graph, stream=None):
        self.g, self.s = cuda_graph, stream
        self.ctx = None

    def __enter__(self):
        s = self.s or streams.Stream()
        s.wait_stream(streams.current_stream(s.device_index))  # capture starts after prior work
        self.ctx = streams.stream(s)
        self.ctx.__enter__()
        self.g.capture_begin(s)
        return self.g

    def __exit__(self, *exc):
        try:
            self.g.capture_end()
        finally:
            self.ctx.__exit__(*exc)
