"""CPU kernels of the shape ops, on NumPy: each computes the result as an ndarray expression over
the input's bytes and copies it into a tensor laid out as torch lays it out."""
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.backends.cpu.scatter import fill_value
from vibetensor.ops import creation, views
from vibetensor.ops import shape_ops as s
from vibetensor.ops.meta import bump_version, output
from vibetensor.ops.reduction import check_out_dtype
from vibetensor.tensor.tensor import array, empty

CPU = DispatchKey.CPU


def flip(self, dims):
    dims = s.flip_meta(self, dims)
    res = creation.empty_like(self)  # torch keeps the input's memory layout
    key = tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(self.ndim))
    np.copyto(array(res), array(self)[key])
    return res


def roll(self, shifts, dims):
    shifts, dims = s.roll_meta(self, shifts, dims)
    res = empty(self._shape, self._dtype, self._device)
    np.copyto(array(res), np.roll(array(self), shifts, axis=dims if dims else None))
    return res


def repeat(self, repeats):
    padded, shape = s.repeat_meta(self, tuple(repeats))
    res = empty(shape, self._dtype, self._device)
    if res.numel():
        np.copyto(array(res), np.tile(array(self).reshape(padded), tuple(repeats)))
    return res


def _triangle(name, keep):
    def kernel(self, diagonal=0, out=None):
        s.triangle_meta(name, self)
        if out is not None and out is not self:
            check_out_dtype(out, self._dtype)
        res = output(name, out, self._shape, self._dtype, self._device, inplace=out is self)
        np.copyto(array(res), keep(array(self), diagonal))
        if out is not None:
            bump_version(res)
        return res
    return kernel


tril = _triangle("tril", np.tril)
triu = _triangle("triu", np.triu)


def diag_embed(self, offset=0, dim1=-2, dim2=-1):
    shape, d1, d2 = s.diag_embed_meta(self, offset, dim1, dim2)
    res = creation.full(shape, 0, self._dtype, device=self._device)
    np.copyto(array(views.diagonal(res, offset, d1, d2)), array(self))
    return res


def fill(self, value, out=None):
    s.fill_meta(self, value)
    v = fill_value(value, self._dtype)
    res = creation.empty_like(self) if out is None else \
        output("fill", out, self._shape, self._dtype, self._device, inplace=out is self)
    np.copyto(array(res), v)
    if out is not None:
        bump_version(res)
    return res


def repeat_interleave(repeats, output_size=None):
    s.repeat_interleave_meta(repeats, output_size)
    r = array(repeats)
    if r.size and r.min() < 0:
        raise RuntimeError("repeats can not be negative")
    total = int(r.sum())
    if output_size is not None and output_size != total:
        raise RuntimeError("allocated size does not match required size")
    res = empty((total,), repeats._dtype, repeats._device)
    np.copyto(array(res), np.repeat(np.arange(r.size), r))
    return res


for _name in ("flip", "roll", "repeat", "tril", "triu", "diag_embed", "fill", "repeat_interleave"):
    getattr(s, _name).register(CPU, globals()[_name])
