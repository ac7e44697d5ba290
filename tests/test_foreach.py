"""torch._foreach_* and the fused / foreach optimiser paths on CPU, against torch's CPU results."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import make_pair

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SHAPES = [(3, 4), (7,), (), (2, 0), (5, 1, 2)]


def lists(dtype="float32", seed=0, positive=False, n=1):
    """n pairs (torch list, vibetensor list) of tensors with the SHAPES."""
    out = []
    for k in range(n):
        pairs = [make_pair(s, dtype, seed=seed + 10 * k + i, special=False) for i, s in enumerate(SHAPES)]
        tl, vl = [p[0] for p in pairs], [p[1] for p in pairs]
        if positive:
            tl, vl = [t.abs() + 0.5 for t in tl], [v.abs() + 0.5 for v in vl]
        out.append((tl, vl))
    return out


def assert_lists_equal(got, expected, rtol=1e-5, atol=1e-6):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert tuple(g.shape) == tuple(e.shape) and str(g.dtype) == str(e.dtype)
        np.testing.assert_allclose(np.asarray(g.detach().numpy(), np.float64), np.asarray(e.detach().numpy(), np.float64),
                                   rtol=rtol, atol=atol)


SCALARS = [0.5, -2.0, 3.0, 1.5, 0.25]
CASES = [  # (name, fn(lib, a, b, c) -> result list or None, positive inputs)
    ("add_list_alpha", lambda lib, a, b, c: lib._foreach_add(a, b, alpha=2.5), False),
    ("add_scalar", lambda lib, a, b, c: lib._foreach_add(a, 1.5), False),
    ("sub_scalarlist", lambda lib, a, b, c: lib._foreach_sub(a, SCALARS), False),
    ("mul_tensor", lambda lib, a, b, c: lib._foreach_mul(a, lib.tensor(0.75)), False),
    ("div_list", lambda lib, a, b, c: lib._foreach_div(a, c), False),
    ("maximum_list", lambda lib, a, b, c: lib._foreach_maximum(a, b), False),
    ("minimum_scalar", lambda lib, a, b, c: lib._foreach_minimum(a, 0.1), False),
    ("clamp_min_scalar", lambda lib, a, b, c: lib._foreach_clamp_min(a, -0.2), False),
    ("clamp_max_scalarlist", lambda lib, a, b, c: lib._foreach_clamp_max(a, SCALARS), False),
    ("pow_scalar", lambda lib, a, b, c: lib._foreach_pow(a, 2.0), False),
    ("sqrt", lambda lib, a, b, c: lib._foreach_sqrt(a), True),
    ("neg", lambda lib, a, b, c: lib._foreach_neg(a), False),
    ("abs", lambda lib, a, b, c: lib._foreach_abs(a), False),
    ("exp", lambda lib, a, b, c: lib._foreach_exp(a), False),
    ("log", lambda lib, a, b, c: lib._foreach_log(a), True),
    ("reciprocal", lambda lib, a, b, c: lib._foreach_reciprocal(a), True),
    ("sign", lambda lib, a, b, c: lib._foreach_sign(a), False),
    ("sigmoid", lambda lib, a, b, c: lib._foreach_sigmoid(a), False),
    ("addcmul_scalar", lambda lib, a, b, c: lib._foreach_addcmul(a, b, c, 0.7), False),
    ("addcdiv_scalarlist", lambda lib, a, b, c: lib._foreach_addcdiv(a, b, c, SCALARS), False),
    ("lerp_scalar", lambda lib, a, b, c: lib._foreach_lerp(a, b, 0.3), False),
    ("lerp_list", lambda lib, a, b, c: lib._foreach_lerp(a, b, c), False),
    ("norm_2", lambda lib, a, b, c: lib._foreach_norm(a), False),
    ("norm_1", lambda lib, a, b, c: lib._foreach_norm(a, 1), False),
    ("norm_inf", lambda lib, a, b, c: lib._foreach_norm([x for x in a if x.numel()], float("inf")), False),
    ("norm_3", lambda lib, a, b, c: lib._foreach_norm(a, 3), False),
]


@pytest.mark.parametrize("name,fn,positive", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_foreach_out_of_place(name, fn, positive, dtype):
    (ta, va), (tb, vb), (tc, vc) = lists(dtype, 1, positive, n=3)
    if name in ("div_list", "lerp_list"):
        tc, vc = [t.abs() + 0.5 for t in tc], [v.abs() + 0.5 for v in vc]
    assert_lists_equal(fn(vt, va, vb, vc), fn(torch, ta, tb, tc))
    assert_lists_equal(va, ta)  # out-of-place leaves its inputs alone


INPLACE = [  # (name, fn(lib, a, b, c) -> None)
    ("add_", lambda lib, a, b, c: lib._foreach_add_(a, b, alpha=-0.5)),
    ("mul_scalar_", lambda lib, a, b, c: lib._foreach_mul_(a, 3.0)),
    ("div_scalarlist_", lambda lib, a, b, c: lib._foreach_div_(a, SCALARS)),
    ("sqrt_", lambda lib, a, b, c: lib._foreach_sqrt_(c)),
    ("zero_", lambda lib, a, b, c: lib._foreach_zero_(a)),
    ("copy_", lambda lib, a, b, c: lib._foreach_copy_(a, b)),
    ("addcmul_", lambda lib, a, b, c: lib._foreach_addcmul_(a, b, c, -1.5)),
    ("lerp_", lambda lib, a, b, c: lib._foreach_lerp_(a, b, 0.9)),
    ("maximum_", lambda lib, a, b, c: lib._foreach_maximum_(a, b)),
]


@pytest.mark.parametrize("name,fn", INPLACE, ids=[c[0] for c in INPLACE])
def test_foreach_in_place(name, fn):
    (ta, va), (tb, vb), (tc, vc) = lists("float32", 2, n=3)
    tc, vc = [t.abs() + 0.5 for t in tc], [v.abs() + 0.5 for v in vc]
    versions = [v._version.value for v in va]
    got, expected = fn(vt, va, vb, vc), fn(torch, ta, tb, tc)
    assert (got is None) == (expected is None)  # torch 2.13 returns the list itself
    if got is not None:
        assert all(g is v for g, v in zip(got, va if name != "sqrt_" else vc))
    assert_lists_equal(va, ta)
    assert_lists_equal(vc, tc)
    if name not in ("sqrt_",):
        assert all(v._version.value > old for v, old in zip(va, versions))


ERRORS = [  # (name, fn(lib, a, b)) -> both raise the same exception type
    ("empty_list", lambda lib, a, b: lib._foreach_add([], 1.0)),
    ("length_mismatch", lambda lib, a, b: lib._foreach_add(a, b[:2])),
    ("scalarlist_length", lambda lib, a, b: lib._foreach_mul(a, [1.0, 2.0])),
    ("shape_mismatch", lambda lib, a, b: lib._foreach_add(a, b[1:] + b[:1])),
    ("not_a_list", lambda lib, a, b: lib._foreach_sqrt(a[0])),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[e[0] for e in ERRORS])
def test_foreach_errors(name, fn):
    (ta, va), (tb, vb) = lists("float32", 3, n=2)
    with pytest.raises(Exception) as te:
        fn(torch, ta, tb)
    with pytest.raises(type(te.value)):
        fn(vt, va, vb)


def test_foreach_autograd_matches_torch():
    (ta, va), (tb, vb) = lists("float64", 4, n=2)
    for t in ta + va:
        t.requires_grad_(True)
    for lib, a, b in ((torch, ta, tb), (vt, va, vb)):
        out = lib._foreach_mul(lib._foreach_add(a, b, alpha=2.0), 3.0)
        sum(o.sum() for o in out).backward()
    assert_lists_equal([v.grad for v in va], [t.grad for t in ta])


# -- optimisers through the foreach and fused paths -------------------------------------------------------

OPTIMS = [  # (class name, kwargs): each run with foreach=True and, where torch has it on CPU, fused=True
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "maximize": True}),
    ("SGD", {"lr": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5}),
    ("AdamW", {"lr": 0.01, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.9, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01}),
]
FUSED_ON_CPU = ("SGD", "Adam", "AdamW")


def run_steps(lib, cls, kwargs, steps=20, seed=0):
    """`steps` updates of three parameters with fixed pseudo-random gradients."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (5,), (2, 2, 2)]
    params = [lib.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    opt = getattr(lib.optim, cls)(params, **kwargs)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = lib.tensor(g)
        opt.step()
    return params


@pytest.mark.parametrize("flag", ["foreach", "fused"])
@pytest.mark.parametrize("cls,kwargs", OPTIMS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(OPTIMS)])
def test_optimizer_paths_match_torch(cls, kwargs, flag):
    if flag == "fused" and cls not in FUSED_ON_CPU:  # RMSprop has no fused=; fused Adagrad is not written yet
        with pytest.raises((TypeError, NotImplementedError)):
            getattr(vt.optim, cls)([vt.zeros(2, requires_grad=True)], fused=True)
        return
    kw = {**kwargs, flag: True}
    got, expected = run_steps(vt, cls, kw), run_steps(torch, cls, kw)
    assert_lists_equal(got, expected, rtol=1e-4, atol=1e-5)


def test_fused_and_foreach_together_refused():
    for lib in (torch, vt):
        with pytest.raises(RuntimeError, match="cannot be `True` together"):
            lib.optim.AdamW([lib.zeros(2, requires_grad=True)], fused=True, foreach=True)


def test_tensor_lr_follows_scheduler_in_place():
    """A tensor lr is written in place by the scheduler, and the step reads it (torch semantics)."""
    results = []
    for lib in (torch, vt):
        p = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        lr = lib.tensor(0.1)
        opt = lib.optim.Adam([p], lr=lr, fused=True)
        sched = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
        for _ in range(4):
            p.grad = lib.tensor([0.3, -0.1, 0.2])
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] is lr
        results.append((p.detach().clone(), lr.clone()))
    assert_lists_equal([results[1][0], results[1][1]], [results[0][0], results[0][1]])


@pytest.mark.parametrize("foreach", [None, True, False])
def test_clip_grad_norm_and_value(foreach):
    out = []
    for lib in (torch, vt):
        rng = np.random.default_rng(7)
        ps = [lib.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in ((3, 4), (5,))]
        for p in ps:
            p.grad = lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 3)
        total = lib.nn.utils.clip_grad_norm_(ps, 1.5, foreach=foreach)
        lib.nn.utils.clip_grad_value_(ps, 0.2, foreach=foreach)
        out.append([total] + [p.grad for p in ps])
    assert_lists_equal(out[1], out[0])


def test_clip_grad_norm_nonfinite_raises_when_asked():
    for lib in (torch, vt):
        p = lib.tensor([1.0, 2.0], requires_grad=True)
        p.grad = lib.tensor([float("inf"), 1.0])
        with pytest.raises(RuntimeError, match="non-finite"):
            lib.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
