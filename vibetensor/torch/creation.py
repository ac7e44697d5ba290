"""torch.tensor / as_tensor / asarray / from_numpy; empty, zeros, ones, full, arange, linspace,
logspace, eye, empty_strided, scalar_tensor; the *_like forms and Tensor.new_*.

User signatures, torch's dtype inference and argument errors live here; each function ends in one
op call (vibetensor/ops/creation.py).
"""
import operator
import warnings

import numpy as np

from vibetensor.ops import creation as c
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import memory_format as mf
from vibetensor.tensor import shape as sh
from vibetensor.tensor.device import canonical
from vibetensor.tensor.tensor import Tensor, array, empty_cpu, from_array, set_requires_grad
from vibetensor.torch.tensor_methods import method

_PY_NUMBERS = (bool, int, float, complex)


# -- torch.tensor: nested data -> (shape, dtype, flat values) --------------------------------------------

def _py_dtype(x):
    """The dtype torch infers for one Python number (float/complex follow the default dtype)."""
    if isinstance(x, bool):
        return dt.bool_
    if isinstance(x, int):
        return dt.int64
    if isinstance(x, float):
        return dt.get_default_dtype()
    return dt.default_complex_dtype()


def _is_sequence(x):
    return isinstance(x, (list, tuple, range, np.ndarray))


def _leaf(x, flat, dtypes):
    """One scalar of the data: a NumPy/Python number or a one-element tensor."""
    if isinstance(x, np.generic) and x.dtype.kind in "biufc":  # before Python numbers: np.float64 is a float
        dtypes.add(dt.from_numpy(x.dtype))
        flat.append(x.item())
    elif isinstance(x, _PY_NUMBERS):
        dtypes.add(_py_dtype(x))
        flat.append(x)
    elif isinstance(x, Tensor):
        if x.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        dtypes.add(x._dtype)
        flat.append(x.item())
    elif isinstance(x, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(x).__name__}'")
    else:
        raise RuntimeError(f"Could not infer dtype of {type(x).__name__}")


def _shape_of(data):
    """torch's compute_sizes: the lengths along the first element at every depth."""
    shape = []
    while _is_sequence(data) or isinstance(data, str) and shape:
        if isinstance(data, str):  # a string is a sequence to torch, of strings, without end
            raise ValueError("too many dimensions 'str'")
        if isinstance(data, np.ndarray):
            return shape + list(data.shape)
        shape.append(len(data))
        if not len(data):
            break
        data = data[0]
    return shape


def _store(x, depth, shape, flat, dtypes):
    """Walk x (expected at `depth` of `shape`), appending leaves to flat, with torch's errors."""
    if depth == len(shape):
        if _is_sequence(x):
            raise TypeError(f"'{type(x).__name__}' object cannot be interpreted as an integer")
        return _leaf(x, flat, dtypes)
    if isinstance(x, np.ndarray):
        if list(x.shape) != shape[depth:]:
            raise ValueError(f"expected sequence of length {shape[depth]} at dim {depth} (got {len(x)})")
        dtypes.add(dt.from_numpy(x.dtype))
        flat.extend(x.ravel().tolist())
        return
    if not _is_sequence(x):
        raise TypeError("not a sequence")
    if len(x) != shape[depth]:
        raise ValueError(f"expected sequence of length {shape[depth]} at dim {depth} (got {len(x)})")
    if depth == len(shape) - 1 and set(map(type, x)) <= {bool, int, float, complex}:
        flat.extend(x)  # the innermost row of plain numbers: no per-element Python work
        dtypes.update(_py_dtype(t()) for t in set(map(type, x)))
        return
    for v in x:
        _store(v, depth + 1, shape, flat, dtypes)


def _nested(data):
    """(shape, inferred dtype, flat values) of Python data."""
    shape = _shape_of(data)
    flat, dtypes = [], set()
    if sh.numel(shape):  # torch checks nothing below an empty dimension ([[], [1]] is (2, 0))
        _store(data, 0, shape, flat, dtypes)
    inferred = None
    for d in dtypes:
        inferred = d if inferred is None else dt.promote_types(inferred, d)
    return tuple(shape), inferred or dt.get_default_dtype(), flat


def _fits(a, dtype):
    """Do all of a's numbers fit an integral dtype (c10's overflows, vectorised)?"""
    lo, hi = c.INT_RANGE[dtype]
    if a.dtype.kind == "b":
        return True
    if a.dtype.kind == "f":
        return bool(np.all(np.isfinite(a))) and a.min() >= lo and a.max() <= hi
    if a.dtype.kind in "iu":
        return a.min() >= (-hi if lo == 0 else lo) and a.max() <= hi  # unsigned: negatives wrap
    return False


def _values_to(flat, shape, dtype):
    """The flat numbers as an ndarray of `dtype`, with torch.tensor's conversion errors."""
    if not flat:
        return np.zeros(shape, dtype.np)
    a = np.array(flat)
    has_complex = a.dtype.kind == "c" or (a.dtype.kind == "O" and any(isinstance(v, complex) for v in flat))
    if dtype is dt.uint64:  # torch unpacks each number as a C unsigned long long
        return _uint64_values(flat).reshape(shape)
    if dtype.category == 1:
        if has_complex:
            raise TypeError("'complex' object cannot be interpreted as an integer")
        if a.dtype.kind in "uO" and any(isinstance(v, int) and not -2 ** 63 <= v < 2 ** 63 for v in flat):
            raise ValueError("Overflow when unpacking long long")
        if not _fits(a, dtype):
            raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow")
        if a.dtype.kind == "f":
            a = a.astype(np.int64)  # C casts truncate toward zero
    elif dtype.category == 2:
        if has_complex:
            raise TypeError("must be real number, not complex")
        if a.dtype.kind == "O":
            a = np.array(flat, dtype=np.float64)
    elif dtype.category == 3 and a.dtype.kind == "O":
        a = np.array(flat, dtype=np.complex128)
    return a.astype(dtype.np).reshape(shape)


def _uint64_values(flat):
    for v in flat:
        if isinstance(v, (float, complex)):
            raise TypeError("an integer is required")
        if v < 0:
            raise OverflowError("can't convert negative int to unsigned")
        if v >= 2 ** 64:
            raise OverflowError("int too big to convert")
    return np.array(flat, dtype=np.uint64)


def _from_ndarray(a, dtype):
    if any(s < 0 for s in a.strides):
        raise ValueError("At least one stride in the given numpy array is negative, and tensors with negative "
                         "strides are not currently supported. (You can probably work around this by making a "
                         "copy of your array  with array.copy().) ")
    src = dt.from_numpy(a.dtype)
    if src.is_complex and not (dtype or src).is_complex:
        a = a.real
    return a, dtype or src


def _host_tensor(a, dtype):
    """A new CPU tensor holding a copy of ndarray a, cast to dtype."""
    t = empty_cpu(tuple(a.shape), dtype)
    np.copyto(array(t), a, casting="unsafe")
    return t


def _finish(t, requires_grad):
    if requires_grad:
        set_requires_grad(t, True)
    return t


def _to_device(t, device):
    device = canonical(device)
    return t if device == t._device else c.to(t, t._dtype, device)


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor copying `data` (nested sequences, NumPy arrays, numbers, tensors)."""
    _check_dtype("tensor", dtype)
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() "
                      "or sourceTensor.detach().clone().requires_grad_(True), rather than torch.tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
        t = c.to(data.detach() if hasattr(data, "detach") else data, dtype or data._dtype,
                 canonical(device) if device is not None else data._device, True)
        return _finish(t, requires_grad)
    if isinstance(data, np.ndarray):
        t = _host_tensor(*_from_ndarray(data, dtype))
    elif isinstance(data, np.generic) and data.dtype.kind in "biufc":
        t = _host_tensor(*_from_ndarray(np.array(data), dtype))
    elif isinstance(data, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(data).__name__}'")
    else:
        shape, inferred, flat = _nested(data)
        t = _host_tensor(_values_to(flat, shape, dtype or inferred), dtype or inferred)
    return _finish(_to_device(t, device), requires_grad)


def _check_dtype(op, dtype):
    if dtype is not None and not isinstance(dtype, dt.dtype):
        raise TypeError(f"{op}(): argument 'dtype' must be torch.dtype, not {type(dtype).__name__}")


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a tensor or NumPy array when dtype and device allow."""
    _check_dtype("as_tensor", dtype)
    if isinstance(data, Tensor):
        return c.to(data, dtype or data._dtype, canonical(device) if device is not None else data._device)
    if isinstance(data, np.ndarray) and (dtype is None or dtype.np == data.dtype) \
            and canonical(device).type == "cpu":
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    """torch.asarray: shares memory unless copy=True or a conversion needs one (copy=False then errors)."""
    _check_dtype("asarray", dtype)
    if isinstance(obj, Tensor):
        target = (dtype or obj._dtype, canonical(device) if device is not None else obj._device)
        needs_copy = target != (obj._dtype, obj._device)
        if copy is False and needs_copy:
            raise ValueError("can't alias tensor from device or dtype without a copy")
        t = c.to(obj, *target, bool(copy))
    elif isinstance(obj, np.ndarray) and not copy:
        t = as_tensor(obj, dtype, device)
    else:
        t = tensor(obj, dtype=dtype, device=device)
    return _finish(t, requires_grad)


def from_numpy(a):
    """A tensor sharing `a`'s memory (writes show through both ways)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    if any(s < 0 for s in a.strides):
        _from_ndarray(a, None)  # raises torch's negative-stride error
    return from_array(a)


# -- factories -----------------------------------------------------------------------------------------

def parse_size(args, size, op):
    """f(2, 3), f((2, 3)), f([2, 3]), f(Size), f(size=...) -> a tuple of ints (no sign check)."""
    if size is not None:
        if args:
            raise TypeError(f"{op}() got multiple values for argument 'size'")
        args = (size,)
    if not args:
        raise TypeError(f'{op}() missing 1 required positional arguments: "size"')
    if len(args) == 1 and not isinstance(args[0], (tuple, list)):
        try:
            return (operator.index(args[0]),)
        except TypeError:
            raise TypeError(f"{op}(): argument 'size' (position 1) must be tuple of ints, not "
                            f"{type(args[0]).__name__}") from None
    if len(args) == 1:
        args = args[0]
    out = []
    for i, s in enumerate(args):
        try:
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(f"{op}(): argument 'size' failed to unpack the object at pos {i + 1} with error "
                            f"\"type must be tuple of ints,but got {type(s).__name__}\"") from None
    return tuple(out)


def new_output(op, shape, dtype, device, out):
    """The tensor a factory fills: fresh, or `out` (dtype must agree; resized silently, as torch)."""
    c.check_size(shape, op)
    _check_dtype(op, dtype)
    if out is None:
        return c.empty(shape, dtype or dt.get_default_dtype(), device=canonical(device))
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if dtype is not None and dtype is not out._dtype:
        raise RuntimeError(f"dtype {m.TYPE_NAMES[dtype]} does not match dtype of out parameter "
                           f"({m.TYPE_NAMES[out._dtype]})")
    if tuple(out._shape) != shape:
        m.resize_(out, shape)
    return out


def fill(t, value):
    """Write one Python number into every element of t (checked against t's dtype)."""
    return c.copy_(t, c.full((), value, t._dtype, device=t._device))


def _filled(op, value, args, size, out, dtype, device, requires_grad):
    shape = parse_size(args, size, op)
    if out is None:
        c.check_size(shape, op)
        _check_dtype(op, dtype)
        t = c.full(shape, value, dtype or dt.get_default_dtype(), device=canonical(device))
    else:
        t = fill(new_output(op, shape, dtype, device, out), value)
    return _finish(t, requires_grad)


def empty(*args, size=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False, memory_format=None):
    t = new_output("empty", parse_size(args, size, "empty"), dtype, device, out)
    if mf.check(memory_format) in (mf.channels_last, mf.channels_last_3d):  # same bytes, channels-last strides
        t = c.empty_strided(t._shape, mf.channels_last_strides(t._shape, memory_format), t._dtype, t._device)
    return _finish(t, requires_grad)


def zeros(*args, size=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False):
    return _filled("zeros", 0, args, size, out, dtype, device, requires_grad)


def ones(*args, size=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False):
    return _filled("ones", 1, args, size, out, dtype, device, requires_grad)


def _fill_value(op, value):
    """A Number (or one-element tensor) fill value as a Python number."""
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise TypeError(f"{op}(): argument 'fill_value' (position 2) must be Number, not Tensor")
        return value.item()
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return value.item()
    if not isinstance(value, _PY_NUMBERS):
        raise TypeError(f"{op}(): argument 'fill_value' (position 2) must be Number, not {type(value).__name__}")
    return value


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False):
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"full(): argument 'size' (position 1) must be tuple of ints, not {type(size).__name__}")
    value = _fill_value("full", fill_value)
    if dtype is None and out is None:
        dtype = _py_dtype(value)
    return _filled("full", value, (size,), None, out, dtype, device, requires_grad)


def scalar_tensor(s, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    return full((), _fill_value("scalar_tensor", s), dtype=dtype or dt.get_default_dtype(), device=device,
                requires_grad=requires_grad)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    shape, stride = parse_size((size,), None, "empty_strided"), parse_size((stride,), None, "empty_strided")
    if len(shape) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape")
    c.check_size(shape)
    t = c.empty_strided(shape, stride, dtype or dt.get_default_dtype(), canonical(device))
    return _finish(t, requires_grad)


# -- ranges -----------------------------------------------------------------------------------------------

def _number(op, x, names):
    """A Number argument (0-d tensors and NumPy scalars unwrap) or torch's TypeError."""
    if isinstance(x, Tensor):
        if x.numel() != 1:
            raise TypeError(f"{op}(): argument must be Number, not Tensor")
        return x.item()
    if isinstance(x, np.generic) and x.dtype.kind in "biufc":
        return x.item()
    if not isinstance(x, _PY_NUMBERS):
        raise TypeError(f"{op}() received an invalid combination of arguments - got "
                        f"({', '.join(type(v).__name__ for v in names)})")
    return x


def arange(*args, start=None, end=None, step=None, out=None, dtype=None, layout=None, device=None,
           requires_grad=False, pin_memory=False):
    """arange(end), arange(start, end), arange(start, end, step): int64 when every bound is an
    integer, else the default float dtype."""
    if len(args) == 1 and end is None:
        end, = args
    elif len(args) == 1:  # arange(start, end=...)
        start, = args
    elif len(args) in (2, 3):
        start, end = args[:2]
        step = args[2] if len(args) == 3 else step
    elif args or end is None:
        raise TypeError(f"arange() received an invalid combination of arguments - got "
                        f"({', '.join(type(v).__name__ for v in args)})")
    given = [v for v in (start, end, step) if v is not None]
    start, end, step = (_number("arange", v, given) if v is not None else default
                        for v, default in ((start, 0), (end, 0), (step, 1)))
    _check_dtype("arange", dtype)
    if dtype is None:
        dtype = out._dtype if out is not None else (
            dt.get_default_dtype() if any(isinstance(v, float) for v in (start, end, step)) else dt.int64)
    elif out is not None and dtype is not out._dtype:
        raise RuntimeError(f"dtype {m.TYPE_NAMES[dtype]} does not match dtype of out parameter "
                           f"({m.TYPE_NAMES[out._dtype]})")
    dev = out._device if out is not None and device is None else canonical(device)
    return _finish(c.arange(start, end, step, dtype, device=dev, out=out), requires_grad)


def _steps(op, steps):
    if isinstance(steps, Tensor):
        steps = steps.item()
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"{op}() received an invalid combination of arguments - got (steps of type "
                        f"{type(steps).__name__})")
    return int(steps)


def _range_dtype(dtype, out, start, end):
    if dtype is None:
        if out is not None:
            return out._dtype
        return dt.default_complex_dtype() if isinstance(start, complex) or isinstance(end, complex) \
            else dt.get_default_dtype()
    if out is not None and dtype is not out._dtype:
        raise RuntimeError(f"dtype {m.TYPE_NAMES[dtype]} does not match dtype of out parameter "
                           f"({m.TYPE_NAMES[out._dtype]})")
    return dtype


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    start, end = _number("linspace", start, (start, end, steps)), _number("linspace", end, (start, end, steps))
    steps = _steps("linspace", steps)
    _check_dtype("linspace", dtype)
    dtype = _range_dtype(dtype, out, start, end)
    dev = out._device if out is not None and device is None else canonical(device)
    return _finish(c.linspace(start, end, steps, dtype, device=dev, out=out), requires_grad)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False, pin_memory=False):
    start, end = _number("logspace", start, (start, end, steps)), _number("logspace", end, (start, end, steps))
    steps = _steps("logspace", steps)
    base = _number("logspace", base, (start, end, steps, base))
    _check_dtype("logspace", dtype)
    dtype = _range_dtype(dtype, out, start, end)
    dev = out._device if out is not None and device is None else canonical(device)
    return _finish(c.logspace(start, end, steps, base, dtype, device=dev, out=out), requires_grad)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    for name, pos, v in (("n", 1, n), ("m", 2, m)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise TypeError(f"eye(): argument '{name}' (position {pos}) must be int, not {type(v).__name__}")
    n = int(n)
    m = n if m is None else int(m)
    _check_dtype("eye", dtype)
    dtype = _range_dtype(dtype, out, 0, 0)
    dev = out._device if out is not None and device is None else canonical(device)
    return _finish(c.eye(n, m, dtype, device=dev, out=out), requires_grad)


# -- *_like and Tensor.new_* ----------------------------------------------------------------------------------

def _like_empty(input, dtype, device, memory_format):
    if not isinstance(input, Tensor):
        raise TypeError(f"empty_like(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
    _check_dtype("empty_like", dtype)
    device = canonical(device) if device is not None else input._device
    return c.empty_like(input, dtype, device, mf.check(memory_format))  # None is preserve: keep dense strides


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None,
               pin_memory=False):
    return _finish(_like_empty(input, dtype, device, memory_format), requires_grad)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False,
              memory_format=None, pin_memory=False):
    t = _like_empty(input, dtype, device, memory_format)
    return _finish(fill(t, _fill_value("full_like", fill_value)), requires_grad)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None,
               pin_memory=False):
    return _finish(fill(_like_empty(input, dtype, device, memory_format), 0), requires_grad)


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None,
              pin_memory=False):
    return _finish(fill(_like_empty(input, dtype, device, memory_format), 1), requires_grad)


@method
def new_empty(self, *args, size=None, dtype=None, layout=None, device=None, requires_grad=False,
              pin_memory=False):
    return empty(*args, size=size, dtype=dtype or self._dtype, device=device or self._device,
                 requires_grad=requires_grad)


@method
def new_zeros(self, *args, size=None, dtype=None, layout=None, device=None, requires_grad=False,
              pin_memory=False):
    return zeros(*args, size=size, dtype=dtype or self._dtype, device=device or self._device,
                 requires_grad=requires_grad)


@method
def new_ones(self, *args, size=None, dtype=None, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    return ones(*args, size=size, dtype=dtype or self._dtype, device=device or self._device,
                requires_grad=requires_grad)


@method
def new_full(self, size, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    return full(size, fill_value, dtype=dtype or self._dtype, device=device or self._device,
                requires_grad=requires_grad)


@method
def new_tensor(self, data, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """A copy of `data` with self's dtype and device unless given (no dtype inference)."""
    return tensor(data, dtype=dtype or self._dtype, device=device or self._device, requires_grad=requires_grad)


@method
def new_empty_strided(self, size, stride, *, dtype=None, layout=None, device=None, requires_grad=False,
                      pin_memory=False):
    return empty_strided(size, stride, dtype=dtype or self._dtype, device=device or self._device,
                         requires_grad=requires_grad)


__all__ = ["tensor", "as_tensor", "asarray", "from_numpy", "empty", "zeros", "ones", "full", "scalar_tensor",
           "empty_strided", "arange", "linspace", "logspace", "eye", "empty_like", "zeros_like", "ones_like",
           "full_like"]
