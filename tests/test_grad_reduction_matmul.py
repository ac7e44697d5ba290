"""Derivatives of the reductions and the matmul family against torch: one table line per case.
Each case runs the same function on the same inputs in both libraries, backpropagates a
random-weighted sum of the float outputs and compares every input's .grad; then gradcheck in
float64, and for the listed ones second derivatives (against torch and gradgradcheck)."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same

D = (-2.0, 2.0)
POS = (0.5, 2.0)
TIES = "ties"      # small integers: equal elements (max/amax ties, zeros for prod)
ZEROS = "zeros"    # values with exact zeros among them (prod, norms at 0)


def _arrays(shapes, seed, domain, dtype="float64"):
    rng = np.random.default_rng(seed)
    if domain == TIES:
        return [rng.integers(-2, 3, s).astype(dtype) for s in shapes]
    if domain == ZEROS:
        return [np.where(rng.random(s) < 0.3, 0.0, rng.uniform(-2, 2, s)).astype(dtype) for s in shapes]
    return [rng.uniform(*domain, s).astype(dtype) for s in shapes]


def _outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if o.dtype.is_floating_point]


def _weighted_sum(lib, out, seed=7):
    """sum_k <w_k, out_k> with fixed random weights w_k (one per float output)."""
    rng = np.random.default_rng(seed)
    total = 0
    for o in _outputs(out):
        w = lib.tensor(rng.uniform(-1, 1, tuple(o.shape)), dtype=o.dtype)
        total = total + (o * w).sum()
    return total


def _grads(lib, fn, arrays):
    ins = [lib.tensor(a, requires_grad=True) for a in arrays]
    _weighted_sum(lib, fn(lib, *ins)).backward()
    return [x.grad for x in ins]


# (id, fn(lib, *inputs), input shapes, domain)
M = (3, 4)
CASES = [
    ("sum", lambda lib, x: x.sum(), [M], D),
    ("sum_dim", lambda lib, x: x.sum(1), [M], D),
    ("sum_dims_keepdim", lambda lib, x: x.sum((0, 2), keepdim=True), [(2, 3, 4)], D),
    ("sum_neg_dim", lambda lib, x: lib.sum(x, -1), [(2, 3, 4)], D),
    ("sum_dtype", lambda lib, x: x.sum(0, dtype=lib.float64), [M], D),
    ("sum_0d", lambda lib, x: x.sum(), [()], D),
    ("sum_empty", lambda lib, x: x.sum(0), [(0, 3)], D),
    ("nansum", lambda lib, x: (x.log()).nansum(1), [M], D),
    ("nansum_all_nan", lambda lib, x: (x.log()).nansum(0), [(2, 3)], (-2.0, -1.0)),
    ("mean", lambda lib, x: x.mean(), [M], D),
    ("mean_dims", lambda lib, x: x.mean((0, -1)), [(2, 3, 4)], D),
    ("mean_keepdim", lambda lib, x: x.mean(1, keepdim=True), [M], D),
    ("nanmean", lambda lib, x: (x.log()).nanmean(0), [(5, 4)], (-1.0, 2.0)),  # some NaN in each column
    ("nanmean_all_nan", lambda lib, x: (x.log()).nanmean(0), [(2, 3)], (-2.0, -1.0)),  # NaN gradients
    ("prod", lambda lib, x: x.prod(), [M], D),
    ("prod_dim", lambda lib, x: x.prod(1), [M], D),
    ("prod_keepdim", lambda lib, x: x.prod(0, keepdim=True), [M], D),
    ("prod_zeros", lambda lib, x: x.prod(1), [(4, 5)], ZEROS),
    ("prod_zeros_all", lambda lib, x: x.prod(), [(2, 3)], ZEROS),
    ("prod_0d", lambda lib, x: x.prod(), [()], D),
    ("amax", lambda lib, x: x.amax(1), [(3, 5)], TIES),
    ("amax_dims", lambda lib, x: lib.amax(x, (0, 2), keepdim=True), [(2, 3, 4)], TIES),
    ("amin", lambda lib, x: x.amin(), [(3, 5)], TIES),
    ("max_all", lambda lib, x: x.max(), [(3, 5)], TIES),
    ("min_all", lambda lib, x: x.min(), [(3, 5)], TIES),
    ("max_dim", lambda lib, x: x.max(1), [(3, 5)], TIES),
    ("min_dim_keepdim", lambda lib, x: lib.min(x, 0, keepdim=True), [(3, 5)], TIES),
    ("max_dim_0d", lambda lib, x: x.max(0), [()], D),
    ("aminmax", lambda lib, x: lib.aminmax(x, dim=1), [(3, 5)], TIES),
    ("aminmax_all", lambda lib, x: lib.aminmax(x), [(3, 5)], TIES),
    ("var", lambda lib, x: x.var(), [M], D),
    ("var_dim", lambda lib, x: x.var(1, correction=0), [M], D),
    ("var_keepdim", lambda lib, x: lib.var(x, (0, 2), keepdim=True, correction=2), [(2, 3, 4)], D),
    ("std", lambda lib, x: x.std(), [M], D),
    ("std_dim", lambda lib, x: x.std(0, unbiased=False), [M], D),
    ("var_mean", lambda lib, x: lib.var_mean(x, 1), [M], D),
    ("std_mean", lambda lib, x: lib.std_mean(x, 0, keepdim=True), [M], D),
    ("logsumexp", lambda lib, x: x.logsumexp(1), [M], D),
    ("logsumexp_dims", lambda lib, x: lib.logsumexp(x, (0, 1), keepdim=True), [(2, 3, 4)], D),
    ("norm", lambda lib, x: x.norm(), [M], D),
    ("norm_zero", lambda lib, x: (x * 0).norm(dim=1), [M], D),
    ("norm_p1", lambda lib, x: x.norm(1, dim=1), [M], ZEROS),
    ("norm_p3", lambda lib, x: x.norm(3, dim=0), [M], ZEROS),
    ("norm_p1_5", lambda lib, x: x.norm(1.5), [M], ZEROS),
    ("norm_p0_5", lambda lib, x: x.norm(0.5, dim=1), [M], ZEROS),
    ("norm_p0", lambda lib, x: x.norm(0), [M], D),
    ("norm_inf", lambda lib, x: x.norm(float("inf"), dim=1), [(3, 5)], TIES),
    ("norm_neg_inf", lambda lib, x: x.norm(float("-inf")), [(3, 5)], TIES),
    ("norm_fro_dims", lambda lib, x: lib.norm(x, "fro", dim=(0, 2), keepdim=True), [(2, 3, 4)], D),
    ("norm_nuc", lambda lib, x: lib.norm(x, "nuc"), [M], D),
    ("norm_fro_3d", lambda lib, x: lib.norm(x, "fro", dim=(0, 2)), [(2, 3, 4)], D),
    ("vector_norm_dtype", lambda lib, x: lib.linalg.vector_norm(x, 2, dtype=lib.float64), [M], D),
    ("mm", lambda lib, a, b: a.mm(b), [(2, 3), (3, 4)], D),
    ("bmm", lambda lib, a, b: lib.bmm(a, b), [(2, 2, 3), (2, 3, 4)], D),
    ("matmul_2d", lambda lib, a, b: a @ b, [(2, 3), (3, 4)], D),
    ("matmul_vv", lambda lib, a, b: a @ b, [(3,), (3,)], D),
    ("matmul_mv", lambda lib, a, b: a @ b, [(2, 3), (3,)], D),
    ("matmul_vm", lambda lib, a, b: a @ b, [(3,), (3, 4)], D),
    ("matmul_fold", lambda lib, a, b: a @ b, [(2, 2, 3), (3, 4)], D),
    ("matmul_fold_v", lambda lib, a, b: a @ b, [(2, 2, 3), (3,)], D),
    ("matmul_fold_t", lambda lib, a, b: a @ b, [(2, 3), (2, 3, 4)], D),
    ("matmul_v_batched", lambda lib, a, b: a @ b, [(3,), (2, 3, 4)], D),
    ("matmul_batched", lambda lib, a, b: lib.matmul(a, b), [(2, 2, 3), (2, 3, 4)], D),
    ("matmul_broadcast", lambda lib, a, b: lib.matmul(a, b), [(2, 1, 2, 3), (4, 3, 5)], D),
    ("matmul_batch1", lambda lib, a, b: lib.matmul(a, b), [(1, 2, 3), (3, 3, 4)], D),
    ("matmul_transposed", lambda lib, a, b: lib.matmul(a.transpose(0, 1), b), [(2, 2, 3), (3, 4)], D),
    ("addmm", lambda lib, c, a, b: lib.addmm(c, a, b), [(2, 4), (2, 3), (3, 4)], D),
    ("addmm_scaled_bcast", lambda lib, c, a, b: lib.addmm(c, a, b, beta=0.5, alpha=-2), [(4,), (2, 3), (3, 4)], D),
    ("addmm_beta0", lambda lib, c, a, b: lib.addmm(c, a, b, beta=0), [(2, 4), (2, 3), (3, 4)], D),
    ("addmv", lambda lib, c, a, b: lib.addmv(c, a, b, beta=2, alpha=1.5), [(2,), (2, 3), (3,)], D),
    ("addmv_bcast", lambda lib, c, a, b: lib.addmv(c, a, b), [(1,), (2, 3), (3,)], D),
    ("mv", lambda lib, a, b: lib.mv(a, b), [(2, 3), (3,)], D),
    ("dot", lambda lib, a, b: lib.dot(a, b), [(3,), (3,)], D),
    ("vdot", lambda lib, a, b: a.vdot(b), [(3,), (3,)], D),
    ("outer", lambda lib, a, b: lib.outer(a, b), [(3,), (4,)], D),
    ("linear", lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(4, 3), (5, 3), (5,)], D),
    ("linear_3d", lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(2, 4, 3), (5, 3), (5,)], D),
    ("linear_4d_nobias", lambda lib, x, w: lib.nn.functional.linear(x, w), [(2, 2, 4, 3), (5, 3)], D),
    ("linear_1d", lambda lib, x, w, b: lib.nn.functional.linear(x, w, b), [(3,), (5, 3), (5,)], D),
    ("baddbmm", lambda lib, c, a, b: lib.baddbmm(c, a, b, beta=0.5, alpha=2), [(2, 4, 3), (2, 4, 5), (2, 5, 3)], D),
    ("baddbmm_bcast", lambda lib, c, a, b: lib.baddbmm(c, a, b), [(3,), (2, 4, 5), (2, 5, 3)], D),
    ("addbmm", lambda lib, c, a, b: lib.addbmm(c, a, b, beta=-1, alpha=0.5), [(4, 3), (2, 4, 5), (2, 5, 3)], D),
    ("addbmm_bcast", lambda lib, c, a, b: lib.addbmm(c, a, b), [(1, 3), (3, 4, 2), (3, 2, 3)], D),
    ("addr", lambda lib, c, a, b: lib.addr(c, a, b, beta=2, alpha=0.5), [(2, 3), (2,), (3,)], D),
    ("addr_bcast", lambda lib, c, a, b: lib.addr(c, a, b), [(3,), (2,), (3,)], D),
    ("inner", lambda lib, a, b: lib.inner(a, b), [(2, 3), (4, 3)], D),
    ("inner_batched", lambda lib, a, b: lib.inner(a, b), [(2, 2, 3), (3,)], D),
    ("inner_vectors", lambda lib, a, b: lib.inner(a, b), [(3,), (3,)], D),
    ("inner_scalar", lambda lib, a, b: lib.inner(a, b), [(), (2, 3)], D),
    ("cross", lambda lib, a, b: lib.linalg.cross(a, b), [(4, 3), (4, 3)], D),
    ("cross_bcast_dim", lambda lib, a, b: lib.cross(a, b, dim=0), [(3, 1), (3, 4)], D),
    ("trace", lambda lib, a: lib.trace(a), [(3, 4)], D),
    ("matrix_exp", lambda lib, a: lib.linalg.matrix_exp(a), [(3, 3)], D),
    ("matrix_exp_batched", lambda lib, a: lib.matrix_exp(a), [(2, 2, 2)], D),
    ("renorm", lambda lib, a: lib.renorm(a, 2, 0, 1.0), [(3, 4)], D),
    ("renorm_p3_dim", lambda lib, a: lib.renorm(a, 3, 1, 1.5), [(2, 3, 2)], D),
    ("renorm_p1", lambda lib, a: lib.renorm(a, 1, 0, 2.0), [(3, 4)], D),
    ("dist", lambda lib, a, b: lib.dist(a, b), [(3, 4), (4,)], D),
    ("dist_p3", lambda lib, a, b: lib.dist(a, b, 3), [(3, 4), (3, 4)], D),
    ("dist_inf", lambda lib, a, b: lib.dist(a, b, float("inf")), [(3, 4), (3, 1)], D),
    ("dist_p1", lambda lib, a, b: a.dist(b, 1), [(3,), (2, 3)], D),
    ("dist_p0", lambda lib, a, b: lib.dist(a, b.detach(), 0), [(3,), (3,)], D),  # no gradient (torch: an error for b)
    ("addcmul", lambda lib, c, a, b: lib.addcmul(c, a, b, value=-1.5), [(3, 1), (4,), (2, 1, 1)], D),
    ("addcdiv", lambda lib, c, a, b: lib.addcdiv(c, a, b, value=0.5), [(3,), (2, 3), (3,)], POS),
    ("matrix_norm_1", lambda lib, a: lib.linalg.matrix_norm(a, 1), [(3, 4)], D),
    ("matrix_norm_inf_dims", lambda lib, a: lib.linalg.matrix_norm(a, float("inf"), dim=(2, 0)), [(3, 2, 4)], D),
    ("matrix_norm_neg1", lambda lib, a: lib.linalg.matrix_norm(a, -1, keepdim=True), [(2, 3, 4)], D),
    ("matrix_norm_fro", lambda lib, a: lib.linalg.matrix_norm(a), [(2, 3, 4)], D),
    ("linalg_norm", lambda lib, a: lib.linalg.norm(a, float("-inf")), [(3, 4)], D),
    ("linalg_vector_norm", lambda lib, a: lib.linalg.vector_norm(a, 4, dim=(0, 1)), [(2, 3, 4)], D),
    ("matrix_norm_nuc", lambda lib, a: lib.linalg.matrix_norm(a, "nuc"), [(2, 4, 3)], D),
    ("matrix_norm_2", lambda lib, a: lib.linalg.matrix_norm(a, 2), [(3, 4)], D),
    ("matrix_norm_neg2", lambda lib, a: lib.linalg.matrix_norm(a, -2, dim=(0, 2)), [(3, 2, 4)], D),
    ("svdvals", lambda lib, a: lib.linalg.svdvals(a), [(2, 3, 5)], D),
    # sign-invariant functions of the singular vectors (each column's sign is arbitrary)
    ("svd_tall", lambda lib, a: [m.abs() for m in lib.linalg.svd(a, full_matrices=False)], [(4, 3)], D),
    ("svd_wide", lambda lib, a: [m.abs() for m in lib.linalg.svd(a, full_matrices=False)], [(2, 3, 4)], D),
    ("svd_square_full", lambda lib, a: [m.abs() for m in lib.linalg.svd(a)], [(3, 3)], D),
    ("svd_full_u", lambda lib, a: lib.linalg.svd(a)[0][:, :2].abs(), [(4, 2)], D),
    ("mvlgamma", lambda lib, a: lib.mvlgamma(a, 3), [(2, 3)], (3.0, 5.0)),
    # in-place forms on non-leaves
    ("addcmul_", lambda lib, c, a, b: (c * 1).addcmul_(a, b, value=2), [(2, 3), (3,), (2, 1)], D),
    ("addcdiv_", lambda lib, c, a, b: (c * 1).addcdiv_(a, b), [(2, 3), (3,), (2, 1)], POS),
    ("baddbmm_", lambda lib, c, a, b: (c * 1).baddbmm_(a, b, alpha=2), [(2, 4, 3), (2, 4, 5), (2, 5, 3)], D),
    ("addbmm_", lambda lib, c, a, b: (c * 1).addbmm_(a, b, beta=3), [(4, 3), (2, 4, 5), (2, 5, 3)], D),
    ("addr_", lambda lib, c, a, b: (c * 1).addr_(a, b), [(2, 3), (2,), (3,)], D),
    ("renorm_", lambda lib, a: (a * 1).renorm_(2, 1, 1.0), [(3, 4)], D),
    ("addmm_", lambda lib, c, a, b: (c * 1).addmm_(a, b, alpha=0.5), [(2, 4), (2, 3), (3, 4)], D),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,fn,shapes,domain", CASES, ids=IDS)
def test_gradient_matches_torch(name, fn, shapes, domain):
    for dtype in ("float64", "float32"):
        arrays = _arrays(shapes, 1, domain, dtype)
        assert_same(_grads(vt, fn, arrays), _grads(torch, fn, arrays))


NO_GRADCHECK = {"nanmean_all_nan"}  # NaN outputs: finite differences are NaN (torch's gradcheck fails too)


@pytest.mark.parametrize("name,fn,shapes,domain", [c for c in CASES if c[0] not in NO_GRADCHECK],
                         ids=[i for i in IDS if i not in NO_GRADCHECK])
def test_gradcheck(name, fn, shapes, domain):
    if domain == TIES:  # not differentiable at ties: check away from them
        domain = D
    ins = [vt.tensor(a, requires_grad=True) for a in _arrays(shapes, 2, domain)]
    assert vt.autograd.gradcheck(lambda *xs: _outputs(fn(vt, *xs)), ins)


SECOND = ["sum", "sum_dim", "mean", "mean_dims", "prod_dim", "prod_zeros", "logsumexp", "var", "var_dim", "std",
          "var_mean", "norm", "norm_p3", "norm_p1_5", "mm", "bmm", "matmul_2d", "matmul_mv", "matmul_fold",
          "matmul_batched", "matmul_broadcast", "addmm", "addmv", "dot", "linear_3d", "amax", "max_dim", "baddbmm",
          "addbmm", "addr", "inner", "cross", "matrix_exp", "renorm", "dist", "dist_p3", "addcmul", "addcdiv",
          "matrix_norm_1", "linalg_vector_norm", "matrix_norm_nuc", "svd_tall", "mvlgamma"]


def _second(lib, fn, arrays):
    ins = [lib.tensor(a, requires_grad=True) for a in arrays]
    firsts = [g for g in lib.autograd.grad(_weighted_sum(lib, fn(lib, *ins)), ins, create_graph=True)
              if g.requires_grad]
    if not firsts:  # the gradient does not depend on the inputs (amax, max): as in torch
        return None
    return lib.autograd.grad(_weighted_sum(lib, firsts, seed=8), ins,
                             allow_unused=True)


@pytest.mark.parametrize("name", SECOND)
def test_second_derivative_matches_torch(name):
    _, fn, shapes, domain = CASES[IDS.index(name)]
    arrays = _arrays(shapes, 3, domain)
    assert_same(_second(vt, fn, arrays), _second(torch, fn, arrays))


@pytest.mark.parametrize("name", ["sum_dim", "mean_dims", "prod_dim", "prod_zeros", "logsumexp", "var_keepdim",
                                  "std", "norm", "norm_p3", "mm", "bmm", "matmul_fold", "matmul_broadcast",
                                  "addmm_scaled_bcast", "addmv", "mv", "linear_3d", "baddbmm_bcast", "addbmm",
                                  "addr", "cross_bcast_dim", "trace", "matrix_exp", "renorm", "dist", "addcmul",
                                  "addcdiv", "matrix_norm_nuc", "matrix_norm_2", "svd_wide"])
def test_gradgradcheck(name):
    _, fn, shapes, domain = CASES[IDS.index(name)]
    ins = [vt.tensor(a, requires_grad=True) for a in _arrays(shapes, 4, D if domain == TIES else domain)]
    assert vt.autograd.gradgradcheck(lambda *xs: _outputs(fn(vt, *xs)), ins)


def test_node_names():
    for lib in (torch, vt):
        x = lib.ones(2, 3, requires_grad=True)
        names = [y.grad_fn.name() for y in (x.sum(), x.sum(1), x.prod(), x.prod(1), x.max(), x.max(1)[0], x.amax(1),
                                            x.var(), x.norm(), x.logsumexp(1), x.mean(), x.mm(x.t().detach()))]
        assert names == ["SumBackward0", "SumBackward1", "ProdBackward0", "ProdBackward1", "MaxBackward1",
                         "MaxBackward0", "AmaxBackward0", "VarBackward0", "LinalgVectorNormBackward0",
                         "LogsumexpBackward0", "MeanBackward0", "MmBackward0"], lib


def test_node_names_of_linalg_ops():
    for lib in (torch, vt):
        x = lib.ones(3, 3, requires_grad=True)
        b = lib.ones(2, 3, 3, requires_grad=True)
        v = lib.ones(3, requires_grad=True)
        names = [y.grad_fn.name() for y in (lib.baddbmm(b, b, b), lib.addbmm(x, b, b), lib.addr(x, v, v),
                                            lib.linalg.cross(x, x), lib.trace(x), lib.linalg.matrix_exp(x),
                                            lib.renorm(x, 2, 0, 1.0), lib.dist(x, v), lib.addcmul(x, x, x),
                                            lib.addcdiv(x, x, x), lib.linalg.vector_norm(x), lib.addmm(x, x, x),
                                            lib.bmm(b, b), lib.mv(x, v), lib.dot(v, v), lib.linalg.svd(x)[1])]
        assert names == ["BaddbmmBackward0", "AddbmmBackward0", "AddrBackward0", "LinalgCrossBackward0",
                         "TraceBackward0", "LinalgMatrixExpBackward0", "RenormBackward0", "DistBackward0",
                         "AddcmulBackward0", "AddcdivBackward0", "LinalgVectorNormBackward0", "AddmmBackward0",
                         "BmmBackward0", "MvBackward0", "DotBackward0", "LinalgSvdBackward0"], lib


def test_nondifferentiable_reductions():
    x = vt.tensor([[1.0, 2.0], [3.0, 0.0]], requires_grad=True)
    for y in (x.argmax(), x.argmin(1), x.any(), x.all(1), vt.count_nonzero(x), x.max(1).indices):
        assert not y.requires_grad and y.grad_fn is None


def test_broadcast_gradients_sum_down():
    """Elementwise broadcasting gradients are summed by vt::sum (now differentiable): first and
    second order through a broadcast."""
    arrays = _arrays([(2, 3), (3,), (2, 1)], 5, D)
    fn = lambda lib, a, b, c: (a * b + c).exp() * b  # noqa: E731
    assert_same(_grads(vt, fn, arrays), _grads(torch, fn, arrays))
    assert_same(_second(vt, fn, arrays), _second(torch, fn, arrays))


def test_addr_gradient_with_promotion():
    """addr promotes its operands; torch's backward then fails in mv ("addmv input tensors must have
    the same dtype"), ours casts: the gradients equal those of the promoted computation."""
    arrays = _arrays([(2, 3), (2,), (3,)], 6, D)
    promoted = _grads(vt, lambda lib, c, a, b: lib.addr(c, a.float().double(), b), arrays)
    for got, expected in zip(_grads(vt, lambda lib, c, a, b: lib.addr(c, a.float(), b), arrays), promoted):
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="addmv input tensors must have the same dtype"):
        _grads(torch, lambda lib, c, a, b: lib.addr(c, a.float(), b), arrays)


@pytest.mark.parametrize("fn", [lambda lib, x: x.amax(1), lambda lib, x: x.max(), lambda lib, x: x.max(1)[0],
                                lambda lib, x: x.norm(float("inf"), dim=1), lambda lib, x: lib.aminmax(x, dim=1),
                                lambda lib, x: x.logsumexp(1), lambda lib, x: x.prod(1), lambda lib, x: x.var(1),
                                lambda lib, x: x.nansum(1), lambda lib, x: x.norm(dim=0)])
def test_nan_in_the_input_like_torch(fn):
    """Where a NaN goes (and where it does not) follows torch's formulas exactly."""
    arrays = [np.array([[1.0, np.nan, 2.0], [3.0, 3.0, 1.0]])]
    assert_same(_grads(vt, fn, arrays), _grads(torch, fn, arrays))
