"""Reductions against torch: one table line per op; each line runs over dtypes, dims (None, int,
negative, tuple), keepdim, memory layouts, 0-d and empty inputs, and NaN/inf values."""
import warnings

import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES, FLOATS, assert_same, check, make_pair

# inputs: (shape, layout); every line runs over all of them
CASES = [((3, 4), "contiguous"), ((3, 4), "transposed"), ((2, 3, 4), "strided"), ((3, 4), "expanded"),
         ((), "contiguous"), ((0, 4), "contiguous"), ((5,), "contiguous")]
MULTI = [None, -1, (0, -1), [1, 0], ()]      # ops taking several dims
SINGLE = [None, 0, -1, (0,)]                 # ops taking one dim: tuples must raise TypeError like torch
SOME = ["bool", "uint8", "int8", "float16", "bfloat16", "float32", "complex64"]  # for the dtype= variants


def _kw(dim, keepdim):
    kw = {} if dim is None else {"dim": dim}
    if keepdim:
        kw["keepdim"] = True
    return kw


# (name, fn(lib, x, **kw), dtypes, dims)
REDUCTIONS = [
    ("sum", lambda lib, x, **kw: lib.sum(x, **kw), DTYPES, MULTI),
    ("sum_method", lambda lib, x, **kw: x.sum(**kw), ["float32", "int64"], MULTI),
    ("sum_dtype_f64", lambda lib, x, **kw: lib.sum(x, dtype=lib.float64, **kw), SOME, MULTI),
    ("sum_dtype_int32", lambda lib, x, **kw: lib.sum(x, dtype=lib.int32, **kw), SOME, MULTI),
    ("nansum", lambda lib, x, **kw: lib.nansum(x, **kw), DTYPES, MULTI),
    ("mean", lambda lib, x, **kw: lib.mean(x, **kw), DTYPES, MULTI),
    ("mean_dtype", lambda lib, x, **kw: x.mean(dtype=lib.float64, **kw), SOME, MULTI),
    ("nanmean", lambda lib, x, **kw: lib.nanmean(x, **kw), DTYPES, MULTI),
    ("prod", lambda lib, x, **kw: lib.prod(x, **kw), DTYPES, SINGLE),
    ("prod_dtype", lambda lib, x, **kw: x.prod(dtype=lib.float64, **kw), SOME, SINGLE),
    ("amax", lambda lib, x, **kw: lib.amax(x, **kw), DTYPES, MULTI),
    ("amin", lambda lib, x, **kw: x.amin(**kw), DTYPES, MULTI),
    ("max", lambda lib, x, **kw: lib.max(x, **kw), DTYPES, SINGLE),
    ("min", lambda lib, x, **kw: x.min(**kw), DTYPES, SINGLE),
    ("argmax", lambda lib, x, **kw: lib.argmax(x, **kw), DTYPES, SINGLE),
    ("argmin", lambda lib, x, **kw: x.argmin(**kw), DTYPES, SINGLE),
    ("aminmax", lambda lib, x, **kw: lib.aminmax(x, **kw), DTYPES, SINGLE),
    ("var", lambda lib, x, **kw: lib.var(x, **kw), DTYPES, MULTI),
    ("var_correction0", lambda lib, x, **kw: x.var(correction=0, **kw), FLOATS, MULTI),
    ("var_correction2", lambda lib, x, **kw: lib.var(x, correction=2, **kw), FLOATS, MULTI),
    ("std", lambda lib, x, **kw: x.std(**kw), DTYPES, MULTI),
    ("std_unbiased_false", lambda lib, x, **kw: lib.std(x, unbiased=False, **kw), FLOATS, MULTI),
    ("var_mean", lambda lib, x, **kw: lib.var_mean(x, **kw), DTYPES, MULTI),
    ("std_mean", lambda lib, x, **kw: lib.std_mean(x, correction=0, **kw), DTYPES, MULTI),
    ("norm", lambda lib, x, **kw: lib.norm(x, **kw), DTYPES, MULTI),
    ("norm_p1", lambda lib, x, **kw: x.norm(1, **kw), DTYPES, MULTI),
    ("norm_p3", lambda lib, x, **kw: lib.norm(x, 3, **kw), FLOATS, MULTI),
    ("norm_p0.5", lambda lib, x, **kw: lib.norm(x, 0.5, **kw), FLOATS, MULTI),
    ("norm_p0", lambda lib, x, **kw: lib.norm(x, 0, **kw), FLOATS, MULTI),
    ("norm_inf", lambda lib, x, **kw: lib.norm(x, float("inf"), **kw), FLOATS, MULTI),
    ("norm_-inf", lambda lib, x, **kw: lib.norm(x, -float("inf"), **kw), FLOATS, MULTI),
    ("norm_-1", lambda lib, x, **kw: lib.norm(x, -1, **kw), FLOATS, MULTI),
    ("norm_fro", lambda lib, x, **kw: lib.norm(x, "fro", **kw), DTYPES, MULTI),
    ("norm_nuc", lambda lib, x, **kw: lib.norm(x, "nuc", **kw), ["float32", "float64", "complex64", "float16"],
     [None, (0, -1), (1, 0)]),
    ("norm_dtype", lambda lib, x, **kw: lib.norm(x, 2, dtype=lib.float64, **kw), SOME, MULTI),
    ("logsumexp", lambda lib, x, **kw: lib.logsumexp(x, **kw), DTYPES, MULTI),
    ("any", lambda lib, x, **kw: lib.any(x, **kw), DTYPES, MULTI),
    ("all", lambda lib, x, **kw: x.all(**kw), DTYPES, MULTI),
    ("count_nonzero", lambda lib, x, **kw: lib.count_nonzero(x, **kw), DTYPES, MULTI),
    ("hash_tensor", lambda lib, x, **kw: lib.hash_tensor(x, **kw), DTYPES, MULTI),  # exact: uint64 bit patterns
]


@pytest.mark.parametrize("name,fn,dtypes,dims", REDUCTIONS, ids=[line[0] for line in REDUCTIONS])
def test_reduction(name, fn, dtypes, dims):
    for dtype in dtypes:
        for shape, layout in CASES:
            pair = make_pair(shape, dtype, layout, seed=len(shape), special=True)
            for dim in dims:
                for keepdim in (False, True):
                    kw = _kw(dim, keepdim)
                    check(lambda lib, x: fn(lib, x, **kw), pair)


def test_ties_and_nan_pick_first():
    """argmax/max(dim) return the first extreme; NaN counts as the maximum and the minimum."""
    data = [[1.0, 3.0, 3.0, 1.0], [2.0, float("nan"), 0.0, float("nan")], [0.0, 0.0, -1.0, -1.0]]
    pair = (torch.tensor(data), vt.tensor(data))
    for fn in (lambda lib, x: x.argmax(1), lambda lib, x: x.argmin(1), lambda lib, x: x.max(1),
               lambda lib, x: x.min(-1, keepdim=True), lambda lib, x: x.argmax(), lambda lib, x: lib.aminmax(x, dim=0)):
        check(fn, pair)


def test_integer_wraparound_and_int64_accumulation():
    data = [[100, 100, 100], [-128, -1, 5]]
    pair = (torch.tensor(data, dtype=torch.int8), vt.tensor(data, dtype=vt.int8))
    check(lambda lib, x: x.sum(1), pair)                       # int8 sums to int64: no wrap
    check(lambda lib, x: x.sum(1, dtype=lib.int8), pair)       # dtype= int8 wraps like torch
    check(lambda lib, x: x.prod(1), pair)


def test_half_accumulates_in_float32():
    pair = (torch.full((4096,), 0.1, dtype=torch.float16), vt.full((4096,), 0.1, dtype=vt.float16))
    check(lambda lib, x: x.sum(), pair)
    check(lambda lib, x: x.mean(), pair)


def test_var_std_signatures():
    pair = make_pair((3, 5), "float32", seed=4)
    for fn in (lambda lib, x: x.var(False), lambda lib, x: x.var(1, False), lambda lib, x: x.var(1, True, True),
               lambda lib, x: lib.std(x, None, False), lambda lib, x: lib.var(x, 1, correction=None),
               lambda lib, x: lib.var(x, 1, unbiased=False, correction=1),  # both: TypeError
               lambda lib, x: lib.var(x, (0, 1), correction=3.5), lambda lib, x: lib.var(x, 1, correction=-1)):
        check(fn, pair)


def test_max_binary_and_signatures():
    a, b = make_pair((3, 4), "float32", seed=1), make_pair((3, 4), "float32", seed=2)
    check(lambda lib, x: lib.max(x, dim=1, keepdim=True), a)
    check(lambda lib, x: x.max(None), a)         # TypeError in torch
    check(lambda lib, x: lib.prod(x, keepdim=True), a)  # TypeError in torch
    check(lambda lib, x: lib.logsumexp(x, None), a)     # TypeError in torch
    check(lambda lib, x: lib.sum(x, 1.0), a)            # TypeError in torch
    check(lambda lib, x: lib.argmax(x, (0, 1)), a)      # TypeError in torch
    try:
        vt.maximum
    except AttributeError:
        with pytest.raises(NotImplementedError):
            vt.max(a[1], b[1])
    else:
        check(lambda lib, x, y: lib.max(x, y), a, b)
        check(lambda lib, x, y: lib.min(x, other=y), a, b)


# (fn(lib, x, out), out dtypes) -- torch's out= rules differ per op
OUTS = [
    ("sum", lambda lib, x, o: lib.sum(x, 1, out=o)),                       # reduces in out's dtype
    ("sum_dtype", lambda lib, x, o: lib.sum(x, 1, dtype=lib.float32, out=o)),  # out must equal dtype=
    ("mean", lambda lib, x, o: lib.mean(x, 1, out=o)),                     # castable
    ("prod", lambda lib, x, o: lib.prod(x, 1, out=o)),
    ("nansum", lambda lib, x, o: lib.nansum(x, 1, out=o)),
    ("amax", lambda lib, x, o: lib.amax(x, 1, out=o)),                     # exactly the input dtype
    ("max_all", lambda lib, x, o: lib.max(x, out=o)),
    ("argmax", lambda lib, x, o: lib.argmax(x, 1, out=o)),                 # int64 only
    ("var", lambda lib, x, o: lib.var(x, 1, out=o)),
    ("std", lambda lib, x, o: lib.std(x, 1, out=o)),
    ("norm", lambda lib, x, o: lib.norm(x, 2, 1, out=o)),                  # exactly the result dtype
    ("logsumexp", lambda lib, x, o: lib.logsumexp(x, 1, out=o)),
    ("any", lambda lib, x, o: lib.any(x, 1, out=o)),                       # bool or uint8
    ("all", lambda lib, x, o: lib.all(x, 1, out=o)),
]


def _run(fn, *args):
    """(result or exception, warned?) of fn(*args)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = fn(*args)
        except Exception as e:  # noqa: BLE001  (compared with torch's below)
            value = e
    return value, any(issubclass(w.category, UserWarning) for w in caught)


@pytest.mark.parametrize("name,fn", OUTS, ids=[line[0] for line in OUTS])
def test_out(name, fn):
    for in_dtype in ("float32", "int64", "uint8"):
        x = make_pair((3, 4), in_dtype, seed=5)
        for out_dtype in ("float32", "float64", "float16", "int64", "int32", "bool", "uint8"):
            # right shape; empty (resized silently); wrong non-empty shape (resized with a warning);
            # a non-contiguous view (written through)
            for out_shape in ((3,), (0,), (6,), "view"):
                t_dtype, v_dtype = getattr(torch, out_dtype), getattr(vt, out_dtype)
                if out_shape == "view":
                    t_out, v_out = torch.zeros(3, 2, dtype=t_dtype)[:, 1], vt.zeros((3, 2), dtype=v_dtype)[:, 1]
                else:
                    t_out, v_out = torch.zeros(out_shape, dtype=t_dtype), vt.zeros(out_shape, dtype=v_dtype)
                expected, t_warned = _run(fn, torch, x[0], t_out)
                got, v_warned = _run(fn, vt, x[1], v_out)
                where = f"{in_dtype} -> out {out_dtype} {out_shape}"
                if isinstance(expected, Exception):
                    exc = RuntimeError if type(expected).__module__.startswith("torch") else type(expected)
                    assert isinstance(got, exc), f"{where}: torch raised {expected!r}, we gave {got!r}"
                    continue
                assert not isinstance(got, Exception), f"{where}: we raised {got!r}"
                assert got is v_out, f"{where}: out= tensor not returned"
                assert v_warned == t_warned, f"{where}: resize warning {v_warned} vs torch {t_warned}"
                assert_same(v_out, t_out, path=where)


def test_max_dim_out_tuple():
    x = make_pair((3, 4), "float32", seed=6)
    for vdt, idt in (("float32", "int64"), ("float64", "int64"), ("float32", "int32")):
        outs_t = (torch.empty(3, dtype=getattr(torch, vdt)), torch.empty(3, dtype=getattr(torch, idt)))
        outs_v = (vt.empty(3, dtype=getattr(vt, vdt)), vt.empty(3, dtype=getattr(vt, idt)))
        try:
            expected = torch.max(x[0], 1, out=outs_t)
        except RuntimeError as e:
            with pytest.raises(RuntimeError, match=str(e)):
                vt.max(x[1], 1, out=outs_v)
            continue
        got = vt.max(x[1], 1, out=outs_v)
        assert got.values is outs_v[0] and got.indices is outs_v[1]
        assert outs_v[1].tolist() == expected.indices.tolist()


# errors: torch's exception type AND message, word for word
ERRORS = [
    ("mean_int", (2, 3), "int64", lambda lib, x: x.mean()),
    ("mean_dtype_int", (2, 3), "float32", lambda lib, x: x.mean(dtype=lib.int64)),
    ("nanmean_int", (2, 3), "int64", lambda lib, x: x.nanmean()),
    ("nansum_complex", (2, 3), "complex64", lambda lib, x: x.nansum()),
    ("amax_empty", (0, 3), "float32", lambda lib, x: x.amax()),
    ("amax_empty_dim", (0, 3), "float32", lambda lib, x: x.amax(0)),
    ("amax_complex", (2, 3), "complex64", lambda lib, x: x.amax()),
    ("max_empty", (0, 3), "float32", lambda lib, x: x.max()),
    ("max_empty_dim", (0, 3), "float32", lambda lib, x: x.max(0)),
    ("max_complex_dim", (2, 3), "complex64", lambda lib, x: x.max(0)),
    ("max_complex", (2, 3), "complex64", lambda lib, x: x.max()),
    ("argmax_empty", (0, 3), "float32", lambda lib, x: x.argmax()),
    ("argmax_empty_dim", (3, 0), "float32", lambda lib, x: x.argmax(1)),
    ("argmax_bool", (2, 3), "bool", lambda lib, x: x.argmax()),
    ("aminmax_empty", (0, 3), "float32", lambda lib, x: lib.aminmax(x)),
    ("aminmax_empty_dim", (0, 3), "float32", lambda lib, x: lib.aminmax(x, dim=0)),
    ("var_int", (2, 3), "int32", lambda lib, x: x.var()),
    ("norm_int", (2, 3), "int64", lambda lib, x: x.norm()),
    ("norm_empty_inf", (0, 3), "float32", lambda lib, x: x.norm(float("inf"))),
    ("norm_empty_dim_neg", (0, 3), "float32", lambda lib, x: x.norm(-1, 0)),
    ("norm_dtype_narrowing", (2, 3), "float32", lambda lib, x: x.norm(dtype=lib.float16)),
    ("norm_dtype_int", (2, 3), "float32", lambda lib, x: x.norm(dtype=lib.int64)),
    ("norm_dtype_complex", (2, 3), "float32", lambda lib, x: x.norm(dtype=lib.complex64)),
    ("norm_bad_order", (2, 3), "float32", lambda lib, x: x.norm("abc")),
    ("norm_fro_3_dims", (2, 3, 4), "float32", lambda lib, x: x.norm("fro", (0, 1, 2))),
    ("norm_nuc_1d", (3,), "float32", lambda lib, x: x.norm("nuc")),
    ("norm_nuc_same_dims", (3, 3), "float32", lambda lib, x: x.norm("nuc", (1, -1))),
    ("norm_nuc_half", (3, 3), "float16", lambda lib, x: x.norm("nuc")),
    ("logsumexp_empty_tuple", (2, 3), "float32", lambda lib, x: x.logsumexp(())),
    ("dim_out_of_range", (2, 3), "float32", lambda lib, x: x.sum(2)),
    ("dim_out_of_range_0d", (), "float32", lambda lib, x: x.amax(1)),
    ("dim_repeated", (2, 3), "float32", lambda lib, x: x.sum((0, -2))),
    ("dim_repeated_0d", (), "float32", lambda lib, x: x.mean((0, -1))),
    ("argmax_dim_out_of_range", (2, 3), "float32", lambda lib, x: x.argmax(-3)),
    ("hash_empty", (0, 3), "float32", lambda lib, x: x.hash_tensor()),
    ("hash_empty_dim", (0, 3), "int64", lambda lib, x: lib.hash_tensor(x, (1, 0))),
    ("hash_mode", (2, 3), "float32", lambda lib, x: lib.hash_tensor(x, mode=1)),
    ("hash_dim_before_mode", (2, 3), "float32", lambda lib, x: lib.hash_tensor(x, 2, mode=1)),
    ("hash_complex", (2, 3), "complex64", lambda lib, x: lib.hash_tensor(x, 0)),
    ("hash_uint32", (2, 3), "float32", lambda lib, x: lib.hash_tensor(x.to(lib.uint32))),
    ("hash_out_dtype", (2, 3), "float32", lambda lib, x: lib.hash_tensor(x, 1, out=lib.empty(2, dtype=lib.int64))),
    ("hash_dim_float", (2, 3), "float32", lambda lib, x: lib.hash_tensor(x, 1.5)),
]


@pytest.mark.parametrize("name,shape,dtype,fn", ERRORS, ids=[line[0] for line in ERRORS])
def test_error(name, shape, dtype, fn):
    t, v = make_pair(shape, dtype, seed=7)
    with pytest.raises(Exception) as expected:
        fn(torch, t)
    exc_type = RuntimeError if type(expected.value).__module__.startswith("torch") else type(expected.value)
    with pytest.raises(exc_type) as got:
        fn(vt, v)
    assert str(got.value) == str(expected.value).split("\n")[0]


def test_var_warns_about_degrees_of_freedom_like_torch():
    for fn in (lambda lib: lib.var(lib.ones(1)), lambda lib: lib.std(lib.ones(3, 2), 1, correction=2),
               lambda lib: lib.var_mean(lib.ones(2, 0), 1), lambda lib: lib.std_mean(lib.ones(4), correction=4),
               lambda lib: lib.var(lib.ones(3, 1), 1, correction=0), lambda lib: lib.var(lib.ones(0, 3), 1)):
        caught = []
        for lib in (torch, vt):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                fn(lib)
            caught.append([str(x.message).split(" (Triggered")[0] for x in w if "degrees of freedom" in str(x.message)])
        assert caught[0] == caught[1]
