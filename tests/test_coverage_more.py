"""The ATen-level entry points torch exposes (torch.native_layer_norm, torch.grid_sampler_2d,
torch.ops.aten.slice.Tensor, ...), memory formats, and the split/unbind one-piece gradient: one table
line per op, forward (float64, float32, bfloat16) and gradients (float64 and float32 against torch,
gradcheck in float64).

Lines in LOOSE_BF16 compare bfloat16 with torch's float64 result rounded (torch rounds intermediates there).
A line is Line(name, fn(lib, *inputs), shapes, ranges): `shapes` are the differentiable float inputs,
`ranges` their value ranges (default [-3, 3]); constants (running statistics, masks) are built
inside fn from `lib`, so both libraries see the same values.
"""
import math
from collections import namedtuple

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair

Line = namedtuple("Line", "name fn shapes ranges", defaults=(None,))
# torch's CPU grid sampler interpolates bfloat16 in bfloat16 (errors ~0.1); we interpolate in float32, round once
LOOSE_BF16 = {"grid_sampler_2d_bilinear", "grid_sampler_2d_bicubic_reflection", "grid_sampler_3d"}


def _stats(lib):
    return lib.linspace(-1, 1, 3, dtype=lib.float64), lib.linspace(0.5, 2, 3, dtype=lib.float64)


def _running(lib, x):
    """Running statistics of x's dtype (torch's native_batch_norm wants them to match)."""
    return tuple(t.to(x.dtype) for t in _stats(lib))


def _batch_norm_train(lib, x, w, b):
    mean, var = _running(lib, x)
    out = lib.native_batch_norm(x, w, b, mean, var, True, 0.3, 1e-5)
    return out + (mean, var)  # the running statistics moved: compare them too


def _batch_norm_with_update(lib, x, w, b):
    mean, var = _running(lib, x)
    out, save_mean, save_invstd, reserve = lib.ops.aten._batch_norm_with_update(x, w, b, mean, var, 0.1, 1e-5)
    assert reserve.shape == (0,) and reserve.dtype == lib.uint8
    return out, save_mean, save_invstd, mean, var


GRID = (-1.2, 1.2)


def _spd(lib, a):
    """A symmetric positive-definite matrix made from a: a a^T + 3 I."""
    return a @ a.mT + 3 * lib.eye(a.shape[-1], dtype=a.dtype)


def _sym(a):
    return a + a.mT


def _svd_invariant(result):
    """S, and U diag(S) V^H (singular vectors have arbitrary signs)."""
    u, s_, v = result
    return s_, (u[..., :, :s_.shape[-1]] * s_.unsqueeze(-2)) @ v[..., :, :s_.shape[-1]].mT


def _eigh_invariant(lib, result):
    """Eigenvalues, and the eigenvectors squared (their signs are arbitrary)."""
    lam, v = result
    return lam, v * v
LINES = [
    Line("native_layer_norm", lambda lib, x, w, b: lib.native_layer_norm(x, (4,), w, b, 1e-5),
         [(2, 3, 4), (4,), (4,)]),
    Line("native_layer_norm_2d_no_affine", lambda lib, x: lib.native_layer_norm(x, [3, 4], None, None, 0.5),
         [(2, 3, 4)]),
    Line("native_group_norm", lambda lib, x, w, b: lib.native_group_norm(x, w, b, 2, 6, 5, 3, 1e-5),
         [(2, 6, 5), (6,), (6,)]),
    Line("native_group_norm_4d", lambda lib, x: lib.native_group_norm(x, None, None, 2, 4, 6, 2, 1e-5),
         [(2, 4, 2, 3)]),
    Line("native_batch_norm_train", _batch_norm_train, [(4, 3, 5), (3,), (3,)]),
    Line("native_batch_norm_eval", lambda lib, x, w, b: lib.native_batch_norm(x, w, b, *_running(lib, x), False,
                                                                              0.1, 1e-5), [(4, 3, 5), (3,), (3,)]),
    Line("_native_batch_norm_legit", lambda lib, x, w: lib._native_batch_norm_legit(x, w, None, *_running(lib, x),
                                                                                    True, 0.1, 1e-5),
         [(4, 3), (3,)]),
    Line("_native_batch_norm_legit_no_stats", lambda lib, x, b: lib._native_batch_norm_legit(x, None, b, True,
                                                                                             0.1, 1e-5),
         [(4, 3, 2, 2), (3,)]),
    Line("_native_batch_norm_legit.no_stats", lambda lib, x: lib.ops.aten._native_batch_norm_legit.no_stats(
        x, None, None, True, 0.1, 1e-5), [(4, 3, 2)]),
    Line("_batch_norm_with_update", _batch_norm_with_update, [(4, 3, 5), (3,), (3,)]),
    Line("grid_sampler_2d_bilinear", lambda lib, x, g: lib.grid_sampler_2d(x, g, 0, 0, False),
         [(2, 3, 5, 6), (2, 4, 3, 2)], [None, GRID]),
    Line("grid_sampler_2d_nearest_border", lambda lib, x, g: lib.grid_sampler_2d(x, g, 1, 1, True),
         [(1, 2, 4, 4), (1, 3, 3, 2)], [None, GRID]),
    Line("grid_sampler_2d_bicubic_reflection", lambda lib, x, g: lib.grid_sampler_2d(x, g, 2, 2, False),
         [(1, 2, 4, 5), (1, 3, 2, 2)], [None, GRID]),
    Line("grid_sampler_3d", lambda lib, x, g: lib.grid_sampler_3d(x, g, 0, 0, True),
         [(1, 2, 3, 4, 5), (1, 2, 3, 2, 3)], [None, GRID]),
    Line("grid_sampler_3d_ops_aten", lambda lib, x, g: lib.ops.aten.grid_sampler_3d.default(x, g, 1, 2, False),
         [(2, 1, 3, 3, 2), (2, 2, 1, 2, 3)], [None, GRID]),
    Line("_softmax_backward_data", lambda lib, g, y: lib._softmax_backward_data(g, lib.softmax(y, 1), 1, g.dtype),
         [(3, 4, 2), (3, 4, 2)]),
    Line("_log_softmax_backward_data",
         lambda lib, g, y: lib.ops.aten._log_softmax_backward_data(g, lib.log_softmax(y, -1), -1, g.dtype),
         [(3, 5), (3, 5)]),
    Line("native_dropout_backward", lambda lib, g, x: lib.ops.aten.native_dropout_backward.default(g, x > 0, 2.5),
         [(4, 3), (4, 3)]),
    Line("slice.Tensor", lambda lib, x: lib.ops.aten.slice.Tensor(x, 1, 1, -1, 2), [(3, 7, 2)]),
    Line("slice_default_args", lambda lib, x: lib.ops.aten.slice(x), [(3, 2)]),
    Line("split_one_piece", lambda lib, x: lib.split(x, 5, 1), [(3, 5, 4)]),
    Line("split_with_sizes_one_piece", lambda lib, x: lib.split(x, [4], 2), [(3, 5, 4)]),
    Line("unbind_one_piece", lambda lib, x: lib.unbind(x, 0), [(1, 5, 4)]),
    # torch.functional's composites
    Line("einsum_matmul", lambda lib, a, b: lib.einsum("ij,jk->ik", a, b), [(2, 3), (3, 4)]),
    Line("einsum_batch_implicit", lambda lib, a, b: lib.einsum("bij,bjk", a, b), [(2, 2, 3), (2, 3, 4)]),
    Line("einsum_diagonal_ellipsis", lambda lib, a: lib.einsum("...ii->...i", a), [(2, 3, 3)]),
    Line("einsum_three_operands", lambda lib, a, b, c: lib.einsum("i,ij,j->", a, b, c), [(3,), (3, 4), (4,)]),
    Line("einsum_broadcast_list", lambda lib, a, b: lib.einsum("...j,j->...", [a, b]), [(2, 1, 3), (3,)]),
    Line("tensordot_int", lambda lib, a, b: lib.tensordot(a, b, 1), [(2, 3), (3, 4)]),
    Line("tensordot_lists", lambda lib, a, b: lib.tensordot(a, b, ([0, 2], [1, 0])), [(2, 3, 4), (4, 2, 5)]),
    Line("kron", lambda lib, a, b: lib.kron(a, b), [(2, 3), (3, 1, 2)]),
    Line("cdist_p2", lambda lib, a, b: lib.cdist(a, b), [(2, 3, 4), (2, 5, 4)]),
    Line("cdist_p1_inf", lambda lib, a, b: (lib.cdist(a, b, 1.0), lib.cdist(a, b, float("inf"))), [(3, 2), (4, 2)]),
    Line("cartesian_prod", lambda lib, a, b: lib.cartesian_prod(a, b), [(3,), (2,)]),
    Line("combinations", lambda lib, a: lib.combinations(a, 2, with_replacement=True), [(4,)]),
    Line("block_diag", lambda lib, a, b, c: lib.block_diag(a, b, c), [(2, 3), (4,), ()]),
    Line("meshgrid_xy", lambda lib, a, b, c: lib.meshgrid(a, b, c, indexing="xy"), [(3,), (2,), (4,)]),
    Line("chain_matmul", lambda lib, a, b, c: lib.chain_matmul(a, b, c), [(2, 3), (3, 4), (4, 2)]),
    Line("multi_dot_vectors", lambda lib, a, b, c: lib.linalg.multi_dot([a, b, c]), [(3,), (3, 4), (4,)]),
    Line("diff_prepend", lambda lib, a, b: lib.diff(a, 2, 0, prepend=b), [(4, 3), (1, 3)]),
    Line("vander", lambda lib, a: lib.vander(a, 4, increasing=False), [(3,)]),
    Line("linalg_vander", lambda lib, a: lib.linalg.vander(a), [(2, 3)]),
    Line("trapezoid_x", lambda lib, y, x: lib.trapezoid(y, x, dim=0), [(4, 3), (4, 3)]),
    Line("cumulative_trapezoid_dx", lambda lib, y: lib.cumulative_trapezoid(y, dx=0.5), [(3, 5)]),
    Line("cov_weights", lambda lib, x, w: lib.cov(x, correction=0, aweights=w.abs() + 0.5), [(3, 6), (6,)]),
    Line("corrcoef", lambda lib, x: lib.corrcoef(x), [(3, 6)]),
    Line("complex_polar", lambda lib, a, b: (lib.view_as_real(lib.complex(a, b)),
                                             lib.view_as_real(lib.polar(a.abs() + 0.1, b))), [(2, 3), (2, 3)]),
    Line("linalg_vecdot_diagonal", lambda lib, a, b: (lib.linalg.vecdot(a, b, dim=0), lib.linalg.diagonal(a, offset=1)),
         [(3, 4), (3, 4)]),
    # inverses, determinants, solves and decompositions (matrices made well conditioned inside fn)
    Line("linalg_inv", lambda lib, a: lib.linalg.inv(_spd(lib, a)), [(2, 3, 3)]),
    Line("inverse_general", lambda lib, a: lib.inverse(a + 4 * lib.eye(3, dtype=a.dtype)), [(3, 3)]),
    Line("linalg_det", lambda lib, a: lib.linalg.det(a), [(2, 3, 3)]),
    Line("slogdet_logdet", lambda lib, a: (lib.linalg.slogdet(a)[1], lib.logdet(_spd(lib, a))), [(3, 3)]),
    Line("linalg_solve", lambda lib, a, b: lib.linalg.solve(_spd(lib, a), b), [(2, 3, 3), (3, 2)]),
    Line("linalg_solve_vector", lambda lib, a, b: lib.linalg.solve(_spd(lib, a), b), [(3, 3), (3,)]),
    Line("linalg_solve_right", lambda lib, a, b: lib.linalg.solve(_spd(lib, a), b, left=False), [(3, 3), (2, 3)]),
    Line("linalg_cholesky", lambda lib, a: lib.linalg.cholesky(_spd(lib, a)), [(2, 3, 3)]),
    Line("cholesky_upper", lambda lib, a: lib.cholesky(_spd(lib, a), upper=True), [(3, 3)]),
    Line("cholesky_solve_inverse", lambda lib, a, b: (lib.cholesky_solve(b, lib.linalg.cholesky(_spd(lib, a))),
                                                      lib.cholesky_inverse(lib.linalg.cholesky(_spd(lib, a)))),
         [(3, 3), (3, 2)]),
    Line("linalg_qr_tall", lambda lib, a: lib.linalg.qr(a), [(5, 3)]),
    Line("linalg_qr_wide", lambda lib, a: lib.linalg.qr(a), [(2, 3, 5)]),
    Line("qr_square_complete", lambda lib, a: lib.qr(a, some=False), [(2, 3, 3)]),
    Line("linalg_eigh", lambda lib, a: _eigh_invariant(lib, lib.linalg.eigh(_sym(a))), [(4, 4)]),
    Line("linalg_eig", lambda lib, a: (lambda r: (lib.view_as_real(r[0]), r[1].abs()))(lib.linalg.eig(a)), [(2, 4, 4)]),
    Line("linalg_eigvals", lambda lib, a: lib.view_as_real(lib.linalg.eigvals(a)), [(3, 3)]),
    Line("householder_product_ormqr", lambda lib, a, tau, c: (lib.linalg.householder_product(a, tau),
                                                              lib.ormqr(a, tau, c, transpose=True),
                                                              lib.ormqr(a, tau, c.mT, left=False)),
         [(4, 3), (3,), (4, 2)]),
    Line("geqrf", lambda lib, a: lib.geqrf(a.detach()), [(2, 4, 3)]),
    Line("linalg_eigvalsh_upper", lambda lib, a: lib.linalg.eigvalsh(_sym(a), UPLO="U"), [(2, 3, 3)]),
    Line("solve_triangular_upper", lambda lib, a, b: lib.linalg.solve_triangular(a + 4 * lib.eye(3, dtype=a.dtype),
                                                                                b, upper=True), [(2, 3, 3), (3, 2)]),
    Line("solve_triangular_unit_right", lambda lib, a, b: lib.linalg.solve_triangular(a, b, upper=False, left=False,
                                                                                     unitriangular=True),
         [(3, 3), (2, 3)], [(-0.5, 0.5), None]),
    Line("pinv", lambda lib, a: (lib.linalg.pinv(a), lib.pinverse(a.mT)), [(2, 4, 3)]),
    Line("pinv_rank_deficient", lambda lib, a, b: lib.linalg.pinv(a @ b), [(4, 2), (2, 3)]),
    Line("pinv_hermitian", lambda lib, a: lib.linalg.pinv(_sym(a), hermitian=True), [(3, 3)]),
    Line("cond", lambda lib, a: (lib.linalg.cond(a), lib.linalg.cond(a, -2)), [(3, 3)]),
    Line("cond_fro", lambda lib, a: lib.linalg.cond(_spd(lib, a), "fro"), [(3, 3)]),
    Line("tensorinv_tensorsolve", lambda lib, a, b: (lib.linalg.tensorinv(_spd(lib, a).reshape(2, 2, 4), ind=2),
                                                     lib.linalg.tensorsolve(_spd(lib, a).reshape(4, 2, 2), b)),
         [(4, 4), (4,)]),
    Line("matrix_rank", lambda lib, a, b: (lib.linalg.matrix_rank(a @ b), lib.linalg.matrix_rank(a, atol=0.5)),
         [(3, 4, 2), (3, 2, 4)]),
    Line("lu_factor_square", lambda lib, a: lib.linalg.lu_factor(a), [(2, 3, 3)]),
    Line("lu_wide_tall", lambda lib, a, b: (lib.linalg.lu(a), lib.linalg.lu_factor_ex(b)), [(3, 5), (5, 3)]),
    Line("lu_unpack", lambda lib, a: lib.lu_unpack(*lib.linalg.lu_factor(a)), [(4, 3)]),
    Line("lu_solve_variants", lambda lib, a, b: (lib.linalg.lu_solve(*lib.linalg.lu_factor(_spd(lib, a)), b),
                                                 lib.linalg.lu_solve(*lib.linalg.lu_factor(_spd(lib, a)), b,
                                                                     adjoint=True),
                                                 lib.linalg.lu_solve(*lib.linalg.lu_factor(_spd(lib, a)), b.mT,
                                                                     left=False),
                                                 lib.lu_solve(b, *lib.linalg.lu_factor(_spd(lib, a)))),
         [(3, 3), (3, 2)]),
    Line("lstsq_tall_wide", lambda lib, a, b: (lib.linalg.lstsq(a, b)[0], lib.linalg.lstsq(a.mT, b[:3])[0],
                                               lib.linalg.lstsq(a, b, driver="gelsd")), [(5, 3), (5, 2)]),
    Line("svd_triangular_solve", lambda lib, a, b: (_svd_invariant(lib.svd(a)), lib.triangular_solve(b, a[:3] + 4 * lib.eye(3, dtype=a.dtype))),
         [(4, 3), (3, 2)]),
    # more of torch and nn.functional
    Line("conj_resolve_ravel", lambda lib, a: (lib.conj(a), lib.conj_physical(a), lib.resolve_conj(a),
                                               lib.resolve_neg(a), lib.ravel(a.mT)), [(2, 3)]),
    Line("angle", lambda lib, a: (lib.angle(a), lib.angle(lib.complex(a, a.flip(0)))), [(4,)]),
    Line("hsplit_vsplit_dsplit", lambda lib, a: (lib.hsplit(a, 2), lib.vsplit(a, [1]), lib.dsplit(a, 3)),
         [(2, 4, 3)]),
    Line("take_along_dim", lambda lib, a: (lib.take_along_dim(a, a.argsort(1) - 4, 1),  # negative: wrapped
                                           lib.take_along_dim(a, lib.tensor([0, 11, 2]))), [(3, 4)]),
    Line("unsafe_chunk_sum_to_size", lambda lib, a: (lib.unsafe_chunk(a, 2, 1), a.sum_to_size(1, 4)), [(3, 4)]),
    Line("bilinear", lambda lib, a, b, w, bias: lib.nn.functional.bilinear(a, b, w, bias),
         [(2, 3), (2, 4), (5, 3, 4), (5,)]),
    Line("linear_cross_entropy", lambda lib, x, w, b: (
        lib.nn.functional.linear_cross_entropy(x, w, lib.tensor([1, 0, 2]), linear_bias=b),
        lib.nn.functional.linear_cross_entropy(x, w.reshape(3, 1, 4).expand(3, 2, 4), lib.tensor([[1, 0], [2, 2], [0, 1]]),
                                               reduction="sum")), [(3, 4), (3, 4), (3,)]),
    Line("margin_losses", lambda lib, x: (
        lib.nn.functional.multi_margin_loss(x, lib.tensor([1, 0, 3]), p=2, margin=0.7),
        lib.nn.functional.multilabel_margin_loss(x, lib.tensor([[3, 0, -1, 1], [1, 2, 3, 0], [-1, 1, 1, 1]]),
                                                 reduction="none")), [(3, 4)]),
    Line("triplet_margin_with_distance_loss", lambda lib, a, p, n: lib.nn.functional.triplet_margin_with_distance_loss(
        a, p, n, swap=True, margin=0.5), [(4, 3), (4, 3), (4, 3)]),
    Line("local_response_norm", lambda lib, a: lib.nn.functional.local_response_norm(a, 3), [(2, 5, 4)]),
    Line("local_response_norm_4d", lambda lib, b: lib.nn.functional.local_response_norm(b, 2, k=2.0), [(1, 4, 3, 3)]),
    Line("max_unpool2d", lambda lib, a: lib.nn.functional.max_unpool2d(
        *lib.nn.functional.max_pool2d(a, 2, return_indices=True), 2), [(1, 2, 4, 6)]),
    Line("max_unpool1d_output_size", lambda lib, a: lib.nn.functional.max_unpool1d(
        *lib.nn.functional.max_pool1d(a, 2, return_indices=True), 2, output_size=[7]), [(2, 7)]),
    Line("max_pool2d_with_indices_backward", lambda lib, x, g: lib.ops.aten.max_pool2d_with_indices_backward.default(
        g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, lib.nn.functional.max_pool2d(x, 2, return_indices=True)[1]),
         [(1, 2, 4, 4), (1, 2, 2, 2)]),
    Line("gradient_spacing", lambda lib, a: (lib.gradient(a), lib.gradient(a, spacing=(2.0, 0.5), edge_order=2)),
         [(4, 5)]),
    Line("gradient_coordinates", lambda lib, a: lib.gradient(
        a, spacing=(lib.tensor([0.0, 1.0, 3.0, 3.5], dtype=a.dtype),), dim=1, edge_order=2), [(3, 4)]),
    Line("embedding_bag_sum_offsets", lambda lib, w, psw: lib.nn.functional.embedding_bag(
        lib.tensor([1, 2, 4, 5, 4, 3]), w, lib.tensor([0, 2, 2]), mode="sum", per_sample_weights=psw),
         [(6, 3), (6,)]),
    Line("embedding_bag_mean_padding", lambda lib, w: lib.nn.functional.embedding_bag(
        lib.tensor([[1, 2, 0], [0, 0, 0], [3, 0, 5]]), w, mode="mean", padding_idx=0), [(6, 3)]),
    Line("embedding_bag_max_last_offset", lambda lib, w: lib.nn.functional.embedding_bag(
        lib.tensor([1, 2, 4, 5, 4, 3]), w, lib.tensor([0, 1, 4, 5]), mode="max", include_last_offset=True),
         [(6, 3)]),
    Line("pdist", lambda lib, a: (lib.nn.functional.pdist(a), lib.nn.functional.pdist(a, 1.0)), [(4, 3)]),
    Line("float_power", lambda lib, a, b: (lib.float_power(a.abs() + 0.5, b), lib.float_power(a, 2)), [(3, 4), (3, 4)]),
    Line("_safe_softmax", lambda lib, a: lib.ops.aten._safe_softmax(
        lib.where(lib.tensor([[True], [False], [True]]), float("-inf"), a), 1), [(3, 4)]),
    Line("matrix_power", lambda lib, a: (lib.linalg.matrix_power(a, 3), lib.matrix_power(_spd(lib, a), -2),
                                         lib.linalg.matrix_power(a, 0)), [(3, 3)]),
]
IDS = [line.name for line in LINES]


def _pairs(line, dtype, seed=0, requires_grad=False):
    ranges = line.ranges or [None] * len(line.shapes)
    pairs = []
    for k, (shape, r) in enumerate(zip(line.shapes, ranges)):
        lo, hi = r or (-3.0, 3.0)
        t, v = make_pair(shape, dtype, "contiguous", seed + k, low=lo, high=hi)
        if requires_grad:
            t, v = t.requires_grad_(True), v.requires_grad_(True)
        pairs.append((t, v))
    return pairs


# torch's avg_pool3d refuses bfloat16 on CPU (ours computes it, so 4-D local_response_norm does too)
NO_BF16 = {"local_response_norm_4d"}


FORWARD = [(line, dtype) for line in LINES for dtype in ("float64", "float32", "bfloat16")
           if not (dtype == "bfloat16" and line.name in NO_BF16)]


@pytest.mark.parametrize("line,dtype", FORWARD, ids=[f"{line.name}-{dtype}" for line, dtype in FORWARD])
def test_forward(line, dtype):
    pairs = _pairs(line, dtype)
    if dtype == "bfloat16" and line.name in LOOSE_BF16:  # against torch in float64, rounded once
        expected = line.fn(torch, *[t.double() for t, _ in pairs]).to(torch.bfloat16)
        return assert_same(line.fn(vt, *[v for _, v in pairs]), expected)
    check(line.fn, *pairs)


def _outputs(out):
    """The differentiable tensors of a (nested) result."""
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _outputs(x)]
    return [out] if out.requires_grad else []


def _grads(lib, line, leaves):
    outs = _outputs(line.fn(lib, *leaves))
    if not outs:
        return outs, None
    rng = np.random.default_rng(5)
    seeds = [lib.tensor(rng.uniform(-1, 1, tuple(o.shape)), dtype=o.dtype) for o in outs]
    return outs, lib.autograd.grad(outs, leaves, seeds, allow_unused=True)


# torch 2.13's own vander and cond(p='fro') backward raise (an in-place write into a saved tensor): gradcheck
# covers ours
TORCH_GRAD_BROKEN = {"vander", "cond_fro"}
GRAD_LINES = [line for line in LINES if line.name not in TORCH_GRAD_BROKEN]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("line", GRAD_LINES, ids=[line.name for line in GRAD_LINES])
def test_gradient(line, dtype):
    pairs = _pairs(line, dtype, requires_grad=True)
    t_outs, t_grads = _grads(torch, line, [t for t, _ in pairs])
    if not t_outs:
        return
    v_outs, v_grads = _grads(vt, line, [v for _, v in pairs])
    assert len(v_outs) == len(t_outs), "the same outputs are differentiable"
    for k, (g_v, g_t) in enumerate(zip(v_grads, t_grads)):
        if g_t is None:
            assert g_v is None or not g_v.any().item(), f"grad of input {k}"
        else:
            assert_same(g_v, g_t, rtol=1e-4 if dtype == "float32" else None, atol=1e-4 if dtype == "float32" else None,
                        path=f"grad of input {k}")


# nearest sampling is piecewise constant in the grid; batch norm's running statistics are written in place
NO_GRADCHECK = {"grid_sampler_2d_nearest_border", "grid_sampler_3d_ops_aten", "native_batch_norm_train",
                "_batch_norm_with_update"}
GRADCHECK = [line for line in LINES if line.name not in NO_GRADCHECK]


@pytest.mark.parametrize("line", GRADCHECK, ids=[line.name for line in GRADCHECK])
def test_gradcheck(line):
    leaves = [v for _, v in _pairs(line, "float64", seed=3, requires_grad=True)]
    assert vt.autograd.gradcheck(lambda *xs: tuple(_outputs(line.fn(vt, *xs))), leaves)


def test_statistics_match_torch_dtypes_and_grad_tracking():
    """mean/rstd of layer and batch norm are not differentiable in torch; group norm's are."""
    x = vt.randn(2, 6, 4, requires_grad=True)
    _, mean, rstd = vt.native_layer_norm(x, (4,), None, None, 1e-5)
    assert not mean.requires_grad and mean.shape == (2, 6, 1)
    _, mean, rstd = vt.native_group_norm(x, None, None, 2, 6, 4, 3, 1e-5)
    assert mean.requires_grad and rstd.shape == (2, 3)
    xb = vt.randn(2, 3, 4, dtype=vt.bfloat16)
    out = vt.native_batch_norm(xb, None, None, vt.zeros(3), vt.ones(3), False, 0.1, 1e-5)
    assert out[1].shape == (0,) and out[1].dtype is vt.float32 and out[0].dtype is vt.bfloat16


def test_ops_aten_namespace():
    assert vt.ops.aten.slice.overloads() == ["Tensor"]
    with pytest.raises(AttributeError, match="no overload name"):
        vt.ops.aten.slice.foo
    with pytest.raises(AttributeError):
        vt.ops.aten.not_an_operator
    with pytest.raises(RuntimeError, match="expected 4D input"):
        vt.grid_sampler_2d(vt.ones(1, 2, 3), vt.ones(1, 2, 2), 0, 0, False)


def test_sparse_layouts_are_not_implemented():
    with pytest.raises(NotImplementedError, match="sparse"):
        vt.ones(2, 3).to_sparse()
    with pytest.raises(NotImplementedError, match="sparse"):
        vt.ones(2, 3).to_sparse(1)


# -- memory formats: torch's strides ------------------------------------------------------------------------

def _cl(lib, shape):
    return lib.arange(float(np.prod(shape))).reshape(shape).contiguous(memory_format=lib.channels_last)


FORMAT_LINES = [
    ("to_channels_last", (2, 3, 4, 5), lambda lib, x: x.to(memory_format=lib.channels_last)),
    ("to_channels_last_c1", (2, 1, 4, 5), lambda lib, x: x.to(memory_format=lib.channels_last)),
    ("contiguous_channels_last", (2, 3, 1, 4), lambda lib, x: x.contiguous(memory_format=lib.channels_last)),
    ("contiguous_channels_last_3d", (2, 3, 4, 2, 3),
     lambda lib, x: x.contiguous(memory_format=lib.channels_last_3d)),
    ("clone_channels_last", (2, 3, 4, 5), lambda lib, x: x.clone(memory_format=lib.channels_last)),
    ("bfloat16_channels_last", (2, 3, 4, 5), lambda lib, x: x.bfloat16(memory_format=lib.channels_last)),
    ("to_dtype_channels_last", (2, 3, 4, 5), lambda lib, x: x.to(lib.float64, memory_format=lib.channels_last)),
    ("empty_like_channels_last", (2, 3, 4, 5),
     lambda lib, x: lib.zeros_like(x, memory_format=lib.channels_last)),
    ("channels_last_back_to_contiguous", (2, 3, 4, 5), lambda lib, x: _cl(lib, x.shape).contiguous()),
    ("channels_last_to_contiguous_format", (2, 3, 4, 5),
     lambda lib, x: _cl(lib, x.shape).double(memory_format=lib.contiguous_format)),
    ("sliced_channels_last_clone", (2, 3, 4, 5), lambda lib, x: _cl(lib, x.shape)[:, :, ::2].clone()),
    ("sliced_channels_last_preserve", (2, 3, 4, 5),
     lambda lib, x: _cl(lib, x.shape)[:, :, ::2].to(lib.float64, memory_format=lib.preserve_format)),
    ("empty_dim_channels_last", (2, 0, 3, 4), lambda lib, x: lib.empty(2, 0, 3, 4, memory_format=lib.channels_last)),
    ("rank_error", (2, 3), lambda lib, x: x.contiguous(memory_format=lib.channels_last)),
    ("rank_error_3d", (2, 3, 4, 5), lambda lib, x: x.to(memory_format=lib.channels_last_3d)),
]


@pytest.mark.parametrize("name,shape,fn", FORMAT_LINES, ids=[n for n, _, _ in FORMAT_LINES])
def test_memory_format_strides(name, shape, fn):
    check(fn, make_pair(shape, "float32", "contiguous"), check_stride=True)


@pytest.mark.parametrize("shape,fmt", [((2, 3, 4, 5), "channels_last"), ((2, 1, 1, 1), "channels_last"),
                                       ((2, 0, 4, 5), "channels_last"), ((2, 3), "channels_last"),
                                       ((2, 3, 4, 5, 6), "channels_last_3d"), ((2, 3, 4, 5), "contiguous_format")])
def test_is_contiguous_in_format(shape, fmt):
    for make in (lambda lib: lib.zeros(shape), lambda lib: lib.zeros(shape).transpose(0, -1)):
        t, v = make(torch), make(vt)
        assert v.is_contiguous(memory_format=getattr(vt, fmt)) == t.is_contiguous(memory_format=getattr(torch, fmt))


def test_copies_alias_as_torch():
    """to()/contiguous() return the tensor itself exactly when torch does."""
    for lib in (torch, vt):
        z = _cl(lib, (2, 3, 4, 5))
        c1 = lib.zeros(2, 1, 4, 5)
        got = [z.contiguous(memory_format=lib.channels_last) is z, z.contiguous() is z,
               z.to(memory_format=lib.channels_last) is z, z.to(memory_format=lib.contiguous_format) is z,
               c1.contiguous(memory_format=lib.channels_last) is c1, c1.to(memory_format=lib.channels_last) is c1]
        if lib is torch:
            expected = got
        else:
            assert got == expected
    assert repr(vt.channels_last) == "torch.channels_last" and isinstance(vt.preserve_format, vt.memory_format)
    with pytest.raises(TypeError):
        vt.ones(2).contiguous(memory_format="channels_last")


def test_gradient_through_channels_last_copy():
    t, v = make_pair((2, 3, 2, 2), "float64")
    for x, lib in ((t, torch), (v, vt)):
        x.requires_grad_(True)
        y = x.to(memory_format=lib.channels_last)
        (y * lib.arange(24.0, dtype=lib.float64).reshape(2, 3, 2, 2)).sum().backward()
    assert_same(v.grad, t.grad)


def test_take_along_dim_flat_negative_index_is_an_error():
    check(lambda lib, a: lib.take_along_dim(a, lib.tensor([0, -1])), make_pair((3, 4), "float32"))


def test_bernoulli_gradient_is_zero():
    for lib in (torch, vt):
        p = lib.full((3, 4), 0.5, requires_grad=True)
        lib.bernoulli(p).sum().backward()
        assert p.grad.shape == (3, 4) and not p.grad.any()


@pytest.mark.parametrize("shape,new", [((5, 5, 5), (25, 5)), ((2, 3), (4, 2)), ((), (1, 1, 1)), ((3,), (0,))])
def test_resize_keeps_leading_values_and_grows_storage(shape, new):
    t, v = make_pair(shape, "float32")
    for x in (t.clone().resize_(new), v.clone().resize_(new)):
        assert tuple(x.shape) == new and x.is_contiguous()
    keep = min(t.numel(), math.prod(new))
    ours, theirs = v.clone().resize_(new), t.clone().resize_(new)
    assert ours.reshape(-1)[:keep].tolist() == theirs.reshape(-1)[:keep].tolist()
    assert tuple(vt.resize_as_(v.clone(), vt.zeros(new)).shape) == new
    with pytest.raises(RuntimeError, match="require grad"):
        vt.ones(2, requires_grad=True).resize_(3)


WINDOWS = [("hann", {}), ("hamming", {}), ("blackman", {}), ("nuttall", {}), ("bartlett", {}), ("cosine", {}),
           ("gaussian", {"std": 1.7}), ("kaiser", {"beta": 5.0}), ("exponential", {"tau": 2.0}),
           ("general_cosine", {"a": [0.5, 0.3, 0.2]}), ("general_hamming", {"alpha": 0.6})]


@pytest.mark.parametrize("name,kwargs", WINDOWS, ids=[n for n, _ in WINDOWS])
def test_signal_windows(name, kwargs):
    for M in (0, 1, 2, 7):
        for sym in (True, False):
            for dtype in ("float32", "float64"):
                check(lambda lib: getattr(lib.signal.windows, name)(M, sym=sym, dtype=getattr(lib, dtype), **kwargs))
    check(lambda lib: getattr(lib.signal.windows, name)(4, dtype=lib.int64, **kwargs))  # ValueError in both


@pytest.mark.parametrize("row,col,offset", [(3, 3, 0), (4, 3, 1), (3, 5, -1), (0, 2, 0), (2, 2, 5)])
def test_triangle_indices(row, col, offset):
    check(lambda lib: (lib.tril_indices(row, col, offset), lib.triu_indices(row, col, offset)))


def test_empty_permuted_strides():
    for lib in (torch, vt):
        t = lib.empty_permuted((2, 3, 4), (0, 2, 1))
        assert tuple(t.shape) == (2, 3, 4) and t.stride() == (12, 1, 3)


def test_stable_sort_ties_in_every_dtype():
    for dtype in ("bfloat16", "float16", "float32", "int64"):
        t, v = make_pair((3, 40), dtype, low=-2, high=2)  # few distinct values: many ties
        check(lambda lib, x: lib.sort(x, dim=1, stable=True, descending=True), (t, v))
        check(lambda lib, x: lib.argsort(x, dim=1, stable=True), (t, v))
