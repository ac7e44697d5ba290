"""The cuSOLVER decompositions (backends/cuda/solver.py: inv, det, slogdet, solve, cholesky, lu_factor,
lu_permutation, qr, geqrf, eigh, eig, svd, svdvals, matrix_exp) and grid sampling
(backends/cuda/sampling.py) on CUDA against torch's CUDA results (marker `cuda`): float32 and float64,
batched, broadcast and transposed inputs, gradients of every differentiable op, and torch's errors
for singular, not positive-definite and non-finite inputs.

Factors unique only up to the sign of each column (qr, eigh, svd: torch may pick another cuSOLVER
driver, gesvdj or syevj) are compared after fixing each column's sign, and the losses whose
gradients are compared do not depend on those signs; eig is compared through its sorted eigenvalues
and A V = V diag(L). TF32 is off on both sides."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, to_numpy, torch_from_numpy

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("no_tf32")]  # (conftest.py)

DT = {"float32": (torch.float32, vt.float32), "float64": (torch.float64, vt.float64),
      "bfloat16": (torch.bfloat16, vt.bfloat16)}
TOL = {"float32": (2e-4, 2e-4), "float64": (1e-9, 1e-9), "bfloat16": (3e-2, 6e-2)}
GRAD_TOL = {"float32": (2e-3, 2e-3), "float64": (1e-7, 1e-7)}


# -- inputs -------------------------------------------------------------------------------------------------------------

def _matrix(kind, shape, rng):
    """float64 test data: general (well conditioned, determinants of both signs), spd, sym, rect (any)."""
    a = rng.uniform(-1, 1, shape)
    if kind == "general":
        n = shape[-1]
        a = a + n * rng.choice([-1.0, 1.0], size=shape[:-1])[..., None] * np.eye(n)
    elif kind == "spd":
        a = a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])
    elif kind == "sym":
        a = a + np.swapaxes(a, -1, -2)
    return a


def pair(kind, shape, dtype, layout="contiguous", seed=0, grad=False):
    """(torch, vibetensor) CUDA tensors with equal values and memory layout, and their leaves."""
    a = _matrix(kind, shape, np.random.default_rng(seed))
    transposed = layout == "transposed" and len(shape) >= 2
    base = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if transposed else a
    t = torch_from_numpy(base).to(DT[dtype][0]).cuda()
    v = vt.from_numpy(base.copy()).to(DT[dtype][1]).cuda()
    if grad:
        t.requires_grad_()
        v.requires_grad_()
    if transposed:
        return t.mT, v.mT, (t, v)
    return t, v, (t, v)


def _pairs(specs, dtype, layout="contiguous", seed=0, grad=False):
    """Inputs of a table row; the layout applies to the first."""
    made = [pair(kind, shape, dtype, layout if i == 0 else "contiguous", seed + i, grad)
            for i, (kind, shape) in enumerate(specs)]
    return [m[0] for m in made], [m[1] for m in made], [m[2] for m in made]


def wsum(L, x, seed=0):
    """sum(x * w) for fixed random weights w: a scalar loss with a generic gradient."""
    w = np.random.default_rng(100 + seed).uniform(-1, 1, tuple(x.shape))
    return (x * L.tensor(w, dtype=x.dtype, device=x.device)).sum()


def _run(L, fn, ins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(L, *ins)


def _on_cuda(result):
    for x in result if isinstance(result, (tuple, list)) else (result,):
        assert x.is_cuda, "result left the GPU"


# -- forward: results torch's CUDA kernels determine uniquely ----------------------------------------------------------

FORWARD = [  # (name, fn(lib, *inputs), [(kind, shape), ...])
    ("inv", lambda L, a: L.linalg.inv(a), [("general", (4, 4))]),
    ("inv_batched", lambda L, a: L.linalg.inv(a), [("general", (2, 3, 5, 5))]),
    ("det", lambda L, a: L.linalg.det(a), [("general", (3, 4, 4))]),
    ("det_1x1", lambda L, a: L.linalg.det(a), [("rect", (2, 1, 1))]),
    ("slogdet", lambda L, a: tuple(L.linalg.slogdet(a)), [("general", (3, 4, 4))]),
    ("solve", lambda L, a, b: L.linalg.solve(a, b), [("general", (2, 4, 4)), ("rect", (2, 4, 3))]),
    ("solve_broadcast", lambda L, a, b: L.linalg.solve(a, b), [("general", (4, 4)), ("rect", (3, 4, 2))]),
    ("solve_vector", lambda L, a, b: L.linalg.solve(a, b), [("general", (3, 4, 4)), ("rect", (3, 4))]),
    ("solve_left_false", lambda L, a, b: L.linalg.solve(a, b, left=False), [("general", (4, 4)), ("rect", (3, 4))]),
    ("cholesky", lambda L, a: L.linalg.cholesky(a), [("spd", (2, 5, 5))]),
    ("cholesky_upper", lambda L, a: L.linalg.cholesky(a, upper=True), [("spd", (5, 5))]),
    ("cholesky_reads_lower", lambda L, a: L.linalg.cholesky(a + 5 * a.triu(1)), [("spd", (4, 4))]),
    ("lu_factor", lambda L, a: tuple(L.linalg.lu_factor(a)), [("rect", (2, 5, 5))]),
    ("lu_factor_tall", lambda L, a: tuple(L.linalg.lu_factor(a)), [("rect", (6, 4))]),
    ("lu_factor_wide", lambda L, a: tuple(L.linalg.lu_factor(a)), [("rect", (2, 3, 5))]),
    ("lu", lambda L, a: tuple(L.linalg.lu(a)), [("rect", (2, 4, 6))]),
    ("lu_tall", lambda L, a: tuple(L.linalg.lu(a)), [("rect", (6, 4))]),
    ("lu_solve", lambda L, a, b: L.linalg.lu_solve(*L.linalg.lu_factor(a), b), [("general", (2, 4, 4)),
                                                                               ("rect", (2, 4, 3))]),
    ("geqrf", lambda L, a: tuple(L.geqrf(a)), [("rect", (5, 3))]),
    ("svdvals", lambda L, a: L.linalg.svdvals(a), [("rect", (2, 5, 3))]),
    ("svdvals_wide", lambda L, a: L.linalg.svdvals(a), [("rect", (3, 6))]),
    ("eigvalsh", lambda L, a: L.linalg.eigvalsh(a), [("sym", (2, 5, 5))]),
    ("eigvalsh_upper", lambda L, a: L.linalg.eigvalsh(a, UPLO="U"), [("rect", (4, 4))]),
    ("matrix_exp", lambda L, a: L.linalg.matrix_exp(a), [("rect", (2, 4, 4))]),
    ("matrix_exp_large_norm", lambda L, a: L.linalg.matrix_exp(a * 8), [("rect", (2, 3, 3))]),
    ("matrix_exp_1x1", lambda L, a: L.linalg.matrix_exp(a), [("rect", (2, 1, 1))]),
    ("matrix_power_negative", lambda L, a: L.linalg.matrix_power(a, -2), [("general", (3, 3))]),
    ("inv_empty", lambda L, a: L.linalg.inv(a), [("rect", (0, 3, 3))]),
    ("det_empty", lambda L, a: L.linalg.det(a), [("rect", (2, 0, 0))]),
    ("svdvals_empty", lambda L, a: L.linalg.svdvals(a), [("rect", (3, 0))]),
]


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,specs", FORWARD, ids=[c[0] for c in FORWARD])
def test_forward_matches_torch_cuda(name, fn, specs, dtype, layout):
    t_in, v_in, _ = _pairs(specs, dtype, layout)
    got = _run(vt, fn, v_in)
    _on_cuda(got)
    rtol, atol = TOL[dtype]
    assert_same(got, _run(torch, fn, t_in), rtol=rtol, atol=atol)


# -- matrix_exp: float32 and the half types compute in float64 and round once ------------------------------------------

MATRIX_EXPS = [  # (dtype, shape, low, high): uniform entries; +-9 makes badly conditioned results (cancellation)
    ("float32", (5, 5, 5), -9, 9), ("float32", (5, 5), -9, 9), ("float32", (3, 8, 8), -2, 2),
    ("bfloat16", (5, 5), -9, 9), ("bfloat16", (5, 5, 5), -1, 1), ("float16", (2, 4, 4), -1, 1)]


@pytest.mark.parametrize("dtype,shape,low,high", MATRIX_EXPS, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in MATRIX_EXPS])
def test_matrix_exp_no_less_accurate_than_torch(dtype, shape, low, high):
    """Each entry no farther from the float64 result than torch's own, and correctly rounded where
    torch's is not finite (torch computes in the dtype itself: its float32 scaling and squaring loses
    the last digits of badly conditioned entries, and in bfloat16 and float16 it overflows to inf/NaN)."""
    base = np.random.default_rng(sum(shape) + high).uniform(low, high, shape)
    torch_dtype, vt_dtype = getattr(torch, dtype), getattr(vt, dtype)
    t = torch.from_numpy(base).to(torch_dtype).cuda()
    v = vt.from_numpy(base.copy()).to(vt_dtype).cuda()
    got = vt.linalg.matrix_exp(v)
    assert got.dtype == vt_dtype and tuple(got.shape) == shape
    theirs = torch.linalg.matrix_exp(t).double().cpu().numpy()
    exact = torch.linalg.matrix_exp(t.double()).cpu().numpy()         # the same inputs, in float64
    ours = to_numpy(got).astype(np.float64)
    ulp = np.spacing(np.abs(exact).astype(np.dtype(dtype) if dtype != "bfloat16" else np.float32))
    ulp = ulp * (2 ** 16 if dtype == "bfloat16" else 1)                 # (bfloat16: float32's ulp * 2^16)
    torch_error = np.where(np.isfinite(theirs), np.abs(theirs - exact), 0.0)
    assert np.all(np.abs(ours - exact) <= np.maximum(torch_error, 0.5 * ulp.astype(np.float64)) * 1.0001)


# -- forward: factors unique up to column signs ---------------------------------------------------------------------

def _column_signs(m):
    """The sign of each column's largest-magnitude entry (..., 1, cols)."""
    idx = np.argmax(np.abs(m), axis=-2)[..., None, :]
    return np.sign(np.take_along_axis(m, idx, axis=-2))


def _close(ours, theirs, dtype, scale=1.0):
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=rtol * scale, atol=atol * scale)


QR_SHAPES = [(5, 3), (3, 5), (2, 4, 4), (2, 6, 3)]


@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
@pytest.mark.parametrize("shape", QR_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_qr_matches_torch_cuda_up_to_signs(shape, mode, dtype):
    t, v, _ = pair("rect", shape, dtype, "transposed", seed=3)
    (tq, tr), (vq, vr) = torch.linalg.qr(t, mode=mode), vt.linalg.qr(v, mode=mode)
    assert tuple(vq.shape) == tuple(tq.shape) and tuple(vr.shape) == tuple(tr.shape)
    tr_, vr_ = to_numpy(tr).astype(np.float64), to_numpy(vr).astype(np.float64)
    rows = tr_.shape[-2]
    # R's rows carry the signs: fix them by the diagonal, and Q's columns by the same signs
    ts = np.sign(np.diagonal(tr_, axis1=-2, axis2=-1))[..., :rows, None]
    vs = np.sign(np.diagonal(vr_, axis1=-2, axis2=-1))[..., :rows, None]
    k = min(shape[-2:])
    _close(vr_[..., :k, :] * vs[..., :k, :], tr_[..., :k, :] * ts[..., :k, :], dtype)
    _close(vr_[..., k:, :], tr_[..., k:, :], dtype)
    if mode == "r":
        return
    tq_, vq_ = to_numpy(tq).astype(np.float64), to_numpy(vq).astype(np.float64)
    _close(vq_[..., :k] * np.swapaxes(vs[..., :k, :], -1, -2), tq_[..., :k] * np.swapaxes(ts[..., :k, :], -1, -2),
           dtype)
    _close(vq_ @ vr_, to_numpy(v).astype(np.float64), dtype, 10)  # Q R = A
    eye = np.eye(vq_.shape[-1])
    _close(np.swapaxes(vq_, -1, -2) @ vq_, np.broadcast_to(eye, vq_.shape[:-2] + eye.shape), dtype, 10)


@pytest.mark.parametrize("uplo", ["L", "U"])
@pytest.mark.parametrize("shape", [(5, 5), (3, 4, 4)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eigh_matches_torch_cuda_up_to_signs(shape, uplo, dtype):
    t, v, _ = pair("sym", shape, dtype, seed=4)
    (tl_, tv), (vl_, vv) = torch.linalg.eigh(t, UPLO=uplo), vt.linalg.eigh(v, UPLO=uplo)
    _close(to_numpy(vl_), to_numpy(tl_), dtype)
    tv_, vv_ = to_numpy(tv).astype(np.float64), to_numpy(vv).astype(np.float64)
    _close(vv_ * _column_signs(vv_), tv_ * _column_signs(tv_), dtype, 10)


SVD_SHAPES = [(5, 3), (3, 5), (4, 4), (2, 6, 4), (2, 3, 7)]


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("shape", SVD_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_svd_matches_torch_cuda_up_to_signs(shape, full, dtype):
    t, v, _ = pair("rect", shape, dtype, "transposed", seed=5)
    (tu, ts, tvh), (vu, vs, vvh) = torch.linalg.svd(t, full_matrices=full), vt.linalg.svd(v, full_matrices=full)
    for o, e in ((vu, tu), (vs, ts), (vvh, tvh)):
        assert tuple(o.shape) == tuple(e.shape) and o.is_cuda
    _close(to_numpy(vs), to_numpy(ts), dtype)
    k = min(shape[-2:])
    tu_, vu_ = to_numpy(tu).astype(np.float64)[..., :k], to_numpy(vu).astype(np.float64)[..., :k]
    tvh_, vvh_ = to_numpy(tvh).astype(np.float64)[..., :k, :], to_numpy(vvh).astype(np.float64)[..., :k, :]
    t_sign, v_sign = _column_signs(tu_), _column_signs(vu_)  # (u_j, v_j) flip together
    _close(vu_ * v_sign, tu_ * t_sign, dtype, 10)
    _close(vvh_ * np.swapaxes(v_sign, -1, -2), tvh_ * np.swapaxes(t_sign, -1, -2), dtype, 10)
    a = to_numpy(v).astype(np.float64)
    _close((vu_ * to_numpy(vs).astype(np.float64)[..., None, :]) @ vvh_, a, dtype, 10)  # U S Vh = A
    for m in (to_numpy(vu).astype(np.float64), np.swapaxes(to_numpy(vvh).astype(np.float64), -1, -2)):
        eye = np.eye(m.shape[-1])  # orthonormal columns (full: the complement too)
        _close(np.swapaxes(m, -1, -2) @ m, np.broadcast_to(eye, m.shape[:-2] + eye.shape), dtype, 10)


def _sorted(x):
    """Eigenvalues in (real, imaginary) order (rounded keys: conjugate pairs share a real part)."""
    return np.take_along_axis(x, np.lexsort((np.round(x.imag, 3), np.round(x.real, 3)), axis=-1), axis=-1)


@pytest.mark.parametrize("shape", [(5, 5), (2, 4, 4), (1, 1)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eig_eigenvalues_and_vectors(shape, dtype):
    t, v, _ = pair("rect", shape, dtype, "transposed", seed=6)
    tl_, _ = torch.linalg.eig(t)
    vl_, vv = vt.linalg.eig(v)
    assert repr(vl_.dtype) == str(tl_.dtype) and repr(vv.dtype) == str(tl_.dtype) and vv.is_cuda
    ours, theirs = to_numpy(vl_).astype(np.complex128), to_numpy(tl_).astype(np.complex128)
    _close(_sorted(ours), _sorted(theirs), dtype, 10)
    a = to_numpy(v).astype(np.complex128)
    vec = to_numpy(vv).astype(np.complex128)
    _close(a @ vec, vec * ours[..., None, :], dtype, 10)            # A V = V diag(L)
    _close(np.linalg.norm(vec, axis=-2), np.ones(ours.shape), dtype, 10)
    _close(to_numpy(vt.linalg.eigvals(v)), to_numpy(vl_), dtype)


# -- errors ---------------------------------------------------------------------------------------------------------------

def _singular(L):
    a = L.eye(3, device="cuda").expand(2, 3, 3).clone()
    a[1, 2, 2] = 0
    return a


ERRORS = [  # (name, fn(lib)): torch raises; we must raise the same type
    ("inv_singular", lambda L: L.linalg.inv(L.zeros(3, 3, device="cuda"))),
    ("inv_singular_batch_element", lambda L: L.linalg.inv(_singular(L))),
    ("solve_singular", lambda L: L.linalg.solve(_singular(L), L.ones(2, 3, 1, device="cuda"))),
    ("cholesky_not_positive_definite", lambda L: L.linalg.cholesky(-L.eye(3, device="cuda"))),
    ("cholesky_batch_element", lambda L: L.linalg.cholesky(_singular(L) - 0.5 * L.eye(3, device="cuda"))),
    ("eig_nan", lambda L: L.linalg.eig(L.full((2, 2), float("nan"), device="cuda"))),
    ("solve_shapes", lambda L: L.linalg.solve(L.eye(3, device="cuda"), L.ones(4, 2, device="cuda"))),
    ("inv_not_square", lambda L: L.linalg.inv(L.ones(3, 4, device="cuda"))),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_like_torch_cuda(name, fn):
    check(lambda L: fn(L))


@pytest.mark.parametrize("fn,text", [
    (lambda: vt.linalg.inv(_singular(vt)), "linalg.inv: (Batch element 1): The diagonal element 3 is zero"),
    (lambda: vt.linalg.cholesky(-vt.eye(3, device="cuda")), "the leading minor of order 1 is not positive-definite"),
    (lambda: vt.linalg.solve(_singular(vt), vt.ones(2, 3, 1, device="cuda")), "(Batch element 1)"),
])
def test_error_messages_name_the_batch_element(fn, text):
    with pytest.raises(RuntimeError) as e:
        fn()
    assert text in str(e.value)


def test_a_failed_op_leaves_the_context_usable():
    with pytest.raises(RuntimeError):
        vt.linalg.inv(vt.zeros(2, 2, device="cuda"))
    a = vt.tensor([[2.0, 1.0], [1.0, 3.0]], device="cuda")
    assert np.allclose(to_numpy(vt.linalg.inv(a) @ a), np.eye(2), atol=1e-6)


# -- gradients --------------------------------------------------------------------------------------------------------------

GRADS = [  # (name, loss(lib, *inputs), [(kind, shape), ...]); losses blind to the factors' signs
    ("inv", lambda L, a: wsum(L, L.linalg.inv(a)), [("general", (2, 4, 4))]),
    ("det", lambda L, a: wsum(L, L.linalg.det(a)), [("general", (3, 4, 4))]),
    ("slogdet", lambda L, a: wsum(L, L.linalg.slogdet(a)[1]), [("general", (3, 4, 4))]),
    ("solve", lambda L, a, b: wsum(L, L.linalg.solve(a, b)), [("general", (2, 4, 4)), ("rect", (2, 4, 3))]),
    ("solve_broadcast", lambda L, a, b: wsum(L, L.linalg.solve(a, b)), [("general", (4, 4)), ("rect", (3, 4, 2))]),
    ("cholesky", lambda L, a: wsum(L, L.linalg.cholesky(a)), [("spd", (2, 4, 4))]),
    ("cholesky_upper", lambda L, a: wsum(L, L.linalg.cholesky(a, upper=True)), [("spd", (4, 4))]),
    ("lu_factor", lambda L, a: wsum(L, L.linalg.lu_factor(a)[0]), [("rect", (2, 4, 4))]),
    ("lu_factor_tall", lambda L, a: wsum(L, L.linalg.lu_factor(a)[0]), [("rect", (5, 3))]),
    ("lu_factor_wide", lambda L, a: wsum(L, L.linalg.lu_factor(a)[0]), [("rect", (3, 5))]),
    ("qr", lambda L, a: _qr_loss(L, *L.linalg.qr(a)), [("rect", (2, 5, 3))]),
    ("qr_square", lambda L, a: _qr_loss(L, *L.linalg.qr(a)), [("rect", (4, 4))]),
    ("qr_wide", lambda L, a: _qr_loss(L, *L.linalg.qr(a)), [("rect", (3, 5))]),
    ("eigh", lambda L, a: _eigh_loss(L, *L.linalg.eigh(a)), [("sym", (2, 4, 4))]),
    ("svd_tall", lambda L, a: _svd_loss(L, *L.linalg.svd(a, full_matrices=False)), [("rect", (2, 5, 3))]),
    ("svd_wide", lambda L, a: _svd_loss(L, *L.linalg.svd(a, full_matrices=False)), [("rect", (3, 5))]),
    ("svdvals", lambda L, a: wsum(L, L.linalg.svdvals(a)), [("rect", (2, 4, 3))]),
    ("matrix_exp", lambda L, a: wsum(L, L.linalg.matrix_exp(a)), [("rect", (2, 3, 3))]),
    ("matrix_exp_scaled", lambda L, a: wsum(L, L.linalg.matrix_exp(a * 4)), [("rect", (3, 3))]),
]


def _qr_loss(L, q, r):
    return wsum(L, r.abs()) + wsum(L, q @ q.mT, 1)


def _eigh_loss(L, values, vectors):
    return wsum(L, values) + wsum(L, vectors ** 2, 1)


def _svd_loss(L, u, s, vh):
    return wsum(L, s) + wsum(L, u ** 2, 1) + wsum(L, vh ** 2, 2)


def _grads(L, fn, ins, leaves):
    loss = _run(L, fn, ins)
    return L.autograd.grad(loss, [x for x in leaves if x.requires_grad])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,fn,specs", GRADS, ids=[c[0] for c in GRADS])
def test_gradients_match_torch_cuda(name, fn, specs, dtype):
    t_in, v_in, leaves = _pairs(specs, dtype, "transposed", seed=7, grad=True)
    expected = _grads(torch, fn, t_in, [t for t, _ in leaves])
    got = _grads(vt, fn, v_in, [v for _, v in leaves])
    _on_cuda(got)
    rtol, atol = GRAD_TOL[dtype]
    assert_same(got, expected, rtol=rtol, atol=atol)


def test_inverse_double_backward():
    """The derivative's own ops (inv, matmul on the GPU) differentiated again."""
    _, _, (t, v) = pair("general", (3, 3), "float64", seed=8, grad=True)
    outs = []
    for L, a in ((torch, t), (vt, v)):
        (g,) = L.autograd.grad(wsum(L, L.linalg.inv(a)), [a], create_graph=True)
        outs.append(L.autograd.grad(wsum(L, g, 3), [a]))
    assert_same(outs[1], outs[0], rtol=1e-7, atol=1e-7)


# -- grid sampling -------------------------------------------------------------------------------------------------------

GRID_CASES = [(nd, mode, pad, align) for nd in (2, 3) for mode in ("bilinear", "nearest", "bicubic")
              for pad in ("zeros", "border", "reflection") for align in (False, True)
              if not (nd == 3 and mode == "bicubic")]
GRID_IDS = [f"{nd}d-{mode}-{pad}-{'ac' if align else 'noac'}" for nd, mode, pad, align in GRID_CASES]


def _sample_inputs(nd, dtype, seed=0, grad=False, layout="contiguous", special=False, shape=None):
    """input (N, C, *spatial) and grid (N, *out, nd) as (torch, vibetensor) CUDA pairs, with their leaves;
    the grid reaches past [-1, 1] so the padding modes matter."""
    rng = np.random.default_rng(seed)
    x_shape, g_shape = shape or (((2, 3, 5, 6), (2, 4, 3, 2)) if nd == 2 else ((2, 2, 3, 4, 5), (2, 2, 3, 2, 3)))
    x = rng.uniform(-3, 3, x_shape)
    g = rng.uniform(-1.3, 1.3, g_shape)
    if special:  # torch's handling of non-finite, huge, and boundary coordinates
        flat = g.reshape(-1)
        # (no huge finite values: the reflection's fmod would see whether a compiler fused (g + 1) * size - 1)
        values = [np.nan, np.inf, -np.inf, 1e6, -1e6, 1.0, -1.0, 0.0, 1e3, -7.3]
        flat[::3] = np.resize(values, flat[::3].shape)
    out = []
    for a, transpose in ((x, layout == "transposed"), (g, False)):
        base = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if transpose else a
        t = torch_from_numpy(base).to(DT[dtype][0]).cuda()
        v = vt.from_numpy(base.copy()).to(DT[dtype][1]).cuda()
        if grad:
            t.requires_grad_()
            v.requires_grad_()
        out.append((t.transpose(-1, -2) if transpose else t, v.transpose(-1, -2) if transpose else v, (t, v)))
    if layout == "strided_grid":  # a grid read through a permuted view
        g_t, g_v, leaves = out[1]
        perm = (0,) + tuple(range(nd, 0, -1)) + (nd + 1,)
        gt = g_t.permute(perm).contiguous().permute(perm)
        gv = g_v.permute(perm).contiguous().permute(perm)
        out[1] = (gt, gv, leaves)
    return out


def _sample(L, x, g, mode, pad, align):
    return L.nn.functional.grid_sample(x, g, mode=mode, padding_mode=pad, align_corners=align)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nd,mode,pad,align", GRID_CASES, ids=GRID_IDS)
def test_grid_sample_forward_and_gradients(nd, mode, pad, align, dtype):
    (xt, xv, xl), (gt, gv, gl) = _sample_inputs(nd, dtype, seed=nd, grad=True)
    got, expected = _sample(vt, xv, gv, mode, pad, align), _sample(torch, xt, gt, mode, pad, align)
    _on_cuda(got)
    rtol, atol = TOL[dtype]
    assert_same(got, expected, rtol=rtol, atol=atol)
    w = np.random.default_rng(1).uniform(-1, 1, tuple(expected.shape))
    g_t = torch.autograd.grad(expected, [xl[0], gl[0]], torch.tensor(w, dtype=expected.dtype, device="cuda"))
    g_v = vt.autograd.grad(got, [xl[1], gl[1]], vt.tensor(w, dtype=got.dtype, device="cuda"))
    rtol, atol = GRAD_TOL[dtype]
    assert_same(g_v, g_t, rtol=rtol, atol=atol)


@pytest.mark.parametrize("layout", ["transposed", "strided_grid"])
@pytest.mark.parametrize("nd,mode,pad,align", [(2, "bilinear", "reflection", False), (2, "bicubic", "border", True),
                                               (3, "bilinear", "zeros", True), (3, "nearest", "reflection", False)],
                         ids=str)
def test_grid_sample_strided_inputs(nd, mode, pad, align, layout):
    (xt, xv, xl), (gt, gv, gl) = _sample_inputs(nd, "float32", seed=11, grad=True, layout=layout)
    got, expected = _sample(vt, xv, gv, mode, pad, align), _sample(torch, xt, gt, mode, pad, align)
    assert_same(got, expected, rtol=2e-4, atol=2e-4)
    g_t = torch.autograd.grad(expected.sum(), [xl[0], gl[0]])
    g_v = vt.autograd.grad(got.sum(), [xl[1], gl[1]])
    assert_same(g_v, g_t, rtol=2e-3, atol=2e-3)


# 2-d bilinear sampling with zeros padding and align_corners=True is the case torch hands to cuDNN, whose
# non-finite coordinates give NaN where torch's own kernel (and ours) reads zeros: finite values only there
SPECIAL_CASES = [c for c in GRID_CASES if (c[3] is False or c[1] != "nearest") and c != (2, "bilinear", "zeros", True)]


@pytest.mark.parametrize("nd,mode,pad,align", SPECIAL_CASES, ids=str)
def test_grid_sample_special_coordinates(nd, mode, pad, align):
    """NaN, +-inf, large and boundary grid values: torch's safe_downgrade_to_int_range, fmax clipping
    in the forward and clip_coordinates_set_grad in the backward."""
    (xt, xv, xl), (gt, gv, gl) = _sample_inputs(nd, "float32", seed=12, grad=True, special=True)
    got, expected = _sample(vt, xv, gv, mode, pad, align), _sample(torch, xt, gt, mode, pad, align)
    assert_same(got, expected, rtol=2e-4, atol=2e-4)
    g_t = torch.autograd.grad(expected.nansum(), [xl[0], gl[0]])
    g_v = vt.autograd.grad(got.nansum(), [xl[1], gl[1]])
    assert_same(g_v, g_t, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("nd,mode", [(2, "bilinear"), (2, "nearest"), (2, "bicubic"), (3, "bilinear")], ids=str)
def test_grid_sample_bfloat16(nd, mode):
    """The forward against torch's (both compute coordinates in float32); the gradients against our
    float32 gradients of the same values: torch's backward computes bfloat16 coordinates in bfloat16,
    so its taps may fall in other cells."""
    (xt, xv, _), (gt, gv, _) = _sample_inputs(nd, "bfloat16", seed=13)
    got = _sample(vt, xv, gv, mode, "border", False)
    assert_same(got, _sample(torch, xt, gt, mode, "border", False), rtol=3e-2, atol=6e-2)
    grads = []
    for dtype in (vt.bfloat16, vt.float32):
        x, g = xv.to(dtype).requires_grad_(), gv.to(dtype).requires_grad_()
        out = _sample(vt, x, g, mode, "border", False)
        grads.append([t.float() for t in vt.autograd.grad(out.float().sum(), [x, g])])
    for low, high in zip(*grads):
        np.testing.assert_allclose(to_numpy(low), to_numpy(high), rtol=2e-2, atol=5e-2)


def test_grid_sample_larger_problem():
    shape = ((3, 16, 37, 29), (3, 45, 31, 2))
    (xt, xv, xl), (gt, gv, gl) = _sample_inputs(2, "float32", seed=14, grad=True, shape=shape)
    got, expected = _sample(vt, xv, gv, "bilinear", "zeros", False), _sample(torch, xt, gt, "bilinear", "zeros", False)
    assert_same(got, expected, rtol=2e-4, atol=2e-4)
    g_t = torch.autograd.grad(expected.sum(), [xl[0], gl[0]])
    g_v = vt.autograd.grad(got.sum(), [xl[1], gl[1]])
    assert_same(g_v, g_t, rtol=2e-3, atol=2e-3)


GRID_ERRORS = [  # (name, input shape, grid shape, grid dtype, mode)
    ("dtype_mismatch", (1, 1, 3, 3), (1, 2, 2, 2), "float64", "bilinear"),
    ("ndim_mismatch", (1, 3, 3), (1, 2, 2), "float32", "bilinear"),
    ("grid_last_dim", (1, 1, 3, 3), (1, 2, 2, 1), "float32", "bilinear"),
    ("batch_mismatch", (2, 1, 3, 3), (1, 2, 2, 2), "float32", "bilinear"),
    ("bicubic_3d", (1, 1, 2, 3, 3), (1, 1, 2, 2, 3), "float32", "bicubic"),
]


@pytest.mark.parametrize("name,x_shape,g_shape,g_dtype,mode", GRID_ERRORS, ids=[e[0] for e in GRID_ERRORS])
def test_grid_sample_errors_like_torch_cuda(name, x_shape, g_shape, g_dtype, mode):
    x = (torch.zeros(x_shape, device="cuda"), vt.zeros(x_shape, device="cuda"))
    g = (torch.zeros(g_shape, dtype=getattr(torch, g_dtype), device="cuda"),
         vt.zeros(g_shape, dtype=getattr(vt, g_dtype), device="cuda"))
    check(lambda L, x, g: _sample(L, x, g, mode, "zeros", False), x, g)


# -- no host synchronisation, capturable ---------------------------------------------------------------------------------

def _grid_backward(x, g):
    from vibetensor.ops import conv as ops
    gout = vt.ones(x.shape[0], x.shape[1], g.shape[1], g.shape[2], device="cuda")
    return ops.grid_sampler_backward(gout, x, g, "bicubic", "reflection", False)[1]


NO_SYNC = [  # (name, fn(a (2, 4, 4), x (2, 3, 5, 6), grid (2, 4, 3, 2))): torch's don't synchronise either
    ("det", lambda a, x, g: vt.linalg.det(a)),
    ("slogdet", lambda a, x, g: vt.linalg.slogdet(a)[1]),
    ("lu_factor", lambda a, x, g: vt.linalg.lu_factor(a)[0]),
    ("lu_permutation", lambda a, x, g: vt.linalg.lu(a)[0]),
    ("qr", lambda a, x, g: vt.linalg.qr(a)[0]),
    ("geqrf", lambda a, x, g: vt.geqrf(a)[1]),
    ("matrix_exp", lambda a, x, g: vt.linalg.matrix_exp(a)),
    ("grid_sample", lambda a, x, g: _sample(vt, x, g, "bilinear", "border", True)),
    ("grid_sample_backward", lambda a, x, g: _grid_backward(x, g)),
]


def _no_sync_inputs():
    a = pair("general", (2, 4, 4), "float32", seed=20)[1]
    (_, x, _), (_, g, _) = _sample_inputs(2, "float32", seed=21)
    return a, x, g


@pytest.mark.parametrize("name,fn", NO_SYNC, ids=[c[0] for c in NO_SYNC])
def test_queues_work_without_host_sync(name, fn):
    """No synchronising driver call once warm (kernels compiled, handles made, matrix_exp's table uploaded)."""
    from test_cuda_optim import Syncs
    inputs = _no_sync_inputs()
    fn(*inputs)
    vt.cuda.synchronize()
    with Syncs() as syncs:
        fn(*inputs)
    assert not syncs.calls, syncs.calls


@pytest.mark.parametrize("name,fn", NO_SYNC, ids=[c[0] for c in NO_SYNC])
def test_captures_into_cuda_graph(name, fn):
    """The op captured into a CUDA graph (cuSOLVER's calls included) replays to the eager result."""
    inputs = _no_sync_inputs()
    eager = to_numpy(fn(*inputs))
    vt.cuda.synchronize()
    graph = vt.cuda.CUDAGraph()
    with vt.cuda.graph(graph):
        out = fn(*inputs)
    graph.replay()
    np.testing.assert_allclose(to_numpy(out), eager, rtol=1e-5, atol=1e-5)


def test_checking_ops_synchronise_once():
    """inv, solve, cholesky, eigh, svd read their info arrays back, as torch's do: one copy to the host."""
    from test_cuda_optim import Syncs
    a = pair("spd", (2, 4, 4), "float32", seed=22)[1]
    for fn in (vt.linalg.inv, vt.linalg.cholesky, vt.linalg.eigvalsh, vt.linalg.svdvals,
               lambda m: vt.linalg.solve(m, m)):
        fn(a)
        vt.cuda.synchronize()
        with Syncs() as syncs:
            fn(a)
        reads = [c for c in syncs.calls if c.startswith("cuMemcpyDtoH")]
        assert len(reads) == 1, syncs.calls
