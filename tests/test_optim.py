"""torch.optim against torch: 20-step training runs per optimiser configuration (parameters equal
torch's after every step, optimiser state at the end), state_dict format and resume in both directions
(torch's state_dict continues in ours and ours in torch's), 50-step scheduler traces, gradient clipping."""
import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import vibetensor.torch as vt


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def to_vt(t):
    return vt.from_numpy(t.detach().numpy().copy())


def to_np(t):
    return np.array(t.detach().numpy(), copy=True)


def make_models():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    vm = vt.nn.Sequential(vt.nn.Linear(4, 8), vt.nn.Tanh(), vt.nn.Linear(8, 3))
    vm.load_state_dict(OrderedDict((k, to_vt(v)) for k, v in tm.state_dict().items()))
    return tm, vm


def groups(lib_model, first_kw):
    """Two parameter groups: the first layer with overrides, the last with the defaults."""
    return [dict(params=lib_model[0].parameters(), **first_kw), {"params": lib_model[2].parameters()}]


def batches(n):
    rng = np.random.default_rng(5)
    return [(rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32))
            for _ in range(n)]


def train(lib, model, opt, data):
    """Steps over data; returns the parameters (NumPy copies) after every step."""
    trace = []
    for x, y in data:
        opt.zero_grad()
        loss = ((model(lib.from_numpy(x.copy())) - lib.from_numpy(y.copy())) ** 2).mean()
        loss.backward()
        opt.step()
        trace.append([to_np(p) for p in model.parameters()])
    return trace


def assert_traces_close(v_trace, t_trace, rtol=2e-4, atol=1e-5):
    assert len(v_trace) == len(t_trace)
    for step, (vs, ts) in enumerate(zip(v_trace, t_trace)):
        for i, (v, t) in enumerate(zip(vs, ts)):
            np.testing.assert_allclose(v, t, rtol=rtol, atol=atol, err_msg=f"step {step + 1}, parameter {i}")


# (name, class name, kwargs, first group overrides)
OPTIMS = [
    ("sgd", "SGD", {"lr": 0.1}, {}),
    ("sgd_weight_decay", "SGD", {"lr": 0.1, "weight_decay": 0.05}, {"lr": 0.05}),
    ("sgd_momentum", "SGD", {"lr": 0.05, "momentum": 0.9}, {"lr": 0.02}),
    ("sgd_nesterov_wd", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, {}),
    ("sgd_dampening_maximize", "SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "maximize": True},
     {"momentum": 0.0}),
    ("adam", "Adam", {"lr": 0.01}, {"lr": 0.003}),
    ("adam_amsgrad_wd", "Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "betas": (0.8, 0.99)}, {}),
    ("adam_maximize_eps", "Adam", {"lr": 0.01, "maximize": True, "eps": 1e-3}, {}),
    ("adam_amsgrad_maximize", "Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}, {"lr": 0.005}),
    ("adamw", "AdamW", {"lr": 0.01}, {"weight_decay": 0.5}),
    ("adamw_amsgrad", "AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}, {}),
    ("adamw_maximize", "AdamW", {"lr": 0.01, "maximize": True}, {"lr": 0.02}),
    ("adamw_amsgrad_maximize", "AdamW", {"lr": 0.01, "amsgrad": True, "maximize": True, "weight_decay": 0.2}, {}),
    ("rmsprop", "RMSprop", {"lr": 0.01}, {}),
    ("rmsprop_centered_momentum", "RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9, "alpha": 0.9,
                                              "weight_decay": 0.01}, {"lr": 0.005}),
    ("rmsprop_maximize", "RMSprop", {"lr": 0.001, "maximize": True, "momentum": 0.5}, {}),
    ("adagrad", "Adagrad", {"lr": 0.1}, {}),
    ("adagrad_decay", "Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1,
                                  "weight_decay": 0.01}, {"lr": 0.05}),
]


def _compare_state(topt, vopt, rtol=2e-4, atol=1e-5):
    tsd, vsd = topt.state_dict(), vopt.state_dict()
    assert vsd["param_groups"] == tsd["param_groups"]
    assert list(vsd["state"]) == list(tsd["state"])
    for i, tstate in tsd["state"].items():
        vstate = vsd["state"][i]
        assert list(vstate) == list(tstate)
        for k, tv in tstate.items():
            assert tuple(vstate[k].shape) == tuple(tv.shape) and str(vstate[k].dtype) == str(tv.dtype), k
            np.testing.assert_allclose(to_np(vstate[k]), to_np(tv), rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("line", OPTIMS, ids=[o[0] for o in OPTIMS])
def test_optimizer_20_steps(line):
    name, cls, kw, first = line
    tm, vm = make_models()
    topt = getattr(torch.optim, cls)(groups(tm, first), **kw)
    vopt = getattr(vt.optim, cls)(groups(vm, first), **kw)
    assert repr(vopt) == repr(topt)
    data = batches(20)
    assert_traces_close(train(vt, vm, vopt, data), train(torch, tm, topt, data))
    assert [k for k, _ in vm.named_parameters()] == [k for k, _ in tm.named_parameters()]
    _compare_state(topt, vopt)


def _state_to(lib, sd):
    """An optimizer state_dict with its tensors converted to lib's (the format is the same)."""
    conv = to_vt if lib is vt else (lambda t: torch.from_numpy(to_np(t)))
    return {"state": {i: {k: conv(v) for k, v in s.items()} for i, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def _model_like(lib, src):
    """A fresh model of lib holding src's current weights."""
    m = make_models()[0 if lib is torch else 1]
    conv = to_vt if lib is vt else (lambda t: torch.from_numpy(to_np(t)))
    m.load_state_dict(OrderedDict((k, conv(v)) for k, v in src.state_dict().items()))
    return m


RESUME = [
    ("Adam", {"lr": 0.01, "amsgrad": True}, {"lr": 0.003}),
    ("AdamW", {"lr": 0.01, "maximize": True, "weight_decay": 0.1}, {}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"lr": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2}, {}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}, {"lr": 0.02}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}, {"lr": 0.05}),
]


@pytest.mark.parametrize("cls,kw,first", RESUME, ids=[f"{r[0]}{i}" for i, r in enumerate(RESUME)])
def test_optimizer_state_dict_resume(cls, kw, first):
    """After 10 steps, a fresh optimiser loads a state_dict and the next 10 steps continue identically:
    ours from ours, ours from torch's, and torch's from ours."""
    tm, vm = make_models()
    topt = getattr(torch.optim, cls)(groups(tm, first), **kw)
    vopt = getattr(vt.optim, cls)(groups(vm, first), **kw)
    data = batches(20)
    assert_traces_close(train(vt, vm, vopt, data[:10]), train(torch, tm, topt, data[:10]))
    t_sd, v_sd = topt.state_dict(), vopt.state_dict()  # (their tensors are the live state, as torch's)
    resumed = {}
    for name, lib, src_model, sd in (("vt<-vt", vt, vm, copy.deepcopy(v_sd)), ("vt<-torch", vt, tm, _state_to(vt, t_sd)),
                                      ("torch<-vt", torch, vm, _state_to(torch, v_sd))):
        m = _model_like(lib, src_model)
        opt = getattr(lib.optim, cls)(groups(m, first), **kw)
        opt.load_state_dict(sd)
        resumed[name] = (m, opt)
    # the loaded state is exactly the saved one
    _compare_state(topt, resumed["vt<-torch"][1], rtol=0, atol=0)
    _compare_state(resumed["torch<-vt"][1], vopt, rtol=0, atol=0)
    t_rest, v_rest = train(torch, tm, topt, data[10:]), train(vt, vm, vopt, data[10:])
    assert_traces_close(v_rest, t_rest)
    assert_traces_close(train(vt, *resumed["vt<-vt"], data[10:]), v_rest, rtol=0, atol=0)
    assert_traces_close(train(vt, *resumed["vt<-torch"], data[10:]), t_rest)
    assert_traces_close(v_rest, train(torch, *resumed["torch<-vt"], data[10:]))
    _compare_state(topt, resumed["vt<-torch"][1])


def test_optimizer_errors_match_torch():
    cases = [
        lambda lib, ps: lib.optim.SGD(ps, lr=-1),
        lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=-0.5),
        lambda lib, ps: lib.optim.SGD(ps, lr=0.1, nesterov=True),
        lambda lib, ps: lib.optim.Adam(ps, betas=(1.0, 0.9)),
        lambda lib, ps: lib.optim.Adam(ps, eps=-1),
        lambda lib, ps: lib.optim.AdamW(ps, weight_decay=-1),
        lambda lib, ps: lib.optim.RMSprop(ps, alpha=-1),
        lambda lib, ps: lib.optim.Adagrad(ps, lr_decay=-1),
        lambda lib, ps: lib.optim.SGD([], lr=0.1),
        lambda lib, ps: lib.optim.SGD(ps[0], lr=0.1),
        lambda lib, ps: lib.optim.SGD([{"params": ps}, {"params": ps[:1]}], lr=0.1),
        lambda lib, ps: lib.optim.SGD([ps[0] * 2], lr=0.1),
        lambda lib, ps: lib.optim.SGD([{"params": set(ps)}], lr=0.1),
        lambda lib, ps: lib.optim.SGD([{"lr": 0.1}], lr=0.1),
    ]
    for case in cases:
        tps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
        vps = [vt.nn.Parameter(vt.zeros(2)), vt.nn.Parameter(vt.zeros(3))]
        with pytest.raises(Exception) as te:
            case(torch, tps)
        with pytest.raises(Exception) as ve:
            case(vt, vps)
        assert type(ve.value) is type(te.value) and str(ve.value) == str(te.value)


def test_zero_grad_add_param_group_closure():
    tm, vm = make_models()
    opt = vt.optim.SGD(vm[0].parameters(), lr=0.1)
    opt.add_param_group({"params": vm[2].parameters(), "lr": 0.5})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5] and opt.param_groups[1]["momentum"] == 0

    def closure():
        opt.zero_grad()
        loss = vm(vt.ones(2, 4)).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert loss.shape == ()
    opt.zero_grad(set_to_none=False)
    assert float(vm[0].weight.grad.abs().sum()) == 0.0
    opt.zero_grad()
    assert vm[0].weight.grad is None
    # parameters without grads are skipped
    opt.step()


# -- schedulers: lr (and momentum) per step for 50 steps -------------------------------------------------------
SCHEDS = [
    ("step", lambda S, o: S.StepLR(o, step_size=4, gamma=0.5)),
    ("multistep", lambda S, o: S.MultiStepLR(o, milestones=[3, 7, 7, 20], gamma=0.3)),
    ("exponential", lambda S, o: S.ExponentialLR(o, gamma=0.9)),
    ("cosine", lambda S, o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("lambda", lambda S, o: S.LambdaLR(o, lambda e: 0.95 ** e)),
    ("lambda_per_group", lambda S, o: S.LambdaLR(o, [lambda e: 1.0 / (e + 1), lambda e: 0.9 ** e])),
    ("linear", lambda S, o: S.LinearLR(o, start_factor=0.1, total_iters=8)),
    ("constant", lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=4)),
    ("polynomial", lambda S, o: S.PolynomialLR(o, total_iters=12, power=2.0)),
    ("onecycle", lambda S, o: S.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=51)),
    ("onecycle_linear_3phase", lambda S, o: S.OneCycleLR(o, max_lr=0.5, total_steps=60, anneal_strategy="linear",
                                                         three_phase=True)),
    ("sequential", lambda S, o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5),
                                                   S.ExponentialLR(o, gamma=0.9)], milestones=[5])),
    ("sequential_cosine", lambda S, o: S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=3),
                                                          S.CosineAnnealingLR(o, T_max=8)], milestones=[6])),
]


def _trace(lib, make, opt_cls):
    p1, p2 = lib.nn.Parameter(lib.zeros(2)), lib.nn.Parameter(lib.zeros(2))
    opt = getattr(lib.optim, opt_cls)([{"params": [p1]}, {"params": [p2], "lr": 0.2}], lr=0.1,
                                      **({"momentum": 0.9} if opt_cls == "SGD" else {}))
    sched = make(lib.optim.lr_scheduler, opt)
    trace = [sched.get_last_lr()]
    for _ in range(50):
        opt.step()
        sched.step()
        trace.append(sched.get_last_lr() + [g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
    return trace, sched


@pytest.mark.parametrize("line", SCHEDS, ids=[s[0] for s in SCHEDS])
@pytest.mark.parametrize("opt_cls", ["SGD", "Adam"])
def test_scheduler_trace(line, opt_cls):
    name, make = line
    t_trace, t_sched = _trace(torch, make, opt_cls)
    v_trace, v_sched = _trace(vt, make, opt_cls)
    np.testing.assert_allclose(np.array(v_trace[1:], dtype=float), np.array(t_trace[1:], dtype=float), rtol=1e-12)
    np.testing.assert_allclose(np.array(v_trace[0]), np.array(t_trace[0]), rtol=1e-12)

    def plain(sd):
        return {k: v for k, v in sd.items() if k not in ("lr_lambdas", "_schedulers", "_anneal_func_type")}
    assert sorted(v_sched.state_dict()) == sorted(t_sched.state_dict())
    assert plain(v_sched.state_dict()) == plain(t_sched.state_dict())


def test_scheduler_state_dict_resume_and_epoch():
    make = SCHEDS[3][1]
    _, v_sched = _trace(vt, make, "SGD")
    saved = v_sched.state_dict()
    p = vt.nn.Parameter(vt.zeros(2))
    opt = vt.optim.SGD([{"params": [p]}, {"params": [vt.nn.Parameter(vt.zeros(1))], "lr": 0.2}], lr=0.1)
    s2 = make(vt.optim.lr_scheduler, opt)
    s2.load_state_dict(saved)
    assert s2.last_epoch == 50 and s2.get_last_lr() == v_sched.get_last_lr()
    # step(epoch) uses the closed form, as torch
    for lib in (torch, vt):
        q = lib.nn.Parameter(lib.zeros(1))
        o = lib.optim.SGD([q], lr=1.0)
        s = lib.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)
        s.step(7)
        assert s.get_last_lr() == [0.25]


# -- gradient clipping ------------------------------------------------------------------------------------------
def _grads_pair(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) * scale).astype(np.float32) for s in [(3, 4), (5,), (2, 2, 2)]]
    tps, vps = [], []
    for a in arrays:
        tp, vp = torch.nn.Parameter(torch.zeros(a.shape)), vt.nn.Parameter(vt.zeros(a.shape))
        tp.grad, vp.grad = torch.from_numpy(a.copy()), vt.from_numpy(a.copy())
        tps.append(tp)
        vps.append(vp)
    tps.append(torch.nn.Parameter(torch.zeros(2)))  # no grad: skipped
    vps.append(vt.nn.Parameter(vt.zeros(2)))
    return tps, vps


@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 1.0), (1, 0.5), (float("inf"), 0.3), (3.0, 100.0),
                                                ("inf", 0.3), (2.0, 0.0)])
def test_clip_grad_norm(norm_type, max_norm):
    tps, vps = _grads_pair(0)
    t_total = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    v_total = vt.nn.utils.clip_grad_norm_(vps, max_norm, norm_type=norm_type)
    assert isinstance(v_total, vt.Tensor) and v_total.shape == ()
    np.testing.assert_allclose(to_np(v_total), to_np(t_total), rtol=1e-5)
    for tp, vp in zip(tps, vps):
        if tp.grad is None:
            assert vp.grad is None
        else:
            np.testing.assert_allclose(to_np(vp.grad), to_np(tp.grad), rtol=1e-5, atol=1e-7)


def test_clip_grad_single_tensor_value_and_errors():
    tps, vps = _grads_pair(1)
    t_total = torch.nn.utils.clip_grad_norm_(tps[0], 0.5)
    v_total = vt.nn.utils.clip_grad_norm_(vps[0], 0.5)
    np.testing.assert_allclose(to_np(v_total), to_np(t_total), rtol=1e-5)
    torch.nn.utils.clip_grad_value_(tps, 0.3)
    vt.nn.utils.clip_grad_value_(vps, 0.3)
    for tp, vp in zip(tps[:3], vps[:3]):
        np.testing.assert_allclose(to_np(vp.grad), to_np(tp.grad), rtol=1e-6)
    assert float(vt.nn.utils.clip_grad_norm_([vt.nn.Parameter(vt.zeros(1))], 1.0)) == 0.0
    tps, vps = _grads_pair(2)
    tps[0].grad[0, 0] = float("inf")
    vps[0].grad[0, 0] = float("inf")
    with pytest.raises(RuntimeError) as te:
        torch.nn.utils.clip_grad_norm_(tps, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as ve:
        vt.nn.utils.clip_grad_norm_(vps, 1.0, error_if_nonfinite=True)
    assert str(ve.value) == str(te.value)
    before = to_np(vps[1].grad)
    vt.nn.utils.clip_grad_norm_(vps, 1.0)  # non-finite norm without the check: scaled, as torch
    torch.nn.utils.clip_grad_norm_(tps, 1.0)
    np.testing.assert_array_equal(to_np(vps[1].grad), to_np(tps[1].grad))
    assert not np.array_equal(before, to_np(vps[1].grad))
    tps, vps = _grads_pair(3)
    t_total = torch.nn.utils.clip_grad_norm_(tps, 1.0, foreach=True)
    v_total = vt.nn.utils.clip_grad_norm_(vps, 1.0, foreach=True)
    np.testing.assert_allclose(to_np(v_total), to_np(t_total), rtol=1e-5)
