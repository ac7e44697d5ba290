"""The ground floor: memory and devices, knowing nothing of Tensor.

The CUDA runtime lives in runtime/cuda (streams, events, caching allocator, graphs, launcher) and
is imported only when a CUDA device is used, so the CPU path never needs the CUDA packages.
"""
import numpy as np

def current_cuda_device_index():
    """This thread's current CUDA device (the driver layer's; reading it imports no CUDA package)."""
    return _current_device()


def _current_device():
    global _current_device  # replaced by driver.current_device on first use: later calls go straight there
    from vibetensor.runtime.cuda import driver
    _current_device = driver.current_device
    return _current_device()


def host_alloc(nbytes):
    """Host memory for a CPU storage. NumPy aligns to at least 16 bytes, enough for complex128."""
    return np.empty(nbytes, np.uint8)


# device -> its allocator's bound malloc: a tensor's memory costs one dict lookup before the
# allocator. runtime.cuda fills it, and empties it whenever its allocators are replaced.
_mallocs = {}


def device_alloc(nbytes, device):
    """Device memory for a storage: the CUDA caching allocator's block (freed when dropped)."""
    malloc = _mallocs.get(device)
    if malloc is None:
        malloc = _device_malloc(device)
    return malloc(nbytes)


def _device_malloc(device):
    if device.type != "cuda":
        raise RuntimeError(f"no memory allocator for device type '{device.type}'")
    from vibetensor.runtime import cuda  # imported on first CUDA use only
    return cuda.malloc_of(device)
