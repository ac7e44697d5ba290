"""Installing methods onto the core Tensor class, and the conversion methods (to, cpu, numpy, item...).

Each front-door module (pointwise, views, reduction, ...) installs its own methods with `method`:
functions whose first parameter is the tensor become methods as they are (`x.add(y)` is
`torch.add(x, y)`); in-place forms (`inplace`) call the same op with out=self.
"""
import numpy as np

from vibetensor import ops
from vibetensor.ops import creation
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.device import canonical, device as Device
from vibetensor.tensor.tensor import Tensor, array

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
    return creation.clone(self)


@method
def contiguous(self, memory_format=None):
    return creation.contiguous(self)


@method
def copy_(self, src, non_blocking=False):
    return creation.copy_(self, src)


def _parse_to(self, args, kwargs):
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    for a in args:
        if isinstance(a, dt.dtype):
            dtype = a
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        elif isinstance(a, (str, Device, int)):
            device = a
        else:
            raise TypeError(f"to() received an invalid combination of arguments - got ({type(a).__name__})")
    return dtype or self._dtype, canonical(device) if device is not None else self._device


@method
def to(self, *args, non_blocking=False, copy=False, memory_format=None, **kwargs):
    dtype, device = _parse_to(self, args, kwargs)
    return creation.to(self, dtype, device, copy)


@method
def cpu(self):
    return creation.to(self, self._dtype, canonical("cpu"))


@method
def cuda(self, device=None, non_blocking=False):
    return creation.to(self, self._dtype, canonical(device if device is not None else "cuda"))


def _cast(d):
    return lambda self: creation.to(self, d, self._device)


for _n, _d in (("float", dt.float32), ("double", dt.float64), ("half", dt.float16), ("bfloat16", dt.bfloat16),
               ("int", dt.int32), ("long", dt.int64), ("short", dt.int16), ("char", dt.int8),
               ("byte", dt.uint8), ("bool", dt.bool_), ("cfloat", dt.complex64), ("cdouble", dt.complex128)):
    setattr(Tensor, _n, _cast(_d))


@method
def numpy(self, *, force=False):
    if self._requires_grad and not force:
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
    return array(self.cpu() if force else self)


@method
def item(self):
    if self.numel() != 1:
        raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
    return array(self.cpu()).reshape(()).item() if self._dtype is not dt.bfloat16 else \
        float(array(self.cpu()).reshape(()))


@method
def tolist(self):
    a = array(self.cpu())
    if self._dtype is dt.bfloat16:
        a = a.astype(np.float32)
    return a.tolist()


@method
def type_name(self):
    return ops.meta.legacy_type_name(self)


def _scalar_conversion(kind):
    def convert(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return kind(self.item())
    return convert


Tensor.__float__ = _scalar_conversion(float)
Tensor.__int__ = _scalar_conversion(int)
Tensor.__bool__ = _scalar_conversion(bool)
Tensor.__complex__ = _scalar_conversion(complex)


def _index(self):
    if self.numel() != 1 or self._dtype.category != 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(self.item())


Tensor.__index__ = _index
Tensor.__array__ = lambda self, dtype=None, copy=None: array(self.cpu()) if dtype is None else \
    array(self.cpu()).astype(dtype)
Tensor.__repr__ = lambda self: f"tensor({array(self.cpu()).tolist()})"
