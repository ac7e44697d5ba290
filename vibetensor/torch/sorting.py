"""Front door: scans and order statistics (cumsum, sort, topk, unique, ...): torch's signatures and
defaults, then one op call. Ops returning (values, indices) give torch.return_types named tuples."""
import operator

from vibetensor.ops import scans as sc
from vibetensor.ops import sorting as so
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, empty
from vibetensor.torch.tensor_methods import method

_MISSING = object()
return_types = so.return_types


def _int(value, op, name, position):
    """An int argument (k, bins...): floats and bools are refused, as torch's parser does."""
    if isinstance(value, Tensor) and value.ndim == 0 and value.dtype.category == 1:
        return int(value)
    if not isinstance(value, (bool, float, Tensor)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{op}(): argument '{name}' (position {position}) must be int, not {type(value).__name__}")


# -- scans ----------------------------------------------------------------------------------------------------

def cumsum(input, dim, *, dtype=None, out=None):
    return sc.cumsum(input, dim, dtype, out=out)


def cumprod(input, dim, *, dtype=None, out=None):
    return sc.cumprod(input, dim, dtype, out=out)


def cummax(input, dim, *, out=None):
    return sc.cummax(input, dim, out=out)


def cummin(input, dim, *, out=None):
    return sc.cummin(input, dim, out=out)


def logcumsumexp(input, dim, *, out=None):
    return sc.logcumsumexp(input, dim, out=out)


def _cumulative_(op):
    def f_(self, dim, *, dtype=None):
        return op(self, dim, dtype, out=self)
    f_.__name__ = op.name.split("::")[-1] + "_"
    return f_


# -- sorting and selection -----------------------------------------------------------------------------------

def _sort_args(name, args, dim, descending, stable):
    """torch's two overloads: sort(input, dim=-1, descending=False) and sort(input, *, stable, dim=-1,
    descending=False): with stable given, dim and descending are keyword-only."""
    if args and (stable is not None or dim is not _MISSING or len(args) > 2 or len(args) == 2 and descending):
        raise TypeError(f"{name}() received an invalid combination of arguments: with stable=, dim and descending "
                        "are keyword-only, and at most dim and descending may be positional")
    if args:
        dim, descending = (tuple(args) + (descending,))[:2]
    return (-1 if dim is _MISSING else dim), bool(descending), bool(stable)


def sort(input, *args, dim=_MISSING, descending=False, stable=None, out=None):
    return so.sort(input, *_sort_args("sort", args, dim, descending, stable), out=out)


def argsort(input, *args, dim=_MISSING, descending=False, stable=None):
    return so.sort(input, *_sort_args("argsort", args, dim, descending, stable)).indices


def msort(input, *, out=None):
    if out is None:
        return so.sort(input, 0, False, False).values
    return so.sort(input, 0, False, False, out=(out, empty((0,), dt.int64, out.device))).values


def topk(input, k, dim=-1, largest=True, sorted=True, *, out=None):
    return so.topk(input, _int(k, "topk", "k", 2), dim, bool(largest), bool(sorted), out=out)


def kthvalue(input, k, dim=-1, keepdim=False, *, out=None):
    return so.kthvalue(input, _int(k, "kthvalue", "k", 2), dim, bool(keepdim), out=out)


def _median_like(name, whole, by_dim):
    def fn(input, dim=_MISSING, keepdim=False, *, out=None):
        if dim is _MISSING:
            if keepdim or out is not None:
                raise TypeError(f"{name}() missing 1 required positional arguments: \"dim\"")
            return whole(input)
        if dim is None:
            raise TypeError(f"{name}(): argument 'dim' must be int, not NoneType")
        return by_dim(input, dim, bool(keepdim), out=out)
    fn.__name__ = name
    return fn


median = _median_like("median", so.median, so.median_dim)
nanmedian = _median_like("nanmedian", so.nanmedian, so.nanmedian_dim)


def mode(input, dim=-1, keepdim=False, *, out=None):
    return so.mode(input, dim, bool(keepdim), out=out)


def _quantile_like(name, ignore_nan):
    def fn(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
        if not isinstance(q, (Tensor, float, int)) or isinstance(q, bool):
            raise TypeError(f"{name}(): argument 'q' (position 2) must be Tensor or float, not {type(q).__name__}")
        return so.quantile(input, q, dim, bool(keepdim), interpolation, ignore_nan, out=out)
    fn.__name__ = name
    return fn


quantile = _quantile_like("quantile", False)
nanquantile = _quantile_like("nanquantile", True)


# -- sets -----------------------------------------------------------------------------------------------------

def _pick(output, inverse, counts, return_inverse, return_counts):
    if return_inverse and return_counts:
        return output, inverse, counts
    if return_inverse:
        return output, inverse
    if return_counts:
        return output, counts
    return output


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    results = so.unique(input, bool(sorted), bool(return_inverse), bool(return_counts), dim)
    return _pick(*results, return_inverse, return_counts)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    results = so.unique_consecutive(input, bool(return_inverse), bool(return_counts), dim)
    return _pick(*results, return_inverse, return_counts)


def isin(elements, test_elements, *, assume_unique=False, invert=False, out=None):
    return so.isin(elements, test_elements, bool(assume_unique), bool(invert), out=out)


# -- searching and counting --------------------------------------------------------------------------------

def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None, out=None):
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    return so.searchsorted(sorted_sequence, input, bool(out_int32), bool(right), sorter, out=out)


def bucketize(input, boundaries, *, out_int32=False, right=False, out=None):
    return so.bucketize(input, boundaries, bool(out_int32), bool(right), out=out)


def histc(input, bins=100, min=0, max=0, *, out=None):
    return so.histc(input, _int(bins, "histc", "bins", 2), min, max, out=out)


def bincount(input, weights=None, minlength=0):
    return so.bincount(input, weights, _int(minlength, "bincount", "minlength", 3))


for _fn in (cumsum, cumprod, cummax, cummin, logcumsumexp, sort, argsort, msort, topk, kthvalue, median,
            nanmedian, mode, quantile, nanquantile, unique, unique_consecutive, histc, bincount):
    method(_fn)
method(_cumulative_(sc.cumsum))
method(_cumulative_(sc.cumprod))

__all__ = ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "sort", "argsort", "msort", "topk", "kthvalue",
           "median", "nanmedian", "mode", "quantile", "nanquantile", "unique", "unique_consecutive", "isin",
           "searchsorted", "bucketize", "histc", "bincount", "return_types"]
