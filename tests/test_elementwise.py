"""Elementwise ops against torch: one table line per op; each line runs over dtypes, layouts,
broadcasting, 0-d and empty shapes, and NaN/inf inputs."""
import pytest

from oracle import DTYPES, LAYOUTS, check, make_pair

# (name, fn(lib, a, b), dtypes) -- binary ops take two tensors
BINARY = [
    ("add", lambda lib, a, b: lib.add(a, b), DTYPES),
    ("add_alpha", lambda lib, a, b: lib.add(a, b, alpha=2), DTYPES),
    ("sub", lambda lib, a, b: a - b, DTYPES),
    ("mul", lambda lib, a, b: a * b, DTYPES),
    ("div", lambda lib, a, b: a / b, DTYPES),
    ("div_floor", lambda lib, a, b: lib.div(a, b, rounding_mode="floor"), DTYPES),
    ("div_trunc", lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"), DTYPES),
    ("eq", lambda lib, a, b: a == b, DTYPES),
]

UNARY = [
    ("neg", lambda lib, a: -a, DTYPES),
    ("exp", lambda lib, a: lib.exp(a), DTYPES),
]

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((0, 4), (4,)), ((), ())]


@pytest.mark.parametrize("name,fn,dtypes", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, dtypes):
    for dtype in dtypes:
        for sa, sb in SHAPES:
            for layout in LAYOUTS:
                a = make_pair(sa, dtype, layout, seed=1, special=True)
                b = make_pair(sb, dtype, "contiguous", seed=2, special=True)
                check(fn, a, b)


@pytest.mark.parametrize("name,fn,dtypes", BINARY, ids=[b[0] for b in BINARY])
def test_binary_scalar(name, fn, dtypes):
    for dtype in dtypes:
        a = make_pair((3, 4), dtype, seed=1)
        for scalar in (2, -3, 2.5, True):
            check(lambda lib, x: fn(lib, x, scalar), a)
            check(lambda lib, x: fn(lib, scalar, x) if name != "add_alpha" else fn(lib, x, scalar), a)


@pytest.mark.parametrize("name,fn,dtypes", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn, dtypes):
    for dtype in dtypes:
        for shape in ((3, 4), (), (0,), (2, 3, 4)):
            for layout in LAYOUTS:
                check(fn, make_pair(shape, dtype, layout, seed=3, special=True))
