"""Installing methods onto the core Tensor class, and the conversion methods (to, cpu, numpy, item...).

Each front-door module (pointwise, views, reduction, ...) installs its own methods with `method`:
functions whose first parameter is the tensor become methods as they are (`x.add(y)` is
`torch.add(x, y)`); in-place forms (`inplace`) call the same op with out=self.
"""
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation
from vibetensor.ops.meta import TYPE_NAMES, legacy_type_name
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import memory_format as mf
from vibetensor.tensor.device import CPU, canonical, device as Device
from vibetensor.tensor.tensor import Tensor, array, empty_cpu

def method(fn, name=None):
    setattr(Tensor, name or fn.__name__, fn)
    return fn


def inplace(fn):
    """x.f_(...) == f(x, ..., out=x): the op writes its result into x's bytes."""
    def f_(self, *args, **kwargs):
        return fn(self, *args, out=self, **kwargs)
    f_.__name__ = fn.__name__ + "_"
    return f_


# -- copies, conversion --------------------------------------------------------------------------------

@method
def clone(self, *, memory_format=None):
    return creation.clone(self, memory_format=mf.check(memory_format))


@method
def contiguous(self, memory_format=None):
    return creation.contiguous(self, mf.check(memory_format))  # (positional: CUDA replays plans of positional calls)


@method
def copy_(self, src, non_blocking=False):
    return creation.copy_(self, src)


def _to_error(args, kwargs):
    got = ", ".join([type(a).__name__ if not isinstance(a, dt.dtype) else "torch.dtype" for a in args] +
                    [f"{k}={type(v).__name__}" for k, v in kwargs.items()])
    return TypeError(f"to() received an invalid combination of arguments - got ({got}), but expected one of:\n"
                     " * (torch.device device = None, torch.dtype dtype = None, bool non_blocking = False, "
                     "bool copy = False, *, torch.memory_format memory_format = None)\n"
                     " * (torch.dtype dtype, bool non_blocking = False, bool copy = False, *, "
                     "torch.memory_format memory_format = None)\n"
                     " * (Tensor tensor, bool non_blocking = False, bool copy = False, *, "
                     "torch.memory_format memory_format = None)\n")


def _parse_to(self, args, kwargs):
    """torch's three overloads: to(device=None, dtype=None, non_blocking, copy), to(dtype,
    non_blocking, copy), to(tensor, non_blocking, copy). Returns (dtype, device, copy)."""
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    rest = list(args)
    if rest and isinstance(rest[0], dt.dtype):
        dtype = rest.pop(0)
    elif rest and isinstance(rest[0], Tensor):
        other = rest.pop(0)
        dtype, device = other._dtype, other._device
    elif rest and (rest[0] is None or isinstance(rest[0], (str, Device, int)) and not isinstance(rest[0], bool)):
        device = rest.pop(0)
        if rest and (rest[0] is None or isinstance(rest[0], dt.dtype)):
            dtype = rest.pop(0)
    if len(rest) > 2 or any(not isinstance(a, bool) for a in rest) or kwargs or \
            (dtype is not None and not isinstance(dtype, dt.dtype)):
        raise _to_error(args, kwargs)
    if len(rest) == 2:
        copy = rest[1]
    return dtype or self._dtype, canonical(device) if device is not None else self._device, copy


@method
def to(self, *args, memory_format=None, **kwargs):
    dtype, device, copy = _parse_to(self, args, dict(kwargs))
    return creation.to(self, dtype, device, copy, memory_format=mf.check(memory_format))


def _sparse(layout):
    def to_sparse(self, *args, **kwargs):
        raise NotImplementedError(f"Tensor.{layout}(): vibetensor has dense (strided) tensors only; sparse layouts "
                                  "are not supported")
    return to_sparse


for _layout in ("to_sparse", "to_sparse_csr", "to_sparse_csc", "to_sparse_bsr", "to_sparse_bsc", "to_sparse_coo"):
    method(_sparse(_layout), _layout)


@method
def cpu(self, memory_format=None):
    return self.to(CPU, memory_format=memory_format)


@method
def cuda(self, device=None, non_blocking=False, memory_format=None):
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    return self.to(canonical(device if device is not None else "cuda"), memory_format=memory_format)


def _cast(d):
    def cast(self, memory_format=None):
        return self.to(d, memory_format=memory_format)
    return cast


_CASTS = {"float": dt.float32, "double": dt.float64, "half": dt.float16, "bfloat16": dt.bfloat16,
          "int": dt.int32, "long": dt.int64, "short": dt.int16, "char": dt.int8, "byte": dt.uint8,
          "bool": dt.bool_, "cfloat": dt.complex64, "cdouble": dt.complex128}
for _n, _d in _CASTS.items():
    method(_cast(_d), _n)

_BY_TYPE_NAME = {name: d for d, name in TYPE_NAMES.items()}


def _type(self, dtype=None, non_blocking=False, **kwargs):
    """No argument: the legacy type string ('torch.FloatTensor'); else a conversion to a dtype or
    to a type string ('torch.DoubleTensor', 'torch.cuda.FloatTensor')."""
    if dtype is None:
        return legacy_type_name(self)
    if isinstance(dtype, dt.dtype):
        return self.to(dtype)
    name = dtype if isinstance(dtype, str) else f"{dtype.__module__}.{dtype.__qualname__}" \
        if hasattr(dtype, "__qualname__") else repr(dtype)
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "torch" and parts[-1].endswith("Tensor") and \
            parts[-1][:-6] in _BY_TYPE_NAME and parts[1:-1] in ([], ["cuda"]):
        device = "cuda" if parts[1:-1] == ["cuda"] else "cpu"
        return self.to(canonical(device) if device == "cuda" else CPU, _BY_TYPE_NAME[parts[-1][:-6]])
    raise ValueError(f"invalid type: '{name}'")


method(_type, "type")  # not `def type`: that would shadow the builtin in this module


@method
def type_as(self, other):
    return creation.to(self, other._dtype, other._device)


def host_array(t):
    """The values of t as a NumPy array on the host (a view for CPU tensors; device tensors are
    copied, a sync). Bypasses autograd: reading values records nothing."""
    if t._device.type == "cpu":
        return array(t)
    host = empty_cpu(tuple(t._shape), t._dtype)
    creation.copy_.redispatch(DispatchKey.CPU, host, t)
    return array(host)


@method
def numpy(self, *, force=False):
    """A NumPy array sharing this CPU tensor's memory (bfloat16 as ml_dtypes.bfloat16)."""
    if force:
        return np.array(host_array(self)) if self._device.type != "cpu" or self._requires_grad \
            else array(self)
    if self._requires_grad:
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
    return array(self)


def _python(a):
    """NumPy scalars/arrays -> Python numbers/lists (half types as floats)."""
    if a.dtype == dt.bfloat16.np:  # ml_dtypes scalars are not Python floats
        a = a.astype(np.float32)
    return a.tolist()


@method
def item(self):
    if self.numel() != 1:
        raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
    return _python(host_array(self).reshape(()))


@method
def tolist(self):
    return _python(host_array(self))


def _scalar_conversion(kind):
    """float(t), int(t), complex(t), bool(t): one-element tensors only."""
    def convert(self):
        if self.numel() != 1:
            if kind is bool:
                many = "no values" if self.numel() == 0 else "more than one value"
                raise RuntimeError(f"Boolean value of Tensor with {many} is ambiguous")
            raise ValueError("only one element tensors can be converted to Python scalars")
        v = self.item()
        if isinstance(v, complex) and kind in (float, int) and v.imag != 0:
            raise RuntimeError(f"value cannot be converted to type {'double' if kind is float else 'int64_t'} "
                               "without overflow")
        return kind(v.real if isinstance(v, complex) and kind is not complex and kind is not bool else v)
    return convert


Tensor.__float__ = _scalar_conversion(float)
Tensor.__int__ = _scalar_conversion(int)
Tensor.__bool__ = _scalar_conversion(bool)
Tensor.__complex__ = _scalar_conversion(complex)


def _index(self):
    if self.numel() != 1 or self._dtype.category > 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(self.item())


def _array(self, dtype=None, copy=None):
    """np.asarray(t): numpy() (so it refuses tensors that require grad, like torch)."""
    a = self.numpy() if self._device.type == "cpu" else host_array(self)
    return a if dtype is None else a.astype(dtype, copy=False)


def _repr(self, *, tensor_contents=None):
    from vibetensor.torch._tensor_str import tensor_repr
    return tensor_repr(self, host_array)


def _format(self, spec):
    if self.ndim == 0 and self._device.type != "meta":
        return self.item().__format__(spec)
    return object.__format__(self, spec)


Tensor.__index__ = _index
Tensor.__array__ = _array
Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor.__format__ = _format
