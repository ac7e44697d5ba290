"""torch.cuda: devices, streams, events, memory, graphs — over vibetensor's own CUDA runtime.

Importing this module needs no CUDA packages; `is_available()` is False (never raises) on a
machine without a driver or GPU. The CUDA backend's kernels load on first CUDA use.
"""
from vibetensor.runtime import cuda as _rt
from vibetensor.runtime.cuda import driver as _drv
from vibetensor.runtime.cuda.allocator import OutOfMemoryError  # noqa: F401
from vibetensor.runtime.cuda.graphs import CUDAGraph, is_capturing  # noqa: F401
from vibetensor.runtime.cuda.graphs import graph as _graph_ctx
from vibetensor.runtime.cuda.stream import Event, Stream  # noqa: F401
from vibetensor.runtime.cuda.stream import current_stream as _current_stream
from vibetensor.runtime.cuda.stream import stream, synchronize  # noqa: F401
from vibetensor.tensor.tensor import Tensor, array, from_array
from vibetensor.torch.tensor_methods import method

# memory statistics and control, as torch.cuda has them
from vibetensor.runtime.cuda import (  # noqa: F401,E402
    empty_cache, graph_pool_handle, max_memory_allocated, max_memory_reserved, mem_get_info,
    memory_allocated, memory_reserved, memory_snapshot, memory_stats, memory_summary,
    reset_peak_memory_stats, set_per_process_memory_fraction)

is_available = _drv.is_available
device_count = _drv.device_count


def current_device():
    return _drv.current_device()


def set_device(device):
    index = device if isinstance(device, int) else getattr(device, "index", None)
    _drv.set_device(0 if index is None else index)


class device:
    """`with torch.cuda.device(i):` makes device i current inside the block."""

    def __init__(self, device):
        self.guard = _drv.device_guard(device if isinstance(device, int) else getattr(device, "index", None))

    def __enter__(self):
        self.guard.__enter__()

    def __exit__(self, *exc):
        self.guard.__exit__(*exc)


def get_device_properties(device=None):
    return _drv.properties(_index(device))


def get_device_name(device=None):
    return get_device_properties(device)["name"]


def get_device_capability(device=None):
    p = get_device_properties(device)
    return p["major"], p["minor"]


def current_stream(device=None):
    return _current_stream(device)


def default_stream(device=None):
    return Stream.default(_index(device))


def _index(device):
    if device is None:
        return _drv.current_device()
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)
    if index is None and isinstance(device, str):
        _, _, n = device.partition(":")
        index = int(n) if n else None
    return _drv.current_device() if index is None else index


graph = _graph_ctx  # `with torch.cuda.graph(g, pool=None, stream=None):`


# -- tensor methods that belong to the CUDA runtime ----------------------------------------------------

@method
def pin_memory(self, device=None):
    """A copy of this CPU tensor in page-locked memory: copies from it to a GPU can be asynchronous."""
    from vibetensor.runtime.cuda import memory
    if self.is_cuda:
        raise RuntimeError("cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors can be pinned")
    raw = memory.pinned_empty(self.numel() * self.itemsize)
    out = from_array(raw.view(self._dtype.np).reshape(self._shape))
    array(out)[...] = array(self)
    return out


@method
def is_pinned(self, device=None):
    if self.is_cuda:
        return False
    from vibetensor.runtime.cuda import memory
    return memory.block_of(self._storage.data) is not None


@method
def record_stream(self, stream):
    """The memory of this CUDA tensor is in use on `stream`: its reuse waits for that stream's work."""
    if not self.is_cuda:
        raise RuntimeError("record_stream: expected a CUDA tensor")
    _rt.record_stream(self._storage.data, stream)
