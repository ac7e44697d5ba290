"""torch.tensor, from_numpy, empty/zeros/ones/full, and their *_like forms."""
import numpy as np

from vibetensor import ops
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.device import canonical
from vibetensor.tensor.tensor import Tensor, array, from_array, set_requires_grad


def _infer_dtype(data):
    """torch.tensor's inference: bool < int64 < default float < default complex; NumPy arrays and
    tensors inside the data keep their own dtype."""
    if isinstance(data, Tensor):
        return data.dtype
    if isinstance(data, np.ndarray):
        return dt.from_numpy(data.dtype)
    if isinstance(data, np.generic):
        return dt.from_numpy(data.dtype)
    if isinstance(data, (list, tuple)):
        result = None
        for x in data:
            d = _infer_dtype(x)
            result = d if result is None else dt.promote_types(result, d)
        return result or dt.get_default_dtype()
    if isinstance(data, (bool, int, float, complex)):
        return dt.scalar_dtype(data)
    raise TypeError(f"Could not infer dtype of {type(data).__name__}")


def _to_nested(data):
    """Python lists with tensors replaced by their values, ragged input caught with torch's message."""
    if isinstance(data, Tensor):
        return array(data.cpu() if data.device.type != "cpu" else data)
    if isinstance(data, (list, tuple)):
        return [_to_nested(x) for x in data]
    return data


def _check_ragged(data, depth=0):
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple)):
        n = len(data[0])
        for x in data:
            if not isinstance(x, (list, tuple)) or len(x) != n:
                got = len(x) if isinstance(x, (list, tuple)) else type(x).__name__
                raise ValueError(f"expected sequence of length {n} at dim {depth + 1} (got {got})")
        for x in data:
            _check_ragged(x, depth + 1)


def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    device = canonical(device)
    if dtype is None:
        dtype = _infer_dtype(data)
    _check_ragged(data)
    a = np.array(_to_nested(data))
    if a.dtype == object:
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    if a.dtype.kind == "c" and dtype.kind != "c":
        a = a.real
    t = from_array(np.array(a, dtype=dtype.np, copy=True))
    if device.type != "cpu":
        t = ops.creation.to(t, dtype, device)
    if requires_grad:
        set_requires_grad(t, True)
    return t


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data.to(dtype=dtype or data.dtype, device=canonical(device) if device else data.device)
    if isinstance(data, np.ndarray) and (dtype is None or dtype.np == data.dtype) and canonical(device).type == "cpu":
        return from_array(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    return from_array(a)


def _factory(fill):
    def create(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False,
               memory_format=None):
        shape = sh.as_shape(size, "zeros" if fill == 0 else "ones")
        for s in shape:
            if s < 0:
                raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(shape)}")
        d = dtype or dt.get_default_dtype()
        dev = canonical(device)
        t = ops.creation.empty(shape, d, device=dev) if fill is None else ops.creation.full(shape, fill, d, device=dev)
        if out is not None:
            ops.creation.copy_(ops.meta.output("full", out, shape, d, out.device), t)
            return out
        if requires_grad:
            set_requires_grad(t, True)
        return t
    return create


empty = _factory(None)
zeros = _factory(0)
ones = _factory(1)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    shape = sh.as_shape((size,), "full")
    if dtype is None:
        dtype = dt.get_default_dtype() if isinstance(fill_value, float) else dt.scalar_dtype(fill_value) \
            if not isinstance(fill_value, Tensor) else fill_value.dtype
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    t = ops.creation.full(shape, fill_value, dtype, device=canonical(device))
    if out is not None:
        return ops.creation.copy_(ops.meta.output("full", out, shape, dtype, out.device), t)
    if requires_grad:
        set_requires_grad(t, True)
    return t


def _like(factory):
    def like(input, *args, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
        return factory(input.shape, *args, dtype=dtype or input.dtype, device=device or input.device,
                       requires_grad=requires_grad)
    return like


empty_like = _like(empty)
zeros_like = _like(zeros)
ones_like = _like(ones)
full_like = _like(full)
