"""CPU kernels of the reduction ops, on NumPy.

The meta function (ops/reduction.py) validates and picks the result dtype and the dtype the input
is reduced in; a kernel converts the input (half types widen to float32, as torch's CPU kernels
accumulate), reduces with NumPy over the wrapped dims, and writes into the output's bytes.
"""
import math

import numpy as np

from vibetensor.backends.cpu import np_compute
from vibetensor.dispatch import DispatchKey, get
from vibetensor.ops import reduction as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import array, own_array

CPU = DispatchKey.CPU


def _input(a, compute):
    """The input as an ndarray in the dtype the kernel reduces in. dtype= casts first (complex to
    real keeps the real part, as torch), then half types widen to float32."""
    x = array(a)
    if compute is not a._dtype:
        if x.dtype.kind == "c" and compute.kind != "c":
            x = x.real
        x = x.astype(compute.np)
    ct = np_compute(compute)
    return x if x.dtype == ct else x.astype(ct)


def write(name, out, spec, value):
    res = output(name, out, spec.shape, spec.dtype, spec.device)
    if isinstance(value, (np.ndarray, np.generic)):
        array(res)[...] = value  # an unsafe cast like np.copyto's, without its ~1 us of dispatch
    else:
        np.copyto(array(res), value, casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


def fresh(name, out, spec, value):
    """write() for a value the kernel has just made (never an input or a view of one): when it
    already has the result's dtype and shape and owns contiguous memory, it becomes the result."""
    if out is None:
        if isinstance(value, np.generic):
            value = np.array(value)
        if value.dtype == spec.dtype.np and value.shape == spec.shape and value.base is None \
                and value.flags.c_contiguous and spec.device.type == "cpu":
            return own_array(value, spec.shape, spec.dtype)
    return write(name, out, spec, value)


def _count(shape, dims):
    return math.prod(shape[d] for d in dims)


def _squeeze(x, dims, keepdim):
    return x if keepdim or not dims else np.squeeze(x, axis=dims)


# -- sum, prod, mean -----------------------------------------------------------------------------------------

def _sum_kernel(name, reduce):
    op = get(name)
    meta = op.meta

    def kernel(a, dim=None, keepdim=False, dtype=None, out=None):
        spec = meta(a, dim, keepdim, dtype, out)
        x = _input(a, spec.compute)
        return fresh(name, out, spec, reduce(x, spec.dims, keepdim))
    op.register(CPU, kernel)


def _mean(x, dims, keepdim):
    return np.sum(x, axis=dims, keepdims=keepdim) / _count(x.shape, dims)


def _nanmean(x, dims, keepdim):
    valid = np.sum(~np.isnan(x), axis=dims, keepdims=keepdim)
    return np.nansum(x, axis=dims, keepdims=keepdim) / valid


def _nansum(x, dims, keepdim):
    f = np.nansum if x.dtype.kind == "f" else np.sum
    return f(x, axis=dims, keepdims=keepdim)


_sum_kernel("sum", lambda x, dims, keepdim: np.add.reduce(x, axis=dims, keepdims=keepdim))  # np.sum minus its wrapper
_sum_kernel("nansum", _nansum)
_sum_kernel("prod", lambda x, dims, keepdim: np.multiply.reduce(x, axis=dims, keepdims=keepdim))
_sum_kernel("mean", _mean)
_sum_kernel("nanmean", _nanmean)


# -- max / min family ----------------------------------------------------------------------------------------
# NumPy's max/min propagate NaN and its argmax/argmin return the first occurrence, NaN counting as
# the extreme: torch's CPU semantics exactly.

def _amax_kernel(name, reduce):
    op = get(name)
    meta = op.meta

    def kernel(a, dim=None, keepdim=False, out=None):
        spec = meta(a, dim, keepdim, out)
        return write(name, out, spec, reduce(_input(a, a._dtype), axis=spec.dims, keepdims=keepdim))
    op.register(CPU, kernel)


def _max_all_kernel(name, reduce):
    op = get(name)
    meta = op.meta

    def kernel(a, out=None):
        spec = meta(a, out)
        return write(name, out, spec, reduce(_input(a, a._dtype)))
    op.register(CPU, kernel)


def _arg(x, dims, keepdim, find):
    """Indices of the extreme along one dim, or over the flattened input when all dims reduce."""
    if x.ndim == 0:
        return np.zeros((), np.int64)
    if len(dims) == 1:
        return find(x, axis=dims[0], keepdims=keepdim)
    flat = find(x.reshape(-1))
    return np.reshape(flat, (1,) * x.ndim) if keepdim else flat


def _arg_kernel(name, find):
    op = get(name)
    meta = op.meta

    def kernel(a, dim=None, keepdim=False, out=None):
        spec = meta(a, dim, keepdim, out)
        return write(name, out, spec, _arg(_input(a, a._dtype), spec.dims, keepdim, find))
    op.register(CPU, kernel)


def _max_dim_kernel(name, reduce, find, result):
    op = get(name)
    meta = op.meta

    def kernel(a, dim, keepdim=False, out=None):
        spec = meta(a, dim, keepdim, out)
        x = _input(a, a._dtype)
        values_out, indices_out = out if out is not None else (None, None)
        values = write(name, values_out, spec, reduce(x, axis=spec.dims, keepdims=keepdim))
        indices = write(name, indices_out, spec._replace(dtype=dt.int64), _arg(x, spec.dims, keepdim, find))
        return result(values, indices)
    op.register(CPU, kernel)


def _aminmax(a, dim=None, keepdim=False, out=None):
    spec = r.aminmax.meta(a, dim, keepdim, out)
    x = _input(a, a._dtype)
    lo_out, hi_out = out if out is not None else (None, None)
    lo = write("aminmax", lo_out, spec, np.amin(x, axis=spec.dims, keepdims=keepdim))
    hi = write("aminmax", hi_out, spec, np.amax(x, axis=spec.dims, keepdims=keepdim))
    return r.return_types.aminmax(lo, hi)


_amax_kernel("amax", np.amax)
_amax_kernel("amin", np.amin)
_max_all_kernel("max", np.amax)
_max_all_kernel("min", np.amin)
_arg_kernel("argmax", np.argmax)
_arg_kernel("argmin", np.argmin)
_max_dim_kernel("max_dim", np.amax, np.argmax, r.return_types.max)
_max_dim_kernel("min_dim", np.amin, np.argmin, r.return_types.min)
r.aminmax.register(CPU, _aminmax)


# -- statistics ----------------------------------------------------------------------------------------------

def _moments(a, dims, correction, keepdim):
    """(variance, mean) over dims. torch's CPU Welford accumulates in double; so do we."""
    x = array(a).astype(np.complex128 if a._dtype.is_complex else np.float64)
    n = _count(x.shape, dims)
    kept = tuple(s for i, s in enumerate(x.shape) if i not in dims)
    g = np.moveaxis(x, dims, tuple(range(x.ndim - len(dims), x.ndim))).reshape(kept + (n,))  # (*kept, N)
    mu = np.sum(g, axis=-1, keepdims=True) / n
    d = g - mu
    sq = d.real * d.real + d.imag * d.imag if d.dtype.kind == "c" else d * d
    var = np.sum(sq, axis=-1) / max(0.0, n - correction)
    mean = _welford_mean(g, mu[..., 0])
    if keepdim:
        return np.expand_dims(var, dims), np.expand_dims(mean, dims)
    return var, mean


def _welford_mean(g, mu):
    """The mean as torch's Welford update leaves it (mean += (x - mean) / k): an inf is kept only as
    a group's last element; an earlier one meets the next element as inf - inf = NaN."""
    if g.dtype.kind == "c" or g.size == 0 or np.isfinite(mu).all():
        return mu
    bad = np.sum(~np.isfinite(g), axis=-1)
    last = g[..., -1]
    return np.where(bad == 0, mu, np.where((bad == 1) & np.isinf(last), last, np.nan))


def _var_kernel(name, sqrt, with_mean):
    op = get(name)
    meta = op.meta

    def kernel(a, dim=None, correction=1, keepdim=False, out=None):
        spec = meta(a, dim, correction, keepdim, out)
        var, mu = _moments(a, spec.dims, correction, keepdim)
        # rounded to the result dtype even when out= is wider: torch computes, then copies into out
        stat = (np.sqrt(var) if sqrt else var).astype(np_compute(spec.dtype))
        if not with_mean:
            return write(name, out, spec, stat)
        return write(name, None, spec, stat), write(name, None, spec._replace(dtype=a._dtype), mu)
    op.register(CPU, kernel)


_var_kernel("var", False, False)
_var_kernel("std", True, False)
_var_kernel("var_mean", False, True)
_var_kernel("std_mean", True, True)


def _logsumexp(a, dim, keepdim=False, out=None):
    spec = r.logsumexp.meta(a, dim, keepdim, out)
    x, dims, acc = _input(a, spec.dtype), spec.dims, np_compute(spec.compute)
    if x.size == 0:
        return write("logsumexp", out, spec, np.log(np.sum(np.exp(x), axis=dims, keepdims=keepdim)))
    # shift by the max for stability; an infinite max shifts by 0 so inf - inf never makes NaN.
    # As torch: exp in the input's dtype, then sum and log in the result's (out= may be wider).
    shift = np.amax(x.real, axis=dims, keepdims=True)
    shift = np.where(np.isinf(shift), 0, shift).astype(shift.dtype)
    total = np.log(np.sum(np.exp(x - shift).astype(acc), axis=dims, keepdims=keepdim))
    return write("logsumexp", out, spec, total + _squeeze(shift, dims, keepdim).astype(acc))


def _vector_norm(a, ord=2, dim=None, keepdim=False, dtype=None, out=None):
    spec = r.vector_norm.meta(a, ord, dim, keepdim, dtype, out)
    mag, dims = np.abs(_input(a, spec.compute)), spec.dims
    if ord == 2:
        value = np.sqrt(np.sum(mag * mag, axis=dims, keepdims=keepdim))
    elif ord == 1:
        value = np.sum(mag, axis=dims, keepdims=keepdim)
    elif ord == float("inf"):
        value = np.amax(mag, axis=dims, keepdims=keepdim)
    elif ord == -float("inf"):
        value = np.amin(mag, axis=dims, keepdims=keepdim)
    elif ord == 0:
        value = np.sum(mag != 0, axis=dims, keepdims=keepdim)
    else:
        p = mag.dtype.type(ord)
        value = np.power(np.sum(np.power(mag, p), axis=dims, keepdims=keepdim), 1 / p)
    return write("norm", out, spec, value)


r.logsumexp.register(CPU, _logsumexp)
r.vector_norm.register(CPU, _vector_norm)


# -- logical and counting ------------------------------------------------------------------------------------

def _any_kernel(name, reduce):
    op = get(name)
    meta = op.meta

    def kernel(a, dim=None, keepdim=False, out=None):
        spec = meta(a, dim, keepdim, out)
        return write(name, out, spec, reduce(_input(a, spec.compute), axis=spec.dims, keepdims=keepdim))
    op.register(CPU, kernel)


def _count_nonzero(a, dim=None):
    spec = r.count_nonzero.meta(a, dim)
    return write("count_nonzero", None, spec, np.sum(_input(a, a._dtype) != 0, axis=spec.dims))


_any_kernel("any", np.any)
_any_kernel("all", np.all)
r.count_nonzero.register(CPU, _count_nonzero)


def _hash_tensor(a, dim=None, keepdim=False, mode=0, out=None):
    spec = r.hash_tensor.meta(a, dim, keepdim, mode, out)
    bits = array(a).astype(spec.compute.np).view(np.uint64)  # float64 / int64 patterns, as torch's upcast
    return fresh("hash_tensor", out, spec, np.bitwise_xor.reduce(bits, axis=spec.dims, keepdims=keepdim))


r.hash_tensor.register(CPU, _hash_tensor)
