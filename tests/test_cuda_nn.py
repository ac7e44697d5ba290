"""nn kernels on CUDA (softmax family, class-index losses, norms, glu, prelu, BCE) against torch's CUDA
results, forward and backward (marker `cuda`). Each case runs fn(lib, *inputs) in both libraries,
backpropagates fixed random weights through the output with each library's autograd, and compares
the output and the gradients of the inputs that require one."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy

pytestmark = pytest.mark.cuda

TOL = {"float32": (2e-5, 2e-5), "float64": (1e-7, 1e-7), "bfloat16": (5e-2, 2e-2)}


def _cuda_pair(shape, dtype="float32", layout="contiguous", seed=0, **kw):
    t, v = make_pair(shape, dtype, layout, seed, **kw)
    return t.cuda(), v.cuda()


def _targets(shape, classes, seed=0, ignore=(), values=None):
    """Class indices (int64) in both libraries; positions `ignore` (flat) hold -100."""
    a = np.random.default_rng(seed).integers(0, classes, shape) if values is None else np.asarray(values)
    a = np.array(a, dtype=np.int64).reshape(shape)
    for i in ignore:
        a.reshape(-1)[i] = -100
    return torch.from_numpy(a.copy()).cuda(), vt.from_numpy(a.copy()).cuda()


def _run(lib, fn, args, n_grad, seed=7):
    """fn's output and the gradients of its first n_grad arguments under fixed random weights."""
    xs = [a.detach().clone().requires_grad_(True) if i < n_grad else a for i, a in enumerate(args)]
    out = fn(lib, *xs)
    if not n_grad:
        return out
    w = np.random.default_rng(seed).uniform(-1, 1, tuple(out.shape))
    weights = lib.tensor(w, dtype=out.dtype).cuda()
    grads = lib.autograd.grad(out, xs[:n_grad], weights)
    return (out.detach(),) + tuple(grads)


def compare(fn, pairs, n_grad=1, dtype="float32", tol=None):
    """fn on the torch halves and the vibetensor halves of `pairs` (other arguments shared)."""
    split = [p if isinstance(p, tuple) else (p, p) for p in pairs]
    expected = _run(torch, fn, [p[0] for p in split], n_grad)
    got = _run(vt, fn, [p[1] for p in split], n_grad)
    rtol, atol = tol or TOL[dtype]
    assert_same(got, expected, rtol=rtol, atol=atol)
    return got


# -- softmax family --------------------------------------------------------------------------------------------

SOFTMAX_SHAPES = [  # (shape, dim): last dim, a middle dim, a first dim, rows longer than one block, empty
    ((4, 33), -1), ((4, 33), 0), ((2, 5, 7), 1), ((3, 5000), 1), ((2, 4100, 3), 1), ((0, 5), 1), ((), 0)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_SHAPES, ids=[f"{s}-{d}" for s, d in SOFTMAX_SHAPES])
def test_softmax(name, dtype, shape, dim):
    layouts = ["contiguous", "transposed"] if len(shape) >= 2 and dtype != "float64" else ["contiguous"]
    for layout in layouts:
        compare(lambda lib, x: getattr(lib.nn.functional, name)(x, dim), [_cuda_pair(shape, dtype, layout, 1)],
                dtype=dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("cols", [9, 5000])
def test_softmax_nan_inf_rows(name, cols):
    """NaN, +inf and all -inf rows (special values injected at random, then whole rows set)."""
    a = np.random.default_rng(2).uniform(-3, 3, (6, cols)).astype(np.float32)
    a[0] = -np.inf
    a[1, 3] = np.inf
    a[2, 1] = np.nan
    a[3, ::2] = -np.inf
    pair = torch.from_numpy(a.copy()).cuda(), vt.from_numpy(a.copy()).cuda()
    compare(lambda lib, x: getattr(lib, name)(x, 1), [pair], n_grad=0)
    compare(lambda lib, x: getattr(lib, name)(x, 1), [_cuda_pair((6, cols), "float32", seed=3, special=True)],
            n_grad=1 if cols < 1024 else 0)


def test_cross_entropy_nan_logits():
    """A NaN logit in a long row (> 1024 classes) and a short one, as torch's CUDA kernels treat them."""
    for classes in (9, 3000):
        a = np.random.default_rng(4).uniform(-3, 3, (3, classes)).astype(np.float32)
        a[0, 5] = np.nan
        a[1, 2] = np.inf
        x = torch.from_numpy(a.copy()).cuda(), vt.from_numpy(a.copy()).cuda()
        t = _targets((3,), classes, seed=5, values=[1, 2, 7])
        compare(lambda lib, x_, t_: lib.nn.functional.cross_entropy(x_, t_, reduction="none"), [x, t], n_grad=0)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_argument(name):
    """dtype= casts first; a half input with dtype=float32 computes and returns float32."""
    compare(lambda lib, x: getattr(lib, name)(x, 1, dtype=lib.float32), [_cuda_pair((5, 37), "bfloat16", seed=3)],
            dtype="float32", tol=(1e-5, 1e-5))
    compare(lambda lib, x: getattr(lib, name)(x, 0, dtype=lib.float64), [_cuda_pair((5, 37), "float32", seed=4)],
            dtype="float64")


# -- cross entropy, nll ----------------------------------------------------------------------------------------

# (id, input shape, target shape, ignored positions, weight, reduction, label_smoothing)
CE_CASES = [
    ("2d_mean", (8, 10), (8,), (1,), False, "mean", 0.0),
    ("2d_sum_w", (8, 10), (8,), (2,), True, "sum", 0.0),
    ("2d_none_w_ls", (8, 10), (8,), (0, 5), True, "none", 0.1),
    ("2d_mean_w_ls", (8, 10), (8,), (3,), True, "mean", 0.2),
    ("2d_mean_ls", (8, 10), (8,), (), False, "mean", 0.1),
    ("long_rows", (4, 5000), (4,), (1,), False, "mean", 0.1),
    ("long_rows_none_w", (3, 4200), (3,), (), True, "none", 0.0),
    ("spatial_mean", (2, 5, 3, 3), (2, 3, 3), (0, 7), False, "mean", 0.0),
    ("spatial_none_w_ls", (2, 5, 3, 3), (2, 3, 3), (4,), True, "none", 0.1),
    ("1d_sum", (6,), (), (), False, "sum", 0.0),
    ("1d_none_w", (6,), (), (), True, "none", 0.0),
    ("empty_batch_mean", (0, 4), (0,), (), False, "mean", 0.0),
    ("all_ignored_mean", (3, 4), (3,), (0, 1, 2), False, "mean", 0.0),
    ("all_ignored_mean_w_ls", (3, 4), (3,), (0, 1, 2), True, "mean", 0.1),
]


def _ce_inputs(xshape, tshape, ignore, weighted, dtype, layout="contiguous"):
    classes = xshape[1] if len(xshape) > 1 else xshape[0]
    x = _cuda_pair(xshape, dtype, layout if len(xshape) == 2 else "contiguous", seed=5)
    t = _targets(tshape, classes, seed=6, ignore=ignore)
    w = _cuda_pair((classes,), dtype, seed=8, low=0.2, high=2.0) if weighted else None
    return x, t, w


@pytest.mark.parametrize("case", CE_CASES, ids=[c[0] for c in CE_CASES])
def test_cross_entropy(case):
    _, xshape, tshape, ignore, weighted, reduction, ls = case
    for dtype in ("float32", "bfloat16") if case[0] in ("2d_mean_w_ls", "long_rows", "spatial_mean") else \
            ("float32",):
        x, t, w = _ce_inputs(xshape, tshape, ignore, weighted, dtype)
        compare(lambda lib, x_, t_, w_: lib.nn.functional.cross_entropy(x_, t_, w_, reduction=reduction,
                                                                         label_smoothing=ls),
                [x, t, w], dtype=dtype, tol=(5e-2, 3e-2) if dtype == "bfloat16" else None)


def test_cross_entropy_transposed_logits():
    x, t, w = _ce_inputs((6, 9), (6,), (2,), True, "float32", "transposed")
    compare(lambda lib, x_, t_, w_: lib.nn.functional.cross_entropy(x_, t_, w_, label_smoothing=0.1), [x, t, w])


def test_cross_entropy_probability_targets():
    x = _cuda_pair((4, 7), seed=9)
    p = _cuda_pair((4, 7), seed=10, low=0.0, high=1.0)
    compare(lambda lib, x_, p_: lib.nn.functional.cross_entropy(x_, p_.softmax(1)), [x, p], n_grad=1)


NLL_CASES = [c for c in CE_CASES if c[6] == 0.0]


@pytest.mark.parametrize("case", NLL_CASES, ids=[c[0] for c in NLL_CASES])
def test_nll_loss(case):
    _, xshape, tshape, ignore, weighted, reduction, _ = case
    x, t, w = _ce_inputs(xshape, tshape, ignore, weighted, "float32")
    class_dim = 1 if len(xshape) > 1 else 0
    compare(lambda lib, x_, t_, w_: lib.nn.functional.nll_loss(lib.log_softmax(x_, class_dim), t_, w_,
                                                               reduction=reduction), [x, t, w])
    compare(lambda lib, x_, t_, w_: lib.nn.functional.nll_loss(x_, t_, w_, reduction=reduction), [x, t, w])


# -- normalisation ---------------------------------------------------------------------------------------------

NORM_SHAPES = [((4, 33), (33,)), ((3, 5000), (5000,)), ((2, 3, 4, 5), (4, 5)), ((0, 8), (8,))]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,ns", NORM_SHAPES, ids=[str(s) for s, _ in NORM_SHAPES])
def test_layer_norm(dtype, affine, shape, ns):
    for layout in ("contiguous", "transposed") if len(shape) == 2 and shape[0] else ("contiguous",):
        x = _cuda_pair(shape, dtype, layout, seed=11)
        w, b = (_cuda_pair(ns, dtype, seed=12), _cuda_pair(ns, dtype, seed=13)) if affine else (None, None)
        compare(lambda lib, x_, w_, b_: lib.nn.functional.layer_norm(x_, ns, w_, b_), [x, w, b],
                n_grad=3 if affine else 1, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,ns", NORM_SHAPES, ids=[str(s) for s, _ in NORM_SHAPES])
def test_rms_norm(dtype, affine, shape, ns):
    x = _cuda_pair(shape, dtype, seed=14)
    w = _cuda_pair(ns, dtype, seed=15) if affine else None
    compare(lambda lib, x_, w_: lib.nn.functional.rms_norm(x_, ns, w_), [x, w], n_grad=2 if affine else 1,
            dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,groups", [((4, 6, 5), 3), ((2, 8, 3, 3), 4), ((3, 8), 2), ((2, 4, 700), 1)])
def test_group_norm(dtype, shape, groups):
    c = shape[1]
    x, w, b = _cuda_pair(shape, dtype, seed=16), _cuda_pair((c,), dtype, seed=17), _cuda_pair((c,), dtype, seed=18)
    compare(lambda lib, x_, w_, b_: lib.nn.functional.group_norm(x_, groups, w_, b_), [x, w, b], n_grad=3,
            dtype=dtype)
    compare(lambda lib, x_: lib.nn.functional.group_norm(x_, groups), [x], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(8, 4), (4, 3, 5), (2, 3, 4, 4)])
def test_batch_norm(dtype, training, shape):
    c = shape[1]
    x, w, b = _cuda_pair(shape, dtype, seed=19), _cuda_pair((c,), dtype, seed=20), _cuda_pair((c,), dtype, seed=21)
    rm = _cuda_pair((c,), "float32", seed=22)
    rv = _cuda_pair((c,), "float32", seed=23, low=0.5, high=2.0)
    if dtype == "float32":
        stats = [(rm[0].clone(), rm[1].clone()), (rv[0].clone(), rv[1].clone())]
    else:  # statistics in the input's dtype
        stats = [(s[0].to(torch.bfloat16), s[1].to(vt.bfloat16)) for s in (rm, rv)]
    compare(lambda lib, x_, w_, b_, m_, v_: lib.nn.functional.batch_norm(x_, m_, v_, w_, b_, training, 0.1, 1e-5),
            [x, w, b] + stats, n_grad=3, dtype=dtype)
    for theirs, ours in stats:  # the running statistics moved alike (in training), stayed (in evaluation)
        assert_same(ours, theirs, *TOL[dtype])


def test_batch_norm_without_running_stats():
    x, w, b = _cuda_pair((6, 3, 2), seed=24), _cuda_pair((3,), seed=25), _cuda_pair((3,), seed=26)
    compare(lambda lib, x_, w_, b_: lib.nn.functional.batch_norm(x_, None, None, w_, b_, True), [x, w, b], n_grad=3)


# -- glu, prelu, binary cross-entropy ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_glu_prelu_bce(dtype):
    compare(lambda lib, x: lib.nn.functional.glu(x, 1), [_cuda_pair((4, 6, 3), dtype, seed=27)], dtype=dtype)
    compare(lambda lib, x: lib.nn.functional.glu(x, -1), [_cuda_pair((5, 8), dtype, "transposed", seed=28)],
            dtype=dtype)
    compare(lambda lib, x, w: lib.nn.functional.prelu(x, w),
            [_cuda_pair((4, 3, 5), dtype, seed=29), _cuda_pair((3,), dtype, seed=30)], n_grad=2, dtype=dtype)
    compare(lambda lib, x, w: lib.nn.functional.prelu(x, w),
            [_cuda_pair((4, 3), dtype, seed=31), _cuda_pair((1,), dtype, seed=32)], n_grad=2, dtype=dtype)
    p = _cuda_pair((4, 5), dtype, seed=33, low=0.02, high=0.98)
    y = _cuda_pair((4, 5), dtype, seed=34, low=0.0, high=1.0)
    w = _cuda_pair((5,), dtype, seed=35, low=0.5, high=1.5)
    compare(lambda lib, p_, y_, w_: lib.nn.functional.binary_cross_entropy(p_, y_, w_, reduction="none"), [p, y, w],
            dtype=dtype)
    compare(lambda lib, p_, y_: lib.nn.functional.binary_cross_entropy(p_, y_), [p, y], n_grad=2, dtype=dtype)


# -- regressions from the CUDA conformance run (BackendBench entries, float32 and bfloat16) ------------------------

# layer_norm's weight and bias gradients: a (rows, L) tile-based column sum of per-program partials
# (wide, narrow and odd widths; rows many times the partial count)
LAYER_NORM_GRADS = [((4096, 128), (128,)), ((3, 5, 7), (7,)), ((64, 1000), (1000,)), ((3, 5, 7), (5, 7)),
                    ((20000, 16), (16,))]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape,ns", LAYER_NORM_GRADS, ids=[str(s) for s, _ in LAYER_NORM_GRADS])
def test_layer_norm_weight_bias_grads(dtype, shape, ns):
    x = _cuda_pair(shape, dtype, seed=40)
    w, b = _cuda_pair(ns, dtype, seed=41), _cuda_pair(ns, dtype, seed=42)
    rows = int(np.prod(shape)) // int(np.prod(ns))
    tol = (TOL[dtype][0], TOL[dtype][1] * max(1.0, rows ** 0.5 / 8))  # sums of `rows` terms: absolute error grows
    compare(lambda lib, x_, w_, b_: lib.nn.functional.layer_norm(x_, ns, w_, b_), [x, w, b], n_grad=3, dtype=dtype,
            tol=tol)


def _stats_inputs(dtype, shape=(3, 2, 4), seed=43):
    c = shape[1]
    x, w, b = _cuda_pair(shape, dtype, seed=seed), _cuda_pair((c,), dtype, seed=seed + 1), \
        _cuda_pair((c,), dtype, seed=seed + 2)
    rm = _cuda_pair((c,), dtype, seed=seed + 3)
    rv = _cuda_pair((c,), dtype, seed=seed + 4, low=0.5, high=2.0)
    return x, w, b, rm, rv


# torch's ATen norms with their saved statistics: on CUDA these are float32 for half-type inputs (its
# kernels allocate them in the accumulate type), and evaluation-mode batch norm returns the running
# mean and 1 / sqrt(running_var + eps) (torch's CPU kernel returns empty tensors there)
NATIVE_NORMS = [
    ("native_layer_norm", lambda lib, x, w, b, rm, rv: lib.native_layer_norm(x, (4,), w.repeat(2), b.repeat(2), 1e-5)),
    ("native_layer_norm_2d", lambda lib, x, w, b, rm, rv: lib.native_layer_norm(x, (2, 4), None, None, 0.5)),
    ("native_batch_norm_train", lambda lib, x, w, b, rm, rv: lib.native_batch_norm(x, w, b, rm, rv, True, 0.5, 0.6)),
    ("native_batch_norm_eval", lambda lib, x, w, b, rm, rv: lib.native_batch_norm(x, w, b, rm, rv, False, -1.2, 1e-5)),
    ("native_batch_norm_no_stats", lambda lib, x, w, b, rm, rv: lib.native_batch_norm(x, w, b, None, None, True, 0.1,
                                                                                        1e-5)),
    ("legit_eval", lambda lib, x, w, b, rm, rv: lib._native_batch_norm_legit(x, w, b, rm, rv, False, 0.1, 1e-5)),
    ("legit_train", lambda lib, x, w, b, rm, rv: lib._native_batch_norm_legit(x, w, b, rm, rv, True, 0.1, 1e-5)),
    ("legit_no_stats", lambda lib, x, w, b, rm, rv: lib._native_batch_norm_legit(x, w, b, True, 0.1, 1e-5)),
    ("with_update", lambda lib, x, w, b, rm, rv: lib.ops.aten._batch_norm_with_update(x, w, b, rm, rv, 0.1, 1e-5)[:3]),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name,fn", NATIVE_NORMS, ids=[c[0] for c in NATIVE_NORMS])
def test_native_norm_statistics(name, fn, dtype):
    """Every output's dtype, shape and values, and the running statistics afterwards."""
    x, w, b, rm, rv = _stats_inputs(dtype)
    got = fn(vt, x[1], w[1], b[1], rm[1], rv[1])
    expected = fn(torch, x[0], w[0], b[0], rm[0], rv[0])
    rtol, atol = TOL[dtype]
    assert_same(tuple(got), tuple(expected), rtol=rtol, atol=atol)
    assert_same((rm[1], rv[1]), (rm[0], rv[0]), rtol=rtol, atol=atol)


def _from_torch(t):
    """A vibetensor copy of torch tensor t (same values, on CUDA)."""
    return vt.from_numpy(to_numpy(t)).cuda()


SOFTMAX_BACKWARD = [((5,), 0), ((5, 5), 0), ((5, 10, 5), -1), ((5, 10, 5), 1), ((4, 3000), 1), ((3, 5000), -1)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("shape,dim", SOFTMAX_BACKWARD, ids=[f"{s}-{d}" for s, d in SOFTMAX_BACKWARD])
def test_softmax_backward_data(dtype, shape, dim):
    """torch's CUDA rounding: g * y is a tensor of the result dtype before the float32 kernel (so bfloat16
    results agree to the conformance tolerance, not just to bfloat16's)."""
    x, g = _cuda_pair(shape, dtype, seed=50), _cuda_pair(shape, dtype, seed=51)
    y_t = torch.softmax(x[0], dim)
    y_v = _from_torch(y_t)
    expected = torch.ops.aten._softmax_backward_data(g[0], y_t, dim, y_t.dtype)
    got = vt.ops.aten._softmax_backward_data(g[1], y_v, dim, y_v.dtype)
    assert_same(got, expected, rtol=1.6e-2 if dtype == "bfloat16" else 1.3e-6, atol=1e-5)
