"""Creation and copy operators: empty, full, copy_, and the composites built on them.

`copy_(dst, src)` is the one primitive that moves data between devices and dtypes; clone,
contiguous and to() are composites over empty + copy_, so each device implements copying once.
"""
from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, empty as _empty_tensor


def copy_meta(dst, src):
    """copy_ broadcasts src to dst's shape and casts to dst's dtype (complex -> real drops imag)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' (position 1) must be Tensor, not {type(src).__name__}")
    try:
        shape = sh.broadcast_shapes(dst._shape, src._shape)
    except RuntimeError:
        shape = None
    if shape != tuple(dst._shape):
        raise RuntimeError(f"output with shape [{', '.join(map(str, dst._shape))}] doesn't match the broadcast "
                           f"shape [{', '.join(map(str, sh.broadcast_shapes(dst._shape, src._shape) if shape else src._shape))}]")


def _empty(shape, dtype=None, device=None):
    return _empty_tensor(shape, dtype or dt.get_default_dtype(), device)


def _clone(self):
    return copy_(_empty_tensor(self._shape, self._dtype, self._device), self)


def _contiguous(self):
    return self if self.is_contiguous() else _clone(self)


def _to(self, dtype, device, copy=False):
    """Tensor.to with canonical dtype and device: returns self when nothing changes and not copy."""
    if dtype is self._dtype and device == self._device and not copy:
        return self
    return copy_(_empty_tensor(self._shape, dtype, device), self)


empty = declare("empty", composite=_empty, family="creation")
full = declare("full", family="creation")      # full(shape, value, dtype, device): device kernels fill
copy_ = declare("copy_", meta=copy_meta, family="creation")  # copy_(dst, src): device kernels
clone = declare("clone", composite=_clone, family="creation")
contiguous = declare("contiguous", composite=_contiguous, family="creation")
to = declare("to", composite=_to, family="creation")
