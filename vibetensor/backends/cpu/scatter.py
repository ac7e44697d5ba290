"""CPU kernels of the scatter/gather ops, on NumPy.

Every op is "read index values, check them all, then write": the meta function (ops/scatter.py)
has checked dtypes and shapes, the kernel checks bounds, and only then allocates or resizes the
output, copies self into it (unless it is self: in place) and writes. Repeated indices combine with
NumPy's unbuffered `ufunc.at`; reductions of half types run in float32 and round once, as torch's
CPU kernels accumulate in their "opmath" type.
"""
import warnings

import numpy as np

from vibetensor.backends.cpu import np_compute
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation
from vibetensor.ops import scatter as m
from vibetensor.ops.meta import bump_version
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, array, empty

CPU = DispatchKey.CPU
_UFUNCS = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _a1(t):
    """The tensor's NumPy view, 0-d tensors seen as 1-d (torch's ensure_nonempty_dim)."""
    a = array(t)
    return a.reshape(1) if a.ndim == 0 else a


def fill_value(value, dtype):
    """A Python number or 0-d tensor as a NumPy scalar of dtype (torch's Scalar conversion)."""
    return np.array(m.scalar_for(value, dtype)).astype(dtype.np)


def _dst(op, self, out, shape=None, preserve=False):
    """The tensor written: new (holding a copy of self, broadcast to `shape`; with self's memory
    layout where torch clones with preserve_format), self, or out=."""
    shape = tuple(self._shape) if shape is None else tuple(shape)
    if preserve and out is None:
        res = creation.empty_like(self)
    else:
        res = m.result(op, out, shape, self._dtype, self._device, self)
    if res is not self:
        np.copyto(array(res), np.broadcast_to(array(self), shape))
    return res


def _done(res, out):
    if out is not None:
        bump_version(res)
    return res


# -- checks of index values ------------------------------------------------------------------------------------

def _check_nonneg_bounds(idx, n, dim, exc=RuntimeError, prefix=""):
    """0 <= idx < n (gather, scatter, index_add: no negative indices)."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].reshape(-1)[0]
        raise exc(f"{prefix}index {bad} is out of bounds for dimension {dim} with size {n}")


def _check_wrapped_bounds(idx, n, dim):
    """-n <= idx < n (index_fill)."""
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].reshape(-1)[0]
        raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {n}")


def _along(index, dim):
    """The positions scatter writes: index values along dim, the element's own coordinate elsewhere."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = index
    return tuple(grids)


def _corner(a, shape):
    """The leading `shape` block of a (the part of src an index reaches)."""
    return a[tuple(slice(0, n) for n in shape)]


# -- the one reduction-by-key routine ----------------------------------------------------------------------------

def _identity(reduce, np_dtype):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if np_dtype.kind == "b":
        return reduce == "amin"
    if np_dtype.kind in "iu":
        info = np.iinfo(np_dtype)
        return info.min if reduce == "amax" else info.max
    return -np.inf if reduce == "amax" else np.inf


def reduce_at(dst, key, values, reduce, include_self=True, opmath=True):
    """dst[key] <- values combined with `reduce` (None: assignment); repeated keys all count. Half
    types accumulate in float32 (opmath), or in their own dtype, rounding at every step (index_reduce)."""
    if reduce is None:
        dst[key] = values
        return
    ct = np_compute(dt.from_numpy(dst.dtype)) if opmath else dst.dtype
    work = dst if dst.dtype == ct else dst.astype(ct)
    values = values if values.dtype == ct else values.astype(ct)
    if not include_self:
        work[key] = _identity(reduce, ct)
    _UFUNCS[reduce].at(work, key, values)
    if reduce == "mean":
        count = np.full(dst.shape, 1 if include_self else 0, np.int64)
        if not include_self:
            count[key] = 0
        np.add.at(count, key, 1)
        count = np.maximum(count, 1)
        if ct.kind in "iu":
            work = np.floor_divide(work, count)
        else:  # torch divides the sum once it is stored in dst's dtype
            work = np.divide(work.astype(dst.dtype), count.astype(dst.dtype))
    if work is not dst:
        np.copyto(dst, work, casting="unsafe")


# -- gather / scatter ----------------------------------------------------------------------------------------------

def gather(self, dim, index, sparse_grad=False, out=None):
    dim = m.gather_meta(self, dim, index)
    src, idx = _a1(self), _a1(index)
    _check_nonneg_bounds(idx, src.shape[dim], dim)
    res = m.result("gather", out, tuple(index._shape), self._dtype, self._device)
    if idx.size:
        corner = _corner(src, idx.shape[:dim] + (src.shape[dim],) + idx.shape[dim + 1:])
        np.copyto(_a1(res), np.take_along_axis(corner, idx, axis=dim))
    return _done(res, out)


def _scatter(op, self, dim, index, src, reduce, include_self, out, reduces):
    dim = m.scatter_meta(self, dim, index, src, reduce, reduces)
    if reduce is not None:
        m.check_reduce_dtype("scatter_gather_tensor_cpu_reduce", reduce, self._dtype)
    idx = _a1(index)
    _check_nonneg_bounds(idx, self._shape[dim] if self.ndim else 1, dim)
    fill = fill_value(src, self._dtype) if not isinstance(src, Tensor) else None
    res = _dst(op, self, out)
    if idx.size:
        values = np.broadcast_to(fill, idx.shape) if fill is not None else _corner(_a1(src), idx.shape)
        reduce_at(_a1(res), _along(idx, dim), values, reduce, include_self)
    return _done(res, out)


def scatter(self, dim, index, src, reduce=None, out=None):
    if reduce is not None:
        if reduce not in m.LEGACY_REDUCES:
            raise RuntimeError("reduce argument must be either add or multiply.")
        if isinstance(src, Tensor):
            warnings.warn("The reduce argument of torch.scatter with Tensor src is deprecated and will be removed in "
                          "a future PyTorch release. Use torch.scatter_reduce instead for more reduction options.",
                          UserWarning, stacklevel=3)
        reduce = m.LEGACY_REDUCES[reduce]
    return _scatter("scatter", self, dim, index, src, reduce, True, out, None)


def scatter_add(self, dim, index, src, out=None):
    return _scatter("scatter_add", self, dim, index, src, "sum", True, out, None)


def scatter_reduce(self, dim, index, src, reduce, include_self=True, out=None):
    return _scatter("scatter_reduce", self, dim, index, src, reduce, include_self, out, m.SCATTER_REDUCES)


# -- index_* -------------------------------------------------------------------------------------------------------

def _slices(dim, idx):
    """The key of whole slices along dim: x[:, :, idx] for dim 2."""
    return (slice(None),) * dim + (idx,)


def index_select(self, dim, index, out=None):
    dim, shape = m.index_select_meta(self, dim, index)
    src, idx = _a1(self), array(index).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= src.shape[dim]):
        raise IndexError("index out of range in self")
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError("index_select(): self and result must have the same scalar type")
    res = m.result("index_select", out, shape, self._dtype, self._device)
    np.copyto(array(res), np.take(src, idx, axis=dim).reshape(shape))
    return _done(res, out)


def index_add(self, dim, index, source, alpha=1, out=None):
    dim = m.index_func_meta("index_add", self, dim, index, source)
    idx = array(index).reshape(-1)
    _check_nonneg_bounds(idx, self._shape[dim] if self.ndim else 1, dim)
    alpha = m.scalar_for(alpha, self._dtype)
    res = _dst("index_add", self, out)
    if idx.size:
        values = _a1(source).reshape(_key_shape(res, dim, idx))
        if alpha != 1:  # torch scales in self's dtype (half types round the product), then adds
            ct = np_compute(self._dtype)
            values = (values.astype(ct) * np.array(alpha).astype(ct)).astype(values.dtype)
        # half types: torch rounds after each added slice, except with alpha 1 on a tensor of 2+ dims
        reduce_at(_a1(res), _slices(dim, idx), values, "sum", opmath=alpha == 1 and self.ndim > 1)
    return _done(res, out)


def _key_shape(res, dim, idx):
    shape = list(_a1(res).shape)
    shape[dim] = idx.size
    return tuple(shape)


def index_copy(self, dim, index, source, out=None):
    dim = m.index_copy_meta(self, dim, index, source)
    idx = array(index).reshape(-1)
    _check_nonneg_bounds(idx, self._shape[dim] if self.ndim else 1, dim, IndexError, "index_copy_(): ")
    res = _dst("index_copy", self, out)
    if idx.size:
        reduce_at(_a1(res), _slices(dim, idx), _a1(source).reshape(_key_shape(res, dim, idx)), None)
    return _done(res, out)


def index_fill(self, dim, index, value, out=None):
    dim = m.index_fill_meta(self, dim, index, value)
    idx = array(index).reshape(-1)
    _check_wrapped_bounds(idx, self._shape[dim] if self.ndim else 1, dim)
    fill = fill_value(value, self._dtype)
    res = _dst("index_fill", self, out, preserve=True)
    if idx.size:
        _a1(res)[_slices(dim, idx)] = fill
    return _done(res, out)


def index_reduce(self, dim, index, source, reduce, include_self=True, out=None):
    dim = m.index_reduce_meta(self, dim, index, source, reduce, include_self)
    idx = array(index).reshape(-1)
    n = self._shape[dim] if self.ndim else 1
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    res = _dst("index_reduce", self, out)
    if idx.size:
        reduce_at(_a1(res), _slices(dim, idx), _a1(source).reshape(_key_shape(res, dim, idx)), reduce,
                  include_self, opmath=False)
    return _done(res, out)


# -- masks ---------------------------------------------------------------------------------------------------------

def masked_fill(self, mask, value, out=None):
    shape = m.masked_fill_meta(self, mask, value)
    fill = fill_value(value, self._dtype)
    res = _dst("masked_fill", self, out, shape)
    np.copyto(array(res), fill, where=np.broadcast_to(array(mask), shape))
    return _done(res, out)


def masked_scatter(self, mask, source, out=None):
    shape = m.masked_scatter_meta(self, mask, source)
    where = np.broadcast_to(array(mask), shape)
    n = int(np.count_nonzero(where))
    if n > source.numel():
        raise RuntimeError("Number of elements of source < number of ones in mask")
    res = _dst("masked_scatter", self, out, shape)
    if n:
        array(res)[where] = array(source).reshape(-1)[:n]
    return _done(res, out)


def masked_select(self, mask, out=None):
    shape = m.masked_select_meta(self, mask)
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError("masked_select(): self and result must have the same scalar type")
    picked = np.broadcast_to(array(self), shape)[np.broadcast_to(array(mask), shape)]
    res = m.result("masked_select", out, picked.shape, self._dtype, self._device)
    np.copyto(array(res), picked)
    return _done(res, out)


# -- take / put ----------------------------------------------------------------------------------------------------

def _check_flat_bounds(idx, n, op):
    if idx.size and n == 0:
        raise IndexError("take(): tried to take from an empty tensor" if op == "take"
                         else "put_(): Tried to put elements into an empty tensor")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].reshape(-1)[0]
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {n} elements.")


def take(self, index, out=None):
    m.take_meta(self, index)
    idx = array(index)
    _check_flat_bounds(idx, self.numel(), "take")
    if out is not None and isinstance(out, Tensor) and out._dtype is not self._dtype:
        raise RuntimeError(f"take(): self and out expected to have the same dtype, but got self.dtype = "
                           f"{m.NAMES[self._dtype]} and out.dtype = {m.NAMES[out._dtype]}")
    res = m.result("take", out, tuple(index._shape), self._dtype, self._device)
    if idx.size:
        np.copyto(array(res), np.take(array(self), idx))
    return _done(res, out)


def put(self, index, source, accumulate=False, out=None):
    m.put_meta(self, index, source)
    idx = array(index).reshape(-1)
    _check_flat_bounds(idx, self.numel(), "put")
    res = _dst("put", self, out, preserve=True)
    if idx.size:
        target = _a1(res)
        key = np.unravel_index(np.where(idx < 0, idx + self.numel(), idx), target.shape)
        reduce_at(target, key, array(source).reshape(-1), "sum" if accumulate else None)
    return _done(res, out)


def nonzero(self, out=None):
    if out is not None and isinstance(out, Tensor) and out._dtype is not dt.int64:
        raise RuntimeError(f"nonzero: Expected out tensor to have scalar type Long but got scalar type"
                           f"{m.NAMES[out._dtype]}")
    coords = np.argwhere(array(self))
    res = m.result("nonzero", out, coords.shape, dt.int64, self._device)
    np.copyto(array(res), coords)
    return _done(res, out)


for _name in ("gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
              "index_fill", "index_reduce", "masked_fill", "masked_scatter", "masked_select", "take", "put",
              "nonzero"):
    getattr(m, _name).register(CPU, globals()[_name])


def segment_ids(bounds, size, from_lengths, unsafe):
    m.segment_ids_meta(bounds, size, from_lengths, unsafe)
    b = array(bounds).astype(np.int64)
    if from_lengths:
        if b.size and b.min() < 0:
            raise RuntimeError("lengths contains negative value!")
        if not unsafe and b.size and np.any(b.sum(-1) != size):
            raise RuntimeError("segment_reduce(): Expected all rows of lengths along axis to sum to "
                               "data.size(lengths.dim()-1) when !unsafe.")
        b = np.concatenate([np.zeros(b.shape[:-1] + (1,), np.int64), np.cumsum(b, -1)], -1)
    n_segments = b.shape[-1] - 1
    at = np.arange(size)
    ids = (at >= b[..., :, None]).sum(-2) - 1                    # (..., size): last start at or before
    outside = (ids < 0) | (at >= b[..., -1:])
    res = empty(b.shape[:-1] + (size,), dt.int64, bounds._device)
    np.copyto(array(res), np.where(outside, n_segments, ids))
    return res


_SEGMENT_START = {"sum": 0, "mean": 0, "prod": 1, "max": -np.inf, "min": np.inf}


def segment_reduce(data, reduce, lengths=None, indices=None, offsets=None, axis=0, unsafe=False, initial=None):
    axis, bounds, from_lengths, n, shape = m.segment_reduce_meta(data, reduce, lengths, indices, offsets, axis,
                                                                 unsafe, initial)
    ids = array(segment_ids(bounds, data._shape[axis], from_lengths, unsafe))
    ids = np.broadcast_to(ids.reshape(ids.shape + (1,) * (data.ndim - axis - 1)), data._shape)
    npd = data._dtype.np
    start = _SEGMENT_START[reduce] if initial is None else initial
    work = np.full(shape[:axis] + (n + 1,) + shape[axis + 1:], start).astype(npd)  # + a segment for the rest
    reduce_at(work, _along(ids, axis), array(data), m.SEGMENT_REDUCES[reduce] if reduce != "mean" else "sum",
              opmath=False)
    work = work[(slice(None),) * axis + (slice(0, n),)]
    if reduce == "mean":
        count = np.zeros(work.shape[:axis] + (n + 1,) + work.shape[axis + 1:], np.int64)
        np.add.at(count, _along(ids, axis), 1)
        count = count[(slice(None),) * axis + (slice(0, n),)]
        empty_value = np.nan if initial is None else work  # torch leaves the initial value in empty segments
        work = np.where(count > 0, np.divide(work, np.maximum(count, 1).astype(npd)), empty_value).astype(npd)
    res = empty(shape, data._dtype, data._device)
    np.copyto(array(res), work)
    return res


m.segment_ids.register(CPU, segment_ids)
m.segment_reduce.register(CPU, segment_reduce)
