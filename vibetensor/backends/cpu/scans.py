"""CPU kernels of the scan ops, on NumPy.

As torch's CPU kernels, scans accumulate in the wider "acc" type (float32 in double, half types in
float32, integers in int64) and round each output once. Scans run along the last axis of a view
with the scan dim moved there; a 0-d input is scanned as one element.
"""
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.backends.cpu.elementwise import cmul
from vibetensor.backends.cpu.reduction import write
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import scans as s
from vibetensor.ops.sorting import return_types
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU

# torch's at::acc_type on CPU
_ACC = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.complex64): np.dtype(np.complex128)}


def acc_dtype(ct):
    if ct.kind in "biu":
        return np.dtype(np.uint64) if ct == np.uint64 else np.dtype(np.int64)
    return _ACC.get(ct, ct)


def along_last(x, dim):
    """x with `dim` moved last (0-d as one element): the layout every kernel here scans in."""
    return x.reshape(1) if x.ndim == 0 else np.moveaxis(x, dim, -1)


def back(y, dim, shape):
    """Undo along_last."""
    return y.reshape(shape) if len(shape) == 0 else np.moveaxis(y, -1, dim)


def write_pair(op, out, spec, values, indices):
    """Write the (values, indices) of an op (in its result layout) into new tensors or out=(v, i)."""
    values_out, indices_out = s.out_pair(op, out)
    v = write(op, values_out, spec, values)
    i = write(op, indices_out, spec._replace(dtype=dt.int64), indices)
    return getattr(return_types, op)(v, i)


def _scan(x, dim, ufunc, acc, reverse=False):
    """ufunc.accumulate along dim in dtype acc, from the end when reverse."""
    v = along_last(x, dim)
    if reverse:
        v = v[..., ::-1]
    v = v.astype(acc, copy=False)
    if ufunc is np.multiply and acc.kind == "c" and v.shape[-1]:
        v = _times_one(v)
    y = ufunc.accumulate(v, axis=-1)
    if reverse:
        y = y[..., ::-1]
    return back(y, dim, x.shape)


def _times_one(v):
    """v with its first column multiplied by 1 + 0i: torch's complex cumprod starts from 1 and
    multiplies each element in, so an infinite part makes a NaN in the other one (inf * 0)."""
    v = v.copy()
    v[..., 0] = cmul(np.ones((), v.dtype), v[..., 0])
    return v


def _cumulative_kernel(op, ufunc):
    meta = op.meta
    name = op.name.split("::")[-1]

    def kernel(a, dim, dtype=None, reverse=False, out=None):
        spec = meta(a, dim, dtype, reverse, out)
        x = operand(a, spec.compute.np)  # dtype=/out= convert the input first, as torch
        x = x.astype(np_compute(spec.compute), copy=False)
        return write(name, out, spec, _scan(x, spec.dim, ufunc, acc_dtype(x.dtype), reverse))
    op.register(CPU, kernel)


_cumulative_kernel(s.cumsum, np.add)
_cumulative_kernel(s.cumprod, np.multiply)


def _cummaxmin(op, ufunc):
    """Running extreme; torch's index is the latest element that won (ties go to the later one, so
    x >= best wins), and a NaN wins from where it appears until the next NaN."""
    meta = op.meta
    name = op.name.split("::")[-1]

    def kernel(a, dim, out=None):
        spec = meta(a, dim, out)
        x = along_last(array(a), spec.dim)
        x = x.astype(np_compute(a._dtype), copy=False)
        values = ufunc.accumulate(x, axis=-1) if x.size else x.copy()
        won = values == x
        if x.dtype.kind in "fc":
            won |= np.isnan(x)
        position = np.arange(x.shape[-1], dtype=np.int64)
        indices = np.maximum.accumulate(np.where(won, position, 0), axis=-1) if x.size else won.astype(np.int64)
        return write_pair(name, out, spec, back(values, spec.dim, a._shape), back(indices, spec.dim, a._shape))
    op.register(CPU, kernel)


_cummaxmin(s.cummax, np.maximum)
_cummaxmin(s.cummin, np.minimum)


def _complex_logaddexp(acc, x):
    """torch's complex _log_add_exp_helper: max/min by real part, NaN infectious, equal infinite
    real parts handled without inf - inf."""
    swap = acc.real < x.real
    hi, lo = np.where(swap, x, acc), np.where(swap, acc, x)
    out = np.log1p(np.exp(lo - hi)) + hi
    same_inf = ~np.isfinite(lo.real) & (lo.real == hi.real)
    out = np.where(same_inf, np.where(lo.real < 0, lo, np.log(np.exp(lo) + np.exp(hi))), out)
    return np.where(np.isnan(lo) | np.isnan(hi), np.nan + 0j * np.nan, out)


def _complex_logcumsumexp(x, dim, acc, reverse):
    v = along_last(x, dim).astype(acc)
    if reverse:
        v = v[..., ::-1]
    y = np.empty_like(v)
    run = np.full(v.shape[:-1], -np.inf, dtype=acc)
    for k in range(v.shape[-1]):
        run = y[..., k] = _complex_logaddexp(run, v[..., k])
    if reverse:
        y = y[..., ::-1]
    return back(y, dim, x.shape)


def _logcumsumexp(a, dim, reverse=False, out=None):
    spec = s.logcumsumexp.meta(a, dim, reverse, out)
    x = array(a).astype(np_compute(a._dtype), copy=False)
    acc = acc_dtype(x.dtype)
    if x.dtype.kind == "c":
        y = _complex_logcumsumexp(x, spec.dim, acc, reverse)
    else:  # np.logaddexp is torch's log1p(exp(min - max)) + max, and keeps +-inf
        y = _scan(x, spec.dim, np.logaddexp, acc, reverse)
    return write("logcumsumexp", out, spec, y)


s.logcumsumexp.register(CPU, _logcumsumexp)
