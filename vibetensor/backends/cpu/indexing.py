"""CPU kernels of the indexing ops, on NumPy.

NumPy's advanced indexing has torch's semantics (same placement of the indexed dims), so the
kernels turn masks into coordinates, check every index before touching memory, and let NumPy
gather or scatter; the gathered result is written into a tensor laid out as torch lays it out.
"""
import warnings

import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import indexing as m
from vibetensor.ops.meta import bump_version
from vibetensor.ops.creation import empty_strided
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def _expand(self, indices):
    """Per-dim NumPy index arrays (None = whole dim) and the IndexSpec entries describing them."""
    arrays, entries = [], []
    for i in indices:
        if i is None:
            arrays.append(None)
            entries.append(None)
        elif m.is_mask(i):
            coords = np.nonzero(array(i))  # torch's CPU nonzero() columns are contiguous
            for c in coords:
                arrays.append(c)
                entries.append(((c.size,), (1,), dt.int64))
        else:
            arrays.append(array(i))
            entries.append((i._shape, i._stride, i._dtype))
    return arrays, entries


def _check_bounds(self, arrays, index_shape):
    """IndexError for the first out-of-range index (in the broadcast index order), like torch."""
    defined = [(d, a) for d, a in enumerate(arrays) if a is not None]
    if all(a.size == 0 or (a.min() >= -self._shape[d] and a.max() < self._shape[d]) for d, a in defined):
        return
    bad = [(a < -self._shape[d]) | (a >= self._shape[d]) for d, a in defined]
    first = np.argmax(np.logical_or.reduce([np.broadcast_to(b, index_shape) for b in bad]).reshape(-1))
    for j, ((d, a), b) in enumerate(zip(defined, bad)):
        if np.broadcast_to(b, index_shape).reshape(-1)[first]:
            value = np.broadcast_to(a, index_shape).reshape(-1)[first]
            raise IndexError(f"index {value} is out of bounds for dimension {j} with size {self._shape[d]}")


def _key(arrays):
    return tuple(slice(None) if a is None else a for a in arrays)


def index(self, indices):
    m.check_indices(self, indices)
    arrays, entries = _expand(self, indices)
    if not any(a is not None for a in arrays):
        return _copy_of(self)
    spec = m.IndexSpec(self._shape, self._stride, entries)
    out = empty_strided(spec.shape, spec.stride, self._dtype, self._device)
    if 0 not in spec.shape:  # torch checks indices as it reads: an empty result checks none
        _check_bounds(self, arrays, spec.index_shape)
        np.copyto(array(out), array(self)[_key(arrays)])
    return out


def _copy_of(self):
    from vibetensor.ops import creation
    return creation.clone(self)


def index_put_(self, indices, values, accumulate=False):
    m.check_indices(self, indices)
    if m.has_internal_overlap(self):
        warnings.warn("Use of index_put_ on expanded tensors is deprecated. Please clone() the tensor before "
                      "performing this operation. This also applies to advanced indexing e.g. "
                      "tensor[indices] = tensor", UserWarning, stacklevel=3)
    mask_dim = None if accumulate else m.masked_fill_mask(self, indices, values)
    if mask_dim is not None:
        return _masked_fill(self, indices, mask_dim, values)
    m.assert_no_overlap(self, values)
    for i in indices:
        m.assert_no_overlap(self, i)
    arrays, entries = _expand(self, indices)
    if not any(a is not None for a in arrays):
        raise NotImplementedError("index_put_: at least one index tensor is needed")
    spec = m.IndexSpec(self._shape, self._stride, entries)
    m.check_put(self, spec.shape, values)
    if 0 not in spec.shape:  # an empty write checks no index (as torch's kernel)
        _check_bounds(self, arrays, spec.index_shape)
        target, v = array(self), np.broadcast_to(array(values), spec.shape)
        if accumulate:
            np.add.at(target, _key(arrays), v)
        else:
            target[_key(arrays)] = v
    bump_version(self)
    return self


def _masked_fill(self, indices, dim, values):
    """x[mask] = one value: written like masked_fill_ (the value is cast, whatever its dtype)."""
    m.assert_no_internal_overlap(self)
    mask = array(indices[dim])
    target = array(self)
    fill = array(values).reshape(()).item()
    if not self._dtype.is_complex and isinstance(fill, complex):
        fill = fill.real
    target[(slice(None),) * dim + (mask.astype(bool),)] = np.array(fill).astype(target.dtype)
    bump_version(self)
    return self


m.index.register(CPU, index)
m.index_put_.register(CPU, index_put_)
