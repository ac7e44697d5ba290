"""cat / stack and friends against torch: values, dtype (promotion across inputs), shape, strides
(channels-last inputs give a channels-last result), the legacy skipping of (0,)-shaped inputs,
out=, and errors (type and message), one table line per case."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy


def _t(lib, shape, dtype="float32", fill=1):
    return lib.full(shape, fill, dtype=getattr(lib, dtype))


def _arange(lib, shape, dtype="float32"):
    return lib.arange(int(np.prod(shape))).reshape(shape).to(getattr(lib, dtype))


# (name, fn(lib)) building its own inputs
CASES = [
    ("cat dim 0", lambda lib: lib.cat([_arange(lib, (2, 3)), _arange(lib, (1, 3))])),
    ("cat dim 1", lambda lib: lib.cat([_arange(lib, (2, 3)), _arange(lib, (2, 4))], 1)),
    ("cat dim -1", lambda lib: lib.cat((_arange(lib, (2, 3)), _arange(lib, (2, 1))), dim=-1)),
    ("cat one", lambda lib: lib.cat([_arange(lib, (2, 3))])),
    ("cat three 3-d", lambda lib: lib.cat([_arange(lib, (2, 1, 2)), _arange(lib, (2, 3, 2)), _arange(lib, (2, 0, 2))], 1)),
    ("concat", lambda lib: lib.concat([_arange(lib, (2, 3)), _arange(lib, (2, 3))], dim=1)),
    ("concatenate axis", lambda lib: lib.concatenate([_arange(lib, (2, 3)), _arange(lib, (2, 3))], axis=1)),
    ("cat promotes int float", lambda lib: lib.cat([_arange(lib, (2, 3), "int64"), _arange(lib, (2, 3))])),
    ("cat promotes bool uint8", lambda lib: lib.cat([_t(lib, (2,), "bool"), _t(lib, (2,), "uint8", 3)])),
    ("cat promotes half bfloat16", lambda lib: lib.cat([_t(lib, (2,), "float16"), _t(lib, (2,), "bfloat16")])),
    ("cat promotes complex double", lambda lib: lib.cat([_t(lib, (2,), "complex64"), _t(lib, (2,), "float64")])),
    ("cat int8 uint8", lambda lib: lib.cat([_t(lib, (2,), "int8", -1), _t(lib, (2,), "uint8", 200)])),
    ("cat skips legacy empty", lambda lib: lib.cat([_arange(lib, (2, 3)), lib.zeros(0, dtype=lib.float64)], 1)),
    ("cat skips legacy empty first", lambda lib: lib.cat([lib.zeros(0, dtype=lib.int32), _arange(lib, (2, 3))], 1)),
    ("cat only legacy empties", lambda lib: lib.cat([lib.zeros(0, dtype=lib.float64), lib.zeros(0, dtype=lib.int32)])),
    ("cat legacy empty with 3-d", lambda lib: lib.cat([lib.zeros(0), _arange(lib, (2, 3, 4))], 2)),
    ("cat empty 2-d", lambda lib: lib.cat([_arange(lib, (2, 3)), lib.zeros(0, 3)])),
    ("cat transposed", lambda lib: lib.cat([_arange(lib, (3, 2)).t(), _arange(lib, (3, 2)).t()], 1)),
    ("cat expanded", lambda lib: lib.cat([_arange(lib, (2, 1)).expand(2, 3), _arange(lib, (2, 2))], 1)),
    ("cat channels-last", lambda lib: lib.cat([_arange(lib, (2, 4, 5, 3)).permute(0, 3, 1, 2)] * 2, 1)),
    ("cat channels-last mixed", lambda lib: lib.cat([_arange(lib, (2, 4, 5, 3)).permute(0, 3, 1, 2),
                                                     _arange(lib, (2, 3, 4, 5))], 1)),
    ("cat channels-last 3d", lambda lib: lib.cat([_arange(lib, (2, 2, 4, 5, 3)).permute(0, 4, 1, 2, 3)] * 2, 0)),
    ("cat dim tensor", lambda lib: lib.cat([_arange(lib, (2, 3))] * 2, dim=lib.tensor(1))),
    ("stack", lambda lib: lib.stack([_arange(lib, (2, 3)), _t(lib, (2, 3))])),
    ("stack dim 1", lambda lib: lib.stack([_arange(lib, (2, 3)), _t(lib, (2, 3))], 1)),
    ("stack last dim", lambda lib: lib.stack([_arange(lib, (2, 3)), _t(lib, (2, 3))], -1)),
    ("stack 0-d", lambda lib: lib.stack([lib.tensor(1.0), lib.tensor(2)])),
    ("stack promotes", lambda lib: lib.stack([_arange(lib, (3,), "int32"), _t(lib, (3,), "float64")])),
    ("stack transposed", lambda lib: lib.stack([_arange(lib, (3, 2)).t()] * 2, 1)),
    ("stack channels-last", lambda lib: lib.stack([_arange(lib, (2, 4, 5, 3)).permute(0, 3, 1, 2)] * 2, 1)),
    ("hstack 2-d", lambda lib: lib.hstack([_arange(lib, (2, 3)), _t(lib, (2, 1))])),
    ("hstack 1-d", lambda lib: lib.hstack([_arange(lib, (2,)), _t(lib, (3,))])),
    ("hstack 0-d", lambda lib: lib.hstack([lib.tensor(1.0), lib.tensor(2.0)])),
    ("vstack 1-d", lambda lib: lib.vstack([_arange(lib, (3,)), _t(lib, (3,))])),
    ("vstack 2-d", lambda lib: lib.vstack((_arange(lib, (2, 3)), _t(lib, (1, 3))))),
    ("row_stack", lambda lib: lib.row_stack([_arange(lib, (3,)), _t(lib, (3,))])),
    ("dstack", lambda lib: lib.dstack([_arange(lib, (2, 3)), _t(lib, (2, 3))])),
    ("dstack 1-d", lambda lib: lib.dstack([_arange(lib, (3,)), _t(lib, (3,))])),
    ("column_stack", lambda lib: lib.column_stack([_arange(lib, (3,)), _t(lib, (3, 2))])),
    # errors
    ("cat empty list", lambda lib: lib.cat([])),
    ("cat sizes", lambda lib: lib.cat([_t(lib, (2, 3)), _t(lib, (3, 3))], 1)),
    ("cat sizes after legacy", lambda lib: lib.cat([lib.zeros(0), _t(lib, (2, 3)), _t(lib, (2, 4))])),
    ("cat dims", lambda lib: lib.cat([_t(lib, (2, 3)), _t(lib, (3,))])),
    ("cat empty 3-d not skipped", lambda lib: lib.cat([lib.zeros(0, 2, 3), _t(lib, (2, 3))])),
    ("cat 0-d", lambda lib: lib.cat([_t(lib, (2,)), lib.tensor(1.0)])),
    ("cat dim out of range", lambda lib: lib.cat([_t(lib, (2, 3))] * 2, 2)),
    ("cat a tensor", lambda lib: lib.cat(_t(lib, (2, 3)))),
    ("cat a number", lambda lib: lib.cat([_t(lib, (2,)), 1])),
    ("stack empty", lambda lib: lib.stack([])),
    ("stack sizes", lambda lib: lib.stack([_t(lib, (2, 3)), _t(lib, (3, 2))])),
    ("stack sizes last dim", lambda lib: lib.stack([_t(lib, (2, 3)), _t(lib, (2, 4))], 2)),
    ("stack dim out of range", lambda lib: lib.stack([_t(lib, (2, 3))] * 2, 3)),
    ("hstack empty", lambda lib: lib.hstack([])),
    ("vstack sizes", lambda lib: lib.vstack([_t(lib, (3,)), _t(lib, (2,))])),
]


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def run_both(fn):
    try:
        expected = _quiet(fn, torch)
    except Exception as e:
        kind = RuntimeError if type(e).__module__.startswith("torch") else type(e)
        with pytest.raises(kind) as ours:
            _quiet(fn, vt)
        assert str(e).split("\n")[0] in str(ours.value), f"torch: {e}\nours: {ours.value}"
        return None
    got = _quiet(fn, vt)
    assert_same(got, expected, check_stride=True)
    return got


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
def test_join(name, fn):
    run_both(fn)


def test_cat_layouts_and_dtypes():
    for layout in ("contiguous", "transposed", "strided", "expanded"):
        for da, db in (("float32", "float32"), ("int64", "float16"), ("bool", "complex64"), ("uint8", "int8")):
            a, b = make_pair((3, 4), da, layout, seed=1), make_pair((3, 4), db, "contiguous", seed=2)
            for dim in (0, 1, -1):
                assert_same(vt.cat([a[1], b[1], a[1]], dim), torch.cat([a[0], b[0], a[0]], dim), check_stride=True)
                assert_same(vt.stack([a[1], b[1]], dim), torch.stack([a[0], b[0]], dim), check_stride=True)


# (name, fn(lib, out)) writing into out=; out starts as zeros(2, 3) float32 unless the case makes its own
OUT = [
    ("cat out", lambda lib, out: lib.cat([_arange(lib, (1, 3)), _t(lib, (1, 3))], out=out)),
    ("cat out resized", lambda lib, out: lib.cat([_arange(lib, (2, 3)), _t(lib, (2, 3))], 1, out=out)),
    ("cat out casts up", lambda lib, out: lib.cat([_arange(lib, (1, 3), "int64"), _t(lib, (1, 3), "bool")], out=out)),
    ("cat out can't cast", lambda lib, out: lib.cat([_arange(lib, (1, 3)), _t(lib, (1, 3))],
                                                    out=out.to(lib.int64))),
    ("cat out overlaps input", lambda lib, out: lib.cat([out[:1], _t(lib, (1, 3))], out=out)),
    ("cat out bad sizes", lambda lib, out: lib.cat([_t(lib, (1, 3)), _t(lib, (1, 2))], out=out)),
    ("stack out", lambda lib, out: lib.stack([_arange(lib, (3,)), _t(lib, (3,))], out=out)),
    ("stack out resized", lambda lib, out: lib.stack([_arange(lib, (3,)), _t(lib, (3,))], 1, out=out)),
    ("hstack out", lambda lib, out: lib.hstack([_arange(lib, (2, 1)), _t(lib, (2, 2))], out=out)),
]


@pytest.mark.parametrize("name,fn", OUT, ids=[o[0] for o in OUT])
def test_out(name, fn):
    t_out, v_out = torch.zeros(2, 3), vt.zeros(2, 3)
    t0, v0 = t_out._version, v_out._version.value
    before = to_numpy(v_out)
    try:
        expected = _quiet(fn, torch, t_out)
    except Exception as e:
        kind = RuntimeError if type(e).__module__.startswith("torch") else type(e)
        with pytest.raises(kind) as ours:
            _quiet(fn, vt, v_out)
        assert str(e).split("\n")[0] in str(ours.value)
        assert np.array_equal(to_numpy(v_out), before) and v_out._version.value == v0
        return
    got = _quiet(fn, vt, v_out)
    assert got is v_out and expected is t_out
    assert_same(v_out, t_out, check_stride=True)
    assert v_out._version.value > v0 and t_out._version > t0
