"""Scatter/gather operators: values moved by index tensors, and by masks.

    gather(self, dim, index)                         out[i][j] = self[index[i][j]][j]     (dim 0)
    scatter(self, dim, index, src, reduce=None)      out[index[i][j]][j] = src[i][j]      (src: tensor or number)
    scatter_add(self, dim, index, src)               out[index[i][j]][j] += src[i][j]
    scatter_reduce(self, dim, index, src, reduce, include_self=True)    sum|prod|mean|amax|amin
    index_select(self, dim, index)                   whole slices along dim, by a vector of indices
    index_add(self, dim, index, source, alpha=1) / index_copy(self, dim, index, source)
    index_fill(self, dim, index, value) / index_reduce(self, dim, index, source, reduce, include_self=True)
    masked_fill(self, mask, value) / masked_scatter(self, mask, source) / masked_select(self, mask)
    take(self, index) / put(self, index, source, accumulate=False)      on the flattened tensor
    nonzero(self)                                    (n, ndim) coordinates of the nonzero elements
    segment_reduce(data, reduce, lengths|offsets, axis, unsafe, initial)   reductions over runs along axis
    _unsafe_masked_index / _unsafe_masked_index_put_accumulate            (composites, for compilers' graphs)

Every writing op takes out=; the in-place form is the op called with out=self. Checks that need no
data (dtypes, shapes, dims) live here as torch orders and words them; checks that read index values
(bounds) are the kernels' part and happen before anything is written, so a failed op leaves its
inputs unchanged. The derivatives, written with these ops, are at the end.
"""
import warnings

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.ops.reduction import CPP_NAMES, check_out_dtype
from vibetensor.ops.views import _fmt
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

NAMES = m.TYPE_NAMES
LONG_OR_INT = (dt.int64, dt.int32)
SCATTER_REDUCES = ("sum", "prod", "mean", "amax", "amin")
INDEX_REDUCES = ("prod", "mean", "amax", "amin")
LEGACY_REDUCES = {"add": "sum", "multiply": "prod"}  # scatter(..., reduce=) names -> scatter_reduce names


def nd(t):
    """torch's ensure_nonempty_dim: a 0-d tensor counts as 1-d."""
    return max(t.ndim, 1)


def size(t, d):
    """torch's ensure_nonempty_size."""
    return t._shape[d] if t.ndim else 1


def result(op, out, shape, dtype, device, self=None):
    """The tensor an op writes: a new one, self (in place), or out= (its dtype must be exact, as torch)."""
    if out is not None and out is not self:
        check_out_dtype(out, dtype)
    if out is not None and out is self:
        from vibetensor.ops.indexing import assert_no_internal_overlap, has_internal_overlap
        if op == "masked_fill" and has_internal_overlap(self):  # torch only warns here
            warnings.warn("Use of masked_fill_ on expanded tensors is deprecated. Please clone() the tensor before "
                          "performing this operation. This also applies to advanced indexing e.g. tensor[mask] = "
                          "scalar", UserWarning, stacklevel=5)
        else:
            assert_no_internal_overlap(self)
    return m.output(op, out, shape, dtype, device, inplace=out is not None and out is self)


def scalar_for(value, dtype):
    """A fill value (Python number or 0-d tensor) as torch's Scalar.to<dtype>(): overflow is an
    error, complex to real keeps the real part, and to bool means nonzero (2j is True)."""
    from vibetensor.ops import creation
    if isinstance(value, Tensor):
        value = value.item()
    if dtype is dt.bool_:
        return bool(value)
    return creation.scalar_to(value, dtype)


def _tensor(op, x, arg, pos):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    return x


# -- gather / scatter ---------------------------------------------------------------------------------------

def gather_meta(self, dim, index):
    """The wrapped dim; index must have self's rank and fit inside self apart from dim."""
    _tensor("gather", index, "index", 3)
    dim = sh.wrap_dim(dim, self.ndim)
    if index.numel() == 0:  # torch checks nothing more: the result is empty whatever index is
        return dim
    if index._dtype not in LONG_OR_INT:
        raise RuntimeError("gather(): Expected dtype int32/int64 for index")
    if nd(index) != nd(self):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for d in range(nd(self)):
        if d != dim and size(index, d) > size(self, d):
            raise RuntimeError(f"Size does not match at dimension {d} expected index {_fmt(index._shape)} to be no "
                               f"larger than self {_fmt(self._shape)} apart from dimension {dim}")
    return dim


def scatter_meta(self, dim, index, src, reduce=None, reduces=None):
    """The wrapped dim of scatter/scatter_add/scatter_reduce (src a tensor, or a number for scatter)."""
    _tensor("scatter", index, "index", 3)
    if reduces is not None and reduce not in reduces:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    dim = sh.wrap_dim(dim, self.ndim)
    empty = index.numel() == 0  # an empty index writes nothing: torch skips the index checks
    if not empty and index._dtype not in LONG_OR_INT:
        raise RuntimeError("scatter(): Expected dtype int32/int64 for index")
    has_src = isinstance(src, Tensor)
    if has_src and src._dtype is not self._dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    if empty:
        return dim
    if has_src and index.ndim != src.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    if nd(index) != nd(self):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    wrong = any(d != dim and size(index, d) > size(self, d) for d in range(nd(self)))
    if has_src:
        wrong = wrong or any(size(index, d) > size(src, d) for d in range(nd(self)))
        if wrong:
            raise RuntimeError(f"Expected index {_fmt(index._shape)} to be no larger than self {_fmt(self._shape)} "
                               f"apart from dimension {dim} and to be no larger size than src {_fmt(src._shape)}")
    elif wrong:
        raise RuntimeError(f"Expected index {_fmt(index._shape)} to be no larger than self {_fmt(self._shape)} "
                           f"apart from dimension {dim}")
    return dim


def check_reduce_dtype(kernel, reduce, dtype):
    """The scatter_reduce kernels torch has no instance of: mean of bools, amax/amin of complex."""
    if (reduce == "mean" and dtype is dt.bool_) or (reduce in ("amax", "amin") and dtype.is_complex):
        raise NotImplementedError(f'"{kernel}_{reduce}" not implemented for \'{NAMES[dtype]}\'')


# -- index_select / index_add / index_copy / index_fill / index_reduce --------------------------------------

def index_select_meta(self, dim, index):
    _tensor("index_select", index, "index", 3)
    dim = sh.wrap_dim(dim, self.ndim)
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index._dtype not in LONG_OR_INT:
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if self.ndim == 0:
        return dim, (() if index.numel() == 1 else (index.numel(),))
    shape = list(self._shape)
    shape[dim] = index.numel()
    return dim, tuple(shape)


def index_func_meta(func, self, dim, index, source):
    """torch's index_func_meta_impl (index_add, index_reduce): returns the wrapped dim."""
    _tensor(func, index, "index", 3)
    _tensor(func, source, "source", 4)
    dim = sh.wrap_dim(dim, self.ndim)
    if index.ndim > 1:
        raise IndexError(f"{func}_(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
                         f"{NAMES[index._dtype]} and size: {_fmt(index._shape)}")
    if index._dtype not in LONG_OR_INT:
        raise RuntimeError(f"{func}_(): Expected dtype int32/int64 for index but got: {NAMES[index._dtype]}")
    if self._dtype is not source._dtype:
        raise RuntimeError(f"{func}_(): self ({NAMES[self._dtype]}) and source ({NAMES[source._dtype]}) must have "
                           "the same scalar type")
    if not (dim == 0 or dim < source.ndim):
        raise IndexError(f"{func}_(): Indexing dim {dim} is out of bounds of the source tensor with dim "
                         f"{source.ndim}")
    n = size(source, dim) if source.ndim else 1
    if index.numel() != n:
        raise RuntimeError(f"{func}_(): Number of indices ({index.numel()}) should be equal to source.size(dim): "
                           f"({size(source, dim)}), for dim: {dim}")
    self_rest, source_rest = list(self._shape), list(source._shape)
    if self.ndim and source.ndim:
        del self_rest[dim], source_rest[dim]
    if self_rest != source_rest:
        raise RuntimeError("source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = {_fmt(self._shape)} source.shape = {_fmt(source._shape)}")
    return dim


def index_copy_meta(self, dim, index, source):
    _tensor("index_copy", index, "index", 3)
    _tensor("index_copy", source, "source", 4)
    dim = sh.wrap_dim(dim, self.ndim)
    if index.ndim >= 2:
        raise IndexError(f"index_copy_(): Index should have dimension 1 or 0 (got {index.ndim})")
    n = index.numel()
    if source.ndim == 0 and n != 1:
        raise IndexError(f"index_copy_(): When source is scalar, index should have one element (got {n})")
    if source.ndim != self.ndim and source.ndim and self.ndim:
        raise IndexError("index_copy_(): When source and destination are not scalars, their dimensionality must "
                         f"match. Source dimensionality ({source.ndim}), destination dimensionality ({self.ndim})")
    if index._dtype is not dt.int64:
        raise RuntimeError(f"index_copy_(): Expected a long tensor for index, but got {NAMES[index._dtype]}")
    if self._dtype is not source._dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{NAMES[self._dtype]} and (source) {NAMES[source._dtype]}")
    self_rest, source_rest = list(self._shape), list(source._shape)
    if self_rest:
        del self_rest[dim]
    if source_rest:
        del source_rest[dim]
    if self_rest != source_rest:
        raise RuntimeError("index_copy_(): Source/destination tensor must have same slice shapes. Destination slice "
                           f"shape: {' '.join(map(str, self_rest))} at dimension {dim} and source slice shape: "
                           f"{' '.join(map(str, source_rest))} at dimension 0.")
    if source.ndim and n != source._shape[dim]:
        raise IndexError(f"index_copy_(): Number of indices ({n}) should be equal to source.size(dim) "
                         f"({source._shape[dim]})")
    return dim


def index_fill_meta(self, dim, index, value):
    _tensor("index_fill", index, "index", 3)
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.ndim} dimension(s).")
    if index._dtype is not dt.int64:
        raise IndexError("index_fill_(): Expected dtype int64 for index.")
    if isinstance(value, complex) and not self._dtype.is_complex:
        raise RuntimeError("index_fill_(): Converting complex Scalar to non-complex type is not supported")
    dim = sh.wrap_dim(dim, self.ndim)
    if index.ndim > 1:
        raise RuntimeError("Index has to be a vector/scalar")
    return dim


def index_reduce_meta(self, dim, index, source, reduce, include_self=True):
    if reduce not in INDEX_REDUCES:
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got {reduce}.")
    dim = index_func_meta("index_reduce", self, dim, index, source)
    d = self._dtype
    if (d is dt.bool_ or d.is_complex) and not include_self:
        raise NotImplementedError(f'"index_reduce_func_exclude_input_init" not implemented for \'{NAMES[d]}\'')
    if d is dt.bool_ and reduce == "mean":
        raise NotImplementedError('"div_floor_cpu" not implemented for \'Bool\'')
    if d.is_complex and reduce in ("amax", "amin"):
        kernel = "maximum_cpu" if reduce == "amax" else "minimum_cpu"
        raise NotImplementedError(f'"{kernel}" not implemented for \'{NAMES[d]}\'')
    return dim


# -- masks -------------------------------------------------------------------------------------------------

def check_mask(op, mask, names=CPP_NAMES):
    _tensor(op, mask, "mask", 2)
    if mask._dtype is not dt.bool_:
        raise RuntimeError(f"{op} only supports boolean masks, but got mask with dtype {names[mask._dtype]}")


def masked_fill_meta(self, mask, value):
    """The result shape: self and mask broadcast (in place, it must be self's shape)."""
    check_mask("masked_fill_", mask)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
    return sh.broadcast_shapes(mask._shape, self._shape)


def masked_scatter_meta(self, mask, source):
    if isinstance(mask, Tensor) and mask._dtype is dt.uint8:
        warnings.warn("masked_scatter_ received a mask with dtype torch.uint8, this behavior is now deprecated,"
                      "please use a mask with dtype torch.bool instead.", UserWarning, stacklevel=4)
    check_mask("masked_scatter_", mask, NAMES)
    _tensor("masked_scatter", source, "source", 3)
    if self._dtype is not source._dtype:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but got"
                           f"{NAMES[self._dtype]} and {NAMES[source._dtype]}")
    return sh.broadcast_shapes(mask._shape, self._shape)


def masked_select_meta(self, mask):
    _tensor("masked_select", mask, "mask", 2)
    if mask._dtype is not dt.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    return sh.broadcast_shapes(mask._shape, self._shape)


# -- take / put ------------------------------------------------------------------------------------------------

def take_meta(self, index):
    _tensor("take", index, "index", 2)
    if index._dtype is not dt.int64:
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {NAMES[index._dtype]}")


def put_meta(self, index, source):
    _tensor("put", index, "index", 2)
    _tensor("put", source, "source", 3)
    if index._dtype is not dt.int64:
        raise RuntimeError(f"put_(): Expected a long tensor for index, but got {NAMES[index._dtype]}")
    if self._dtype is not source._dtype:
        raise RuntimeError(f"put_(): self and source expected to have the same dtype, but got self.dtype = "
                           f"{NAMES[self._dtype]} and source.dtype = {NAMES[source._dtype]}")
    if source.numel() != index.numel():
        raise IndexError(f"put_(): Expected source and index to have the same number of elements, but got "
                         f"source.numel() = {source.numel()}, index.numel() = {index.numel()}")


# (signatures: see the module docstring; every writing op also takes out=)
gather = declare("gather", meta=gather_meta, family="scatter")
scatter = declare("scatter", meta=scatter_meta, family="scatter")
scatter_add = declare("scatter_add", meta=scatter_meta, family="scatter")
scatter_reduce = declare("scatter_reduce", meta=scatter_meta, family="scatter")
index_select = declare("index_select", meta=index_select_meta, family="scatter")
index_add = declare("index_add", meta=index_func_meta, family="scatter")
index_copy = declare("index_copy", meta=index_copy_meta, family="scatter")
index_fill = declare("index_fill", meta=index_fill_meta, family="scatter")
index_reduce = declare("index_reduce", meta=index_reduce_meta, family="scatter")
masked_fill = declare("masked_fill", meta=masked_fill_meta, family="scatter")
masked_scatter = declare("masked_scatter", meta=masked_scatter_meta, family="scatter")
masked_select = declare("masked_select", meta=masked_select_meta, family="scatter")
take = declare("take", meta=take_meta, family="scatter")
put = declare("put", meta=put_meta, family="scatter")
nonzero = declare("nonzero", family="scatter")


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's derivatives.yaml / FunctionsManual formulas, written with vibetensor ops so they can be
# differentiated again. Index and mask arguments are never differentiated.
from vibetensor.autograd.derivatives import derivative as _derivative  # noqa: E402
from vibetensor.autograd.derivatives import nondifferentiable as _nondifferentiable  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


def _is_tensor(x):
    """A tensor argument as the formula sees it: a saved Tensor or a TensorMeta (numbers are neither)."""
    return hasattr(x, "_shape")


def _ops():
    """The elementwise/reduction/view ops the formulas use (imported on first backward)."""
    from vibetensor.ops import elementwise, joining, reduction, views
    return elementwise, reduction, views, joining


def _sum_all(t):
    _, r, _, _ = _ops()
    return r.sum(t, None, False, None)


def _full(shape, value, like, dtype=None):
    """A tensor of `value` on like's device, in like's dtype unless given."""
    from vibetensor.ops import creation
    return creation.full(tuple(shape), value, dtype or like._dtype, device=like._device)


def _zeros(shape, like):
    return _full(shape, 0, like)


def _pad_to(g, shape):
    """g (index-shaped) placed at the start of a zero tensor of `shape` (a src larger than its index)."""
    if tuple(g._shape) == tuple(shape):
        return g
    from vibetensor.ops import shape_ops
    out = _zeros(shape, g)
    return shape_ops.as_strided_scatter(out, g, tuple(g._shape), out.stride(), 0)


@_derivative(gather, save=(2,))
def _gather_backward(ctx, grad, self, dim, index, sparse_grad=False):
    return scatter_add(_zeros(self._shape, grad), dim, index, grad)


@_derivative(scatter, save=(2,), name=lambda self, dim, index, src, reduce=None:
             "ScatterBackward0" if isinstance(src, Tensor) else "ScatterBackward1")
def _scatter_backward(ctx, grad, self, dim, index, src, reduce=None):
    if reduce is not None:
        raise NotImplementedError("the derivative for 'scatter' with reduce= is not implemented.")
    g_self = scatter(grad, dim, index, 0) if _needs(ctx, 0) else None
    g_src = _pad_to(gather(grad, dim, index), src._shape) if _is_tensor(src) and _needs(ctx, 3) else None
    return g_self, None, None, g_src


@_derivative(scatter_add, save=(2,))
def _scatter_add_backward(ctx, grad, self, dim, index, src):
    return grad, None, None, (_pad_to(gather(grad, dim, index), src._shape) if _needs(ctx, 3) else None)


def _scatter_reduce_saves(self, dim, index, src, reduce, include_self=True):
    return (0, 2, 3, "result") if reduce in ("prod", "amax", "amin") else (2,)


@_derivative(scatter_reduce, save=_scatter_reduce_saves)
def _scatter_reduce_backward(ctx, grad, self, dim, index, src, reduce, include_self=True):
    ew, _, _, _ = _ops()
    if reduce == "sum":
        g_self, g_src = grad, gather(grad, dim, index)
    elif reduce == "mean":
        n = _full(grad._shape, 1 if include_self else 0, grad)
        n = scatter_add(n, dim, index, _full(index._shape, 1, grad))
        n = masked_fill(n, ew.eq(n, 0), 1)
        g_self = ew.div(grad, n)
        g_src = gather(g_self, dim, index)
    elif reduce == "prod":
        g_self, g_src = _scatter_prod_backward(grad, self, dim, index, src, include_self, ctx.result)
    else:
        value = gather(ctx.result, dim, index)
        self_is = ew.eq(self, ctx.result)
        src_is = ew.eq(src, value)
        count = scatter_add(_as(self_is, grad), dim, index, _as(src_is, grad))
        share = ew.div(grad, count)
        g_self = ew.mul(self_is, share)
        g_src = ew.mul(src_is, gather(share, dim, index))
    if not include_self:
        g_self = scatter(g_self, dim, index, 0)
    return g_self, None, None, _pad_to(g_src, src._shape)


def _as(t, like):
    from vibetensor.ops import creation
    return creation.to(t, like._dtype, like._device)


def _scatter_prod_backward(grad, self, dim, index, src, include_self, result):
    """torch's rule: zeros are handled apart (a product with one zero has a nonzero derivative there)."""
    ew, _, _, _ = _ops()
    masked_self = masked_fill(self, ew.eq(self, 0), 1)
    masked_self_result = scatter_reduce(masked_self, dim, index, src, "prod", include_self)
    g_self = ew.div(ew.mul(grad, masked_self_result), masked_self)
    src_zero = ew.eq(src, 0)
    zeros_in = gather(scatter_add(_zeros(self._shape, grad), dim, index, _as(src_zero, grad)), dim, index)
    single_zero = ew.logical_and(src_zero, ew.eq(zeros_in, 1))
    masked_src = masked_fill(src, single_zero, 1)
    masked_src_result = scatter_reduce(self, dim, index, masked_src, "prod", include_self)
    g_src_single = gather(ew.mul(grad, masked_src_result), dim, index)
    g_src_other = ew.div(gather(ew.mul(grad, result), dim, index), masked_fill(src, src_zero, 1))
    return g_self, ew.where(single_zero, g_src_single, g_src_other)


@_derivative(index_select, save=(2,))
def _index_select_backward(ctx, grad, self, dim, index):
    return index_add(_zeros(self._shape, grad), dim, index, grad)


@_derivative(index_add, save=(2,))
def _index_add_backward(ctx, grad, self, dim, index, source, alpha=1):
    ew, _, views, _ = _ops()
    g_source = None
    if _needs(ctx, 3):
        g_source = index_select(grad, dim, index)
        if alpha != 1:
            g_source = ew.mul(g_source, alpha)
        if source.ndim == 0 and g_source.ndim:
            g_source = views.reshape(g_source, ())
    return grad, None, None, g_source


@_derivative(index_copy, save=(2,))
def _index_copy_backward(ctx, grad, self, dim, index, source):
    _, _, views, _ = _ops()
    g_self = index_fill(grad, dim, index, 0) if _needs(ctx, 0) else None
    g_source = None
    if _needs(ctx, 3):
        g_source = index_select(grad, dim, index)
        if source.ndim == 0 and g_source.ndim:
            g_source = views.reshape(g_source, ())
    return g_self, None, None, g_source


@_derivative(index_fill, save=(2,), name=lambda self, dim, index, value:
             "IndexFillBackward1" if isinstance(value, Tensor) else "IndexFillBackward0")
def _index_fill_backward(ctx, grad, self, dim, index, value):
    ew, _, _, _ = _ops()
    g_self = index_fill(grad, dim, index, 0)
    g_value = None
    if _is_tensor(value) and _needs(ctx, 3):  # what was filled, each position once (repeats too)
        g_value = _sum_all(ew.sub(grad, g_self))
    return g_self, None, None, g_value


def _index_reduce_saves(self, dim, index, source, reduce, include_self=True):
    return (0, 2, 3, "result") if reduce != "mean" else (2,)


@_derivative(index_reduce, save=_index_reduce_saves)
def _index_reduce_backward(ctx, grad, self, dim, index, source, reduce, include_self=True):
    """index_reduce is scatter_reduce with the index spread over source's shape."""
    spread = _spread_index(index, dim, source)
    g_self, _, _, g_source = _scatter_reduce_backward(ctx, grad, self, dim, spread, source, reduce, include_self)
    return g_self, None, None, g_source


def _spread_index(index, dim, source):
    """index (a vector along dim) as a tensor of source's shape, for scatter/gather."""
    _, _, views, _ = _ops()
    from vibetensor.ops import creation
    if source.ndim == 0:
        return views.reshape(index, ())
    shape = [1] * source.ndim
    shape[dim] = index.numel()
    return creation.contiguous(views.expand(views.reshape(index, tuple(shape)), tuple(source._shape)))


@_derivative(masked_fill, save=(1,), name=lambda self, mask, value:
             "MaskedFillBackward1" if isinstance(value, Tensor) else "MaskedFillBackward0")
def _masked_fill_backward(ctx, grad, self, mask, value):
    ew, _, _, _ = _ops()
    g_self = masked_fill(grad, mask, 0) if _needs(ctx, 0) else None
    g_value = None
    if _is_tensor(value) and _needs(ctx, 2):
        g_value = _sum_all(masked_fill(grad, ew.logical_not(mask), 0))
    return g_self, None, g_value


@_derivative(masked_scatter, save=(1,))
def _masked_scatter_backward(ctx, grad, self, mask, source):
    _, _, views, joining = _ops()
    g_self = masked_fill(grad, mask, 0) if _needs(ctx, 0) else None
    g_source = None
    if _needs(ctx, 2):
        picked = masked_select(grad, mask)  # (n,): one per true mask element, in order
        missing = source.numel() - picked.numel()
        if missing:
            picked = joining.cat([picked, _zeros((missing,), grad)], 0)
        g_source = views.reshape(picked, tuple(source._shape))
    return g_self, None, g_source


@_derivative(masked_select, save=(1,))
def _masked_select_backward(ctx, grad, self, mask):
    shape = sh.broadcast_shapes(self._shape, mask._shape)
    return masked_scatter(_zeros(shape, grad), mask, grad), None


@_derivative(take, save=(1,))
def _take_backward(ctx, grad, self, index):
    return put(_zeros(self._shape, grad), index, grad, True), None


@_derivative(put, save=(1,))
def _put_backward(ctx, grad, self, index, source, accumulate=False):
    _, _, views, _ = _ops()
    g_self = None
    if _needs(ctx, 0):
        g_self = grad if accumulate else put(grad, index, _zeros(source._shape, grad), False)
    g_source = views.reshape(take(grad, index), tuple(source._shape)) if _needs(ctx, 2) else None
    return g_self, None, g_source


_nondifferentiable(nonzero)


# -- segment_reduce: reductions over runs of data along an axis -------------------------------------------------

SEGMENT_REDUCES = {"sum": "sum", "prod": "prod", "mean": "mean", "max": "amax", "min": "amin"}


def segment_ids_meta(bounds, size, from_lengths, unsafe):
    if bounds._dtype not in LONG_OR_INT:
        kernel = "_segment_reduce_lengths_cpu_kernel1" if from_lengths else "_segment_reduce_offsets_cpu_kernel1"
        raise NotImplementedError(f'"{kernel}" not implemented for \'{NAMES[bounds._dtype]}\'')


def segment_reduce_meta(data, reduce, lengths=None, indices=None, offsets=None, axis=0, unsafe=False, initial=None):
    """(wrapped axis, bounds tensor, whether it holds lengths, number of segments, result shape)."""
    if reduce not in SEGMENT_REDUCES:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    if indices is not None:
        raise RuntimeError("segment_reduce(): indices based reduction is not supported yet.")
    if lengths is None and offsets is None:
        raise RuntimeError("segment_reduce(): Either lengths or offsets must be defined.")
    axis = sh.wrap_dim(axis, data.ndim, "segment_reduce")
    bounds = lengths if lengths is not None else offsets
    if data._dtype.category != 2:
        raise NotImplementedError(f'"_segment_reduce_cpu" not implemented for \'{NAMES[data._dtype]}\'')
    if axis != bounds.ndim - 1:
        raise RuntimeError(f"segment_reduce(): Expected axis to be the last dimension of lengths but got {axis}.")
    n = bounds._shape[-1] - (0 if lengths is not None else 1)
    return axis, bounds, lengths is not None, n, data._shape[:axis] + (n,) + data._shape[axis + 1:]


# segment_ids(bounds, size, from_lengths, unsafe) -> int64 (..., size): the segment of each position
# along the reduced axis (lengths or offsets per row); positions in no segment get the id S (one past
# the last segment). Reads the bounds' values; checks negative lengths and, unless unsafe, their sums.
segment_ids = declare("segment_ids", meta=segment_ids_meta, family="scatter")
# segment_reduce(data, reduce, lengths, indices, offsets, axis, unsafe, initial): torch's, accumulating in
# data's own dtype from `initial` (or the reduction's identity), one element after the other, as torch does.
segment_reduce = declare("segment_reduce", meta=segment_reduce_meta, family="scatter")
_nondifferentiable(segment_ids)


def _segment_positions(data, axis, bounds, from_lengths, unsafe):
    """Segment ids spread over data's shape (contiguous int64), the id S marking positions in no segment."""
    _, _, views, _ = _ops()
    from vibetensor.ops import creation
    ids = segment_ids(bounds, data._shape[axis], from_lengths, unsafe)  # data.shape[:axis + 1]
    ids = views.reshape(ids, ids._shape + (1,) * (data.ndim - axis - 1))
    return creation.contiguous(views.expand(ids, tuple(data._shape)))


def _with_dump_segment(t, axis, value=0):
    """t with one more segment along axis (what positions in no segment read in backward)."""
    _, _, _, joining = _ops()
    from vibetensor.ops import creation
    extra = creation.full(t._shape[:axis] + (1,) + t._shape[axis + 1:], value, t._dtype, device=t._device)
    return joining.cat([t, extra], axis)


@_derivative(segment_reduce, save=lambda data, reduce, *a, **k: (0, 2, 4, "result"))
def _segment_reduce_backward(ctx, grad, data, reduce, lengths=None, indices=None, offsets=None, axis=0,
                             unsafe=False, initial=None):
    """torch's _segment_reduce_backward: sum/mean spread the gradient, max/min split it among the
    elements equal to the result, prod divides the result (products of the others for zeros)."""
    ew, _, _, _ = _ops()
    axis, bounds, from_lengths, n, _ = segment_reduce_meta(data, reduce, lengths, indices, offsets, axis, unsafe,
                                                           initial)
    ids = _segment_positions(data, axis, bounds, from_lengths, unsafe)
    ones = _full(data._shape, 1, grad)
    count = scatter_add(_zeros(grad._shape[:axis] + (n + 1,) + grad._shape[axis + 1:], grad), axis, ids, ones)
    g = _with_dump_segment(grad, axis)
    if reduce == "sum":
        return gather(g, axis, ids)
    if reduce == "mean":
        return gather(ew.div(g, ew.clamp(count, 1, None)), axis, ids)
    value = gather(_with_dump_segment(ctx.result, axis), axis, ids)
    if reduce in ("max", "min"):
        chosen = ew.logical_or(ew.eq(data, value), ew.logical_and(ew.isnan(data), ew.isnan(value)))
        ties = scatter_add(_zeros(count._shape, grad), axis, ids, _as(chosen, grad))
        return ew.mul(chosen, gather(ew.div(g, ew.clamp(ties, 1, None)), axis, ids))
    bad = ew.logical_or(ew.eq(data, 0), ew.isnan(data))  # prod: torch multiplies out the others for these
    bad_count = gather(scatter_add(_zeros(count._shape, grad), axis, ids, _as(bad, grad)), axis, ids)
    others = segment_reduce(masked_fill(data, bad, 1), "prod", lengths, indices, offsets, axis, unsafe, initial)
    others = gather(ew.mul(g, _with_dump_segment(others, axis)), axis, ids)
    plain = ew.div(gather(ew.mul(g, _with_dump_segment(ctx.result, axis)), axis, ids), data)
    return ew.where(bad, ew.where(ew.eq(bad_count, 1), others, 0.0), plain)


def _clamped(self, indices):
    """torch's eager rule: each index clamped to [-size, size - 1] (never checked), int/long only."""
    ew, _, _, _ = _ops()
    out = []
    for i, n in zip(indices, self._shape):
        if i is not None and i._dtype not in LONG_OR_INT:
            raise RuntimeError(f"_unsafe_masked_index found unexpected index type {NAMES[i._dtype]}")
        out.append(None if i is None else ew.clamp(i, -n, n - 1))
    return out


def _unsafe_masked_index(self, mask, indices, fill):
    """self[indices] where mask is true, `fill` elsewhere (mask false may hide bad indices)."""
    ew, _, _, _ = _ops()
    from vibetensor.ops import creation, indexing
    clamped = _clamped(self, indices)
    if self.numel() == 0:  # torch indexes a tensor of fills sized like this (dims past the indices: 0)
        shape = tuple((1 if indices[d] is not None and n == 0 else n) if d < len(indices) else 0
                      for d, n in enumerate(self._shape))
        filled = creation.full(shape, creation.scalar_to(fill, self._dtype), self._dtype, device=self._device)
        return indexing.index(filled, clamped)
    return masked_fill(indexing.index(self, clamped), ew.logical_not(mask), fill)


def _unsafe_masked_index_put_accumulate(self, mask, indices, values):
    """A copy of self with values (where mask is true) added at indices (clamped, never checked)."""
    ew, _, _, _ = _ops()
    from vibetensor.ops import creation, indexing
    if self.numel() == 0:
        return creation.clone(self)
    clamped = _clamped(self, indices)
    masked_values = masked_fill(values, ew.logical_not(mask), 0)
    return indexing.index_put_(creation.clone(self), clamped, masked_values, True)


unsafe_masked_index = declare("_unsafe_masked_index", composite=_unsafe_masked_index, family="scatter")
unsafe_masked_index_put_accumulate = declare("_unsafe_masked_index_put_accumulate",
                                             composite=_unsafe_masked_index_put_accumulate, family="scatter")
