"""clip_grad_norm_ as one multi-tensor op, and the table cache as gradients move, on CUDA against
torch's CUDA results (marker `cuda`); a captured step with clipping and the fused SGD equals the
eager steps."""
import numpy as np
import pytest
import torch

import vibetensor
import vibetensor.torch as vt

pytestmark = pytest.mark.cuda

SHAPES = [(64, 33), (4097,), (), (3, 5, 7), (2048,), (1,), (0,)]
TOL = {"float32": 2e-6, "bfloat16": 2e-2, "float64": 1e-12}


def np_of(t):
    return t.detach().cpu().float().numpy().astype(np.float64) if t.dtype in (torch.bfloat16, vt.bfloat16) \
        else t.detach().cpu().numpy().astype(np.float64)


def with_grads(lib, dtype, seed, scale=3.0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    ps = []
    for s in shapes:
        p = lib.zeros(s, device="cuda", dtype=getattr(lib, dtype), requires_grad=True)
        p.grad = lib.tensor(rng.standard_normal(s) * scale, device="cuda").to(getattr(lib, dtype))
        ps.append(p)
    return ps


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 1.0), (1.0, 5.0), (float("inf"), 0.5), (3.0, 2.0), (2.0, 1e6)])
def test_clip_grad_norm_matches_torch(dtype, norm_type, max_norm):
    shapes = SHAPES if norm_type != float("inf") else SHAPES[:-1]  # torch refuses the inf norm of an empty tensor
    tp, vp = with_grads(torch, dtype, 1, shapes=shapes), with_grads(vt, dtype, 1, shapes=shapes)
    expected = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type, foreach=True)
    got = vt.nn.utils.clip_grad_norm_(vp, max_norm, norm_type)
    tol = TOL[dtype]
    np.testing.assert_allclose(np_of(got), np_of(expected), rtol=tol, atol=tol)
    assert got.dtype == getattr(vt, dtype) and got.shape == ()
    for g, e in zip(vp, tp):
        np.testing.assert_allclose(np_of(g.grad), np_of(e.grad), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_op_clip_equals_the_op_by_op_clip(dtype):
    """The fused coefficient (IEEE division) and the op-by-op one (clip_grads_with_norm_) agree."""
    a, b = with_grads(vt, dtype, 2), with_grads(vt, dtype, 2)
    total_a = vt.nn.utils.clip_grad_norm_(a, 1.0)
    total_b = vt.nn.utils.get_total_norm([p.grad for p in b])
    vt.nn.utils.clip_grads_with_norm_(b, 1.0, total_b)
    np.testing.assert_allclose(np_of(total_a), np_of(total_b), rtol=1e-12)
    for p, q in zip(a, b):
        np.testing.assert_allclose(np_of(p.grad), np_of(q.grad), rtol=TOL[dtype], atol=TOL[dtype])


def test_mixed_dtypes_clip_matches_torch():
    tp = with_grads(torch, "float32", 3, shapes=SHAPES[:3]) + with_grads(torch, "bfloat16", 4, shapes=SHAPES[3:])
    vp = with_grads(vt, "float32", 3, shapes=SHAPES[:3]) + with_grads(vt, "bfloat16", 4, shapes=SHAPES[3:])
    expected = torch.nn.utils.clip_grad_norm_(tp, 1.0, foreach=True)
    got = vt.nn.utils.clip_grad_norm_(vp, 1.0)
    # torch rounds each bfloat16 tensor's norm to bfloat16 before combining the groups' norms; ours
    # combines the exact sums of squares: the totals agree to bfloat16's precision (measured 4.5e-4)
    np.testing.assert_allclose(np_of(got), np_of(expected), rtol=2 ** -8)
    for g, e in zip(vp, tp):  # (the float32 gradients carry the coefficient's difference too)
        tol = TOL["bfloat16"] if g.dtype == vt.bfloat16 else 2 ** -8
        np.testing.assert_allclose(np_of(g.grad), np_of(e.grad), rtol=tol, atol=1e-6)


def test_steps_with_moving_gradients_match_torch():
    """New gradients every step, at addresses that change (other allocations in between) or
    recur: clip + SGD from the cached tables follows torch step for step."""
    rng = np.random.default_rng(5)
    shapes = [(37, 5), (4096,), (3,), (130, 17), (1,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) * 2 for s in shapes] for _ in range(8)]
    out = []
    for lib in (torch, vt):
        ps = [lib.tensor(a, device="cuda", requires_grad=True) for a in init]
        opt = lib.optim.SGD(ps, lr=0.1)
        keep = []
        for i, gs in enumerate(grads):
            if i % 3 == 1:
                keep.append(lib.empty(1000 * (i + 1), device="cuda"))  # shifts the next gradients
            for p, g in zip(ps, gs):
                p.grad = lib.tensor(g, device="cuda")
            lib.nn.utils.clip_grad_norm_(ps, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        out.append([np_of(p) for p in ps])
    for g, e in zip(out[1], out[0]):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_captured_step_with_clipping_equals_eager_steps():
    """zero_grad, forward, backward, clip_grad_norm_, fused SGD captured by vibetensor.compile: the
    tables the graph reads stay valid at every replay (the gradients live in the graph's pool)."""
    def make():
        vt.manual_seed(0)
        model = vt.nn.Sequential(vt.nn.Linear(16, 64), vt.nn.Tanh(), vt.nn.Linear(64, 4)).cuda()
        opt = vt.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad(set_to_none=True)
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            vt.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            return loss
        return model, step
    vt.manual_seed(100)
    data = [(vt.randn(32, 16, device="cuda"), vt.randn(32, 4, device="cuda") * 10) for _ in range(6)]
    (eager_model, eager_step), (graph_model, graph_step) = make(), make()
    graph_step = vibetensor.compile(graph_step)
    eager = [float(eager_step(x, y).cpu()) for x, y in data]
    captured = [float(graph_step(x, y).cpu()) for x, y in data]
    np.testing.assert_allclose(captured, eager, rtol=1e-5, atol=1e-7)
    for p, q in zip(graph_model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(np_of(p), np_of(q), rtol=1e-5, atol=1e-6)
