"""CPU kernels of the sorting ops, on NumPy.

Ordering runs on a "key" array NumPy sorts the way torch does: NaN last (the greatest value),
-0.0 equal to 0.0, bfloat16 widened to float32 (exactly). Every sort is NumPy's stable sort, so
ties keep their input order: torch's order for stable=True, and one valid order where torch's
unstable sort leaves it unspecified. Values are then read from the input itself (exact bits).
Ops along one dim work on a view with that dim moved last (backends/cpu/scans.along_last).
"""
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.backends.cpu.reduction import write
from vibetensor.backends.cpu.scans import along_last, back, write_pair
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import sorting as s
from vibetensor.ops.meta import output
from vibetensor.tensor.tensor import array, from_array

CPU = DispatchKey.CPU


def _key(x):
    """An array NumPy orders as torch does (half types widen exactly to float32)."""
    return x.astype(np.float32) if x.dtype.name == "bfloat16" else x


def _as(x, d):
    """A tensor or Python number as an ndarray converted to dtype d (rounded there), then widened for
    comparisons (half types to float32)."""
    return operand(x, d.np).astype(np_compute(d), copy=False)


def argsort(key, descending=False):
    """Stable argsort along the last axis. Descending keeps equal elements in input order: sort the
    reversed row ascending, then reverse the result and map positions back."""
    if not descending:
        return np.argsort(key, axis=-1, kind="stable")
    n = key.shape[-1]
    return (n - 1) - np.argsort(key[..., ::-1], axis=-1, kind="stable")[..., ::-1]


def _pair(op, out, spec, values, indices):
    """Write (values, indices), computed with the op's dim last, in the op's layout."""
    return write_pair(op, out, spec, back(values, spec.dim, spec.shape), back(indices, spec.dim, spec.shape))


# -- sort, topk, kthvalue -----------------------------------------------------------------------------------

def _sort(a, dim=-1, descending=False, stable=False, out=None):
    spec = s.sort.meta(a, dim, descending, stable, out)
    x = along_last(array(a), spec.dim)
    order = argsort(_key(x), descending)
    return _pair("sort", out, spec, np.take_along_axis(x, order, -1), order)


def _topk_order(key, k, largest):
    """Positions of the k largest (smallest) along the last axis, best first; NaN counts as the
    largest, as in torch. A small k partitions first, then sorts only the k candidates."""
    n = key.shape[-1]
    if k == 0 or 8 * k > n:
        return argsort(key, largest)[..., :k]
    part = np.argpartition(key, n - k if largest else k - 1, axis=-1)
    candidates = np.sort(part[..., n - k:] if largest else part[..., :k], axis=-1)  # input order: stable ties
    order = argsort(np.take_along_axis(key, candidates, -1), largest)
    return np.take_along_axis(candidates, order, -1)


def _topk(a, k, dim=-1, largest=True, sorted=True, out=None):
    spec = s.topk.meta(a, k, dim, largest, sorted, out)
    x = along_last(array(a), spec.dim)
    order = _topk_order(_key(x), k, largest)
    return _pair("topk", out, spec, np.take_along_axis(x, order, -1), order)


def _pick(op, out, spec, a, x, position, order=None):
    """(values, indices) at one position per row of the stable ascending order (`position` is (..., 1))."""
    order = argsort(_key(x)) if order is None else order
    picked = np.take_along_axis(order, position, -1)
    kept = tuple(1 if i == spec.dim else n for i, n in enumerate(a._shape))  # the reduced dim kept as 1
    values = back(np.take_along_axis(x, picked, -1), spec.dim, kept)
    return write_pair(op, out, spec, values.reshape(spec.shape), back(picked, spec.dim, kept).reshape(spec.shape))


def _kthvalue(a, k, dim=-1, keepdim=False, out=None):
    spec = s.kthvalue.meta(a, k, dim, keepdim, out)
    x = along_last(array(a), spec.dim)
    position = np.full(x.shape[:-1] + (1,), k - 1, np.int64)
    return _pick("kthvalue", out, spec, a, x, position)


s.sort.register(CPU, _sort)
s.topk.register(CPU, _topk)
s.kthvalue.register(CPU, _kthvalue)


# -- median, mode ----------------------------------------------------------------------------------------------

def _nan_count(key):
    return np.isnan(key).sum(axis=-1, keepdims=True) if key.dtype.kind == "f" else np.zeros(key.shape[:-1] + (1,),
                                                                                             np.int64)


def _median_position(key, ignore_nan):
    """torch's median index: the lower middle of the stable order; with a NaN (median), the first NaN;
    nanmedian the lower middle of the non-NaN values ((n - 1) // 2 truncated toward zero, as C)."""
    n, nans = key.shape[-1], _nan_count(key)
    if ignore_nan:
        return np.maximum((n - nans - 1) // 2, 0)
    return np.where(nans > 0, n - nans, (n - 1) // 2)


def _median_dim_kernel(name, op, ignore_nan):
    def kernel(a, dim, keepdim=False, out=None):
        spec = op.meta(a, dim, keepdim, out)
        x = along_last(array(a), spec.dim)
        return _pick(name, out, spec, a, x, _median_position(_key(x), ignore_nan))
    op.register(CPU, kernel)


def _median_all_kernel(name, op, ignore_nan):
    def kernel(a, out=None):
        spec = op.meta(a)
        key = _key(array(a).reshape(-1))
        if key.dtype.kind == "f":
            nan = np.isnan(key)
            if ignore_nan:
                key = key[~nan]
            elif nan.any():
                key = key[:0]
        if key.size == 0:  # torch returns NaN (cast to the dtype for integers)
            return write(name, out, spec, np.array(np.nan))
        return write(name, out, spec, np.partition(key, (key.size - 1) // 2)[(key.size - 1) // 2])
    op.register(CPU, kernel)


_median_dim_kernel("median", s.median_dim, False)
_median_dim_kernel("nanmedian", s.nanmedian_dim, True)
_median_all_kernel("median", s.median, False)
_median_all_kernel("nanmedian", s.nanmedian, True)


def _mode(a, dim=-1, keepdim=False, out=None):
    """The most frequent value (the smallest among equally frequent ones); its index is the last of
    its run in the stable order (torch leaves which equal element unspecified). NaNs never match."""
    spec = s.mode.meta(a, dim, keepdim, out)
    x = along_last(array(a), spec.dim)
    key = _key(x)
    order = argsort(key)
    key = np.take_along_axis(key, order, -1)
    n = key.shape[-1]
    starts = np.ones(key.shape, bool)
    starts[..., 1:] = key[..., 1:] != key[..., :-1]
    ends = np.ones(key.shape, bool)
    ends[..., :-1] = starts[..., 1:]
    position = np.arange(n)
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=-1)
    count = np.where(ends, position - run_start + 1, 0)
    best = np.argmax(count, axis=-1)[..., None]  # the first maximum: the smallest value
    return _pick("mode", out, spec, a, x, best, order)


s.mode.register(CPU, _mode)


# -- unique --------------------------------------------------------------------------------------------------

def _rows(a, dim):
    """(x, key) as 2-D arrays of rows: the elements (dim None) or the slices along dim."""
    x = array(a)
    if dim is None:
        x = x.reshape(-1, 1)
    else:
        x = np.moveaxis(x, dim, 0)
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    return x, _key(x)


def _groups(key_rows):
    """Whether each row starts a new group of equal consecutive rows (NaN equals nothing)."""
    first = np.ones(key_rows.shape[0], bool)
    if key_rows.shape[0]:
        first[1:] = np.any(key_rows[1:] != key_rows[:-1], axis=1)
    return first


def _unique_results(a, dim, x, first, order):
    """(output, inverse, counts) from the rows in `order` and where groups start."""
    n = x.shape[0]
    picked = x[order][first]
    inverse = np.empty(n, np.int64)
    inverse[order] = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, n))
    if dim is None:
        output_array, inverse = picked.reshape(-1), inverse.reshape(a._shape)
    else:
        rest = tuple(np.moveaxis(array(a), dim, 0).shape[1:])
        output_array = np.moveaxis(picked.reshape((picked.shape[0],) + rest), 0, dim)
    return tuple(from_array(v if v.flags.c_contiguous else v.copy())  # (np.ascontiguousarray makes 0-d 1-d)
                 for v in (output_array, inverse, counts.astype(np.int64)))


def _unique(a, sorted=True, return_inverse=False, return_counts=False, dim=None):
    spec = s.unique.meta(a, sorted, return_inverse, return_counts, dim)
    x, key = _rows(a, spec.dim)
    if key.shape[1] == 1:
        order = np.argsort(key[:, 0], kind="stable")
    else:  # rows in lexicographic order (lexsort's last key is the primary one)
        order = np.lexsort(key.T[::-1]) if key.shape[0] else np.arange(0)
    return _unique_results(a, spec.dim, x, _groups(key[order]), order)


def _unique_consecutive(a, return_inverse=False, return_counts=False, dim=None):
    spec = s.unique_consecutive.meta(a, return_inverse, return_counts, dim)
    x, key = _rows(a, spec.dim)
    return _unique_results(a, spec.dim, x, _groups(key), np.arange(x.shape[0]))


s.unique.register(CPU, _unique)
s.unique_consecutive.register(CPU, _unique_consecutive)


# -- searchsorted, bucketize, isin ------------------------------------------------------------------------------

def _binary_search(seq, values, right):
    """torch's cus_lower_bound / cus_upper_bound for every value at once: (B, n) rows, (B, m) values.
    The comparisons are torch's (!(mid >= v) goes right), which fixes where NaNs land."""
    lo = np.zeros(values.shape, np.int64)
    n = seq.shape[-1]
    if n == 0:
        return lo
    hi = np.full(values.shape, n, np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = lo + ((hi - lo) >> 1)
        at = np.take_along_axis(seq, np.minimum(mid, n - 1), -1)
        go_right = ~(at > values) if right else ~(at >= values)
        lo = np.where(active & go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def _search(op, spec, seq, values, right, sorter, out):
    s_arr, v_arr = _as(seq, spec.compute), _as(values, spec.compute)
    n = s_arr.shape[-1]
    if n == 0 or v_arr.size == 0:
        return write(op, out, spec, np.zeros(spec.shape, np.int64))
    rows = s_arr.reshape(-1, n)
    vals = v_arr.reshape(1, -1) if seq.ndim == 1 else v_arr.reshape(rows.shape[0], -1)
    if sorter is not None:
        order = array(sorter).reshape(rows.shape)
        if order.size and (order.min() < 0 or order.max() >= n):
            raise RuntimeError("torch.searchsorted(): sorter index out of range")
        rows = np.take_along_axis(rows, order, -1)
    found = _binary_search(rows, vals, right)
    return write(op, out, spec, found.reshape(spec.shape))


def _searchsorted(seq, values, out_int32=False, right=False, sorter=None, out=None):
    spec = s.searchsorted.meta(seq, values, out_int32, right, sorter, out)
    return _search("searchsorted", spec, seq, values, right, sorter, out)


def _bucketize(values, boundaries, out_int32=False, right=False, out=None):
    spec = s.bucketize.meta(values, boundaries, out_int32, right, out)
    return _search("bucketize", spec, boundaries, values, right, None, out)


def _isin(elements, test_elements, assume_unique=False, invert=False, out=None):
    spec = s.isin.meta(elements, test_elements, assume_unique, invert, out)
    e, t = _as(elements, spec.compute), _as(test_elements, spec.compute)
    return write("isin", out, spec, np.isin(e, t.reshape(-1), invert=invert))


s.searchsorted.register(CPU, _searchsorted)
s.bucketize.register(CPU, _bucketize)
s.isin.register(CPU, _isin)


# -- histc, bincount ------------------------------------------------------------------------------------------

def _histc(a, bins=100, min=0, max=0, out=None):
    """torch's histc: bins of equal width over [min, max] (the data's range when min == max), the
    last bin closed; an element's bin is (x - lo) * bins / (hi - lo) computed in the input's dtype."""
    spec = s.histc.meta(a, bins, min, max, out)
    x = array(a).reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi and x.size:
        lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo:g}, {hi:g}] is not finite")
    if not lo < hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    left, right = x.dtype.type(lo), x.dtype.type(hi)
    inside = x[(x >= left) & (x <= right)]
    pos = ((inside - left) * x.dtype.type(bins) / (right - left)).astype(np.int64)
    counts = np.bincount(np.clip(pos, 0, bins - 1), minlength=bins)
    return write("histc", out, spec, counts)


def _bincount(a, weights=None, minlength=0):
    spec = s.bincount.meta(a, weights, minlength)
    x = array(a).astype(np.int64)
    if x.size and x.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    size = max(int(x.max()) + 1 if x.size else 0, minlength)
    if weights is None:
        counts = np.bincount(x, minlength=size)
    else:  # torch adds the weights one by one in the result's dtype
        counts = np.zeros(size, spec.dtype.np)
        np.add.at(counts, x, array(weights).astype(spec.dtype.np))
    res = output("bincount", None, (size,), spec.dtype, spec.device)
    np.copyto(array(res), counts, casting="unsafe")
    return res


s.histc.register(CPU, _histc)
s.bincount.register(CPU, _bincount)
