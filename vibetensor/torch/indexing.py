"""Tensor.__getitem__ / __setitem__: torch's indexing rules (python_variable_indexing.cpp).

An index is a tuple of items applied left to right to a running view:
  int           select: a view, the dim goes away
  slice         slice: a view (steps > 0 only; bounds clamp)
  None          unsqueeze: a new dim of size 1
  Ellipsis      skips the dims the other items don't name
  True/False    a new dim of size 1/0 (recorded as an advanced index [0] / [] on it)
  tensor, list  advanced indexing; a bool mask covers as many dims as it has
With basic items only, x[i] is a view and x[i] = v copies v into it. Advanced items make x[i] a
gather into a new tensor and x[i] = v a scatter into x's memory (advanced_indexing.py). A failed
assignment writes nothing: everything is checked first.
"""
import operator
import warnings

import numpy as np

from vibetensor.ops import creation, views
from vibetensor.ops import indexing as index_ops
from vibetensor.ops.meta import legacy_type_name
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch import advanced_indexing as adv

_NON_TUPLE = ("Using a non-tuple sequence for multidimensional indexing is deprecated and will be changed in "
              "pytorch 2.9; use x[tuple(seq)] instead of x[seq]. In pytorch 2.9 this will be interpreted as tensor "
              "index, x[torch.tensor(seq)], which will result either in an error or a different result")


def _is_int(x):
    """Python ints (not bools) and NumPy integers: torch's THPUtils_checkLong."""
    return (isinstance(x, int) and not isinstance(x, bool)) or isinstance(x, np.integer)


def _as_tuple(index):
    """NumPy's legacy heuristic: a short list holding slices, None, Ellipsis, tensors or sequences
    is a tuple of items (with a deprecation warning); any other list is one index tensor."""
    if isinstance(index, tuple):
        return index
    if isinstance(index, Tensor) or not adv.is_sequence(index):
        return (index,)
    if len(index) < 32 and any(isinstance(o, (Tensor, slice)) or o is None or o is Ellipsis or adv.is_sequence(o)
                               for o in index):
        warnings.warn(_NON_TUPLE, UserWarning, stacklevel=3)
        return tuple(index)
    return (index,)


def _count_specified(items):
    """How many of the tensor's dims the items name (None, Ellipsis and bools name none)."""
    n = 0
    for o in items:
        if isinstance(o, Tensor):
            n += o.ndim if index_ops.is_mask(o) else 1
        elif o is not None and o is not Ellipsis and not isinstance(o, bool):
            n += 1
    return n


def _select(t, dim, index, pos):
    """x[i] along dim, with indexing's own out-of-range message (select's differs); `pos` is the
    item's position in the index."""
    if t.ndim == 0 and index == 0:
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in "
                         "C++ to convert a 0-dim tensor to a number")
    if 0 < t.ndim <= dim:  # (several ellipses can push dim past the end) select's own IndexError
        return views.select(t, dim, index)
    size = t.shape[dim] if t.ndim else 0
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {pos} with size {size}")
    return views.select(t, dim, index)


def _bound(x):
    if x is None:
        return None
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError("slice indices must be integers or None or have an __index__ method") from None


def _slice(t, dim, s):
    step = 1 if s.step is None else _bound(s.step)
    if step == 0:
        raise ValueError("slice step cannot be zero")
    if step < 0:
        raise ValueError("step must be greater than zero")
    return views.slice_.call_on(t, dim, _bound(s.start), _bound(s.stop), step)  # (t: the call's one tensor)


def apply_slicing(t, items):
    """Apply the basic items as views; returns (view, [(dim of view, index tensor), ...]).
    Errors name the item's position in the index as its 'dimension', as torch does."""
    ndim = t.ndim
    specified = _count_specified(items)
    if specified > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    result, dim, advanced = t, 0, []
    for pos, o in enumerate(items):
        if _is_int(o):
            result = _select(result, dim, int(o), pos)
        elif isinstance(o, slice):
            result = _slice(result, dim, o)
            dim += 1
        elif o is Ellipsis:
            dim += ndim - specified
        elif o is None:
            result = views.unsqueeze(result, dim)
            dim += 1
        elif isinstance(o, bool):
            result = views.unsqueeze(result, dim)
            advanced.append((dim, adv.bool_index(o, t.device)))
            dim += 1
        elif isinstance(o, Tensor) and o.ndim == 0 and o.dtype.category <= 1:
            if index_ops.is_mask(o):  # a 0-d mask is a bool item
                result = views.unsqueeze(result, dim)
                advanced.append((dim, adv.bool_index(bool(o.item()), t.device)))
                dim += 1
            else:  # a 0-d integer tensor is an int item
                result = _select(result, dim, int(o.item()), pos)
        elif isinstance(o, Tensor) or adv.is_sequence(o):
            o = o if isinstance(o, Tensor) else adv.sequence_to_index(o, t.device)
            advanced.append((dim, o))
            dim += o.ndim if index_ops.is_mask(o) else 1
        else:
            try:
                i = operator.index(o)
            except TypeError:
                raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables "
                                 f"are valid indices (got {type(o).__name__})") from None
            result = _select(result, dim, i, pos)
    return result, advanced


def getitem(t, index):
    if index is None:
        return views.unsqueeze(t, 0)
    if index is Ellipsis:
        return views.alias(t)
    if _is_int(index):
        return _select(t, 0, int(index), 0)
    if isinstance(index, slice):
        return _slice(t, 0, index)
    if isinstance(index, bool):
        return adv.gather(views.unsqueeze(t, 0), [(0, adv.bool_index(index, t.device))])
    if index.__class__ is tuple and 0 < len(index) <= len(t._shape):  # x[a:b, c:d]: slices only, one per dim
        for s in index:
            if s.__class__ is not slice:
                break
        else:
            view = t
            for dim, s in enumerate(index):
                view = _slice(view, dim, s)
            return view
    view, advanced = apply_slicing(t, _as_tuple(index))
    if not advanced:
        return views.alias(view) if view is t else view
    return adv.gather(view, advanced)


def setitem(t, index, value):
    value = _value_tensor(t, value)
    if index is False:
        return
    if index is Ellipsis:
        return copy_to(t, value)
    if index is None or index is True:
        return copy_to(views.unsqueeze(t, 0), value)
    if _is_int(index):
        return copy_to(_select(t, 0, int(index), 0), value)
    if isinstance(index, slice):
        return copy_to(_slice(t, 0, index), value)
    view, advanced = apply_slicing(t, _as_tuple(index))
    if not advanced:
        return copy_to(view, value)
    adv.scatter(view, advanced, value)


def delitem(t, index):
    raise TypeError("Tensor does not support deleting items")


def copy_to(dst, src):
    """x[basic] = v: v broadcasts to the view (after dropping v's leading size-1 dims) and is copied."""
    index_ops.assert_no_internal_overlap(dst)
    if tuple(dst.shape) != tuple(src.shape) and src.ndim:
        src = views.expand(adv.strip_leading_ones(src), tuple(dst.shape))
    index_ops.assert_no_partial_overlap(dst, src)
    creation.copy_(dst, src)


# -- assigned Python numbers: a 0-d tensor of the target's dtype -------------------------------------------------

def _value_tensor(t, value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        value = value.item()
    if not isinstance(value, (bool, int, float, complex)):
        kind = type(value)
        name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
        raise TypeError(f"can't assign a {name} to a {legacy_type_name(t)}")
    if isinstance(value, int) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 63:
        raise ValueError("Overflow when unpacking long long")
    if t.dtype is dt.bool_:
        value = bool(value)  # any nonzero, 1j included
    elif t.dtype in (dt.float16, dt.bfloat16):  # torch goes through double, then rounds (to inf if need be)
        if isinstance(value, complex) and value.imag != 0:
            raise RuntimeError("value cannot be converted to type double without overflow")
        value = float(np.asarray(value.real if isinstance(value, complex) else value).astype(t.dtype.np))
    return creation.full((), value, t.dtype, device=t.device)  # full checks overflow as torch does
