"""Autograd against torch: derivative formulas (first and second order, gradcheck), the engine
(accumulation, retain_graph, grad(), hooks and their order, reentrancy, threads), grad modes,
in-place rules and version counters, custom Functions, anomaly mode, and memory release."""
import gc
import threading
import warnings
import weakref

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same
from vibetensor import dispatch
from vibetensor.autograd import derivative, engine
from vibetensor.ops import elementwise as ew
from vibetensor.tensor.tensor import alias

LIBS = (torch, vt)


def _arrays(shapes, seed, domain, dtype):
    rng = np.random.default_rng(seed)
    if domain == "ties":  # small integers: maximum/minimum/fmax see equal operands
        return [rng.integers(-2, 3, s).astype(dtype) for s in shapes]
    lo, hi = domain
    return [rng.uniform(lo, hi, s).astype(dtype) for s in shapes]


def _leaves(lib, arrays):
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def both(fn, **kw):
    """Run fn(lib) with torch and with vibetensor; compare what they return."""
    expected, got = fn(torch), fn(vt)
    assert_same(got, expected, **kw)
    return got


# -- derivative formulas: one line per case -----------------------------------------------------------------
# (id, fn(lib, *inputs), input shapes, domain of the input values)
D = (-2.0, 2.0)
POS = (0.5, 3.0)
UNIT = (-0.9, 0.9)
OPS = [
    ("add", lambda lib, a, b: a + b, [(3, 4), (4,)], D),
    ("add_alpha", lambda lib, a, b: lib.add(a, b, alpha=2.5), [(2, 1, 4), (3, 1)], D),
    ("radd", lambda lib, a: 2 + a, [(3,)], D),
    ("sub", lambda lib, a, b: a - b, [(3, 4), (3, 1)], D),
    ("sub_alpha", lambda lib, a, b: lib.sub(a, b, alpha=-3), [(3,), (2, 3)], D),
    ("rsub", lambda lib, a: 2 - a, [(3,)], D),
    ("mul", lambda lib, a, b: a * b, [(2, 3), (3,)], D),
    ("mul_scalar", lambda lib, a: a * 1.5, [(2, 3)], D),
    ("mul_self", lambda lib, a: a * a, [(4,)], D),
    ("div", lambda lib, a, b: a / b, [(2, 3), (2, 1)], POS),
    ("div_scalar", lambda lib, a: a / 3, [(3,)], D),
    ("rdiv", lambda lib, a: 3 / a, [(3,)], POS),
    ("div_floor", lambda lib, a, b: lib.div(a, b, rounding_mode="floor"), [(3,), (3,)], POS),
    ("neg", lambda lib, a: -a, [(2, 3)], D),
    ("exp", lambda lib, a: a.exp(), [(2, 3)], D),
    ("exp2", lambda lib, a: lib.exp2(a), [(3,)], D),
    ("expm1", lambda lib, a: a.expm1(), [(3,)], D),
    ("log", lambda lib, a: a.log(), [(3,)], POS),
    ("log2", lambda lib, a: a.log2(), [(3,)], POS),
    ("log10", lambda lib, a: a.log10(), [(3,)], POS),
    ("log1p", lambda lib, a: a.log1p(), [(3,)], POS),
    ("sqrt", lambda lib, a: a.sqrt(), [(3,)], POS),
    ("rsqrt", lambda lib, a: a.rsqrt(), [(3,)], POS),
    ("reciprocal", lambda lib, a: a.reciprocal(), [(3,)], POS),
    ("sin", lambda lib, a: a.sin(), [(3,)], D),
    ("cos", lambda lib, a: a.cos(), [(3,)], D),
    ("tan", lambda lib, a: a.tan(), [(3,)], UNIT),
    ("asin", lambda lib, a: a.asin(), [(3,)], UNIT),
    ("acos", lambda lib, a: a.acos(), [(3,)], UNIT),
    ("atan", lambda lib, a: a.atan(), [(3,)], D),
    ("sinh", lambda lib, a: a.sinh(), [(3,)], D),
    ("cosh", lambda lib, a: a.cosh(), [(3,)], D),
    ("tanh", lambda lib, a: a.tanh(), [(2, 3)], D),
    ("asinh", lambda lib, a: a.asinh(), [(3,)], D),
    ("acosh", lambda lib, a: a.acosh(), [(3,)], (1.5, 3.0)),
    ("atanh", lambda lib, a: a.atanh(), [(3,)], UNIT),
    ("sigmoid", lambda lib, a: a.sigmoid(), [(2, 3)], D),
    ("erf", lambda lib, a: a.erf(), [(3,)], D),
    ("erfc", lambda lib, a: a.erfc(), [(3,)], D),
    ("abs", lambda lib, a: a.abs(), [(4,)], D),
    ("relu", lambda lib, a: a.relu(), [(4,)], D),
    ("deg2rad", lambda lib, a: a.deg2rad(), [(3,)], D),
    ("rad2deg", lambda lib, a: a.rad2deg(), [(3,)], D),
    ("frac", lambda lib, a: a.frac(), [(3,)], D),
    ("sign", lambda lib, a: a.sign(), [(3,)], D),
    ("sgn", lambda lib, a: a.sgn(), [(3,)], D),
    ("floor", lambda lib, a: a.floor(), [(3,)], D),
    ("ceil", lambda lib, a: a.ceil(), [(3,)], D),
    ("trunc", lambda lib, a: a.trunc(), [(3,)], D),
    ("round", lambda lib, a: a.round(), [(3,)], D),
    ("round_decimals", lambda lib, a: a.round(decimals=1), [(3,)], D),
    ("logit", lambda lib, a: a.logit(), [(3,)], (0.1, 0.9)),
    ("logit_eps", lambda lib, a: a.logit(eps=0.2), [(4,)], (0.05, 0.95)),
    ("nan_to_num", lambda lib, a: (a.log()).nan_to_num(), [(4,)], D),
    ("pow_scalar", lambda lib, a: a ** 3, [(2, 3)], D),
    ("pow_zero", lambda lib, a: a ** 0, [(3,)], D),
    ("square", lambda lib, a: a.square(), [(3,)], D),
    ("pow_tensor", lambda lib, a, b: a ** b, [(2, 3), (3,)], POS),
    ("rpow", lambda lib, a: 2 ** a, [(3,)], D),
    ("atan2", lambda lib, a, b: lib.atan2(a, b), [(2, 3), (3,)], D),
    ("hypot", lambda lib, a, b: lib.hypot(a, b), [(3,), (2, 3)], D),
    ("logaddexp", lambda lib, a, b: lib.logaddexp(a, b), [(3,), (3,)], D),
    ("logaddexp2", lambda lib, a, b: lib.logaddexp2(a, b), [(3,), (3,)], D),
    ("xlogy", lambda lib, a, b: lib.xlogy(a, b), [(3,), (3,)], POS),
    ("maximum", lambda lib, a, b: lib.maximum(a, b), [(2, 4), (4,)], "ties"),
    ("minimum", lambda lib, a, b: lib.minimum(a, b), [(2, 4), (4,)], "ties"),
    ("fmax", lambda lib, a, b: lib.fmax(a, b), [(2, 4), (4,)], "ties"),
    ("fmin", lambda lib, a, b: lib.fmin(a, b), [(2, 4), (4,)], "ties"),
    ("fmod", lambda lib, a, b: lib.fmod(a, b), [(3,), (3,)], POS),
    ("remainder", lambda lib, a, b: lib.remainder(a, b), [(3,), (3,)], POS),
    ("copysign", lambda lib, a, b: lib.copysign(a, b), [(3,), (3,)], D),
    ("clamp", lambda lib, a: a.clamp(-0.5, 0.7), [(2, 4)], D),
    ("clamp_min", lambda lib, a: a.clamp(min=0.1), [(4,)], D),
    ("clamp_max", lambda lib, a: a.clamp(max=0.1), [(4,)], D),
    ("clamp_tensors", lambda lib, a, lo, hi: lib.clamp(a, lo, hi), [(2, 4), (4,), (2, 1)], D),
    ("clamp_tensor_min", lambda lib, a, lo: lib.clamp(a, min=lo), [(2, 4), (4,)], D),
    ("where", lambda lib, a, b: lib.where(a > 0, a, b), [(2, 3), (3,)], D),
    ("lerp", lambda lib, a, b: lib.lerp(a, b, 0.3), [(3,), (2, 3)], D),
    ("lerp_tensor", lambda lib, a, b, w: lib.lerp(a, b, w), [(3,), (3,), (2, 3)], D),
    ("chain", lambda lib, a, b: ((a * b).exp() - b / (a * a + 1)).tanh(), [(2, 3), (3,)], D),
]
IDS = [o[0] for o in OPS]


def _grads(lib, fn, arrays, g_out_seed=7):
    ins = _leaves(lib, arrays)
    out = fn(lib, *ins)
    g_out = lib.tensor(np.random.default_rng(g_out_seed).uniform(-1, 1, tuple(out.shape)).astype(arrays[0].dtype))
    return lib.autograd.grad(out, ins, g_out, allow_unused=True)


@pytest.mark.parametrize("name,fn,shapes,domain", OPS, ids=IDS)
def test_gradient_matches_torch(name, fn, shapes, domain):
    for dtype in ("float64", "float32"):
        arrays = _arrays(shapes, 1, domain, dtype)
        both(lambda lib: _grads(lib, fn, arrays))


@pytest.mark.parametrize("name,fn,shapes,domain", OPS, ids=IDS)
def test_gradcheck(name, fn, shapes, domain):
    if domain == "ties":  # not differentiable at ties: check away from them
        domain = D
    ins = _leaves(vt, _arrays(shapes, 2, domain, "float64"))
    assert vt.autograd.gradcheck(lambda *xs: fn(vt, *xs), ins)


SECOND = ["mul", "mul_self", "div", "rdiv", "exp", "log", "sqrt", "tanh", "sigmoid", "sin", "pow_scalar",
          "pow_tensor", "rpow", "atan2", "hypot", "logaddexp", "xlogy", "reciprocal", "erf", "lerp_tensor",
          "where", "clamp", "maximum", "chain"]


def _second(lib, fn, arrays):
    ins = _leaves(lib, arrays)
    out = fn(lib, *ins)
    rng = np.random.default_rng(5)
    g_out = lib.tensor(rng.uniform(-1, 1, tuple(out.shape)))
    firsts = lib.autograd.grad(out, ins, g_out, create_graph=True)
    pairs = [(g, lib.tensor(rng.uniform(-1, 1, tuple(g.shape)))) for g in firsts if g.requires_grad]
    if not pairs:
        return None
    return lib.autograd.grad([g for g, _ in pairs], ins, [v for _, v in pairs], allow_unused=True)


@pytest.mark.parametrize("name", SECOND)
def test_second_derivative_matches_torch(name):
    _, fn, shapes, domain = OPS[IDS.index(name)]
    arrays = _arrays(shapes, 3, D if domain == "ties" else domain, "float64")
    both(lambda lib: _second(lib, fn, arrays))


@pytest.mark.parametrize("name", ["mul", "div", "exp", "tanh", "sigmoid", "pow_tensor", "chain"])
def test_gradgradcheck(name):
    _, fn, shapes, domain = OPS[IDS.index(name)]
    ins = _leaves(vt, _arrays(shapes, 4, domain, "float64"))
    assert vt.autograd.gradgradcheck(lambda *xs: fn(vt, *xs), ins)


def test_third_derivative():
    def f(lib):
        x = lib.tensor([0.3, -1.2], dtype=lib.float64, requires_grad=True)
        g1, = lib.autograd.grad((x * x).tanh(), x, lib.ones(2, dtype=lib.float64), create_graph=True)
        g2, = lib.autograd.grad(g1, x, lib.ones(2, dtype=lib.float64), create_graph=True)
        return lib.autograd.grad(g2, x, lib.ones(2, dtype=lib.float64))
    both(f)


def test_mixed_dtypes_and_non_differentiable_operands():
    def f(lib):
        a = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float32, requires_grad=True)
        b = lib.tensor([[0.5], [2.0]], dtype=lib.float64, requires_grad=True)
        i = lib.tensor([1, 2, 3])
        out = a * b + a * i + (a > 1)
        ga, gb = lib.autograd.grad(out, (a, b), lib.ones(2, 3, dtype=lib.float64))
        return ga, gb, out.dtype == lib.float64, (a * i).requires_grad, (i * 2).requires_grad
    both(f)


def test_integer_and_bool_outputs_do_not_require_grad():
    for lib in LIBS:
        x = lib.tensor([1.0, -2.0], requires_grad=True)
        assert not (x > 0).requires_grad and not (x == x).requires_grad
        assert (x > 0).grad_fn is None


def test_node_names_and_next_functions():
    for lib in LIBS:
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = lib.tensor([3.0, 4.0])
        names = [f.grad_fn.name() for f in (x + y, x - 2, 2 - x, x * y, x / 2, -x, x.exp(), x ** 2, x ** x,
                                            2 ** x, x.tanh())]
        assert names == ["AddBackward0", "SubBackward0", "RsubBackward1", "MulBackward0", "DivBackward0",
                         "NegBackward0", "ExpBackward0", "PowBackward0", "PowBackward1", "PowBackward2",
                         "TanhBackward0"], lib
        nf = (x * y).grad_fn.next_functions
        assert nf[0][0].name() == "torch::autograd::AccumulateGrad" and nf[0][0].variable is x and nf[0][1] == 0
        assert nf[1] == (None, 0)
        assert type((x * y).grad_fn).__name__ == "MulBackward0"
        assert (x * 2).grad_fn.next_functions[0][0] is (x * 3).grad_fn.next_functions[0][0]  # one accumulator


# -- the engine -----------------------------------------------------------------------------------------------

def test_accumulation_across_backward_calls():
    def f(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        g = lib.tensor([1.0, 1.0, 1.0])
        (x * x).backward(g)
        first = x.grad.clone()
        (x.exp()).backward(g)
        x.backward(g)  # a leaf's own backward accumulates g
        g.mul_(100)    # the first gradient was copied, not aliased
        return first, x.grad
    both(f)


def test_leaf_grad_is_not_aliased_between_inputs():
    for lib in LIBS:
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = lib.tensor([3.0, 4.0], requires_grad=True)
        (a + b).backward(lib.tensor([1.0, 1.0]))
        a.grad.add_(1)
        assert b.grad.tolist() == [1.0, 1.0]


def test_diamond_graph():
    def f(lib):
        x = lib.tensor([0.5, -1.0], requires_grad=True)
        y = x * 2
        z = y * y + y.exp() - y / (x + 3)
        z.backward(lib.tensor([1.0, 2.0]))
        return x.grad
    both(f)


def test_retain_graph():
    for lib in LIBS:
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        g = lib.tensor([1.0, 1.0])
        y = x * x
        y.backward(g, retain_graph=True)
        y.backward(g)
        assert x.grad.tolist() == [4.0, 8.0]
        with pytest.raises(RuntimeError, match=r"Trying to backward through the graph a second time \(or directly "
                           r"access saved tensors after they have already been freed\)"):
            y.backward(g)
        z = x + x  # saves nothing: a second backward is fine, as in torch
        z.backward(g)
        z.backward(g)
        e = x.exp()
        lib.autograd.grad(e, x, g)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            lib.autograd.grad(e, x, g)


def test_grad_does_not_touch_dot_grad_and_errors():
    for lib in LIBS:
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        u = lib.tensor([1.0, 2.0], requires_grad=True)
        g = lib.tensor([1.0, 1.0])
        gx, = lib.autograd.grad(x * 3, x, g)
        assert gx.tolist() == [3.0, 3.0] and x.grad is None and not gx.requires_grad
        with pytest.raises(RuntimeError, match="The differentiated Tensor at index 1 appears to not have been used"):
            lib.autograd.grad(x * 3, [x, u], g)
        assert lib.autograd.grad(x * 3, [x, u], g, allow_unused=True)[1] is None
        assert lib.autograd.grad(x * 3, [x, u], g, materialize_grads=True)[1].tolist() == [0.0, 0.0]
        with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require grad"):
            lib.autograd.grad(x * 3, [lib.tensor([1.0, 2.0])], g)
        with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
            (x * 2).backward()
        with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and does not have a "
                                               "grad_fn"):
            lib.tensor([1.0]).backward()
        with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of "
                                               r"torch.Size\(\[3\]\) and output\[0\] has a shape of "
                                               r"torch.Size\(\[2\]\)."):
            (x * 2).backward(lib.tensor([1.0, 1.0, 1.0]))


def test_grad_of_non_leaf_and_multiple_outputs():
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        h = x.exp()
        y, z = h * 2, h.sin()
        return lib.autograd.grad([y, z], [h, x], [lib.tensor([1.0, 0.5]), lib.tensor([2.0, 1.0])])
    both(f)


def test_backward_inputs_restricts_accumulation():
    def f(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = lib.tensor([3.0, 4.0], requires_grad=True)
        h = a * b
        h.retain_grad()
        (h.exp()).backward(lib.tensor([1.0, 1.0]), inputs=[b])
        return a.grad, b.grad
    both(f)


def test_backward_of_a_scalar_creates_the_gradient():
    def f(lib):
        x = lib.tensor(3.0, requires_grad=True)
        w = lib.tensor([[1.0, 2.0]], requires_grad=True)
        (x * x).exp().backward()
        (x * w).backward(lib.ones(1, 2))
        return x.grad, w.grad
    both(f)


def test_reentrant_backward():
    class Reentrant:
        @staticmethod
        def make(lib):
            class F(lib.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x * 2

                @staticmethod
                def backward(ctx, g):
                    x, = ctx.saved_tensors
                    with lib.enable_grad():
                        inner = x.detach().requires_grad_()
                        y = (inner * inner).exp()  # a second graph, backpropagated inside this backward
                        gi, = lib.autograd.grad(y, inner, g)
                        w = inner.sin()
                        w.backward(g)  # and a nested .backward()
                    return gi + inner.grad
            return F

    def f(lib):
        x = lib.tensor([0.5, -0.3], requires_grad=True)
        y = Reentrant.make(lib).apply(x * 3)
        (y * y).backward(lib.tensor([1.0, 1.0]))
        return x.grad
    both(f)


def test_threads_backward_independent_graphs():
    errors, n_threads, rounds = [], 8, 30
    barrier = threading.Barrier(n_threads)

    def work(k):
        try:
            rng = np.random.default_rng(k)
            a = rng.uniform(-1, 1, (4,))
            barrier.wait()
            for r in range(rounds):
                x = vt.tensor(a, requires_grad=True)
                y = (x * (k + 1)).exp() / (x * x + 1)
                y.backward(vt.ones(4, dtype=vt.float64))
                e = np.exp(a * (k + 1))
                want = e * (k + 1) / (a * a + 1) - e * 2 * a / (a * a + 1) ** 2
                np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12)
                g, = vt.autograd.grad((x * x).sin(), x, vt.ones(4, dtype=vt.float64))
                np.testing.assert_allclose(g.numpy(), np.cos(a * a) * 2 * a, rtol=1e-12)
        except Exception as e:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_threads_accumulate_into_shared_leaf():
    w = vt.tensor([1.0, 2.0], requires_grad=True)
    n_threads, rounds = 8, 25

    def work():
        for _ in range(rounds):
            (w * 3).backward(vt.tensor([1.0, 1.0]))
    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert w.grad.tolist() == [3.0 * n_threads * rounds] * 2


def test_grad_mode_is_thread_local():
    seen = []
    with vt.no_grad():
        t = threading.Thread(target=lambda: seen.append(vt.is_grad_enabled()))
        t.start()
        t.join()
        assert not vt.is_grad_enabled()
    assert seen == [True] and vt.is_grad_enabled()


# -- hooks ---------------------------------------------------------------------------------------------------

def _hook_trace(lib):
    order = []
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: order.append(("t1", g.tolist())))
    y.register_hook(lambda g: (order.append(("t2", g.tolist())), g * 10)[1])
    removed = y.register_hook(lambda g: order.append("removed"))
    removed.remove()
    y.retain_grad()
    y.grad_fn.register_prehook(lambda go: order.append(("pre", go[0].tolist())))
    y.grad_fn.register_hook(lambda gi, go: order.append(("post", gi[0].tolist(), go[0].tolist())))
    x.register_hook(lambda g: order.append(("leaf", g.tolist())))
    x.register_post_accumulate_grad_hook(lambda p: order.append(("postacc", p.grad.tolist())))
    y.backward(lib.tensor([1.0, 1.0, 1.0]))
    return order, y.grad, x.grad


def test_hook_order_and_replacement():
    t_order, t_ygrad, t_xgrad = _hook_trace(torch)
    v_order, v_ygrad, v_xgrad = _hook_trace(vt)
    assert v_order == t_order
    assert_same(v_ygrad, t_ygrad)
    assert_same(v_xgrad, t_xgrad)


def test_node_execution_order_matches_torch():
    def trace(lib):
        order = []
        x = lib.tensor([1.0, 2.0], dtype=lib.float64, requires_grad=True)
        a = x * 2
        b = x.exp()
        c = a * b
        d = c.sin() + a.cos()
        e = d * b
        for name, t in (("a", a), ("b", b), ("c", c), ("d", d), ("e", e)):
            t.register_hook(lambda g, name=name: order.append(name))
        e.backward(lib.tensor([1.0, 1.0], dtype=lib.float64))
        return order, x.grad
    (t_order, t_grad), (v_order, v_grad) = trace(torch), trace(vt)
    assert v_order == t_order
    assert_same(v_grad, t_grad)


def test_hook_errors():
    for lib in LIBS:
        with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
            lib.tensor([1.0]).register_hook(lambda g: g)
        x = lib.tensor([1.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered on non-leaf"):
            (x * 2).register_post_accumulate_grad_hook(lambda p: None)


def test_retain_grad_and_is_leaf():
    for lib in LIBS:
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        z = y.exp()
        y.retain_grad()
        assert y.retains_grad and not z.retains_grad and not x.retains_grad
        assert x.is_leaf and not y.is_leaf and lib.tensor([1.0]).is_leaf
        z.backward(lib.tensor([1.0, 1.0]), retain_graph=True)
        z.backward(lib.tensor([1.0, 1.0]))
        with pytest.warns(UserWarning, match="The .grad attribute of a Tensor that is not a leaf"):
            assert z.grad is None
        np.testing.assert_allclose(y.grad.numpy(), 2 * np.exp([3.0, 6.0]), rtol=1e-6)


def test_grad_attribute_checks():
    def errors(lib):
        x = lib.ones(2, requires_grad=True)
        out = []
        for bad in (lib.ones(3), lib.ones(2, dtype=lib.float64), lib.ones(2, dtype=lib.int64), 3):
            try:
                x.grad = bad
            except (RuntimeError, TypeError) as e:
                out.append((type(e), str(e)))
        x.grad = lib.full((2,), 5.0)
        del x.grad
        return out, x.grad
    assert errors(vt) == errors(torch)
    for lib in LIBS:
        with pytest.warns(UserWarning, match="The .grad attribute of a Tensor that is not a leaf Tensor is being "
                                             "accessed. Its .grad attribute won't be populated"):
            assert (lib.ones(2, requires_grad=True) * 2).grad is None


# -- in-place ops and version counters ------------------------------------------------------------------------

def _message(fn):
    try:
        fn()
    except RuntimeError as e:
        return str(e)
    raise AssertionError("no error")


VERSION_CASES = {
    "saved_output": lambda lib, x: (lambda y: (y.add_(1), y.backward(lib.ones(3))))(x.exp()),
    "saved_input_rebased": lambda lib, x: (lambda y: (lambda z: (y.add_(1), z.backward(lib.ones(3))))(y * y))(x * 1),
    "saved_plain": lambda lib, x: (lambda b: (lambda z: (b.add_(1), z.backward(lib.ones(3))))(x * b))(lib.ones(3)),
}


@pytest.mark.parametrize("case", list(VERSION_CASES))
def test_modified_saved_tensor_error(case):
    msgs = [_message(lambda lib=lib: VERSION_CASES[case](lib, lib.ones(3, requires_grad=True))) for lib in LIBS]
    assert msgs[1] == msgs[0]


def test_inplace_errors():
    for lib in LIBS:
        x = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
            x.add_(1)
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an "
                                               "in-place operation."):
            x[0].add_(1)
        with pytest.raises(RuntimeError, match=r"add\(\): functions with out=... arguments don't support automatic "
                                               "differentiation, but one of the arguments requires grad."):
            lib.add(x, 1, out=lib.empty(3))
        assert x._version == 0 if lib is torch else x._version.value == 0
        with lib.no_grad():
            x.mul_(2)  # allowed without grad mode
        assert x.tolist() == [2.0, 2.0, 2.0] and x.is_leaf


def test_inplace_on_non_leaf_rebases_history():
    def f(lib):
        x = lib.tensor([0.5, 1.5, -1.0], requires_grad=True)
        y = x * 2
        y.mul_(x)     # saves the old y (snapshot) and x
        y += 1
        y.exp_()      # saves its result
        y.backward(lib.tensor([1.0, 2.0, 3.0]))
        return y.grad_fn.name(), x.grad
    both(f)


def test_inplace_double_backward():
    def f(lib):
        x = lib.tensor([0.5, 1.5], dtype=lib.float64, requires_grad=True)
        y = x * x
        y.mul_(x.sin())
        g, = lib.autograd.grad(y, x, lib.ones(2, dtype=lib.float64), create_graph=True)
        return lib.autograd.grad(g, x, lib.ones(2, dtype=lib.float64))
    both(f)


def test_inplace_on_a_saved_input_fails_like_torch():
    def f(lib):
        y = lib.tensor([0.5, 1.5], requires_grad=True) * 1
        y.mul_(y)  # mul saved y as its second operand, then overwrote it
        y.backward(lib.ones(2))
    msgs = [_message(lambda lib=lib: f(lib)) for lib in LIBS]
    assert msgs[1] == msgs[0]


def test_version_bumps_and_detach_shares_counter():
    x = vt.ones(3, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d._base is None
    d.add_(1)
    assert x._version.value == 1 and x.tolist() == [2.0, 2.0, 2.0]
    y = x.sin()
    x.detach().mul_(2)
    with pytest.raises(RuntimeError, match="is at version 2; expected version 1 instead"):
        y.backward(vt.ones(3))
    data = x.data
    data.add_(1)  # .data has its own counter: autograd does not see the change
    assert x._version.value == 2


# -- grad modes ---------------------------------------------------------------------------------------------

def test_grad_modes():
    for lib in LIBS:
        x = lib.ones(2, requires_grad=True)
        with lib.no_grad():
            assert not (x * 2).requires_grad and not lib.is_grad_enabled()
            with lib.enable_grad():
                assert (x * 2).requires_grad
        with lib.set_grad_enabled(False):
            assert not (x * 2).requires_grad
        assert lib.is_grad_enabled()
        lib.set_grad_enabled(False)
        assert not (x * 2).requires_grad
        lib.set_grad_enabled(True)
        assert (x * 2).requires_grad

        @lib.no_grad()
        def f(t):
            return t * 2

        @lib.no_grad
        def f2(t):
            return t * 2

        @lib.set_grad_enabled(False)
        def f3(t):
            return t * 2

        def gen(t):
            for _ in range(2):
                yield t * 2
        assert not any(r.requires_grad for r in (f(x), f2(x), f3(x))) and lib.is_grad_enabled()
        assert not any(r.requires_grad for r in lib.no_grad()(gen)(x))
        with lib.inference_mode():
            assert not (x * 2).requires_grad and lib.is_inference_mode_enabled()
        with lib.inference_mode(False):
            assert (x * 2).requires_grad
        assert not lib.is_inference_mode_enabled()

        @lib.inference_mode
        def g(t):
            return t * 2
        assert not g(x).requires_grad


def test_requires_grad_rules():
    for lib in LIBS:
        x = lib.ones(2)
        assert x.requires_grad_() is x and x.requires_grad
        with pytest.raises(RuntimeError, match="only Tensors of floating point"):
            lib.tensor([1, 2]).requires_grad_()
        with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
            (x * 2).requires_grad_(False)
        y = (x * 2)
        with pytest.raises(RuntimeError, match="Can't detach views in-place"):
            y[0].detach_()
        y.detach_()
        assert y.grad_fn is None and not y.requires_grad


# -- custom Functions --------------------------------------------------------------------------------------------

def _functions(lib):
    class Exp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y

    class MulConst(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.k = k
            return x * k

        @staticmethod
        def backward(ctx, g):
            assert ctx.needs_input_grad == (True, False)
            return g * ctx.k, None

    class Double_(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    class SortLike(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            idx = lib.tensor([1, 0])
            ctx.mark_non_differentiable(idx)
            return x * 3, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            assert g_idx is not None and g_idx.dtype == lib.int64  # materialized zeros
            return g * 3

    class Once(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @lib.autograd.function.once_differentiable
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g

    class NoMaterialize(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            assert g2 is None
            return g1 * 2

    class Split(lib.autograd.Function):  # new style: forward without ctx, setup_context
        @staticmethod
        def forward(x, w):
            return x * w

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g * w, g * x
    return Exp, MulConst, Double_, SortLike, Once, NoMaterialize, Split


def test_custom_functions():
    def f(lib):
        Exp, MulConst, Double_, SortLike, Once, NoMaterialize, Split = _functions(lib)
        x = lib.tensor([0.5, -1.0], dtype=lib.float64, requires_grad=True)
        w = lib.tensor([2.0, 3.0], dtype=lib.float64, requires_grad=True)
        y = Exp.apply(x)
        names = [y.grad_fn.name()]
        out = y * 2 + MulConst.apply(x, 4.0) + Split.apply(x, w)
        d = Double_.apply(x * 1)
        names.append(d.grad_fn.name())
        v, idx = SortLike.apply(x)
        names.append((v.requires_grad, idx.requires_grad))
        o1, o2 = NoMaterialize.apply(x)
        total = out + d + v + Once.apply(x) + o1
        total.backward(lib.ones(2, dtype=lib.float64))
        gg, = lib.autograd.grad(Exp.apply(x), x, lib.ones(2, dtype=lib.float64), create_graph=True)
        second, = lib.autograd.grad(gg, x, lib.ones(2, dtype=lib.float64))  # backward was differentiable
        return names, x.grad, w.grad, second
    both(f)


def test_custom_function_errors():
    for lib in LIBS:
        Exp, MulConst, Double_, SortLike, Once, NoMaterialize, Split = _functions(lib)
        x = lib.tensor([0.5, -1.0], requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad has been used in an in-place"):
            Double_.apply(x)

        class Few(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a, b):
                return a * b

            @staticmethod
            def backward(ctx, g):
                return g
        with pytest.raises(RuntimeError, match=r"function FewBackward returned an incorrect number of gradients "
                                               r"\(expected 2, got 1\)"):
            Few.apply(x, x).backward(lib.ones(2))

        class NonTensor(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a, k):
                return a * k

            @staticmethod
            def backward(ctx, g):
                return g, g
        with pytest.raises(RuntimeError, match="returned a gradient different than None at position 2, but the "
                                               "corresponding forward input was not a Variable"):
            NonTensor.apply(x, 2).backward(lib.ones(2))

        class BadShape(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a * 2

            @staticmethod
            def backward(ctx, g):
                return lib.ones(4)
        with pytest.raises(RuntimeError, match=r"Function BadShapeBackward returned an invalid gradient at index 0 - "
                                               r"got \[4\] but expected shape compatible with \[2\]"):
            BadShape.apply(x).backward(lib.ones(2))

        class Identity(lib.autograd.Function):
            @staticmethod
            def forward(ctx, a):
                return a

            @staticmethod
            def backward(ctx, g):
                return g
        out = Identity.apply(x)
        assert out is not x and out._base is x and out.grad_fn.name() == "IdentityBackward"

        y = Exp.apply(x)
        y.backward(lib.ones(2))
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.grad_fn.saved_tensors


def test_once_differentiable_refuses_double_backward():
    Exp, MulConst, Double_, SortLike, Once, NoMaterialize, Split = _functions(vt)
    x = vt.tensor([0.5, -1.0], requires_grad=True)
    g_out = vt.ones(2, requires_grad=True)
    g, = vt.autograd.grad(Once.apply(x), x, g_out, create_graph=True)
    assert g.requires_grad
    with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was marked with "
                                           "@once_differentiable"):
        g.backward(vt.ones(2))


# -- gradcheck ----------------------------------------------------------------------------------------------------

def test_gradcheck_reports_wrong_gradients():
    class Bad(vt.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3
    x = vt.tensor([0.1, 0.2], dtype=vt.float64, requires_grad=True)
    with pytest.raises(vt.autograd.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        vt.autograd.gradcheck(Bad.apply, (x,))
    assert issubclass(vt.autograd.GradcheckError, RuntimeError)
    assert vt.autograd.gradcheck(Bad.apply, (x,), raise_exception=False) is False
    with pytest.raises(ValueError, match="gradcheck expects at least one input tensor to require gradient"):
        vt.autograd.gradcheck(Bad.apply, (x.detach(),))
    with pytest.warns(UserWarning, match="Input #0 requires gradient and is not a double precision"):
        vt.autograd.gradcheck(lambda a: a * 2, (vt.tensor([0.5], requires_grad=True),), atol=1e-2, rtol=1e-2)
    assert vt.autograd.gradgradcheck(Bad.apply, (x,))  # its backward is linear in g: second order agrees


# -- anomaly mode -------------------------------------------------------------------------------------------------

def test_detect_anomaly_nan():
    for lib in LIBS:
        x = lib.tensor([0.0, 1.0], requires_grad=True)
        with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
            mode = lib.autograd.detect_anomaly()
        with mode, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = (x * 0).log() * 0
            with pytest.raises(RuntimeError, match="Function 'LogBackward0' returned nan values in its 0th output."):
                y.backward(lib.ones(2))
        trace = [str(w.message) for w in caught if "Error detected in" in str(w.message)]
        assert trace and trace[0].startswith("Error detected in LogBackward0. Traceback of forward call that "
                                             "caused the error:") and "(x * 0).log()" in trace[0]
        assert not lib.is_anomaly_enabled()


def test_detect_anomaly_records_creation_traceback():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with vt.autograd.detect_anomaly():
            y = vt.ones(2, requires_grad=True).exp()
    assert "test_autograd.py" in "".join(y.grad_fn.metadata["traceback_"])
    assert vt.ones(2, requires_grad=True).exp().grad_fn.metadata == {}
    vt.autograd.set_detect_anomaly(True)
    assert vt.is_anomaly_enabled()
    vt.autograd.set_detect_anomaly(False)
    assert not vt.is_anomaly_enabled()


# -- missing derivatives and memory ---------------------------------------------------------------------------

def test_op_without_derivative_raises_at_backward():
    x = vt.tensor([1.0, 2.0], requires_grad=True)
    y = vt.heaviside(x, vt.tensor([0.5, 0.5]))
    assert y.requires_grad
    with pytest.raises(NotImplementedError, match="the derivative for 'heaviside' is not implemented"):
        y.backward(vt.ones(2))


def test_memory_released_by_refcount():
    gc.collect()
    gc.disable()
    try:
        x = vt.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x.exp()
        ry, rn = weakref.ref(y), weakref.ref(y.grad_fn)
        del y
        assert ry() is None and rn() is None  # the node saved its own output without a cycle
        y = (x * 2).sigmoid().tanh()
        y.retain_grad()
        y.register_hook(lambda g: g)
        chain = [weakref.ref(y.grad_fn), weakref.ref(y.grad_fn.next_functions[0][0])]
        acc = weakref.ref(y.grad_fn.next_functions[0][0].next_functions[0][0].next_functions[0][0])
        del y
        assert all(r() is None for r in chain) and acc() is None
        Exp = _functions(vt)[0]
        y = Exp.apply(x)  # a Function saving its output
        rn = weakref.ref(y.grad_fn)
        del y
        assert rn() is None
        y = x.exp()
        saved = y.grad_fn._result
        y.backward(vt.ones(3))
        assert saved.data is None  # saved tensors freed by backward without retain_graph
        del y, saved
        assert x.grad is not None
    finally:
        gc.enable()


# -- the derivative mechanism on private test ops (independent of other op families) -------------------------


def _private_op(name, composite):
    try:
        return dispatch.get(name)
    except KeyError:
        return dispatch.declare(name, composite=composite, family="test")


TWICE = _private_op("_ag_test_twice", lambda a: ew.mul(a, 2))
TRACED = _private_op("_ag_test_traced", lambda a, b: ew.add(ew.mul(a, b), a))  # no derivative: traced through
LIST_SUM = _private_op("_ag_test_list_sum", lambda ts, scale: ew.mul(ew.add(ts[0], ts[1]), scale))
PAIR = _private_op("_ag_test_pair", lambda a: (ew.mul(a, 2), ew.exp(a), ew.gt(a, 0)))
VIEW = _private_op("_ag_test_view", lambda a: alias(a, a._shape, a._stride, a._offset))


@derivative(TWICE, name="TwiceBackward0")
def _twice_backward(ctx, grad, a):
    return ew.mul(grad, 3)  # deliberately not 2: proves the registered formula is what runs


@derivative(LIST_SUM, save=(0,))
def _list_sum_backward(ctx, grad, ts, scale):
    assert ctx.needs_input_grad == ((True, False), False)
    assert isinstance(ts[0], vt.Tensor) and isinstance(ts[1], vt.Tensor)  # saved: unpacked as tensors
    return [ew.mul(grad, scale), None], None


@derivative(PAIR, save=("result",))
def _pair_backward(ctx, grads, a):
    g2, g_exp, g_bool = grads
    assert g_bool is None  # bool outputs carry no gradient
    return ew.add(ew.mul(g2, 2), ew.mul(g_exp, ctx.result[1]))


@derivative(VIEW)
def _view_backward(ctx, grad, a):
    return grad


def test_derivative_mechanism():
    x = vt.tensor([1.0, 2.0], requires_grad=True)
    y = TWICE(x)
    assert y.grad_fn.name() == "TwiceBackward0" and y.tolist() == [2.0, 4.0]
    assert vt.autograd.grad(y, x, vt.ones(2))[0].tolist() == [3.0, 3.0]
    w = vt.tensor([3.0, 4.0])
    assert vt.autograd.grad(TRACED(x, w), x, vt.ones(2))[0].tolist() == [4.0, 5.0]  # composite traced
    s = LIST_SUM([x, vt.tensor([1.0, 1.0])], 5.0)
    assert [e[0] is not None for e in s.grad_fn.next_functions] == [True, False]
    assert vt.autograd.grad(s, x, vt.ones(2))[0].tolist() == [5.0, 5.0]
    two, e, pos = PAIR(x)
    assert two.grad_fn is e.grad_fn and (two._output_nr, e._output_nr) == (0, 1) and not pos.requires_grad
    g, = vt.autograd.grad(e, x, vt.ones(2))  # only the second output gets a gradient: the first is zeros
    np.testing.assert_allclose(g.numpy(), np.exp([1.0, 2.0]))
    with vt.no_grad():
        assert not TWICE(x).requires_grad
    x2 = x * 1
    with pytest.raises(RuntimeError, match="functions with out=... arguments don't support automatic"):
        ew.mul(x2, 2, out=vt.empty(2))
    z = ew.mul(x2, x2, out=x2)  # in-place: history rebased
    assert z is x2 and x2.grad_fn.name() == "MulBackward0"


def test_views_and_inplace_limits():
    x = vt.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-place"):
        VIEW(x).mul_(2)
    y = x * 2
    v = VIEW(y)
    assert v._base is y and v.grad_fn.name() == "AgTestViewBackward0"
    v.mul_(2)  # in-place on a view: the base's history goes through CopySlices, the view's is regenerated
    assert y.grad_fn.name() == "torch::autograd::CopySlices" and v.grad_fn.name() == "AsStridedBackward0"
    y.mul_(3)  # the base changes history after the view was taken: the view's grad_fn is regenerated
    g, = vt.autograd.grad(v * 1, x, vt.ones(2))
    assert g.tolist() == [12.0, 12.0] and v.grad_fn.next_functions[0][0] is y.grad_fn


def test_stream_hook_points():
    calls = {"enter": 0, "sync": 0}

    class Enter:
        def __init__(self, stream):
            assert stream == "s0"

        def __enter__(self):
            calls["enter"] += 1

        def __exit__(self, *exc):
            pass

    def sync(g, producer, consumer):
        calls["sync"] += 1
        assert producer.stream == "s0"
        return g
    engine.set_stream_hooks(Enter, sync, lambda device: "s0")
    try:
        x = vt.tensor([1.0, 2.0], requires_grad=True)
        y = (x * 2).exp()
        assert y.grad_fn.stream == "s0"
        y.backward(vt.ones(2))
    finally:
        engine.set_stream_hooks(None, None, None)
    # sync runs only where a gradient may change streams: mul's, for AccumulateGrad (which records
    # none); exp's, for mul, stays on s0
    assert calls == {"enter": 2, "sync": 1} and x.grad is not None
    assert (x * 2).grad_fn.stream is None


def test_backward_create_graph_leaves_differentiable_grads():
    def f(lib):
        x = lib.tensor([0.5, -1.0], dtype=lib.float64, requires_grad=True)
        with pytest.warns(UserWarning, match=r"Using backward\(\) with create_graph=True will create a reference"):
            (x * x * x).backward(lib.ones(2, dtype=lib.float64), create_graph=True)
        first = x.grad.detach().clone()
        g = x.grad
        x.grad = None
        g.backward(lib.ones(2, dtype=lib.float64))  # d/dx of 3x^2
        return first, x.grad, g.requires_grad
    both(f)


def test_inplace_into_a_tensor_that_did_not_require_grad():
    def f(lib):
        x = lib.tensor([0.5, 2.0], requires_grad=True)
        buf = lib.ones(2)
        buf.add_(x)
        buf.mul_(x)
        names = (buf.grad_fn.name(), buf.requires_grad, buf.is_leaf)
        buf.backward(lib.tensor([1.0, 3.0]))
        return names, x.grad
    both(f)
