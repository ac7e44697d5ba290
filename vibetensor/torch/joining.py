"""Front door: joining functions (torch.cat, stack, hstack, vstack, dstack, column_stack)."""
import operator

from vibetensor.ops import joining as j
from vibetensor.ops import views as v
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.views import atleast_1d, atleast_2d, atleast_3d


def _tensor_list(tensors, op):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): argument 'tensors' (position 1) must be tuple of Tensors, not "
                        f"{type(tensors).__name__}")
    return list(tensors)


def cat(tensors, dim=0, *, out=None):
    return j.cat(_tensor_list(tensors, "cat"), operator.index(dim), out=out)


def concatenate(tensors, axis=0, out=None):
    return cat(tensors, axis, out=out)


concat = cat


def stack(tensors, dim=0, *, out=None):
    return j.stack(_tensor_list(tensors, "stack"), operator.index(dim), out=out)


def _nonempty(tensors, op):
    tensors = _tensor_list(tensors, op)
    if not tensors:
        raise RuntimeError(f"{op} expects a non-empty TensorList")
    return tensors


def hstack(tensors, *, out=None):
    parts = atleast_1d(_nonempty(tensors, "hstack"))
    return j.cat(list(parts), 0 if parts[0].ndim == 1 else 1, out=out)


def vstack(tensors, *, out=None):
    return j.cat(list(atleast_2d(_nonempty(tensors, "vstack"))), 0, out=out)


row_stack = vstack


def dstack(tensors, *, out=None):
    return j.cat(list(atleast_3d(_nonempty(tensors, "dstack"))), 2, out=out)


def column_stack(tensors, *, out=None):
    parts = [v.reshape(t, (t.numel(), 1)) if t.ndim <= 1 else t for t in _nonempty(tensors, "column_stack")]
    return hstack(parts, out=out)


__all__ = ["cat", "concat", "concatenate", "stack", "hstack", "vstack", "row_stack", "dstack", "column_stack"]
