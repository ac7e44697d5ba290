"""View operators: new geometry over the same storage, never a copy.

Every view op is a composite kernel (the same on every device). Two kinds:
  primitives  compute (shape, stride, offset) and return `alias(...)`, which shares storage and the
              version counter with its base; autograd needs a derivative for each of them:
              view, view_dtype, permute, transpose, expand, squeeze, unsqueeze, select, slice,
              as_strided, unfold, diagonal, view_as_real, view_as_complex, alias
  composites  are written with the primitives, so they are differentiable through them:
              reshape, narrow, split, split_with_sizes, unbind, movedim, flatten, unflatten
Arguments arrive normalised by the front door (shapes as tuples of ints, dims as ints); error
messages are torch's.

The layout helper at the end (TensorIterator's output strides) is shared with the ops that
allocate their results in torch's memory layout (index).
"""
from vibetensor.autograd.view_history import note_untracked_multi_output, note_untracked_view
from vibetensor.dispatch import declare, local
from vibetensor.ops.creation import is_non_overlapping_and_dense
from vibetensor.ops.meta import TYPE_NAMES, legacy_type_name, remember
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import check_in_bounds, make_tensor


def _fmt(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


def _alias(t, shape, stride, offset):
    """A view of t. Autograd records the views it sees; those made with grad mode off (or of a view
    it already knows) are noted here, so an in-place write through them is checked as torch does."""
    base = t._base  # (tensor.alias, inlined: every view op ends here)
    v = make_tensor(t._storage, shape, stride, offset, t._dtype, t._version, t if base is None else base)
    if t._view_info is not None:
        note_untracked_view(t, v)
    elif not local.grad_enabled:  # (one read of the thread-local grad mode per view: note_untracked_view
        note_untracked_view(t, v, None, False)  # is told what it is)
    return v


def _retyped(t, shape, stride, offset, dtype, is_view=True):
    """A view of t's bytes as another dtype (view(dtype), view_as_real/complex): same storage and
    version counter. torch does not record view(dtype) as an autograd view (its _base is None)."""
    base = (t._base if t._base is not None else t) if is_view else None
    v = make_tensor(t._storage, tuple(shape), tuple(stride), offset, dtype, t._version, base)
    if is_view:
        note_untracked_view(t, v, view_as_complex if dtype.is_complex else view_as_real)
    return v


def _cached_geometry(cache, key, compute, *args):
    """cache[key], else compute(*args) (which validates, raising torch's errors) remembered there.
    A training loop makes the same few views over and over; a key holding a list is not cached.
    (The view ops read cache[key] inline first: `try` costs nothing when the key is there.)"""
    try:
        geometry = cache.get(key)
    except TypeError:
        return compute(*args)
    if geometry is None:
        geometry = remember(cache, key, compute(*args))
    return geometry


def infer_size(shape, numel):
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {_fmt(shape)}")
    return sh.infer_size(shape, numel)


def expand_geometry(shape, stride, sizes, type_name="Tensor"):
    """torch's inferExpandGeometry: size-1 dims broadcast with stride 0; new leading dims of size 1
    keep a 'contiguous' stride (so zeros(3).expand(1, 3) has strides (3, 1), like torch)."""
    nd, n = len(shape), len(sizes)
    if n < nd:
        raise RuntimeError(f"expand({type_name}{{{_fmt(shape)}}}, size={list(sizes)}): the number of sizes "
                           f"provided ({n}) must be greater or equal to the number of dimensions in the tensor ({nd})")
    out_shape, out_stride = [0] * n, [0] * n
    for i in range(n - 1, -1, -1):
        j = i - (n - nd)
        size = shape[j] if j >= 0 else 1
        st = stride[j] if j >= 0 else (out_shape[i + 1] * out_stride[i + 1] if i + 1 < n else 0)  # 0-d: all 0
        target = sizes[i]
        if target == -1:
            if j < 0:
                raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                   f"non-existing dimension {i}")
            target = size
        if size != target:
            if size != 1:
                raise RuntimeError(f"The expanded size of the tensor ({target}) must match the existing size "
                                   f"({size}) at non-singleton dimension {i}.  Target sizes: {list(sizes)}.  "
                                   f"Tensor sizes: {list(shape)}")
            if target < 0:
                raise RuntimeError(f"The expanded size of the tensor ({target}) must be non-negative. "
                                   f"Target sizes: {list(sizes)}")
            size, st = target, 0
        out_shape[i], out_stride[i] = size, st
    return tuple(out_shape), tuple(out_stride)


# -- primitives --------------------------------------------------------------------------------------------

_view_geometries = {}  # (shape, stride, requested shape) -> _view_geometry's answer


def _view_geometry(self, shape):
    """(the requested shape with -1 resolved, the strides that view self as it or None if none do)."""
    shape = infer_size(shape, sh.numel(self._shape))
    return shape, sh.view_strides(self._shape, self._stride, shape)


def view_geometry(t, shape):
    """(shape, strides) of t.view(shape), cached; the strides are None when no view exists (then
    reshape copies). Raises view's errors for a shape of another size."""
    try:
        return _view_geometries[t._shape, t._stride, shape]
    except (KeyError, TypeError):
        return _cached_geometry(_view_geometries, (t._shape, t._stride, shape), _view_geometry, t, shape)


_NOT_VIEWABLE = ("view size is not compatible with input tensor's size and stride (at least one dimension spans "
                 "across two contiguous subspaces). Use .reshape(...) instead.")


def _view(self, shape):
    try:
        shape, stride = _view_geometries[self._shape, self._stride, shape]
    except (KeyError, TypeError):
        shape, stride = _cached_geometry(_view_geometries, (self._shape, self._stride, shape), _view_geometry,
                                         self, shape)
    if stride is None:
        raise RuntimeError(_NOT_VIEWABLE)
    return _alias(self, shape, stride, self._offset)


def _view_dtype(self, dtype):
    """Reinterpret the bytes: equal itemsizes keep the geometry; otherwise the last dim (stride 1)
    is split or merged and every other stride/offset rescaled (torch's rules and messages)."""
    old, new = self._dtype.itemsize, dtype.itemsize
    if old == new:
        return _retyped(self, self._shape, self._stride, self._offset, dtype, is_view=False)
    names = f"{TYPE_NAMES[self._dtype]} as {TYPE_NAMES[dtype]} (different element sizes)"
    if len(self._shape) == 0:
        raise RuntimeError(f"self.dim() cannot be 0 to view {names}")
    shape, stride, offset = list(self._shape), list(self._stride), self._offset
    if old > new:
        r = old // new
        _check_last_stride(stride, names)
        shape[-1] *= r
        stride = [s * r for s in stride[:-1]] + [1]
        offset *= r
    else:
        r = new // old
        if shape[-1] % r:
            raise RuntimeError(f"self.size(-1) must be divisible by {r} to view {names}, but got {shape[-1]}")
        if offset % r:
            raise RuntimeError(f"self.storage_offset() must be divisible by {r} to view {names}, but got {offset}")
        _check_last_stride(stride, names)
        for i, s in enumerate(stride[:-1]):
            if s % r:
                raise RuntimeError(f"self.stride({i}) must be divisible by {r} to view {names}, but got {s}")
        shape[-1] //= r
        stride = [s // r for s in stride[:-1]] + [1]
        offset //= r
    return _retyped(self, shape, stride, offset, dtype, is_view=False)


def _check_last_stride(stride, names):
    if stride[-1] != 1:
        raise RuntimeError(f"self.stride(-1) must be 1 to view {names}, but got {stride[-1]}")


def _permute(self, dims):
    nd = len(self._shape)
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
                           f"len(dims) = {len(dims)}")
    dims = tuple(sh.wrap_dim(d, nd, "permute") for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return _alias(self, tuple(self._shape[d] for d in dims), tuple(self._stride[d] for d in dims), self._offset)


_transpose_geometries = {}  # (shape, stride, dim0, dim1) -> (shape, stride)


def _transpose_geometry(self, dim0, dim1):
    nd = len(self._shape)
    d0, d1 = sh.wrap_dim(dim0, nd, "transpose"), sh.wrap_dim(dim1, nd, "transpose")
    if nd == 0:
        return (), ()
    shape, stride = list(self._shape), list(self._stride)
    shape[d0], shape[d1] = shape[d1], shape[d0]
    stride[d0], stride[d1] = stride[d1], stride[d0]
    return tuple(shape), tuple(stride)


def _transpose(self, dim0, dim1):
    try:
        shape, stride = _transpose_geometries[self._shape, self._stride, dim0, dim1]
    except (KeyError, TypeError):
        shape, stride = _cached_geometry(_transpose_geometries, (self._shape, self._stride, dim0, dim1),
                                         _transpose_geometry, self, dim0, dim1)
    return _alias(self, shape, stride, self._offset)


def _t(self):
    """transpose(0, 1) of a matrix; vectors and scalars as they are (torch.t, its own node TBackward0)."""
    if len(self._shape) > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {len(self._shape)}D")
    return _transpose(self, 0, 0 if len(self._shape) < 2 else 1)


_expand_geometries = {}  # (shape, stride, sizes) -> (shape, stride)


def _expand_geometry(self, sizes):
    return expand_geometry(self._shape, self._stride, tuple(sizes), legacy_type_name(self))


def expanded_geometry(t, shape):
    """(shape, strides) of t.expand(shape), cached; raises expand's errors (a broadcast check that
    makes no tensor)."""
    try:
        return _expand_geometries[t._shape, t._stride, shape]
    except (KeyError, TypeError):
        return _cached_geometry(_expand_geometries, (t._shape, t._stride, shape), _expand_geometry, t, shape)


def _expand(self, shape):
    shape, stride = expanded_geometry(self, shape)
    return _alias(self, shape, stride, self._offset)


def _squeeze(self, dims=None):
    nd = len(self._shape)
    dims = set(range(nd)) if dims is None else set(sh.wrap_dims(dims, nd, "squeeze"))
    keep = [i for i in range(nd) if not (i in dims and self._shape[i] == 1)]
    return _alias(self, tuple(self._shape[i] for i in keep), tuple(self._stride[i] for i in keep), self._offset)


def _unsqueeze(self, dim):
    nd = len(self._shape)
    d = sh.wrap_dim(dim, nd + 1, "unsqueeze")
    shape, stride = list(self._shape), list(self._stride)
    new_stride = shape[d] * stride[d] if d < nd else 1
    shape.insert(d, 1)
    stride.insert(d, new_stride)
    return _alias(self, tuple(shape), tuple(stride), self._offset)


def _select(self, dim, index):
    nd = len(self._shape)
    if nd == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = sh.wrap_dim(dim, nd, "select")
    size = self._shape[d]
    if not -size <= index < size:
        raise IndexError(f"select(): index {index} out of range for tensor of size {_fmt(self._shape)} "
                         f"at dimension {d}")
    if index < 0:
        index += size
    return _alias(self, self._shape[:d] + self._shape[d + 1:], self._stride[:d] + self._stride[d + 1:],
                  self._offset + index * self._stride[d])


_slice_geometries = {}  # (shape, stride, dim, start, stop, step) -> (shape, stride, offset delta)


def _slice_geometry(self, dim, start, stop, step):
    if len(self._shape) == 0:
        raise IndexError("slice() cannot be applied to a 0-dim tensor.")
    d = sh.wrap_dim(dim, len(self._shape), "slice")
    if step <= 0:
        raise RuntimeError("slice step must be positive")
    size = self._shape[d]
    start = 0 if start is None else start
    stop = size if stop is None else stop
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = min(max(start, 0), size)
    stop = min(max(stop, start), size)
    shape, stride = list(self._shape), list(self._stride)
    shape[d] = (stop - start + step - 1) // step
    stride[d] *= step
    return tuple(shape), tuple(stride), start * self._stride[d]


def _slice(self, dim, start=None, stop=None, step=1):
    """x[start:stop:step] along dim; out-of-range bounds clamp (torch's aten::slice)."""
    try:
        shape, stride, delta = _slice_geometries[self._shape, self._stride, dim, start, stop, step]
    except (KeyError, TypeError):
        shape, stride, delta = _cached_geometry(_slice_geometries, (self._shape, self._stride, dim, start, stop, step),
                                                _slice_geometry, self, dim, start, stop, step)
    return _alias(self, shape, stride, self._offset + delta)


def _as_strided(self, size, stride, storage_offset=None):
    offset = self._offset if storage_offset is None else storage_offset
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    if any(n < 0 for n in size):
        raise RuntimeError(f"Storage size calculation overflowed with sizes={list(size)} and strides={list(stride)}")
    if offset < 0:
        raise RuntimeError(f"Tensor: invalid storage offset {offset}")
    check_in_bounds(self._storage.nbytes, size, stride, offset, self._dtype.itemsize)
    return _alias(self, tuple(size), tuple(stride), offset)


def _unfold(self, dimension, size, step):
    """Windows of `size` elements every `step` along a dim, as a new last dim (torch.Tensor.unfold)."""
    nd = len(self._shape)
    d = sh.wrap_dim(dimension, nd, "unfold")
    max_size = self._shape[d] if nd else 1
    if size > max_size:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {max_size} but size is {size}")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    shape, stride = list(self._shape), list(self._stride)
    shape.append(size)
    stride.append(stride[d] if nd else 1)
    if nd:
        shape[d] = (shape[d] - size) // step + 1
        stride[d] *= step
    return _alias(self, tuple(shape), tuple(stride), self._offset)


def _diagonal(self, offset=0, dim1=0, dim2=1):
    nd = len(self._shape)
    d1, d2 = sh.wrap_dim(dim1, nd, "diagonal"), sh.wrap_dim(dim2, nd, "diagonal")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n1, n2 = self._shape[d1], self._shape[d2]
    size = max(min(n1, n2 - offset), 0) if offset >= 0 else max(min(n1 + offset, n2), 0)
    start = self._offset
    if size and offset >= 0:
        start += offset * self._stride[d2]
    elif size:
        start -= offset * self._stride[d1]
    keep = [i for i in range(nd) if i not in (d1, d2)]
    shape = tuple(self._shape[i] for i in keep) + (size,)
    stride = tuple(self._stride[i] for i in keep) + (self._stride[d1] + self._stride[d2],)
    return _alias(self, shape, stride, start)


def _view_as_real(self):
    if not self._dtype.is_complex:
        raise RuntimeError("view_as_real is only supported for complex tensors")
    return _retyped(self, self._shape + (2,), tuple(s * 2 for s in self._stride) + (1,), self._offset * 2,
                    self._dtype.to_real())


def _view_as_complex(self):
    if self._dtype not in (dt.float32, dt.float64, dt.float16):
        raise RuntimeError(f"view_as_complex is only supported for half, float and double tensors, but got a "
                           f"tensor of scalar type: {TYPE_NAMES[self._dtype]}")
    if len(self._shape) == 0:
        raise RuntimeError("Input tensor must have one or more dimensions")
    if self._shape[-1] != 2:
        raise RuntimeError("Tensor must have a last dimension of size 2")
    if self._stride[-1] != 1:
        raise RuntimeError("Tensor must have a last dimension with stride 1")
    if any(s % 2 for s in self._stride[:-1]):
        raise RuntimeError("Tensor must have a stride divisible by 2 for all but last dimension")
    if self._offset % 2:
        raise RuntimeError("Tensor must have a storage_offset divisible by 2")
    if self._dtype is dt.float16:
        raise NotImplementedError("view_as_complex: complex32 (torch.chalf) is not supported by vibetensor")
    return _retyped(self, self._shape[:-1], tuple(s // 2 for s in self._stride[:-1]), self._offset // 2,
                    self._dtype.to_complex())


def _alias_op(self):
    return _alias(self, self._shape, self._stride, self._offset)


def _unsafe_view_op(self, shape):
    """view() of a tensor nobody else sees (reshape's fresh copy): the result is not a view (torch's
    _unsafe_view), so in-place writes to it need no CopySlices."""
    shape, stride = _cached_geometry(_view_geometries, (self._shape, self._stride, shape), _view_geometry, self, shape)
    if stride is None:
        raise RuntimeError(_NOT_VIEWABLE)
    return make_tensor(self._storage, shape, stride, self._offset, self._dtype, self._version, None)


view = declare("view", composite=_view, family="views")
view_dtype = declare("view_dtype", composite=_view_dtype, family="views")
permute = declare("permute", composite=_permute, family="views")
transpose = declare("transpose", composite=_transpose, family="views")
t = declare("t", composite=_t, family="views")
expand = declare("expand", composite=_expand, family="views")
squeeze = declare("squeeze", composite=_squeeze, family="views")
unsqueeze = declare("unsqueeze", composite=_unsqueeze, family="views")
select = declare("select", composite=_select, family="views")
slice_ = declare("slice", composite=_slice, family="views")
as_strided = declare("as_strided", composite=_as_strided, family="views")
unfold = declare("unfold", composite=_unfold, family="views")
diagonal = declare("diagonal", composite=_diagonal, family="views")
view_as_real = declare("view_as_real", composite=_view_as_real, family="views")
view_as_complex = declare("view_as_complex", composite=_view_as_complex, family="views")
alias = declare("alias", composite=_alias_op, family="views")
_unsafe_view = declare("_unsafe_view", composite=_unsafe_view_op, family="views")


# -- composites (differentiable through the primitives they call) ---------------------------------------------

def _reshape(self, shape):
    """A view when the strides allow one, else a contiguous copy viewed to the shape."""
    shape, stride = view_geometry(self, shape)
    if stride is not None:
        kernel = view.kernel_on(self)  # what view(self, shape) runs
        if kernel is _view:  # (its result, made here: the geometry is known)
            return _alias(self, shape, stride, self._offset)
        return view(self, shape) if kernel is None else kernel(self, shape)
    from vibetensor.ops import creation
    return _unsafe_view.call_on(creation.contiguous(self), shape)  # no view exists, so this copies


def _narrow(self, dim, start, length):
    if len(self._shape) == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    size = self._shape[sh.wrap_dim(dim, len(self._shape), "narrow")]
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got {start})")
    if start < 0:
        start += size
    if start > size - length:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return slice_.call_on(self, dim, start, start + length, 1)


_split_geometries = {}  # (shape, stride, split_size, dim) -> per piece (shape, stride, offset delta)


def _split_geometry(self, split_size, dim):
    if len(self._shape) == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    if split_size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={split_size}")
    size = self._shape[sh.wrap_dim(dim, len(self._shape), "split")]
    if split_size == 0 and size != 0:
        raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {size}")
    n = max((size + split_size - 1) // split_size, 1) if split_size else 1
    last = split_size - (split_size * n - size)
    return tuple(_slice_geometry(self, dim, i * split_size, i * split_size + (split_size if i < n - 1 else last), 1)
                 for i in range(n))


def _split(self, split_size, dim=0):
    """Pieces of split_size along dim (the last may be smaller); a tuple of views (narrow's)."""
    try:
        pieces = _split_geometries[self._shape, self._stride, split_size, dim]
    except (KeyError, TypeError):
        pieces = _cached_geometry(_split_geometries, (self._shape, self._stride, split_size, dim), _split_geometry,
                                  self, split_size, dim)
    if slice_.kernel_on(self) is not _slice:  # (autograd or a wrapper key sees each piece: narrow's calls)
        d = sh.wrap_dim(dim, len(self._shape), "split")
        return _multi_output(self, tuple(_narrow(self, dim, i * split_size, shape[d])
                                         for i, (shape, _, _) in enumerate(pieces)))
    out = []
    for shape, stride, delta in pieces:  # what narrow -> slice would make, made here
        out.append(_alias(self, shape, stride, self._offset + delta))
    return _multi_output(self, tuple(out))


def _split_with_sizes(self, split_sizes, dim=0):
    if len(self._shape) == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    size = self._shape[sh.wrap_dim(dim, len(self._shape), "split_with_sizes")]
    if any(n < 0 for n in split_sizes):
        raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative entries, but got "
                           f"split_sizes={list(split_sizes)}")
    if sum(split_sizes) != size:
        raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {size} (input tensor's size at "
                           f"dimension {dim}), but got split_sizes={list(split_sizes)}")
    starts = [sum(split_sizes[:i]) for i in range(len(split_sizes))]
    return _multi_output(self, tuple(slice_.call_on(self, dim, s, s + n, 1) for s, n in zip(starts, split_sizes)))


def _unbind(self, dim=0):
    if len(self._shape) == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = sh.wrap_dim(dim, len(self._shape), "unbind")
    return _multi_output(self, tuple(select.call_on(self, d, i) for i in range(self._shape[d])))


def _multi_output(self, views):
    """Several views from one op may not be written in place (torch): autograd records that for the
    views it sees; these were made in grad mode without it (with grad mode off they are no_grad views)."""
    if local.grad_enabled:
        note_untracked_multi_output(self, views)
    return views


def _movedim(self, source, destination):
    nd = len(self._shape)
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(source)} dims) should "
                           f"contain the same number of dims as destination ({list(destination)} dims)")
    src = [sh.wrap_dim(d, nd, "movedim") for d in source]
    dst = [sh.wrap_dim(d, nd, "movedim") for d in destination]
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(source)})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({list(destination)})")
    if nd == 0:
        return alias(self)
    order = [-1] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest_src = iter(i for i in range(nd) if i not in src)
    order = [o if o >= 0 else next(rest_src) for o in order]
    return permute.call_on(self, tuple(order))


def _flatten(self, start_dim=0, end_dim=-1):
    nd = len(self._shape)
    s, e = sh.wrap_dim(start_dim, nd, "flatten"), sh.wrap_dim(end_dim, nd, "flatten")
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if nd == 0:
        return _reshape(self, (1,))
    if s == e:
        return self  # torch returns the input itself here
    return _reshape(self, self._shape[:s] + (sh.numel(self._shape[s:e + 1]),) + self._shape[e + 1:])


def _unflatten(self, dim, sizes):
    d = sh.wrap_dim(dim, len(self._shape), "unflatten")
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    try:
        inferred = infer_size(tuple(sizes), self._shape[d])
    except RuntimeError as e:
        if "is invalid for input of size" not in str(e):
            raise
        raise RuntimeError(f"unflatten: Provided sizes {_fmt(sizes)} don't multiply up to the size of dim {d} "
                           f"({self._shape[d]}) in the input tensor") from None
    return view.call_on(self, self._shape[:d] + inferred + self._shape[d + 1:])


reshape = declare("reshape", composite=_reshape, family="views")
narrow = declare("narrow", composite=_narrow, family="views")
split = declare("split", composite=_split, family="views")
split_with_sizes = declare("split_with_sizes", composite=_split_with_sizes, family="views")
unbind = declare("unbind", composite=_unbind, family="views")
movedim = declare("movedim", composite=_movedim, family="views")
flatten = declare("flatten", composite=_flatten, family="views")
unflatten = declare("unflatten", composite=_unflatten, family="views")


# -- layout helpers: where torch puts the elements of a freshly allocated result ----------------------------

def iterator_strides(shape, operands):
    """The strides torch's TensorIterator gives a new output of `shape` computed from `operands`
    ((shape, stride) pairs, already of len(shape) dims): the output follows the inputs' memory
    order, so e.g. indexing a transposed tensor gives a transposed result."""
    nd = len(shape)
    if nd <= 1:
        return sh.contiguous_strides(shape)
    if all(tuple(s) == tuple(shape) for s, _ in operands):  # TensorIterator's fast set-up
        if all(sh.is_contiguous(s, st) for s, st in operands):
            return sh.contiguous_strides(shape)
        if all(is_non_overlapping_and_dense(s, st) for s, st in operands):
            return tuple(operands[-1][1])  # torch takes the last operand's strides here
    # broadcast dims of an operand count as stride 0 (compute_strides)
    strides = [[0 if (s[i] == 1 and shape[i] != 1) else st[i] for i in range(nd)] for s, st in operands]

    def should_swap(d0, d1):
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return 1 if s0 > s1 else -1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(nd - 1, -1, -1))  # fastest-moving dim first
    for i in range(1, nd):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = should_swap(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    if perm == list(range(nd - 1, -1, -1)):
        return sh.contiguous_strides(shape)
    out, acc = [0] * nd, 1
    for d in perm:
        out[d] = acc
        acc *= shape[d]
    return tuple(out)


# -- derivatives (autograd) ---------------------------------------------------------------------------------------
# A view's gradient is the gradient of the part of its input it shows: reshaped or permuted back, summed over
# broadcast dims, or written into zeros at the place it covers (select, slice, diagonal, unfold, as_strided).
# The composites above are differentiable through these. Formulas use ops, so they differentiate again.

from vibetensor.autograd import derivative as _derivative, nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.autograd.engine import sum_to as _sum_to  # noqa: E402
from vibetensor.ops import creation as _creation  # noqa: E402


def _zeros(meta, grad):
    """Zeros shaped like the op's input, in the gradient's dtype and device."""
    return _creation.full(tuple(meta._shape), 0, grad._dtype, device=grad._device)


def _scatter_into_zeros(meta, grad, view_fn):
    """zeros(input).view_fn() = grad: the gradient of a view that picks part of its input."""
    z = _zeros(meta, grad)
    _creation.copy_(view_fn(z), grad)
    return z


@_derivative(view)
def _view_backward(ctx, grad, self, shape):
    return reshape(grad, tuple(self._shape))


@_derivative(_unsafe_view)
def _unsafe_view_backward(ctx, grad, self, shape):
    return reshape(grad, tuple(self._shape))


@_derivative(alias)
def _alias_backward(ctx, grad, self):
    return grad


@_derivative(permute)
def _permute_backward(ctx, grad, self, dims):
    nd = len(dims)
    inverse = [0] * nd
    for i, d in enumerate(dims):
        inverse[sh.wrap_dim(d, nd)] = i
    return permute(grad, tuple(inverse))


@_derivative(transpose)
def _transpose_backward(ctx, grad, self, dim0, dim1):
    return transpose(grad, dim0, dim1)


@_derivative(t)
def _t_backward(ctx, grad, self):
    return t(grad)


@_derivative(expand)
def _expand_backward(ctx, grad, self, shape):
    return _sum_to(grad, tuple(self._shape))


def _squeeze_name(self, dims=None):
    return "SqueezeBackward0" if dims is None else "SqueezeBackward1" if isinstance(dims, int) else "SqueezeBackward2"


@_derivative(squeeze, name=_squeeze_name)
def _squeeze_backward(ctx, grad, self, dims=None):
    return reshape(grad, tuple(self._shape))


@_derivative(unsqueeze)
def _unsqueeze_backward(ctx, grad, self, dim):
    return squeeze(grad, (sh.wrap_dim(dim, len(self._shape) + 1),))


@_derivative(select)
def _select_backward(ctx, grad, self, dim, index):
    return _scatter_into_zeros(self, grad, lambda z: select(z, dim, index))


@_derivative(slice_)
def _slice_backward(ctx, grad, self, dim, start=None, stop=None, step=1):
    if step == 1 and tuple(grad._shape) == tuple(self._shape):  # the whole dim (x[:n] of n rows): the identity
        return grad
    return _scatter_into_zeros(self, grad, lambda z: slice_(z, dim, start, stop, step))


@_derivative(diagonal)
def _diagonal_backward(ctx, grad, self, offset=0, dim1=0, dim2=1):
    return _scatter_into_zeros(self, grad, lambda z: diagonal(z, offset, dim1, dim2))


@_derivative(unfold)
def _unfold_backward(ctx, grad, self, dimension, size, step):
    """Each window element goes back to its place; overlapping windows (step < size) add up there."""
    nd = len(self._shape)
    if nd == 0:  # a 0-d input unfolds to (size,), size 0 or 1
        return reshape(grad, ()) if size == 1 else _zeros(self, grad)
    d = sh.wrap_dim(dimension, nd)
    if step >= size:
        return _scatter_into_zeros(self, grad, lambda z: unfold(z, d, size, step))
    import numpy as np
    from vibetensor.ops import indexing
    from vibetensor.tensor.tensor import from_array
    n = grad._shape[d]
    where = (np.arange(n)[:, None] * step + np.arange(size)[None, :]).reshape(-1)  # (n * size,)
    where = _creation.to(from_array(where), dt.int64, grad._device)
    values = reshape(movedim(grad, (nd,), (d + 1,)), self._shape[:d] + (n * size,) + self._shape[d + 1:])
    z = _zeros(self, grad)
    return indexing.index_put_(z, [None] * d + [where], values, True)


def _maybe_overlapping(sizes, strides):
    """torch's _maybe_overlapping_memory: could two elements of this geometry share an address?"""
    reach = 0
    for i in sorted(range(len(sizes)), key=lambda i: strides[i]):
        if strides[i] <= reach:
            return True
        reach += strides[i] * (sizes[i] - 1)
    return False


def _min_storage_size(sizes, strides, offset):
    if 0 in sizes:
        return offset
    return offset + 1 + sum((n - 1) * st for n, st in zip(sizes, strides))


@_derivative(as_strided, geometry=(0,))
def _as_strided_backward(ctx, grad, self, size, stride, storage_offset=None):
    """torch's as_strided_backward: scatter the gradient into a buffer laid out like the memory both
    geometries read (adding where the output reads one element twice), divide where the input
    reads one element several times, and read the input's geometry back out."""
    from vibetensor.ops import elementwise as ew
    from vibetensor.ops import indexing
    reduction_sum = _sum_op()
    offset = self._offset if storage_offset is None else storage_offset
    out_sizes, out_strides = [], []
    for i in range(len(size) - 1, -1, -1):  # size-1 dims drop out, broadcast dims sum up
        if size[i] == 0:
            return _zeros(self, grad)
        if size[i] == 1:
            grad = squeeze(grad, (i,))
        elif stride[i] == 0:
            grad = reduction_sum(grad, (i,), False)
        else:
            out_sizes.insert(0, size[i])
            out_strides.insert(0, stride[i])
    if 0 in self._shape:
        return _zeros(self, grad)
    keep = [i for i, n in enumerate(self._shape) if n != 1]
    in_sizes, in_strides = [self._shape[i] for i in keep], [self._stride[i] for i in keep]
    out_overlap, in_overlap = _maybe_overlapping(out_sizes, out_strides), _maybe_overlapping(in_sizes, in_strides)
    shared = min(self._offset, offset)
    in_offset, out_offset = self._offset - shared, offset - shared
    n = max(_min_storage_size(in_sizes, in_strides, in_offset), _min_storage_size(out_sizes, out_strides, out_offset))
    storage = _creation.full((n,), 0, grad._dtype, device=grad._device)
    if in_overlap or out_overlap:
        flat = _creation.arange(0, n, 1, dt.int64, device=grad._device)
    if out_overlap:
        where = reshape(as_strided(flat, tuple(out_sizes), tuple(out_strides), out_offset), (-1,))
        storage = indexing.index_put_(storage, [where], reshape(grad, (-1,)), True)
    else:
        _creation.copy_(as_strided(storage, tuple(out_sizes), tuple(out_strides), out_offset), grad)
    if in_overlap:
        where = reshape(as_strided(flat, tuple(in_sizes), tuple(in_strides), in_offset), (-1,))
        ones = _creation.full(tuple(where._shape), 1, grad._dtype, device=grad._device)
        count = indexing.index_put_(_creation.full((n,), 0, grad._dtype, device=grad._device), [where], ones, True)
        storage = ew.div(storage, count)  # nan where the input does not read: never read back
    return as_strided(storage, tuple(self._shape), tuple(self._stride), in_offset)


def _sum_op():
    from vibetensor.dispatch import get
    return get("sum")


@_derivative(view_as_real)
def _view_as_real_backward(ctx, grad, self):
    return view_as_complex(_creation.contiguous(grad))


@_derivative(view_as_complex)
def _view_as_complex_backward(ctx, grad, self):
    return view_as_real(_creation.contiguous(grad))


def _cat(tensors, dim):
    from vibetensor.ops import joining
    return joining.cat(tensors, dim)


def _pieces(grads):
    """The list of output gradients (the engine hands a one-output result's gradient as the tensor itself)."""
    return list(grads) if isinstance(grads, (tuple, list)) else [grads]


@_derivative(split)
def _split_backward(ctx, grads, self, split_size, dim=0):
    return _cat(_pieces(grads), dim)


@_derivative(split_with_sizes)
def _split_with_sizes_backward(ctx, grads, self, split_sizes, dim=0):
    return _cat(_pieces(grads), dim)


@_derivative(unbind)
def _unbind_backward(ctx, grads, self, dim=0):
    from vibetensor.ops import joining
    return joining.stack(_pieces(grads), dim)


_nondifferentiable(view_dtype)  # torch: view(dtype) never requires grad
