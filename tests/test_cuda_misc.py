"""The CUDA kernels of backends/cuda/misc.py (and index_reduce, logspace, scatter_reduce prod) against
torch's CUDA results, forward and backward (marker `cuda`): special functions, frexp/ldexp, searching
and counting, unique, one_hot, embedding_renorm_, segment_reduce, index_reduce and the linear-algebra
composites. One line per case: fn(lib, *inputs) and the inputs' builder.

VT_ORACLE_DEVICE=cpu compares with torch on the CPU instead (for a host emulation of our CUDA path)."""
import os

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import check, make_pair

pytestmark = pytest.mark.cuda
DEV = os.environ.get("VT_ORACLE_DEVICE", "cuda")  # torch's device
F = {torch: torch.nn.functional, vt: vt.nn.functional}
TOL = {"float32": (2e-5, 2e-5), "float64": (1e-9, 1e-9), "bfloat16": (2e-2, 2e-2), "int64": (0, 0), "int32": (0, 0)}


def dev(lib):
    return DEV if lib is torch else "cuda"


def P(shape, dtype="float32", layout="contiguous", seed=0, **kw):
    t, v = make_pair(shape, dtype, layout, seed, **kw)
    return t.to(DEV), v.cuda()


def A(values, dtype="float32"):
    """Given values in both libraries (bfloat16 through float32)."""
    a = np.array(values, dtype=np.float32 if dtype == "bfloat16" else dtype)
    t, v = torch.from_numpy(a.copy()), vt.from_numpy(a.copy())
    if dtype == "bfloat16":
        t, v = t.to(torch.bfloat16), v.to(vt.bfloat16)
    return t.to(DEV), v.cuda()


def I(values, dtype=np.int64):
    return A(values, dtype)


def S(shape, dtype="float32", seed=0, ties=True):
    """Sorted rows (last dim) with repeated values, for the searches."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-3, 3, shape)
    return A(np.sort(np.round(a) if ties else a, -1), dtype)


def R(values_shape, seed=0, low=-4, high=4, dtype="float32"):
    """Values that hit sorted boundaries exactly and between them."""
    rng = np.random.default_rng(seed)
    return A(np.round(rng.uniform(low, high, values_shape) * 2) / 2, dtype)


def _dtype(lib, name):
    return getattr(lib, name)


def _renormed(lib, w, i, p):
    w = w.clone()
    out = F[lib].embedding(i, w, max_norm=1.5, norm_type=p)
    return out, w


def _seg(lib, data, reduce, lengths=None, offsets=None, axis=0, initial=None, unsafe=False):
    return lib.segment_reduce(data, reduce, lengths=lengths, offsets=offsets, axis=axis, initial=initial,
                              unsafe=unsafe)


# (name, fn(lib, *inputs), builder(dtype, layout), dtypes)
FLOATS = ("float32", "bfloat16", "float64")
F32 = ("float32", "float64")
CASES = [
    # special functions
    ("i0e", lambda lib, x: lib.special.i0e(x), lambda d, lay: (P((6, 7), d, lay, 1, low=-12, high=12, special=True),), FLOATS),
    ("i1e", lambda lib, x: lib.special.i1e(x), lambda d, lay: (P((6, 7), d, lay, 1, low=-12, high=12, special=True),), FLOATS),
    ("i0e_int", lambda lib, x: lib.special.i0e(x), lambda d, lay: (P((9,), "int64", seed=2),), ("int64",)),
    ("trigamma", lambda lib, x: lib.polygamma(1, x), lambda d, lay: (P((6, 7), d, lay, 1, low=-3.3, high=6, special=True),), FLOATS),
    ("polygamma2", lambda lib, x: lib.polygamma(2, x), lambda d, lay: (P((6, 7), d, lay, 1, low=0.2, high=6),), FLOATS),
    ("polygamma3_neg", lambda lib, x: lib.polygamma(3, x), lambda d, lay: (A([-2.5, -1.5, -0.5, 0.5, 1.0, 3.7], d),), F32),
    ("polygamma0", lambda lib, x: lib.polygamma(0, x), lambda d, lay: (P((6, 7), d, lay, 1, low=0.2, high=6),), FLOATS),
    ("polygamma_", lambda lib, x: x.clone().polygamma_(2), lambda d, lay: (P((6, 7), d, lay, 1, low=0.2, high=6),), F32),
    ("zeta", lambda lib, x, q: lib.special.zeta(x, q), lambda d, lay: (P((6, 7), d, lay, 1, low=1.1, high=6), P((7,), d, seed=2, low=0.3, high=5)), F32),
    ("zeta_specials", lambda lib, x, q: lib.special.zeta(x, q),
     lambda d, lay: (A([1.0, 0.5, 2.0, 2.0, 3.0, 2.5, 2.0, float("nan"), 4.0], d), A([1.0, 1.0, -2.0, -1.5, -2.5, -1.5, 1e5, 1.0, float("inf")], d)), F32),
    ("zeta_scalar_x", lambda lib, q: lib.special.zeta(2.0, q), lambda d, lay: (P((6, 7), d, lay, 1, low=0.3, high=5),), F32),
    ("zeta_scalar_q", lambda lib, x: lib.special.zeta(x, 1.5), lambda d, lay: (P((6, 7), d, lay, 1, low=1.1, high=5),), F32),
    # frexp, ldexp, conj
    ("frexp", lambda lib, x: lib.frexp(x), lambda d, lay: (P((6, 7), d, lay, 1, low=-1e3, high=1e3, special=True),), FLOATS),
    ("frexp_tiny", lambda lib, x: lib.frexp(x), lambda d, lay: (A([1e-40, -3e-39, 1.4e-45, 0.0, -0.0, 1024.0, 0.75], d),), ("float32",)),
    ("frexp_out", lambda lib, x: lib.frexp(x, out=(lib.empty(2, dtype=x.dtype, device=dev(lib)), lib.empty(2, dtype=lib.int32, device=dev(lib)))),
     lambda d, lay: (P((6, 7), d, lay, 1),), ("float32",)),
    ("ldexp", lambda lib, x, e: lib.ldexp(x, e), lambda d, lay: (P((6, 7), d, lay, 1, special=True), P((7,), "int64", seed=2, low=-8, high=8)), F32),
    ("conj_physical", lambda lib, x: lib.conj_physical(x), lambda d, lay: (P((6, 7), d, lay, 1),), FLOATS),
    # searching
    ("searchsorted", lambda lib, s, v: lib.searchsorted(s, v), lambda d, lay: (S((9,), d), R((5, 6), 1, dtype=d)), FLOATS),
    ("searchsorted_right", lambda lib, s, v: lib.searchsorted(s, v, right=True, out_int32=True), lambda d, lay: (S((9,), d), R((5, 6), 1, dtype=d)), FLOATS),
    ("searchsorted_nd", lambda lib, s, v: lib.searchsorted(s, v, side="right"), lambda d, lay: (S((3, 9), d), R((3, 5), 1, dtype=d)), FLOATS),
    ("searchsorted_nan", lambda lib, s, v: lib.searchsorted(s, v), lambda d, lay: (A([-1.0, 0.0, 2.0, float("nan")], d), A([float("nan"), -5.0, 2.0, 9.0], d)), F32),
    ("searchsorted_scalar", lambda lib, s: lib.searchsorted(s, 0.5, right=True), lambda d, lay: (S((9,), d),), FLOATS),
    ("searchsorted_sorter", lambda lib, s, o, v: lib.searchsorted(s, v, sorter=o),
     lambda d, lay: (A([3.0, -1.0, 2.0, 0.0, 2.0], d), I([1, 3, 2, 4, 0]), R((7,), 2, dtype=d)), FLOATS),
    ("searchsorted_mixed", lambda lib, s, v: lib.searchsorted(s, v), lambda d, lay: (I([-3, 0, 0, 2, 5]), R((4, 3), 3, dtype=d)), ("float32",)),
    ("searchsorted_int", lambda lib, s, v: lib.searchsorted(s, v), lambda d, lay: (I([-3, 0, 0, 2, 5]), I([[0, 5, -9], [2, 1, 6]])), ("int64",)),
    ("searchsorted_empty", lambda lib, s, v: lib.searchsorted(s, v), lambda d, lay: (A([], d), R((4,), 3, dtype=d)), ("float32",)),
    ("searchsorted_out", lambda lib, s, v: lib.searchsorted(s, v, out=lib.empty(3, 7, dtype=lib.int64, device=dev(lib))[:, ::2]),
     lambda d, lay: (S((9,), d), R((3, 4), 1, dtype=d)), ("float32",)),
    ("bucketize", lambda lib, v, b: lib.bucketize(v, b), lambda d, lay: (R((5, 6), 4, dtype=d), S((9,), d, 5)), FLOATS),
    ("bucketize_right", lambda lib, v, b: lib.bucketize(v, b, right=True, out_int32=True), lambda d, lay: (R((5, 6), 4, dtype=d), S((9,), d, 5)), FLOATS),
    ("isin", lambda lib, e, t: lib.isin(e, t), lambda d, lay: (R((5, 6), 6, dtype=d), R((7,), 7, dtype=d)), FLOATS),
    ("isin_invert", lambda lib, e, t: lib.isin(e, t, invert=True), lambda d, lay: (R((5, 6), 6, dtype=d), R((2, 3), 7, dtype=d)), FLOATS),
    ("isin_scalar", lambda lib, e: lib.isin(e, 1.5), lambda d, lay: (R((5, 6), 6, dtype=d),), ("float32",)),
    ("isin_int", lambda lib, e, t: lib.isin(e, t), lambda d, lay: (I(np.arange(-5, 15).reshape(4, 5)), I([3, 3, -2, 40], np.int32)), ("int64",)),
    ("isin_nan", lambda lib, e, t: lib.isin(e, t), lambda d, lay: (A([float("nan"), 1.0, 2.0], d), A([float("nan"), 2.0], d)), ("float32",)),
    ("isin_large", lambda lib, e, t: lib.isin(e, t), lambda d, lay: (R((50,), 8, -3000, 3000, d), R((5000,), 9, -3000, 3000, d)), ("float32",)),
    # counting
    ("histc", lambda lib, x: lib.histc(x, 7, -2, 2), lambda d, lay: (P((6, 7), d, lay, 1, special=True),), FLOATS),
    ("histc_range", lambda lib, x: lib.histc(x, 5), lambda d, lay: (P((6, 7), d, lay, 1),), FLOATS),
    ("histc_int", lambda lib, x: lib.histc(x, 4, 0, 5), lambda d, lay: (P((6, 7), "int64", lay, 1, low=-2, high=7),), ("int64",)),
    ("histc_nan_range", lambda lib, x: lib.histc(x), lambda d, lay: (A([1.0, float("nan")], d),), ("float32",)),
    ("histc_constant", lambda lib, x: lib.histc(x, 4), lambda d, lay: (A([2.0, 2.0, 2.0], d),), ("float32",)),
    ("bincount", lambda lib, x: lib.bincount(x), lambda d, lay: (I([0, 3, 3, 1, 7, 3]),), ("int64",)),
    ("bincount_minlength", lambda lib, x: lib.bincount(x, minlength=10), lambda d, lay: (I([0, 3, 3, 1, 7, 3], np.int32),), ("int64",)),
    ("bincount_weights", lambda lib, x, w: lib.bincount(x, w), lambda d, lay: (I([0, 3, 3, 1, 7, 3]), P((6,), d, seed=2)), ("float32", "float64")),
    ("bincount_empty", lambda lib, x: lib.bincount(x, minlength=3), lambda d, lay: (I([]),), ("int64",)),
    ("bincount_negative", lambda lib, x: lib.bincount(x), lambda d, lay: (I([0, -1]),), ("int64",)),
    ("one_hot", lambda lib, x: F[lib].one_hot(x, 6), lambda d, lay: (I([[0, 5, 2], [1, 1, 0]]),), ("int64",)),
    ("one_hot_infer", lambda lib, x: F[lib].one_hot(x), lambda d, lay: (I([[0, 5, 2], [1, 1, 0]]),), ("int64",)),
    ("one_hot_empty", lambda lib, x: F[lib].one_hot(x, 3), lambda d, lay: (I(np.zeros((2, 0))),), ("int64",)),
    # unique
    ("unique", lambda lib, x: lib.unique(x, return_inverse=True, return_counts=True), lambda d, lay: (R((5, 6), 10, dtype=d),), ("float32", "bfloat16")),
    ("unique_int", lambda lib, x: lib.unique(x, return_counts=True), lambda d, lay: (I(np.arange(40) % 7 - 3),), ("int64",)),
    ("unique_bool", lambda lib, x: lib.unique(x, return_inverse=True), lambda d, lay: (P((4, 5), "bool", seed=3),), ("int64",)),
    ("unique_dim0", lambda lib, x: lib.unique(x, dim=0, return_inverse=True, return_counts=True), lambda d, lay: (I([[1, 2], [0, 5], [1, 2], [0, 4]]),), ("int64",)),
    ("unique_dim1", lambda lib, x: lib.unique(x, dim=1, return_inverse=True, return_counts=True), lambda d, lay: (A([[1, 0, 1, 0], [2, 5, 2, 4]], d),), ("float32",)),
    ("unique_empty", lambda lib, x: lib.unique(x, return_inverse=True, return_counts=True), lambda d, lay: (A(np.zeros((2, 0)), d),), ("float32",)),
    ("unique_consecutive", lambda lib, x: lib.unique_consecutive(x, return_inverse=True, return_counts=True),
     lambda d, lay: (A(np.repeat([3.0, 1.0, 1.0, 2.0, float("nan"), float("nan"), 3.0], [2, 1, 3, 1, 1, 2, 4]), d),), FLOATS),
    ("unique_consecutive_dim", lambda lib, x: lib.unique_consecutive(x, return_inverse=True, return_counts=True, dim=0),
     lambda d, lay: (I([[1, 2], [1, 2], [0, 5], [1, 2]]),), ("int64",)),
    ("unique_consecutive_2d", lambda lib, x: lib.unique_consecutive(x, return_inverse=True), lambda d, lay: (I([[1, 1, 2], [2, 0, 0]]),), ("int64",)),
    # embedding_renorm_, segment_reduce, index_reduce
    # contiguous weights only: torch's CUDA kernel takes stride(0) for the row length (wrong for others; ours is not)
    ("embedding_renorm", lambda lib, w, i: _renormed(lib, w, i, 2.0), lambda d, lay: (P((6, 5), d, seed=1), I([[1, 4, 1], [0, 4, 2]])), FLOATS),
    ("embedding_renorm_p1", lambda lib, w, i: _renormed(lib, w, i, 1.0), lambda d, lay: (P((6, 5), d, seed=1), I([1, 4, 1, 5])), ("float32",)),
    ("embedding_renorm_p3", lambda lib, w, i: _renormed(lib, w, i, 3.0), lambda d, lay: (P((6, 5), d, seed=1, low=0, high=2), I([1, 4, 1, 5])), ("float32",)),
] + [
    (f"segment_{r}", lambda lib, x, n, r=r: _seg(lib, x, r, lengths=n), lambda d, lay: (P((7, 3), d, lay, 1), I([2, 0, 4, 1])), FLOATS)
    for r in ("sum", "mean", "max", "min", "prod")
] + [
    ("segment_offsets_axis1", lambda lib, x, o: _seg(lib, x, "max", offsets=o, axis=1, initial=0.5),
     lambda d, lay: (P((2, 6, 3), d, seed=1, special=True), I([[0, 2, 2, 6], [0, 1, 3, 5]])), FLOATS),
    ("segment_mean_initial", lambda lib, x, n: _seg(lib, x, "mean", lengths=n, initial=2.0), lambda d, lay: (P((7, 3), d, lay, 1), I([2, 0, 4, 1])), ("float32",)),
    ("segment_bad_lengths", lambda lib, x, n: _seg(lib, x, "sum", lengths=n), lambda d, lay: (P((7, 3), d, lay, 1), I([2, 0, 4, 2])), ("float32",)),
    ("segment_negative_lengths", lambda lib, x, n: _seg(lib, x, "sum", lengths=n), lambda d, lay: (P((7, 3), d, lay, 1), I([2, -1, 5, 1])), ("float32",)),
] + [
    (f"index_reduce_{r}_{inc}", lambda lib, x, i, s, r=r, inc=inc: x.index_reduce(0, i, s, r, include_self=inc),
     lambda d, lay: (P((5, 4), d, lay, 1, low=-2, high=2), I([4, 0, 4, 2, 4]), P((5, 4), d, seed=2, low=-2, high=2)),
     ("float32", "bfloat16", "int64"))
    for r in ("prod", "mean", "amax", "amin") for inc in (True, False)
] + [
    ("index_reduce_dim1", lambda lib, x, i, s: x.index_reduce_(1, i, s, "amax"), lambda d, lay: (P((4, 5), d, lay, 1), I([0, 4, 0], np.int32), P((4, 3), d, "transposed", 2)), FLOATS),
    ("index_reduce_bad", lambda lib, x, i, s: x.index_reduce(0, i, s, "prod"), lambda d, lay: (P((5, 4), d), I([4, 0]), P((3, 4), d)), ("float32",)),
    # linear algebra composites
    ("trace", lambda lib, x: lib.trace(x), lambda d, lay: (P((5, 6), d, lay, 1),), FLOATS + ("int64",)),
    ("trace_bool", lambda lib, x: lib.trace(x), lambda d, lay: (P((4, 4), "bool", seed=1),), ("int64",)),
    ("dot", lambda lib, a, b: lib.dot(a, b), lambda d, lay: (P((33,), d, "strided", 1), P((33,), d, seed=2)), FLOATS),
    ("dot_empty", lambda lib, a, b: lib.dot(a, b), lambda d, lay: (P((0,), d), P((0,), d)), ("float32",)),
    ("dot_int", lambda lib, a, b: lib.dot(a, b), lambda d, lay: (P((5,), "int64"), P((5,), "int64")), ("int64",)),
    ("vdot", lambda lib, a, b: lib.vdot(a, b), lambda d, lay: (P((33,), d, "strided", 1), P((33,), d, seed=2)), FLOATS),
    ("addr", lambda lib, x, a, b: lib.addr(x, a, b, beta=0.5, alpha=2.5), lambda d, lay: (P((4, 5), d, lay, 1), P((4,), d, seed=2), P((5,), d, seed=3)), FLOATS),
    ("addr_beta0", lambda lib, x, a, b: lib.addr(x, a, b, beta=0), lambda d, lay: (P((4, 5), d, lay, 1, special=True), P((4,), d, seed=2), P((5,), d, seed=3)), FLOATS),
    ("addr_bcast", lambda lib, x, a, b: lib.addr(x, a, b), lambda d, lay: (P((5,), d, seed=1), P((4,), d, seed=2), P((5,), d, seed=3)), ("float32",)),
    ("addr_int", lambda lib, x, a, b: lib.addr(x, a, b, beta=2, alpha=3), lambda d, lay: (P((4, 5), "int64", lay, 1), P((4,), "int64", seed=2), P((5,), "int32", seed=3)), ("int64",)),
    ("addr_bool", lambda lib, x, a, b: lib.addr(x, a, b), lambda d, lay: (P((4, 5), "bool", seed=1), P((4,), "bool", seed=2), P((5,), "bool", seed=3)), ("int64",)),
    ("addr_", lambda lib, x, a, b: x.clone().addr_(a, b, alpha=-1), lambda d, lay: (P((4, 5), d, lay, 1), P((4,), d, seed=2), P((5,), d, seed=3)), ("float32",)),
    ("cross", lambda lib, a, b: lib.linalg.cross(a, b), lambda d, lay: (P((5, 3), d, seed=1), P((5, 3), d, seed=2)), FLOATS + ("int64",)),
    ("cross_dim0_bcast", lambda lib, a, b: lib.linalg.cross(a, b, dim=0), lambda d, lay: (P((3, 4), d, lay, 1), P((3, 1), d, seed=2)), FLOATS),
    ("dist", lambda lib, a, b: lib.dist(a, b), lambda d, lay: (P((5, 6), d, lay, 1), P((6,), d, seed=2)), FLOATS),
    ("dist_p", lambda lib, a, b: [lib.dist(a, b, p) for p in (0, 1, 3, 0.5, float("inf"), -float("inf"))],
     lambda d, lay: (P((5, 6), d, lay, 1), P((5, 6), d, seed=2)), FLOATS),
    ("renorm", lambda lib, x: lib.renorm(x, 2, 0, 2.5), lambda d, lay: (P((5, 6), d, lay, 1),), FLOATS),
    ("renorm_p", lambda lib, x: [lib.renorm(x, p, 1, 1.5) for p in (1, 3, float("inf"))], lambda d, lay: (P((3, 4, 5), d, lay, 1),), FLOATS),
    ("renorm_", lambda lib, x: x.clone().renorm_(2, -1, 2.0), lambda d, lay: (P((5, 6), d, lay, 1),), ("float32",)),
]
DTYPE_LAYOUTS = [("float32", "contiguous"), ("float32", "transposed"), ("bfloat16", "contiguous"), ("float64", "strided"),
                 ("int64", "contiguous")]


def _cases():
    for name, fn, build, dtypes in CASES:
        for d, lay in DTYPE_LAYOUTS:
            if d in dtypes:
                yield pytest.param(fn, build, d, lay, id=f"{name}-{d}-{lay}")


@pytest.mark.parametrize("fn,build,dtype,layout", list(_cases()))
def test_forward(fn, build, dtype, layout):
    rtol, atol = TOL[dtype]
    check(fn, *build(dtype, layout), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "int64", "int32"])
def test_logspace(dtype):
    d = {torch: getattr(torch, dtype), vt: getattr(vt, dtype)}
    rtol, atol = TOL[dtype]
    for args in ((-1, 2, 9), (0.5, 3.25, 8, 2.0), (2, -1, 5, 3), (1.5, 2, 1), (0, 1, 0)):
        check(lambda lib: lib.logspace(*args, dtype=d[lib], device=dev(lib)), rtol=rtol, atol=atol)
    check(lambda lib: lib.logspace(0, 2, 5, out=lib.zeros(5, 2, dtype=d[lib], device=dev(lib))[:, 1]), rtol=rtol, atol=atol)


def test_scatter_reduce_prod_nan_and_zero():
    check(lambda lib, x, i, s: x.scatter_reduce(1, i, s, "prod"), A([[1.0, 2.0, -0.0]]), I([[0, 0, 2, 2]]),
          A([[float("nan"), 3.0, 0.0, 5.0]]))


def _out_and_grads(op, n_grad):
    """fn(lib, *inputs) -> the op's outputs and the gradients of its first n_grad inputs under fixed weights."""
    def fn(lib, *args):
        xs = [a.detach().clone().requires_grad_(True) if i < n_grad else a for i, a in enumerate(args)]
        y = op(lib, *xs)
        w = np.random.default_rng(7).uniform(-1, 1, tuple(y.shape))
        weights = lib.tensor(w, dtype=y.dtype, device=dev(lib))
        grads = lib.autograd.grad(y, xs[:n_grad], weights)
        return (y.detach(),) + tuple(grads)
    return fn


# (name, fn(lib, *inputs), builder(), number of leading inputs differentiated)
GRAD_CASES = [
    ("i0e", lambda lib, x: lib.special.i0e(x), lambda: (P((5, 6), low=-10, high=10),), 1),
    ("i1e", lambda lib, x: lib.special.i1e(x), lambda: (P((5, 6), low=-10, high=10),), 1),
    ("polygamma", lambda lib, x: lib.polygamma(2, x), lambda: (P((5, 6), low=0.3, high=4),), 1),
    ("trigamma", lambda lib, x: lib.polygamma(1, x), lambda: (P((5, 6), low=0.3, high=4),), 1),
    ("zeta_q", lambda lib, q: lib.special.zeta(3.0, q), lambda: (P((5, 6), low=0.3, high=4),), 0),
    ("ldexp", lambda lib, x, e: lib.ldexp(x, e), lambda: (P((5, 6)), P((6,), "int64", seed=2, low=0, high=4)), 1),
    ("frexp", lambda lib, x: lib.frexp(x)[0], lambda: (P((5, 6), low=-100, high=100),), 1),
    ("trace", lambda lib, x: lib.trace(x), lambda: (P((4, 6)),), 1),
    ("dot", lambda lib, a, b: lib.dot(a, b), lambda: (P((9,), seed=1), P((9,), seed=2)), 2),
    ("vdot", lambda lib, a, b: lib.vdot(a, b), lambda: (P((9,), seed=1), P((9,), seed=2)), 2),
    ("addr", lambda lib, x, a, b: lib.addr(x, a, b, beta=2, alpha=-0.5), lambda: (P((4, 5), seed=1), P((4,), seed=2), P((5,), seed=3)), 3),
    ("cross", lambda lib, a, b: lib.linalg.cross(a, b), lambda: (P((4, 3), seed=1), P((4, 3), seed=2)), 2),
    ("dist2", lambda lib, a, b: lib.dist(a, b), lambda: (P((4, 5), seed=1), P((4, 5), seed=2)), 2),
    ("dist3", lambda lib, a, b: lib.dist(a, b, 3), lambda: (P((4, 5), seed=1), P((5,), seed=2)), 2),
    ("dist_inf", lambda lib, a, b: lib.dist(a, b, float("inf")), lambda: (P((4, 5), seed=1), P((4, 5), seed=2)), 2),
    ("renorm", lambda lib, x: lib.renorm(x, 2, 0, 1.5), lambda: (P((4, 5), seed=1),), 1),
    ("renorm_p3", lambda lib, x: lib.renorm(x, 3, 1, 1.0), lambda: (P((4, 5), seed=1),), 1),
    ("segment_sum", lambda lib, x, n: _seg(lib, x, "sum", lengths=n), lambda: (P((7, 3)), I([2, 0, 4, 1])), 1),
    ("segment_mean", lambda lib, x, n: _seg(lib, x, "mean", lengths=n), lambda: (P((7, 3)), I([2, 0, 4, 1])), 1),
    ("segment_max", lambda lib, x, n: _seg(lib, x, "max", lengths=n), lambda: (P((7, 3)), I([2, 0, 4, 1])), 1),
    ("segment_prod", lambda lib, x, n: _seg(lib, x, "prod", lengths=n), lambda: (P((7, 3)), I([2, 0, 4, 1])), 1),
    ("segment_offsets", lambda lib, x, o: _seg(lib, x, "min", offsets=o, axis=1), lambda: (P((2, 6, 3)), I([[0, 2, 2, 6], [0, 1, 3, 5]])), 1),
] + [
    (f"index_reduce_{r}_{inc}", lambda lib, x, s, i, r=r, inc=inc: x.index_reduce(0, i, s, r, include_self=inc),
     lambda: (P((5, 4), seed=1, low=-2, high=2), P((5, 4), seed=2, low=-2, high=2), I([4, 0, 4, 2, 4])), 2)
    for r in ("prod", "mean", "amax", "amin") for inc in (True, False)
]


@pytest.mark.parametrize("op,build,n_grad", [pytest.param(*c[1:], id=c[0]) for c in GRAD_CASES])
def test_backward(op, build, n_grad):
    check(_out_and_grads(op, n_grad), *build(), rtol=1e-4, atol=1e-4)


def test_no_sync_in_composites():
    """trace, dot, addr, cross, dist, renorm, searches, histc, one_hot and the special functions queue
    work only: captured into a CUDA graph (a host synchronisation would raise there), replays match."""
    x, v = vt.randn(5, 5, device="cuda"), vt.randn(5, device="cuda")
    s = vt.arange(8, dtype=vt.float32, device="cuda")
    labels = vt.zeros(3, dtype=vt.int64, device="cuda")

    def fn():
        return [vt.trace(x), vt.dot(v, v), vt.addr(x, v, v), vt.linalg.cross(x[:, :3], x[:, 1:4]), vt.dist(x, v),
                vt.renorm(x, 2, 0, 1.0), vt.searchsorted(s, v), vt.isin(v, s), vt.special.i0e(x), vt.polygamma(2, x),
                vt.frexp(x)[0], vt.histc(x, 4, -1, 1), F[vt].one_hot(labels, 4), vt.logspace(0, 1, 4, device="cuda")]
    eager = [t.cpu().numpy() for t in fn()]
    vt.cuda.synchronize()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g):
        ys = fn()
    g.replay()
    for got, want in zip(ys, eager):
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-5)


# -- hash_tensor: the xor of the elements' 64-bit patterns, bit for bit torch's ------------------------------------

HASHES = [  # (shape, dtype, layout, kwargs)
    ((), "float32", "contiguous", {}),
    ((), "float32", "contiguous", {"dim": 0, "keepdim": True}),
    ((), "float32", "contiguous", {"dim": -1}),
    ((5, 7), "float32", "contiguous", {}),
    ((5, 7), "bfloat16", "transposed", {"dim": 1}),
    ((3, 4, 5), "float16", "contiguous", {"dim": (0, 2), "keepdim": True}),
    ((3, 4, 5), "float64", "strided", {"dim": -1}),
    ((6, 3000), "float32", "contiguous", {"dim": 1}),
    ((4, 5), "int32", "contiguous", {"dim": 0}),
    ((4, 5), "int64", "expanded", {}),
    ((4, 5), "uint8", "contiguous", {"dim": 1}),
    ((4, 5), "int8", "contiguous", {"dim": 1}),
    ((7, 5), "bool", "contiguous", {"dim": 0}),
    ((0, 3), "float32", "contiguous", {"dim": 1}),
]


def _signed_zeros_and_infinities(lib, x):
    """x with -0.0 for its small values and +-inf for its largest (NaN left out: its payload bits are
    the conversion's business)."""
    x = lib.where(x.abs() < 1, lib.full_like(x, -0.0), x)
    x = lib.where(x > 8, lib.full_like(x, float("inf")), x)
    return lib.where(x < -8, lib.full_like(x, float("-inf")), x)


@pytest.mark.parametrize("shape,dtype,layout,kw", HASHES, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in HASHES])
def test_hash_tensor(shape, dtype, layout, kw):
    t, v = P(shape, dtype, layout, seed=60, low=-9, high=9)
    if dtype.startswith("float") and layout == "contiguous":
        t, v = _signed_zeros_and_infinities(torch, t), _signed_zeros_and_infinities(vt, v)
    expected = torch.hash_tensor(t, **kw)
    got = vt.hash_tensor(v, **kw)
    assert got.dtype == vt.uint64 and tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(got.cpu().numpy(), expected.cpu().numpy())


def test_hash_tensor_errors_and_out():
    t, v = P((3, 4), "float32", seed=61)
    check(lambda lib, a: lib.hash_tensor(a, dim=1, mode=1), (t, v))
    check(lambda lib, a: lib.hash_tensor(a[:0]), (t, v))
    out_t, out_v = torch.empty(3, dtype=torch.uint64, device=DEV), vt.empty(3, dtype=vt.uint64, device="cuda")
    torch.hash_tensor(t, dim=1, out=out_t)
    vt.hash_tensor(v, dim=1, out=out_v)
    np.testing.assert_array_equal(out_v.cpu().numpy(), out_t.cpu().numpy())
