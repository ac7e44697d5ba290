"""torch.amp: autocast (a dispatch key, see autocast_mode.py) and GradScaler."""
from vibetensor.torch.amp import autocast_mode
from vibetensor.torch.amp.autocast_mode import (  # noqa: F401
    autocast, custom_bwd, custom_fwd, is_autocast_available)
from vibetensor.torch.amp.grad_scaler import GradScaler  # noqa: F401

# torch.* state functions (torch/__init__.py re-exports these)
from vibetensor.torch.amp.autocast_mode import (  # noqa: F401
    autocast_decrement_nesting, autocast_increment_nesting, clear_autocast_cache, get_autocast_cpu_dtype,
    get_autocast_dtype, get_autocast_gpu_dtype, is_autocast_cache_enabled, is_autocast_cpu_enabled,
    is_autocast_enabled, set_autocast_cache_enabled, set_autocast_dtype, set_autocast_enabled)

TORCH_FUNCTIONS = ("autocast", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype",
                   "set_autocast_dtype", "is_autocast_cpu_enabled", "get_autocast_cpu_dtype",
                   "get_autocast_gpu_dtype", "is_autocast_cache_enabled", "set_autocast_cache_enabled",
                   "clear_autocast_cache", "autocast_increment_nesting", "autocast_decrement_nesting")


def _install():
    """Autocast kernels on the listed ops; the listed Python functions wrapped where torch code finds
    them (torch.nn.functional, the torch.* names, Tensor methods); torch.cuda.amp and torch.cpu."""
    import sys
    from vibetensor.torch import cuda
    from vibetensor.torch.amp import legacy
    from vibetensor.torch.nn import functional
    autocast_mode.register_kernels()
    autocast_mode.install_python_functions(functional, sys.modules["vibetensor.torch"], sys.modules["vibetensor.torch"].Tensor)
    cuda.amp = legacy.cuda_amp
    return legacy.cpu


cpu = _install()

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available", "GradScaler"]
