"""Shape arithmetic: torch.Size, broadcasting, dim wrapping, strides of views.

Pure functions of tuples; every error message is torch's, so users can search for it.
"""
import math
import operator


class Size(tuple):
    """torch.Size: a tuple of ints that prints as `torch.Size([2, 3])`."""

    def __repr__(self):
        return f"torch.Size([{', '.join(map(str, self))}])"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r

    def __add__(self, other):
        return Size(tuple.__add__(self, tuple(other)))


numel = math.prod  # numel(shape): the product of the sizes (1 for a 0-d shape), in C, with no frame of ours


def as_shape(args, op="view"):
    """Accept f(2, 3), f((2, 3)), f([2, 3]), f(Size) alike; ints only (TypeError otherwise)."""
    if len(args) == 1 and not isinstance(args[0], int):
        args = args[0]
    if isinstance(args, (tuple, list)):
        for s in args:  # the usual case, all plain ints: no conversion needed
            if s.__class__ is not int:
                break
        else:
            return tuple(args)
    try:
        return tuple(operator.index(s) for s in args)
    except TypeError:
        raise TypeError(f"{op}(): argument 'size' must be tuple of ints, but found element of type "
                        f"{type(next(s for s in args if not _is_index(s))).__name__}") from None


def _is_index(x):
    try:
        operator.index(x)
        return True
    except TypeError:
        return False


def wrap_dim(dim, ndim, op=None):
    """Negative dims count from the end; 0-d tensors accept dims -1 and 0, like torch."""
    if dim.__class__ is int and ndim:  # the usual case (an int in range), without the checks below
        if 0 <= dim < ndim:
            return dim
        if -ndim <= dim < 0:
            return dim + ndim
    try:
        dim = operator.index(dim)
    except TypeError:
        raise TypeError(f"{op or 'dim'}(): argument 'dim' must be int, not {type(dim).__name__}") from None
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def wrap_dims(dims, ndim, op=None):
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    out = tuple(wrap_dim(d, ndim, op) for d in dims)
    if len(set(out)) != len(out):
        d = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return out


def broadcast_shapes(*shapes):
    """The broadcast of several shapes, or torch's RuntimeError naming the mismatching sizes."""
    if len(shapes) == 2 and shapes[0] == shapes[1]:  # the usual case: equal shapes broadcast to themselves
        return tuple(shapes[0])
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, n in reversed(list(enumerate(s, ndim - len(s)))):  # last dim first, as torch's infer_size
            if n == out[i] or n == 1:
                continue
            if out[i] == 1:
                out[i] = n
            else:
                raise RuntimeError(
                    f"The size of tensor a ({out[i]}) must match the size of tensor b ({n}) "
                    f"at non-singleton dimension {i}")
    return tuple(out)


_strides_cache = {}


def contiguous_strides(shape):
    """Row-major strides in elements (size-0 dims count as 1, as torch). Cached: hot on every alloc."""
    strides = _strides_cache.get(shape)
    if strides is None:
        if len(_strides_cache) > 4096:
            _strides_cache.clear()
        strides = _strides_cache[shape] = _contiguous_strides(tuple(shape))
    return strides


def _contiguous_strides(shape):
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(strides))


def is_contiguous(shape, stride):
    """torch's rule: size-1 dims may have any stride; empty tensors are contiguous."""
    if shape.__class__ is tuple and stride == _strides_cache.get(shape):  # the usual case: row-major (cached)
        return True
    if 0 in shape:  # (before any stride is looked at: an empty (0, 3) with strides (1, 5) is contiguous)
        return True
    expected = 1
    for n, st in zip(reversed(shape), reversed(stride)):
        if n != 1:
            if st != expected:
                return False
            expected *= n
    return True


def _invalid_shape(shape, count):
    return RuntimeError(f"shape '[{', '.join(map(str, shape))}]' is invalid for input of size {count}")


def infer_size(shape, count):
    """Resolve one -1 in a requested shape for `count` elements (view/reshape)."""
    infer, known = None, 1
    for i, s in enumerate(shape):
        if s == -1:
            if infer is not None:
                raise RuntimeError("only one dimension can be inferred")
            infer = i
        elif s < 0:
            raise RuntimeError(f"invalid shape dimension {s}")
        else:
            known *= s
    if infer is None:
        if known != count:
            raise _invalid_shape(shape, count)
        return tuple(shape)
    if known == 0 or count % known:
        if known == 0 and count == 0:
            raise RuntimeError(f"cannot reshape tensor of 0 elements into shape [{', '.join(map(str, shape))}] "
                               "because the unspecified dimension size -1 can be any value and is ambiguous")
        raise _invalid_shape(shape, count)
    shape = list(shape)
    shape[infer] = count // known
    return tuple(shape)


def view_strides(old_shape, old_stride, new_shape):
    """Strides that let `new_shape` alias a tensor of (old_shape, old_stride), or None if no view
    exists (then reshape copies). Walks chunks of old dims that are contiguous among themselves.
    Both shapes hold the same number of elements (view and reshape resolve -1 first)."""
    if new_shape.__class__ is tuple and old_shape.__class__ is tuple and old_stride == contiguous_strides(old_shape):
        return contiguous_strides(new_shape)  # a contiguous tensor views as any shape, contiguously
    if not old_shape:
        return (1,) * len(new_shape)
    if numel(old_shape) == 0:
        return tuple(old_stride) if tuple(old_shape) == tuple(new_shape) else contiguous_strides(new_shape)
    new_stride = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = old_stride[-1]
    tensor_numel, view_numel = 1, 1
    for d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[d]
        if d == 0 or (old_shape[d - 1] != 1 and old_stride[d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_stride[view_d] = view_numel * chunk_base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_base = old_stride[d - 1]
                tensor_numel, view_numel = 1, 1
    if view_d != -1:
        return None
    return tuple(new_stride)
