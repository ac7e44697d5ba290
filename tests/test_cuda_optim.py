"""The multi-tensor optimiser step, foreach ops, clip_grad and autograd streams on CUDA, against
torch's CUDA results (marker `cuda`), plus the host-sync count of a training-like loop."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import launcher

pytestmark = pytest.mark.cuda

SHAPES = [(64, 33), (4097,), (), (3, 5, 7), (2048,), (1,)]


def pair_lists(dtype, seed, positive=False):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    tl = [torch.tensor(a, device="cuda").to(getattr(torch, dtype)) for a in arrays]
    vl = [vt.tensor(a, device="cuda").to(getattr(vt, dtype)) for a in arrays]
    return tl, vl


def assert_close(got, expected, dtype="float32"):
    tol = {"float32": 1e-5, "bfloat16": 2e-2, "float64": 1e-10}[dtype]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert tuple(g.shape) == tuple(e.shape) and str(g.dtype) == str(e.dtype)
        np.testing.assert_allclose(g.detach().cpu().float().numpy().astype(np.float64),
                                   e.detach().cpu().float().numpy().astype(np.float64), rtol=tol, atol=tol)


class Launches:
    """Counts kernel launches through our launcher while active."""

    def __enter__(self):
        self.count, self._orig = 0, launcher.Kernel.__call__

        def counting(kernel, *args, **kwargs):
            self.count += 1
            return self._orig(kernel, *args, **kwargs)
        launcher.Kernel.__call__ = counting
        return self

    def __exit__(self, *exc):
        launcher.Kernel.__call__ = self._orig


SYNCING = {"cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize", "cuMemcpyDtoH", "cuMemcpyDtoHAsync",
           "cuMemcpyHtoD", "cuMemFree", "cuMemFreeHost", "cuMemcpy", "cuMemcpyPeer"}


class Syncs:
    """Counts calls of the driver's synchronising entry points (every driver call goes through drv.call)."""

    def __enter__(self):
        self.calls, self._orig = [], drv.call

        def counting(fn, *args):
            if fn.__name__ in SYNCING:
                self.calls.append(fn.__name__)
            return self._orig(fn, *args)
        drv.call = counting
        return self

    def __exit__(self, *exc):
        drv.call = self._orig


FOREACH = [  # (name, fn(lib, a, b, c), positive inputs)
    ("add_list_alpha", lambda lib, a, b, c: lib._foreach_add(a, b, alpha=2.5), False),
    ("mul_scalar_", lambda lib, a, b, c: lib._foreach_mul_(a, 1.5), False),
    ("sub_scalarlist", lambda lib, a, b, c: lib._foreach_sub(a, [0.5, -1.0, 2.0, 3.0, 0.1, 7.0]), False),
    ("mul_device_tensor_", lambda lib, a, b, c: lib._foreach_mul_(a, lib.tensor(0.25, device="cuda")), False),
    ("div_list", lambda lib, a, b, c: lib._foreach_div(a, c), False),
    ("maximum_", lambda lib, a, b, c: lib._foreach_maximum_(a, b), False),
    ("clamp_max_", lambda lib, a, b, c: lib._foreach_clamp_max_(a, 0.3), False),
    ("sqrt", lambda lib, a, b, c: lib._foreach_sqrt(c), False),
    ("neg_", lambda lib, a, b, c: lib._foreach_neg_(a), False),
    ("exp", lambda lib, a, b, c: lib._foreach_exp(a), False),
    ("reciprocal", lambda lib, a, b, c: lib._foreach_reciprocal(c), False),
    ("zero_", lambda lib, a, b, c: lib._foreach_zero_(a), False),
    ("copy_", lambda lib, a, b, c: lib._foreach_copy_(a, b), False),
    ("addcmul_", lambda lib, a, b, c: lib._foreach_addcmul_(a, b, c, 0.7), False),
    ("addcdiv_scalarlist", lambda lib, a, b, c: lib._foreach_addcdiv(a, b, c, [0.5, -1.0, 2.0, 3.0, 0.1, 7.0]),
     False),
    ("lerp_scalar_", lambda lib, a, b, c: lib._foreach_lerp_(a, b, 0.3), False),
    ("lerp_list", lambda lib, a, b, c: lib._foreach_lerp(a, b, c), False),
    ("norm_2", lambda lib, a, b, c: lib._foreach_norm(a), False),
    ("norm_1", lambda lib, a, b, c: lib._foreach_norm(a, 1), False),
    ("norm_inf", lambda lib, a, b, c: lib._foreach_norm(a, float("inf")), False),
    ("norm_3", lambda lib, a, b, c: lib._foreach_norm(a, 3), False),
]


@pytest.mark.parametrize("name,fn,positive", FOREACH, ids=[c[0] for c in FOREACH])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_foreach_ops(name, fn, positive, dtype):
    (ta, va), (tb, vb), (tc, vc) = pair_lists(dtype, 1), pair_lists(dtype, 2), pair_lists(dtype, 3, True)
    got, expected = fn(vt, va, vb, vc), fn(torch, ta, tb, tc)
    assert_close(got, expected, dtype)
    assert_close(va, ta, dtype)


def test_foreach_one_launch_per_dtype_group():
    (_, va), (_, vb) = pair_lists("float32", 1), pair_lists("bfloat16", 2)
    mixed = va + vb
    vt._foreach_mul_(mixed, 2.0)  # builds the tables
    with Launches() as n:
        vt._foreach_mul_(mixed, 2.0)
    assert n.count == 2


# -- optimisers: 20 steps against torch CUDA ---------------------------------------------------------------

def run(lib, cls, kwargs, n_params=6, steps=20, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(37, 5), (4096,), (3,), (130, 17), (1,), (2049,)][:n_params]
    params = [lib.tensor(rng.standard_normal(s).astype(np.float32), device="cuda").to(getattr(lib, dtype))
              .requires_grad_() for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    opt = getattr(lib.optim, cls)(params, **kwargs)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = lib.tensor(g, device="cuda").to(p.dtype)
        opt.step()
    return params, opt


OPTIMS = [
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "foreach": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01, "fused": True}),
    ("Adam", {"lr": 0.01, "foreach": True, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "foreach": True}),
    ("SGD", {"lr": 0.1, "maximize": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "foreach": True}),
]


@pytest.mark.parametrize("cls,kwargs", OPTIMS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(OPTIMS)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_optimizer_20_steps_match_torch(cls, kwargs, dtype):
    torch_kwargs = dict(kwargs)
    if dtype == "bfloat16" and cls in ("Adam", "AdamW", "SGD") and "foreach" not in kwargs:
        # our CUDA default is the fused kernel (one rounding per step): in bfloat16 it follows torch's
        # fused step, not its foreach default (which rounds after every op)
        torch_kwargs["fused"] = True
    (got, _), (expected, _) = run(vt, cls, kwargs, dtype=dtype), run(torch, cls, torch_kwargs, dtype=dtype)
    if dtype == "float32":
        assert_close(got, expected)
    else:
        assert_close_bf16_steps(got, expected)


def assert_close_bf16_steps(got, expected):
    """20 bfloat16 steps whose updates (lr 0.01) are below one ulp of parameters near 2: whether an
    update rounds to a full ulp or to nothing can flip on the last bit of the float32 math, so a
    few elements may drift a few ulps; a wrong kernel differs almost everywhere."""
    g = np.concatenate([t.detach().cpu().float().numpy().ravel() for t in got])
    e = np.concatenate([t.detach().cpu().float().numpy().ravel() for t in expected])
    off = np.abs(g - e) > 2e-2 * np.maximum(1.0, np.abs(e))
    assert off.mean() < 0.01 and np.abs(g - e).max() < 0.15, (off.sum(), np.abs(g - e).max())


@pytest.mark.parametrize("cls,kwargs", [("AdamW", {"lr": 0.01}), ("SGD", {"lr": 0.1, "momentum": 0.9}),
                                        ("Adam", {"lr": 0.01, "amsgrad": True})])
def test_step_launches_constant_in_n(cls, kwargs):
    counts = []
    for n in (2, 6):
        params, opt = run(vt, cls, kwargs, n_params=n, steps=2)
        opt.step()  # tables cached: the steady state
        with Launches() as c:
            opt.step()
        counts.append(c.count)
    assert counts[0] == counts[1] <= 2, counts


def test_capturable_step_in_graph_follows_device_lr():
    """Adam(capturable) with a device lr, captured once; a scheduler writes the lr in place
    between replays; parameters equal torch eager with the same schedule."""
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s).astype(np.float32) for s in ((16, 8), (8,))]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in init] for _ in range(6)]
    tp = [torch.tensor(a, device="cuda", requires_grad=True) for a in init]
    topt = torch.optim.Adam(tp, lr=0.05)
    tsched = torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.7)
    vp = [vt.tensor(a, device="cuda", requires_grad=True) for a in init]
    lr = vt.tensor(0.05, device="cuda")
    vopt = vt.optim.Adam(vp, lr=lr, capturable=True)
    vsched = vt.optim.lr_scheduler.ExponentialLR(vopt, gamma=0.7)
    static = [vt.zeros(a.shape, device="cuda") for a in init]
    for p, g in zip(vp, static):
        p.grad = g
    for p, g in zip(tp, grads[0]):
        p.grad = torch.tensor(g, device="cuda")
    for s, g in zip(static, grads[0]):
        s.copy_(vt.tensor(g))
    # step 1 eagerly (builds state and tables), then capture step 2's update
    topt.step(), tsched.step()
    vopt.step(), vsched.step()
    graph = vt.cuda.CUDAGraph()
    side = vt.cuda.Stream()
    side.wait_stream(vt.cuda.current_stream())
    with vt.cuda.stream(side):
        vopt.step()  # warm-up on the capture stream: table upload and compile outside the capture
    vt.cuda.current_stream().wait_stream(side)
    vt.cuda.synchronize()
    topt.step()  # torch takes the same extra (warm-up) step
    with vt.cuda.graph(graph, stream=side):
        vopt.step()
    for gs in grads[1:]:
        for p, g in zip(tp, gs):
            p.grad = torch.tensor(g, device="cuda")
        for s, g in zip(static, gs):
            s.copy_(vt.tensor(g))
        topt.step(), tsched.step()
        side.wait_stream(vt.cuda.current_stream())  # the scheduler's lr write comes first
        graph.replay(side)
        vt.cuda.current_stream().wait_stream(side)
        vsched.step()
    vt.cuda.synchronize()
    assert abs(float(lr.cpu()) - topt.param_groups[0]["lr"]) < 1e-7
    assert_close(vp, tp)


def test_clip_grad_norm_matches_torch_without_sync():
    out = []
    for lib in (torch, vt):
        rng = np.random.default_rng(9)
        ps = [lib.tensor(rng.standard_normal(s).astype(np.float32), device="cuda", requires_grad=True)
              for s in ((300, 7), (5000,), (1,))]
        for p in ps:
            p.grad = lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 3, device="cuda")
        lib.nn.utils.clip_grad_norm_(ps, 1.0)  # warm-up (compiles, builds tables)
        if lib is vt:
            with Syncs() as s:
                total = lib.nn.utils.clip_grad_norm_(ps, 1.0)
                lib.nn.utils.clip_grad_value_(ps, 0.01)
            assert s.calls == [], s.calls
        else:
            total = lib.nn.utils.clip_grad_norm_(ps, 1.0)
            lib.nn.utils.clip_grad_value_(ps, 0.01)
        out.append([total] + [p.grad for p in ps])
    assert_close(out[1], out[0])


def test_backward_runs_on_forward_stream():
    side = vt.cuda.Stream()
    x = vt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device="cuda", requires_grad=True)
    side.wait_stream(vt.cuda.current_stream())
    with vt.cuda.stream(side):
        y = (x * x).sum()
    y.backward()  # called on the default stream; the nodes ran on `side`
    vt.cuda.synchronize()
    np.testing.assert_allclose(x.grad.cpu().numpy(), 2 * np.arange(12, dtype=np.float32).reshape(3, 4))
    mul_node = y.grad_fn.next_functions[0][0]
    assert mul_node.stream is side and y.grad_fn.stream is side


def _has_cuda_kernel(name):
    from vibetensor.dispatch import DispatchKey, get
    return DispatchKey.CUDA in get(name).table


def test_training_loop_has_no_host_sync():
    """forward (linear via addmm, relu, mse), backward, clip, AdamW step, zero_grad: no driver sync."""
    rng = np.random.default_rng(0)
    model = vt.nn.Sequential(vt.nn.Linear(32, 64), vt.nn.ReLU() if _has_cuda_kernel("where") else vt.nn.Identity(),
                             vt.nn.Linear(64, 8)).to("cuda")
    opt = vt.optim.AdamW(model.parameters(), lr=1e-3)
    x = vt.tensor(rng.standard_normal((16, 32)).astype(np.float32), device="cuda")
    y = vt.tensor(rng.standard_normal((16, 8)).astype(np.float32), device="cuda")

    def step():
        out = model(x)
        d = out - y
        loss = (d * d).mean()
        loss.backward()
        vt.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        return loss

    for _ in range(3):
        step()
    vt.cuda.synchronize()
    with Syncs() as s:
        for _ in range(5):
            loss = step()
    assert s.calls == [], s.calls
    assert np.isfinite(float(loss.cpu()))
