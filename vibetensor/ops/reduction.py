"""Reduction operators: declarations, dim handling and torch's dtype rules.

Ops take normalised arguments: `dim` is None (all dims), an int, or a tuple of ints; keepdim a
bool; `dtype` a dtype or None. Each meta function validates everything (dims, dtypes, empty
inputs, the out= tensor) and returns a Spec:
  shape    - the result shape
  dtype    - the result dtype (what out= is checked against)
  device   - where it runs
  dims     - the reduced dims, wrapped and ascending (() for a 0-d input)
  compute  - the dtype the input is converted to before reducing (dtype= or out.dtype, as torch)
Kernels (backends/<device>/reduction.py) have the op's signature plus out=None.
"""
import builtins
import collections
import math
import warnings

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

Spec = collections.namedtuple("Spec", "shape dtype device dims compute")
_NAMES = m.TYPE_NAMES

# C++ type names that torch prints in some dtype errors ("expected ... dtype float, but got double")
CPP_NAMES = {dt.bool_: "bool", dt.uint8: "unsigned char", dt.int8: "signed char", dt.int16: "short int",
             dt.int32: "int", dt.int64: "long int", dt.float16: "c10::Half", dt.bfloat16: "c10::BFloat16",
             dt.float32: "float", dt.float64: "double", dt.complex64: "c10::complex<float>",
             dt.complex128: "c10::complex<double>", dt.uint16: "unsigned short", dt.uint32: "unsigned int",
             dt.uint64: "unsigned long"}


# -- return types: torch.return_types.max etc. are named tuples ----------------------------------------------

def _return_type(name, fields):
    base = collections.namedtuple(name, fields)

    class ReturnType(base):
        __slots__ = ()

        def __repr__(self):
            inner = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
            return f"torch.return_types.{name}(\n{inner})"
    ReturnType.__name__ = ReturnType.__qualname__ = name
    return ReturnType


return_types = collections.namedtuple("return_types", "max min aminmax")(
    _return_type("max", "values indices"), _return_type("min", "values indices"), _return_type("aminmax", "min max"))


# -- shared checks -------------------------------------------------------------------------------------------

def check_out_dtype(out, dtype):
    """out= of ops whose out must have exactly the result dtype (mm, norm, sum with dtype=, ...)."""
    if out is not None and isinstance(out, Tensor) and out._dtype is not dtype:
        raise RuntimeError(f"Expected out tensor to have dtype {CPP_NAMES[dtype]}, but got "
                           f"{CPP_NAMES[out._dtype]} instead")


def _out_dtype(op, out):
    if not isinstance(out, Tensor):
        raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
    return out._dtype


def reduce_dims(t, dim, op=None):
    """The dims a reduction runs over, wrapped and ascending; None and () mean all dims."""
    nd = t.ndim
    if dim is None or (isinstance(dim, tuple) and not dim):
        return tuple(range(nd))
    dims = sh.wrap_dims((dim,) if isinstance(dim, int) else dim, nd, op)
    return tuple(sorted(dims)) if nd else ()


def reduced_shape(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def _all_dims(dim):
    return dim is None or (isinstance(dim, tuple) and not dim)


def check_nonempty(t, dim, dims, unspecified, zero_size):
    """Ops without an identity (max, argmax, ...) refuse empty inputs: `unspecified` is (type,
    message) when no dim was given, `zero_size` a message with {d} for an empty reduced dim."""
    if t.numel() != 0:
        return
    if _all_dims(dim):
        raise unspecified[0](unspecified[1])
    for d in dims:
        if t._shape[d] == 0:
            raise IndexError(zero_size.format(d=d))


def _refuse_barebones(kernel, t):
    """torch has no CPU kernel of this op for its barebones unsigned types (uint16/32/64)."""
    if t._dtype in dt.BAREBONES:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_NAMES[t._dtype]}\'')


def _spec(op, t, dim, keepdim, dtype, compute=None, one_dim=False):
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(t).__name__}")
    if one_dim and dim is not None and not isinstance(dim, int):
        raise TypeError(f"{op}(): argument 'dim' must be int, not {type(dim).__name__}")
    dims = reduce_dims(t, dim, op)
    return Spec(reduced_shape(t._shape, dims, keepdim), dtype, t._device, dims, compute or dtype)


# -- sum, prod, mean: dtype= casts the input, integers sum to int64 -----------------------------------------

def _sum_like(name, one_dim=False, nan=False):
    def meta(a, dim=None, keepdim=False, dtype=None, out=None):
        spec = _spec(name, a, dim, keepdim, None, one_dim=one_dim)
        if nan and a._dtype.is_complex and a._device.type == "cpu":  # (torch's CUDA nansum takes complex)
            raise RuntimeError("nansum on CPU does not support complex inputs")
        if dtype is not None:
            check_out_dtype(out, dtype)
        elif out is not None:
            dtype = _out_dtype(name, out)  # torch reduces in the out tensor's dtype
        else:
            dtype = dt.int64 if a._dtype.category < 2 else a._dtype
        if nan and a._dtype.category >= 2 and dtype.category < 2:
            raise NotImplementedError(f'"nansum_cpu" not implemented for \'{_NAMES[dtype]}\'')
        return spec._replace(dtype=dtype, compute=dtype)
    return meta


def _mean_like(name, nan=False):
    def meta(a, dim=None, keepdim=False, dtype=None, out=None):
        if nan:
            if a._dtype.category < 2:
                raise RuntimeError(f"nanmean(): expected input to have floating point or complex dtype but got "
                                   f"{_NAMES[a._dtype]}")
            _spec(name, a, dim, keepdim, None)  # dims are checked before the complex check of nansum
            if a._dtype.is_complex and a._device.type == "cpu":
                raise RuntimeError("nansum on CPU does not support complex inputs")
        if dtype is not None:
            if dtype.category < 2:
                raise RuntimeError(f"{name}(): could not infer output dtype. Optional dtype must be either a "
                                   f"floating point or complex dtype. Got: {_NAMES[dtype]}")
            check_out_dtype(out, dtype)
            return _spec(name, a, dim, keepdim, dtype)
        if a._dtype.category < 2:
            raise RuntimeError(f"{name}(): could not infer output dtype. Input dtype must be either a floating "
                               f"point or complex dtype. Got: {_NAMES[a._dtype]}")
        # out= of another (castable) dtype: torch computes in the out dtype
        compute = _out_dtype(name, out) if out is not None else a._dtype
        return _spec(name, a, dim, keepdim, a._dtype, compute if compute.category >= 2 else a._dtype)
    return meta


# -- max / min family: no identity, so empty inputs are refused ----------------------------------------------

def _amax_like(name, kernel_name):
    def meta(a, dim=None, keepdim=False, out=None):
        spec = _spec(name, a, dim, keepdim, a._dtype)
        check_nonempty(a, dim, spec.dims,
                       (RuntimeError, f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                                      "Specify the reduction dim with the 'dim' argument."),
                       f"{name}(): Expected reduction dim {{d}} to have non-zero size.")
        if (a._dtype.is_complex or a._dtype in dt.BAREBONES) and sh.numel(spec.shape):  # empty: no kernel runs
            raise NotImplementedError(f'"{kernel_name}" not implemented for \'{_NAMES[a._dtype]}\'')
        if out is not None and _out_dtype(name, out) is not a._dtype:
            raise RuntimeError(f"Expected the dtype for input and out to match, but got {_NAMES[a._dtype]} for "
                               f"input's dtype and {_NAMES[out._dtype]} for out's dtype.")
        return spec
    return meta


def _max_all(name):
    """max(input) / min(input) with no dim: a 0-d result."""
    def meta(a, out=None):
        spec = _spec(name, a, None, False, a._dtype)
        check_nonempty(a, None, spec.dims,
                       (RuntimeError, f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                                      "Specify the reduction dim with the 'dim' argument."), "")
        if a._dtype.is_complex or a._dtype in dt.BAREBONES:
            raise NotImplementedError(f'"{name}_all" not implemented for \'{_NAMES[a._dtype]}\'')
        return spec
    return meta


def _max_dim(name):
    """max(input, dim) / min(input, dim): (values, indices)."""
    def meta(a, dim, keepdim=False, out=None):
        spec = _spec(name, a, dim, keepdim, a._dtype, one_dim=True)
        check_nonempty(a, dim, spec.dims, None, f"{name}(): Expected reduction dim {{d}} to have non-zero size.")
        if a._dtype.is_complex:
            raise RuntimeError(f"{name}(): does not support complex input")
        _refuse_barebones(f"{name}_cpu", a)
        if out is not None:
            values, indices = _out_pair(name, out)
            check_out_dtype(values, a._dtype)
            check_out_dtype(indices, dt.int64)
        return spec
    return meta


def _out_pair(name, out):
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and builtins.all(isinstance(o, Tensor) for o in out)):
        raise TypeError(f"{name}(): argument 'out' must be tuple of Tensors")
    return out


def _arg_max(name):
    def meta(a, dim=None, keepdim=False, out=None):
        spec = _spec(name, a, dim, keepdim, dt.int64, compute=a._dtype, one_dim=True)
        if a._dtype is dt.bool_:
            raise RuntimeError(f"{name}(): does not support bool input")
        if a._dtype.is_complex:
            raise RuntimeError(f"{name}(): does not support complex input")
        check_nonempty(a, dim, spec.dims,
                       (IndexError, f"{name}(): Expected reduction dim to be specified for input.numel() == 0."),
                       f"{name}(): Expected reduction dim {{d}} to have non-zero size.")
        _refuse_barebones(f"{name}_cpu", a)
        check_out_dtype(out, dt.int64)
        return spec
    return meta


def _aminmax_meta(a, dim=None, keepdim=False, out=None):
    spec = _spec("aminmax", a, dim, keepdim, a._dtype, one_dim=True)
    check_nonempty(a, dim, spec.dims,
                   (RuntimeError, "aminmax(): cannot compute aminmax over an empty dimension as the operation has "
                                  "no identity."),
                   "aminmax: Expected reduction dim {d} to have non-zero size.")
    if a._dtype.is_complex or a._dtype in dt.BAREBONES:
        raise NotImplementedError(f'"aminmax_cpu" not implemented for \'{_NAMES[a._dtype]}\'')
    if out is not None:
        for o in _out_pair("aminmax", out):
            check_out_dtype(o, a._dtype)
    return spec


# -- statistics ----------------------------------------------------------------------------------------------

def _var_like(name, pair=False):
    """var/std(a, dim, correction, keepdim): real result; var_mean/std_mean return (stat, mean)."""
    what = name if pair else "std and var"

    def meta(a, dim=None, correction=1, keepdim=False, out=None):
        if a._dtype.category < 2:
            raise RuntimeError(f"{what} only support floating point and complex dtypes")
        spec = _spec(name, a, dim, keepdim, a._dtype.to_real(), compute=a._dtype)
        out_numel = math.prod(spec.shape)
        if (a.numel() // out_numel if out_numel else 0) - correction <= 0:  # torch's reduction factor
            warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the "
                          "reduction factor (input numel divided by output numel).", UserWarning, stacklevel=5)
        return spec
    return meta


def _logsumexp_meta(a, dim, keepdim=False, out=None):
    if isinstance(dim, tuple) and not dim and not keepdim and a.ndim and a.numel():
        # torch reduces over all dims here but then fails to fit its keepdim result into a 0-d output
        raise RuntimeError(f"output with shape [] doesn't match the broadcast shape [{', '.join(['1'] * a.ndim)}]")
    dtype = a._dtype if a._dtype.category >= 2 else dt.get_default_dtype()
    if out is not None and _out_dtype("logsumexp", out).category < 2:
        raise RuntimeError(f"logsumexp(): Expected floating point type for result tensor, but got: "
                           f"{_NAMES[out._dtype]}")
    return _spec("logsumexp", a, dim, keepdim, dtype, compute=out._dtype if out is not None else dtype)


def check_float_input(op, a):
    if a._dtype.category < 2:
        raise RuntimeError(f"{op}: Expected a floating point or complex tensor as input. Got {_NAMES[a._dtype]}")


def check_norm_dtype(op, in_dtype, dtype):
    """dtype= of the linalg norms: float/complex like the input, and no narrowing of it."""
    if dtype is None:
        return
    if dtype.category < 2:
        raise RuntimeError(f"{op}: dtype should be floating point or complex, but got {_NAMES[dtype]}")
    if in_dtype.is_complex != dtype.is_complex:
        kind = "complex for complex" if in_dtype.is_complex else "real for real"
        raise RuntimeError(f"{op}: dtype should be {kind} inputs, but got {_NAMES[dtype]}")
    if dt.promote_types(in_dtype, dtype) is not dtype:
        raise RuntimeError(f"{op}: the dtype of the input ({_NAMES[in_dtype]}) should be convertible without "
                           f"narrowing to the specified dtype ({_NAMES[dtype]})")


def _fmt_ord(p):
    return f"{p:g}"


def _vector_norm_meta(a, ord=2, dim=None, keepdim=False, dtype=None, out=None):
    """linalg.vector_norm: float/complex input, real result; ord may be any real number or +-inf."""
    op = "linalg.vector_norm"
    if isinstance(ord, complex):
        raise RuntimeError(f"{op}: Expected a non-complex scalar as the order of norm.")
    check_float_input(op, a)
    check_norm_dtype(op, a._dtype, dtype)
    compute = dtype or a._dtype
    spec = _spec("norm", a, dim, keepdim, compute.to_real(), compute=compute)
    if a.numel() == 0 and (ord < 0 or ord == float("inf")):
        if _all_dims(dim):
            raise RuntimeError(f"{op} cannot compute the {_fmt_ord(ord)} norm on an empty tensor because the "
                               "operation does not have an identity")
        for d in spec.dims:
            if a._shape[d] == 0:
                raise RuntimeError(f"{op} cannot compute the {_fmt_ord(ord)} norm on the dimension {d}because this "
                                   "dimension is empty and the operation does not have an identity")
    check_out_dtype(out, spec.dtype)
    return spec


# -- logical and counting ------------------------------------------------------------------------------------

def _any_like(name):
    """any/all: bool result (uint8 for uint8 input); dim=() reduces nothing, as in torch."""
    def meta(a, dim=None, keepdim=False, out=None):
        dtype, compute = (dt.uint8 if a._dtype is dt.uint8 else dt.bool_), a._dtype
        if out is not None:
            if _out_dtype(name, out) not in (dt.bool_, dt.uint8):
                raise RuntimeError(f"{name} only supports bool tensor for result, got: {_NAMES[out._dtype]}")
            dtype = compute = out._dtype  # torch converts the input to out's dtype first (0.5 -> 0 for uint8)
        if isinstance(dim, tuple) and not dim:
            return Spec(tuple(a._shape), dtype, a._device, (), compute)
        return _spec(name, a, dim, keepdim, dtype, compute=compute)
    return meta


def _count_nonzero_meta(a, dim=None):
    return _spec("count_nonzero", a, dim, False, dt.int64, compute=a._dtype)


def _hash_tensor_meta(a, dim=None, keepdim=False, mode=0, out=None):
    """hash_tensor (mode 0): the xor of the elements' 64-bit patterns (floats widened to float64,
    integers and bools to int64) over dim, as uint64. No identity is assumed for empty inputs, as
    in torch (which reduces like amax there); dim=() means every dim."""
    spec = _spec("hash_tensor", a, dim, keepdim, dt.uint64, compute=dt.float64 if a._dtype.category == 2 else dt.int64)
    if mode != 0:
        raise RuntimeError(f"Unknown hash_tensor mode: {mode}")
    check_nonempty(a, dim, spec.dims,
                   (RuntimeError, "hash_tensor: Expected reduction dim to be specified for input.numel() == 0. "
                                  "Specify the reduction dim with the 'dim' argument."),
                   "hash_tensor: Expected reduction dim {d} to have non-zero size.")
    if (a._dtype.is_complex or a._dtype in dt.BAREBONES) and sh.numel(spec.shape):  # an empty result runs no kernel
        raise NotImplementedError(f'"xor_sum_cpu" not implemented for \'{_NAMES[a._dtype]}\'')
    if out is not None and _out_dtype("hash_tensor", out) is not dt.uint64:
        raise RuntimeError(f"Expected result to be of dtype uint64, but got {_NAMES[out._dtype]}")
    return spec


# -- declarations --------------------------------------------------------------------------------------------

def _declare(name, meta):
    return declare(name, meta=meta, family="reduction")


def _memoized(meta):
    """m.memoize_spec for sum/mean-like metas: the spec depends only on the input's signature and on
    dim, keepdim and dtype, so calls without out= (and with plain ints for dims) are cached."""
    cache = m.spec_cache()

    def cached(a, dim=None, keepdim=False, dtype=None, out=None):
        if out is not None or not isinstance(a, Tensor) or keepdim.__class__ is not bool or not (
                dim is None or dim.__class__ is int or (dim.__class__ is tuple and builtins.all(d.__class__ is int for d in dim))):
            return meta(a, dim, keepdim, dtype, out)
        key = (a._dtype, a._shape, a._device, dim, keepdim, dtype)
        spec = cache.get(key)
        if spec is None:
            spec = m.remember(cache, key, meta(a, dim, keepdim, dtype))
        return spec
    cached.uncached = meta
    return cached


sum = _declare("sum", _memoized(_sum_like("sum")))           # sum(a, dim, keepdim, dtype)
nansum = _declare("nansum", _memoized(_sum_like("nansum", nan=True)))
prod = _declare("prod", _memoized(_sum_like("prod", one_dim=True)))  # prod(a, dim: int|None, keepdim, dtype)
mean = _declare("mean", _memoized(_mean_like("mean")))
nanmean = _declare("nanmean", _mean_like("nanmean", nan=True))
amax = _declare("amax", _amax_like("amax", "max_values_cpu"))  # amax(a, dim, keepdim)
amin = _declare("amin", _amax_like("amin", "min_values_cpu"))
max = _declare("max", _max_all("max"))                       # max(a): 0-d
min = _declare("min", _max_all("min"))
max_dim = _declare("max_dim", _max_dim("max"))               # max_dim(a, dim: int, keepdim) -> (values, indices)
min_dim = _declare("min_dim", _max_dim("min"))
argmax = _declare("argmax", _arg_max("argmax"))              # argmax(a, dim: int|None, keepdim)
argmin = _declare("argmin", _arg_max("argmin"))
aminmax = _declare("aminmax", _aminmax_meta)                 # aminmax(a, dim: int|None, keepdim) -> (min, max)
var = _declare("var", _var_like("var"))                      # var(a, dim, correction, keepdim)
std = _declare("std", _var_like("std"))
var_mean = _declare("var_mean", _var_like("var_mean", pair=True))       # -> (var, mean)
std_mean = _declare("std_mean", _var_like("std_mean", pair=True))       # -> (std, mean)
logsumexp = _declare("logsumexp", _logsumexp_meta)           # logsumexp(a, dim, keepdim)
vector_norm = _declare("vector_norm", _vector_norm_meta)     # vector_norm(a, ord, dim, keepdim, dtype)
any = _declare("any", _any_like("any"))                      # any(a, dim, keepdim)
all = _declare("all", _any_like("all"))
count_nonzero = _declare("count_nonzero", _count_nonzero_meta)  # count_nonzero(a, dim)
hash_tensor = _declare("hash_tensor", _hash_tensor_meta)      # hash_tensor(a, dim, keepdim, mode)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's derivatives.yaml formulas, written with ops so they differentiate again (create_graph).
# A reduction's gradient is the output gradient with the reduced dims put back (restore) and
# broadcast over them (expand); the value-selecting ones (amax, max, ...) route it through a mask.
import math as _math  # noqa: E402

from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative, \
    nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.dispatch import get  # noqa: E402  (ops of families declared after this one)
from vibetensor.ops import creation as _c, elementwise as _ew, views as _views  # noqa: E402


def _restore(grad, x, dims, keepdim):
    """grad with the reduced dims back as size-1 dims (torch's restore_reduced_dims)."""
    if keepdim or x.ndim == 0:
        return grad
    for d in dims:  # ascending, so each lands where it was
        grad = _views.unsqueeze(grad, d)
    return grad


def _sum_backward(grad, x, dims, keepdim):
    return _views.expand(_restore(grad, x, dims, keepdim), tuple(x._shape))


def _count(x, dims):
    return _math.prod(x._shape[d] for d in dims)


def _by_count(grad, mask, dims):
    """The gradient split evenly among the selected elements (torch's scale_grad_by_count)."""
    return _ew.mul(_ew.div(grad, sum(mask, dims, True)), mask)


def _is_value(x, value):
    """Where x equals a selected value; NaN counts as equal to NaN (max/min propagate it)."""
    return _ew.logical_or(_ew.eq(x, value), _ew.logical_and(_ew.isnan(x), _ew.isnan(value)))


@_derivative(sum, name=lambda a, dim=None, *rest, **kw: "SumBackward0" if dim is None else "SumBackward1")
def _sum_derivative(ctx, grad, a, dim=None, keepdim=False, dtype=None):
    return _sum_backward(grad, a, reduce_dims(a, dim), keepdim)


@_derivative(nansum, save=0)
def _nansum_derivative(ctx, grad, a, dim=None, keepdim=False, dtype=None):
    # a product, not a where: an inf/NaN gradient meets a NaN input as NaN, as in torch
    return _ew.mul(_sum_backward(grad, a, reduce_dims(a, dim), keepdim), _ew.logical_not(_ew.isnan(a)))


@_derivative(mean)
def _mean_derivative(ctx, grad, a, dim=None, keepdim=False, dtype=None):
    dims = reduce_dims(a, dim)
    return _ew.div(_sum_backward(grad, a, dims, keepdim), _count(a, dims) or 1)  # an empty input: no division


@_derivative(nanmean, save=0)
def _nanmean_derivative(ctx, grad, a, dim=None, keepdim=False, dtype=None):
    """nanmean = nansum / (number of non-NaN): the count is a constant (0 for an all-NaN slice,
    whose gradient is then NaN, as in torch)."""
    dims = reduce_dims(a, dim)
    valid = _ew.logical_not(_ew.isnan(a))
    per_slice = _ew.div(_restore(grad, a, dims, keepdim), sum(valid, dims, True))
    return _ew.mul(_views.expand(per_slice, tuple(a._shape)), valid)


def _prod_name(a, dim=None, *rest, **kw):
    return "ProdBackward0" if dim is None else "ProdBackward1"


@_derivative(prod, save=(0, "result"), name=_prod_name)
def _prod_derivative(ctx, grad, a, dim=None, keepdim=False, dtype=None):
    if a.ndim == 0:
        return grad
    dims = reduce_dims(a, dim)
    grad, result = _restore(grad, a, dims, keepdim), _restore(ctx.result, a, dims, keepdim)
    if not bool(any(_ew.eq(a, 0))):  # one host check, as torch
        return _ew.mul(grad, _conj(_ew.div(result, a)))
    if dim is None:  # the product of all elements: one flat slice
        others = _views.reshape(_product_of_others(_views.reshape(a, (a.numel(),)), 0), tuple(a._shape))
    else:
        others = _product_of_others(a, dims[0])
    return _ew.mul(grad, _conj(others))


def _product_of_others(x, d):
    """y[..., i, ...] = prod_{j != i} x[..., j, ...] along dim d, exact with zeros in x: the product
    of the exclusive cumulative products from both ends (torch's prod_safe_zeros_backward)."""
    n = x._shape[d]
    if x.numel() == 0:
        return x
    cat, cumprod, index_select = (get(name) for name in ("cat", "cumprod", "index_select"))
    ones = _c.full(x._shape[:d] + (1,) + x._shape[d + 1:], 1, x._dtype, device=x._device)
    reverse = _c.arange(n - 2, -1, -1, dt.int64, device=x._device)  # flips the n - 1 trailing elements
    before = cumprod(cat([ones, _views.narrow(x, d, 0, n - 1)], d), d)  # x[0] * ... * x[i-1]
    after = cumprod(cat([ones, index_select(_views.narrow(x, d, 1, n - 1), d, reverse)], d), d)
    after = index_select(after, d, _c.arange(n - 1, -1, -1, dt.int64, device=x._device))  # x[i+1] * ... * x[n-1]
    return _ew.mul(before, after)


def _amax_derivative(op):
    @_derivative(op, save=(0, "result"))
    def formula(ctx, grad, a, dim=None, keepdim=False):
        dims = reduce_dims(a, dim)
        mask = _ew.eq(a, _restore(ctx.result, a, dims, keepdim))  # NaN never equals: NaN gradients, as torch
        return _by_count(_restore(grad, a, dims, keepdim), mask, dims)
    return formula


_amax_derivative(amax)
_amax_derivative(amin)


def _max_all_derivative(op, name):
    @_derivative(op, save=(0, "result"), name=name)
    def formula(ctx, grad, a):
        """The gradient split evenly among all elements equal to the result (torch's
        evenly_distribute_backward)."""
        mask = _is_value(a, ctx.result)
        return _ew.mul(mask, _ew.div(grad, sum(mask, None, False)))
    return formula


_max_all_derivative(max, "MaxBackward1")
_max_all_derivative(min, "MinBackward1")


def _select_backward(grad, x, dim, indices, keepdim):
    """The gradient of the element an index names (torch's value_selecting_reduction_backward):
    a scatter of grad into zeros, written as a where over positions along dim."""
    if x.ndim == 0:
        return grad
    d = sh.wrap_dim(dim, x.ndim)
    grad, indices = _restore(grad, x, (d,), keepdim), _restore(indices, x, (d,), keepdim)
    n = x._shape[d]
    positions = _views.view(_c.arange(0, n, 1, dt.int64, device=x._device), (n,) + (1,) * (x.ndim - d - 1))
    return _ew.where(_ew.eq(positions, indices), grad, 0.0)


def _max_dim_derivative(op, name):
    @_derivative(op, save=("result",), name=name)
    def formula(ctx, grads, a, dim, keepdim=False):
        return _select_backward(grads[0], a, dim, ctx.result[1], keepdim)
    return formula


_max_dim_derivative(max_dim, "MaxBackward0")
_max_dim_derivative(min_dim, "MinBackward0")


@_derivative(aminmax, save=(0, "result"))
def _aminmax_derivative(ctx, grads, a, dim=None, keepdim=False):
    dims = reduce_dims(a, dim)
    lo, hi = (_restore(v, a, dims, keepdim) for v in ctx.result)
    g_lo, g_hi = (_restore(g, a, dims, keepdim) for g in grads)
    return _ew.add(_by_count(g_lo, _ew.eq(a, lo), dims), _by_count(g_hi, _ew.eq(a, hi), dims))


# -- statistics


def _var_backward(grad, x, dims, correction, keepdim):
    """2 / (N - correction) * grad * (x - mean): torch's var_backward (a float division, so
    N == correction gives inf like C++; no conjugate: the variance is real)."""
    n = _count(x, dims) - correction
    scale = 2.0 / n if n else _math.copysign(_math.inf, n)
    centred = _ew.sub(x, mean(x, dims, True))
    return _ew.mul(_ew.mul(scale, _restore(grad, x, dims, keepdim)), centred)


def _std_grad(grad, std, x, dims, keepdim):
    """d std = d var / (2 std), 0 where std == 0 (torch's std_backward)."""
    return _ew.where(_ew.eq(std, 0), 0.0, _ew.div(grad, _ew.mul(std, 2)))


def _mean_backward(grad, x, dims, keepdim):
    return _ew.div(_sum_backward(grad, x, dims, keepdim), _count(x, dims) or 1)


@_derivative(var, save=0)
def _var_derivative(ctx, grad, a, dim=None, correction=1, keepdim=False):
    return _var_backward(grad, a, reduce_dims(a, dim), correction, keepdim)


@_derivative(std, save=(0, "result"))
def _std_derivative(ctx, grad, a, dim=None, correction=1, keepdim=False):
    dims = reduce_dims(a, dim)
    return _var_backward(_std_grad(grad, ctx.result, a, dims, keepdim), a, dims, correction, keepdim)


@_derivative(var_mean, save=0)
def _var_mean_derivative(ctx, grads, a, dim=None, correction=1, keepdim=False):
    dims = reduce_dims(a, dim)
    return _ew.add(_var_backward(grads[0], a, dims, correction, keepdim), _mean_backward(grads[1], a, dims, keepdim))


@_derivative(std_mean, save=(0, "result"))
def _std_mean_derivative(ctx, grads, a, dim=None, correction=1, keepdim=False):
    dims = reduce_dims(a, dim)
    g_var = _std_grad(grads[0], ctx.result[0], a, dims, keepdim)
    return _ew.add(_var_backward(g_var, a, dims, correction, keepdim), _mean_backward(grads[1], a, dims, keepdim))


@_derivative(logsumexp, save=(0, "result"))
def _logsumexp_derivative(ctx, grad, a, dim, keepdim=False):
    dims = reduce_dims(a, dim)
    result = _restore(ctx.result, a, dims, keepdim)
    return _ew.mul(_restore(grad, a, dims, keepdim), _conj(_ew.exp(_ew.sub(a, result))))


def norm_backward(grad, x, p, norm, dims, keepdim):
    """The gradient of the p-norm over dims (torch's norm_backward): sgn(x) |x|^(p-1) / norm^(p-1),
    with torch's subgradient 0 where the norm is 0."""
    grad, norm = _restore(grad, x, dims, keepdim), _restore(norm, x, dims, keepdim)
    p = float(p)
    if p == 0:  # piecewise constant: no gradient at all (torch leaves .grad unset)
        return None
    if p == 1:
        return _ew.mul(_ew.sgn(x), grad)
    if p == 2:
        return _ew.mul(grad, _ew.where(_ew.eq(norm, 0), 0.0, _ew.div(x, norm)))
    if _math.isinf(p):  # the gradient of amax(|x|), respecting NaN
        mag = _ew.abs(x)
        mask = _ew.logical_or(_ew.eq(mag, norm), _ew.isnan(mag))
        return _ew.mul(_ew.sgn(x), _by_count(grad, mask, dims))
    if p < 1:
        scaled = _ew.mul(_ew.sgn(x), _ew.where(_ew.eq(x, 0), 0.0, _ew.pow(_ew.abs(x), p - 1)))
        return _ew.mul(_ew.mul(scaled, grad), _ew.pow(norm, 1 - p))
    scaled = _ew.mul(_ew.sgn(x), _ew.pow(_ew.abs(x), p - 1)) if p < 2 else _ew.mul(x, _ew.pow(_ew.abs(x), p - 2))
    scale = _ew.where(_ew.eq(norm, 0), 0.0, _ew.div(grad, _ew.pow(norm, p - 1)))
    return _ew.mul(scaled, scale)


@_derivative(vector_norm, save=(0, "result"), name="LinalgVectorNormBackward0")
def _vector_norm_derivative(ctx, grad, a, ord=2, dim=None, keepdim=False, dtype=None):
    return norm_backward(grad, a, ord, ctx.result, reduce_dims(a, dim), keepdim)


for _op in (argmax, argmin, any, all, count_nonzero, hash_tensor):
    _nondifferentiable(_op)
