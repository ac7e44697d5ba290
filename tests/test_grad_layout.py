"""The Gradient Layout Contract of torch's AccumulateGrad, against torch on CPU: a leaf's .grad
gets the leaf's strides when the leaf is dense (a contiguous weight gets a contiguous grad even when
mm's backward hands it a transposed one), else it is contiguous; accumulation keeps the layout."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt


def _weight(lib):
    return lib.arange(20.0).reshape(5, 4).requires_grad_()


def _transposed_weight(lib):
    return lib.arange(20.0).reshape(4, 5).t().detach().requires_grad_()     # dense, strides (1, 5)


def _strided_weight(lib):
    return lib.arange(40.0).reshape(5, 8)[:, ::2].detach().requires_grad_()  # not dense: (8, 2)


def _channels_last(lib):
    return lib.arange(120.0).reshape(2, 3, 4, 5).to(memory_format=lib.channels_last).requires_grad_()


def _x(lib):
    return lib.linspace(-1.0, 1.0, 12).reshape(3, 4)


# name, leaf maker, loss(lib, leaf)
CASES = [
    ("mm_transposed_grad", _weight, lambda lib, w: (_x(lib) @ w.t()).sum()),
    ("mm_plain_grad", _weight, lambda lib, w: (w @ _x(lib).t()).sum()),
    ("expanded_grad", _weight, lambda lib, w: w.sum()),
    ("leaf_transposed", _transposed_weight, lambda lib, w: (_x(lib) @ w.t()).sum()),
    ("leaf_transposed_expanded", _transposed_weight, lambda lib, w: w.sum()),
    ("leaf_not_dense", _strided_weight, lambda lib, w: (_x(lib) @ w.t()).sum()),
    ("leaf_channels_last", _channels_last, lambda lib, w: (w * 2).sum()),
    ("leaf_channels_last_permuted_grad", _channels_last, lambda lib, w: w.permute(0, 2, 3, 1).exp().sum()),
]


def _grads(lib, make, loss, times):
    w = make(lib)
    for _ in range(times):
        loss(lib, w).backward()
    return w


@pytest.mark.parametrize("times", [1, 2])
@pytest.mark.parametrize("name, make, loss", CASES, ids=[c[0] for c in CASES])
def test_grad_strides_match_torch(name, make, loss, times):
    tw, vw = _grads(torch, make, loss, times), _grads(vt, make, loss, times)
    assert vw.grad.stride() == tw.grad.stride()
    np.testing.assert_allclose(np.array(vw.grad.tolist()), np.array(tw.grad.tolist()), rtol=1e-6)


@pytest.mark.parametrize("lib_name", ["torch", "vt"])
def test_linear_grads_are_contiguous(lib_name):
    lib = {"torch": torch, "vt": vt}[lib_name]
    lib.manual_seed(0)
    lin = lib.nn.Linear(4, 5)
    lin(_x(lib)).sum().backward()
    assert lin.weight.grad.stride() == (4, 1) and lin.bias.grad.stride() == (1,)


def _create_graph(lib):
    w = _weight(lib)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's reference-cycle warning for backward(create_graph)
        (_x(lib) @ (w * w).t()).sum().backward(create_graph=True)
    return w


def test_create_graph_grad_keeps_layout_and_history():
    tw, vw = _create_graph(torch), _create_graph(vt)
    assert vw.grad.stride() == tw.grad.stride() == (4, 1)
    assert vw.grad.requires_grad and tw.grad.requires_grad
    tw.grad.sum().backward()
    vw.grad.sum().backward()  # differentiable again: d/dw sum(2 * x_sum * w)
    np.testing.assert_allclose(np.array(vw.grad.tolist()), np.array(tw.grad.tolist()), rtol=1e-6)
