"""Shape operators that copy: flips, rolls, repeats, triangles, diagonals, and the *_scatter ops
that write a tensor into a view of a copy of another.

    flip(self, dims)                            reversed along dims (keeps self's memory layout)
    roll(self, shifts, dims)                    elements shifted cyclically; dims () rolls the flat tensor
    repeat(self, repeats)                       tiled; len(repeats) >= self.ndim
    tril(self, diagonal=0) / triu(...)          lower / upper triangle of the last two dims
    diag_embed(self, offset, dim1, dim2)        the last dim laid on a diagonal of a new zero tensor
    fill(self, value)                           every element = value (number or 0-d tensor)
    repeat_interleave(repeats, output_size)     [0]*repeats[0] + [1]*repeats[1] + ...  (int result)
    diagonal_scatter / select_scatter / slice_scatter / as_strided_scatter(self, src, ...)
                                                a copy of self with src written into one view of it

Composites built from these (rot90, tile, diag, repeat_interleave of a tensor, the *_copy forms)
are in the front door (vibetensor/torch/shape_ops.py). The derivatives are at the end.
"""
from vibetensor.dispatch import declare
from vibetensor.ops import creation, views
from vibetensor.ops import meta as m
from vibetensor.ops.views import _fmt
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, make_tensor


def flip_meta(self, dims):
    return sh.wrap_dims(tuple(dims), self.ndim, "flip")


def roll_meta(self, shifts, dims):
    """(shifts, dims), wrapped; dims () means the flattened tensor (then exactly one shift)."""
    if not shifts:
        raise RuntimeError("`shifts` required")
    if not dims and len(shifts) == 1:
        return tuple(shifts), ()
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    if self.ndim == 0:
        raise IndexError(f"Dimension specified as {dims[0]} but tensor has no dimensions")
    return tuple(shifts), tuple(sh.wrap_dim(d, self.ndim, "roll") for d in dims)


def repeat_meta(self, repeats):
    if len(repeats) < self.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of "
                           "tensor")
    padded = (1,) * (len(repeats) - self.ndim) + tuple(self._shape)
    shape = tuple(n * r for n, r in zip(padded, repeats))
    creation.check_size(shape)
    return padded, shape


def triangle_meta(name, self):
    if self.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")


def diag_embed_meta(self, offset, dim1, dim2):
    """(result shape, dim1, dim2 wrapped in the result's rank)."""
    nd = self.ndim + 1
    d1, d2 = sh.wrap_dim(dim1, nd, "diag_embed"), sh.wrap_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = self._shape[sh.wrap_dim(-1, self.ndim, "diag_embed")] + abs(offset)
    rest = list(self._shape[:-1])
    shape = []
    for d in range(nd):
        shape.append(n if d in (d1, d2) else rest.pop(0))
    return tuple(shape), d1, d2


def fill_meta(self, value):
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} "
                           "dimensions.")


def repeat_interleave_meta(repeats, output_size=None):
    if not isinstance(repeats, Tensor):
        raise TypeError(f"repeat_interleave(): argument 'repeats' (position 1) must be Tensor, not "
                        f"{type(repeats).__name__}")
    if repeats.ndim != 1:
        raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
    if repeats._dtype not in (dt.int64, dt.int32):
        raise NotImplementedError(f'"repeat_interleave_cpu" not implemented for \'{m.TYPE_NAMES[repeats._dtype]}\'')


flip = declare("flip", meta=flip_meta, family="shape_ops")                  # flip(self, dims)
roll = declare("roll", meta=roll_meta, family="shape_ops")                  # roll(self, shifts, dims)
repeat = declare("repeat", meta=repeat_meta, family="shape_ops")            # repeat(self, repeats)
tril = declare("tril", family="shape_ops")                                  # tril(self, diagonal=0)
triu = declare("triu", family="shape_ops")                                  # triu(self, diagonal=0)
diag_embed = declare("diag_embed", meta=diag_embed_meta, family="shape_ops")  # diag_embed(self, offset, dim1, dim2)
fill = declare("fill", meta=fill_meta, family="shape_ops")                  # fill(self, value)
repeat_interleave = declare("repeat_interleave", meta=repeat_interleave_meta, family="shape_ops")


# -- *_scatter: a copy of self with src written into a view of it (device-generic composites) --------------------

def clone_preserve_strides(t):
    """A copy of t's whole storage, seen with t's exact geometry (torch's clone_preserve_strides: the
    *_scatter ops keep even non-dense strides and the storage offset, which as_strided_scatter reads)."""
    from vibetensor.ops.indexing import has_internal_overlap
    if has_internal_overlap(t):
        return creation.clone(t)
    whole = creation.clone(views.as_strided(t, (t._storage.nbytes // t.itemsize,), (1,), 0))
    return make_tensor(whole._storage, t._shape, t._stride, t._offset, t._dtype)


def _scatter_into_view(self, src, view_of, what="slice"):
    """A copy of self with src copied into view_of(copy); the view's shape must be src's."""
    out = clone_preserve_strides(self)
    target = view_of(out)
    if tuple(target._shape) != tuple(src._shape):
        raise RuntimeError(f"expected src to have a size equal to the {what} of self. src size = "
                           f"{_fmt(src._shape)}, {what} size = {_fmt(target._shape)}")
    creation.copy_(target, src)
    return out


def _check_src(op, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"{op}(): argument 'src' (position 2) must be Tensor, not {type(src).__name__}")


def _slice_scatter(self, src, dim=0, start=None, end=None, step=1):
    _check_src("slice_scatter", src)
    return _scatter_into_view(self, src, lambda t: views.slice_(t, dim, start, end, step))


def _select_scatter(self, src, dim, index):
    _check_src("select_scatter", src)
    return _scatter_into_view(self, src, lambda t: views.select(t, dim, index))


def _diagonal_scatter(self, src, offset=0, dim1=0, dim2=1):
    _check_src("diagonal_scatter", src)
    return _scatter_into_view(self, src, lambda t: views.diagonal(t, offset, dim1, dim2))


def _as_strided_scatter(self, src, size, stride, storage_offset=None):
    _check_src("as_strided_scatter", src)
    return _scatter_into_view(self, src, lambda t: views.as_strided(t, tuple(size), tuple(stride),
                                                                     storage_offset))


slice_scatter = declare("slice_scatter", composite=_slice_scatter, family="shape_ops")
select_scatter = declare("select_scatter", composite=_select_scatter, family="shape_ops")
diagonal_scatter = declare("diagonal_scatter", composite=_diagonal_scatter, family="shape_ops")
as_strided_scatter = declare("as_strided_scatter", composite=_as_strided_scatter, family="shape_ops")


# -- derivatives (autograd) -----------------------------------------------------------------------------------
from vibetensor.autograd.derivatives import derivative as _derivative  # noqa: E402
from vibetensor.autograd.derivatives import nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.autograd.derivatives import zeros_like as _zeros_like  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


@_derivative(flip)
def _flip_backward(ctx, grad, self, dims):
    return flip(grad, dims)


@_derivative(roll)
def _roll_backward(ctx, grad, self, shifts, dims):
    return roll(grad, tuple(-s for s in shifts), dims)


@_derivative(repeat)
def _repeat_backward(ctx, grad, self, repeats):
    """Each input element got sum of its copies: view the gradient as (r0, n0, r1, n1, ...), sum the r's."""
    from vibetensor.ops import reduction
    padded = (1,) * (len(repeats) - self.ndim) + tuple(self._shape)
    if 0 in padded or 0 in repeats:
        return _zeros_like(self)
    split = tuple(x for r, n in zip(repeats, padded) for x in (r, n))
    g = views.reshape(grad, split)
    g = reduction.sum(g, tuple(range(0, len(split), 2)), False, None)
    return views.reshape(g, tuple(self._shape))


@_derivative(tril)
def _tril_backward(ctx, grad, self, diagonal=0):
    return tril(grad, diagonal)


@_derivative(triu)
def _triu_backward(ctx, grad, self, diagonal=0):
    return triu(grad, diagonal)


@_derivative(diag_embed)
def _diag_embed_backward(ctx, grad, self, offset=0, dim1=-2, dim2=-1):
    return views.diagonal(grad, offset, dim1, dim2)


@_derivative(fill, name=lambda self, value: "FillBackward1" if isinstance(value, Tensor) else "FillBackward0")
def _fill_backward(ctx, grad, self, value):
    from vibetensor.ops import reduction
    g_value = reduction.sum(grad, None, False, None) if hasattr(value, "_shape") and _needs(ctx, 1) else None
    return _zeros_like(grad), g_value


def _view_scatter_derivative(op, view_of):
    """self gets grad with the view zeroed; src gets the view of grad."""
    @_derivative(op)
    def formula(ctx, grad, self, src, *params):
        g_self = op(grad, _zeros_like(src), *params) if _needs(ctx, 0) else None
        g_src = view_of(grad, *params) if _needs(ctx, 1) else None
        return g_self, g_src
    formula.__name__ = f"_{op.name.split('::')[-1]}_backward"
    return formula


def _laid_out_like(grad, self):
    """grad's values in a fresh buffer with self's exact geometry (strides, offset, storage size),
    where as_strided with the op's raw storage positions finds them as the forward did."""
    from vibetensor.ops.indexing import has_internal_overlap
    if has_internal_overlap(self):  # the forward cloned such a self into a contiguous tensor
        return creation.contiguous(creation.clone(grad)) if not grad.is_contiguous() else creation.clone(grad)
    buffer = creation.full((self._storage.nbytes // self.itemsize,), 0, grad._dtype, device=grad._device)
    view = make_tensor(buffer._storage, self._shape, self._stride, self._offset, grad._dtype)
    return creation.copy_(view, grad)


_view_scatter_derivative(slice_scatter, lambda g, dim=0, start=None, end=None, step=1:
                         views.slice_(g, dim, start, end, step))
_view_scatter_derivative(select_scatter, lambda g, dim, index: views.select(g, dim, index))
_view_scatter_derivative(diagonal_scatter, lambda g, offset=0, dim1=0, dim2=1: views.diagonal(g, offset, dim1, dim2))


@_derivative(as_strided_scatter, save=(0,))
def _as_strided_scatter_backward(ctx, grad, self, src, size, stride, storage_offset=None):
    """Unlike torch 2.13 (whose self gradient is the complement of the right one), self gets grad
    where src did not land."""
    g = _laid_out_like(grad, self)
    g_self = as_strided_scatter(g, _zeros_like(src), size, stride, storage_offset) if _needs(ctx, 0) else None
    g_src = views.as_strided(g, tuple(size), tuple(stride), storage_offset) if _needs(ctx, 1) else None
    return g_self, g_src


_nondifferentiable(repeat_interleave)


# -- composites: written with the ops above and the views, differentiable through them ----------------------------

def contiguous_copy(t):
    """A fresh contiguous tensor with t's values (torch's clone(memory_format=contiguous_format))."""
    return creation.clone(t) if t.is_contiguous() else creation.contiguous(t)


def _rot90(self, k=1, dims=(0, 1)):
    dims = tuple(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if self.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {self.ndim}")
    d0, d1 = (sh.wrap_dim(d, self.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {dims[0]} and dim1 = {dims[1]}")
    k %= 4
    if k == 1:
        return views.transpose(flip(self, (d1,)), d0, d1)
    if k == 2:
        return flip(self, (d0, d1))
    if k == 3:
        return views.transpose(flip(self, (d0,)), d0, d1)
    return contiguous_copy(self)


def _tile(self, dims):
    dims = tuple(dims)
    return repeat(self, (1,) * (self.ndim - len(dims)) + dims)


def _diag(self, diagonal=0):
    if self.ndim == 1:
        return diag_embed(self, diagonal, 0, 1)
    if self.ndim == 2:
        return contiguous_copy(views.diagonal(self, diagonal, 0, 1))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")


def _diagflat(self, offset=0):
    return _diag(views.reshape(self, (-1,)), offset)


def _repeat_interleave_self(self, repeats, dim=None, output_size=None):
    """self's slices along dim, each repeated: index_select with the indices repeat_interleave gives."""
    src = views.reshape(self, (-1,)) if dim is None else self
    dim = 0 if dim is None else sh.wrap_dim(dim, self.ndim, "repeat_interleave")
    n = src._shape[dim] if src.ndim else 1
    if not isinstance(repeats, Tensor):
        if repeats < 0:
            raise RuntimeError("Repeats must be non-negative")
        counts = creation.full((n,), repeats, dt.int64, device=self._device)
    elif repeats.ndim == 0 or (repeats.ndim == 1 and repeats._shape[0] == 1):
        counts = views.expand(views.reshape(repeats, (1,)), (n,))
    elif repeats.ndim == 1:
        if repeats._shape[0] != n:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                               f"{repeats._shape[0]} and input.size({dim}) = {n}")
        counts = repeats
    else:
        raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
    from vibetensor.ops import scatter
    return scatter.index_select(src, dim, repeat_interleave(counts, output_size))


def _chunk_cat_dim(tensors, dim):
    ndims = {t.ndim for t in tensors}
    if len(ndims) == 1:
        return sh.wrap_dim(dim, tensors[0].ndim, "_chunk_cat")
    if dim < 0:
        raise RuntimeError("_chunk_cat expects non-negative dim when input tensors have different ndims")
    if any(dim >= t.ndim for t in tensors):
        raise RuntimeError("_chunk_cat expects dim < ndim for all input tensors")
    return dim


def _chunk_cat(tensors, dim, num_chunks, out=None):
    """Each tensor split into num_chunks equal chunks along dim (zero-padded at the end), each
    chunk flattened past dim, and the chunks of all tensors side by side: (..., num_chunks, sum)."""
    from vibetensor.ops import joining
    if num_chunks < 1:
        raise RuntimeError("_chunk_cat expects positive num_chunks")
    if not tensors:
        raise RuntimeError("_chunk_cat expects a non-empty input tensor list")
    for t in tensors:
        if t.numel() == 0:
            raise RuntimeError("_chunk_cat expects non-empty tensor")
        if t._dtype is not tensors[0]._dtype:
            raise RuntimeError("_chunk_cat expects all input tensors with the same dtype")
        if t._device != tensors[0]._device:
            raise RuntimeError("_chunk_cat expects all inputs tensors on the same device")
    dim = _chunk_cat_dim(tensors, dim)
    if any(tuple(t._shape[:dim]) != tuple(tensors[0]._shape[:dim]) for t in tensors):
        raise RuntimeError("_chunk_cat expects same sizes of 0,...,dim-1 dimensions for all tensors")
    pieces = []
    for t in tensors:
        n = t._shape[dim]
        padded = -(-n // num_chunks) * num_chunks
        if padded != n:
            pad = creation.full(t._shape[:dim] + (padded - n,) + t._shape[dim + 1:], 0, t._dtype, device=t._device)
            t = joining.cat([t, pad], dim)
        pieces.append(views.reshape(t, t._shape[:dim] + (num_chunks, -1)))
    return joining.cat(pieces, dim + 1, out=out)


rot90 = declare("rot90", composite=_rot90, family="shape_ops")
tile = declare("tile", composite=_tile, family="shape_ops")
diag = declare("diag", composite=_diag, family="shape_ops")
diagflat = declare("diagflat", composite=_diagflat, family="shape_ops")
repeat_interleave_self = declare("repeat_interleave_self", composite=_repeat_interleave_self, family="shape_ops")
chunk_cat = declare("_chunk_cat", composite=_chunk_cat, family="shape_ops")
