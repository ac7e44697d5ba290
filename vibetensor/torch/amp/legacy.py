"""torch.cuda.amp and torch.cpu.amp: the deprecated per-device spellings of autocast and GradScaler
(FutureWarning, as torch), plus the small torch.cpu namespace that holds torch.cpu.amp."""
import sys
import types
import warnings

from vibetensor.tensor import dtype as dt
from vibetensor.torch.amp import autocast_mode
from vibetensor.torch.amp.grad_scaler import GradScaler as _GradScaler


def _deprecated(old, new):
    warnings.warn(f"`{old}(args...)` is deprecated. Please use `{new}(args...)` instead.", FutureWarning,
                  stacklevel=3)


def _autocast_class(device_type, default_dtype):
    class autocast(autocast_mode.autocast):
        def __init__(self, enabled=True, dtype=default_dtype, cache_enabled=True):
            _deprecated(f"torch.{device_type}.amp.autocast", f"torch.amp.autocast('{device_type}', ")
            super().__init__(device_type, enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)
    autocast.__qualname__ = "autocast"
    autocast.__module__ = f"torch.{device_type}.amp"
    return autocast


def _grad_scaler_class(device_type):
    class GradScaler(_GradScaler):
        def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                     enabled=True):
            _deprecated(f"torch.{device_type}.amp.GradScaler", f"torch.amp.GradScaler('{device_type}', ")
            super().__init__(device_type, init_scale=init_scale, growth_factor=growth_factor,
                             backoff_factor=backoff_factor, growth_interval=growth_interval, enabled=enabled)
    GradScaler.__qualname__ = "GradScaler"
    GradScaler.__module__ = f"torch.{device_type}.amp"
    return GradScaler


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _cuda_available():
    from vibetensor.torch import cuda
    return cuda.is_available()


cuda_amp = _module("vibetensor.torch.cuda.amp", autocast=_autocast_class("cuda", dt.float16),
                   GradScaler=_grad_scaler_class("cuda"), custom_fwd=autocast_mode.custom_fwd,
                   custom_bwd=autocast_mode.custom_bwd,
                   amp_definitely_not_available=lambda: not _cuda_available())
cpu_amp = _module("vibetensor.torch.cpu.amp", autocast=_autocast_class("cpu", dt.bfloat16),
                  GradScaler=_grad_scaler_class("cpu"))
cpu = _module("vibetensor.torch.cpu", amp=cpu_amp, is_available=lambda: True, device_count=lambda: 1,
              current_device=lambda: "cpu", synchronize=lambda device=None: None)
