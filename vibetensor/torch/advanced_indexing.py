"""Advanced indexing from the front door: index items that are tensors, lists or bools become index
tensors, placed one per indexed dim (aten's list, a mask covering its dims), and x[...] reads or
writes through vt::index / vt::index_put_. Also torch.index_put and Tensor.index_put_.
"""
from collections.abc import Sequence

import numpy as np

from vibetensor.ops import creation, views
from vibetensor.ops import indexing as index_ops
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, from_array


def is_sequence(x):
    """Python's sequence protocol as torch tests it (lists, tuples, ranges, strings, arrays)."""
    return isinstance(x, (Sequence, np.ndarray)) and not isinstance(x, Tensor)


def bool_index(flag, device):
    """True/False as an index on a new size-1 dim: [0] keeps it, [] empties it."""
    return creation.to(_long_tensor([0] if flag else []), dt.int64, device)


def _long_tensor(values):
    return from_array(np.array(values, dtype=np.int64))


def sequence_to_index(seq, device):
    """A list/array index as a tensor: bool and uint8 data stay masks, anything else becomes long
    (floats truncate), as torch's indexing_tensor_from_data does."""
    if isinstance(seq, (str, bytes)):
        raise TypeError(f"new(): invalid data type '{type(seq).__name__}'")
    if isinstance(seq, (list, tuple)) and all(type(i) in (int, bool, float) for i in seq):
        t = from_array(np.array(seq))  # fast path: a flat list of Python numbers (NumPy infers as torch does)
    else:
        from vibetensor.torch.creation import tensor
        t = tensor(seq if isinstance(seq, (list, tuple, np.ndarray)) else list(seq))
    dtype = t.dtype if t.dtype in index_ops.MASK_DTYPES else dt.int64
    return creation.to(t, dtype, device)


def strip_leading_ones(t):
    """A view of t without its leading size-1 dims (torch lets x[i] = v drop them)."""
    shape = tuple(t.shape)
    k = 0
    while k < len(shape) and shape[k] == 1:
        k += 1
    return views.view(t, shape[k:]) if k else t


def aten_indices(advanced):
    """[(dim, index), ...] -> one entry per dim from dim 0: the index or None (a mask spans its dims)."""
    out, cursor = [], 0
    for dim, index in advanced:
        out += [None] * (dim - cursor)
        out.append(index)
        cursor = dim + (index.ndim if index_ops.is_mask(index) else 1)
    return out


def gather(view, advanced):
    """x[...] with advanced items: gather into a new tensor."""
    return index_ops.index(view, aten_indices(advanced))


def scatter(view, advanced, value):
    """x[...] = value with advanced items: scatter into view's memory."""
    index_ops.index_put_(view, aten_indices(advanced), strip_leading_ones(value), False)


# -- torch.index_put / Tensor.index_put_: aten's list of indices given directly ------------------------------------

def _indices(indices):
    if isinstance(indices, Tensor) or not isinstance(indices, (list, tuple)):
        raise TypeError(f"index_put(): argument 'indices' must be tuple of Tensors, not {type(indices).__name__}")
    for i, t in enumerate(indices):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    return list(indices)


def _values(values, op):
    if not isinstance(values, Tensor):
        raise TypeError(f"{op}(): argument 'values' (position 2) must be Tensor, not {type(values).__name__}")
    return values


def index_put_(input, indices, values, accumulate=False):
    return index_ops.index_put_(input, _indices(indices), _values(values, "index_put_"), bool(accumulate))


def index_put(input, indices, values, accumulate=False):
    indices, values = _indices(indices), _values(values, "index_put")
    return index_ops.index_put_(creation.clone(input), indices, values, bool(accumulate))
