"""CPU kernels for creation and copy."""
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation as c
from vibetensor.ops.meta import bump_version
from vibetensor.tensor.tensor import array, empty_cpu

CPU = DispatchKey.CPU


def full(shape, value, dtype, device=None):
    t = empty_cpu(shape, dtype)
    array(t).fill(np.array(value).astype(dtype.np) if not isinstance(value, bool) else value)
    return t


def copy_(dst, src):
    c.copy_meta(dst, src)
    if src._device.type != "cpu":  # device -> host copies belong to that device's backend
        return c.copy_.redispatch(DispatchKey.CUDA, dst, src)
    d, s = array(dst), array(src)
    if d.dtype.kind != "c" and s.dtype.kind == "c":
        s = s.real  # torch drops the imaginary part (with a warning in torch; silently here)
    np.copyto(d, s, casting="unsafe")
    bump_version(dst)
    return dst


c.full.register(CPU, full)
c.copy_.register(CPU, copy_)
