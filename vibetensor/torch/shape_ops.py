"""Front door: shape functions and methods that copy (torch.flip, roll, rot90, x.repeat, tile,
repeat_interleave, tril/triu, diag, diag_embed, diagflat, the *_scatter ops, the *_copy forms of the
views, fill/zero_, torch._chunk_cat).

Each function parses torch's signature and calls one op of vibetensor/ops/shape_ops.py; the *_copy
forms are the view (vibetensor/torch/views.py) followed by a contiguous copy, as torch defines them.
"""
import operator

from vibetensor.ops import creation
from vibetensor.ops import elementwise as ew
from vibetensor.ops import shape_ops as s
from vibetensor.ops import views as v
from vibetensor.ops.meta import output
from vibetensor.ops.reduction import check_out_dtype
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch import views as tv
from vibetensor.torch.pointwise import _exporter
from vibetensor.torch.tensor_methods import method

__all__ = []


_export = _exporter(globals())


def _tensor(x, op, arg="input", pos=1):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    return x


def _int(x, op, arg, pos):
    if isinstance(x, bool) or isinstance(x, Tensor) and x.ndim:
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be int, not {type(x).__name__}")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be int, not {type(x).__name__}") from None


def _ints(x, op, arg, pos, single_ok=True):
    """A tuple of ints from an int (when torch's int[1] accepts one) or a sequence."""
    if single_ok and (isinstance(x, int) and not isinstance(x, bool)):
        return (x,)
    if isinstance(x, Tensor) or not isinstance(x, (list, tuple)):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be tuple of ints, not {type(x).__name__}")
    return tuple(_int(i, op, arg, pos) for i in x)


def _both(fn, name=None):
    name = name or fn.__name__
    _export(fn, name)
    method(fn, name)
    return fn


# -- flips, rolls, rotations --------------------------------------------------------------------------------

def flip(input, dims):
    return s.flip(_tensor(input, "flip"), _ints(dims, "flip", "dims", 2, single_ok=False))


def _flip_method(self, *dims):
    return s.flip(self, sh.as_shape(dims, "flip"))


def fliplr(input):
    if _tensor(input, "fliplr").ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return s.flip(input, (1,))


def flipud(input):
    if _tensor(input, "flipud").ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return s.flip(input, (0,))


def roll(input, shifts, dims=None):
    dims = () if dims is None else _ints(dims, "roll", "dims", 3)
    return s.roll(_tensor(input, "roll"), _ints(shifts, "roll", "shifts", 2), dims)


def rot90(input, k=1, dims=(0, 1)):
    return s.rot90(_tensor(input, "rot90"), _int(k, "rot90", "k", 2), _ints(dims, "rot90", "dims", 3, False))


# -- repeats ------------------------------------------------------------------------------------------------------

def _repeat_method(self, *sizes):
    return s.repeat(self, sh.as_shape(sizes, "repeat"))


def tile(input, dims):
    return s.tile(_tensor(input, "tile"), _ints(dims, "tile", "dims", 2))


def _tile_method(self, *dims):
    return s.tile(self, sh.as_shape(dims, "tile"))


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """repeat_interleave(repeats_tensor) -> indices; repeat_interleave(input, repeats, dim) -> input's
    slices along dim (the flattened input without dim) each repeated."""
    _tensor(input, "repeat_interleave", "repeats" if repeats is None else "input")
    if output_size is not None:
        output_size = _int(output_size, "repeat_interleave", "output_size", 4)
    if repeats is None:
        return s.repeat_interleave(input, output_size)
    if not isinstance(repeats, Tensor):
        repeats = _int(repeats, "repeat_interleave", "repeats", 2)
    dim = None if dim is None else _int(dim, "repeat_interleave", "dim", 3)
    return s.repeat_interleave_self(input, repeats, dim, output_size)


# -- triangles and diagonals ----------------------------------------------------------------------------------

def tril(input, diagonal=0, *, out=None):
    return s.tril(_tensor(input, "tril"), _int(diagonal, "tril", "diagonal", 2), out=out)


def triu(input, diagonal=0, *, out=None):
    return s.triu(_tensor(input, "triu"), _int(diagonal, "triu", "diagonal", 2), out=out)


def _tril_(self, diagonal=0):
    return s.tril(self, _int(diagonal, "tril_", "diagonal", 1), out=self)


def _triu_(self, diagonal=0):
    return s.triu(self, _int(diagonal, "triu_", "diagonal", 1), out=self)


def diag(input, diagonal=0, *, out=None):
    result = s.diag(_tensor(input, "diag"), _int(diagonal, "diag", "diagonal", 2))
    return result if out is None else _into(out, result, "diag")


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    return s.diag_embed(_tensor(input, "diag_embed"), _int(offset, "diag_embed", "offset", 2),
                        _int(dim1, "diag_embed", "dim1", 3), _int(dim2, "diag_embed", "dim2", 4))


def diagflat(input, offset=0):
    return s.diagflat(_tensor(input, "diagflat"), _int(offset, "diagflat", "offset", 2))


# -- *_scatter -----------------------------------------------------------------------------------------------------

def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    return s.diagonal_scatter(_tensor(input, "diagonal_scatter"), _tensor(src, "diagonal_scatter", "src", 2),
                              _int(offset, "diagonal_scatter", "offset", 3), _int(dim1, "diagonal_scatter", "dim1", 4),
                              _int(dim2, "diagonal_scatter", "dim2", 5))


def select_scatter(input, src, dim, index):
    return s.select_scatter(_tensor(input, "select_scatter"), _tensor(src, "select_scatter", "src", 2),
                            _int(dim, "select_scatter", "dim", 3), _int(index, "select_scatter", "index", 4))


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    op = "slice_scatter"
    start = None if start is None else _int(start, op, "start", 4)
    end = None if end is None else _int(end, op, "end", 5)
    return s.slice_scatter(_tensor(input, op), _tensor(src, op, "src", 2), _int(dim, op, "dim", 3), start, end,
                           _int(step, op, "step", 6))


def as_strided_scatter(input, src, size, stride, storage_offset=None):
    op = "as_strided_scatter"
    if storage_offset is not None:
        storage_offset = _int(storage_offset, op, "storage_offset", 5)
    return s.as_strided_scatter(_tensor(input, op), _tensor(src, op, "src", 2), _ints(size, op, "size", 3, False),
                                _ints(stride, op, "stride", 4, False), storage_offset)


# -- fill / zero_ --------------------------------------------------------------------------------------------------

def _fill_value(value):
    return value if isinstance(value, Tensor) else ew.check_number("fill", value, "value", 2)


def fill(input, value):
    return s.fill(_tensor(input, "fill"), _fill_value(value))


def fill_(input, value):
    return s.fill(_tensor(input, "fill_"), _fill_value(value), out=input)


def zero_(input):
    return s.fill(_tensor(input, "zero_"), 0, out=input)


# -- the *_copy forms: the view, then a contiguous copy (out= copies into out, resized as torch does) --------------

def _into(out, value, op):
    """out= of a composite: check out's dtype and device, resize it, copy the values in."""
    check_out_dtype(out, value._dtype)
    res = output(op, out, value._shape, value._dtype, value._device)
    return creation.copy_(res, value)


def _copy_form(view_fn, name):
    def fn(input, *args, out=None, **kwargs):
        result = s.contiguous_copy(view_fn(_tensor(input, name), *args, **kwargs))
        return result if out is None else _into(out, result, name)
    fn.__name__ = fn.__qualname__ = name
    return _export(fn, name)


def _copies_form(view_fn, name):
    """unbind_copy / split_with_sizes_copy: a tuple of copies, or copies into the tensors of out=."""
    def fn(input, *args, out=None, **kwargs):
        results = tuple(s.contiguous_copy(p) for p in view_fn(_tensor(input, name), *args, **kwargs))
        if out is None:
            return results
        if isinstance(out, Tensor) or not isinstance(out, (list, tuple)) or len(out) != len(results):
            raise RuntimeError(f"{name}(): expected out= to be a list of {len(results)} tensors")
        for o, r in zip(out, results):
            _into(o, r, name)
        return None
    fn.__name__ = fn.__qualname__ = name
    return _export(fn, name)


def _expand(input, size, *, implicit=False):
    return tv.broadcast_to(input, size)


def _squeeze(input, dim=None):
    return tv.squeeze(input, dim)


def _view(input, size):
    if isinstance(size, dt.dtype):
        return input.view(size)
    return input.view(_ints(size, "view_copy", "size", 2))


def _unfold(input, dimension, size, step):
    return input.unfold(dimension, size, step)


for _view_fn, _name in ((v.alias, "alias_copy"),
                        (_expand, "expand_copy"), (tv.permute, "permute_copy"), (tv.t, "t_copy"),
                        (tv.transpose, "transpose_copy"), (_squeeze, "squeeze_copy"), (tv.unsqueeze, "unsqueeze_copy"),
                        (_view, "view_copy"), (_unfold, "unfold_copy"), (tv.diagonal, "diagonal_copy"),
                        (tv.as_strided, "as_strided_copy"), (tv.narrow, "narrow_copy")):
    _copy_form(_view_fn, _name)
_copies_form(tv.unbind, "unbind_copy")
_copies_form(tv.split_with_sizes, "split_with_sizes_copy")


def _chunk_cat(tensors, dim, num_chunks, *, out=None):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"_chunk_cat(): argument 'tensors' (position 1) must be tuple of Tensors, not "
                        f"{type(tensors).__name__}")
    tensors = [_tensor(t, "_chunk_cat", "tensors", 1) for t in tensors]
    return s.chunk_cat(tensors, _int(dim, "_chunk_cat", "dim", 2), _int(num_chunks, "_chunk_cat", "num_chunks", 3),
                       out=out)


def _repeat_interleave_method(self, repeats, dim=None, *, output_size=None):
    return repeat_interleave(self, repeats, dim, output_size=output_size)


for _fn in (flip, fliplr, flipud, roll, rot90, tile, tril, triu, diag, diag_embed, diagflat,
            diagonal_scatter, select_scatter, slice_scatter, as_strided_scatter, fill_, zero_):
    _both(_fn)
for _fn in (fill, _chunk_cat, repeat_interleave):
    _export(_fn)
method(_flip_method, "flip")
method(_repeat_method, "repeat")
method(_tile_method, "tile")
method(_repeat_interleave_method, "repeat_interleave")
method(_tril_, "tril_")
method(_triu_, "triu_")
