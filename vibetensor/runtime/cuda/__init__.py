"""The CUDA runtime: driver, streams, events, graphs, launcher, and the caching allocator.

Importing this package imports nothing CUDA: the driver bindings load on first use, so the CPU
path works on machines without the CUDA packages. This module is the allocator's front: one
allocator per device, created on first use from a device object that `set_device_factory`
supplies, and torch.cuda's memory functions over them (memory_stats, memory_summary,
memory_snapshot, empty_cache, ...). Configuration comes from VIBETENSOR_CUDA_ALLOC_CONF (falling
back to PYTORCH_CUDA_ALLOC_CONF), e.g. "max_split_size_mb:128,garbage_collection_threshold:0.8"
or "backend:cudaMallocAsync".
"""
import itertools
import sys
import threading

from vibetensor import runtime as _runtime
from vibetensor.runtime.cuda import driver as _driver  # (CUDA-free until a driver call is made)
from vibetensor.runtime.cuda.allocator import (  # noqa: F401  (re-exported)
    Allocation, AllocatorConfig, CachingAllocator, DeviceOutOfMemory, MallocAsyncAllocator,
    OutOfMemoryError, config_from_env, flatten_stats, format_size, format_summary, make_allocator,
    DeviceStats)

_lock = threading.Lock()      # guards creating allocators, not their use
_allocators = {}              # device index -> allocator
_state = {"factory": None, "config": None, "history": None}
_pool_ids = itertools.count(1)


def _real_device(index):
    """The default device factory: the GPU itself, through the driver (imported on first use)."""
    from vibetensor.runtime.cuda.device import CudaDevice
    return CudaDevice(index)


def set_device_factory(factory):
    """`factory(index)` returns the device object an allocator runs on (see allocator.py for the
    interface: the real one wraps the driver, tests use simulated.SimulatedDevice). Drops
    existing allocators, so call it before any CUDA memory is allocated."""
    with _lock:
        _state["factory"] = factory
        _forget_allocators()


def _reset(factory=None, config=None):
    """Forget every allocator, the settings and the history configuration (tests)."""
    with _lock:
        _forget_allocators()
        _state.update(factory=factory, config=config, history=None)


def _forget_allocators():
    _allocators.clear()
    _runtime._mallocs.clear()  # the cached bound mallocs of the old allocators


def _config():
    if _state["config"] is None:
        _state["config"] = config_from_env()
    return _state["config"]


def _index(device):
    if device is None:
        from vibetensor.runtime import current_cuda_device_index
        return current_cuda_device_index()
    if isinstance(device, bool):
        raise ValueError(f"Expected a cuda device, but got: {device}")
    if isinstance(device, int):
        return device
    if isinstance(device, str):
        name, _, n = device.partition(":")
        if name != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {device}")
        return int(n) if n else _index(None)
    kind, index = getattr(device, "type", "cuda"), getattr(device, "index", None)
    if kind != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {device}")
    return _index(None) if index is None else index


def get_allocator(device=None, create=True):
    """The allocator of `device` (created on first use), or None if not created and not `create`."""
    index = _driver.current_device() if device is None else _index(device)
    a = _allocators.get(index)
    if a is None and create:
        with _lock:
            a = _allocators.get(index)
            if a is None:
                factory = _state["factory"] or _real_device
                a = make_allocator(factory(index), _config())
                if _state["history"] is not None and a.backend == "native":
                    a.record_memory_history(**_state["history"])
                _allocators[index] = a
    return a


def _initialized():
    return [a for _, a in sorted(_allocators.items())]


# -- memory ----------------------------------------------------------------------------------
def alloc(nbytes, device=None, stream=None):
    """Device memory for a Storage: an Allocation (`.ptr`), freed when the last reference goes."""
    return get_allocator(device).malloc(nbytes, stream)


def malloc_of(device):
    """The bound malloc of a device's allocator (`malloc(nbytes, stream=None)`), remembered in
    runtime._mallocs for device objects that name their index (storage allocation's fast path)."""
    malloc = get_allocator(device).malloc
    if getattr(device, "index", None) is not None and getattr(device, "type", None) == "cuda":
        _runtime._mallocs[device] = malloc
    return malloc


def record_stream(allocation, stream):
    """Tensor.record_stream's runtime half: the memory's reuse waits for `stream`'s work."""
    _allocators[allocation.device_index].record_stream(allocation, stream)


def caching_allocator_alloc(size, device=None, stream=None):
    return get_allocator(device).raw_alloc(size, stream)


def caching_allocator_delete(mem_ptr):
    for a in tuple(_allocators.values()):
        h = a._raw.pop(mem_ptr, None)
        if h is not None:
            h.free()
            return
    raise RuntimeError(f"invalid device pointer: {mem_ptr:#x}")


def empty_cache():
    """Release all unoccupied cached memory of every initialised device."""
    for a in _initialized():
        a.empty_cache()


def set_per_process_memory_fraction(fraction, device=None):
    if not isinstance(fraction, float):
        raise TypeError("Invalid type for fraction argument, must be `float`")
    if fraction < 0 or fraction > 1:
        raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
    get_allocator(device).set_memory_fraction(fraction)


def get_per_process_memory_fraction(device=None):
    return get_allocator(device).get_memory_fraction()


def mem_get_info(device=None):
    """(free, total) bytes of the device, as cudaMemGetInfo."""
    return get_allocator(device).device.mem_get_info()


# -- statistics ----------------------------------------------------------------------------------
def memory_stats_as_nested_dict(device=None):
    a = get_allocator(device, create=False)
    return {} if a is None else a.memory_stats_as_nested_dict()


def memory_stats(device=None):
    """torch.cuda.memory_stats: flat keys 'allocated_bytes.all.current', ...; {} before first use."""
    return flatten_stats(memory_stats_as_nested_dict(device))


def _stat(device, method):
    a = get_allocator(device, create=False)
    return 0 if a is None else getattr(a, method)()


def memory_allocated(device=None):
    return _stat(device, "memory_allocated")


def max_memory_allocated(device=None):
    return _stat(device, "max_memory_allocated")


def memory_reserved(device=None):
    return _stat(device, "memory_reserved")


def max_memory_reserved(device=None):
    return _stat(device, "max_memory_reserved")


memory_cached, max_memory_cached = memory_reserved, max_memory_reserved  # deprecated torch names


def reset_peak_memory_stats(device=None):
    a = get_allocator(device, create=False)
    if a is not None:
        a.reset_peak_memory_stats()


reset_max_memory_allocated = reset_max_memory_cached = reset_peak_memory_stats


def reset_accumulated_memory_stats(device=None):
    a = get_allocator(device, create=False)
    if a is not None:
        a.reset_accumulated_memory_stats()


def memory_summary(device=None, abbreviated=False):
    index = _index(device)
    a = get_allocator(index, create=False)
    stats = a.memory_stats() if a is not None else flatten_stats(DeviceStats().as_nested_dict())
    return format_summary(stats, index, abbreviated)


# -- snapshots and history --------------------------------------------------------------------
def _record_memory_history(enabled="all", context="all", stacks="all", max_entries=sys.maxsize,
                           device=None, clear_history=False):
    """torch.cuda.memory._record_memory_history: applies to every device, now and later."""
    settings = dict(enabled=enabled, context=context, stacks=stacks, max_entries=max_entries,
                    clear_history=clear_history)
    for a in _initialized():
        a.record_memory_history(**settings)
    _state["history"] = settings


record_memory_history = _record_memory_history


def _snapshot(device=None):
    """{'segments': [...], 'device_traces': [[...] per device]}: PyTorch's snapshot format, which
    torch.cuda._memory_viz and pytorch.org/memory_viz read."""
    segments, traces = [], []
    for index, a in sorted(_allocators.items()):
        segs, trace = a.snapshot()
        segments += segs
        traces += [[] for _ in range(index - len(traces))] + [trace]
    return {"segments": segments, "device_traces": traces}


def memory_snapshot(mempool_id=None, include_traces=True):
    """The segments of every device (only those of private pool `mempool_id` if given)."""
    segments = _snapshot()["segments"]
    if mempool_id is not None:
        segments = [s for s in segments if s["segment_pool_id"] == tuple(mempool_id)]
    return segments


def _dump_snapshot(filename="dump_snapshot.pickle"):
    """Write _snapshot() as a pickle (the file memory_viz opens), atomically."""
    import os
    import pickle
    tmp = f"{filename}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(_snapshot(), f)
    os.replace(tmp, filename)


# -- configuration and graph pools --------------------------------------------------------------
def get_allocator_backend():
    return _config().backend


def _set_allocator_settings(text):
    """Change settings at run time; the backend is fixed once allocators exist."""
    cfg = AllocatorConfig.parse(text)
    with _lock:
        if _allocators and cfg.backend != _config().backend:
            raise RuntimeError("Allocator backend parsed at runtime != allocator backend parsed "
                               "at load time")
        _state["config"] = cfg
        for a in _allocators.values():
            a.configure(cfg)


def graph_pool_handle():
    """An id for a private memory pool that several graph captures can share."""
    return (0, next(_pool_ids))
