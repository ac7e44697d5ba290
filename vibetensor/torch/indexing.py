"""Tensor.__getitem__ / __setitem__: torch's indexing rules.

Basic indices (int, slice, None, Ellipsis) become a chain of views; tensor, list and bool
indices are advanced indexing, which gathers into a new tensor (get) or scatters (set).
"""
import operator

from vibetensor.ops import creation, views
from vibetensor.tensor.tensor import Tensor


def _is_int(x):
    if isinstance(x, (bool, Tensor)):
        return False
    try:
        operator.index(x)
        return True
    except TypeError:
        return False


def _normalise(index):
    return index if isinstance(index, tuple) else (index,)


def _consumes(i):
    """How many of the tensor's dims one index item consumes: None/bool/Ellipsis none, a bool
    mask of k dims k, anything else one."""
    if i is None or i is Ellipsis or isinstance(i, bool):
        return 0
    if isinstance(i, Tensor) and i.dtype.name in ("bool", "uint8"):
        return max(i.ndim, 1)
    return 1


def _expand_ellipsis(index, ndim):
    at = [k for k, i in enumerate(index) if i is Ellipsis]
    if len(at) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if not at:
        return index
    fill = ndim - sum(_consumes(i) for i in index)
    return index[:at[0]] + (slice(None),) * max(fill, 0) + index[at[0] + 1:]


def basic_view(t, index):
    """Apply the basic part of an index; returns (view, advanced) where `advanced` lists
    (dim, index) pairs still to apply, or None when the index was basic only."""
    index = _expand_ellipsis(_normalise(index), t.ndim)
    dim, advanced = 0, []
    if sum(_consumes(i) for i in index) > t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    for i in index:
        if i is None:
            t = views.unsqueeze(t, dim)
            dim += 1
        elif isinstance(i, bool):
            t = views.unsqueeze(t, dim)
            if not i:
                t = views.slice_(t, dim, 0, 0, 1)
            dim += 1
        elif _is_int(i):
            t = views.select(t, dim, operator.index(i))
        elif isinstance(i, slice):
            step = 1 if i.step is None else operator.index(i.step)
            start = None if i.start is None else _slice_bound(i.start)
            stop = None if i.stop is None else _slice_bound(i.stop)
            t = views.slice_(t, dim, start, stop, step)
            dim += 1
        elif isinstance(i, (Tensor, list, tuple)) or hasattr(i, "__array__"):
            advanced.append((dim, i))
            dim += _consumes(i)
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                             f"are valid indices (got {type(i).__name__})")
    return t, (advanced or None)


def _slice_bound(x):
    if isinstance(x, Tensor):
        return x.item()
    return operator.index(x)


def getitem(t, index):
    view, advanced = basic_view(t, index)
    if advanced is None:
        return view
    from vibetensor.torch import advanced_indexing  # the advanced path, in its own module
    return advanced_indexing.gather(view, advanced)


def setitem(t, index, value):
    view, advanced = basic_view(t, index)
    if advanced is None:
        if isinstance(value, Tensor):
            creation.copy_(view, value)
        else:
            creation.copy_(view, creation.full((), value, t.dtype, device=t.device))
        return
    from vibetensor.torch import advanced_indexing
    advanced_indexing.scatter(view, advanced, value)
