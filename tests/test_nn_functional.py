"""torch.nn.functional against torch: one table line per function (with its kwargs variants).

A line is Line(name, fn(F, *inputs), variants, dtypes, second): `variants` lists input specs, one
list per shape variant (the first is the main one: gradients, layouts); each spec builds the same
input in both libraries:
  T(shape, lo, hi)   a float tensor of the tested dtype (differentiable)
  C(shape, lo, hi)   the same, not differentiated
  I(shape, high)     int64 class indices in [0, high]
  P(shape, dim)      probabilities along dim (a softmax), of the tested dtype
  K(fn)              a constant fn(lib) (weights, running statistics), not differentiated
Every line runs forward over dtypes (torch's exception type where it refuses one) and layouts, its
shape variants (0-d and empty where legal), gradients vs torch (float64, float32, non-contiguous),
and gradcheck in float64; lines marked second=True compare second derivatives too. Errors, in-place
forms, dropout and the stateful functions have their own tables and tests below.
"""
import math
import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair, torch_from_numpy, vt_from_numpy

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

FLOATS = ("float32", "float64", "bfloat16")
WITH_INT = FLOATS + ("int64",)


class T:
    def __init__(self, shape, lo=-3.0, hi=3.0):
        self.shape, self.lo, self.hi = tuple(shape), lo, hi

    def make(self, dtype, layout, seed, special=False):
        layout = layout if len(self.shape) >= 2 or layout == "contiguous" else "strided" if self.shape else \
            "contiguous"
        return make_pair(self.shape, dtype, layout, seed, low=self.lo, high=self.hi, special=special)


class C(T):
    """A float tensor that is not differentiated (torch refuses a gradient for some targets)."""


class I:
    def __init__(self, shape, high):
        self.shape, self.high = tuple(shape), high

    def make(self, dtype, layout, seed, special=False):
        a = np.random.default_rng(seed).integers(0, self.high + 1, self.shape).astype(np.int64)
        return torch_from_numpy(a), vt_from_numpy(a)


class P(T):
    def __init__(self, shape, dim=1):
        super().__init__(shape)
        self.dim = dim

    def make(self, dtype, layout, seed, special=False):
        if dtype not in FLOATS:
            dtype = "float32"
        t, v = make_pair(self.shape, "float64", "contiguous", seed)
        t, v = t.softmax(self.dim), v.softmax(self.dim)
        return t.to(getattr(torch, dtype)), v.to(getattr(vt, dtype))


class K:
    def __init__(self, fn):
        self.fn = fn

    def make(self, dtype, layout, seed, special=False):
        return self.fn(torch), self.fn(vt)


Line = namedtuple("Line", "name fn variants dtypes second special", defaults=(WITH_INT, False, False))

D = (3, 4)
SHAPES = [[T(D)], [T(())], [T((0, 3))], [T((2, 3, 4))]]  # elementwise activations: 2-d, 0-d, empty, 3-d
NC, N3, N4 = (4, 5), (2, 5, 3), (2, 5, 2, 3)  # (N, C), (N, C, d), (N, C, d1, d2)


def act(name, fn, second=False, dtypes=WITH_INT):
    return Line(name, fn, SHAPES, dtypes, second, special=True)


def loss(name, fn, variants, second=False, dtypes=FLOATS):
    return Line(name, fn, variants, dtypes, second)


def pair_target(shape, lo=-3.0, hi=3.0):
    return [T(shape, lo, hi), T(shape, lo, hi)]


W5 = C((5,), 0.2, 2.0)  # class weights (not differentiable in torch)

LINES = [
    # -- activations ----------------------------------------------------------------------------------------
    act("relu", lambda F, x: F.relu(x)),
    act("relu6", lambda F, x: F.relu6(x)),
    act("hardtanh", lambda F, x: F.hardtanh(x)),
    act("hardtanh_limits", lambda F, x: F.hardtanh(x, -0.5, 2.0)),
    act("leaky_relu", lambda F, x: F.leaky_relu(x), second=True),
    act("leaky_relu_slope", lambda F, x: F.leaky_relu(x, 0.2)),
    act("elu", lambda F, x: F.elu(x), second=True),
    act("elu_alpha", lambda F, x: F.elu(x, alpha=0.5)),
    act("selu", lambda F, x: F.selu(x)),
    act("celu", lambda F, x: F.celu(x)),
    act("celu_alpha", lambda F, x: F.celu(x, alpha=2.0), second=True),
    act("gelu", lambda F, x: F.gelu(x), second=True),
    act("gelu_tanh", lambda F, x: F.gelu(x, approximate="tanh"), second=True),
    act("silu", lambda F, x: F.silu(x), second=True),
    act("mish", lambda F, x: F.mish(x), second=True),
    act("softplus", lambda F, x: F.softplus(x), second=True),
    act("softplus_beta", lambda F, x: F.softplus(x, beta=2.0, threshold=3.0)),
    act("hardshrink", lambda F, x: F.hardshrink(x)),
    act("hardshrink_lambd", lambda F, x: F.hardshrink(x, 1.0)),
    act("softshrink", lambda F, x: F.softshrink(x)),
    act("softshrink_lambd", lambda F, x: F.softshrink(x, 0.3)),
    act("hardsigmoid", lambda F, x: F.hardsigmoid(x)),
    act("hardswish", lambda F, x: F.hardswish(x)),
    act("threshold", lambda F, x: F.threshold(x, 0.5, -2.0)),
    act("logsigmoid", lambda F, x: F.logsigmoid(x), second=True),
    act("tanhshrink", lambda F, x: F.tanhshrink(x)),
    act("softsign", lambda F, x: F.softsign(x)),
    act("sigmoid", lambda F, x: F.sigmoid(x)),
    act("tanh", lambda F, x: F.tanh(x)),
    act("rrelu_eval", lambda F, x: F.rrelu(x)),
    Line("glu", lambda F, x: F.glu(x), [[T((3, 4))], [T((2, 0))], [T((2, 6, 3))]], second=True),
    Line("glu_dim", lambda F, x: F.glu(x, 0), [[T((4, 3))], [T((2,))]]),
    Line("prelu", lambda F, x, w: F.prelu(x, w), [[T((2, 3, 4)), T((3,), 0.0, 1.0)], [T((2, 3)), T((3,))],
                                                   [T((5,)), T((1,))], [T(()), T(())]]),
    Line("prelu_shared", lambda F, x, w: F.prelu(x, w), [[T((2, 3, 4)), T((1,), 0.0, 1.0)]]),
    # -- softmax --------------------------------------------------------------------------------------------
    Line("softmax", lambda F, x: F.softmax(x, 1), [[T(D)], [T((2, 3, 4))], [T((0, 3))], [T((3, 0))]],
         second=True, special=True),
    Line("softmax_dim0", lambda F, x: F.softmax(x, dim=0), [[T(D)], [T(())], [T((5,))]]),
    Line("softmax_last", lambda F, x: F.softmax(x, -1), [[T((2, 3, 4))]], second=True),
    Line("softmax_dtype", lambda F, x: F.softmax(x, -1, dtype=torch.float64 if F is torch.nn.functional
                                                 else vt.float64), [[T(D)]]),
    Line("softmax_implicit_dim", lambda F, x: F.softmax(x), [[T(D)], [T((2, 3, 4))], [T((4,))]]),
    Line("softmax_method", lambda F, x: x.softmax(0), [[T(D)]]),
    Line("log_softmax", lambda F, x: F.log_softmax(x, 1), [[T(D)], [T((2, 3, 4))], [T((0, 3))], [T(())]],
         second=True, special=True),
    Line("log_softmax_large", lambda F, x: F.log_softmax(x, -1), [[T(D, -1e4, 1e4)], [T((2, 5), 80.0, 3e4)]],
         second=True),
    Line("log_softmax_method", lambda F, x: x.log_softmax(-1), [[T((2, 3, 4))]]),
    Line("softmin", lambda F, x: F.softmin(x, 1), [[T(D)], [T((2, 3, 4))]]),
    # -- losses ---------------------------------------------------------------------------------------------
    loss("mse_loss", lambda F, x, t: F.mse_loss(x, t), [pair_target(D), pair_target(()), pair_target((0, 2))],
         second=True),
    loss("mse_loss_sum", lambda F, x, t: F.mse_loss(x, t, reduction="sum"), [pair_target(D)]),
    loss("mse_loss_none", lambda F, x, t: F.mse_loss(x, t, reduction="none"), [pair_target(D)]),
    loss("mse_loss_weight", lambda F, x, t, w: F.mse_loss(x, t, weight=w), [pair_target(D) + [T(D, 0.1, 2.0)]]),
    loss("mse_loss_broadcast", lambda F, x, t: F.mse_loss(x, t), [[T(D), T((4,))]]),
    loss("l1_loss", lambda F, x, t: F.l1_loss(x, t), [pair_target(D), pair_target(())]),
    loss("l1_loss_none", lambda F, x, t: F.l1_loss(x, t, reduction="none"), [pair_target(D)]),
    loss("l1_loss_weight", lambda F, x, t, w: F.l1_loss(x, t, weight=w), [pair_target(D) + [T(D, 0.1, 2.0)]]),
    loss("smooth_l1_loss", lambda F, x, t: F.smooth_l1_loss(x, t), [pair_target(D)], second=True),
    loss("smooth_l1_loss_beta", lambda F, x, t: F.smooth_l1_loss(x, t, reduction="sum", beta=0.5),
         [pair_target(D)]),
    loss("smooth_l1_loss_beta0", lambda F, x, t: F.smooth_l1_loss(x, t, beta=0.0), [pair_target(D)]),
    loss("huber_loss", lambda F, x, t: F.huber_loss(x, t), [pair_target(D)], second=True),
    loss("huber_loss_delta", lambda F, x, t: F.huber_loss(x, t, reduction="none", delta=0.5), [pair_target(D)]),
    loss("huber_loss_weight", lambda F, x, t, w: F.huber_loss(x, t, weight=w), [pair_target(D) + [T(D, 0.1, 2.)]]),
    loss("soft_margin_loss", lambda F, x, t: F.soft_margin_loss(x, t.sign()), [[T(D), C(D)]]),
    loss("binary_cross_entropy", lambda F, p, t: F.binary_cross_entropy(p, t),
         [pair_target(D, 0.05, 0.95), pair_target((), 0.05, 0.95), pair_target((0,), 0.05, 0.95)], second=True),
    loss("binary_cross_entropy_weight", lambda F, p, t, w: F.binary_cross_entropy(p, t, w, reduction="sum"),
         [pair_target(D, 0.05, 0.95) + [C((4,), 0.1, 2.0)]]),
    loss("binary_cross_entropy_none", lambda F, p, t: F.binary_cross_entropy(p, t, reduction="none"),
         [pair_target(D, 0.05, 0.95)]),
    loss("bce_with_logits", lambda F, x, t: F.binary_cross_entropy_with_logits(x, t.sigmoid()),
         [pair_target(D), pair_target(())], second=True),
    loss("bce_with_logits_weights", lambda F, x, t, w, pw: F.binary_cross_entropy_with_logits(
        x, t.sigmoid(), w, reduction="none", pos_weight=pw), [pair_target(D) + [C((4,), 0.1, 2.0), C((4,), .5, 3)]]),
    loss("nll_loss", lambda F, x, t: F.nll_loss(x, t), [[T(NC), I((4,), 4)], [T((5,)), I((), 4)],
                                                        [T(N3), I((2, 3), 4)], [T(N4), I((2, 2, 3), 4)],
                                                        [T((0, 5)), I((0,), 4)]]),
    loss("nll_loss_weight", lambda F, x, t, w: F.nll_loss(x, t, w), [[T(NC), I((4,), 4), W5],
                                                                      [T(N3), I((2, 3), 4), W5]]),
    loss("nll_loss_ignore", lambda F, x, t: F.nll_loss(x, t, ignore_index=1, reduction="sum"),
         [[T(NC), I((4,), 2)], [T(N4), I((2, 2, 3), 2)]]),
    loss("nll_loss_none", lambda F, x, t, w: F.nll_loss(x, t, w, ignore_index=2, reduction="none"),
         [[T(NC), I((4,), 4), W5], [T(N3), I((2, 3), 4), W5], [T((5,)), I((), 4), W5]]),
    loss("cross_entropy", lambda F, x, t: F.cross_entropy(x, t), [[T(NC), I((4,), 4)], [T((5,)), I((), 4)],
                                                                  [T(N3), I((2, 3), 4)], [T(N4), I((2, 2, 3), 4)],
                                                                  [T((0, 5)), I((0,), 4)]], second=True),
    loss("cross_entropy_weight_ignore", lambda F, x, t, w: F.cross_entropy(x, t, w, ignore_index=1),
         [[T(NC), I((4,), 3), W5], [T(N3), I((2, 3), 3), W5]], second=True),
    loss("cross_entropy_smoothing", lambda F, x, t: F.cross_entropy(x, t, label_smoothing=0.1),
         [[T(NC), I((4,), 4)], [T(N3), I((2, 3), 4)], [T((5,)), I((), 4)]], second=True),
    loss("cross_entropy_smoothing_weight", lambda F, x, t, w: F.cross_entropy(x, t, w, ignore_index=2,
                                                                              label_smoothing=0.2),
         [[T(NC), I((4,), 4), W5], [T(N3), I((2, 3), 4), W5]], second=True),
    loss("cross_entropy_smoothing_none", lambda F, x, t, w: F.cross_entropy(x, t, w, ignore_index=0,
                                                                            reduction="none", label_smoothing=0.3),
         [[T(NC), I((4,), 4), W5]]),
    loss("cross_entropy_sum", lambda F, x, t: F.cross_entropy(x, t, reduction="sum", label_smoothing=0.05),
         [[T(NC), I((4,), 4)]]),
    loss("cross_entropy_large_logits", lambda F, x, t: F.cross_entropy(x, t), [[T(NC, -3e4, 3e4), I((4,), 4)]]),
    loss("cross_entropy_probs", lambda F, x, p: F.cross_entropy(x, p), [[T(NC), P(NC)], [T((5,)), P((5,), 0)],
                                                                        [T(N3), P(N3)]], second=True),
    loss("cross_entropy_probs_weight", lambda F, x, p, w: F.cross_entropy(x, p, w, label_smoothing=0.2),
         [[T(NC), P(NC), W5]]),
    loss("cross_entropy_probs_none", lambda F, x, p: F.cross_entropy(x, p, reduction="none"),
         [[T(N3), P(N3)]]),
    loss("kl_div", lambda F, x, p: F.kl_div(x, p), [[T(NC), P(NC)]]),
    loss("kl_div_batchmean", lambda F, x, p: F.kl_div(x, p, reduction="batchmean"), [[T(NC), P(NC)]], second=True),
    loss("kl_div_log_target", lambda F, x, t: F.kl_div(x, t, reduction="sum", log_target=True),
         [[T(NC), T(NC, -3.0, 0.0)]]),
    loss("kl_div_none", lambda F, x, p: F.kl_div(x, p, reduction="none"), [[T(NC), P(NC)]]),
    loss("margin_ranking_loss", lambda F, a, b, t: F.margin_ranking_loss(a, b, t.sign(), margin=0.5),
         [[T((6,)), T((6,)), T((6,))]]),
    loss("hinge_embedding_loss", lambda F, x, t: F.hinge_embedding_loss(x, t.sign()), [pair_target(D)]),
    loss("poisson_nll_loss", lambda F, x, t: F.poisson_nll_loss(x, t), [[T(D), T(D, 0.0, 4.0)]]),
    loss("poisson_nll_loss_full", lambda F, x, t: F.poisson_nll_loss(x, t, log_input=False, full=True),
         [[T(D, 0.1, 3.0), T(D, 0.0, 4.0)]]),
    loss("gaussian_nll_loss", lambda F, x, t, v: F.gaussian_nll_loss(x, t, v), [[T(D), T(D), T(D, 0.1, 2.0)],
                                                                                [T(D), T(D), T((3,), 0.1, 2.0)]]),
    loss("cosine_embedding_loss", lambda F, a, b, t: F.cosine_embedding_loss(a, b, t.sign(), margin=0.1),
         [[T(NC), T(NC), T((4,))]]),
    loss("multilabel_soft_margin_loss", lambda F, x, t: F.multilabel_soft_margin_loss(x, t),
         [[T(NC), T(NC, 0.0, 1.0)]]),
    loss("triplet_margin_loss", lambda F, a, p, n: F.triplet_margin_loss(a, p, n, swap=True),
         [[T(NC), T(NC), T(NC)]]),
    # -- normalisation --------------------------------------------------------------------------------------
    loss("layer_norm", lambda F, x: F.layer_norm(x, (5,)), [[T(NC)], [T((2, 3, 5))], [T((0, 5))]], second=True),
    loss("layer_norm_affine", lambda F, x, w, b: F.layer_norm(x, (3, 5), w, b, eps=1e-3),
         [[T((2, 3, 5)), T((3, 5)), T((3, 5))], [T((3, 5)), T((3, 5)), T((3, 5))]], second=True),
    loss("layer_norm_list_shape", lambda F, x, w: F.layer_norm(x, [5], w), [[T(NC), T((5,))]]),
    loss("rms_norm", lambda F, x, w: F.rms_norm(x, (5,), w), [[T(NC), T((5,))], [T((2, 3, 5)), T((5,))]],
         second=True),
    loss("rms_norm_eps", lambda F, x: F.rms_norm(x, (3, 5), eps=1e-2), [[T((2, 3, 5))]]),
    loss("group_norm", lambda F, x, w, b: F.group_norm(x, 3, w, b), [[T((2, 6, 3)), T((6,)), T((6,))],
                                                                     [T((2, 6)), T((6,)), T((6,))],
                                                                     [T((2, 6, 2, 2)), T((6,)), T((6,))]],
         second=True),
    loss("group_norm_plain", lambda F, x: F.group_norm(x, 2, eps=1e-2), [[T((3, 4, 5))], [T((0, 4, 5))]]),
    loss("batch_norm_eval", lambda F, x, w, b, m, v: F.batch_norm(x, m, v, w, b),
         [[T(N3), T((5,)), T((5,)), C((5,)), C((5,), 0.5, 2.0)]]),
    loss("batch_norm_train", lambda F, x, w, b: _batch_norm_train(F, x, w, b),
         [[T(N3), T((5,)), T((5,))], [T(NC), T((5,)), T((5,))], [T(N4), T((5,)), T((5,))]], second=True),
    loss("batch_norm_no_stats", lambda F, x: F.batch_norm(x, None, None, training=True, momentum=0.3),
         [[T(N3)]]),
    loss("instance_norm", lambda F, x, w, b: F.instance_norm(x, weight=w, bias=b), [[T(N3), T((5,)), T((5,))]]),
    loss("instance_norm_stats", lambda F, x: _instance_norm_stats(F, x), [[T((2, 5, 4))]]),
    loss("instance_norm_eval", lambda F, x, m, v: F.instance_norm(x, m, v, use_input_stats=False),
         [[T(N3), C((5,)), C((5,), 0.5, 2.0)]]),
    # -- embedding, distances -------------------------------------------------------------------------------
    Line("embedding", lambda F, i, w: F.embedding(i, w), [[I((2, 3), 5), T((6, 4))], [I((), 5), T((6, 4))],
                                                          [I((0,), 5), T((6, 4))]], FLOATS + ("int64",)),
    Line("embedding_padding", lambda F, i, w: F.embedding(i, w, padding_idx=2), [[I((3, 4), 5), T((6, 3))]],
         FLOATS, second=True),
    Line("embedding_negative_padding", lambda F, i, w: F.embedding(i, w, padding_idx=-4),
         [[I((7,), 5), T((6, 3))]], FLOATS),
    Line("embedding_scale_grad", lambda F, i, w: F.embedding(i, w, scale_grad_by_freq=True), [[I((8,), 3), T((6, 3))]],
         FLOATS, second=True),
    Line("one_hot", lambda F, i: F.one_hot(i), [[I((2, 3), 4)], [I((), 4)]], ("int64",)),
    Line("one_hot_classes", lambda F, i: F.one_hot(i, 6), [[I((5,), 4)], [I((0,), 4)]], ("int64",)),
    loss("normalize", lambda F, x: F.normalize(x), [[T(NC)], [T(N3)]], second=True),
    loss("normalize_p1", lambda F, x: F.normalize(x, p=1.0, dim=0), [[T(NC)], [T((5,))]]),
    loss("cosine_similarity", lambda F, a, b: F.cosine_similarity(a, b), [[T(NC), T(NC)], [T(NC), T((5,))],
                                                                          [T(N3), T(N3)]], second=True),
    loss("cosine_similarity_dim0", lambda F, a, b: F.cosine_similarity(a, b, dim=0, eps=1e-3),
         [[T((5,)), T((5,))], [T(()), T(())]]),
    loss("pairwise_distance", lambda F, a, b: F.pairwise_distance(a, b), [[T(NC), T(NC)], [T(NC), T((5,))],
                                                                          [T((5,)), T((5,))]]),
    loss("pairwise_distance_p1", lambda F, a, b: F.pairwise_distance(a, b, p=1.0, keepdim=True), [[T(NC), T(NC)]]),
]


def _batch_norm_train(F, x, w, b):
    lib = torch if F is torch.nn.functional else vt
    c = x.shape[1]
    mean, var = lib.zeros(c, dtype=x.dtype), lib.ones(c, dtype=x.dtype)
    y = F.batch_norm(x, mean, var, w, b, training=True, momentum=0.2)
    return y, mean, var


def _instance_norm_stats(F, x):
    lib = torch if F is torch.nn.functional else vt
    mean, var = lib.zeros(x.shape[1], dtype=x.dtype), lib.ones(x.shape[1], dtype=x.dtype)
    return F.instance_norm(x, mean, var, momentum=0.3), mean, var


IDS = [line.name for line in LINES]
BY_NAME = dict(zip(IDS, LINES))
LIBS = {torch: torch.nn.functional, vt: vt.nn.functional}


def _fn(line):
    return lambda lib, *xs: line.fn(LIBS[lib], *xs)


def _inputs(specs, dtype, layout="contiguous", seed=0, special=False):
    return [s.make(dtype, layout, seed + i, special) for i, s in enumerate(specs)]


def _tol(dtype):
    return {"bfloat16": dict(rtol=2e-2, atol=2e-2), "float32": dict(rtol=1e-5, atol=1e-5)}.get(dtype, {})


@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_forward(line):
    """Every dtype (torch's exception type where it refuses one) and every shape variant."""
    for dtype in line.dtypes:
        for k, specs in enumerate(line.variants):
            check(_fn(line), *_inputs(specs, dtype, seed=k), **_tol(dtype))
    if line.special:  # NaN, inf and -0.0 among the inputs
        check(_fn(line), *_inputs(line.variants[0], "float32", seed=7, special=True))


@pytest.mark.parametrize("line", LINES, ids=IDS)
def test_forward_non_contiguous(line):
    for layout in ("transposed", "strided"):
        check(_fn(line), *_inputs(line.variants[0], "float64", layout, seed=3))


def _leaves(lib_pairs, specs):
    """Float inputs (T) become leaves that require grad, keeping their layout."""
    out_t, out_v, leaves_t, leaves_v = [], [], [], []
    for (t, v), spec in zip(lib_pairs, specs):
        if type(spec) is T:
            t, v = t.detach().requires_grad_(), v.detach().requires_grad_()
            leaves_t.append(t)
            leaves_v.append(v)
        out_t.append(t)
        out_v.append(v)
    return (out_t, leaves_t), (out_v, leaves_v)


def _grads(lib, fn, ins, leaves, create_graph=False):
    out = fn(lib, *ins)
    outs = out if isinstance(out, tuple) else (out,)
    outs = [o for o in outs if o.requires_grad]
    rng = np.random.default_rng(11)
    g_outs = [lib.tensor(rng.uniform(-1, 1, tuple(o.shape)), dtype=o.dtype) for o in outs]
    return lib.autograd.grad(outs, leaves, g_outs, allow_unused=True, create_graph=create_graph)


def _differentiable(line):
    return any(type(s) is T for s in line.variants[0]) and line.name not in NOT_DIFFERENTIABLE


NOT_DIFFERENTIABLE = {"one_hot", "one_hot_classes"}
GRAD_LINES = [line for line in LINES if _differentiable(line)]
# gradients that are not the derivative by design: no gradient to the padding row, scaled by frequency
NOT_THE_DERIVATIVE = {"embedding_padding", "embedding_negative_padding", "embedding_scale_grad"}
GRADCHECK_LINES = [line for line in GRAD_LINES if line.name not in NOT_THE_DERIVATIVE]


@pytest.mark.parametrize("line", GRAD_LINES, ids=[line.name for line in GRAD_LINES])
def test_gradient(line):
    fn = _fn(line)
    for dtype, layout in (("float64", "contiguous"), ("float32", "transposed"), ("float64", "strided")):
        for k, specs in enumerate(line.variants[:2] if layout == "contiguous" else line.variants[:1]):
            (t_ins, t_leaves), (v_ins, v_leaves) = _leaves(_inputs(specs, dtype, layout, seed=k), specs)
            expected = _grads(torch, fn, t_ins, t_leaves)
            got = _grads(vt, fn, v_ins, v_leaves)
            assert_same(got, expected, **_tol(dtype))


@pytest.mark.parametrize("line", GRADCHECK_LINES, ids=[line.name for line in GRADCHECK_LINES])
def test_gradcheck(line):
    specs = line.variants[0]
    (_, _), (v_ins, v_leaves) = _leaves(_inputs(specs, "float64", seed=5), specs)
    positions = [i for i, s in enumerate(specs) if type(s) is T]

    def f(*leaves):
        ins = list(v_ins)
        for i, leaf in zip(positions, leaves):
            ins[i] = leaf
        out = line.fn(vt.nn.functional, *ins)
        return tuple(o for o in out if o.requires_grad) if isinstance(out, tuple) else out
    assert vt.autograd.gradcheck(f, v_leaves)


SECOND_LINES = [line for line in LINES if line.second]


@pytest.mark.parametrize("line", SECOND_LINES, ids=[line.name for line in SECOND_LINES])
def test_second_derivative(line):
    """grad of (first gradients . v) with create_graph, against torch, in float64."""
    fn = _fn(line)
    specs = line.variants[0]
    (t_ins, t_leaves), (v_ins, v_leaves) = _leaves(_inputs(specs, "float64", seed=9), specs)

    def second(lib, ins, leaves):
        """A first gradient that does not depend on the inputs (piecewise-linear functions) has a zero
        second derivative: torch's backward ops give zeros, our formulas no graph."""
        firsts = _grads(lib, fn, ins, leaves, create_graph=True)
        rng = np.random.default_rng(4)
        vs = [lib.tensor(rng.uniform(-1, 1, tuple(g.shape)), dtype=g.dtype) for g in firsts]
        pairs = [(g, v) for g, v in zip(firsts, vs) if g is not None and g.requires_grad]
        if not pairs:
            return tuple(lib.zeros_like(x) for x in leaves)
        return lib.autograd.grad([g for g, _ in pairs], leaves, [v for _, v in pairs], allow_unused=True,
                                 materialize_grads=True)
    assert_same(second(vt, v_ins, v_leaves), second(torch, t_ins, t_leaves), rtol=1e-6, atol=1e-7)


def test_gradgradcheck_fused_ops():
    """Second derivatives of the fused ops against finite differences of their first derivatives."""
    rng = np.random.default_rng(0)
    x = vt.tensor(rng.uniform(-2, 2, (3, 4)), requires_grad=True)
    w = vt.tensor(rng.uniform(0.5, 1.5, (4,)), requires_grad=True)
    t = vt.tensor([0, 3, 1])
    F = vt.nn.functional
    for f, ins in ((lambda a: F.softmax(a, 1), (x,)), (lambda a: F.log_softmax(a, 0), (x,)),
                   (lambda a: F.cross_entropy(a, t, label_smoothing=0.1), (x,)),
                   (lambda a, b: F.layer_norm(a, (4,), b), (x, w)), (lambda a: F.gelu(a), (x,))):
        assert vt.autograd.gradgradcheck(f, ins)


# -- in-place forms: the result is the input, written through; autograd goes through them ----------------------
INPLACE = [
    ("relu", lambda F, x: F.relu(x, inplace=True)),
    ("relu_", lambda F, x: F.relu_(x)),
    ("tensor_relu_", lambda F, x: x.relu_()),
    ("relu6", lambda F, x: F.relu6(x, inplace=True)),
    ("hardtanh_", lambda F, x: F.hardtanh_(x, -0.5, 0.5)),
    ("leaky_relu", lambda F, x: F.leaky_relu(x, 0.3, inplace=True)),
    ("leaky_relu_", lambda F, x: F.leaky_relu_(x)),
    ("elu", lambda F, x: F.elu(x, inplace=True)),
    ("elu_", lambda F, x: F.elu_(x, 2.0)),
    ("selu", lambda F, x: F.selu(x, inplace=True)),
    ("celu", lambda F, x: F.celu(x, 0.5, inplace=True)),
    ("silu", lambda F, x: F.silu(x, inplace=True)),
    ("mish", lambda F, x: F.mish(x, inplace=True)),
    ("hardsigmoid", lambda F, x: F.hardsigmoid(x, inplace=True)),
    ("hardswish", lambda F, x: F.hardswish(x, inplace=True)),
    ("threshold", lambda F, x: F.threshold(x, 0.1, 20.0, inplace=True)),
    ("threshold_", lambda F, x: F.threshold_(x, 0.1, 20.0)),
    ("rrelu_eval", lambda F, x: F.rrelu(x, inplace=True)),
]


@pytest.mark.parametrize("name,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace(name, fn):
    for dtype in ("float32", "int64"):
        t, v = make_pair(D, dtype, "transposed", seed=1)
        check(lambda lib, x: (fn(LIBS[lib], x), x), (t, v))

    def through_non_leaf(lib):  # in-place on a non-leaf: the gradient flows through the rewrite
        a = lib.tensor(np.linspace(-2.5, 2.5, 12).reshape(3, 4), requires_grad=True)
        y = fn(LIBS[lib], a * 1.5)
        return lib.autograd.grad(y, a, lib.ones(3, 4, dtype=lib.float64))
    assert_same(through_non_leaf(vt), through_non_leaf(torch))

    def on_leaf(lib):
        fn(LIBS[lib], lib.ones(2, requires_grad=True))
    check(on_leaf)


# -- errors and edge cases: torch's exception types, or its results (messages checked further below) -----------
def _x(lib, *shape, dtype=None):
    return lib.arange(math.prod(shape), dtype=dtype or lib.float32).reshape(shape) / 7 - 0.5


def _top(lib, name):
    """torch.<name>, or ours before the lead exports it at vibetensor.torch level."""
    return getattr(lib, name, None) or vt.nn.functional.TORCH_FUNCTIONS[name]


def _idx(lib, *values):
    return lib.tensor(values)


ERRORS = [
    ("hardtanh_min_max", lambda F, lib: F.hardtanh(_x(lib, 3), 2.0, 1.0)),
    ("hardtanh_uint8_negative", lambda F, lib: F.hardtanh(lib.ones(3, dtype=lib.uint8))),
    ("relu_bool", lambda F, lib: F.relu(lib.ones(3, dtype=lib.bool))),
    ("softshrink_negative", lambda F, lib: F.softshrink(_x(lib, 3), -1.0)),
    ("gelu_approximate", lambda F, lib: F.gelu(_x(lib, 3), approximate="fast")),
    ("celu_alpha0", lambda F, lib: F.celu(_x(lib, 3), 0.0)),
    ("glu_odd", lambda F, lib: F.glu(_x(lib, 3, 5))),
    ("glu_scalar", lambda F, lib: F.glu(lib.tensor(1.0))),
    ("glu_dim", lambda F, lib: F.glu(_x(lib, 4), 1)),
    ("prelu_channels", lambda F, lib: F.prelu(_x(lib, 2, 3), lib.ones(4))),
    ("prelu_weight_2d", lambda F, lib: F.prelu(_x(lib, 2, 3), lib.ones(1, 3))),
    ("prelu_dtype", lambda F, lib: F.prelu(_x(lib, 2, 3), lib.ones(3, dtype=lib.float64))),
    ("prelu_int", lambda F, lib: F.prelu(lib.tensor([-1, 2]), lib.tensor([1]))),
    ("softmax_dim", lambda F, lib: F.softmax(_x(lib, 2, 3), 2)),
    ("softmax_int", lambda F, lib: F.softmax(lib.tensor([1, 2]), 0)),
    ("softmax_top_level_dim", lambda F, lib: _top(lib, "softmax")(_x(lib, 2, 3))),
    ("log_softmax_int_dtype_ok", lambda F, lib: F.log_softmax(lib.tensor([1, 2]), 0, dtype=lib.float64)),
    ("nll_0d_input", lambda F, lib: F.nll_loss(lib.tensor(1.0), _idx(lib, 0))),
    ("nll_target_out_of_range", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 5))),
    ("nll_target_negative", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, -1, 0))),
    ("nll_nd_out_of_range", lambda F, lib: F.nll_loss(_x(lib, 2, 3, 4), lib.full((2, 4), 3))),
    ("nll_target_float", lambda F, lib: F.nll_loss(_x(lib, 3, 5), lib.tensor([1.0, 0.0, 1.0]))),
    ("nll_target_int32", lambda F, lib: F.nll_loss(_x(lib, 3, 5), lib.tensor([1, 0, 1], dtype=lib.int32))),
    ("nll_batch", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0))),
    ("nll_1d_input_1d_target", lambda F, lib: F.nll_loss(_x(lib, 5), _idx(lib, 3), reduction="none")),
    ("nll_1d_input_long_target", lambda F, lib: F.nll_loss(_x(lib, 5), _idx(lib, 3, 1))),
    ("ce_1d_input_1d_target", lambda F, lib: F.cross_entropy(_x(lib, 5), _idx(lib, 3), label_smoothing=0.1)),
    ("nll_2d_target", lambda F, lib: F.nll_loss(_x(lib, 3, 5), lib.ones(3, 2, dtype=lib.int64))),
    ("nll_nd_target_shape", lambda F, lib: F.nll_loss(_x(lib, 2, 3, 4), lib.zeros(2, 5, dtype=lib.int64))),
    ("nll_4d_target_shape", lambda F, lib: F.nll_loss(_x(lib, 2, 3, 2, 2), lib.zeros(2, 2, 3, dtype=lib.int64))),
    ("nll_4d_target_ndim", lambda F, lib: F.nll_loss(_x(lib, 2, 3, 2, 2), lib.zeros(2, 4, dtype=lib.int64))),
    ("nll_weight_size", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 4), lib.ones(4))),
    ("nll_weight_dtype", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 4), lib.ones(5, dtype=lib.float64))),
    ("nll_reduction", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 4), reduction="avg")),
    ("nll_int_input", lambda F, lib: F.nll_loss(_x(lib, 3, 5).long(), _idx(lib, 1, 0, 4))),
    ("nll_all_ignored_mean_is_nan", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, -100, -100, -100))),
    ("nll_legacy_flags", lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 4), size_average=False)),
    ("ce_out_of_range", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _idx(lib, 1, 0, 5))),
    ("ce_int_input", lambda F, lib: F.cross_entropy(_x(lib, 3, 5).long(), _idx(lib, 1, 0, 4))),
    ("ce_smoothing", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _idx(lib, 1, 0, 4), label_smoothing=1.5)),
    ("ce_negative_smoothing", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _idx(lib, 1, 0, 4), label_smoothing=-.5)),
    ("ce_probs_int", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), lib.ones(3, 5, dtype=lib.int64))),
    ("ce_probs_ignore", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _x(lib, 3, 5), ignore_index=1)),
    ("ce_probs_weight", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _x(lib, 3, 5), lib.ones(4))),
    ("ce_probs_shape", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _x(lib, 3, 4))),
    ("ce_all_ignored_smoothing", lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _idx(lib, -100, -100, -100),
                                                                label_smoothing=0.1)),
    ("mse_int", lambda F, lib: F.mse_loss(_x(lib, 3).long(), _x(lib, 3).long())),
    ("mse_shapes", lambda F, lib: F.mse_loss(_x(lib, 3, 5), _x(lib, 4))),
    ("mse_weight_shape", lambda F, lib: F.mse_loss(_x(lib, 3), _x(lib, 3), weight=lib.ones(2))),
    ("l1_int_mean", lambda F, lib: F.l1_loss(_x(lib, 3).long(), _x(lib, 3).long())),
    ("l1_int_sum", lambda F, lib: F.l1_loss(_x(lib, 3).long() * 3, _x(lib, 3).long(), reduction="sum")),
    ("smooth_l1_beta", lambda F, lib: F.smooth_l1_loss(_x(lib, 3), _x(lib, 3), beta=-1.0)),
    ("smooth_l1_int", lambda F, lib: F.smooth_l1_loss(_x(lib, 3).long(), _x(lib, 3).long())),
    ("huber_delta", lambda F, lib: F.huber_loss(_x(lib, 3), _x(lib, 3), delta=0.0)),
    ("huber_reduction", lambda F, lib: F.huber_loss(_x(lib, 3), _x(lib, 3), reduction="max")),
    ("soft_margin_int", lambda F, lib: F.soft_margin_loss(_x(lib, 3).long(), _x(lib, 3).long())),
    ("kl_div_int", lambda F, lib: F.kl_div(_x(lib, 3).long(), _x(lib, 3).long(), reduction="sum")),
    ("bce_range", lambda F, lib: F.binary_cross_entropy(_x(lib, 3) * 4, _x(lib, 3).abs())),
    ("bce_size", lambda F, lib: F.binary_cross_entropy(_x(lib, 3, 5).sigmoid(), _x(lib, 5).sigmoid())),
    ("bce_target_dtype", lambda F, lib: F.binary_cross_entropy(_x(lib, 3).sigmoid(), _x(lib, 3).double())),
    ("bce_int_target", lambda F, lib: F.binary_cross_entropy(_x(lib, 3).sigmoid(), _x(lib, 3).long())),
    ("bce_logits_size", lambda F, lib: F.binary_cross_entropy_with_logits(_x(lib, 3, 5), _x(lib, 5))),
    ("bce_logits_int_target", lambda F, lib: F.binary_cross_entropy_with_logits(_x(lib, 3), _x(lib, 3).long())),
    ("bce_logits_weight_grad", lambda F, lib: F.binary_cross_entropy_with_logits(
        _x(lib, 3), _x(lib, 3), _x(lib, 3).requires_grad_())),
    ("bce_logits_pos_weight_grad", lambda F, lib: F.binary_cross_entropy_with_logits(
        _x(lib, 3), _x(lib, 3), pos_weight=_x(lib, 3).requires_grad_())),
    ("ln_shape", lambda F, lib: F.layer_norm(_x(lib, 3, 5), (4,))),
    ("ln_empty_shape", lambda F, lib: F.layer_norm(_x(lib, 3, 5), ())),
    ("ln_int_shape", lambda F, lib: F.layer_norm(_x(lib, 3, 5), 5)),
    ("ln_weight", lambda F, lib: F.layer_norm(_x(lib, 3, 5), (5,), lib.ones(4))),
    ("ln_bias", lambda F, lib: F.layer_norm(_x(lib, 3, 5), (5,), None, lib.ones(4))),
    ("ln_int", lambda F, lib: F.layer_norm(_x(lib, 3, 5).long(), (5,))),
    ("ln_mixed", lambda F, lib: F.layer_norm(_x(lib, 3, 5), (5,), lib.ones(5, dtype=lib.float64))),
    ("rms_shape", lambda F, lib: F.rms_norm(_x(lib, 3, 5), (4,))),
    ("rms_int", lambda F, lib: F.rms_norm(_x(lib, 3, 5).long(), (5,))),
    ("gn_groups", lambda F, lib: F.group_norm(_x(lib, 2, 6, 3), 4)),
    ("gn_1d", lambda F, lib: F.group_norm(_x(lib, 6), 3)),
    ("gn_weight", lambda F, lib: F.group_norm(_x(lib, 2, 6, 3), 3, lib.ones(5))),
    ("gn_one_value", lambda F, lib: F.group_norm(_x(lib, 1, 3), 3)),
    ("bn_eval_no_stats", lambda F, lib: F.batch_norm(_x(lib, 3, 5), None, None)),
    ("bn_one_value", lambda F, lib: F.batch_norm(_x(lib, 1, 3), None, None, training=True)),
    ("bn_stats_size", lambda F, lib: F.batch_norm(_x(lib, 3, 5), lib.zeros(4), lib.ones(4))),
    ("bn_weight_size", lambda F, lib: F.batch_norm(_x(lib, 3, 5), lib.zeros(5), lib.ones(5), lib.ones(4))),
    ("bn_eps", lambda F, lib: F.batch_norm(_x(lib, 3, 5), None, None, training=True, eps=0.0)),
    ("bn_int", lambda F, lib: F.batch_norm(_x(lib, 3, 5).long(), lib.zeros(5), lib.ones(5))),
    ("in_spatial", lambda F, lib: F.instance_norm(_x(lib, 2, 3, 1))),
    ("in_eval_no_stats", lambda F, lib: F.instance_norm(_x(lib, 2, 3, 4), use_input_stats=False)),
    ("dropout_p", lambda F, lib: F.dropout(_x(lib, 3), 1.5)),
    ("dropout_int", lambda F, lib: F.dropout(_x(lib, 3).long(), 0.5)),
    ("dropout1d_dims", lambda F, lib: F.dropout1d(_x(lib, 2, 3, 4, 5))),
    ("embedding_range", lambda F, lib: F.embedding(_idx(lib, 5), _x(lib, 3, 2))),
    ("embedding_negative", lambda F, lib: F.embedding(_idx(lib, -1), _x(lib, 3, 2))),
    ("embedding_float_indices", lambda F, lib: F.embedding(lib.tensor([1.0]), _x(lib, 3, 2))),
    ("embedding_int32_indices", lambda F, lib: F.embedding(lib.tensor([1], dtype=lib.int32), _x(lib, 3, 2))),
    ("embedding_padding", lambda F, lib: F.embedding(_idx(lib, 1), _x(lib, 3, 2), padding_idx=3)),
    ("embedding_padding_negative", lambda F, lib: F.embedding(_idx(lib, 1), _x(lib, 3, 2), padding_idx=-4)),
    ("embedding_weight_1d", lambda F, lib: F.embedding(_idx(lib, 1), _x(lib, 3))),
    ("one_hot_int32", lambda F, lib: F.one_hot(lib.tensor([0, 2], dtype=lib.int32))),
    ("one_hot_negative", lambda F, lib: F.one_hot(_idx(lib, 0, -2))),
    ("one_hot_too_big", lambda F, lib: F.one_hot(_idx(lib, 0, 5), 3)),
    ("one_hot_empty", lambda F, lib: F.one_hot(lib.zeros(0, dtype=lib.int64))),
    ("cosine_int", lambda F, lib: F.cosine_similarity(_idx(lib, 1, 2), _idx(lib, 2, 3), dim=0)),
    ("cosine_dim", lambda F, lib: F.cosine_similarity(_x(lib, 3), _x(lib, 3))),
    ("normalize_int", lambda F, lib: F.normalize(_x(lib, 2, 3).long())),
    ("normalize_dim", lambda F, lib: F.normalize(_x(lib, 3))),
    ("bn_empty_batch", lambda F, lib: _with_stats(lib, 3, lambda m, v: F.batch_norm(lib.ones(0, 3), m, v,
                                                                                    training=True))),
    ("bn_1d", lambda F, lib: F.batch_norm(lib.ones(3), None, None, training=True)),
    ("bn_0d", lambda F, lib: F.batch_norm(lib.tensor(1.0), None, None, training=True)),
    ("bn_0d_eval", lambda F, lib: F.batch_norm(lib.tensor(1.0), lib.zeros(0), lib.ones(0))),
    ("bn_1d_eval", lambda F, lib: F.batch_norm(lib.ones(3), lib.zeros(0), lib.ones(0))),
    # no elements: torch skips every check and returns x.clone() * weight[0] + bias[0]
    ("bn_empty_1d", lambda F, lib: F.batch_norm(lib.ones(0), lib.zeros(0), lib.ones(0), training=True)),
    ("bn_empty_1d_eval", lambda F, lib: F.batch_norm(lib.ones(0), None, None, lib.ones(3), lib.ones(2))),
    ("bn_empty_wrong_stats", lambda F, lib: F.batch_norm(lib.ones(0, 3), lib.zeros(4), lib.ones(4), training=True)),
    ("bn_empty_int", lambda F, lib: F.batch_norm(lib.ones(0, 3).long(), None, None, lib.ones(3).double())),
    ("bn_empty_weight_2d", lambda F, lib: F.batch_norm(lib.ones(0, 3), None, None, lib.ones(3, 2))),
    ("bn_empty_weight_0d", lambda F, lib: F.batch_norm(lib.ones(0, 3), None, None, lib.tensor(2.0))),
    ("bn_empty_weight_empty", lambda F, lib: F.batch_norm(lib.ones(0), None, None, lib.ones(0), training=True)),
    ("bn_top_empty", lambda F, lib: _top(lib, "batch_norm")(lib.ones(0, 2, 0), None, lib.ones(2), None, None,
                                                             False, 0.1, 1e-5, False)),
    ("gn_zero_groups", lambda F, lib: F.group_norm(lib.ones(2, 4), 0)),
    ("one_hot_empty_zero_classes", lambda F, lib: F.one_hot(lib.zeros(0, dtype=lib.int64), 0)),
    ("nll_zero_weights", lambda F, lib: F.nll_loss(lib.ones(2, 3), _idx(lib, 0, 1), lib.zeros(3))),
    ("ce_uint8_target", lambda F, lib: F.cross_entropy(_x(lib, 2, 3), lib.tensor([0, 2], dtype=lib.uint8))),
    ("ce_probs_empty", lambda F, lib: F.cross_entropy(lib.ones(0, 3), lib.ones(0, 3))),
    ("softmax_to_half", lambda F, lib: F.softmax(_x(lib, 2, 3), 1, dtype=lib.float16)),
    ("softmax_all_neg_inf", lambda F, lib: F.softmax(lib.full((2, 3), -math.inf), 1)),
    ("log_softmax_neg_inf", lambda F, lib: F.log_softmax(lib.tensor([-math.inf, 1.0, 2.0]), 0)),
    ("embedding_renorm_inf", lambda F, lib: _with_weight(lib, lambda w: F.embedding(_idx(lib, 0, 1), w, max_norm=0.5,
                                                                                       norm_type=math.inf))),
    ("embedding_renorm_p1", lambda F, lib: _with_weight(lib, lambda w: F.embedding(_idx(lib, 0, 1, 1), w, max_norm=1.0,
                                                                                      norm_type=1.0))),
    ("threshold_value_overflow", lambda F, lib: F.threshold(lib.ones(3, dtype=lib.float16), 0.5, 1e6)),
    ("threshold_uint8_value", lambda F, lib: F.threshold(lib.ones(3, dtype=lib.uint8), 0.5, -2.0)),
    ("cosine_broadcast", lambda F, lib: F.cosine_similarity(lib.ones(2, 3), lib.ones(4))),
    ("pairwise_int", lambda F, lib: F.pairwise_distance(lib.ones(2, 3, dtype=lib.int64),
                                                        lib.ones(2, 3, dtype=lib.int64))),
    ("in_stats_size", lambda F, lib: F.instance_norm(lib.ones(2, 3, 4), lib.zeros(4), lib.ones(4))),
    ("gaussian_nll_negative_var", lambda F, lib: F.gaussian_nll_loss(lib.ones(3), lib.ones(3), -1.0)),
    ("kl_batchmean_0d", lambda F, lib: F.kl_div(lib.tensor(-1.0), lib.tensor(0.5), reduction="batchmean")),
    ("kl_reduction", lambda F, lib: F.kl_div(lib.ones(2), lib.ones(2), reduction="max")),
    ("kl_complex", lambda F, lib: F.kl_div(lib.ones(2, dtype=lib.complex64), lib.ones(2, dtype=lib.complex64))),
    ("hinge_uint8_mean", lambda F, lib: F.hinge_embedding_loss(lib.ones(3, dtype=lib.uint8), lib.ones(3))),
    ("dropout1d_p1_inplace", lambda F, lib: (lambda x: (F.dropout1d(x, 1.0, inplace=True), x))(lib.ones(3, 4))),
    ("dropout2d_2d_no_op", lambda F, lib: F.dropout2d(lib.ones(3, 4), 0.0)),
    ("alpha_dropout_p1", lambda F, lib: F.alpha_dropout(lib.ones(3, 4), 1.0, training=True)),
    ("mse_weight_uint8", lambda F, lib: F.mse_loss(lib.ones(3, dtype=lib.uint8), lib.zeros(3, dtype=lib.uint8),
                                                   weight=lib.ones(3, dtype=lib.uint8))),
    ("rms_norm_complex", lambda F, lib: F.rms_norm(lib.tensor([[1 + 2j, 3 - 1j]]), (2,))),
]


def _with_stats(lib, c, fn):
    mean, var = lib.zeros(c), lib.ones(c)
    return fn(mean, var), mean, var


def _with_weight(lib, fn):
    w = lib.arange(6.0).reshape(3, 2)
    return fn(w), w


@pytest.mark.parametrize("name,fn", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_and_edges(name, fn):
    check(lambda lib: fn(LIBS[lib], lib))


def test_error_messages_match_torch():
    F = vt.nn.functional
    cases = [
        (lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0, 5)), IndexError),
        (lambda F, lib: F.embedding(_idx(lib, 5), _x(lib, 3, 2)), IndexError),
        (lambda F, lib: F.layer_norm(_x(lib, 3, 5), (4,)), RuntimeError),
        (lambda F, lib: F.group_norm(_x(lib, 2, 6, 3), 4), RuntimeError),
        (lambda F, lib: F.batch_norm(_x(lib, 3, 5), lib.zeros(4), lib.ones(4)), RuntimeError),
        (lambda F, lib: F.cross_entropy(_x(lib, 3, 5), _idx(lib, 1, 0, 4), label_smoothing=1.5), RuntimeError),
        (lambda F, lib: F.one_hot(_idx(lib, 0, -2)), RuntimeError),
        (lambda F, lib: F.glu(_x(lib, 3, 5)), RuntimeError),
        (lambda F, lib: F.prelu(_x(lib, 2, 3), lib.ones(4)), RuntimeError),
        (lambda F, lib: F.nll_loss(_x(lib, 3, 5), _idx(lib, 1, 0)), ValueError),
    ]
    for fn, exc in cases:
        with pytest.raises(exc) as theirs:
            fn(torch.nn.functional, torch)
        with pytest.raises(exc) as ours:
            fn(F, vt)
        assert str(ours.value) == str(theirs.value)


def test_failed_ops_leave_inputs_unchanged():
    w = vt.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(IndexError):
        vt.nn.functional.embedding(vt.tensor([0, 7]), w, max_norm=1.0)
    assert w.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    x = vt.tensor([-1.0, 2.0])
    with pytest.raises(RuntimeError):
        vt.nn.functional.hardtanh(x.to(vt.uint8), -1.0, 1.0, inplace=True)
    mean, var = vt.zeros(5), vt.ones(5)
    with pytest.raises(RuntimeError):
        vt.nn.functional.batch_norm(vt.ones(3, 5).long(), mean, var, training=True)
    assert mean.tolist() == [0.0] * 5 and var.tolist() == [1.0] * 5


def test_implicit_softmax_dim_warns():
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax has been deprecated"):
        vt.nn.functional.softmax(vt.ones(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vt.nn.functional.softmax(vt.ones(2, 3), 1)


def test_kl_div_mean_warns_and_legacy_flags():
    x, p = vt.zeros(2, 3), vt.ones(2, 3) / 3
    with pytest.warns(UserWarning, match="'mean' divides the total loss"):
        vt.nn.functional.kl_div(x, p)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        out = vt.nn.functional.mse_loss(x, p, reduce=False)
    assert tuple(out.shape) == (2, 3)


# -- stateful and random functions ---------------------------------------------------------------------------

def test_batch_norm_running_stats_over_steps():
    """Several training steps then evaluation: running mean/var (unbiased) follow torch's."""
    rng = np.random.default_rng(0)
    state = {lib: (lib.zeros(3), lib.ones(3)) for lib in (torch, vt)}
    for step in range(4):
        a = rng.normal(step, 1 + step, (6, 3, 2)).astype(np.float32)
        for lib in (torch, vt):
            out = LIBS[lib].batch_norm(lib.tensor(a), *state[lib], training=True, momentum=0.25)
            if lib is torch:
                expected = out
        assert_same(out, expected)
        assert_same(state[vt], state[torch])
    a = rng.normal(0, 1, (4, 3, 2)).astype(np.float32)
    assert_same(LIBS[vt].batch_norm(vt.tensor(a), *state[vt]), LIBS[torch].batch_norm(torch.tensor(a), *state[torch]))


def test_embedding_padding_and_max_norm():
    rng = np.random.default_rng(1)
    w0 = rng.normal(0, 2, (6, 3))
    idx = np.array([[0, 2, 2], [5, 1, 2]])

    def run(lib):
        w = lib.tensor(w0, requires_grad=True)
        y = LIBS[lib].embedding(lib.tensor(idx), w, padding_idx=2, max_norm=1.5)  # renorms w's rows in place
        g, = lib.autograd.grad((y * y).sum(), w)
        return y, g, w.detach()
    ours, theirs = run(vt), run(torch)
    assert_same(ours, theirs)
    assert not ours[1][2].abs().sum().item()  # no gradient reaches the padding row


def test_batch_norm_of_nothing_reaches_its_parameters():
    """An empty input's batch_norm is torch's clone * weight[0] + bias[0]: empty input gradient, zero
    parameter gradients, and the running statistics untouched."""
    def run(lib):
        x = lib.ones(0, 3, requires_grad=True)
        w, b = lib.full((3,), 2.0, requires_grad=True), lib.ones(3, requires_grad=True)
        mean, var = lib.zeros(3), lib.ones(3)
        y = lib.nn.functional.batch_norm(x, mean, var, w, b, training=True)
        return (y, *lib.autograd.grad(y.sum(), [x, w, b]), mean, var)
    assert_same(run(vt), run(torch))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_with_logits_half_gradients_round_like_torch(reduction, dtype):
    """torch's formulas step by step ((sigmoid(x) - t) * grad * w / n; -x * grad * w / n, and the
    pos_weight forms), each rounded to the dtype: ours must round the same, bit for bit."""
    rng = np.random.default_rng(3)
    x, t = rng.normal(0, 3, (6, 5)).astype(np.float32), rng.uniform(0, 1, (6, 5)).astype(np.float32)
    w, pw = rng.uniform(0, 2, 5).astype(np.float32), rng.uniform(0, 3, 5).astype(np.float32)
    g = rng.standard_normal((6, 5) if reduction == "none" else ()).astype(np.float32)

    def grads(lib, pos_weight):
        ins = [lib.tensor(a).to(getattr(lib, dtype)).requires_grad_() for a in (x, t)]
        w_, pw_ = (lib.tensor(a).to(getattr(lib, dtype)) for a in (w, pw))
        out = lib.nn.functional.binary_cross_entropy_with_logits(*ins, w_, reduction=reduction,
                                                                 pos_weight=pw_ if pos_weight else None)
        return lib.autograd.grad(out, ins, lib.tensor(g).to(getattr(lib, dtype)))
    for pos_weight in (False, True):
        assert_same(grads(vt, pos_weight), grads(torch, pos_weight), rtol=0, atol=0)


def test_dropout_statistics_and_gradient():
    F = vt.nn.functional
    vt.manual_seed(0)
    x = vt.ones(200, 100, dtype=vt.float64, requires_grad=True)
    y = F.dropout(x, 0.3)
    values = np.asarray(y.detach().cpu())
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert np.allclose(values[kept], 1 / 0.7)
    g, = vt.autograd.grad(y.sum(), x)
    assert np.array_equal(np.asarray(g), values)  # the mask, rescaled
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    assert F.dropout(vt.ones(0), 0.5).shape == (0,)
    assert not F.dropout(x, 1.0).detach().abs().sum().item()
    z = vt.ones(4, 5)
    assert F.dropout(z, 0.5, inplace=True) is z and set(np.unique(np.asarray(z))) <= {0.0, 2.0}


def test_dropout_variants():
    F = vt.nn.functional
    vt.manual_seed(1)
    x = vt.ones(64, 32, 3, 3)
    y = np.asarray(F.dropout2d(x, 0.5))
    per_channel = y.reshape(64, 32, 9)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # whole channels dropped or kept
    assert abs((per_channel[..., 0] != 0).mean() - 0.5) < 0.05
    assert F.dropout1d(vt.ones(4, 6), 0.5).shape == (4, 6)
    assert F.dropout3d(vt.ones(2, 3, 2, 2, 2), 0.5).shape == (2, 3, 2, 2, 2)
    a = F.alpha_dropout(vt.randn(20000, dtype=vt.float64), 0.2, training=True)
    assert abs(a.mean().item()) < 0.05 and abs(a.std().item() - 1) < 0.05  # SELU's fixed point kept
    assert F.alpha_dropout(x, 0.2) is x  # training defaults to False
    f = np.asarray(F.feature_alpha_dropout(vt.ones(8, 4, 5), 0.5, training=True))
    assert (f.min(-1) == f.max(-1)).all()
    top = vt.nn.functional.TORCH_FUNCTIONS["dropout"]
    assert top(x, 0.5, False) is x


def test_rrelu_training():
    vt.manual_seed(2)
    x = vt.tensor(np.linspace(-3, 3, 1000), requires_grad=True)
    y = vt.nn.functional.rrelu(x, 0.1, 0.3, training=True)
    slope = np.asarray(y.detach()) / np.asarray(x.detach())
    neg = np.asarray(x.detach()) < 0
    assert (slope[~neg] == 1).all() and (slope[neg] >= 0.1).all() and (slope[neg] <= 0.3).all()
    g, = vt.autograd.grad(y.sum(), x)
    assert np.allclose(np.asarray(g), slope)


def test_torch_level_functions():
    top = vt.nn.functional.TORCH_FUNCTIONS
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 4)).astype(np.float32)
    w = rng.normal(size=(4,)).astype(np.float32)
    pairs = [
        (lambda lib, x: lib.softmax(x, 1), "softmax"), (lambda lib, x: lib.log_softmax(x, 0), "log_softmax"),
        (lambda lib, x: lib.layer_norm(x, (4,)), "layer_norm"),
        (lambda lib, x: lib.group_norm(x.reshape(3, 4, 1), 2), "group_norm"),
        (lambda lib, x: lib.selu(x), "selu"), (lambda lib, x: lib.celu(x, 0.5), "celu"),
        (lambda lib, x: lib.hardshrink(x, 0.3), "hardshrink"), (lambda lib, x: lib.threshold(x, 0.1, 2.0), "threshold"),
        (lambda lib, x: lib.cosine_similarity(x, x + 1), "cosine_similarity"),
        (lambda lib, x: lib.pairwise_distance(x, x * 2), "pairwise_distance"),
        (lambda lib, x: lib.kl_div(x, x.exp(), 2), "kl_div"),
        (lambda lib, x: lib.binary_cross_entropy_with_logits(x, x.sigmoid(), None, None, 0),
         "binary_cross_entropy_with_logits"),
        (lambda lib, x: lib.embedding(x, lib.tensor([0, 2])), "embedding"),
        (lambda lib, x: lib.batch_norm(x, None, None, lib.zeros(4), lib.ones(4), False, 0.1, 1e-5, True),
         "batch_norm"),
        (lambda lib, x: lib.prelu(x, lib.tensor(w[:1])), "prelu"),
    ]
    for fn, name in pairs:
        ours = fn(type("Top", (), {**{k: staticmethod(v) for k, v in top.items()}, "tensor": staticmethod(vt.tensor),
                                   "zeros": staticmethod(vt.zeros), "ones": staticmethod(vt.ones)}), vt.tensor(a))
        assert_same(ours, fn(torch, torch.tensor(a)))
    assert set(top) <= set(dir(torch)), set(top) - set(dir(torch))


def test_methods():
    t, v = make_pair((3, 4), "float32", "transposed", 2)
    check(lambda lib, x: (x.softmax(1), x.log_softmax(0), x.hardshrink(0.2), x.relu()), (t, v))
