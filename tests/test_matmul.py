"""The matmul family against torch: one table line per op; each line runs over dtypes, shapes
(1-D/2-D/batched/broadcast, empty, mismatched), memory layouts and NaN/inf values."""

import pytest
import torch

import vibetensor.torch as vt
import vibetensor.torch.nn.functional as F
from oracle import DTYPES, FLOATS, assert_same, check, check_out, make_pair

VEC_MAT = [((3,), (3,)), ((3,), (4,)), ((0,), (0,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
           ((2, 3), (4, 5)), ((2, 0), (0, 3)), ((0, 3), (3, 2)), ((), (3,)), ((3, 1), (3,))]
BATCHED = [((2, 2, 3), (3,)), ((3,), (2, 3, 4)), ((2, 2, 3), (3, 4)), ((2, 3), (2, 3, 4)), ((2, 2, 3), (2, 3, 4)),
           ((2, 1, 2, 3), (4, 3, 5)), ((1, 2, 3), (3, 3, 4)), ((0, 2, 3), (3, 4)), ((2, 2, 3), (4, 3, 5)),
           ((2, 2, 3), (2, 4, 5)), ((2, 2, 3), (4,)), ((2,), (2, 3, 4)), ((2, 3), (2, 4, 2))]
LAYOUTS_A = ["contiguous", "transposed", "strided", "expanded"]
LAYOUTS_B = ["contiguous", "transposed"]

# (name, fn(lib, *tensors), cases: lists of input shapes, dtypes)
PRODUCTS = [
    ("matmul", lambda lib, a, b: lib.matmul(a, b), VEC_MAT + BATCHED, DTYPES),
    ("matmul_operator", lambda lib, a, b: a @ b, BATCHED, ["float32", "int64", "bool"]),
    ("matmul_method", lambda lib, a, b: a.matmul(b), BATCHED, FLOATS),
    ("rmatmul", lambda lib, a, b: b.__rmatmul__(a), VEC_MAT, FLOATS),
    ("mm", lambda lib, a, b: lib.mm(a, b), VEC_MAT + [((2, 2, 3), (3, 4))], DTYPES),
    ("bmm", lambda lib, a, b: a.bmm(b), [((2, 2, 3), (2, 3, 4)), ((2, 2, 3), (3, 3, 4)), ((2, 2, 3), (2, 4, 5)),
                                         ((0, 2, 3), (0, 3, 4)), ((2, 3), (3, 4)), ((2, 2, 0), (2, 0, 3))], DTYPES),
    ("mv", lambda lib, a, b: lib.mv(a, b), VEC_MAT, DTYPES),
    ("dot", lambda lib, a, b: lib.dot(a, b), VEC_MAT, DTYPES),
    ("vdot", lambda lib, a, b: a.vdot(b), VEC_MAT, DTYPES),
    ("outer", lambda lib, a, b: lib.outer(a, b), VEC_MAT, DTYPES),
    ("ger", lambda lib, a, b: a.ger(b), [((3,), (4,))], DTYPES),
    ("addmm", lambda lib, c, a, b: lib.addmm(c, a, b), [((2, 4), (2, 3), (3, 4)), ((4,), (2, 3), (3, 4)),
                                                           ((), (2, 3), (3, 4)), ((3,), (2, 3), (3, 4)),
                                                           ((2, 4), (2, 3), (4, 4)), ((1, 2, 4), (2, 3), (3, 4)),
                                                           ((2, 4), (3,), (3, 4)), ((2, 0), (2, 3), (3, 0))], DTYPES),
    ("addmm_scaled", lambda lib, c, a, b: lib.addmm(c, a, b, beta=0.5, alpha=2), [((2, 4), (2, 3), (3, 4))], DTYPES),
    ("addmm_beta0", lambda lib, c, a, b: lib.addmm(c, a, b, beta=0), [((2, 4), (2, 3), (3, 4))], DTYPES),
    ("addmm_alpha0", lambda lib, c, a, b: c.addmm(a, b, alpha=0, beta=3), [((2, 4), (2, 3), (3, 4))], DTYPES),
    ("addmm_complex_alpha", lambda lib, c, a, b: lib.addmm(c, a, b, alpha=1 + 1j), [((2, 4), (2, 3), (3, 4))], DTYPES),
    ("addmv", lambda lib, c, a, b: lib.addmv(c, a, b, beta=2, alpha=1.5), [((2,), (2, 3), (3,)), ((1,), (2, 3), (3,)),
                                                                          ((), (2, 3), (3,)), ((3,), (2, 3), (3,)),
                                                                          ((2,), (2, 3), (4,)), ((1, 2), (2, 3), (3,))],
     DTYPES),
    ("addmv_beta0", lambda lib, c, a, b: c.addmv(a, b, beta=0), [((2,), (2, 3), (3,))], DTYPES),
    ("linear", lambda lib, x, w, b: lib.nn.functional.linear(x, w, b),
     [((4, 3), (5, 3), (5,)), ((3,), (5, 3), (5,)), ((2, 4, 3), (5, 3), (5,)), ((2, 2, 4, 3), (5, 3), (5,)),
      ((4, 3), (5, 3), (4,)), ((2, 4, 3), (5, 4), (5,)), ((4, 3), (3,), ()), ((), (5, 3), (5,)),
      ((2, 4, 3), (2, 5, 3), (5,)), ((0, 3), (5, 3), (5,))], DTYPES),
    ("linear_no_bias", lambda lib, x, w: lib.nn.functional.linear(x, w),
     [((4, 3), (5, 3)), ((3,), (5, 3)), ((2, 4, 3), (5, 3)), ((4, 3), (3,)), ((3,), (3,)), ((4, 3), (5, 4))], DTYPES),
]


@pytest.mark.parametrize("name,fn,cases,dtypes", PRODUCTS, ids=[line[0] for line in PRODUCTS])
def test_product(name, fn, cases, dtypes):
    for dtype in dtypes:
        for shapes in cases:
            first_layouts = LAYOUTS_A if len(shapes[0]) >= 2 else ["contiguous", "strided"]
            for la in first_layouts:
                for lb in LAYOUTS_B:
                    xs = [make_pair(s, dtype, layout, seed=i, special=True)
                          for i, (s, layout) in enumerate(zip(shapes, [la, lb, "strided"]))]
                    check(lambda lib, *ts: fn(lib, *ts), *xs)


def test_mixed_dtypes_raise():
    for fn in (lambda lib, a, b: lib.matmul(a, b), lambda lib, a, b: lib.mm(a, b), lambda lib, a, b: a @ b):
        for sa, sb in VEC_MAT + BATCHED:
            check(fn, make_pair(sa, "float32"), make_pair(sb, "float64"))
            check(fn, make_pair(sa, "int64"), make_pair(sb, "float32"))


def test_matmul_folds_like_torch():
    """A contiguous >=3-D operand is folded into one mm/mv, a non-contiguous one goes through bmm:
    the same results either way, and the error messages of the path torch takes."""
    base = torch.arange(24.).reshape(2, 3, 4)
    pair = (base, vt.tensor(base.tolist()))
    for view in (lambda x: x, lambda x: x.transpose(0, 1), lambda x: x[:, :, :3]):
        a = (view(pair[0]), view(pair[1]))
        for shape in ((a[0].shape[-1], 2), (a[0].shape[-1],), (5, 2), (4, 2)):
            b = (torch.ones(shape), vt.ones(shape))
            _same_or_same_error(lambda lib, x, y: x @ y, a, b)
            if len(shape) == 2:  # the big operand on the right: 2-D @ 3-D
                _same_or_same_error(lambda lib, x, y: y.transpose(0, 1) @ x.transpose(-1, -2), a, b)


def test_matmul_operator_semantics():
    a, b = make_pair((2, 2), "float32", seed=1), make_pair((2, 3), "float32", seed=2)
    before = a[1].tolist()
    x = a[1]
    x @= b[1]  # no __imatmul__ in torch: rebinds x to a new tensor, a is untouched
    assert not hasattr(torch.Tensor, "__imatmul__") and not hasattr(vt.Tensor, "__imatmul__")
    assert x is not a[1] and a[1].tolist() == before and tuple(x.shape) == (2, 3)
    for other in (2, 2.5, [[1.0, 2.0], [3.0, 4.0]]):
        with pytest.raises(TypeError):
            a[1] @ other
        with pytest.raises(TypeError):
            other @ a[1]
    check(lambda lib, x, y: x.__matmul__(y), a, b)


def test_inplace_addmm_addmv():
    c, m1, m2 = make_pair((2, 4), "float32", seed=1), make_pair((2, 3), "float32", seed=2), \
        make_pair((3, 4), "float32", seed=3)
    got = check(lambda lib, c, a, b: c.clone().addmm_(a, b, beta=2), c, m1, m2)
    assert got is not None
    check(lambda lib, c, a, b: c.addmm_(a, b), make_pair((4,), "float32"), m1, m2)  # bad in-place call
    v, mat, vec = make_pair((2,), "float64"), make_pair((2, 3), "float64"), make_pair((3,), "float64")
    check(lambda lib, v, a, b: v.clone().addmv_(a, b, alpha=3), v, mat, vec)
    check(lambda lib, v, a, b: v.addmv_(a, b), make_pair((1,), "float64"), mat, vec)
    # the in-place op returns self and bumps nothing else
    x = vt.zeros((2, 4))
    assert x.addmm_(m1[1], m2[1]) is x


# (fn(lib, out, *inputs), input shapes) for out= checks
OUTS = [
    ("mm", lambda lib, o, a, b: lib.mm(a, b, out=o), [(2, 3), (3, 4)]),
    ("bmm", lambda lib, o, a, b: lib.bmm(a, b, out=o), [(2, 2, 3), (2, 3, 4)]),
    ("matmul_2d", lambda lib, o, a, b: lib.matmul(a, b, out=o), [(2, 3), (3, 4)]),
    ("matmul_3d", lambda lib, o, a, b: lib.matmul(a, b, out=o), [(2, 2, 3), (2, 3, 4)]),
    ("matmul_1d", lambda lib, o, a, b: lib.matmul(a, b, out=o), [(3,), (3,)]),
    ("dot", lambda lib, o, a, b: lib.dot(a, b, out=o), [(3,), (3,)]),
    ("mv", lambda lib, o, a, b: lib.mv(a, b, out=o), [(2, 3), (3,)]),
    ("outer", lambda lib, o, a, b: lib.outer(a, b, out=o), [(2,), (3,)]),
    ("addmm", lambda lib, o, c, a, b: lib.addmm(c, a, b, out=o), [(4,), (2, 3), (3, 4)]),
    ("addmv", lambda lib, o, c, a, b: lib.addmv(c, a, b, out=o), [(2,), (2, 3), (3,)]),
]


@pytest.mark.parametrize("name,fn,shapes", OUTS, ids=[line[0] for line in OUTS])
def test_out(name, fn, shapes):
    check_out(fn, shapes)


def _same_or_same_error(fn, *pairs):
    """Both libraries give equal results, or raise the same type with the same message."""
    try:
        expected = fn(torch, *[p[0] for p in pairs])
    except Exception as e:  # noqa: BLE001
        exc = RuntimeError if type(e).__module__.startswith("torch") else type(e)
        with pytest.raises(exc) as got:
            fn(vt, *[p[1] for p in pairs])
        assert str(got.value) == str(e).split("\n")[0]
        return
    assert_same(fn(vt, *[p[1] for p in pairs]), expected)


# errors: torch's exception type AND message, word for word
ERRORS = [
    ("mm_shapes", lambda lib, t: lib.mm(t((2, 3)), t((4, 5)))),
    ("mm_not_matrix", lambda lib, t: lib.mm(t((3,)), t((3, 5)))),
    ("mm_mat2_not_matrix", lambda lib, t: lib.mm(t((2, 3)), t((3,)))),
    ("mm_dtypes", lambda lib, t: lib.mm(t((2, 3)), t((3, 5), "float64"))),
    ("mm_dtypes_int", lambda lib, t: lib.mm(t((2, 3), "int64"), t((3, 5)))),
    ("mm_bool", lambda lib, t: lib.mm(t((2, 3), "bool"), t((3, 5), "bool"))),
    ("bmm_batch", lambda lib, t: lib.bmm(t((2, 2, 3)), t((3, 3, 5)))),
    ("bmm_2d", lambda lib, t: lib.bmm(t((2, 3)), t((3, 5)))),
    ("bmm_dtypes", lambda lib, t: lib.bmm(t((2, 2, 3)), t((2, 3, 5), "float64"))),
    ("bmm_bool", lambda lib, t: lib.bmm(t((2, 2, 3), "bool"), t((2, 3, 5), "bool"))),
    ("matmul_0d", lambda lib, t: lib.matmul(t(()), t((3,)))),
    ("matmul_1d_1d", lambda lib, t: lib.matmul(t((3,)), t((4,)))),
    ("matmul_2d_1d", lambda lib, t: lib.matmul(t((2, 3)), t((4,)))),
    ("matmul_1d_2d", lambda lib, t: lib.matmul(t((3,)), t((2, 4)))),
    ("matmul_3d_1d", lambda lib, t: lib.matmul(t((5, 2, 3)), t((4,)))),
    ("matmul_3d_2d", lambda lib, t: lib.matmul(t((2, 2, 3)), t((4, 5)))),
    ("matmul_1d_3d", lambda lib, t: lib.matmul(t((2,)), t((5, 3, 4)))),
    ("matmul_broadcast", lambda lib, t: lib.matmul(t((2, 2, 3)), t((4, 3, 5)))),
    ("matmul_batched_k", lambda lib, t: lib.matmul(t((2, 1, 2, 3)), t((4, 4, 5)))),
    ("matmul_dtypes_3d", lambda lib, t: lib.matmul(t((2, 2, 3), "int64"), t((2, 3, 2)))),
    ("matmul_dtypes_3d_1d", lambda lib, t: lib.matmul(t((2, 2, 3)), t((3,), "float64"))),
    ("matmul_bool", lambda lib, t: lib.matmul(t((3,), "bool"), t((3,), "bool"))),
    ("dot_2d", lambda lib, t: lib.dot(t((3, 1)), t((3,)))),
    ("dot_sizes", lambda lib, t: lib.dot(t((3,)), t((4,)))),
    ("dot_dtypes", lambda lib, t: lib.dot(t((3,)), t((4,), "float64"))),
    ("vdot_bool", lambda lib, t: lib.vdot(t((3,), "bool"), t((3,), "bool"))),
    ("mv_1d", lambda lib, t: lib.mv(t((3,)), t((3,)))),
    ("mv_sizes", lambda lib, t: lib.mv(t((2, 3)), t((4,)))),
    ("mv_dtypes", lambda lib, t: lib.mv(t((2, 3)), t((3,), "float64"))),
    ("mv_bool", lambda lib, t: lib.mv(t((2, 3), "bool"), t((3,), "bool"))),
    ("outer_2d", lambda lib, t: lib.outer(t((2,)), t((3, 1)))),
    ("addmm_broadcast", lambda lib, t: lib.addmm(t((3,)), t((2, 3)), t((3, 5)))),
    ("addmm_3d_input", lambda lib, t: lib.addmm(t((1, 2, 5)), t((2, 3)), t((3, 5)))),
    ("addmm_self_dtype", lambda lib, t: lib.addmm(t((2, 5), "float64"), t((2, 3)), t((4, 5)))),
    ("addmm_mat_dtypes", lambda lib, t: lib.addmm(t((2, 5)), t((2, 3), "float64"), t((3, 5)))),
    ("addmm_1d", lambda lib, t: lib.addmm(t((2, 5)), t((3,)), t((3, 5)))),
    ("addmm_complex_alpha", lambda lib, t: lib.addmm(t((2, 5)), t((2, 3)), t((3, 5)), alpha=1j)),
    ("addmm_inplace_shape", lambda lib, t: t((2,)).addmm_(t((2, 3)), t((3, 2)))),
    ("addmm_out_dtype", lambda lib, t: lib.addmm(t((2, 5)), t((2, 3)), t((3, 5)), out=t((2, 5), "float64"))),
    ("addmv_ndim", lambda lib, t: lib.addmv(t((1, 2)), t((2, 3)), t((3,)))),
    ("addmv_sizes", lambda lib, t: lib.addmv(t((3,)), t((2, 3)), t((3,)))),
    ("addmv_dtypes", lambda lib, t: lib.addmv(t((2,), "float64"), t((2, 3)), t((3,)))),
    ("mm_out_dtype", lambda lib, t: lib.mm(t((2, 3)), t((3, 5)), out=t((2, 5), "float64"))),
    ("linear_0d", lambda lib, t: lib.nn.functional.linear(t(()), t((5, 3)))),
    ("linear_3d_weight", lambda lib, t: lib.nn.functional.linear(t((2, 4, 3)), t((2, 5, 3)))),
    ("linear_shapes", lambda lib, t: lib.nn.functional.linear(t((2, 4, 3)), t((5, 4)), t((5,)))),
    ("linear_bias", lambda lib, t: lib.nn.functional.linear(t((2, 4, 3)), t((5, 3)), t((4,)))),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[line[0] for line in ERRORS])
def test_error(name, fn):
    def maker(lib):
        return lambda shape, dtype="float32": lib.ones(shape, dtype=getattr(lib, dtype))
    with pytest.raises(Exception) as expected:
        fn(torch, maker(torch))
    exc = RuntimeError if type(expected.value).__module__.startswith("torch") else type(expected.value)
    with pytest.raises(exc) as got:
        fn(vt, maker(vt))
    assert str(got.value) == str(expected.value).split("\n")[0]


def test_half_rounds_once_from_float32():
    """float16/bfloat16 products accumulate in float32 and round once, like torch's CPU kernels."""
    for dtype in ("float16", "bfloat16"):
        a, b = make_pair((8, 256), dtype, seed=1), make_pair((256, 8), dtype, seed=2)
        check(lambda lib, x, y: x @ y, a, b)
        check(lambda lib, x, y: lib.dot(x[0], y[:, 0]), a, b)


def test_functional_module_path():
    assert F.linear is vt.nn.functional.linear
