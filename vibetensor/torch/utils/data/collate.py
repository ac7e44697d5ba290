"""default_collate (a list of samples -> one batch) and default_convert (one sample, arrays -> tensors),
with torch's rules: tensors and NumPy arrays are stacked, numbers become a tensor (float64 for floats),
strings stay a list, dicts/namedtuples/sequences are collated field by field."""
import collections.abc
import copy
import re

import numpy as np

from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch import creation as _creation
from vibetensor.torch import joining as _joining

_STR_OBJECT_DTYPE = re.compile(r"[SaUO]")
_ERR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _is_numpy(x):
    return type(x).__module__ == "numpy" and type(x).__name__ not in ("str_", "string_")


def default_convert(data):
    """Arrays (and NumPy scalars) inside `data` become tensors; the structure stays."""
    if isinstance(data, Tensor):
        return data
    if _is_numpy(data):
        if isinstance(data, np.ndarray) and _STR_OBJECT_DTYPE.search(data.dtype.str) is not None:
            return data
        return _creation.as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            clone = copy.copy(data)
            clone.update(converted)
            return clone
        except (TypeError, AttributeError):
            return converted
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as torch (backwards compatibility)
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def _collate_sequence(batch, elem):
    it = iter(batch)
    elem_size = len(next(it))
    if not all(len(e) == elem_size for e in it):
        raise RuntimeError("each element in list of batch should be of equal size")
    transposed = list(zip(*batch))
    if isinstance(elem, tuple):
        return [default_collate(samples) for samples in transposed]  # a list, as torch
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, samples in enumerate(transposed):
                clone[i] = default_collate(samples)
            return clone
        return type(elem)([default_collate(samples) for samples in transposed])
    except TypeError:
        return [default_collate(samples) for samples in transposed]


def default_collate(batch):
    """Collate a list of samples into a batch (a new leading dimension of size len(batch))."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _joining.stack(list(batch), 0)
    if _is_numpy(elem):
        if isinstance(elem, np.ndarray):
            if _STR_OBJECT_DTYPE.search(elem.dtype.str) is not None:
                raise TypeError(_ERR.format(elem.dtype))
            return default_collate([_creation.as_tensor(b) for b in batch])
        if elem.shape == ():  # NumPy scalars
            return _creation.as_tensor(np.asarray(batch))
    if isinstance(elem, float):
        return _creation.tensor(batch, dtype=dt.float64)
    if isinstance(elem, int):
        return _creation.tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            clone = copy.copy(elem)
            clone.update(collated)
            return clone
        except (TypeError, AttributeError):
            return collated
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        return _collate_sequence(batch, elem)
    raise TypeError(_ERR.format(type(elem)))


__all__ = ["default_collate", "default_convert"]
