"""torch.* reductions and their Tensor methods: torch's signatures and defaults, then one op call.

`dim` arrives as an int, a tuple/list of ints, or None and leaves as None, an int or a tuple.
"""
import operator

from vibetensor.dispatch import get
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as r
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.tensor_methods import method

_MISSING = object()
return_types = r.return_types


def _dims(dim, op):
    """None, an int, or a tuple of ints (lists and 0-d integer tensors accepted, as torch)."""
    if dim is None or isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(dim, (tuple, list)):
        try:
            return tuple(operator.index(d) for d in dim)
        except TypeError:
            pass
    elif isinstance(dim, Tensor) and dim.ndim == 0 and dim.dtype.category == 1:
        return int(dim)
    raise TypeError(f"{op}(): argument 'dim' must be tuple of ints, not {type(dim).__name__}")


def _dim1(dim, op):
    """A single dim (int) or None."""
    if dim is None or isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(dim, Tensor) and dim.ndim == 0 and dim.dtype.category == 1:
        return int(dim)
    raise TypeError(f"{op}(): argument 'dim' (position 1) must be int, not {type(dim).__name__}")


# -- sums and means ------------------------------------------------------------------------------------------

def _dim_or_all(dim, keepdim, out, op):
    """sum/mean/prod: without a dim torch accepts neither keepdim nor out (sum(x, None, True) is fine)."""
    if dim is _MISSING:
        if keepdim or out is not None:
            raise TypeError(f"{op}() received an invalid combination of arguments: keepdim and out need a dim")
        return None
    return dim


def sum(input, dim=_MISSING, keepdim=False, *, dtype=None, out=None):
    return r.sum(input, _dims(_dim_or_all(dim, keepdim, out, "sum"), "sum"), keepdim, dtype, out=out)


def nansum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    return r.nansum(input, _dims(dim, "nansum"), keepdim, dtype, out=out)


def mean(input, dim=_MISSING, keepdim=False, *, dtype=None, out=None):
    return r.mean(input, _dims(_dim_or_all(dim, keepdim, out, "mean"), "mean"), keepdim, dtype, out=out)


def nanmean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    return r.nanmean(input, _dims(dim, "nanmean"), keepdim, dtype, out=out)


def prod(input, dim=_MISSING, keepdim=False, *, dtype=None, out=None):
    if dim is None:
        raise TypeError("prod(): argument 'dim' must be int, not NoneType")
    return r.prod(input, _dim1(_dim_or_all(dim, keepdim, out, "prod"), "prod"), keepdim, dtype, out=out)


# -- max / min family ----------------------------------------------------------------------------------------

def amax(input, dim=(), keepdim=False, *, out=None):
    return r.amax(input, _dims(dim, "amax"), keepdim, out=out)


def amin(input, dim=(), keepdim=False, *, out=None):
    return r.amin(input, _dims(dim, "amin"), keepdim, out=out)


def _extreme(name, full, by_dim, elementwise):
    def fn(input, dim=_MISSING, keepdim=False, *, other=_MISSING, out=None):
        if other is not _MISSING or isinstance(dim, Tensor):  # max(a, b): the elementwise maximum
            return _elementwise(elementwise)(input, dim if other is _MISSING else other, out=out)
        if dim is _MISSING:
            if keepdim:
                raise TypeError(f"{name}() received an invalid combination of arguments: keepdim needs a dim")
            return full(input, out=out)
        if dim is None or not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"{name}() received an invalid combination of arguments - got "
                            f"({type(dim).__name__}), but expected an int dim or a Tensor")
        return by_dim(input, dim, keepdim, out=out)
    fn.__name__ = name
    return fn


def _elementwise(name):
    try:
        return get(name)
    except KeyError:
        raise NotImplementedError(f"torch.{name} is not implemented yet (needed by max/min of two tensors)") from None


max = _extreme("max", r.max, r.max_dim, "maximum")
min = _extreme("min", r.min, r.min_dim, "minimum")


def argmax(input, dim=None, keepdim=False, *, out=None):
    return r.argmax(input, _dim1(dim, "argmax"), keepdim, out=out)


def argmin(input, dim=None, keepdim=False, *, out=None):
    return r.argmin(input, _dim1(dim, "argmin"), keepdim, out=out)


def aminmax(input, *, dim=None, keepdim=False, out=None):
    return r.aminmax(input, _dim1(dim, "aminmax"), keepdim, out=out)


# -- statistics ----------------------------------------------------------------------------------------------

def _correction(name, dim, unbiased, correction, keepdim):
    """torch's three spellings: var(x, dim, unbiased, keepdim), var(x, dim, correction=c, keepdim)
    and var(x, unbiased) (so var(x, False) is var(x, unbiased=False))."""
    if dim is _MISSING:
        if unbiased is not _MISSING and keepdim:
            raise TypeError(f"{name}() received an invalid combination of arguments: unbiased with keepdim "
                            "needs a dim")
        dim = None
    if isinstance(dim, bool):
        if unbiased is not _MISSING:
            raise TypeError(f"{name}() received an invalid combination of arguments: unbiased given twice")
        dim, unbiased = None, dim
    if unbiased is not _MISSING and correction is not _MISSING:
        raise TypeError(f"{name}() received an invalid combination of arguments: both unbiased and correction")
    if unbiased is not _MISSING:
        correction = 1 if unbiased else 0
    elif correction is _MISSING or correction is None:
        correction = 1
    return _dims(dim, name), correction


def _statistic(name, op, has_out=True):
    def fn(input, dim=_MISSING, unbiased=_MISSING, keepdim=False, *, correction=_MISSING, out=None):
        dims, c = _correction(name, dim, unbiased, correction, keepdim)
        if out is not None and not has_out:
            raise TypeError(f"{name}() got an unexpected keyword argument 'out'")
        return op(input, dims, c, keepdim, out=out) if has_out else op(input, dims, c, keepdim)
    fn.__name__ = name
    return fn


var = _statistic("var", r.var)
std = _statistic("std", r.std)
var_mean = _statistic("var_mean", r.var_mean, has_out=False)
std_mean = _statistic("std_mean", r.std_mean, has_out=False)


def logsumexp(input, dim, keepdim=False, *, out=None):
    if dim is None:
        raise TypeError("logsumexp(): argument 'dim' (position 1) must be tuple of ints, not NoneType")
    return r.logsumexp(input, _dims(dim, "logsumexp"), keepdim, out=out)


def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """torch.norm: vector norms, plus the Frobenius/nuclear matrix norms named by a string p."""
    dims = _dims(dim, "norm")
    if isinstance(p, str):
        if p == "fro" and (dims is None or isinstance(dims, int) or len(dims) <= 2):
            return r.vector_norm(input, 2, dims, keepdim, dtype, out=out)
        dims = tuple(range(input.ndim)) if dims is None else (dims,) if isinstance(dims, int) else dims
        return la.matrix_norm(input, p, dims, keepdim, dtype, out=out)
    return r.vector_norm(input, 2.0 if p is None else p, dims, keepdim, dtype, out=out)


# -- logical and counting ------------------------------------------------------------------------------------

def any(input, dim=None, keepdim=False, *, out=None):
    return r.any(input, _dims(dim, "any"), keepdim, out=out)


def all(input, dim=None, keepdim=False, *, out=None):
    return r.all(input, _dims(dim, "all"), keepdim, out=out)


def count_nonzero(input, dim=None):
    return r.count_nonzero(input, _dims(dim, "count_nonzero"))


for _fn in (sum, nansum, mean, nanmean, prod, amax, amin, max, min, argmax, argmin, aminmax, var, std,
            logsumexp, norm, any, all, count_nonzero):
    method(_fn)

__all__ = ["sum", "nansum", "mean", "nanmean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "aminmax",
           "var", "std", "var_mean", "std_mean", "logsumexp", "norm", "any", "all", "count_nonzero", "return_types"]
