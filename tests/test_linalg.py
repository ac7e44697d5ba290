"""Linear algebra against torch (forward): batched and outer products (baddbmm, addbmm, addr),
inner, cross, trace, matrix_exp, the norms (torch.linalg.vector_norm / matrix_norm / norm, svdvals,
renorm, dist), svd and the fused multiply-add family (addcmul, addcdiv). One table line per op; each
line runs over dtypes, shapes (batched, broadcast, empty, mismatched), layouts and NaN/inf.
Gradients of these ops are in test_grad_reduction_matmul.py."""
import sys
import warnings

import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES, FLOATS, check, check_out, make_pair

REAL_FLOATS = ["float32", "float64"]
NUMERIC = [d for d in DTYPES if d != "bool"]
FLOATING = FLOATS + ["complex64", "complex128"]

BADDBMM = [((2, 4, 3), (2, 4, 5), (2, 5, 3)), ((3,), (2, 4, 5), (2, 5, 3)), ((1, 4, 1), (2, 4, 5), (2, 5, 3)),
           ((0, 4, 3), (0, 4, 5), (0, 5, 3)), ((2, 4, 3), (2, 4, 0), (2, 0, 3)), ((3, 2, 4, 3), (2, 4, 5), (2, 5, 3)),
           ((2, 4, 3), (2, 4, 5), (2, 6, 3)), ((2, 4, 3), (2, 4, 5), (3, 5, 3)), ((2, 4, 3), (4, 5), (2, 5, 3))]
ADDBMM = [((4, 3), (2, 4, 5), (2, 5, 3)), ((3,), (2, 4, 5), (2, 5, 3)), ((), (2, 4, 5), (2, 5, 3)),
          ((4, 3), (0, 4, 5), (0, 5, 3)), ((4, 3), (2, 4, 0), (2, 0, 3)), ((4, 3), (2, 4, 5), (3, 5, 3)),
          ((4, 3), (4, 5), (3, 5, 3)), ((4, 3), (2, 4, 5), (2, 6, 3)), ((4, 4), (2, 4, 5), (2, 5, 3))]
ADDR = [((2, 3), (2,), (3,)), ((3,), (2,), (3,)), ((), (2,), (3,)), ((2, 3), (2, 2), (3,)), ((4, 3), (2,), (3,)),
        ((0, 3), (0,), (3,)), ((2, 0), (2,), (0,))]
INNER = [((2, 3), (4, 3)), ((3,), (3,)), ((2, 3), (5, 4, 3)), ((), (5, 4, 3)), ((2, 3), ()), ((2, 3), (4,)),
         ((0, 3), (2, 3)), ((2, 0), (3, 0))]
CROSS = [((4, 3), (4, 3)), ((1, 3), (4, 3)), ((3, 2), (3, 5)), ((2, 3, 4), (2, 3, 4)), ((0, 3), (0, 3)),
         ((4, 2), (4, 2)), ((3,), (4, 3)), ((), ())]
TRACE = [(3, 3), (2, 4), (4, 2), (0, 3), (3,), (2, 2, 2)]
SQUARE = [(3, 3), (2, 4, 4), (2, 1, 1), (0, 3, 3), (2, 0, 0), (3, 2), (3,)]
MATRICES = [(3, 4), (2, 3, 3), (4, 2), (0, 4), (4, 0), (2, 0, 3), (3,)]
ELEMENTWISE3 = [((3, 1), (4,), (2, 1, 1)), ((3,), (3,), (3,)), ((), (2, 3), (3,)), ((0, 3), (3,), (1, 3)),
                ((3,), (4,), (3,))]
RENORM = [(3, 4), (2, 3, 4), (0, 4), (3, 0), (4,)]



def _finite(lib, a):
    return a if a.dtype.is_complex or not a.dtype.is_floating_point else lib.nan_to_num(a, posinf=1.0, neginf=-1.0)


# (name, fn(lib, *tensors), cases: lists of input shapes, dtypes)
OPS = [
    ("baddbmm", lambda lib, c, a, b: lib.baddbmm(c, a, b), BADDBMM, DTYPES),
    ("baddbmm_scaled", lambda lib, c, a, b: lib.baddbmm(c, a, b, beta=0.5, alpha=2), BADDBMM[:3], FLOATING),
    ("baddbmm_beta0", lambda lib, c, a, b: c.baddbmm(a, b, beta=0, alpha=3), BADDBMM[:2], NUMERIC),
    ("addbmm", lambda lib, c, a, b: lib.addbmm(c, a, b), ADDBMM, DTYPES),
    ("addbmm_scaled", lambda lib, c, a, b: c.addbmm(a, b, beta=2, alpha=-1), ADDBMM[:4], NUMERIC),
    ("addbmm_beta0", lambda lib, c, a, b: lib.addbmm(c, a, b, beta=0), ADDBMM[:4], FLOATING),
    ("addr", lambda lib, c, a, b: lib.addr(c, a, b), ADDR, DTYPES),
    ("addr_scaled", lambda lib, c, a, b: lib.addr(c, a, b, beta=2, alpha=3), ADDR[:3], DTYPES),
    ("addr_float_scalars", lambda lib, c, a, b: c.addr(a, b, beta=0.5, alpha=1.5), ADDR[:2], DTYPES),
    ("addr_beta0", lambda lib, c, a, b: lib.addr(c, a, b, beta=0), ADDR[:2], NUMERIC),
    ("addr_bool_scalars", lambda lib, c, a, b: lib.addr(c, a, b, beta=False, alpha=True), ADDR[:1], DTYPES),
    ("inner", lambda lib, a, b: lib.inner(a, b), INNER, NUMERIC),
    # bool vectors: torch's tensordot refuses contiguous ones ("dot") but takes strided ones: not copied
    ("inner_bool", lambda lib, a, b: lib.inner(a, b), [c for c in INNER if len(c[0]) != 1], ["bool"]),
    ("inner_method", lambda lib, a, b: a.inner(b), INNER[:2], REAL_FLOATS),
    ("linalg_cross", lambda lib, a, b: lib.linalg.cross(a, b), CROSS, DTYPES),
    ("linalg_cross_dim", lambda lib, a, b: lib.linalg.cross(a, b, dim=0), CROSS, NUMERIC),
    ("cross_dim", lambda lib, a, b: lib.cross(a, b, dim=-2), [((3, 4), (3, 4)), ((3, 1), (3, 4)), ((2, 3), (2, 3))],
     NUMERIC),
    ("cross_method", lambda lib, a, b: a.cross(b, 1), CROSS[:3], REAL_FLOATS),
    ("trace", lambda lib, a: lib.trace(a), [(s,) for s in TRACE], DTYPES),
    ("trace_method", lambda lib, a: a.trace(), [(s,) for s in TRACE[:2]], REAL_FLOATS),
    ("matrix_exp", lambda lib, a: lib.linalg.matrix_exp(a * 0.5), [(s,) for s in SQUARE], NUMERIC),
    ("matrix_exp_torch", lambda lib, a: lib.matrix_exp(a), [(s,) for s in SQUARE[:2]], REAL_FLOATS),
    ("matrix_exp_method", lambda lib, a: a.matrix_exp(), [(s,) for s in SQUARE[:2]], REAL_FLOATS),
    ("svdvals", lambda lib, a: lib.linalg.svdvals(a), [(s,) for s in MATRICES], ["int64"] + FLOATING),
    # singular vectors are unique up to a sign (a phase for complex): compare magnitudes; of a
    # matrix holding inf they are LAPACK's leftovers, so those become finite here
    ("svd", lambda lib, a: [m.abs() for m in lib.linalg.svd(_finite(lib, a))], [(s,) for s in MATRICES],
     ["int64"] + FLOATING),
    ("svd_reduced", lambda lib, a: [m.abs() for m in lib.linalg.svd(_finite(lib, a), full_matrices=False)],
     [(s,) for s in MATRICES], REAL_FLOATS),
    ("vector_norm", lambda lib, a: lib.linalg.vector_norm(a), [(s,) for s in MATRICES], DTYPES),
    ("vector_norm_ord_dim", lambda lib, a: lib.linalg.vector_norm(a, 3, dim=-1, keepdim=True),
     [(s,) for s in MATRICES], FLOATING),
    ("vector_norm_inf_dims", lambda lib, a: lib.linalg.vector_norm(a, float("inf"), dim=(0, -1)),
     [(s,) for s in MATRICES], REAL_FLOATS),
    ("vector_norm_dtype", lambda lib, a: lib.linalg.vector_norm(a, 1, dtype=lib.float64), [((3, 4),)],
     FLOATING),
    ("linalg_norm", lambda lib, a: lib.linalg.norm(a), [(s,) for s in MATRICES], FLOATING + ["int64"]),
    ("linalg_norm_ord", lambda lib, a: lib.linalg.norm(a, 1), [(s,) for s in MATRICES], FLOATING),
    ("linalg_norm_fro", lambda lib, a: lib.linalg.norm(a, "fro"), [(s,) for s in MATRICES], REAL_FLOATS),
    ("linalg_norm_dim", lambda lib, a: lib.linalg.norm(a, 2, dim=(0, -1), keepdim=True), [(s,) for s in MATRICES],
     REAL_FLOATS),
    ("linalg_norm_dim1", lambda lib, a: lib.linalg.norm(a, -1, dim=0), [(s,) for s in MATRICES], REAL_FLOATS),
    ("linalg_norm_dim3", lambda lib, a: lib.linalg.norm(a, dim=(0, 1, 2)), [((2, 3, 4),)], REAL_FLOATS),
]
for _ord in ("fro", "nuc", 1, -1, 2, -2, float("inf"), float("-inf")):
    OPS.append((f"matrix_norm_{_ord}", lambda lib, a, o=_ord: lib.linalg.matrix_norm(a, o),
                [(s,) for s in MATRICES], FLOATING + ["int64"]))
    OPS.append((f"matrix_norm_{_ord}_dims", lambda lib, a, o=_ord: lib.linalg.matrix_norm(a, o, dim=(2, 0),
                                                                                         keepdim=True),
                [((2, 3, 4),), ((3, 0, 2),), ((3, 4),)], REAL_FLOATS))
OPS += [
    ("renorm", lambda lib, a: lib.renorm(a, 2, 0, 1.5), [(s,) for s in RENORM], DTYPES),
    ("renorm_p1_dim", lambda lib, a: a.renorm(1, -1, 2.0), [(s,) for s in RENORM], FLOATING),
    ("renorm_inf", lambda lib, a: lib.renorm(a, float("inf"), 1, 0.5), [(s,) for s in RENORM[:3]], REAL_FLOATS),
    ("renorm_p3_maxnorm0", lambda lib, a: lib.renorm(a, 3, 0, 0), [(s,) for s in RENORM[:3]], REAL_FLOATS),
    ("dist", lambda lib, a, b: lib.dist(a, b), [((3, 4), (4,)), ((), (3,)), ((3, 4), (3,)), ((0, 4), (4,))], DTYPES),
    ("dist_p", lambda lib, a, b: a.dist(b, 3), [((3, 4), (4,)), ((2, 3), (2, 3))], FLOATING),
    ("dist_p0", lambda lib, a, b: lib.dist(a, b, 0), [((3, 4), (4,))], REAL_FLOATS),
    ("dist_inf", lambda lib, a, b: lib.dist(a, b, float("inf")), [((3, 4), (4,)), ((0, 4), (4,))], REAL_FLOATS),
    ("dist_neg_inf", lambda lib, a, b: lib.dist(a, b, float("-inf")), [((3, 4), (4,))], REAL_FLOATS),
    ("addcmul", lambda lib, c, a, b: lib.addcmul(c, a, b), ELEMENTWISE3, DTYPES),
    ("addcmul_value", lambda lib, c, a, b: lib.addcmul(c, a, b, value=-2.5), ELEMENTWISE3[:3], DTYPES),
    ("addcmul_int_value", lambda lib, c, a, b: c.addcmul(a, b, value=3), ELEMENTWISE3[:2], DTYPES),
    ("addcmul_complex_value", lambda lib, c, a, b: lib.addcmul(c, a, b, value=1j), ELEMENTWISE3[:1], DTYPES),
    ("addcdiv", lambda lib, c, a, b: lib.addcdiv(c, a, b), ELEMENTWISE3, DTYPES),
    ("addcdiv_value", lambda lib, c, a, b: c.addcdiv(a, b, value=0.5), ELEMENTWISE3[:3], FLOATING),
]


@pytest.mark.parametrize("name,fn,cases,dtypes", OPS, ids=[line[0] for line in OPS])
def test_op(name, fn, cases, dtypes):
    for dtype in dtypes:
        for shapes in cases:
            for layout in ("contiguous", "transposed"):
                xs = [make_pair(s, dtype, layout if i == 0 else "strided", seed=i, special=True)
                      for i, s in enumerate(shapes)]
                check(fn, *xs)


def test_half_types_round_like_torch():
    """Bigger sums in float16/bfloat16: each op's rounding order is torch's."""
    for dtype in ("float16", "bfloat16"):
        for fn, shapes in ((lambda lib, c, a, b: lib.addbmm(c, a, b), [(4, 3), (6, 4, 32), (6, 32, 3)]),
                           (lambda lib, c, a, b: lib.baddbmm(c, a, b, alpha=0.5), [(2, 4, 3), (2, 4, 64), (2, 64, 3)]),
                           (lambda lib, c, a, b: lib.addr(c, a, b, beta=2, alpha=0.3), [(8, 9), (8,), (9,)]),
                           (lambda lib, c, a, b: lib.addcmul(c, a, b, value=0.3), [(50,), (50,), (50,)]),
                           (lambda lib, c, a, b: lib.addcdiv(c, a, b, value=0.3), [(50,), (50,), (50,)]),
                           (lambda lib, a, b, c: lib.linalg.cross(a, b[:3], dim=0), [(3, 40), (8, 40), (1,)])):
            check(fn, *[make_pair(s, dtype, seed=i) for i, s in enumerate(shapes)])


def test_mixed_dtypes():
    """addr, addcmul, addcdiv and dist promote; the product ops insist on one dtype."""
    combos = [("float32", "float64", "int64"), ("int64", "int32", "float16"), ("int64", "int64", "int32"),
              ("bool", "int8", "uint8"), ("complex64", "float64", "int64"), ("int64", "bool", "bool")]
    for dts in combos:
        for fn, shapes in ((lambda lib, c, a, b: lib.addr(c, a, b), [(2, 3), (2,), (3,)]),
                           (lambda lib, c, a, b: lib.addcmul(c, a, b, value=2), [(3,), (3,), (3,)]),
                           (lambda lib, c, a, b: lib.addcdiv(c, a, b), [(3,), (3,), (3,)]),
                           (lambda lib, c, a, b: lib.dist(c, a), [(3,), (3,), (3,)]),
                           (lambda lib, c, a, b: lib.baddbmm(c, a, b), [(2, 2, 2), (2, 2, 3), (2, 3, 2)]),
                           (lambda lib, c, a, b: lib.addbmm(c, a, b), [(2, 2), (2, 2, 3), (2, 3, 2)]),
                           (lambda lib, c, a, b: lib.linalg.cross(c, a), [(3,), (3,), (3,)]),
                           (lambda lib, c, a, b: lib.inner(c, a), [(3,), (3,), (3,)])):
            check(fn, *[make_pair(s, d, seed=i) for i, (s, d) in enumerate(zip(shapes, dts))])


def test_cross_default_dim_warns_once_like_torch():
    a, b = make_pair((2, 3, 3), "float32", seed=1), make_pair((2, 3, 3), "float32", seed=2)
    check(lambda lib, x, y: lib.cross(x, y), a, b)  # the first dim of size 3
    check(lambda lib, x, y: lib.cross(x, y), make_pair((1, 3), "float32"), make_pair((4, 3), "float32"))
    check(lambda lib, x, y: lib.cross(x, y), make_pair((2, 4), "float32"), make_pair((2, 4), "float32"))
    sys.modules["vibetensor.torch.matmul"]._cross_warned = False
    with pytest.warns(UserWarning, match="Using torch.cross without specifying the dim arg is deprecated"):
        vt.cross(a[1], b[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vt.cross(a[1], b[1])  # once per process, as TORCH_WARN_ONCE


# (fn(lib, self, *inputs), shapes, dtypes): in-place variants, including the ones torch refuses
INPLACE = [
    ("baddbmm_", lambda lib, c, a, b: c.baddbmm_(a, b, beta=2), [(2, 4, 3), (2, 4, 5), (2, 5, 3)]),
    ("baddbmm_bad_shape", lambda lib, c, a, b: c.baddbmm_(a, b), [(4, 3), (2, 4, 5), (2, 5, 3)]),
    ("addbmm_", lambda lib, c, a, b: c.addbmm_(a, b, alpha=2), [(4, 3), (2, 4, 5), (2, 5, 3)]),
    ("addbmm_bad_shape", lambda lib, c, a, b: c.addbmm_(a, b), [(3,), (2, 4, 5), (2, 5, 3)]),
    ("addr_", lambda lib, c, a, b: c.addr_(a, b, beta=0.5), [(2, 3), (2,), (3,)]),
    ("addr_bad_shape", lambda lib, c, a, b: c.addr_(a, b), [(3,), (2,), (3,)]),
    ("renorm_", lambda lib, c: c.renorm_(2, 1, 1.0), [(3, 4)]),
    ("addcmul_", lambda lib, c, a, b: c.addcmul_(a, b, value=2), [(2, 3), (3,), (2, 1)]),
    ("addcmul_broadcast_self", lambda lib, c, a, b: c.addcmul_(a, b), [(3,), (2, 3), (3,)]),
    ("addcdiv_", lambda lib, c, a, b: c.addcdiv_(a, b), [(2, 3), (3,), (2, 1)]),
]


@pytest.mark.parametrize("name,fn,shapes", INPLACE, ids=[line[0] for line in INPLACE])
def test_inplace(name, fn, shapes):
    for dtype in ("float32", "float64", "int64"):
        xs = [make_pair(s, dtype, seed=i) for i, s in enumerate(shapes)]
        got = check(lambda lib, c, *rest: (fn(lib, c, *rest), c), *xs)
        if got is not None:
            assert got[0] is got[1]  # returns self


def test_inplace_refuses_a_wider_result():
    check(lambda lib, c, a, b: c.addcmul_(a, b), make_pair((3,), "int64"), make_pair((3,), "float32"),
          make_pair((3,), "float32"))
    check(lambda lib, c, a, b: c.addr_(a, b), make_pair((2, 3), "int64"), make_pair((2,), "float32"),
          make_pair((3,), "float32"))


OUTS = [
    ("baddbmm", lambda lib, o, c, a, b: lib.baddbmm(c, a, b, out=o), [(3,), (2, 4, 5), (2, 5, 3)]),
    ("addbmm", lambda lib, o, c, a, b: lib.addbmm(c, a, b, out=o), [(3,), (2, 4, 5), (2, 5, 3)]),
    ("addr", lambda lib, o, c, a, b: lib.addr(c, a, b, out=o), [(3,), (2,), (3,)]),
    ("inner", lambda lib, o, a, b: lib.inner(a, b, out=o), [(2, 3), (4, 3)]),
    ("linalg_cross", lambda lib, o, a, b: lib.linalg.cross(a, b, out=o), [(4, 3), (4, 3)]),
    ("cross", lambda lib, o, a, b: lib.cross(a, b, dim=1, out=o), [(4, 3), (1, 3)]),
    ("renorm", lambda lib, o, a: lib.renorm(a, 2, 0, 1.0, out=o), [(3, 4)]),
    ("addcmul", lambda lib, o, c, a, b: lib.addcmul(c, a, b, out=o), [(3,), (2, 3), (1,)]),
    ("addcdiv", lambda lib, o, c, a, b: lib.addcdiv(c, a, b, out=o), [(3,), (2, 3), (1,)]),
    ("vector_norm", lambda lib, o, a: lib.linalg.vector_norm(a, dim=0, out=o), [(3, 4)]),
    ("matrix_norm", lambda lib, o, a: lib.linalg.matrix_norm(a, 1, out=o), [(2, 3, 4)]),
    ("svdvals", lambda lib, o, a: lib.linalg.svdvals(a, out=o), [(2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", OUTS, ids=[line[0] for line in OUTS])
def test_out(name, fn, shapes):
    check_out(fn, shapes)


# errors: torch's exception type AND message, word for word
ERRORS = [
    ("baddbmm_expand", lambda lib, t: lib.baddbmm(t((3, 2, 4, 3)), t((2, 4, 5)), t((2, 5, 3)))),
    ("baddbmm_batch2", lambda lib, t: lib.baddbmm(t((2, 4, 3)), t((2, 4, 5)), t((2, 6, 3)))),
    ("baddbmm_dtypes", lambda lib, t: lib.baddbmm(t((2, 4, 3), "float64"), t((2, 4, 5)), t((2, 5, 3)))),
    ("baddbmm_dtypes2", lambda lib, t: lib.baddbmm(t((2, 4, 3)), t((2, 4, 5)), t((2, 5, 3), "float64"))),
    ("baddbmm_bool", lambda lib, t: lib.baddbmm(t((2, 4, 3), "bool"), t((2, 4, 5), "bool"), t((2, 5, 3), "bool"))),
    ("baddbmm_0d", lambda lib, t: lib.baddbmm(t((2, 4, 3)), t(()), t((2, 5, 3)))),
    ("addbmm_batches", lambda lib, t: lib.addbmm(t((4, 3)), t((2, 4, 5)), t((3, 5, 3)))),
    ("addbmm_sizes", lambda lib, t: lib.addbmm(t((4, 3)), t((2, 4, 5)), t((2, 6, 3)))),
    ("addbmm_2d", lambda lib, t: lib.addbmm(t((5, 3)), t((4, 5)), t((3, 5, 3)))),
    ("addbmm_expand", lambda lib, t: lib.addbmm(t((4, 4)), t((2, 4, 5)), t((2, 5, 3)))),
    ("addbmm_dtypes", lambda lib, t: lib.addbmm(t((4, 3), "float64"), t((2, 4, 5)), t((2, 5, 3)))),
    ("addbmm_bool", lambda lib, t: lib.addbmm(t((4, 3), "bool"), t((2, 4, 5), "bool"), t((2, 5, 3), "bool"))),
    ("addr_2d_vec", lambda lib, t: lib.addr(t((2, 3)), t((2, 2)), t((3,)))),
    ("addr_expand", lambda lib, t: lib.addr(t((4, 3)), t((2,)), t((3,)))),
    ("addr_float_alpha_int", lambda lib, t: lib.addr(t((2, 3), "int64"), t((2,), "int64"), t((3,), "int64"),
                                                     alpha=2.5)),
    ("addr_bool_beta_float", lambda lib, t: lib.addr(t((2, 3)), t((2,)), t((3,)), beta=True)),
    ("addr_inplace_1d", lambda lib, t: t((3,)).addr_(t((2,)), t((3,)))),
    ("inner_last_dim", lambda lib, t: lib.inner(t((2, 3)), t((4,)))),
    ("inner_dtypes", lambda lib, t: lib.inner(t((3,)), t((3,), "float64"))),
    ("inner_bool", lambda lib, t: lib.inner(t((3,), "bool"), t((3,), "bool"))),
    ("cross_ndim", lambda lib, t: lib.linalg.cross(t((3,)), t((4, 3)))),
    ("cross_length", lambda lib, t: lib.linalg.cross(t((4, 2)), t((4, 2)))),
    ("cross_dim_range", lambda lib, t: lib.linalg.cross(t((4, 3)), t((4, 3)), dim=2)),
    ("cross_0d", lambda lib, t: lib.linalg.cross(t(()), t(()))),
    ("cross_dtypes", lambda lib, t: lib.linalg.cross(t((4, 3)), t((4, 3), "float64"))),
    ("cross_bool", lambda lib, t: lib.linalg.cross(t((4, 3), "bool"), t((4, 3), "bool"))),
    ("cross_no_size_3", lambda lib, t: lib.cross(t((2, 4)), t((2, 4)))),
    ("cross_broadcast", lambda lib, t: lib.linalg.cross(t((2, 3)), t((4, 3)))),
    ("trace_3d", lambda lib, t: lib.trace(t((2, 2, 2)))),
    ("trace_bool", lambda lib, t: lib.trace(t((2, 2), "bool"))),
    ("matrix_exp_1d", lambda lib, t: lib.linalg.matrix_exp(t((3,)))),
    ("matrix_exp_square", lambda lib, t: lib.linalg.matrix_exp(t((3, 2)))),
    ("matrix_exp_int", lambda lib, t: lib.linalg.matrix_exp(t((3, 3), "int64"))),
    ("svdvals_nan", lambda lib, t: lib.linalg.svdvals(t((2, 2, 2)) * lib.tensor([[[1.0]], [[float("nan")]]]))),
    ("svd_nan", lambda lib, t: lib.linalg.svd(t((2, 2)) * float("nan"))),
    ("svd_1d", lambda lib, t: lib.linalg.svd(t((2,)))),
    ("svd_half", lambda lib, t: lib.linalg.svd(t((2, 2), "float16"))),
    ("matrix_norm_ord", lambda lib, t: lib.linalg.matrix_norm(t((3, 3)), 3)),
    ("matrix_norm_1d", lambda lib, t: lib.linalg.matrix_norm(t((3,)), 1)),
    ("matrix_norm_half_2", lambda lib, t: lib.linalg.matrix_norm(t((3, 3), "float16"), 2)),
    ("matrix_norm_same_dims", lambda lib, t: lib.linalg.matrix_norm(t((3, 3)), dim=(1, -1))),
    ("matrix_norm_dtype", lambda lib, t: lib.linalg.matrix_norm(t((3, 3), "float64"), dtype=lib.float32)),
    ("matrix_norm_int", lambda lib, t: lib.linalg.matrix_norm(t((3, 3), "int64"))),
    ("matrix_norm_neg_empty", lambda lib, t: lib.linalg.matrix_norm(t((4, 0)), -1)),
    ("linalg_norm_3d_ord", lambda lib, t: lib.linalg.norm(t((2, 3, 4)), 2)),
    ("linalg_norm_fro_1d", lambda lib, t: lib.linalg.norm(t((4,)), "fro")),
    ("linalg_norm_3_dims", lambda lib, t: lib.linalg.norm(t((2, 3, 4)), 2, dim=(0, 1, 2))),
    ("vector_norm_int", lambda lib, t: lib.linalg.vector_norm(t((3,), "int64"))),
    ("vector_norm_empty_inf", lambda lib, t: lib.linalg.vector_norm(t((0, 3)), float("inf"))),
    ("renorm_maxnorm", lambda lib, t: lib.renorm(t((3, 4)), 2, 0, -1.0)),
    ("renorm_p0", lambda lib, t: lib.renorm(t((3, 4)), 0, 0, 1.0)),
    ("renorm_1d", lambda lib, t: lib.renorm(t((4,)), 2, 0, 1.0)),
    ("renorm_dim", lambda lib, t: lib.renorm(t((3, 4)), 2, 2, 1.0)),
    ("renorm_int", lambda lib, t: lib.renorm(t((3, 4), "int64"), 2, 0, 1.0)),
    ("dist_int", lambda lib, t: lib.dist(t((3, 4), "int64"), t((4,), "int64"))),
    ("dist_broadcast", lambda lib, t: lib.dist(t((3, 4)), t((3,)))),
    ("dist_empty_inf", lambda lib, t: lib.dist(t((0, 4)), t((4,)), float("inf"))),
    ("addcmul_bool", lambda lib, t: lib.addcmul(t((3,), "bool"), t((3,), "bool"), t((3,), "bool"))),
    ("addcmul_complex_value", lambda lib, t: lib.addcmul(t((3,)), t((3,)), t((3,)), value=1j)),
    ("addcmul_broadcast", lambda lib, t: lib.addcmul(t((3,)), t((4,)), t((3,)))),
    ("addcdiv_int", lambda lib, t: lib.addcdiv(t((3,)), t((3,), "int64"), t((3,), "int32"))),
    ("addcmul_inplace_broadcast", lambda lib, t: t((3,)).addcmul_(t((2, 3)), t((3,)))),
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


def test_failed_inplace_leaves_input_unchanged():
    c = vt.ones((3,))
    before = c.tolist()
    with pytest.raises(RuntimeError):
        c.addcmul_(vt.ones((2, 3)), vt.ones((3,)))
    with pytest.raises(RuntimeError):
        c.renorm_(0, 0, 1.0)
    assert c.tolist() == before


def test_mvlgamma():
    try:
        vt.lgamma
    except AttributeError:
        with pytest.raises(NotImplementedError, match="lgamma"):
            vt.mvlgamma(vt.ones(3) * 3, 2)
        return
    for p in (1, 3, 5):
        for dtype in ("float32", "float64", "int64"):
            x = make_pair((2, 3), dtype, seed=p, low=3.0, high=6.0)
            check(lambda lib, a: lib.mvlgamma(a, p), x)
            check(lambda lib, a: a.mvlgamma(p), x)
    check(lambda lib, a: lib.mvlgamma(a, 0), make_pair((3,), "float32"))
