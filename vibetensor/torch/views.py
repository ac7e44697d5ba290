"""View functions and methods of the front door (torch.permute, x.view, x.transpose, ...).

Each function parses torch's signature (varargs or a tuple for shapes and dims) and calls one op
of vibetensor/ops/views.py; the result shares storage and the version counter with its input.
"""
import operator
import warnings

from vibetensor.autograd import view_history
from vibetensor.ops import views as v
from vibetensor.ops.meta import TYPE_NAMES, bump_version
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, set_geometry
from vibetensor.torch import advanced_indexing, indexing
from vibetensor.torch.tensor_methods import method

Tensor.__getitem__ = indexing.getitem
Tensor.__setitem__ = indexing.setitem
Tensor.__delitem__ = indexing.delitem
index_put = advanced_indexing.index_put
method(advanced_indexing.index_put_, "index_put_")
method(advanced_indexing.index_put, "index_put")


def _dims(args, op):
    """f(0, 1), f((0, 1)), f([0, 1]) alike."""
    return sh.as_shape(args, op)


_int = operator.index  # an int argument as torch's parser reads it (a builtin: no frame of ours per argument)


def _no_other_kwargs(op, kwargs):
    if kwargs:
        raise TypeError(f"{op}() got an unexpected keyword argument '{next(iter(kwargs))}'")


# -- reshaping ------------------------------------------------------------------------------------------------

@method
def view(self, *shape, dtype=None, size=None):
    if dtype is not None or (len(shape) == 1 and isinstance(shape[0], dt.dtype)):
        return v.view_dtype(self, dtype if dtype is not None else shape[0])
    if size is not None:
        shape = (size,)
    try:
        if not shape:
            raise TypeError
        shape = sh.as_shape(shape, "view")
    except TypeError:
        raise TypeError(f"view() received an invalid combination of arguments - got "
                        f"({', '.join(type(s).__name__ for s in shape)}), but expected one of:\n"
                        " * (torch.dtype dtype)\n * (tuple of ints size)") from None
    return v.view.call_on(self, shape)  # (a method: self is the call's one tensor)


@method
def view_as(self, other):
    return v.view(self, tuple(other.shape))


def reshape(input, shape):
    return v.reshape(input, sh.as_shape((shape,), "reshape"))


def _reshape_method(self, *shape, **kwargs):
    if kwargs:
        if "shape" in kwargs:
            shape = (kwargs.pop("shape"),)
        _no_other_kwargs("reshape", kwargs)
    if not shape:
        raise TypeError('reshape() missing 1 required positional arguments: "shape"')
    return v.reshape.call_on(self, sh.as_shape(shape, "reshape"))


method(_reshape_method, "reshape")


@method
def reshape_as(self, other):
    return v.reshape(self, tuple(other.shape))


def flatten(input, start_dim=0, end_dim=-1):
    return v.flatten(input, _int(start_dim), _int(end_dim))


def unflatten(input, dim, sizes):
    return v.unflatten(input, _int(dim), sh.as_shape((sizes,), "unflatten"))


def squeeze(input, dim=None):
    if dim is not None and not isinstance(dim, int):
        dim = _dims((dim,), "squeeze")
    return v.squeeze(input, dim)


def unsqueeze(input, dim):
    return v.unsqueeze(input, _int(dim))


# -- permuting ------------------------------------------------------------------------------------------------

def permute(input, dims):
    return v.permute(input, _dims((dims,), "permute"))


def _permute_method(self, *dims, **kwargs):
    if kwargs:
        if "dims" in kwargs:
            dims = (kwargs.pop("dims"),)
        _no_other_kwargs("permute", kwargs)
    if not dims:
        raise TypeError('permute() missing 1 required positional arguments: "dims"')
    return v.permute.call_on(self, _dims(dims, "permute"))


method(_permute_method, "permute")


def transpose(input, dim0, dim1):
    return v.transpose(input, _int(dim0), _int(dim1))


swapaxes = swapdims = transpose


def t(input):
    return v.t(input)


def movedim(input, source, destination):
    as_list = lambda d: (d,) if not isinstance(d, (tuple, list)) else d  # noqa: E731
    return v.movedim(input, _dims((as_list(source),), "movedim"), _dims((as_list(destination),), "movedim"))


moveaxis = movedim


def _conj(x):
    """Complex transposes conjugate; vibetensor has no lazy conjugate bit, so this is a copy."""
    if not x.dtype.is_complex:
        return x
    from vibetensor.dispatch import dispatcher
    try:
        conj = dispatcher.get("conj")
    except KeyError:
        raise NotImplementedError("conjugate transpose of a complex tensor needs the vt::conj op") from None
    return conj(x)


def adjoint(input):
    if input.ndim < 2:
        raise RuntimeError(f"tensor.adjoint() is only supported on matrices or batches of matrices. "
                           f"Got {input.ndim}-D tensor.")
    return _conj(v.transpose(input, -2, -1))


def _T(self):
    n = self.ndim
    if n not in (0, 2):
        warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their shape is deprecated "
                      "and it will throw an error in a future release. Consider `x.mT` to transpose batches of "
                      "matrices or `x.permute(*torch.arange(x.ndim - 1, -1, -1))` to reverse the dimensions of a "
                      "tensor.", UserWarning, stacklevel=2)
    elif n == 0:
        warnings.warn("Tensor.T is deprecated on 0-D tensors. This function is the identity in these cases.",
                      UserWarning, stacklevel=2)
    return v.permute(self, tuple(range(n - 1, -1, -1)))


def _mT(self):
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. Got {self.ndim}-D tensor.")
    return v.transpose(self, -2, -1)


def _H(self):
    if self.ndim != 2:
        hint = " For batches of matrices, consider using tensor.mH" if self.ndim > 2 else ""
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {self.ndim}-D tensor.{hint}")
    return _conj(v.transpose(self, 0, 1))


def _mH(self):
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. Got {self.ndim}-D tensor.")
    return _conj(v.transpose(self, -2, -1))


Tensor.T = property(_T)
Tensor.mT = property(_mT)
Tensor.H = property(_H)
Tensor.mH = property(_mH)


# -- broadcasting ----------------------------------------------------------------------------------------------

def _expand_method(self, *sizes, **kwargs):
    if kwargs:
        if "size" in kwargs:
            sizes = (kwargs.pop("size"),)
        _no_other_kwargs("expand", kwargs)
    if not sizes:
        raise TypeError('expand() missing 1 required positional arguments: "size"')
    return v.expand.call_on(self, sh.as_shape(sizes, "expand"))


method(_expand_method, "expand")


@method
def expand_as(self, other):
    return v.expand(self, tuple(other.shape))


def broadcast_to(input, size):
    return v.expand(input, sh.as_shape((size,), "broadcast_to"))


def broadcast_shapes(*shapes):
    return sh.Size(sh.broadcast_shapes(*((s,) if isinstance(s, int) else tuple(s) for s in shapes)))


def broadcast_tensors(*tensors):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    shape = sh.broadcast_shapes(*(t._shape for t in tensors))
    return tuple(v.expand(t, shape) for t in tensors)


# -- picking parts ---------------------------------------------------------------------------------------------

def narrow(input, dim, start, length):
    return v.narrow(input, _int(dim), _int(start), _int(length))


def select(input, dim, index):
    return v.select(input, _int(dim), _int(index))


def as_strided(input, size, stride, storage_offset=None):
    return v.as_strided(input, sh.as_shape((size,), "as_strided"), sh.as_shape((stride,), "as_strided"),
                        None if storage_offset is None else _int(storage_offset))


@method
def unfold(self, dimension, size, step):
    return v.unfold(self, _int(dimension), _int(size), _int(step))


def diagonal(input, offset=0, dim1=0, dim2=1):
    return v.diagonal(input, _int(offset), _int(dim1), _int(dim2))


def unsafe_split(tensor, split_size_or_sections, dim=0):
    """torch.unsafe_split: torch's split without its multi-output view checks. Ours returns split's
    views (same values and aliasing); only writing into them in place under autograd is refused."""
    return split(tensor, split_size_or_sections, dim)


def split(tensor, split_size_or_sections, dim=0):
    if isinstance(split_size_or_sections, (list, tuple)):
        return v.split_with_sizes(tensor, sh.as_shape((split_size_or_sections,), "split"), _int(dim))
    return v.split(tensor, _int(split_size_or_sections), _int(dim))


def split_with_sizes(input, split_sizes, dim=0):
    return v.split_with_sizes(input, sh.as_shape((split_sizes,), "split_with_sizes"), _int(dim))


def chunk(input, chunks, dim=0):
    if input.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    chunks = _int(chunks)
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = input.size(dim)
    split_size = (size + chunks - 1) // chunks
    if split_size == 0 and size == 0:  # keep the number of chunks: split() would give one piece
        return v.split_with_sizes(input, (0,) * chunks, _int(dim))
    return v.split(input, split_size, _int(dim))


def tensor_split(input, indices_or_sections, dim=0):
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    d = sh.wrap_dim(dim, input.ndim, "tensor_split")
    spec = indices_or_sections
    if isinstance(spec, Tensor):
        if spec.dtype is not dt.int64:
            raise RuntimeError(f"tensor_split expected tensor_indices_or_sections to have dtype of long, but got "
                               f"{TYPE_NAMES[spec.dtype]}")
        if spec.ndim > 1:
            raise RuntimeError(f"tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               f"one-dimensional tensor, but got a tensor with {spec.ndim} dims")
        spec = spec.item() if spec.ndim == 0 else spec.tolist()
    size = input.shape[d]
    if isinstance(spec, (list, tuple)):
        bounds = [0] + [_int(i) for i in spec] + [size]
    else:
        sections = _int(spec)
        if sections <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
        small, extra = divmod(size, sections)
        lengths = [small + 1 if i < extra else small for i in range(sections)]
        bounds = [sum(lengths[:i]) for i in range(sections + 1)]
    return tuple(v.slice_(input, d, bounds[i], bounds[i + 1], 1) for i in range(len(bounds) - 1))


def unbind(input, dim=0):
    return v.unbind(input, _int(dim))


# -- complex views ---------------------------------------------------------------------------------------------

def view_as_real(input):
    return v.view_as_real(input)


def view_as_complex(input):
    return v.view_as_complex(input)


def real(input):
    return v.select(v.view_as_real(input), -1, 0) if input.dtype.is_complex else input


def imag(input):
    if not input.dtype.is_complex:
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return v.select(v.view_as_real(input), -1, 1)


def _set_part(part):
    """x.real = y / x.imag = y copy y into that view of x."""
    def setter(self, value):
        from vibetensor.ops import creation
        creation.copy_(part(self), value)
    return setter


Tensor.real = property(real, _set_part(real))
Tensor.imag = property(imag, _set_part(imag))


# -- at least n dims ------------------------------------------------------------------------------------------

def _atleast(n, tensors):
    single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    out = tuple(_lift(t, n) for t in tensors)
    return out[0] if single else out


def _lift(t, n):
    if t.ndim >= n:
        return t
    if t.ndim == 0:
        return v.reshape(t, (1,) * n)
    if n == 2 or t.ndim == 2:  # (k,) -> (1, k); (a, b) -> (a, b, 1)
        return v.unsqueeze(t, 0) if n == 2 else v.unsqueeze(t, -1)
    return v.unsqueeze(v.unsqueeze(t, 0), -1)  # (k,) -> (1, k, 1)


def atleast_1d(*tensors):
    return _atleast(1, tensors)


def atleast_2d(*tensors):
    return _atleast(2, tensors)


def atleast_3d(*tensors):
    return _atleast(3, tensors)


# -- in-place geometry changes (x.t_(), x.squeeze_(), ...): the tensor itself takes the view's geometry --------

def _geometry_inplace(fn):
    def f_(self, *args, **kwargs):
        r = fn(self, *args, **kwargs)
        node = r.grad_fn  # set when autograd recorded the view: it becomes self's history
        if node is not None:
            view_history.check_inplace(self)
        set_geometry(self, r._shape, r._stride, r._offset)
        bump_version(self)
        if node is not None:
            view_history.rebase_inplace_view(self, node)
        return self
    f_.__name__ = fn.__name__.lstrip("_") + "_"
    return f_


for _fn, _name in ((squeeze, "squeeze_"), (unsqueeze, "unsqueeze_"), (transpose, "transpose_"), (t, "t_"),
                   (transpose, "swapaxes_"), (transpose, "swapdims_"), (as_strided, "as_strided_")):
    method(_geometry_inplace(_fn), _name)

# -- plain methods: the function with the tensor first --------------------------------------------------------
for _fn in (flatten, unflatten, squeeze, unsqueeze, transpose, t, movedim, adjoint, broadcast_to, narrow, select,
            as_strided, diagonal, split, split_with_sizes, chunk, tensor_split, unbind):
    method(_fn)
for _alias, _target in (("swapaxes", transpose), ("swapdims", transpose), ("moveaxis", movedim)):
    method(_target, _alias)


# -- the hottest methods: self is the call's one tensor, so the op's kernel is picked without a scan -----------

def _transpose_method(self, dim0, dim1):
    return v.transpose.call_on(self, _int(dim0), _int(dim1))


def _split_method(self, split_size_or_sections, dim=0):
    if isinstance(split_size_or_sections, (list, tuple)):
        return v.split_with_sizes.call_on(self, sh.as_shape((split_size_or_sections,), "split"), _int(dim))
    return v.split.call_on(self, _int(split_size_or_sections), _int(dim))


for _name in ("transpose", "swapaxes", "swapdims"):
    method(_transpose_method, _name)
method(_split_method, "split")


__all__ = ["unsafe_split", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "swapaxes", "swapdims",
           "t", "movedim", "moveaxis", "adjoint", "broadcast_to", "broadcast_shapes", "broadcast_tensors", "narrow",
           "select", "as_strided", "diagonal", "split", "split_with_sizes", "chunk", "tensor_split", "unbind",
           "view_as_real", "view_as_complex", "real", "imag", "atleast_1d", "atleast_2d", "atleast_3d", "index_put"]
