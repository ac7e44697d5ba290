"""The CUDA backend: Triton kernels (and cuBLAS for matrix products), registered under
DispatchKey.CUDA. Imported on first CUDA use (`vibetensor.torch.cuda` or a tensor moved to a GPU),
so the CPU path never imports Triton or the CUDA bindings.
"""
from vibetensor.backends.cuda import creation, elementwise, linalg, reduction  # noqa: F401  (registers kernels)
from vibetensor.backends.cuda import activation, indexing, joining, nn  # noqa: F401
from vibetensor.backends.cuda import autograd_streams, conv, foreach, random  # noqa: F401
from vibetensor.backends.cuda import misc, sampling, scan, sorting  # noqa: F401
from vibetensor.backends.cuda import solver  # noqa: F401  (cuSOLVER decompositions)
from vibetensor.backends.cuda import complex  # noqa: F401,A004  (complex64/complex128 kernels)


def _guarded(kernel):
    """kernel, run with the GPU of its tensors current (see dispatch.enable_device_guards)."""
    from vibetensor.dispatch import device_index
    from vibetensor.runtime.cuda import driver as drv

    def on_its_device(*args, **kwargs):
        index = device_index(args, kwargs)
        if index is None or index == drv.current_device():
            return kernel(*args, **kwargs)
        with drv.on_device(index):
            return kernel(*args, **kwargs)
    return on_its_device


def _install_device_guards():
    from vibetensor.dispatch import dispatcher
    from vibetensor.runtime.cuda import driver as drv
    try:
        several = drv.device_count() > 1
    except Exception:  # no driver: nothing runs here anyway
        several = False
    if several:
        dispatcher.enable_device_guards(_guarded)


_install_device_guards()
