"""Advanced-indexing operators, with aten's semantics:

    index(self, indices)                          -> a new tensor gathered from self
    index_put_(self, indices, values, accumulate)  -> self, written in place

`indices` lists one entry per leading dim of self: an index tensor (int64/int32) or None (the dim
is kept whole); a bool/uint8 mask entry covers as many dims as it has and stands for its nonzero()
coordinates. Index tensors broadcast together; the indexed dims are replaced by the broadcast
shape, in place when the indexed dims are adjacent, else moved to the front (NumPy's rule).

What needs no data (dtypes, counts, mask shapes, the result's shape and memory layout, memory
overlap) is checked here, device-generic; reading masks and index values (nonzero, bounds) is the
kernels' part. The overlap helpers are torch's MemOverlap checks, shared with other writing ops.
"""
import warnings

from vibetensor.dispatch import declare
from vibetensor.ops.creation import is_non_overlapping_and_dense
from vibetensor.ops.views import _fmt, expand_geometry, iterator_strides
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

INDEX_DTYPES = (dt.int64, dt.int32, dt.uint8, dt.bool_)
MASK_DTYPES = (dt.uint8, dt.bool_)


def is_mask(t):
    return t._dtype is dt.bool_ or t._dtype is dt.uint8


def check_indices(self, indices):
    """Types, count and mask shapes, with torch's IndexError messages."""
    for i in indices:
        if i is None:
            continue
        if not isinstance(i, Tensor):
            raise TypeError(f"index(): expected a list of Tensors or None, got {type(i).__name__}")
        if i._dtype not in INDEX_DTYPES:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    if len(indices) > self.ndim:
        raise IndexError(f"too many indices for tensor of dimension {self.ndim} (got {len(indices)})")
    dim = 0
    for i in indices:
        if i is not None and is_mask(i):
            if i.ndim == 0:
                raise NotImplementedError("index: 0-d bool index tensors are not supported; index with True/False")
            if i._dtype is dt.uint8:
                warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a dtype torch.bool "
                              "instead.", UserWarning, stacklevel=4)
            for j, n in enumerate(i._shape):
                if dim + j >= self.ndim or self._shape[dim + j] != n:
                    raise IndexError(f"The shape of the mask {_fmt(i._shape)} at index {j} does not match the shape "
                                     f"of the indexed tensor {_fmt(self._shape)} at index {dim + j}")
            dim += i.ndim
        else:
            dim += 1
    if dim > self.ndim:
        raise IndexError(f"too many indices for tensor of dimension {self.ndim} (got {dim})")


class IndexSpec:
    """The geometry of one advanced-indexing call, once masks are expanded.

    entries: one per dim of self, None or (shape, stride, dtype) of an index tensor (a mask
    contributes one int64 entry per dim, with the strides of torch's nonzero() columns).
    """
    __slots__ = ("index_shape", "shape", "stride")

    def __init__(self, self_shape, self_stride, entries):
        defined = [e for e in entries if e is not None]
        try:
            bshape = sh.broadcast_shapes(*(e[0] for e in defined))
        except RuntimeError:
            raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes "
                             + ", ".join(_fmt(e[0]) for e in defined)) from None
        self.index_shape = bshape
        entries = [None if e is None else _broadcast_entry(e, bshape) for e in entries]
        entries += [None] * (len(self_shape) - len(entries))
        shape, stride = list(self_shape), list(self_stride)
        if not _adjacent(entries):  # torch transposes the indexed dims to the front
            order = [d for d, e in enumerate(entries) if e is not None] + \
                    [d for d, e in enumerate(entries) if e is None]
            shape, stride, entries = [shape[d] for d in order], [stride[d] for d in order], [entries[d] for d in order]
        first = next(d for d, e in enumerate(entries) if e is not None)
        last = max(d for d, e in enumerate(entries) if e is not None)
        before, after = first, len(entries) - 1 - last
        if any(shape[d] == 0 for d in range(first, last + 1)) and 0 not in bshape:
            raise IndexError("index is out of bounds for dimension with size 0")
        self.shape = tuple(shape[:first]) + bshape + tuple(shape[last + 1:])
        # the operands torch's TensorIterator sees: self restrided (stride 0 over the index dims) and
        # each index tensor reshaped to (1,)*before + index_shape + (1,)*after
        src = (self.shape, tuple(stride[:first]) + (0,) * len(bshape) + tuple(stride[last + 1:]))
        ones_shape = (1,) * before + bshape + (1,) * after
        indexers = [(ones_shape, sh.view_strides(bshape, e[1], ones_shape)) for e in entries if e is not None]
        self.stride = iterator_strides(self.shape, [src] + indexers)


def _broadcast_entry(entry, bshape):
    shape, stride, dtype = entry
    if tuple(shape) != tuple(bshape):
        shape, stride = expand_geometry(shape, stride, bshape)
    if dtype is dt.int32 and not is_non_overlapping_and_dense(shape, stride):
        stride = sh.contiguous_strides(shape)  # torch converts int indices to long, which densifies them
    return shape, stride, dt.int64


def _adjacent(entries):
    at = [d for d, e in enumerate(entries) if e is not None]
    return at[-1] - at[0] + 1 == len(at)


def is_expandable_to(shape, target):
    if len(shape) > len(target):
        return False
    return all(n == 1 or n == m for n, m in zip(reversed(shape), reversed(target)))


def masked_fill_mask(self, indices, values):
    """torch's canDispatchToMaskedFill: one mask and a one-element value write like masked_fill_
    (any value dtype). Returns the mask's first dim, or None."""
    if not isinstance(values, Tensor) or values.numel() != 1 or values._device.type != "cpu":
        return None
    found = None
    for d, i in enumerate(indices):
        if i is None:
            continue
        if not is_mask(i) or found is not None or i._device != self._device:
            return None
        found = d
    return found


def check_put(self, result_shape, values):
    """Value shape and dtype rules of index_put_."""
    if not is_expandable_to(values._shape, result_shape):
        raise RuntimeError(f"shape mismatch: value tensor of shape {_fmt(values._shape)} cannot be broadcast to "
                           f"indexing result of shape {_fmt(result_shape)}")
    if values._dtype is not self._dtype:
        from vibetensor.ops.meta import TYPE_NAMES
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got "
                           f"{TYPE_NAMES[self._dtype]} for the destination and {TYPE_NAMES[values._dtype]} "
                           f"for the source.")


# -- memory overlap (torch's MemOverlap.cpp) ----------------------------------------------------------------------

_OVERLAP_MSG = ("unsupported operation: some elements of the input tensor and the written-to tensor refer to a "
                "single memory location. Please clone() the tensor before performing the operation.")
_INTERNAL_MSG = ("unsupported operation: more than one element of the written-to tensor refers to a single memory "
                 "location. Please clone() the tensor before performing the operation.")


def has_internal_overlap(t):
    """True when two elements of t share an address (a broadcast dim); torch's 'too hard' is False."""
    return any(st == 0 and n > 1 for n, st in zip(t._shape, t._stride))


def overlap_status(a, b):
    """'full', 'partial' or None, as torch decides it (only dense tensors are compared)."""
    if a is b:
        return "full"
    if a.numel() == 0 or b.numel() == 0:
        return None
    if not (is_non_overlapping_and_dense(a._shape, a._stride) and is_non_overlapping_and_dense(b._shape, b._stride)):
        return None
    if a._storage is not b._storage:
        return None
    a0, b0 = a._offset * a.itemsize, b._offset * b.itemsize
    a1, b1 = a0 + a.numel() * a.itemsize, b0 + b.numel() * b.itemsize
    if a0 == b0 and a1 == b1:
        return "full" if tuple(a._stride) == tuple(b._stride) else "partial"
    return "partial" if a0 < b1 and b0 < a1 else None


def assert_no_internal_overlap(t):
    if has_internal_overlap(t):
        raise RuntimeError(_INTERNAL_MSG)


def assert_no_overlap(a, b):
    if isinstance(b, Tensor) and overlap_status(a, b) is not None:
        raise RuntimeError(_OVERLAP_MSG)


def assert_no_partial_overlap(a, b):
    if isinstance(b, Tensor) and overlap_status(a, b) == "partial":
        raise RuntimeError(_OVERLAP_MSG)


index = declare("index", family="indexing")            # index(self, indices) -> Tensor
index_put_ = declare("index_put_", family="indexing")  # index_put_(self, indices, values, accumulate=False) -> self


# -- derivatives (autograd) ---------------------------------------------------------------------------------------
# A gather's gradient is a scatter-add into zeros, and a scatter's is a gather (torch's IndexBackward0 and
# IndexPutBackward0). Index tensors are saved: changing them before backward is a version error, as in torch.

from vibetensor.autograd import derivative as _derivative  # noqa: E402
from vibetensor.ops import creation as _creation  # noqa: E402


@_derivative(index, save=(1,))
def _index_backward(ctx, grad, self, indices):
    z = _creation.full(tuple(self._shape), 0, grad._dtype, device=grad._device)
    return index_put_(z, list(indices), grad, True), None


@_derivative(index_put_, save=(1,), inplace=True)
def _index_put_backward(ctx, grad, self, indices, values, accumulate=False):
    indices = list(indices)
    if accumulate:
        grad_self = grad
    else:  # the written places lose their old values
        zeros = _creation.full(tuple(values._shape), 0, grad._dtype, device=grad._device)
        grad_self = index_put_(_creation.clone(grad), indices, zeros, False)
    return grad_self, None, index(grad, indices)
