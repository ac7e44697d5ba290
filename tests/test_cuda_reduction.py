"""Reductions on CUDA against torch's CUDA results (marker `cuda`)."""
import pytest

from oracle import LAYOUTS, check, make_pair

pytestmark = pytest.mark.cuda

CASES = [  # (name, fn)
    ("sum", lambda lib, a: a.sum()),
    ("sum_dim", lambda lib, a: a.sum(1)),
    ("sum_first_dim", lambda lib, a: a.sum(0)),
    ("sum_last_dim", lambda lib, a: a.sum(-1)),
    ("sum_dims_keepdim", lambda lib, a: a.sum((0, 2), keepdim=True)),
    ("sum_leading_dims", lambda lib, a: a.sum((0, 1))),
    ("sum_dtype", lambda lib, a: a.sum(0, dtype=lib.float64)),
    ("sum_offset_view", lambda lib, a: a[1:, 3:].sum(1)),
    ("mean", lambda lib, a: a.mean()),
    ("mean_dim", lambda lib, a: a.mean(-1)),
    ("mean_first_dim", lambda lib, a: a.mean(0)),
    ("prod_dim", lambda lib, a: (a * 0.05 + 1).prod(1)),
    ("amax", lambda lib, a: a.amax(1)),
    ("amax_first_dim", lambda lib, a: a.amax(0)),
    ("amin", lambda lib, a: a.amin((0, 1))),
    ("amin_all", lambda lib, a: a.amin()),
]


@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_reductions(name, fn, dtype):
    tol = (5e-2 if name.startswith("prod") else 2e-2) if dtype == "bfloat16" else 1e-5  # bf16 rounds each factor
    for layout in LAYOUTS:
        pair = make_pair((6, 40, 33), dtype, layout, seed=1, special=name.startswith("am"))
        check(fn, tuple(t.cuda() for t in pair), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "uint8"])
def test_integer_sums(dtype):
    pair = tuple(t.cuda() for t in make_pair((7, 300), dtype, seed=2))
    check(lambda lib, a: (a.sum(1), a.sum(0), a.sum(), a.sum(0, dtype=lib.float32)), pair)


# shapes whose rows or columns are split into chunks (a second pass over partials), or are tiny
LARGE = [  # (name, shape, fn)
    ("full", (3, 200_000), lambda lib, a: (a.sum(), a.mean(), a.amax(), a.amin())),
    ("long_rows", (3, 200_000), lambda lib, a: (a.sum(1), a.mean(1), a.amax(1))),
    ("long_columns", (20_000, 64), lambda lib, a: (a.sum(0), a.mean(0), a.amin(0))),
    ("long_middle", (4, 9_000, 24), lambda lib, a: (a.sum(1), a.mean(1), a.amax(1))),
    ("wide_columns", (300, 5000), lambda lib, a: (a.sum(0), a.amax(0))),
    ("many_short_rows", (70_000, 3), lambda lib, a: (a.sum(1), a.sum(0), a.mean())),
    ("transposed_full", (3000, 257), lambda lib, a: (a.T.sum(0), a.T.sum(1), a.T.sum())),
]


@pytest.mark.parametrize("name,shape,fn", LARGE, ids=[c[0] for c in LARGE])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_large_reductions(name, shape, fn, dtype):
    pair = make_pair(shape, dtype, seed=3)
    check(fn, tuple(t.cuda() for t in pair), rtol=2e-2 if dtype == "bfloat16" else 1e-4,
          atol=5e-1 if dtype == "bfloat16" else 2e-2)


def test_large_integer_and_nan_reductions():
    ints = tuple(t.cuda() for t in make_pair((5, 100_000), "int32", seed=4))
    check(lambda lib, a: (a.sum(), a.sum(1), a.sum(0)), ints)
    bools = tuple(t.cuda() for t in make_pair((100_000, 7), "bool", seed=5))
    check(lambda lib, a: (a.sum(), a.sum(0), a.any(0), a.all(1), a.count_nonzero()), bools)
    nans = tuple(t.cuda() for t in make_pair((4, 100_000), "float32", seed=6, special=True))
    check(lambda lib, a: (a.amax(), a.amin(1), a.amax(0), a.sum(1)), nans)


def test_sums_are_deterministic():
    _, v = make_pair((2_000_001,), "float32", seed=7)
    v = v.cuda()
    first = [v.sum().item(), v.view(-1)[:-1].view(2000, 1000).sum(0).cpu().numpy()]
    for _ in range(3):
        assert v.sum().item() == first[0]
        assert (v.view(-1)[:-1].view(2000, 1000).sum(0).cpu().numpy() == first[1]).all()
