"""View operators: new geometry over the same storage, never a copy.

Every view op is a composite kernel (the same on every device): it computes (shape, stride,
offset) and returns `alias(...)`, which shares storage and the version counter with its base.
Arguments arrive normalised by the front door (shapes as tuples of ints, dims as ints).
"""
from vibetensor.dispatch import declare
from vibetensor.ops.meta import legacy_type_name
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import alias, check_in_bounds


def _fmt(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


def _view(self, shape):
    shape = sh.infer_size(shape, self.numel())
    stride = sh.view_strides(self._shape, self._stride, shape)
    if stride is None:
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                           "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    return alias(self, shape, stride, self._offset)


def _permute(self, dims):
    nd = self.ndim
    if len(dims) != nd:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the "
                           f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal to "
                           f"len(dims) = {len(dims)}")
    dims = sh.wrap_dims(dims, nd, "permute")
    return alias(self, tuple(self._shape[d] for d in dims), tuple(self._stride[d] for d in dims), self._offset)


def _transpose(self, dim0, dim1):
    nd = self.ndim
    d0, d1 = sh.wrap_dim(dim0, nd), sh.wrap_dim(dim1, nd)
    if nd == 0:
        return alias(self, (), (), self._offset)
    shape, stride = list(self._shape), list(self._stride)
    shape[d0], shape[d1] = shape[d1], shape[d0]
    stride[d0], stride[d1] = stride[d1], stride[d0]
    return alias(self, tuple(shape), tuple(stride), self._offset)


def _expand(self, shape):
    nd, n = self.ndim, len(shape)
    if n < nd:
        raise RuntimeError(f"expand({legacy_type_name(self)}{{{_fmt(self._shape)}}}, size={list(shape)}): the number of "
                           f"sizes provided ({n}) must be greater or equal to the number of dimensions in the tensor ({nd})")
    out_shape, out_stride = [], []
    for i in range(n):
        j = i - (n - nd)
        size = shape[i]
        if j < 0:
            if size < 0:
                raise RuntimeError(f"The expanded size of the tensor ({size}) isn't allowed in a leading, "
                                   "non-existing dimension 0")
            out_shape.append(size)
            out_stride.append(0)
            continue
        have = self._shape[j]
        if size == -1:
            size = have
        if have == size:
            out_shape.append(size)
            out_stride.append(self._stride[j])
        elif have == 1:
            out_shape.append(size)
            out_stride.append(0)
        else:
            raise RuntimeError(f"The expanded size of the tensor ({size}) must match the existing size ({have}) at "
                               f"non-singleton dimension {i}.  Target sizes: {list(shape)}.  Tensor sizes: "
                               f"{list(self._shape)}")
    return alias(self, tuple(out_shape), tuple(out_stride), self._offset)


def _squeeze(self, dims=None):
    nd = self.ndim
    dims = set(range(nd)) if dims is None else set(sh.wrap_dims(dims, nd, "squeeze"))
    keep = [i for i in range(nd) if not (i in dims and self._shape[i] == 1)]
    return alias(self, tuple(self._shape[i] for i in keep), tuple(self._stride[i] for i in keep), self._offset)


def _unsqueeze(self, dim):
    nd = self.ndim
    d = sh.wrap_dim(dim, nd + 1, "unsqueeze")
    shape, stride = list(self._shape), list(self._stride)
    new_stride = shape[d] * stride[d] if d < nd else 1
    shape.insert(d, 1)
    stride.insert(d, new_stride)
    return alias(self, tuple(shape), tuple(stride), self._offset)


def _select(self, dim, index):
    nd = self.ndim
    if nd == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = sh.wrap_dim(dim, nd, "select")
    size = self._shape[d]
    if not -size <= index < size:
        raise IndexError(f"index {index} is out of bounds for dimension {d} with size {size}")
    index %= size if size else 1
    return alias(self, self._shape[:d] + self._shape[d + 1:], self._stride[:d] + self._stride[d + 1:],
                 self._offset + index * self._stride[d])


def _slice(self, dim, start, stop, step):
    """x[start:stop:step] along dim, with Python's clamping of out-of-range bounds."""
    d = sh.wrap_dim(dim, self.ndim, "slice")
    if step <= 0:
        raise ValueError("step must be greater than zero")
    start, stop, _ = slice(start, stop, 1).indices(self._shape[d])
    length = max(0, (stop - start + step - 1) // step)
    shape, stride = list(self._shape), list(self._stride)
    shape[d] = length
    stride[d] *= step
    return alias(self, tuple(shape), tuple(stride), self._offset + start * self._stride[d])


def _narrow(self, dim, start, length):
    d = sh.wrap_dim(dim, self.ndim, "narrow")
    size = self._shape[d]
    if start < 0:
        start += size
    if not 0 <= start <= size or length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return _slice(self, d, start, start + length, 1)


def _as_strided(self, size, stride, storage_offset=None):
    offset = self._offset if storage_offset is None else storage_offset
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    check_in_bounds(self._storage.nbytes, size, stride, offset, self._dtype.itemsize)
    return alias(self, tuple(size), tuple(stride), offset)


view = declare("view", composite=_view, family="views")
permute = declare("permute", composite=_permute, family="views")
transpose = declare("transpose", composite=_transpose, family="views")
expand = declare("expand", composite=_expand, family="views")
squeeze = declare("squeeze", composite=_squeeze, family="views")
unsqueeze = declare("unsqueeze", composite=_unsqueeze, family="views")
select = declare("select", composite=_select, family="views")
slice_ = declare("slice", composite=_slice, family="views")
narrow = declare("narrow", composite=_narrow, family="views")
as_strided = declare("as_strided", composite=_as_strided, family="views")
