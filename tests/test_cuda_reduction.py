"""Reductions on CUDA against torch's CUDA results (marker `cuda`)."""
import pytest

from oracle import LAYOUTS, check, make_pair

pytestmark = pytest.mark.cuda

CASES = [  # (name, fn)
    ("sum", lambda lib, a: a.sum()),
    ("sum_dim", lambda lib, a: a.sum(1)),
    ("sum_dims_keepdim", lambda lib, a: a.sum((0, 2), keepdim=True)),
    ("sum_dtype", lambda lib, a: a.sum(0, dtype=lib.float64)),
    ("mean", lambda lib, a: a.mean()),
    ("mean_dim", lambda lib, a: a.mean(-1)),
    ("amax", lambda lib, a: a.amax(1)),
    ("amin", lambda lib, a: a.amin((0, 1))),
]


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_reductions(name, fn, dtype):
    for layout in LAYOUTS:
        pair = make_pair((6, 40, 33), dtype, layout, seed=1, special=name.startswith("am"))
        check(fn, tuple(t.cuda() for t in pair), rtol=2e-2 if dtype == "bfloat16" else 1e-5,
              atol=2e-2 if dtype == "bfloat16" else 1e-5)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_sums(dtype):
    check(lambda lib, a: a.sum(1), tuple(t.cuda() for t in make_pair((7, 300), dtype, seed=2)))


def test_large_row_uses_partials():
    pair = make_pair((3, 200_000), "float32", seed=3)
    check(lambda lib, a: (a.sum(1), a.mean(), a.amax()), tuple(t.cuda() for t in pair), rtol=1e-4, atol=1e-3)
