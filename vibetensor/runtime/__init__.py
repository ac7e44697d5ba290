"""The ground floor: memory and devices, knowing nothing of Tensor.

The CUDA runtime lives in runtime/cuda (streams, events, caching allocator, graphs, launcher) and
is imported only when a CUDA device is used, so the CPU path never needs the CUDA packages.
"""
import numpy as np

def current_cuda_device_index():
    """This thread's current CUDA device (the driver layer's; reading it imports no CUDA package)."""
    from vibetensor.runtime.cuda import driver
    return driver.current_device()


def host_alloc(nbytes):
    """Host memory for a CPU storage. NumPy aligns to at least 16 bytes, enough for complex128."""
    return np.empty(nbytes, np.uint8)


def device_alloc(nbytes, device):
    """Device memory for a storage: the CUDA caching allocator's block (freed when dropped)."""
    if device.type != "cuda":
        raise RuntimeError(f"no memory allocator for device type '{device.type}'")
    from vibetensor.runtime import cuda  # imported on first CUDA use only
    return cuda.alloc(nbytes, device)
