"""Scans and order statistics against torch: one table line per function variant; each line runs over
dtypes, dims (negative and out of range), keepdim, memory layouts, 0-d and empty inputs, and NaN/inf.

Where torch's CPU result leaves the index of equal elements unspecified (unstable sort, topk,
kthvalue, mode, nanmedian of an all-NaN slice) we compare the values and check that each index
points at its value ("valid"); stable sorts, median, cummax/cummin are compared index for index."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES, FLOATS, INTS, assert_same, check, make_pair, to_numpy

REAL = ["bool"] + INTS + FLOATS
NUMERIC = INTS + FLOATS
CASES = [((3, 4), "contiguous"), ((3, 4), "transposed"), ((2, 3, 4), "strided"), ((3, 4), "expanded"),
         ((), "contiguous"), ((0, 4), "contiguous"), ((7,), "contiguous")]
DIMS = [0, -1, 1, 3]  # 3 is out of range for every case


def _pairs(dtypes, special=True):
    for dtype in dtypes:
        for shape, layout in CASES:
            yield dtype, make_pair(shape, dtype, layout, seed=len(shape) + 1, special=special)


def _size(x, d):
    try:
        return x.shape[d] if x.ndim else 1
    except IndexError:
        return 1


# -- scans -----------------------------------------------------------------------------------------------------
SOME = ["bool", "uint8", "int8", "int32", "float16", "bfloat16", "float32", "float64"]
SCANS = [
    ("cumsum", lambda lib, x, d: lib.cumsum(x, d), DTYPES),
    ("cumsum_method", lambda lib, x, d: x.cumsum(d), ["int16", "float32"]),
    ("cumsum_dtype_f64", lambda lib, x, d: lib.cumsum(x, d, dtype=lib.float64), SOME),
    ("cumsum_dtype_int8", lambda lib, x, d: x.cumsum(dim=d, dtype=lib.int8), SOME),
    ("cumsum_", lambda lib, x, d: x.clone().cumsum_(d), NUMERIC),
    ("cumprod", lambda lib, x, d: lib.cumprod(x, d), DTYPES),
    ("cumprod_dtype_f32", lambda lib, x, d: x.cumprod(d, dtype=lib.float32), SOME),
    ("cumprod_", lambda lib, x, d: x.clone().cumprod_(d), NUMERIC),
    ("cummax", lambda lib, x, d: lib.cummax(x, d), DTYPES),
    ("cummin", lambda lib, x, d: x.cummin(d), DTYPES),
    ("logcumsumexp", lambda lib, x, d: lib.logcumsumexp(x, d), DTYPES),
    ("logcumsumexp_method", lambda lib, x, d: x.logcumsumexp(d), FLOATS),
]


@pytest.mark.parametrize("name,fn,dtypes", SCANS, ids=[line[0] for line in SCANS])
def test_scan(name, fn, dtypes):
    for dtype, pair in _pairs(dtypes):
        for d in DIMS:
            check(lambda lib, x: fn(lib, x, d), pair)


def test_scan_ties_and_extremes():
    """cummax/cummin take the later of equal elements; logcumsumexp keeps +-inf and is stable far from 0."""
    x = [1.0, 3.0, 3.0, -np.inf, 3.0, np.nan, 2.0, np.nan, np.inf]
    for op in ("cummax", "cummin"):
        check(lambda lib: getattr(lib, op)(lib.tensor(x), 0))
        check(lambda lib: getattr(lib, op)(lib.tensor([2, 2, 1, 1, 2, 2]), 0))
    check(lambda lib: lib.logcumsumexp(lib.tensor([-np.inf, -np.inf, 1000.0, 1000.0, np.inf, -np.inf, 0.0]), 0))
    check(lambda lib: lib.logcumsumexp(lib.tensor([-800.0, -799.0, 0.0, 700.0], dtype=lib.float64), 0))
    check(lambda lib: lib.cumsum(lib.tensor([100, 100, 100], dtype=lib.int8), 0, dtype=lib.int8))


# -- sort, selection, median, mode -----------------------------------------------------------------------------

def _dense(x):
    """torch 2.13's CPU median/nanmedian along a dim read expanded (stride-0) inputs wrongly (values
    that are not in the input): give them a dense copy."""
    return x.contiguous() if 0 in x.stride() else x


def _k(x, d):
    return min(2, _size(x, d))


def _kth(x, d):
    return _size(x, d) // 2 + 1


SORTS = [  # (name, fn(lib, x, dim), dtypes, compare, keepdim, special values)
    ("sort_stable", lambda lib, x, d: lib.sort(x, dim=d, stable=True), REAL, "exact", True, True),
    ("sort_stable_descending", lambda lib, x, d: x.sort(dim=d, descending=True, stable=True), REAL, "exact", True,
     True),
    ("sort", lambda lib, x, d: lib.sort(x, d), REAL, "valid", True, True),
    ("sort_method_descending", lambda lib, x, d: x.sort(d, True), REAL, "valid", True, True),
    ("argsort_stable", lambda lib, x, d: lib.argsort(x, dim=d, stable=True), REAL, "exact", True, True),
    ("argsort_descending_stable", lambda lib, x, d: x.argsort(dim=d, descending=True, stable=True), REAL, "exact",
     True, True),
    ("msort", lambda lib, x, d: lib.msort(x), REAL, "exact", True, True),
    ("msort_method", lambda lib, x, d: x.msort(), ["float32"], "exact", True, True),
    ("topk", lambda lib, x, d: lib.topk(x, _k(x, d), d), REAL, "valid", True, True),
    ("topk_smallest", lambda lib, x, d: x.topk(_k(x, d), d, largest=False), REAL, "valid", True, True),
    ("topk_unsorted", lambda lib, x, d: lib.sort(lib.topk(x, _k(x, d), d, sorted=False)[0], d)[0], NUMERIC,
     "exact", True, True),
    ("kthvalue", lambda lib, x, d: lib.kthvalue(x, _kth(x, d), d), REAL, "valid", False, True),
    ("kthvalue_keepdim", lambda lib, x, d: x.kthvalue(1, d, True), REAL, "valid", True, True),
    ("median_dim", lambda lib, x, d: lib.median(_dense(x), d), REAL, "exact", False, True),
    ("median_dim_keepdim", lambda lib, x, d: _dense(x).median(d, keepdim=True), REAL, "exact", True, True),
    ("nanmedian_dim", lambda lib, x, d: lib.nanmedian(_dense(x), d), REAL, "valid", False, True),
    ("nanmedian_dim_keepdim", lambda lib, x, d: _dense(x).nanmedian(d, True), REAL, "valid", True, True),
    ("median", lambda lib, x, d: lib.median(x), REAL, "exact", False, True),
    ("nanmedian", lambda lib, x, d: x.nanmedian(), REAL, "exact", False, True),
    ("mode", lambda lib, x, d: lib.mode(x, d), REAL, "valid", False, False),  # torch's mode with NaN is undefined
    ("mode_keepdim", lambda lib, x, d: x.mode(d, True), REAL, "valid", True, False),
]


def _comparable(a):
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a  # NumPy's NaN == NaN check skips bfloat16


def check_picked(fn, pair, d, keepdim):
    """Values as torch's (or the same exception); each index points at its value along d."""
    got = check(lambda lib, x: fn(lib, x)[0], pair)
    if got is None:
        return
    values, indices = fn(vt, pair[1])
    assert indices.dtype == vt.int64 and tuple(indices.shape) == tuple(values.shape)
    x, idx, v = _comparable(to_numpy(pair[1])), to_numpy(indices), _comparable(to_numpy(values))
    if x.ndim == 0:
        assert (idx == 0).all()
        return
    d = d % x.ndim
    full = idx if keepdim else np.expand_dims(idx, d)
    picked = np.take_along_axis(x, full, d)
    np.testing.assert_array_equal(picked if keepdim else np.squeeze(picked, d), v)


@pytest.mark.parametrize("name,fn,dtypes,compare,keepdim,special", SORTS, ids=[line[0] for line in SORTS])
def test_sort_and_select(name, fn, dtypes, compare, keepdim, special):
    for dtype, pair in _pairs(dtypes, special):
        for d in DIMS:
            if compare == "exact":
                check(lambda lib, x: fn(lib, x, d), pair)
            else:
                check_picked(lambda lib, x: fn(lib, x, d), pair, d, keepdim)


TIES = [  # exact indices on data full of equal values (and a few NaN), where torch's choice is fixed
    ("sort_stable", lambda lib, x: lib.sort(x, dim=1, stable=True)),
    ("sort_stable_descending", lambda lib, x: lib.sort(x, dim=0, descending=True, stable=True)),
    ("median_dim", lambda lib, x: lib.median(x, 1)),
    ("nanmedian_dim", lambda lib, x: lib.nanmedian(x, 0)),
    ("cummax", lambda lib, x: lib.cummax(x, 1)),
    ("cummin", lambda lib, x: lib.cummin(x, 0)),
    ("unique_dim", lambda lib, x: lib.unique(x, dim=0, return_inverse=True, return_counts=True)),
]


@pytest.mark.parametrize("name,fn", TIES, ids=[line[0] for line in TIES])
def test_ties(name, fn):
    rng = np.random.default_rng(3)
    for dtype in ("int64", "float32"):
        a = rng.integers(0, 3, (6, 9)).astype(dtype)
        if dtype == "float32" and "nan" in name:
            a[rng.random(a.shape) < 0.2] = np.nan
        check(lambda lib: fn(lib, lib.tensor(a)))


# -- unique ------------------------------------------------------------------------------------------------
UNIQUES = [  # (name, fn(lib, x), dtypes, special values)
    ("unique", lambda lib, x: lib.unique(x), REAL, True),
    ("unique_inverse_counts", lambda lib, x: lib.unique(x, return_inverse=True, return_counts=True), REAL, False),
    ("unique_unsorted", lambda lib, x: x.unique(sorted=False, return_counts=True), REAL, True),
    ("unique_inverse", lambda lib, x: x.unique(return_inverse=True), ["int32", "float64"], False),
    ("unique_dim0", lambda lib, x: lib.unique(x, dim=0, return_inverse=True, return_counts=True), REAL, False),
    ("unique_dim_last", lambda lib, x: x.unique(dim=-1, return_counts=True), REAL, False),
    ("unique_dim_out_of_range", lambda lib, x: lib.unique(x, dim=3), ["int64"], False),
    ("unique_consecutive", lambda lib, x: lib.unique_consecutive(x), REAL, True),
    ("unique_consecutive_inverse_counts",
     lambda lib, x: x.unique_consecutive(return_inverse=True, return_counts=True), REAL, True),
    ("unique_consecutive_dim0", lambda lib, x: lib.unique_consecutive(x, True, True, 0), REAL, True),
    ("unique_consecutive_dim_last", lambda lib, x: x.unique_consecutive(return_counts=True, dim=-1), REAL, True),
]


@pytest.mark.parametrize("name,fn,dtypes,special", UNIQUES, ids=[line[0] for line in UNIQUES])
def test_unique(name, fn, dtypes, special):
    for dtype in dtypes:
        # torch's order among NaNs (each one is its own entry) is reversed for half types: no NaN there
        for _, pair in _pairs([dtype], special and dtype not in ("float16", "bfloat16")):
            check(fn, pair)
        t, v = make_pair((5, 3), "int8", seed=9, low=-1, high=1)  # plenty of repeats, rows too
        check(fn, (t.to(getattr(torch, dtype)), v.to(getattr(vt, dtype))))


def test_unique_nan_inverse():
    """Each NaN is its own entry, after every number; torch's order among the NaNs is not fixed, so the
    inverse is checked to map every element back to itself."""
    for dtype in FLOATS:
        for _, pair in _pairs([dtype]):
            got = check(lambda lib, x: lib.unique(x, return_counts=True), pair)
            out, inverse = vt.unique(pair[1], return_inverse=True)
            x, back_ = _comparable(to_numpy(pair[1])), _comparable(to_numpy(out))[to_numpy(inverse)]
            np.testing.assert_array_equal(back_, x)
            assert got is not None and tuple(inverse.shape) == tuple(pair[1].shape)


def test_unique_dim_repeated_rows():
    a = np.array([[1, 2], [1, 2], [0, 5], [1, 2], [0, 5]])
    for dtype in ("int64", "float32", "bool"):
        check(lambda lib: lib.unique(lib.tensor(a.astype(dtype)), dim=0, return_inverse=True, return_counts=True))
        check(lambda lib: lib.unique_consecutive(lib.tensor(a.astype(dtype)), return_inverse=True,
                                                 return_counts=True, dim=0))
    check(lambda lib: lib.unique(lib.zeros(2, 0), dim=0))  # empty, unselected dim: an error in both
    check(lambda lib: lib.unique(lib.zeros(0, 3), dim=0, return_inverse=True, return_counts=True))


# -- searchsorted, bucketize, isin ------------------------------------------------------------------------------
SEARCH_DTYPES = [("float32", "float32"), ("float64", "float32"), ("int64", "int64"), ("int32", "float32"),
                 ("uint8", "int8"), ("float16", "float16"), ("bfloat16", "float32"), ("int16", "bool")]


def _sorted_pair(shape, dtype, seed):
    """A sorted sequence (last dim) in both libraries, NaN last as torch.sort puts it."""
    t, v = make_pair(shape, dtype, seed=seed, special=True)
    return torch.sort(t, -1)[0], vt.sort(v, -1)[0]


SEARCHES = [  # (name, fn(lib, sorted_seq, values, unsorted))
    ("searchsorted", lambda lib, s, v, u: lib.searchsorted(s, v)),
    ("searchsorted_right", lambda lib, s, v, u: lib.searchsorted(s, v, right=True)),
    ("searchsorted_side_right", lambda lib, s, v, u: lib.searchsorted(s, v, side="right")),
    ("searchsorted_side_left", lambda lib, s, v, u: lib.searchsorted(s, v, side="left", out_int32=True)),
    ("searchsorted_sorter", lambda lib, s, v, u: lib.searchsorted(u, v, sorter=lib.argsort(u, stable=True))),
    ("searchsorted_scalar", lambda lib, s, v, u: lib.searchsorted(s, 0.5)),
    ("searchsorted_int_scalar", lambda lib, s, v, u: lib.searchsorted(s, 1, right=True)),
    ("searchsorted_batched", lambda lib, s, v, u: lib.searchsorted(lib.stack([s, s]), lib.stack([v, v]))),
    ("searchsorted_2d_values", lambda lib, s, v, u: lib.searchsorted(s, lib.stack([v, v]))),
    ("searchsorted_empty_values", lambda lib, s, v, u: lib.searchsorted(s, v[:0])),
    ("searchsorted_empty_sequence", lambda lib, s, v, u: lib.searchsorted(s[:0], v)),
    ("bucketize", lambda lib, s, v, u: lib.bucketize(v, s)),
    ("bucketize_right_int32", lambda lib, s, v, u: lib.bucketize(lib.stack([v, v]), s, right=True, out_int32=True)),
    ("bucketize_scalar", lambda lib, s, v, u: lib.bucketize(1, s)),
    ("isin", lambda lib, s, v, u: lib.isin(v, u)),
    ("isin_invert", lambda lib, s, v, u: lib.isin(lib.stack([v, v]), u, invert=True)),
    ("isin_assume_unique", lambda lib, s, v, u: lib.isin(v, u, assume_unique=True)),
    ("isin_scalar_element", lambda lib, s, v, u: lib.isin(2, u)),
    ("isin_scalar_test", lambda lib, s, v, u: lib.isin(v, 1)),
    ("isin_empty", lambda lib, s, v, u: lib.isin(v[:0], u)),
]


@pytest.mark.parametrize("name,fn", SEARCHES, ids=[line[0] for line in SEARCHES])
def test_search(name, fn):
    for seq_dtype, value_dtype in SEARCH_DTYPES:
        s, u = _sorted_pair((9,), seq_dtype, 1), make_pair((9,), seq_dtype, seed=1, special=True)
        v = make_pair((12,), value_dtype, seed=2, special=True)
        check(lambda lib, s_, v_, u_: fn(lib, s_, v_, u_), s, v, u)


def test_search_strided_and_nan_sequences():
    seq = [1.0, 2.0, 2.0, 3.0, np.nan, np.nan]
    vals = [[0.0, 2.0, 2.5, np.nan, 5.0, -np.inf]]
    for right in (False, True):
        check(lambda lib: lib.searchsorted(lib.tensor(seq), lib.tensor(vals), right=right))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns that it copies non-contiguous inputs
            check(lambda lib: lib.searchsorted(lib.tensor(seq * 2)[::2], lib.tensor(vals * 2).t(), right=right))
    check(lambda lib: lib.bucketize(lib.tensor(vals).t(), lib.tensor(seq)))


# -- histc, bincount, quantile ----------------------------------------------------------------------------------
HISTS = [  # (name, fn(lib, x), dtypes)
    ("histc", lambda lib, x: lib.histc(x), FLOATS + ["int64"]),
    ("histc_bins", lambda lib, x: x.histc(bins=7), FLOATS),
    ("histc_range", lambda lib, x: lib.histc(x, 5, -1, 2), FLOATS),
    ("histc_range_wide", lambda lib, x: lib.histc(x, bins=4, min=-10, max=10), FLOATS),
    ("bincount", lambda lib, x: lib.bincount(x), INTS + ["bool", "float32"]),
    ("bincount_minlength", lambda lib, x: x.bincount(minlength=9), INTS),
    ("bincount_weights", lambda lib, x: lib.bincount(x, lib.linspace(0, 1, x.numel())), INTS),
    ("bincount_weights_f64", lambda lib, x: x.bincount(lib.arange(x.numel(), dtype=lib.float64), 3), INTS),
    ("bincount_weights_int", lambda lib, x: lib.bincount(x, lib.arange(x.numel())), ["int64"]),
]


@pytest.mark.parametrize("name,fn,dtypes", HISTS, ids=[line[0] for line in HISTS])
def test_histogram(name, fn, dtypes):
    nonneg = name.startswith("bincount")
    for dtype in dtypes:
        for shape, layout in CASES:
            pair = make_pair(shape, dtype, layout, seed=4, low=0 if nonneg else -3, high=9 if nonneg else 3)
            # histc over the data's range refuses NaN/inf; with a fixed range they are left out
            check(fn, pair)
            if not nonneg and dtype in FLOATS and "range" in name:
                check(fn, make_pair(shape, dtype, layout, seed=4, special=True))


QUANTILES = [  # (name, fn(lib, x, q))
    ("quantile", lambda lib, x, q: lib.quantile(x, q)),
    ("quantile_dim", lambda lib, x, q: lib.quantile(x, q, 0)),
    ("quantile_dim_keepdim", lambda lib, x, q: x.quantile(q, dim=-1, keepdim=True)),
    ("quantile_keepdim_all", lambda lib, x, q: lib.quantile(x, q, keepdim=True)),
    ("quantile_lower", lambda lib, x, q: lib.quantile(x, q, -1, interpolation="lower")),
    ("quantile_higher", lambda lib, x, q: lib.quantile(x, q, 0, interpolation="higher")),
    ("quantile_nearest", lambda lib, x, q: lib.quantile(x, q, -1, interpolation="nearest")),
    ("quantile_midpoint", lambda lib, x, q: lib.quantile(x, q, -1, True, interpolation="midpoint")),
    ("nanquantile", lambda lib, x, q: lib.nanquantile(x, q)),
    ("nanquantile_dim", lambda lib, x, q: x.nanquantile(q, 0, True)),
    ("nanquantile_nearest", lambda lib, x, q: lib.nanquantile(x, q, -1, interpolation="nearest")),
]
QS = [0.0, 0.3, 0.5, 1.0, "tensor", "tensor0d", 1.5]


@pytest.mark.parametrize("name,fn", QUANTILES, ids=[line[0] for line in QUANTILES])
def test_quantile(name, fn):
    for dtype in ("float32", "float64", "int64"):
        for shape, layout in CASES:
            pair = make_pair(shape, dtype, layout, seed=5, special=True)
            for q in QS:
                if q == "tensor":
                    q = make_pair((3,), "float64" if dtype == "float64" else "float32", seed=6, low=0, high=1)
                elif q == "tensor0d":
                    q = (torch.tensor(0.25, dtype=pair[0].dtype), vt.tensor(0.25, dtype=pair[1].dtype))
                check(lambda lib, x, q_: fn(lib, x, q_), pair, q)


# -- out= -------------------------------------------------------------------------------------------------------
OUTS = [  # (name, fn(lib, x, out), out dtype, out shape); wrong dtypes and shapes included
    ("cumsum", lambda lib, x, o: lib.cumsum(x, 1, out=o), "float32", (3, 4)),
    ("cumsum_cast", lambda lib, x, o: lib.cumsum(x, 1, out=o), "int64", (3, 4)),
    ("cumsum_resize", lambda lib, x, o: lib.cumsum(x, 0, out=o), "float64", (0,)),
    ("cumsum_dtype_mismatch", lambda lib, x, o: lib.cumsum(x, 1, dtype=lib.float64, out=o), "float32", (3, 4)),
    ("cumsum_inplace_dtype", lambda lib, x, o: x.cumsum_(1, dtype=lib.int64), "float32", (3, 4)),
    ("cumprod", lambda lib, x, o: lib.cumprod(x, 0, out=o), "float64", (3, 4)),
    ("logcumsumexp", lambda lib, x, o: lib.logcumsumexp(x, 1, out=o), "float32", (1,)),
    ("logcumsumexp_wrong", lambda lib, x, o: lib.logcumsumexp(x, 1, out=o), "float64", (3, 4)),
    ("msort", lambda lib, x, o: lib.msort(x, out=o), "float32", (3, 4)),
    ("msort_wrong", lambda lib, x, o: lib.msort(x, out=o), "float64", (3, 4)),
    ("isin", lambda lib, x, o: lib.isin(x, x[0], out=o), "bool", (3, 4)),
    ("isin_wrong", lambda lib, x, o: lib.isin(x, x[0], out=o), "int64", (3, 4)),
    ("searchsorted", lambda lib, x, o: lib.searchsorted(x[0].sort()[0], x, out=o), "int64", (0,)),
    ("searchsorted_int32", lambda lib, x, o: lib.bucketize(x, x[0].sort()[0], out_int32=True, out=o), "int32", (3, 4)),
    ("searchsorted_wrong", lambda lib, x, o: lib.searchsorted(x[0].sort()[0], x, out=o), "int32", (3, 4)),
    ("histc", lambda lib, x, o: lib.histc(x, 4, out=o), "float32", (0,)),
    ("histc_wrong", lambda lib, x, o: lib.histc(x, 4, out=o), "float64", (4,)),
    ("quantile", lambda lib, x, o: lib.quantile(x, 0.5, 1, out=o), "float32", (3,)),
    ("quantile_wrong", lambda lib, x, o: lib.quantile(x, 0.5, 1, out=o), "float64", (3,)),
]
PAIR_OUTS = [  # (name, fn(lib, x, out_pair), values dtype, indices dtype)
    ("sort", lambda lib, x, o: lib.sort(x, 1, out=o)),
    ("topk", lambda lib, x, o: lib.topk(x, 2, out=o)),
    ("kthvalue", lambda lib, x, o: lib.kthvalue(x, 2, 0, out=o)),
    ("median", lambda lib, x, o: lib.median(x, 1, True, out=o)),
    ("nanmedian", lambda lib, x, o: lib.nanmedian(x, 0, out=o)),
    ("mode", lambda lib, x, o: lib.mode(x, 1, out=o)),
    ("cummax", lambda lib, x, o: lib.cummax(x, 1, out=o)),
    ("cummin", lambda lib, x, o: lib.cummin(x, 0, out=o)),
]


def _empty_pair(shape, dtype):
    return torch.zeros(shape, dtype=getattr(torch, dtype)), vt.zeros(shape, dtype=getattr(vt, dtype))


@pytest.mark.parametrize("name,fn,dtype,shape", OUTS, ids=[line[0] for line in OUTS])
def test_out(name, fn, dtype, shape):
    pair = make_pair((3, 4), "float32", seed=7)
    out = _empty_pair(shape, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resizing a non-empty out= warns in both
        got = check(lambda lib, x, o: (fn(lib, x, o), o), pair, out)
    if got is not None:
        assert got[0] is out[1] or got[0].values is out[1]


@pytest.mark.parametrize("name,fn", PAIR_OUTS, ids=[line[0] for line in PAIR_OUTS])
def test_out_pair(name, fn):
    pair = make_pair((3, 4), "float32", seed=7)
    for values_dtype, indices_dtype in (("float32", "int64"), ("float64", "int64"), ("float32", "int32")):
        out = (_empty_pair((0,), values_dtype), _empty_pair((0,), indices_dtype))
        t_out, v_out = (out[0][0], out[1][0]), (out[0][1], out[1][1])
        if name == "mode" or name == "kthvalue":  # compare values only: their indices are unspecified
            got = check(lambda lib, x, o: fn(lib, x, o)[0], pair, (t_out, v_out))
        else:
            got = check(lambda lib, x, o: tuple(fn(lib, x, o)), pair, (t_out, v_out))
        if got is not None:
            result = fn(vt, pair[1], v_out)
            assert result[0] is v_out[0] and result[1] is v_out[1] and type(result).__name__ == name


# -- errors --------------------------------------------------------------------------------------------------
ERRORS = [  # (name, fn(lib)) : torch raises; so must we, with the same exception type
    ("topk_k_too_big", lambda lib: lib.topk(lib.ones(3), 4)),
    ("topk_k_negative", lambda lib: lib.topk(lib.ones(3), -1)),
    ("topk_k_float", lambda lib: lib.topk(lib.ones(3), 1.0)),
    ("topk_bool", lambda lib: lib.topk(lib.ones(3, dtype=lib.bool), 1)),
    ("topk_0d_k2", lambda lib: lib.topk(lib.tensor(1.0), 2)),
    ("kthvalue_k0", lambda lib: lib.kthvalue(lib.ones(3), 0)),
    ("kthvalue_k_too_big", lambda lib: lib.ones(2, 3).kthvalue(4)),
    ("kthvalue_empty_dim", lambda lib: lib.kthvalue(lib.ones(0, 3), 1, 0)),
    ("kthvalue_bool", lambda lib: lib.kthvalue(lib.ones(3, dtype=lib.bool), 1)),
    ("kthvalue_dim_none", lambda lib: lib.kthvalue(lib.ones(3), 1, None)),
    ("sort_complex", lambda lib: lib.sort(lib.ones(3, dtype=lib.complex64))),
    ("sort_bad_dim", lambda lib: lib.sort(lib.ones(3), 1)),
    ("sort_dim_none", lambda lib: lib.sort(lib.ones(3), dim=None)),
    ("sort_stable_positional_dim", lambda lib: lib.sort(lib.ones(3), 0, stable=True)),
    ("argsort_stable_positional", lambda lib: lib.ones(3).argsort(0, True, stable=False)),
    ("argsort_bad_dim", lambda lib: lib.argsort(lib.ones(2, 3), -3)),
    ("median_bool", lambda lib: lib.median(lib.ones(3, dtype=lib.bool))),
    ("median_dim_complex", lambda lib: lib.median(lib.ones(3, dtype=lib.complex64), 0)),
    ("median_empty_dim", lambda lib: lib.median(lib.ones(0, 3), 0)),
    ("median_dim_none", lambda lib: lib.median(lib.ones(3), None)),
    ("nanmedian_out_without_dim", lambda lib: lib.nanmedian(lib.ones(3), out=lib.ones(()))),
    ("mode_empty", lambda lib: lib.mode(lib.ones(0))),
    ("mode_complex", lambda lib: lib.mode(lib.ones(3, dtype=lib.complex64))),
    ("cumsum_bad_dim", lambda lib: lib.cumsum(lib.ones(2, 3), 2)),
    ("cumsum_dim_float", lambda lib: lib.cumsum(lib.ones(2, 3), 1.5)),
    ("cumsum_no_dim", lambda lib: lib.cumsum(lib.ones(2, 3))),
    ("cumsum_bool_result", lambda lib: lib.cumsum(lib.ones(2, 3), 0, dtype=lib.bool)),
    ("cumprod_bool_inplace", lambda lib: lib.ones(2, dtype=lib.bool).cumprod_(0)),
    ("cummax_complex", lambda lib: lib.cummax(lib.ones(3, dtype=lib.complex64), 0)),
    ("logcumsumexp_int", lambda lib: lib.logcumsumexp(lib.ones(3, dtype=lib.int64), 0)),
    ("unique_complex", lambda lib: lib.unique(lib.ones(3, dtype=lib.complex64))),
    ("unique_0d_dim", lambda lib: lib.unique(lib.tensor(3.0), dim=0)),
    ("unique_bad_dim", lambda lib: lib.unique(lib.ones(2, 3), dim=2)),
    ("searchsorted_side_bad", lambda lib: lib.searchsorted(lib.ones(3), lib.ones(2), side="lft")),
    ("searchsorted_side_conflict", lambda lib: lib.searchsorted(lib.ones(3), lib.ones(2), side="left", right=True)),
    ("searchsorted_shape", lambda lib: lib.searchsorted(lib.ones(2, 3), lib.ones(1, 3))),
    ("searchsorted_scalar_nd", lambda lib: lib.searchsorted(lib.ones(2, 3), 1.0)),
    ("searchsorted_0d", lambda lib: lib.searchsorted(lib.tensor(1.0), lib.tensor(2.0))),
    ("searchsorted_sorter_dtype", lambda lib: lib.searchsorted(lib.ones(2), lib.ones(1),
                                                                sorter=lib.zeros(2, dtype=lib.int32))),
    ("searchsorted_sorter_shape", lambda lib: lib.searchsorted(lib.ones(2), lib.ones(1), sorter=lib.tensor([0]))),
    ("searchsorted_sorter_range", lambda lib: lib.searchsorted(lib.ones(2), lib.ones(1), sorter=lib.tensor([0, 2]))),
    ("searchsorted_bool", lambda lib: lib.searchsorted(lib.ones(2, dtype=lib.bool), lib.ones(1, dtype=lib.bool))),
    ("bucketize_2d_boundaries", lambda lib: lib.bucketize(lib.ones(3), lib.ones(1, 2))),
    ("isin_two_scalars", lambda lib: lib.isin(1, 2)),
    ("isin_bool", lambda lib: lib.isin(lib.ones(2, dtype=lib.bool), lib.ones(2, dtype=lib.bool))),
    ("histc_int", lambda lib: lib.histc(lib.ones(3, dtype=lib.int64))),
    ("histc_bins0", lambda lib: lib.histc(lib.ones(3), 0)),
    ("histc_min_gt_max", lambda lib: lib.histc(lib.ones(3), 3, 2, 1)),
    ("histc_inf_range", lambda lib: lib.histc(lib.tensor([1.0, float("inf")]))),
    ("histc_nan_range", lambda lib: lib.histc(lib.tensor([1.0, float("nan")]))),
    ("bincount_negative", lambda lib: lib.bincount(lib.tensor([1, -1]))),
    ("bincount_2d", lambda lib: lib.bincount(lib.ones(2, 2, dtype=lib.int64))),
    ("bincount_minlength", lambda lib: lib.bincount(lib.tensor([1]), minlength=-1)),
    ("bincount_weights_shape", lambda lib: lib.bincount(lib.tensor([1, 2]), lib.ones(3))),
    ("quantile_q_range", lambda lib: lib.quantile(lib.ones(3), 1.5)),
    ("quantile_q_tensor_range", lambda lib: lib.quantile(lib.ones(3), lib.tensor([0.5, -0.1]))),
    ("quantile_q_2d", lambda lib: lib.quantile(lib.ones(3), lib.ones(1, 1))),
    ("quantile_q_dtype", lambda lib: lib.quantile(lib.ones(3), lib.ones(1, dtype=lib.float64))),
    ("quantile_empty", lambda lib: lib.quantile(lib.ones(0), 0.5)),
    ("quantile_interpolation", lambda lib: lib.quantile(lib.ones(3), 0.5, interpolation="cubic")),
    ("quantile_bad_dim", lambda lib: lib.nanquantile(lib.ones(3), 0.5, 1)),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[line[0] for line in ERRORS])
def test_error(name, fn):
    with pytest.raises(Exception):
        fn(torch)  # the line is an error case in torch
    check(fn)


def test_failed_op_leaves_input_unchanged():
    x = vt.tensor([[3.0, 1.0], [2.0, 0.0]])
    with pytest.raises(RuntimeError):
        x.cumsum_(1, dtype=vt.int64)
    with pytest.raises(RuntimeError):
        vt.sort(x, out=(x, vt.zeros(2, 2, dtype=vt.int32)))
    assert x.tolist() == [[3.0, 1.0], [2.0, 0.0]]


def test_return_types():
    r = vt.sort(vt.tensor([2.0, 1.0]))
    assert isinstance(r, tuple) and r.values.tolist() == [1.0, 2.0] and r.indices.tolist() == [1, 0]
    assert repr(r).startswith("torch.return_types.sort(")
    assert vt.return_types.topk is type(vt.topk(vt.ones(2), 1)) and vt.return_types.max is type(vt.max(vt.ones(2), 0))


# -- gradients ------------------------------------------------------------------------------------------------
GRADS = [  # (name, fn(lib, x), input shape, data: "distinct" values, "ties" small integers, "zeros")
    ("cumsum", lambda lib, x: lib.cumsum(x, 1), (3, 4), "distinct"),
    ("cumsum_dtype", lambda lib, x: lib.cumsum(x, 0, dtype=lib.float64), (3, 4), "distinct"),
    ("cumsum_0d", lambda lib, x: x.cumsum(0), (), "distinct"),
    ("cumprod", lambda lib, x: lib.cumprod(x, 1), (3, 5), "distinct"),
    ("cumprod_zeros", lambda lib, x: lib.cumprod(x, 1), (4, 5), "zeros"),
    ("cumprod_zeros_dim0", lambda lib, x: x.cumprod(0), (5, 3), "zeros"),
    ("cummax", lambda lib, x: lib.cummax(x, 1)[0], (3, 5), "ties"),
    ("cummin", lambda lib, x: lib.cummin(x, 0)[0], (4, 3), "ties"),
    ("logcumsumexp", lambda lib, x: lib.logcumsumexp(x, 1), (3, 4), "distinct"),
    ("logcumsumexp_dim0", lambda lib, x: x.logcumsumexp(0), (4, 2), "distinct"),
    ("sort", lambda lib, x: lib.sort(x, 1)[0], (3, 4), "distinct"),
    ("sort_stable_ties", lambda lib, x: lib.sort(x, dim=0, descending=True, stable=True)[0], (5, 3), "ties"),
    ("msort", lambda lib, x: lib.msort(x), (4, 3), "distinct"),
    ("topk", lambda lib, x: lib.topk(x, 2, 1)[0], (3, 5), "distinct"),
    ("topk_smallest", lambda lib, x: x.topk(3, 0, largest=False)[0], (4, 2), "distinct"),
    ("kthvalue", lambda lib, x: lib.kthvalue(x, 2, 1)[0], (3, 4), "distinct"),
    ("kthvalue_keepdim", lambda lib, x: x.kthvalue(3, 0, True)[0], (4, 3), "distinct"),
    ("median_dim", lambda lib, x: lib.median(x, 1)[0], (3, 4), "ties"),
    ("median_dim_keepdim", lambda lib, x: x.median(0, True)[0], (5, 2), "distinct"),
    ("nanmedian_dim", lambda lib, x: lib.nanmedian(x, 1)[0], (3, 5), "ties"),
    ("median", lambda lib, x: lib.median(x), (3, 4), "ties"),
    ("nanmedian", lambda lib, x: x.nanmedian(), (3, 3), "distinct"),
    ("mode", lambda lib, x: lib.mode(x, 1)[0], (3, 4), "distinct"),
    ("quantile", lambda lib, x: lib.quantile(x, 0.3, 1, True), (3, 4), "distinct"),
    # squared: the gradient then depends on the input, so it has a derivative of its own
    ("sort_squared", lambda lib, x: lib.sort(x, 0)[0] ** 2, (4, 3), "distinct"),
    ("topk_squared", lambda lib, x: lib.topk(x, 2)[0] ** 2, (3, 4), "distinct"),
    ("cummax_squared", lambda lib, x: lib.cummax(x, 1)[0] ** 2, (3, 4), "ties"),
    ("median_dim_squared", lambda lib, x: lib.median(x, 1, True)[0] ** 2, (3, 5), "distinct"),
    ("quantile_squared", lambda lib, x: lib.quantile(x, lib.tensor([0.2, 0.7], dtype=x.dtype), 0) ** 2, (4, 3),
     "distinct"),
]


def _data(shape, kind, seed, dtype):
    rng = np.random.default_rng(seed)
    if kind == "ties":
        return rng.integers(-2, 3, shape).astype(dtype)
    a = rng.uniform(-2, 2, shape).astype(dtype)
    if kind == "zeros":  # one, two or no zeros per slice
        a[0, 1] = a[1, 1] = a[1, 3 % shape[1]] = a[2, 0] = 0
    return a


def _grads(lib, fn, a, seed=7):
    x = lib.tensor(a, requires_grad=True)
    out = fn(lib, x)
    g = lib.tensor(np.random.default_rng(seed).uniform(-1, 1, tuple(out.shape)).astype(a.dtype))
    return lib.autograd.grad(out, [x], g)


@pytest.mark.parametrize("name,fn,shape,data", GRADS, ids=[line[0] for line in GRADS])
def test_gradient(name, fn, shape, data):
    for dtype in ("float64", "float32"):
        a = _data(shape, data, 1, dtype)
        assert_same(_grads(vt, fn, a), _grads(torch, fn, a))
    if name.startswith("quantile") or name.endswith("squared"):  # the last node is not the op's
        return
    x = vt.tensor(_data(shape, data, 1, "float32"), requires_grad=True)
    assert type(fn(vt, x).grad_fn).__name__ == type(fn(torch, torch.tensor(_data(shape, data, 1, "float32"),
                                                                           requires_grad=True)).grad_fn).__name__


@pytest.mark.parametrize("name,fn,shape,data", GRADS, ids=[line[0] for line in GRADS])
def test_gradcheck(name, fn, shape, data):
    x = vt.tensor(_data(shape, "distinct" if data == "ties" else data, 2, "float64"), requires_grad=True)
    assert vt.autograd.gradcheck(lambda t: fn(vt, t), (x,))


@pytest.mark.parametrize("name", ["cumsum", "cumprod", "cumprod_zeros", "cummax", "logcumsumexp", "sort", "topk",
                                  "median_dim"])
def test_gradgradcheck(name):
    _, fn, shape, data = GRADS[[line[0] for line in GRADS].index(name)]
    x = vt.tensor(_data(shape, "distinct" if data == "ties" else data, 3, "float64"), requires_grad=True)
    assert vt.autograd.gradgradcheck(lambda t: fn(vt, t), (x,))


def test_nondifferentiable_outputs():
    x = vt.tensor([3.0, 1.0, 3.0], requires_grad=True)
    for result in (vt.unique(x), vt.unique_consecutive(x), vt.searchsorted(x, x), vt.bucketize(x, x),
                   vt.isin(x, x), vt.histc(x, 3), vt.argsort(x), vt.sort(x).indices):
        assert not result.requires_grad and result.grad_fn is None


def _second(lib, fn, a):
    x = lib.tensor(a, requires_grad=True)
    out = fn(lib, x)
    rng = np.random.default_rng(5)
    g, = lib.autograd.grad(out, [x], lib.tensor(rng.uniform(-1, 1, tuple(out.shape))), create_graph=True)
    return lib.autograd.grad(g, [x], lib.tensor(rng.uniform(-1, 1, tuple(g.shape))), allow_unused=True)


@pytest.mark.parametrize("name", ["cumprod", "cumprod_zeros", "cumprod_zeros_dim0", "logcumsumexp", "sort_squared",
                                  "topk_squared", "cummax_squared", "median_dim_squared", "quantile_squared"])
def test_second_derivative(name):
    _, fn, shape, data = GRADS[[line[0] for line in GRADS].index(name)]
    a = _data(shape, data, 4, "float64")
    assert_same(_second(vt, fn, a), _second(torch, fn, a))


@pytest.mark.parametrize("method", ["cumsum_", "cumprod_"])
def test_inplace_gradient(method):
    a = _data((3, 4), "zeros", 5, "float64")

    def f(lib):
        x = lib.tensor(a, requires_grad=True)
        y = x * 1.5
        getattr(y, method)(1)
        return lib.autograd.grad(y, [x], lib.ones(3, 4, dtype=lib.float64)), type(y.grad_fn).__name__
    assert_same(f(vt)[0], f(torch)[0])
    assert f(vt)[1] == f(torch)[1]
