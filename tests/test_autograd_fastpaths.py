"""The autograd host fast paths give what the slow paths give: a view op's gradient made as a direct
alias (derivatives._VIEW_GRADS) equals its formula's result (values, geometry, shared memory, view
bookkeeping, errors), and the formula still runs where a graph is built or op calls are watched."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from vibetensor import dispatch
from vibetensor.dispatch import DispatchKey

G = np.arange(24, dtype=np.float32)


def _grad(shape, layout):
    """A gradient of `shape` laid out as asked: contiguous, transposed (reversed strides) or at an offset."""
    n = int(np.prod(shape))
    if layout == "transposed":
        return vt.tensor(G[:n].copy()).view(shape[::-1]).permute(tuple(range(len(shape)))[::-1])
    if layout == "offset":
        return vt.tensor(np.arange(n + 6, dtype=np.float32))[6:].view(shape)
    return vt.tensor(G[:n].copy()).view(shape)


# (forward on a leaf x of x_shape, the gradient's shape, its layout, the node's name)
CASES = [
    (lambda x: x.view(24), (2, 3, 4), (24,), "contiguous", "ViewBackward0"),
    (lambda x: x.view(6, 4), (2, 3, 4), (6, 4), "offset", "ViewBackward0"),
    (lambda x: x.view(4, 6), (24,), (4, 6), "transposed", "ViewBackward0"),            # no view: the formula copies
    (lambda x: x.view(2, 12), (2, 3, 4), (2, 12), "transposed", "ViewBackward0"),     # a view of a transposed grad
    (lambda x: x.view(()), (1,), (), "contiguous", "ViewBackward0"),
    (lambda x: x.t().reshape(24), (4, 6), (24,), "contiguous", "UnsafeViewBackward0"),
    (lambda x: x.transpose(0, 2), (2, 3, 4), (4, 3, 2), "contiguous", "TransposeBackward0"),
    (lambda x: x.transpose(-1, 1), (2, 3, 4), (2, 4, 3), "transposed", "TransposeBackward0"),
    (lambda x: x.transpose(1, 1), (2, 3, 4), (2, 3, 4), "offset", "TransposeBackward0"),
    (lambda x: x.permute(2, 0, 1), (2, 3, 4), (4, 2, 3), "contiguous", "PermuteBackward0"),
    (lambda x: x.permute(-1, 0, -2), (2, 3, 4), (4, 2, 3), "transposed", "PermuteBackward0"),
    (lambda x: x.T, (4, 6), (6, 4), "offset", "PermuteBackward0"),
    (lambda x: x.permute(()), (), (), "contiguous", "PermuteBackward0"),
    (lambda x: x.t(), (4, 6), (6, 4), "transposed", "TBackward0"),
    (lambda x: x.t(), (24,), (24,), "contiguous", "TBackward0"),
    (lambda x: x.t(), (), (), "contiguous", "TBackward0"),
]


def _node(fwd, x_shape):
    x = vt.zeros(x_shape, requires_grad=True)
    return fwd(x).grad_fn


def _describe(t):
    info = t._view_info
    return (tuple(t.shape), t.stride(), t.storage_offset(), t.tolist(), t._base is not None,
            None if info is None else (info.creation_meta, info.view_fn))


@pytest.mark.parametrize("fwd, x_shape, g_shape, layout, name", CASES)
def test_view_grad_equals_formula(fwd, x_shape, g_shape, layout, name):
    node = _node(fwd, x_shape)
    assert node.name() == name
    g = _grad(g_shape, layout)
    with vt.no_grad():
        fast = node.apply([g])[0]
        slow = node._spec.formula(node, g, *node._args)
    assert node._spec.view_grad is not None
    assert _describe(fast) == _describe(slow)
    assert (fast._storage is g._storage) == (slow._storage is g._storage)
    assert fast._version is slow._version or fast._storage is not g._storage


def test_view_grad_of_a_no_grad_view_keeps_its_creation_meta():
    node = _node(lambda x: x.view(6, 4), (2, 3, 4))
    with vt.inference_mode():
        g = vt.ones(24).view(6, 4)   # a view made in inference mode: its views stay marked so
        fast = node.apply([g])[0]
        slow = node._spec.formula(node, g, *node._args)
    assert _describe(fast) == _describe(slow)


@pytest.mark.parametrize("fwd, x_shape, bad_shape", [
    (lambda x: x.view(24), (2, 3, 4), (23,)),
    (lambda x: x.view(2), (2,), ()),
    (lambda x: x.transpose(0, 2), (2, 3, 4), (3, 4)),
    (lambda x: x.t(), (4, 6), (2, 3, 4)),
    (lambda x: x.permute(1, 0), (4, 6), (24,)),
])
def test_view_grad_of_a_misfit_gradient_raises_the_formulas_error(fwd, x_shape, bad_shape):
    node = _node(fwd, x_shape)
    g = vt.ones(bad_shape)
    with vt.no_grad():
        with pytest.raises(Exception) as fast:
            node.apply([g])
        with pytest.raises(Exception) as slow:
            node._spec.formula(node, g, *node._args)
    assert type(fast.value) is type(slow.value) and str(fast.value) == str(slow.value)


def test_view_backward_through_a_hook_that_changes_the_gradient():
    def f(lib):
        x = lib.arange(12.0).reshape(3, 4).requires_grad_()
        y = x.t().reshape(12).view(2, 6)
        y.register_hook(lambda g: g * 2)
        (y * lib.arange(12.0).view(2, 6)).sum().backward()
        return x.grad
    np.testing.assert_array_equal(f(vt).numpy(), f(torch).numpy())


def test_view_backward_create_graph_builds_the_graph():
    def f(lib):
        x = lib.arange(6.0).reshape(2, 3).requires_grad_()
        y = (x.t().reshape(6) ** 2).sum()
        (g,) = lib.autograd.grad(y, x, create_graph=True)
        assert g.requires_grad
        (gg,) = lib.autograd.grad(g.sum(), x)
        return g.detach(), gg
    (g, gg), (tg, tgg) = f(vt), f(torch)
    np.testing.assert_array_equal(g.numpy(), tg.numpy())
    np.testing.assert_array_equal(gg.numpy(), tgg.numpy())


def test_view_backward_runs_through_the_dispatcher_while_a_wrapper_watches():
    """A profiler-like wrapper key sees the view ops of backward (the formula path runs)."""
    seen = []

    def watch(op, args, kwargs):
        seen.append(op.name)
        return op.redispatch(DispatchKey.Autograd if dispatch.local.grad_enabled and any(
            isinstance(a, vt.Tensor) and a.requires_grad for a in args) else None, *args, **kwargs)
    x = vt.ones(2, 3, requires_grad=True)
    y = x.view(6).t()
    loss = y.sum()
    old = dispatch.dispatcher._fallbacks.get(DispatchKey.Profiler)
    dispatch.register_fallback(DispatchKey.Profiler, watch)
    dispatch.set_wrapper_active(DispatchKey.Profiler, True)
    try:
        loss.backward()
    finally:
        dispatch.set_wrapper_active(DispatchKey.Profiler, False)
        if old is None:
            dispatch.dispatcher._fallbacks.pop(DispatchKey.Profiler, None)
        else:
            dispatch.register_fallback(DispatchKey.Profiler, old)
    assert "vt::t" in seen and "vt::reshape" in seen and "vt::view" in seen
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3), np.float32))
