"""Order statistics and set operations: declarations, torch's checks, derivatives.

    sort(a, dim, descending, stable)          -> (values, indices); NaN sorts as the greatest value
    topk(a, k, dim, largest, sorted)          -> (values, indices)
    kthvalue(a, k, dim, keepdim)              -> (values, indices)
    median(a) / nanmedian(a)                  -> 0-d lower median of all elements
    median_dim(a, dim, keepdim) / nanmedian_dim(...), mode(a, dim, keepdim) -> (values, indices)
    unique(a, sorted, return_inverse, return_counts, dim) -> (output, inverse, counts)
    unique_consecutive(a, return_inverse, return_counts, dim) -> (output, inverse, counts)
    searchsorted(seq, values, out_int32, right, sorter), bucketize(values, boundaries, out_int32, right)
    isin(elements, test_elements, assume_unique, invert), histc(a, bins, min, max),
    bincount(a, weights, minlength)
    quantile(a, q, dim, keepdim, interpolation, ignore_nan)   composite of sort and gathers

The ops that pick input elements by index send each gradient back to the element it was picked from
with scatter_add (ops/scatter.py), whose derivative is gather, so gradients differentiate again.
Meta functions validate everything and return a Spec; kernels are in backends/<device>/sorting.py.
"""
import math
import types

from vibetensor.dispatch import declare
from vibetensor.ops import creation as _creation
from vibetensor.ops import elementwise as _ew
from vibetensor.ops import meta as m
from vibetensor.ops import reduction as r
from vibetensor.ops import scatter as _scatter
from vibetensor.ops import views as _views
from vibetensor.ops.scans import Spec, check_input, out_pair, scan_dim
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

_NAMES = m.TYPE_NAMES

# torch.return_types: the reductions' ones plus ours (values, indices)
return_types = types.SimpleNamespace(
    **r.return_types._asdict(),
    **{name: r._return_type(name, "values indices")
       for name in ("sort", "topk", "kthvalue", "median", "nanmedian", "mode", "cummax", "cummin")})


def _size(a, d):
    return a._shape[d] if a.ndim else 1


def _keep(shape, d, keepdim):
    """The shape of a one-dim reduction's result."""
    if not shape:
        return ()
    return tuple(1 if i == d else s for i, s in enumerate(shape)) if keepdim else shape[:d] + shape[d + 1:]


def _not_implemented(kernel, d):
    return NotImplementedError(f'"{kernel}" not implemented for \'{_NAMES[d]}\'')


def _check_nonempty(op, a, d):
    if a.numel() == 0 and a.ndim and a._shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")


# -- sort, topk, kthvalue, median, mode ---------------------------------------------------------------------

def _sort_meta(a, dim=-1, descending=False, stable=False, out=None):
    check_input("sort", a)
    d = scan_dim("sort", a, dim)
    values, indices = out_pair("sort", out)
    if a._dtype.is_complex:
        raise RuntimeError(" Sort does not support complex dtypes on CPU")
    r.check_out_dtype(values, a._dtype)
    r.check_out_dtype(indices, dt.int64)
    return Spec(tuple(a._shape), a._dtype, a._device, d, a._dtype)


def _topk_meta(a, k, dim=-1, largest=True, sorted=True, out=None):
    check_input("topk", a)
    d = scan_dim("topk", a, dim)
    values, indices = out_pair("topk", out)
    if not 0 <= k <= _size(a, d):
        raise RuntimeError("selected index k out of range")
    if a._dtype is dt.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    if a._dtype.is_complex:
        raise RuntimeError(" topk does not support complex dtypes on CPU")
    r.check_out_dtype(values, a._dtype)
    r.check_out_dtype(indices, dt.int64)
    shape = tuple(k if i == d else s for i, s in enumerate(a._shape))
    return Spec(shape, a._dtype, a._device, d, a._dtype)


def _kthvalue_meta(a, k, dim=-1, keepdim=False, out=None):
    check_input("kthvalue", a)
    d = scan_dim("kthvalue", a, dim)
    values, indices = out_pair("kthvalue", out)
    _check_nonempty("kthvalue", a, d)
    if not 1 <= k <= _size(a, d):
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    if (a._dtype is dt.bool_ or a._dtype.is_complex) and a.ndim:  # a 0-d input is copied without a kernel
        raise _not_implemented("kthvalue_cpu", a._dtype)
    if values is not None and values._dtype is not a._dtype:
        raise RuntimeError("output values must be of same type as input")
    if indices is not None and indices._dtype is not dt.int64:
        raise RuntimeError("output indices must be of scalar type Long")
    return Spec(_keep(tuple(a._shape), d, keepdim), a._dtype, a._device, d, a._dtype)


def _median_all_meta(op):
    def meta(a):
        check_input(op, a)
        if (a._dtype is dt.bool_ or a._dtype.is_complex) and a.numel():  # empty: NaN, cast, without a kernel
            raise _not_implemented("median_cpu", a._dtype)
        return Spec((), a._dtype, a._device, None, a._dtype)
    return meta


def _median_dim_meta(op):
    def meta(a, dim, keepdim=False, out=None):
        check_input(op, a)
        d = scan_dim(op, a, dim)
        values, indices = out_pair(op, out)
        _check_nonempty(op, a, d)
        if a._dtype is dt.bool_ or a._dtype.is_complex:
            raise _not_implemented("median_out", a._dtype)
        if values is not None and values._dtype is not a._dtype:
            raise RuntimeError(f"Expected tensor for 'values' to have the same type as tensor for argument #2 "
                               f"'self'; but type {m.legacy_type_name(values)} does not equal "
                               f"{m.legacy_type_name(a)} (while checking arguments for {op})")
        if indices is not None and indices._dtype is not dt.int64:
            raise RuntimeError(f"Expected tensor for argument #1 'indices' to have scalar type Long; but got "
                               f"{m.legacy_type_name(indices)} instead (while checking arguments for {op})")
        return Spec(_keep(tuple(a._shape), d, keepdim), a._dtype, a._device, d, a._dtype)
    return meta


def _mode_meta(a, dim=-1, keepdim=False, out=None):
    check_input("mode", a)
    d = scan_dim("mode", a, dim)
    values, indices = out_pair("mode", out)
    _check_nonempty("mode", a, d)
    if a._dtype.is_complex and a.ndim:
        raise _not_implemented("mode_cpu", a._dtype)
    for o, want, what in ((values, a._dtype, "values"), (indices, dt.int64, "indices")):
        if o is not None and o._dtype is not want:
            raise RuntimeError(f"expected scalar type '{_NAMES[want]}' but got '{_NAMES[o._dtype]}' for {what} output")
    return Spec(_keep(tuple(a._shape), d, keepdim), a._dtype, a._device, d, a._dtype)


# -- unique ------------------------------------------------------------------------------------------------

def _unique_dim(op, a, dim):
    """The wrapped dim of unique(dim=...), with torch's refusal of empty dims it does not select."""
    if dim is None:
        return None
    if a.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = sh.wrap_dim(dim, a.ndim, op)
    if a.numel() == 0 and any(s == 0 for i, s in enumerate(a._shape) if i != d):
        raise RuntimeError(f"There are 0 sized dimensions, and they aren't selected, so {op} cannot be applied")
    return d


def _unique_spec(op, a, dim):
    """The result shapes depend on the data: the kernel sizes them (shape None here)."""
    check_input(op, a)
    d = _unique_dim(op, a, dim)
    if a._dtype.is_complex:
        raise _not_implemented(op, a._dtype)
    return Spec(None, a._dtype, a._device, d, a._dtype)


def _unique_meta(a, sorted=True, return_inverse=False, return_counts=False, dim=None):
    return _unique_spec("unique", a, dim)


def _unique_consecutive_meta(a, return_inverse=False, return_counts=False, dim=None):
    return _unique_spec("unique_consecutive", a, dim)


# -- searchsorted, bucketize, isin ---------------------------------------------------------------------------

def _check_index_out(out, out_int32):
    want = dt.int32 if out_int32 else dt.int64
    if out is not None and out._dtype is not want:
        raise RuntimeError(f"torch.searchsorted(): output tensor's dtype is wrong, it can only be Int(int32) or "
                           f"Long(int64) depending on whether out_int32 flag is True, but we got output tensor's "
                           f"dtype {_NAMES[out._dtype]} and out_int32 flag is {out_int32}")
    return want


def _search_spec(op, seq, values, out_int32, out):
    """Shape (of values), index dtype, and the dtype both sides are compared in."""
    common = dt.result_type(seq, values)  # both sides are compared in it
    if common is dt.bool_ or common.is_complex:
        raise _not_implemented("searchsorted_out_cpu", common)
    device = m.common_device(op, (seq, values))
    want = _check_index_out(out, out_int32)
    shape = tuple(values._shape) if isinstance(values, Tensor) else ()
    return Spec(shape, want, device, None, common)


def _searchsorted_meta(seq, values, out_int32=False, right=False, sorter=None, out=None):
    check_input("searchsorted", seq)
    if not isinstance(values, Tensor):
        if seq.ndim != 1:
            raise RuntimeError(f"torch.searchsorted(): input value can be a scalar only when boundaries tensor "
                               f"dimension is 1, but we got boundaries tensor dim({seq.ndim}) and input value's "
                               f"dim(0) numel(1)")
    elif seq.ndim != 1 and (seq.ndim != values.ndim or seq._shape[:-1] != values._shape[:-1]):
        raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
                           f"dimensions of boundaries tensor and input value tensor must match, but we got "
                           f"boundaries tensor {list(seq._shape)} and input value tensor {list(values._shape)}")
    if sorter is not None:
        if sorter._dtype is not dt.int64:
            raise RuntimeError(f"torch.searchsorted(): sorter must be a tensor of long dtype but got dtype "
                               f"{_NAMES[sorter._dtype]}")
        if sorter._shape != seq._shape:
            raise RuntimeError(f"torch.searchsorted(): boundary and sorter must have the same size, but got "
                               f"boundary tensor {list(seq._shape)}and got sorter tensor {list(sorter._shape)}")
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 "
                           "dimensions of boundaries tensor and input value tensor must match, but we got "
                           f"boundaries tensor [] and input value tensor {list(getattr(values, '_shape', ()))}")
    return _search_spec("searchsorted", seq, values, out_int32, out)


def _bucketize_meta(values, boundaries, out_int32=False, right=False, out=None):
    check_input("bucketize", boundaries)
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
    return _search_spec("bucketize", boundaries, values, out_int32, out)


def _isin_meta(elements, test_elements, assume_unique=False, invert=False, out=None):
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError(f"isin() received an invalid combination of arguments - got "
                        f"({type(elements).__name__}, {type(test_elements).__name__}), but expected a Tensor "
                        "for elements or test_elements")
    for t in (elements, test_elements):
        if isinstance(t, Tensor) and (t._dtype is dt.bool_ or t._dtype.is_complex):
            raise RuntimeError(f"Unsupported input type encountered for isin(): {_NAMES[t._dtype]}")
    device = m.common_device("isin", (elements, test_elements))
    r.check_out_dtype(out, dt.bool_)
    shape = tuple(elements._shape) if isinstance(elements, Tensor) else ()
    return Spec(shape, dt.bool_, device, None, dt.result_type(elements, test_elements))


# -- histc, bincount --------------------------------------------------------------------------------------

def _histc_meta(a, bins=100, min=0, max=0, out=None):
    check_input("histc", a)
    if a._dtype.category != 2:
        raise _not_implemented("histogram_cpu", a._dtype)
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if out is not None and out._dtype is not a._dtype:
        raise RuntimeError(f"torch.histogram: input tensor and hist tensor should have the same dtype, but got "
                           f"input {r.CPP_NAMES[a._dtype]} and hist {r.CPP_NAMES[out._dtype]}")
    for bound in (min, max):
        if math.isinf(bound) or math.isnan(bound):
            raise RuntimeError(f"torch.histc: range of [{min:g}, {max:g}] is not finite")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    return Spec((bins,), a._dtype, a._device, None, a._dtype)


def _bincount_meta(a, weights=None, minlength=0):
    check_input("bincount", a)
    if a._dtype.category != 1:
        raise _not_implemented("bincount_cpu", a._dtype)
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if a.ndim != 1:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if weights is not None and (weights.ndim != 1 or weights._shape[0] != a._shape[0]):
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dtype = dt.int64 if weights is None else dt.float32 if weights._dtype is dt.float32 else dt.float64
    return Spec(None, dtype, a._device, None, dtype)


# -- declarations --------------------------------------------------------------------------------------------

def _declare(name, meta):
    return declare(name, meta=meta, family="sorting")


sort = _declare("sort", _sort_meta)                         # sort(a, dim, descending, stable) -> (values, indices)
topk = _declare("topk", _topk_meta)                         # topk(a, k, dim, largest, sorted)
kthvalue = _declare("kthvalue", _kthvalue_meta)             # kthvalue(a, k, dim, keepdim)
median = _declare("median", _median_all_meta("median"))    # median(a): 0-d
nanmedian = _declare("nanmedian", _median_all_meta("nanmedian"))
median_dim = _declare("median_dim", _median_dim_meta("median"))           # (a, dim, keepdim) -> (values, indices)
nanmedian_dim = _declare("nanmedian_dim", _median_dim_meta("nanmedian"))
mode = _declare("mode", _mode_meta)                         # mode(a, dim, keepdim) -> (values, indices)
unique = _declare("unique", _unique_meta)                   # -> (output, inverse, counts)
unique_consecutive = _declare("unique_consecutive", _unique_consecutive_meta)
searchsorted = _declare("searchsorted", _searchsorted_meta)  # searchsorted(seq, values, out_int32, right, sorter)
bucketize = _declare("bucketize", _bucketize_meta)          # bucketize(values, boundaries, out_int32, right)
isin = _declare("isin", _isin_meta)                         # isin(elements, test_elements, assume_unique, invert)
histc = _declare("histc", _histc_meta)                      # histc(a, bins, min, max)
bincount = _declare("bincount", _bincount_meta)             # bincount(a, weights, minlength)


# -- quantile: a composite of sort and gather (torch's quantile_impl), so it differentiates ------------------

INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def check_quantile(op, a, q, dim, interpolation, out=None):
    if a.numel() == 0:
        raise RuntimeError(f"{op}() input tensor must be non-empty")
    if isinstance(q, Tensor) and q.ndim > 1:
        raise RuntimeError(f"{op}() q must be a scalar or 1D tensor")
    if a._dtype not in (dt.float32, dt.float64):
        raise RuntimeError(f"{op}() input tensor must be either float or double dtype")
    if isinstance(q, Tensor) and q._dtype is not a._dtype:
        raise RuntimeError(f"{op}() q tensor must be same dtype as the input tensor")
    if interpolation not in INTERPOLATIONS:
        raise RuntimeError(f"{op}() interpolation must be one of linear, lower, higher, midpoint or nearest, but "
                           f"got {interpolation}")
    if dim is not None:
        sh.wrap_dim(dim, a.ndim, op)
    if out is not None:
        if out._dtype is not a._dtype:
            raise RuntimeError(f"{op}() out tensor must be same dtype as the input tensor")
        if out._device != a._device:
            raise RuntimeError(f"{op}() out tensor must be on the same device as the input tensor")


def quantile_shape(a, q, dim, keepdim):
    """(Q?, *reduced): q's length leads when q is a 1-D tensor."""
    if dim is None:
        rest = (1,) * a.ndim if keepdim else ()
    else:
        rest = _keep(tuple(a._shape), sh.wrap_dim(dim, a.ndim), keepdim)
    return ((q.numel(),) if isinstance(q, Tensor) and q.ndim == 1 else ()) + rest


def _quantile(a, q, dim=None, keepdim=False, interpolation="linear", ignore_nan=False, out=None):
    """torch's quantile_impl: sort along dim, rank q in each slice (a NaN ranks last, so quantile
    gives NaN; nanquantile ranks among the non-NaN values), then gather the neighbours and lerp."""
    op = "nanquantile" if ignore_nan else "quantile"
    check_input(op, a)
    check_quantile(op, a, q, dim, interpolation, out)
    _check_q_range(op, q)
    shape = quantile_shape(a, q, dim, keepdim)
    whole = dim is None or a.ndim == 0
    x = _views.reshape(a, (-1,)) if whole else a
    d = 0 if whole else sh.wrap_dim(dim, a.ndim)
    values = sort(x, d)[0]
    qs = q if isinstance(q, Tensor) else _creation.full((), q, a._dtype, device=a._device)
    qs = _views.reshape(qs, tuple(qs.numel() if i == d else 1 for i in range(x.ndim)))  # q along dim d
    nan = _ew.isnan(values)
    if ignore_nan:
        ranks = _ew.mul(qs, _ew.sub(r.sum(_ew.logical_not(nan), d, True), 1))
        ranks = _ew.where(_ew.lt(ranks, 0), 0, ranks)  # all-NaN slices: rank 0, a NaN
    else:
        last = x._shape[d] - 1
        ranks = _ew.where(r.any(nan, d, True), last, _ew.mul(qs, last))
    ranks = {"lower": _ew.floor, "higher": _ew.ceil, "nearest": _ew.round}.get(interpolation, lambda t: t)(ranks)
    below = _creation.to(ranks, dt.int64, a._device)
    result = _scatter.gather(values, d, below)
    if interpolation in ("linear", "midpoint"):
        weights = 0.5 if interpolation == "midpoint" else _ew.sub(ranks, below)
        above = _scatter.gather(values, d, _creation.to(_ew.ceil(ranks), dt.int64, a._device))
        result = _ew.lerp(result, above, weights)
    if isinstance(q, Tensor) and q.ndim == 1:
        result = _views.movedim(result, (d,), (0,))
    if tuple(result._shape) != shape:
        result = _views.reshape(result, shape)
    if out is None:
        return result
    return _creation.copy_(m.output(op, out, shape, a._dtype, a._device), result)


def _check_q_range(op, q):
    if isinstance(q, Tensor):
        inside = _ew.logical_and(_ew.ge(q, 0), _ew.le(q, 1))
        if not bool(r.all(inside).item()):
            raise RuntimeError(f"{op}() q values must be in the range [0, 1]")
    elif not 0 <= q <= 1:
        raise RuntimeError(f"{op}() q must be in the range [0, 1] but got {q}")


quantile = declare("quantile", composite=_quantile, family="sorting")  # (a, q, dim, keepdim, interpolation, ignore_nan)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's derivatives.yaml: every op that picks input elements sends each gradient back to the element
# it picked (value_selecting_reduction_backward); median()/nanmedian() without dim share the gradient
# evenly among the elements equal to the result (evenly_distribute_backward). The set operations,
# searches and histograms have integer (or piecewise-constant) results and never carry gradients.
from vibetensor.autograd.derivatives import derivative as _derivative, nondifferentiable  # noqa: E402
from vibetensor.ops import scans as _scans  # noqa: E402


def _picked(ctx, grad, a, dim, keepdim):
    """torch's value_selecting_reduction_backward: each picked value's gradient goes back to the
    element it was picked from (added up: cummax picks one element for several outputs)."""
    g, indices = grad[0], ctx.result[1]
    if not keepdim and a.ndim:
        d = sh.wrap_dim(dim, a.ndim)
        g, indices = _views.unsqueeze(g, d), _views.unsqueeze(indices, d)
    return _scatter.scatter_add(_creation.full(tuple(a.shape), 0, g._dtype, device=g._device), dim, indices, g)


@_derivative(sort, save=("result",), name=lambda a, dim=-1, descending=False, stable=False:
             "SortBackward1" if stable else "SortBackward0")  # torch's sort.stable overload
def _sort_backward(ctx, grad, a, dim=-1, descending=False, stable=False):
    return _picked(ctx, grad, a, dim, True)


@_derivative(topk, save=("result",))
def _topk_backward(ctx, grad, a, k, dim=-1, largest=True, sorted=True):
    return _picked(ctx, grad, a, dim, True)


@_derivative(kthvalue, save=("result",))
def _kthvalue_backward(ctx, grad, a, k, dim=-1, keepdim=False):
    return _picked(ctx, grad, a, dim, keepdim)


def _by_dim_backward(ctx, grad, a, dim=-1, keepdim=False):
    return _picked(ctx, grad, a, dim, keepdim)


_derivative(median_dim, save=("result",), name="MedianBackward1")(_by_dim_backward)
_derivative(nanmedian_dim, save=("result",), name="NanmedianBackward1")(_by_dim_backward)
_derivative(mode, save=("result",))(_by_dim_backward)


def _cummaxmin_backward(ctx, grad, a, dim):
    """Each running extreme's gradient goes to the element it came from (several outputs may share one)."""
    if a.numel() == 0:
        return grad[0]
    return _picked(ctx, grad, a, dim, True)


_derivative(_scans.cummax, save=("result",))(_cummaxmin_backward)
_derivative(_scans.cummin, save=("result",))(_cummaxmin_backward)


def _evenly_distribute_backward(ctx, grad, a):
    """torch's evenly_distribute_backward: the elements equal to the result (NaN: the NaNs) share grad."""
    value = ctx.result
    mask = _ew.where(_ew.isnan(value), _ew.isnan(a), _ew.eq(a, value))
    return _ew.mul(mask, _ew.div(grad, r.sum(mask)))


_derivative(median, save=(0, "result"))(_evenly_distribute_backward)
_derivative(nanmedian, save=(0, "result"))(_evenly_distribute_backward)

for _op in (unique, unique_consecutive, searchsorted, bucketize, isin, histc, bincount):
    nondifferentiable(_op)
