"""matmul and linear have derivatives of their own (one autograd node each, not one per view and
product inside them): gradients, grad_fn names and gradient layouts against torch, every operand
rank matmul takes, linear with and without bias and a non-contiguous input, double backward."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt

A_SHAPES = [(3,), (2, 3), (4, 2, 3), (5, 4, 2, 3)]
B_SHAPES = [(3,), (3, 2), (4, 3, 2), (5, 4, 3, 2), (1, 3, 2)]


def _pair(rng, shape):
    a = rng.standard_normal(shape)
    return torch.tensor(a, requires_grad=True), vt.tensor(a, requires_grad=True)


def _backward_both(ty, vy, rng):
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(g))
    vy.backward(vt.tensor(g))


def _same(v, t):
    np.testing.assert_allclose(v.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sa", A_SHAPES)
@pytest.mark.parametrize("sb", B_SHAPES)
def test_matmul_gradients_and_node(sa, sb):
    rng = np.random.default_rng(0)
    (ta, va), (tb, vb) = _pair(rng, sa), _pair(rng, sb)
    try:
        ty = ta @ tb
    except RuntimeError:
        with pytest.raises(RuntimeError):
            va @ vb
        return
    vy = va @ vb
    assert vy.grad_fn.name() == ty.grad_fn.name()
    _backward_both(ty, vy, rng)
    for v, t in ((vy, ty), (va.grad, ta.grad), (vb.grad, tb.grad)):
        _same(v, t)
    assert va.grad.is_contiguous() and vb.grad.is_contiguous()


@pytest.mark.parametrize("input_shape,transposed", [((3,), False), ((2, 3), False), ((4, 2, 3), False),
                                                    ((2, 5, 3), True)])
@pytest.mark.parametrize("weight_shape", [(4, 3), (3,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients_and_node(input_shape, transposed, weight_shape, bias):
    rng = np.random.default_rng(1)
    ti, vi = _pair(rng, input_shape)
    tw, vw = _pair(rng, weight_shape)
    tb, vb = _pair(rng, weight_shape[:1] if len(weight_shape) == 2 else ()) if bias else (None, None)
    x_t, x_v = (ti.transpose(0, 2), vi.transpose(0, 2)) if transposed else (ti, vi)
    try:
        ty = torch.nn.functional.linear(x_t, tw, tb)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            vt.nn.functional.linear(x_v, vw, vb)
        return
    vy = vt.nn.functional.linear(x_v, vw, vb)
    assert vy.grad_fn.name() == ty.grad_fn.name()
    _backward_both(ty, vy, rng)
    for v, t in ((vy, ty), (vi.grad, ti.grad), (vw.grad, tw.grad)) + (((vb.grad, tb.grad),) if bias else ()):
        _same(v, t)
    assert vw.grad.stride() == tw.grad.stride()  # the weight's gradient comes out contiguous, as torch's


def test_linear_and_matmul_differentiate_twice():
    rng = np.random.default_rng(2)
    (ti, vi), (tw, vw), (tm, vm) = _pair(rng, (4, 3)), _pair(rng, (2, 3)), _pair(rng, (2, 3, 5))
    for lib, i, w, m in ((torch, ti, tw, tm), (vt, vi, vw, vm)):
        y = (lib.nn.functional.linear(i, w).pow(2).sum() + (i @ m).pow(2).sum())
        (gx,) = lib.autograd.grad(y, i, create_graph=True)
        gx.pow(2).sum().backward()
    _same(vw.grad, tw.grad)
    _same(vm.grad, tm.grad)


def test_one_node_per_linear():
    x = vt.randn(2, 5, 3, requires_grad=True)
    y = vt.nn.functional.linear(x, vt.randn(4, 3, requires_grad=True), vt.randn(4, requires_grad=True))
    # the node's inputs are the leaves themselves: no view/transposition nodes in between
    assert all(f is None or type(f).__name__ == "AccumulateGrad" for f, _ in y.grad_fn.next_functions)
