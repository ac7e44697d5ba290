"""Indexing against torch: x[i] (values, dtype, shape, strides, storage offset, view-or-copy) and
x[i] = v (the written tensor and its version counter), one table line per index expression, run
over several memory layouts and dtypes; errors must match torch's type and message, and a failed
assignment must leave the tensor unchanged."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy

# (index expression, fn(lib, x) -> x[...]) ; x has shape (3, 4, 5)
GET = [
    ("int", lambda lib, x: x[1]),
    ("neg int", lambda lib, x: x[-1]),
    ("int int", lambda lib, x: x[2, -3]),
    ("slice", lambda lib, x: x[1:]),
    ("slice step", lambda lib, x: x[::2, 1::3]),
    ("slice clamp", lambda lib, x: x[-100:100, 3:1]),
    ("slice empty", lambda lib, x: x[5:]),
    ("ellipsis", lambda lib, x: x[...]),
    ("ellipsis int", lambda lib, x: x[..., 2]),
    ("int ellipsis int", lambda lib, x: x[0, ..., 1]),
    ("two ellipses", lambda lib, x: x[0, ..., 1, ...]),
    ("none", lambda lib, x: x[None]),
    ("none mid", lambda lib, x: x[:, None, 1]),
    ("none ellipsis none", lambda lib, x: x[None, ..., None]),
    ("true", lambda lib, x: x[True]),
    ("false", lambda lib, x: x[False]),
    ("true int", lambda lib, x: x[True, 0]),
    ("int true", lambda lib, x: x[0, True]),
    ("0-d long tensor", lambda lib, x: x[lib.tensor(1)]),
    ("0-d int32 tensor", lambda lib, x: x[lib.tensor(2, dtype=lib.int32)]),
    ("0-d bool tensor", lambda lib, x: x[lib.tensor(True)]),
    ("slice bound tensor", lambda lib, x: x[lib.tensor(1):]),
    ("numpy int", lambda lib, x: x[np.int64(2)]),
    ("list", lambda lib, x: x[[0, 2]]),
    ("list neg", lambda lib, x: x[[-1, 0, -1]]),
    ("list empty", lambda lib, x: x[[]]),
    ("list of bools", lambda lib, x: x[[True, False, True]]),
    ("list floats truncate", lambda lib, x: x[[0.5, 2.7]]),
    ("tuple item list", lambda lib, x: x[(0, 2), ]),
    ("long tensor", lambda lib, x: x[lib.tensor([2, 0])]),
    ("int32 tensor", lambda lib, x: x[:, lib.tensor([3, 1], dtype=lib.int32)]),
    ("2-d index", lambda lib, x: x[lib.tensor([[0, 1], [2, 0]])]),
    ("2-d index transposed", lambda lib, x: x[:, lib.tensor([[0, 1], [2, 3]]).t()]),
    ("numpy array", lambda lib, x: x[np.array([1, 0])]),
    ("range", lambda lib, x: x[range(2)]),
    ("adjacent pair", lambda lib, x: x[[0, 1], [1, 2]]),
    ("adjacent pair last", lambda lib, x: x[:, [0, 1], [1, 2]]),
    ("separated pair", lambda lib, x: x[[0, 1], :, [1, 2]]),
    ("broadcast pair", lambda lib, x: x[[[0], [1]], :, [1, 2, 4]]),
    ("int and list", lambda lib, x: x[1, [0, 3]]),
    ("list and int", lambda lib, x: x[[0, 2], 1]),
    ("slice list int", lambda lib, x: x[:, [0, 1], 1]),
    ("list slice list", lambda lib, x: x[[2], 1:, [0]]),
    ("ellipsis list", lambda lib, x: x[..., [0, 4]]),
    ("none list", lambda lib, x: x[None, [0, 1]]),
    ("list none", lambda lib, x: x[[0, 1], None]),
    ("slice none list", lambda lib, x: x[1:, None, [0, 1]]),
    ("mask 1-d", lambda lib, x: x[lib.tensor([True, False, True])]),
    ("mask 2-d", lambda lib, x: x[lib.tensor([[True, False, True, False]] * 3)]),
    ("mask full", lambda lib, x: x[x > 0]),
    ("mask then int", lambda lib, x: x[lib.tensor([[True, False, True, True]] * 3), 1]),
    ("mask then slice", lambda lib, x: x[lib.tensor([[True, False, True, True]] * 3), 1:]),
    ("mask then list", lambda lib, x: x[lib.tensor([[True, False, True, True]] * 3), [0, 1, 2, 3, 4, 0, 1, 2, 3]]),
    ("int then mask", lambda lib, x: x[0, lib.tensor([[True, False, True, True, False]] * 4)]),
    ("slice then mask", lambda lib, x: x[:, lib.tensor([False, True, True, False])]),
    ("ellipsis mask", lambda lib, x: x[..., lib.tensor([True, False, True, False, True])]),
    ("mask none mask", lambda lib, x: x[None, lib.tensor([True, False, False])]),
    ("uint8 mask", lambda lib, x: x[lib.tensor([1, 0, 1], dtype=lib.uint8)]),
    ("empty long", lambda lib, x: x[:, lib.tensor([], dtype=lib.long)]),
    ("empty 2-d long", lambda lib, x: x[:, lib.zeros(0, 2, dtype=lib.long)]),
    ("all-false mask", lambda lib, x: x[lib.zeros(3, dtype=lib.bool)]),
    ("list of lists (legacy tuple)", lambda lib, x: x[[[0, 1], [1, 2]]]),
    ("list with slice (legacy tuple)", lambda lib, x: x[[0, slice(None)]]),
    ("list with none (legacy tuple)", lambda lib, x: x[[0, None]]),
    ("list of 0-d tensors (legacy tuple)", lambda lib, x: x[[lib.tensor(0), lib.tensor(1)]]),
    # errors
    ("too many", lambda lib, x: x[0, 0, 0, 0]),
    ("too many lists", lambda lib, x: x[[0], [0], [0], [0]]),
    ("int out of range", lambda lib, x: x[3]),
    ("int out of range dim 1", lambda lib, x: x[0, -5]),
    ("list out of range", lambda lib, x: x[[0, 5]]),
    ("list out of range neg", lambda lib, x: x[:, [-5]]),
    ("second list out of range", lambda lib, x: x[[0], [7]]),
    ("float tensor", lambda lib, x: x[lib.tensor([0.0])]),
    ("int16 tensor", lambda lib, x: x[lib.tensor([0], dtype=lib.int16)]),
    ("float scalar", lambda lib, x: x[1.5]),
    ("string", lambda lib, x: x["a"]),
    ("step zero", lambda lib, x: x[::0]),
    ("negative step", lambda lib, x: x[::-1]),
    ("mask shape", lambda lib, x: x[lib.tensor([True, False])]),
    ("mask 2-d shape", lambda lib, x: x[lib.ones(3, 5, dtype=lib.bool)]),
    ("broadcast mismatch", lambda lib, x: x[[0, 1], [0, 1, 2]]),
    ("two masks mismatch", lambda lib, x: x[lib.tensor([True, False, True]), lib.tensor([True, True, True, False])]),
]

GET_0D = [
    ("0-d none", lambda lib, x: x[None]),
    ("0-d ellipsis", lambda lib, x: x[...]),
    ("0-d true", lambda lib, x: x[True]),
    ("0-d none ellipsis none", lambda lib, x: x[None, ..., None]),
    ("0-d true none", lambda lib, x: x[True, None]),
    ("0-d index 0", lambda lib, x: x[0]),
    ("0-d index 5", lambda lib, x: x[5]),
    ("0-d slice", lambda lib, x: x[:]),
    ("0-d list", lambda lib, x: x[[0]]),
    ("0-d tensor index", lambda lib, x: x[lib.tensor(0)]),
]

LAYOUTS = ["contiguous", "transposed", "strided", "expanded"]


def _run(fn, lib, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(lib, x)


def _same_geometry(ours, theirs, base_t, base_v):
    assert_same(ours, theirs, check_stride=True)
    assert ours.storage_offset() == theirs.storage_offset()
    t_view = theirs.untyped_storage().data_ptr() == base_t.untyped_storage().data_ptr()
    v_view = ours.untyped_storage() is base_v.untyped_storage()
    assert t_view == v_view, f"torch {'shares' if t_view else 'copies'} storage, we {'share' if v_view else 'copy'}"


def check_get(fn, t, v):
    try:
        expected = _run(fn, torch, t)
    except Exception as e:
        with pytest.raises(type(e) if not type(e).__module__.startswith("torch") else RuntimeError) as ours:
            _run(fn, vt, v)
        assert str(e).split("\n")[0] == str(ours.value).split("\n")[0]
        return
    _same_geometry(_run(fn, vt, v), expected, t, v)


@pytest.mark.parametrize("name,fn", GET, ids=[g[0] for g in GET])
def test_get(name, fn):
    for layout in LAYOUTS:
        for dtype in ("float32", "int64"):
            check_get(fn, *make_pair((3, 4, 5), dtype, layout, seed=1))


@pytest.mark.parametrize("name,fn", GET_0D, ids=[g[0] for g in GET_0D])
def test_get_0d(name, fn):
    check_get(fn, *make_pair((), "float32", seed=2))


def test_get_dtypes():
    for dtype in ("bool", "uint8", "float16", "bfloat16", "float64", "complex64"):
        t, v = make_pair((3, 4), dtype, "transposed", seed=3)
        for fn in (lambda lib, x: x[[0, 2], 1:], lambda lib, x: x[x != x[0, 0]], lambda lib, x: x[:, [[1], [0]]]):
            check_get(fn, t, v)


def test_index_result_layout_follows_input():
    """torch's TensorIterator lays a gather's result out like its input: e.g. a permuted input
    gives a permuted result; the strides must match exactly."""
    t, v = make_pair((2, 3, 4, 5), "float32", seed=4)
    for perm in ((3, 1, 0, 2), (0, 2, 1, 3), (1, 0, 3, 2)):
        tp, vp = t.permute(*perm), v.permute(*perm)
        for fn in (lambda lib, x: x[:, [0, 1], :, [1, 0]], lambda lib, x: x[:, :, [0, 1]],
                   lambda lib, x: x[..., [[0, 1]]], lambda lib, x: x[[1, 0]], lambda lib, x: x[:, [1]]):
            check_get(fn, tp, vp)


# (index expression, fn(lib, x, value) doing x[...] = value, value fn(lib)); x has shape (3, 4, 5)
SET = [
    ("int scalar", lambda lib, x, v: x.__setitem__(1, v), lambda lib: 7.0),
    ("int tensor row", lambda lib, x, v: x.__setitem__((0, 1), v), lambda lib: lib.arange(5.0)),
    ("slice broadcast", lambda lib, x, v: x.__setitem__((slice(None), 2), v), lambda lib: lib.arange(5.0)),
    ("leading ones dropped", lambda lib, x, v: x.__setitem__(0, v), lambda lib: lib.ones(1, 1, 4, 5)),
    ("ellipsis", lambda lib, x, v: x.__setitem__(Ellipsis, v), lambda lib: -1.0),
    ("none", lambda lib, x, v: x.__setitem__(None, v), lambda lib: 2.0),
    ("true", lambda lib, x, v: x.__setitem__(True, v), lambda lib: lib.ones(4, 5)),
    ("false does nothing", lambda lib, x, v: x.__setitem__(False, v), lambda lib: lib.ones(9)),
    ("int then false", lambda lib, x, v: x.__setitem__((0, False), v), lambda lib: 3.0),
    ("0-d tensor value", lambda lib, x, v: x.__setitem__((1, 2), v), lambda lib: lib.tensor(5.0)),
    ("double tensor cast", lambda lib, x, v: x.__setitem__(0, v), lambda lib: lib.full((5,), 2.5, dtype=lib.float64)),
    ("list scalar", lambda lib, x, v: x.__setitem__([0, 2], v), lambda lib: 4.0),
    ("list tensor", lambda lib, x, v: x.__setitem__(([0, 2], 1), v), lambda lib: lib.ones(2, 5)),
    ("pair tensor", lambda lib, x, v: x.__setitem__(([0, 2], [1, 3]), v), lambda lib: lib.arange(5.0)),
    ("separated pair", lambda lib, x, v: x.__setitem__(([0, 2], slice(None), [1, 3]), v), lambda lib: lib.arange(4.0)),
    ("duplicates last wins", lambda lib, x, v: x.__setitem__([0, 0], v), lambda lib: lib.stack([lib.ones(4, 5), 2 * lib.ones(4, 5)])),
    ("negative list", lambda lib, x, v: x.__setitem__((slice(None), [-1]), v), lambda lib: 9.0),
    ("mask scalar", lambda lib, x, v: x.__setitem__(x > 0, v), lambda lib: 0.0),
    ("mask 0-d long value", lambda lib, x, v: x.__setitem__(x > 0, v), lambda lib: lib.tensor(1)),
    ("mask 1-elem long value", lambda lib, x, v: x.__setitem__(x > 0, v), lambda lib: lib.tensor([1])),
    ("mask rows", lambda lib, x, v: x.__setitem__(lib.tensor([True, False, True]), v), lambda lib: lib.arange(5.0)),
    ("mask then int", lambda lib, x, v: x.__setitem__((lib.tensor([True, False, True]), 0), v), lambda lib: lib.tensor(2.0, dtype=lib.float64)),
    ("empty mask", lambda lib, x, v: x.__setitem__(x > 100, v), lambda lib: 1.0),
    ("mask values", lambda lib, x, v: x.__setitem__(lib.tensor([[True, False, True, True]] * 3), v), lambda lib: lib.arange(45.0).reshape(9, 5)),
    ("int32 index", lambda lib, x, v: x.__setitem__(lib.tensor([2, 1], dtype=lib.int32), v), lambda lib: -3.0),
    # errors: the tensor must stay unchanged
    ("bad broadcast basic", lambda lib, x, v: x.__setitem__(0, v), lambda lib: lib.ones(3)),
    ("too many value dims", lambda lib, x, v: x.__setitem__(0, v), lambda lib: lib.ones(2, 4, 5)),
    ("bad broadcast advanced", lambda lib, x, v: x.__setitem__([0, 1], v), lambda lib: lib.ones(3)),
    ("dtype mismatch advanced", lambda lib, x, v: x.__setitem__([0], v), lambda lib: lib.ones(5, dtype=lib.float64)),
    ("dtype mismatch 0-d", lambda lib, x, v: x.__setitem__([0], v), lambda lib: lib.tensor(1)),
    ("out of range list", lambda lib, x, v: x.__setitem__([0, 3], v), lambda lib: 1.0),
    ("out of range int", lambda lib, x, v: x.__setitem__(3, v), lambda lib: 1.0),
    ("float index", lambda lib, x, v: x.__setitem__(lib.tensor([0.0]), v), lambda lib: 1.0),
    ("list value", lambda lib, x, v: x.__setitem__(0, v), lambda lib: [1, 2]),
    ("string value", lambda lib, x, v: x.__setitem__(0, v), lambda lib: "a"),
    ("complex into real", lambda lib, x, v: x.__setitem__(0, v), lambda lib: 1j),
    ("overflowing float", lambda lib, x, v: x.__setitem__(0, v), lambda lib: 1e300),
    ("overlapping value", lambda lib, x, v: x.__setitem__(slice(0, 2), v), lambda lib: None),
    ("delete", lambda lib, x, v: x.__delitem__(0), lambda lib: None),
]


def check_set(fn, value_fn, t, v, dtype):
    t, v = t.clone(), v.clone()
    tval, vval = value_fn(torch), value_fn(vt)
    if tval is None:  # the value is a view of x itself
        tval, vval = t[1:], v[1:]
    elif isinstance(tval, torch.Tensor) and tval.dtype == torch.float32 and dtype != "float32":
        tval, vval = tval.to(getattr(torch, dtype)), vval.to(getattr(vt, dtype))
    before_t, before_v = t.clone(), v.clone()
    t_version, v_version = t._version, v._version.value
    try:
        _run(lambda lib, x: fn(lib, x, tval), torch, t)
    except Exception as e:
        with pytest.raises(type(e) if not type(e).__module__.startswith("torch") else RuntimeError) as ours:
            _run(lambda lib, x: fn(lib, x, vval), vt, v)
        assert str(e).split("\n")[0] == str(ours.value).split("\n")[0]
        assert np.array_equal(to_numpy(v), to_numpy(before_v), equal_nan=True), "a failed assignment wrote"
        return
    _run(lambda lib, x: fn(lib, x, vval), vt, v)
    assert_same(v, t)
    assert v._version.value - v_version == t._version - t_version


@pytest.mark.parametrize("name,fn,value", SET, ids=[s[0] for s in SET])
def test_set(name, fn, value):
    for layout in ("contiguous", "transposed", "strided"):
        for dtype in ("float32", "int64"):
            check_set(fn, value, *make_pair((3, 4, 5), dtype, layout, seed=5), dtype)


# Python numbers assigned into each dtype: torch's checked conversion (wraps, truncates or raises)
SCALARS = [300, -1, -255, -256, 2.7, -2.7, 127.5, 1e10, 1e300, float("nan"), float("inf"), 1j, 2 + 0j, True, 2 ** 40]


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int32", "int64", "float16", "bfloat16", "float32",
                                   "float64", "complex64"])
def test_set_scalar_conversion(dtype):
    for value in SCALARS:
        check_set(lambda lib, x, val: x.__setitem__(0, val), lambda lib: value, *make_pair((3,), dtype, seed=6), dtype)


def test_set_expanded_target():
    for fn in (lambda lib, x: x.__setitem__(slice(None), lib.ones(3)), lambda lib, x: x.__setitem__(Ellipsis, 1.0)):
        t, v = torch.zeros(1).expand(3), vt.zeros(1).expand(3)
        with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
            fn(torch, t)
        with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
            fn(vt, v)


def test_set_through_view_bumps_shared_version():
    t, v = make_pair((3, 4), "float32", seed=7)
    tv, vv = t[1], v[1]
    for lib, x, view in ((torch, t, tv), (vt, v, vv)):
        view[[0, 2]] = 5.0
        view[1:] = 1.0
    assert_same(v, t)
    assert v._version.value == t._version == vv._version.value == tv._version == 2


def test_index_put():
    for accumulate in (False, True):
        t, v = make_pair((4, 3), "float32", seed=8)
        ti, vi = torch.tensor([0, 2, 0]), vt.tensor([0, 2, 0])
        tval, vval = torch.ones(3, 3), vt.ones(3, 3)
        assert_same(vt.index_put(v, (vi,), vval, accumulate), torch.index_put(t, (ti,), tval, accumulate))
        assert_same(v.index_put_((vi, vi), vval[0], accumulate=accumulate),
                    t.index_put_((ti, ti), tval[0], accumulate=accumulate))
        with pytest.raises(TypeError, match="expected Tensor as element 1"):
            v.index_put_((vi, None), vval)
        with pytest.raises(TypeError, match="must be Tensor"):
            v.index_put_((vi,), 1.0)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "complex64"])
def test_index_put_accumulate_duplicates(dtype):
    t, v = make_pair((4, 2), dtype, seed=10)
    tval, vval = make_pair((5, 2), dtype, seed=11)
    ti, vi = torch.tensor([0, 0, 2, -1, 0]), vt.tensor([0, 0, 2, -1, 0])
    assert_same(v.index_put_((vi,), vval, accumulate=True), t.index_put_((ti,), tval, accumulate=True))


# -- random index expressions --------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ITEM_KINDS = ["int", "slice", "none", "ellipsis", "list", "mask", "tensor2d", "true"]


def _item(kind, r, lib):
    """One index item from random ints r (ints/lists may fall out of range on purpose)."""
    if kind == "int":
        return r[0] % 9 - 4
    if kind == "slice":
        return slice(r[0] % 7 - 3 if r[1] % 3 else None, r[1] % 7 - 2, r[2] % 3 + 1)
    if kind == "none":
        return None
    if kind == "ellipsis":
        return Ellipsis
    if kind == "list":
        return [r[i] % 7 - 3 for i in range(r[3] % 3 + 1)]
    if kind == "mask":
        return lib.tensor([bool(r[i] % 2) for i in range(r[3] % 2 + 3)])
    if kind == "tensor2d":
        return lib.tensor([[r[0] % 3, r[1] % 3]] * (r[2] % 2 + 1))
    return True


@settings(max_examples=150, deadline=None)
@given(layout=st.sampled_from(["contiguous", "transposed", "strided", "expanded"]),
       items=st.lists(st.tuples(st.sampled_from(ITEM_KINDS), st.lists(st.integers(0, 99), min_size=4, max_size=4)),
                      min_size=1, max_size=4))
def test_random_index_expressions(layout, items):
    t, v = make_pair((3, 4, 3), "float32", layout, seed=9)
    first = next((i for i, (kind, _) in enumerate(items) if kind == "ellipsis"), None)
    # several ellipses can index past the last dim, where torch reads undefined sizes: keep one
    items = [it for i, it in enumerate(items) if it[0] != "ellipsis" or i == first]

    def index(lib):
        return tuple(_item(kind, r, lib) for kind, r in items)
    check_get(lambda lib, x: x[index(lib)], t, v)
    check_set(lambda lib, x, val: x.__setitem__(index(lib), val), lambda lib: -1.0, t, v, "float32")
