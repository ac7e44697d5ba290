"""Elementwise ops on CUDA against torch's CUDA results (marker `cuda`): every op with a CUDA
kernel, over dtypes, layouts, broadcasting, 0-d and empty shapes, scalars, NaN/inf."""
import pytest
import torch

import vibetensor.torch as vt
from oracle import LAYOUTS, check, make_pair
from vibetensor.backends.cuda import elementwise as cew

pytestmark = pytest.mark.cuda

FLOATS = ["float32", "float64", "float16", "bfloat16"]
INTS = ["int32", "int64", "uint8", "bool"]
# Each (op, dtype, layout kind) compiles a kernel (~0.3 s): the full dtype sweep runs for a few
# representative ops, the rest run float32, bfloat16 and int32.
FULL_SWEEP = {"neg", "exp", "abs", "add", "mul", "div", "eq", "maximum", "bitwise_and"}


def dtypes_for(name, int_ok):
    if name in FULL_SWEEP:
        return FLOATS + [d for d in INTS if name in int_ok]
    return ["float32", "bfloat16"] + (["int32"] if name in int_ok else [])
UNARY_INT_OK = {"neg", "abs", "square", "isnan", "isinf", "isfinite", "logical_not", "bitwise_not", "sign", "relu"}
BINARY_INT_OK = {"add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
                 "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "atan2"}


def _cuda(pair):
    return pair[0].cuda(), pair[1].cuda()


def check_cuda(fn, *pairs):
    """Compare with torch's CUDA result where torch's CPU build accepts the inputs too (our dtype
    rules are torch's CPU ones, and its CUDA build accepts a few more, e.g. abs of bool); where
    torch's CPU build refuses, we must refuse alike."""
    try:
        fn(torch, *[p[0].cpu() for p in pairs])
    except Exception as e:
        with pytest.raises(type(e) if type(e).__module__ == "builtins" else RuntimeError):
            fn(vt, *[p[1] for p in pairs])
        return
    check(fn, *pairs)


def _fn(name):
    return lambda lib, *xs: getattr(lib, name)(*xs)


@pytest.mark.parametrize("name", [n for n in cew.UNARY if n in cew.REGISTERED])
def test_unary(name):
    positive = name in ("log", "log2", "log10", "sqrt", "rsqrt", "log1p", "acos", "asin")
    for dtype in dtypes_for(name, UNARY_INT_OK):
        for shape, layout in (((33, 17), "contiguous"), ((16, 32), "contiguous"), ((33, 17), "transposed"),
                              ((4, 6), "strided"), ((4, 6), "expanded"), ((), "contiguous"), ((0, 3), "contiguous")):
            low, high = (0.1, 0.9) if positive else (-3, 3)
            check_cuda(_fn(name), _cuda(make_pair(shape, dtype, layout, seed=1, low=low, high=high,
                                             special=not positive)))


# Element counts that are multiples of 16 let Triton vectorise the contiguous kernel (16-byte loads and
# stores), with code of its own: Triton 3.6 compiled sign's int -1 -> bfloat16/float16 conversion
# there into +1 (every negative element's sign came out +1). Each case: fn(lib, x) on those shapes.
VECTORISED = [
    ("sign", lambda lib, x: lib.sign(x)),
    ("sgn", lambda lib, x: lib.sgn(x)),
    ("sign_inplace", lambda lib, x: x.clone().sign_()),
    ("abs_grad", lambda lib, x: lib.autograd.grad(lib.abs(x).sum(), x)[0]),
    ("sgn_after_abs", lambda lib, x: lib.sgn(x.abs().neg())),
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64", "int32"])
@pytest.mark.parametrize("name,fn", VECTORISED, ids=[c[0] for c in VECTORISED])
def test_sign_vectorised(name, fn, dtype):
    if name == "abs_grad" and dtype == "int32":
        return  # (integers have no gradient)
    for shape in ((20, 20), (64,), (2, 8, 16), (33, 17)):
        t, v = _cuda(make_pair(shape, dtype, seed=9, special=dtype != "int32", low=-9, high=9))
        if name == "abs_grad":
            t, v = t.requires_grad_(True), v.requires_grad_(True)
        check_cuda(fn, (t, v))


@pytest.mark.parametrize("name", [n for n in cew.BINARY if n in cew.REGISTERED])
def test_binary(name):
    for dtype in dtypes_for(name, BINARY_INT_OK):
        for sa, sb in (((33, 17), (33, 17)), ((5, 1, 4), (3, 1)), ((), (3,)), ((0, 4), (4,))):
            for layout in LAYOUTS:
                a = _cuda(make_pair(sa, dtype, layout, seed=2, special=True, low=0.5 if name == "pow" else -3))
                b = _cuda(make_pair(sb, dtype, "contiguous", seed=3, special=True))
                check_cuda(_fn(name), a, b)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "eq", "lt", "pow"])
def test_scalars_both_sides(name):
    a = _cuda(make_pair((7, 5), "float32", seed=4, low=0.5))
    for scalar in (2, -3, 0.1, True):
        check(lambda lib, x: getattr(lib, name)(x, scalar), a)
        if name not in ("pow",):
            check(lambda lib, x: getattr(lib, name)(scalar, x) if name != "add" else x + scalar, a)
    i = _cuda(make_pair((7, 5), "int64", seed=5))
    check(lambda lib, x: x + 2.5, i)
    check(lambda lib, x: lib.add(x, 3, alpha=2), i)
    d = _cuda(make_pair((7, 5), "float64", seed=6))
    check(lambda lib, x: x * 0.1, d)  # the scalar stays float64 on the way in


def test_inplace_and_out():
    a, b = _cuda(make_pair((6, 4), "float32", seed=7)), _cuda(make_pair((4,), "float32", seed=8))
    check(lambda lib, x, y: x.clone().add_(y, alpha=2), a, b)
    check(lambda lib, x, y: lib.mul(x, y, out=lib.empty(6, 4, device="cuda")), a, b)
    check(lambda lib, x, y: x.clone()[:, ::2].mul_(2), a, b)


def test_mixed_devices_raise():
    x, y = vt.ones(3, device="cuda"), vt.ones(3)
    with pytest.raises(RuntimeError, match="same device"):
        x + y
    assert (x + vt.tensor(2.0)).cpu().tolist() == [3.0, 3.0, 3.0]  # a CPU 0-d tensor may join
    assert (vt.tensor(2.0) * x).device == vt.device("cuda", 0)
