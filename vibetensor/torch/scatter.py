"""Front door: scatter/gather functions and methods (torch.gather, x.scatter_, x.index_add_,
x.masked_fill, torch.take, x.nonzero, ...), and the private segment_reduce / _unsafe_masked_index ops.

Each function parses torch's signature and calls one op of vibetensor/ops/scatter.py; the in-place
method x.f_(...) is the same op with out=x.
"""
import operator

from vibetensor.ops import elementwise as ew
from vibetensor.ops import reduction as r
from vibetensor.ops import scatter as s
from vibetensor.ops import views as v
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.pointwise import _exporter
from vibetensor.torch.tensor_methods import method

__all__ = []


_export = _exporter(globals())


def _int(x, op, arg, pos):
    if isinstance(x, bool):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be int, not bool")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be int, not {type(x).__name__}") from None


def _tensor(x, op, arg, pos):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    return x


def _value(x, op, arg, pos):
    """A Python number, or a tensor (torch's Tensor overloads of the value/src arguments)."""
    return x if isinstance(x, Tensor) else ew.check_number(op, x, arg, pos)


def _both(fn, name=None, inplace=True):
    """Export torch.<name>, install x.<name>() and (if torch has it) x.<name>_() = the op with out=x."""
    name = name or fn.__name__
    _export(fn, name)
    method(fn, name)
    if inplace:
        def f_(self, *args, **kwargs):
            return fn(self, *args, _out=self, **kwargs)
        f_.__name__ = name + "_"
        method(f_, name + "_")
    return fn


# -- gather / scatter ---------------------------------------------------------------------------------------

def gather(input, dim, index, *, sparse_grad=False, out=None):
    return s.gather(_tensor(input, "gather", "input", 1), _int(dim, "gather", "dim", 2),
                    _tensor(index, "gather", "index", 3), bool(sparse_grad), out=out)


def scatter(input, dim, index, src=None, *, value=None, reduce=None, out=None, _out=None):
    """scatter(input, dim, index, src) or scatter(input, dim, index, value) (a number), reduce='add'|'multiply'."""
    _tensor(input, "scatter", "input", 1)
    if (src is None) == (value is None):
        raise TypeError("scatter() received an invalid combination of arguments: give exactly one of src and value")
    src = src if src is not None else value
    src = src if isinstance(src, Tensor) else ew.check_number("scatter", src, "value", 4)
    if reduce is not None and not isinstance(reduce, str):
        raise TypeError(f"scatter(): argument 'reduce' must be str, not {type(reduce).__name__}")
    return s.scatter(input, _int(dim, "scatter", "dim", 2), _tensor(index, "scatter", "index", 3), src, reduce,
                     out=_out if _out is not None else out)


def scatter_add(input, dim, index, src, *, out=None, _out=None):
    return s.scatter_add(_tensor(input, "scatter_add", "input", 1), _int(dim, "scatter_add", "dim", 2),
                         _tensor(index, "scatter_add", "index", 3), _tensor(src, "scatter_add", "src", 4),
                         out=_out if _out is not None else out)


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True, out=None, _out=None):
    if not isinstance(reduce, str):
        raise TypeError(f"scatter_reduce(): argument 'reduce' (position 5) must be str, not {type(reduce).__name__}")
    reduce = {"max": "amax", "min": "amin"}.get(reduce, reduce)  # torch takes both names
    return s.scatter_reduce(_tensor(input, "scatter_reduce", "input", 1), _int(dim, "scatter_reduce", "dim", 2),
                            _tensor(index, "scatter_reduce", "index", 3), _tensor(src, "scatter_reduce", "src", 4),
                            reduce, bool(include_self), out=_out if _out is not None else out)


# -- index_* ------------------------------------------------------------------------------------------------------

def index_select(input, dim, index, *, out=None):
    return s.index_select(_tensor(input, "index_select", "input", 1), _int(dim, "index_select", "dim", 2),
                          _tensor(index, "index_select", "index", 3), out=out)


def index_add(input, dim, index, source, *, alpha=1, out=None, _out=None):
    alpha = ew.check_number("index_add", alpha, "alpha", 5)
    return s.index_add(_tensor(input, "index_add", "input", 1), _int(dim, "index_add", "dim", 2),
                       _tensor(index, "index_add", "index", 3), _tensor(source, "index_add", "source", 4), alpha,
                       out=_out if _out is not None else out)


def index_copy(input, dim, index, source, *, out=None, _out=None):
    return s.index_copy(_tensor(input, "index_copy", "input", 1), _int(dim, "index_copy", "dim", 2),
                        _tensor(index, "index_copy", "index", 3), _tensor(source, "index_copy", "source", 4),
                        out=_out if _out is not None else out)


def index_fill(input, dim, index, value, *, _out=None):
    return s.index_fill(_tensor(input, "index_fill", "input", 1), _int(dim, "index_fill", "dim", 2),
                        _tensor(index, "index_fill", "index", 3), _value(value, "index_fill", "value", 4), out=_out)


def index_reduce(input, dim, index, source, reduce, *, include_self=True, out=None, _out=None):
    if not isinstance(reduce, str):
        raise TypeError(f"index_reduce(): argument 'reduce' (position 5) must be str, not {type(reduce).__name__}")
    return s.index_reduce(_tensor(input, "index_reduce", "input", 1), _int(dim, "index_reduce", "dim", 2),
                          _tensor(index, "index_reduce", "index", 3), _tensor(source, "index_reduce", "source", 4),
                          reduce, bool(include_self), out=_out if _out is not None else out)


# -- masks -----------------------------------------------------------------------------------------------------

def masked_fill(input, mask, value, *, _out=None):
    return s.masked_fill(_tensor(input, "masked_fill", "input", 1), _tensor(mask, "masked_fill", "mask", 2),
                         _value(value, "masked_fill", "value", 3), out=_out)


def masked_scatter(input, mask, source, *, _out=None):
    return s.masked_scatter(_tensor(input, "masked_scatter", "input", 1), _tensor(mask, "masked_scatter", "mask", 2),
                            _tensor(source, "masked_scatter", "source", 3), out=_out)


def masked_select(input, mask, *, out=None):
    return s.masked_select(_tensor(input, "masked_select", "input", 1), _tensor(mask, "masked_select", "mask", 2),
                           out=out)


# -- take / put / nonzero ----------------------------------------------------------------------------------------

def take(input, index, *, out=None):
    return s.take(_tensor(input, "take", "input", 1), _tensor(index, "take", "index", 2), out=out)


def put(input, index, source, accumulate=False, *, _out=None):
    return s.put(_tensor(input, "put", "input", 1), _tensor(index, "put", "index", 2),
                 _tensor(source, "put", "source", 3), bool(accumulate), out=_out)


def nonzero(input, *, out=None, as_tuple=False):
    """(n, ndim) int64 coordinates; as_tuple: one 1-D tensor of coordinates per dim (0-d counts as 1-d)."""
    _tensor(input, "nonzero", "input", 1)
    if not as_tuple:
        return s.nonzero(input, out=out)
    if out is not None:
        raise TypeError("nonzero(): as_tuple=True does not take out=")
    coords = s.nonzero(v.reshape(input, (1,)) if input.ndim == 0 else input)
    return v.unbind(coords, 1)


def nonzero_static(input, *, size, fill_value=-1, out=None):
    """nonzero() cut or padded (with rows of fill_value) to exactly `size` rows."""
    from vibetensor.ops import creation, joining
    _tensor(input, "nonzero_static", "input", 1)
    size = _int(size, "nonzero_static", "size", 2)
    if size < 0:
        raise RuntimeError("nonzero_static: 'size' must be an non-negative integer")
    coords = s.nonzero(input)
    n, nd = coords.shape
    if n >= size:
        result = creation.contiguous(v.narrow(coords, 0, 0, size))
    else:
        pad = creation.full((size - n, nd), _int(fill_value, "nonzero_static", "fill_value", 3), coords.dtype,
                            device=coords.device)
        result = joining.cat([coords, pad], 0)
    if out is None:
        return result
    from vibetensor.torch.shape_ops import _into
    return _into(out, result, "nonzero_static")


def argwhere(input):
    return s.nonzero(_tensor(input, "argwhere", "input", 1))


for _fn in (gather, index_select, masked_select, take, nonzero, nonzero_static, argwhere):
    _both(_fn, inplace=False)
for _fn in (scatter, scatter_add, scatter_reduce, index_add, index_copy, index_fill, index_reduce, masked_fill,
            masked_scatter, put):
    _both(_fn)


# -- the private ops BackendBench reaches through OpInfo --------------------------------------------------------

def segment_reduce(data, reduce, *, lengths=None, indices=None, offsets=None, axis=0, unsafe=False, initial=None):
    _tensor(data, "segment_reduce", "data", 1)
    if not isinstance(reduce, str):
        raise TypeError(f"segment_reduce(): argument 'reduce' (position 2) must be str, not {type(reduce).__name__}")
    if initial is not None:
        initial = ew.check_number("segment_reduce", initial, "initial", 8)
    return s.segment_reduce(data, reduce, lengths, indices, offsets, _int(axis, "segment_reduce", "axis", 6),
                            bool(unsafe), initial)


def _index_list(indices, op):
    if isinstance(indices, Tensor) or not isinstance(indices, (list, tuple)):
        raise TypeError(f"{op}(): argument 'indices' (position 3) must be tuple of Tensors, not "
                        f"{type(indices).__name__}")
    for k, i in enumerate(indices):  # torch's binding refuses None here, though the schema allows it
        if not isinstance(i, Tensor):
            raise TypeError(f"expected Tensor as element {k} in argument 2, but got {type(i).__name__}")
    return list(indices)


def _unsafe_masked_index(input, mask, indices, fill):
    op = "_unsafe_masked_index"
    return s.unsafe_masked_index(_tensor(input, op, "input", 1), _tensor(mask, op, "mask", 2),
                                 _index_list(indices, op), ew.check_number(op, fill, "fill", 4))


def _unsafe_masked_index_put_accumulate(input, mask, indices, values):
    op = "_unsafe_masked_index_put_accumulate"
    return s.unsafe_masked_index_put_accumulate(_tensor(input, op, "input", 1), _tensor(mask, op, "mask", 2),
                                                _index_list(indices, op), _tensor(values, op, "values", 4))


def hash_tensor(input, dim=(), *, keepdim=False, mode=0, out=None):
    """The xor of the elements' 64-bit patterns (floats as float64, integers as int64) over dim, as uint64."""
    _tensor(input, "hash_tensor", "input", 1)
    if isinstance(dim, list):
        dim = tuple(dim)
    if not (dim is None or isinstance(dim, int) and not isinstance(dim, bool) or
            isinstance(dim, tuple) and all(isinstance(d, int) for d in dim)):
        raise TypeError(f"hash_tensor(): argument 'dim' (position 2) must be tuple of ints, not {type(dim).__name__}")
    return r.hash_tensor(input, dim, keepdim, mode, out=out)


for _fn in (segment_reduce, _unsafe_masked_index, _unsafe_masked_index_put_accumulate, hash_tensor):
    _export(_fn)
_segment_reduce = segment_reduce
__all__.append("_segment_reduce")
method(hash_tensor, "hash_tensor")
