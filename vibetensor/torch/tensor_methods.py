"""Tensor's user-facing methods and operators, installed onto the core Tensor class.

Functions of vibetensor.torch whose first parameter is the tensor become methods as they are
(`x.add(y)` is `torch.add(x, y)`); in-place forms call the same op with out=self. Operators
return NotImplemented for operand types they don't know, so Python can try the other side.
"""
import operator

import numpy as np

from vibetensor import ops
from vibetensor.ops import creation, views
from vibetensor.ops import elementwise as ew
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.device import canonical, device as Device
from vibetensor.tensor.tensor import Tensor, array
from vibetensor.torch import functional as F
from vibetensor.torch import indexing

_NUMBER = (Tensor, bool, int, float, complex)


def method(fn, name=None):
    setattr(Tensor, name or fn.__name__, fn)
    return fn


def inplace(fn):
    """x.f_(...) == f(x, ..., out=x): the op writes its result into x's bytes."""
    def f_(self, *args, **kwargs):
        return fn(self, *args, out=self, **kwargs)
    f_.__name__ = fn.__name__ + "_"
    return f_


# -- operators ---------------------------------------------------------------------------------------

def _binary_operator(op, *fixed):
    def forward(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(self, other, *fixed)

    def reflected(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(other, self, *fixed)

    def in_place(self, other):
        if not isinstance(other, _NUMBER):
            return NotImplemented
        return op(self, other, *fixed, out=self)
    return forward, reflected, in_place


for _name, _op, _fixed in (("add", ew.add, (1,)), ("sub", ew.sub, (1,)), ("mul", ew.mul, ()),
                           ("truediv", ew.div, (None,))):
    _f, _r, _i = _binary_operator(_op, *_fixed)
    setattr(Tensor, f"__{_name}__", _f)
    setattr(Tensor, f"__r{_name}__", _r)
    setattr(Tensor, f"__i{_name}__", _i)

Tensor.__eq__ = lambda self, other: ew.eq(self, other) if isinstance(other, _NUMBER) else NotImplemented
Tensor.__neg__ = lambda self: ew.neg(self)
Tensor.__getitem__ = indexing.getitem
Tensor.__setitem__ = indexing.setitem
Tensor.__hash__ = lambda self: id(self)

# -- op methods ----------------------------------------------------------------------------------------
for _fn in (F.add, F.sub, F.mul, F.div, F.neg, F.exp, F.eq):
    method(_fn)
    method(inplace(_fn))
for _alias, _target in (("subtract", F.sub), ("multiply", F.mul), ("divide", F.div), ("true_divide", F.div),
                        ("negative", F.neg)):
    method(_target, _alias)
    method(inplace(_target), _alias + "_")


# -- views -----------------------------------------------------------------------------------------------

@method
def view(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], dt.dtype):
        return ops.views.view_dtype(self, shape[0])
    return views.view(self, sh.as_shape(shape, "view"))


@method
def permute(self, *dims):
    return views.permute(self, sh.as_shape(dims, "permute"))


@method
def transpose(self, dim0, dim1):
    return views.transpose(self, dim0, dim1)


@method
def expand(self, *sizes):
    return views.expand(self, sh.as_shape(sizes, "expand"))


@method
def squeeze(self, dim=None):
    return views.squeeze(self, dim)


@method
def unsqueeze(self, dim):
    return views.unsqueeze(self, dim)


@method
def select(self, dim, index):
    return views.select(self, dim, operator.index(index))


@method
def narrow(self, dim, start, length):
    return views.narrow(self, dim, operator.index(start), operator.index(length))


@method
def as_strided(self, size, stride, storage_offset=None):
    return views.as_strided(self, sh.as_shape((size,), "as_strided"), sh.as_shape((stride,), "as_strided"),
                            storage_offset)


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
