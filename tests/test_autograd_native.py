"""Autograd's C twin (vibetensor/autograd/fastgrad.py) makes the graphs its Python makes.

Each case builds a graph with the C on and again with it off (fastgrad.set_enabled(False): every
Kernel hands every call to its Python kernel, derivatives.autograd_kernel), from the same inputs, and
compares the two graphs node by node (class, edges, layout, what each node keeps, saved versions,
streams, view records) and the gradients backward gives, which also equal torch's."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from vibetensor import dispatch
from vibetensor.autograd import derivatives as D
from vibetensor.autograd import fastgrad
from vibetensor.autograd.graph import AccumulateGrad, SavedVariable, TensorMeta
from vibetensor.dispatch import DispatchKey

pytestmark = pytest.mark.skipif(D._fast is None, reason="no C compiler here: only the Python runs")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((4, 6)).astype(np.float32)
B = RNG.standard_normal((6, 5)).astype(np.float32)
V = RNG.standard_normal(6).astype(np.float32)


def _leaves(lib):
    t = lambda a: lib.tensor(a.copy(), requires_grad=True)
    return t(A), t(B), t(V)


# (name, forward on leaves a (4, 6), b (6, 5), v (6,) -> a tensor) in vibetensor or torch, alike
CASES = [
    ("mul, add: tensors first", lambda L, a, b, v: (a * v + a).sum()),
    ("matmul: node class per call", lambda L, a, b, v: (a @ b).sum()),
    ("linear, keyword bias", lambda L, a, b, v: L.nn.functional.linear(a, b.t(), bias=v[:5]).pow(2).sum()),
    ("layer_norm: tensors after a shape", lambda L, a, b, v: L.nn.functional.layer_norm(a, (6,), v, v * 2).sum()),
    ("softmax: saves its result", lambda L, a, b, v: (L.softmax(a, -1) * a).sum()),
    ("views: tracked view records", lambda L, a, b, v: (a.view(2, 12).t()[3:] * 2).sum()),
    ("a view of a view after a write", lambda L, a, b, v: _write_then_view(L, a)),
    ("a no_grad view of a leaf", lambda L, a, b, v: _no_grad_view(L, a) * v.sum()),
    ("options: sum dims, keepdim", lambda L, a, b, v: (a.sum(1, keepdim=True) * a).mean()),
    ("a leaf twice", lambda L, a, b, v: (a * a).sum()),
    ("a constant beside a leaf", lambda L, a, b, v: (L.tensor(A) * a).exp().sum()),
    ("0-d and broadcast", lambda L, a, b, v: (a * L.tensor(2.0, requires_grad=True) + v).tanh().sum()),
    ("cat of a list: the Python's path", lambda L, a, b, v: L.cat([a, a * 2]).sum()),
    ("in-place on a non-leaf", lambda L, a, b, v: (a * 1).mul_(v).sum()),
    ("integer output beside", lambda L, a, b, v: a.max(1)[0].sum() + a.argmax().float()),
    ("chained training-like", lambda L, a, b, v: L.nn.functional.cross_entropy(a @ b, L.tensor([0, 1, 2, 3]))),
    # the backward walk: buffers that wait on several edges, the same gradient twice, hooks, unused outputs
    ("a gradient delivered twice to one buffer", lambda L, a, b, v: _twice(L, a)),
    ("tensor hooks: the Python's special path", lambda L, a, b, v: _hooked(L, a, v)),
    ("split with an unused part", lambda L, a, b, v: (a.split(2)[1] * 3).sum()),
    ("retain_grad on a non-leaf", lambda L, a, b, v: _retained(L, a)),
    ("a broadcast gradient summed down", lambda L, a, b, v: _broadcast(L, a, v)),
]


def _twice(L, a):
    y = a * 1
    return (y + y).sum()  # AddBackward hands the same tensor to both of y's edges


def _hooked(L, a, v):
    y = a * v
    y.register_hook(lambda g: g * 2)
    return y.sum()


def _retained(L, a):
    y = a.exp()
    y.retain_grad()
    return y.mean()


class _Broadcast:
    """A custom Function whose backward returns the output-shaped gradient for a (6,) input."""
    @staticmethod
    def make(L):
        class F(L.autograd.Function):
            @staticmethod
            def forward(ctx, a, v):
                return a * v

            @staticmethod
            def backward(ctx, g):
                return g, g  # (4, 6) for v (6,): the engine sums it down
        return F


def _broadcast(L, a, v):
    return _Broadcast.make(L).apply(a, v).sum()


def _write_then_view(L, a):
    c = a * 1
    w = c.view(24)
    c.add_(1.0)  # w's history is stale now: its edge is regenerated
    return (w * w).sum()


def _no_grad_view(L, a):
    with L.no_grad():
        w = a.view(24)
    return (w * 2).sum()  # w requires grad through its base, with no edge to it: the gradient is dropped


def _describe(root):
    """Every node reachable from root, in a walk order that is the same for equal graphs."""
    seen, order, stack = {}, [], [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = len(seen)
        order.append(node)
        stack.extend(n for n, _ in reversed(node.next_functions))
    return [_node_facts(n, seen) for n in order]


def _kept(a):
    if isinstance(a, SavedVariable):
        return ("saved", a.version, a.is_output, tuple(a.data._shape))
    if isinstance(a, TensorMeta):
        return ("meta", a._shape, str(a._dtype))
    if isinstance(a, (list, tuple)):
        return [_kept(b) for b in a]
    return ("plain", repr(a))


def _node_facts(node, index):
    facts = [type(node).__name__, tuple((index.get(id(n)), nr) for n, nr in node.next_functions), node._n_grads,
             node.stream, node._extras is None]
    facts += [tuple((m._shape, str(m._dtype), str(m._device)) for m in node._in_meta)]
    if isinstance(node, AccumulateGrad):
        return facts + [tuple(node.variable._shape)]
    if isinstance(node, D.OpNode):
        facts += [node._spec.op.name, node._layout, node._k, [_kept(a) for a in node._args], node._kwargs,
                  node._saves, _kept(node._result) if node._result is not None else None, node._needs,
                  node._out_meta is None]
    return facts


def _build(case, native):
    was = fastgrad.module().set_enabled(native)
    try:
        leaves = _leaves(vt)
        out = case(vt, *leaves)
        graph = _describe(out.grad_fn)
        out.backward()
        return graph, [l.grad.numpy() for l in leaves if l.grad is not None], out.item()
    finally:
        fastgrad.module().set_enabled(was)


@pytest.mark.parametrize("name, case", CASES, ids=[c[0] for c in CASES])
def test_c_and_python_make_the_same_graph(name, case):
    c_graph, c_grads, c_out = _build(case, True)
    p_graph, p_grads, p_out = _build(case, False)
    assert c_graph == p_graph
    assert c_out == p_out
    for g, h in zip(c_grads, p_grads):
        np.testing.assert_array_equal(g, h)
    leaves = _leaves(torch)
    ref = case(torch, *leaves)
    ref.backward()
    np.testing.assert_allclose(c_out, ref.item(), rtol=1e-5, atol=1e-5)
    for g, l in zip(c_grads, [l for l in leaves if l.grad is not None]):
        np.testing.assert_allclose(g, l.grad.numpy(), rtol=1e-4, atol=1e-5)


def _double_backward(native):
    was = fastgrad.module().set_enabled(native)
    try:
        a = vt.tensor(A.copy(), requires_grad=True)
        y = (a * a * a).sum()
        (g,) = vt.autograd.grad(y, a, create_graph=True)  # captures: only the needed nodes run
        g.sum().backward()
        y2 = (a.tanh() * 2).sum()
        y2.backward(retain_graph=True)
        y2.backward()  # the graph kept: a second walk over it
        return g.detach().numpy(), a.grad.numpy()
    finally:
        fastgrad.module().set_enabled(was)


def test_grad_create_graph_and_retained_graphs_walk_alike():
    c, p = _double_backward(True), _double_backward(False)
    for x, y in zip(c, p):
        np.testing.assert_array_equal(x, y)
    a = torch.tensor(A.copy(), requires_grad=True)
    (g,) = torch.autograd.grad((a * a * a).sum(), a, create_graph=True)
    g.sum().backward()
    y2 = (a.tanh() * 2).sum()
    y2.backward(retain_graph=True)
    y2.backward()
    np.testing.assert_allclose(c[1], a.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_walk_errors_are_the_pythons():
    messages = []
    for native in (True, False):
        was = fastgrad.module().set_enabled(native)
        try:
            class Bad(vt.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x * 2

                @staticmethod
                def backward(ctx, g):
                    return g, g  # one too many
            a = vt.tensor(A.copy(), requires_grad=True)
            with pytest.raises(RuntimeError) as e:
                Bad.apply(a).sum().backward()
            messages.append(str(e.value))
        finally:
            fastgrad.module().set_enabled(was)
    assert messages[0] == messages[1] and "incorrect number of gradients" in messages[0]


def test_the_c_kernel_is_installed_and_takes_the_usual_call(monkeypatch):
    kernel = dispatch.get("mul").table[DispatchKey.Autograd]
    assert type(kernel).__name__ == "Kernel" and kernel.__name__ == "autograd_mul"
    monkeypatch.setattr(D, "_node", lambda *a, **k: pytest.fail("the Python made the node"))
    a, b, v = _leaves(vt)
    assert (a * v).grad_fn.name() == "MulBackward0"
    with pytest.raises(pytest.fail.Exception):
        vt.cat([a, b.t()[:, :6]])  # a list of tensors: the Python's path


def test_saved_tensor_version_errors_name_the_same_op():
    errors = []
    for native in (True, False):
        was = fastgrad.module().set_enabled(native)
        try:
            a = vt.tensor(A.copy(), requires_grad=True)
            c = a * 1
            out = (c * c).sum()
            c.add_(1)
            with pytest.raises(RuntimeError) as e:
                out.backward()
            errors.append(str(e.value))
        finally:
            fastgrad.module().set_enabled(was)
    assert errors[0] == errors[1] and "is at version 1; expected version 0" in errors[0]


def test_errors_from_the_kernel_leave_grad_mode_on():
    a = vt.tensor(A.copy(), requires_grad=True)
    with pytest.raises(RuntimeError):
        a @ vt.ones(5, 5)  # shapes do not match: the CPU kernel raises
    assert vt.is_grad_enabled()
    assert (a * 2).requires_grad


def test_no_grad_and_out_calls_take_the_python():
    a = vt.tensor(A.copy(), requires_grad=True)
    with vt.no_grad():
        assert (a * 2).grad_fn is None
    out = vt.empty(4, 6)
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        vt.mul(a, 2, out=out)


def test_kernel_keeps_no_references():
    import gc
    import sys
    a = vt.tensor(A.copy(), requires_grad=True)
    for _ in range(50):
        (a * 2).sum().backward()
    gc.collect()
    before = sys.getrefcount(a), len(gc.get_objects())
    for _ in range(200):
        (a * 2).sum().backward()
    gc.collect()
    after = sys.getrefcount(a), len(gc.get_objects())
    assert after[0] == before[0]
    assert after[1] - before[1] < 50
