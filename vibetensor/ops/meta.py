"""Meta helpers shared by op declarations: result shape, dtype and device, and out= handling.

Meta functions validate everything a kernel relies on and raise torch's exception types with
messages naming the op, so kernels can assume good input and a failed op changes nothing.
"""
import warnings

from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, empty, set_geometry

TYPE_NAMES = {dt.bool_: "Bool", dt.uint8: "Byte", dt.int8: "Char", dt.int16: "Short", dt.int32: "Int",
              dt.int64: "Long", dt.float16: "Half", dt.bfloat16: "BFloat16", dt.float32: "Float",
              dt.float64: "Double", dt.complex64: "ComplexFloat", dt.complex128: "ComplexDouble",
              dt.uint16: "UInt16", dt.uint32: "UInt32", dt.uint64: "UInt64"}


def legacy_type_name(t):
    """torch's legacy type string used in some messages: torch.FloatTensor, torch.cuda.LongTensor."""
    prefix = "torch.cuda." if t._device.type == "cuda" else "torch."
    return f"{prefix}{TYPE_NAMES[t._dtype]}Tensor"


def common_device(op, operands):
    """The device of an op's tensors. CPU 0-d tensors may join tensors of any device, as in torch."""
    device = scalar_device = None
    for t in operands:
        if not isinstance(t, Tensor):
            continue
        if not t._shape and t._device.type == "cpu":
            scalar_device = t._device
        elif device is None:
            device = t._device
        elif t._device != device:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{device} and {t._device}! (when checking arguments for {op})")
    return device or scalar_device


def elementwise(op, *operands, int_to_float=False):
    """(shape, dtype, device) of an elementwise op over tensors and Python numbers."""
    shape = sh.broadcast_shapes(*(t._shape for t in operands if isinstance(t, Tensor)))
    dtype = dt.result_type(*operands)
    if int_to_float and dtype.category < 2:
        dtype = dt.get_default_dtype()
    return shape, dtype, common_device(op, operands)


def signature(x):
    """What an elementwise meta result depends on: a tensor's (dtype, shape, device) or a number's type."""
    return (x._dtype, x._shape, x._device) if isinstance(x, Tensor) else type(x)


_spec_caches = []


def spec_cache():
    """A new cache of meta results keyed by operand signatures, cleared when the default dtype changes."""
    cache = {}
    _spec_caches.append(cache)
    return cache


def remember(cache, key, spec):
    if len(cache) > 4096:
        cache.clear()
    cache[key] = spec
    return spec


def memoize_spec(meta):
    """Cache a meta function's result per operand signature. Validation and promotion depend only on
    the signature, so a cache hit skips both (the hot path of a repeated op); failures are not cached.
    The key is built inline (no per-operand call): a tensor's (dtype, shape, device), a number's type."""
    cache = spec_cache()

    def cached(*operands):
        n = len(operands)
        if n == 1:
            a = operands[0]
            key = (a._dtype, a._shape, a._device) if isinstance(a, Tensor) else type(a),
        elif n == 2:
            a, b = operands
            key = ((a._dtype, a._shape, a._device) if isinstance(a, Tensor) else type(a),
                   (b._dtype, b._shape, b._device) if isinstance(b, Tensor) else type(b))
        else:
            key = tuple([(x._dtype, x._shape, x._device) if isinstance(x, Tensor) else type(x) for x in operands])
        spec = cache.get(key)
        if spec is None:
            spec = remember(cache, key, meta(*operands))
        return spec
    cached.uncached = meta
    return cached


def _clear_spec_caches():
    for c in _spec_caches:
        c.clear()


dt.on_default_dtype_change.append(_clear_spec_caches)  # wrapped floats follow the default dtype


def check_dtype(op, t, allowed, what):
    if t.dtype not in allowed:
        raise RuntimeError(f"{op}: expected {what} but got {t.dtype}")


def output(op, out, shape, dtype, device, inplace=False):
    """The tensor an op writes: a new one, or `out` checked (and resized, as torch does)."""
    if out is None:
        return empty(shape, dtype, device)
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if out._device is not device and out._device != device:
        raise RuntimeError(f"Expected out tensor to have device {device}, but got {out._device} instead")
    if not dt.can_cast(dtype, out._dtype):
        raise RuntimeError(f"result type {TYPE_NAMES[dtype]} can't be cast to the desired output type "
                           f"{TYPE_NAMES[out._dtype]}")
    if out._shape != shape and tuple(out._shape) != tuple(shape):  # (shape may be a list)
        if inplace:
            raise RuntimeError(f"output with shape [{', '.join(map(str, out._shape))}] doesn't match the "
                               f"broadcast shape [{', '.join(map(str, shape))}]")
        resize_out(out, shape)
    return out


def resize_out(out, shape):
    """torch's resize_output: warn when a non-empty out is resized; reuse storage when big enough."""
    if out.numel() != 0:
        warnings.warn(f"An output with one or more elements was resized since it had shape "
                      f"[{', '.join(map(str, out._shape))}], which does not match the required output shape "
                      f"[{', '.join(map(str, shape))}]. This behavior is deprecated, and in a future PyTorch "
                      "release outputs will not be resized unless they have zero elements. You can explicitly "
                      "reuse an out tensor t by resizing it, inplace, to zero elements with t.resize_(0).",
                      UserWarning, stacklevel=4)
    resize_(out, shape)


def resize_(t, shape):
    """Tensor.resize_: contiguous strides, storage grown (never shrunk) if needed."""
    shape = tuple(shape)
    nbytes = (t._offset + sh.numel(shape)) * t._dtype.itemsize
    storage = None
    if nbytes > t._storage.nbytes:
        fresh = empty((nbytes // t._dtype.itemsize,), t._dtype, t._device)._storage
        keep = t._storage.nbytes
        if t._device.type == "cpu":
            fresh.bytes()[:keep] = t._storage.bytes()[:keep]
        storage = fresh
        t._storage = storage  # all views of the old storage keep the old bytes, as in torch
    set_geometry(t, shape, sh.contiguous_strides(shape), t._offset, storage)
    return t


def bump_version(t):
    """Record an in-place write (autograd checks saved tensors against this counter)."""
    t._version.value += 1
