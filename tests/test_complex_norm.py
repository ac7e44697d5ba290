"""rms_norm of complex tensors against torch (CPU): forward, gradients of x and weight (torch's conjugate
Wirtinger convention), second order, and a gradcheck through view_as_real; the other norms refuse complex
input as torch's kernels do."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair

CDTYPES = ["complex64", "complex128"]
GRAD_TOL = {"complex64": (1e-4, 1e-5), "complex128": (1e-10, 1e-12)}

# (name, x shape, normalized_shape, weight: None | "complex" | "real", eps, layout)
CASES = [
    ("last_dim", (3, 5), (5,), None, None, "contiguous"),
    ("weight", (2, 3, 4), (4,), "complex", None, "contiguous"),
    ("real_weight", (2, 3, 4), (4,), "real", 1e-5, "contiguous"),
    ("two_dims", (2, 3, 4), (3, 4), "complex", 1e-3, "transposed"),
    ("strided", (4, 6), (6,), "complex", None, "strided"),
    ("expanded", (4, 6), (6,), None, 1e-6, "expanded"),
    ("one_row", (7,), (7,), "complex", None, "contiguous"),
    ("empty_batch", (0, 3), (3,), "complex", None, "contiguous"),
]


def _inputs(lib, pairs, x_pair, w_pair):
    """Leaves of lib (x and weight when given) built from the (torch, vt) pairs."""
    i = 0 if lib is torch else 1
    x = x_pair[i].detach().clone().requires_grad_()
    w = None if w_pair is None else w_pair[i].detach().clone().requires_grad_()
    return x, w


def _pairs(shape, norm_shape, weight, dtype, layout):
    x = make_pair(shape, dtype, layout, seed=1, low=-2.0, high=2.0)
    real = {"complex64": "float32", "complex128": "float64"}[dtype]
    w = None if weight is None else make_pair(norm_shape, dtype if weight == "complex" else real, seed=2)
    g = make_pair(shape, dtype, seed=3)
    return x, w, g


def _first(lib, x_pair, w_pair, g_pair, norm_shape, eps):
    x, w = _inputs(lib, None, x_pair, w_pair)
    y = lib.nn.functional.rms_norm(x, norm_shape, w, eps)
    leaves = [x] + ([w] if w is not None else [])
    grads = lib.autograd.grad(y, leaves, g_pair[0 if lib is torch else 1])
    return (y,) + tuple(grads)


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name,shape,norm_shape,weight,eps,layout", CASES, ids=[c[0] for c in CASES])
def test_rms_norm_forward_backward(name, shape, norm_shape, weight, eps, layout, dtype):
    x, w, g = _pairs(shape, norm_shape, weight, dtype, layout)
    rtol, atol = GRAD_TOL[dtype]
    assert_same(_first(vt, x, w, g, norm_shape, eps), _first(torch, x, w, g, norm_shape, eps), rtol=rtol, atol=atol)


def _second(lib, x_pair, w_pair, g_pair, v_pair, norm_shape, eps):
    """Gradients of <gx, v> (gx from create_graph) with respect to x and the weight."""
    x, w = _inputs(lib, None, x_pair, w_pair)
    y = lib.nn.functional.rms_norm(x, norm_shape, w, eps)
    i = 0 if lib is torch else 1
    gx, gw = lib.autograd.grad(y, [x, w], g_pair[i], create_graph=True)
    s = (gx * v_pair[i]).real.sum() + (gw * gw.conj()).real.sum()
    return lib.autograd.grad(s, [x, w])


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("weight", ["complex", "real"])
def test_rms_norm_second_order(dtype, weight):
    x, w, g = _pairs((3, 4), (4,), weight, dtype, "contiguous")
    v = make_pair((3, 4), dtype, seed=4)
    rtol, atol = GRAD_TOL[dtype]
    assert_same(_second(vt, x, w, g, v, (4,), 1e-4), _second(torch, x, w, g, v, (4,), 1e-4), rtol=rtol, atol=atol)


def test_rms_norm_plain_backward_accumulates():
    """loss.backward() (the fused path for real inputs) fills .grad of complex leaves as torch's."""
    x, w, _ = _pairs((2, 5), (5,), "complex", "complex64", "contiguous")

    def run(lib):
        xl, wl = _inputs(lib, None, x, w)
        for _ in range(2):  # accumulation over two backward passes
            lib.nn.functional.rms_norm(xl, (5,), wl).abs().sum().backward()
        return xl.grad, wl.grad
    assert_same(run(vt), run(torch), rtol=1e-4, atol=1e-5)


def _as_real_fn(norm_shape, eps, complex_weight):
    """rms_norm seen as a real function of real tensors (the parts of complex x and weight), so the
    float64 gradcheck checks the complex gradients, conjugation included."""
    def fn(xr, wr):
        w = vt.view_as_complex(wr) if complex_weight else wr
        return vt.view_as_real(vt.nn.functional.rms_norm(vt.view_as_complex(xr), norm_shape, w, eps))
    return fn


@pytest.mark.parametrize("complex_weight", [True, False])
def test_rms_norm_gradcheck_complex128(complex_weight):
    rng = np.random.default_rng(5)
    xr = vt.tensor(rng.standard_normal((3, 4, 2)), requires_grad=True)  # complex128 (3, 4) as its parts
    wr = vt.tensor(rng.standard_normal((4, 2) if complex_weight else (4,)), requires_grad=True)
    fn = _as_real_fn((4,), 1e-3, complex_weight)
    assert vt.autograd.gradcheck(fn, (xr, wr))
    assert vt.autograd.gradgradcheck(fn, (xr, wr))


REFUSED = [  # torch's CPU kernels take no complex input for these norms
    ("layer_norm", lambda lib, x: lib.nn.functional.layer_norm(x, (4,))),
    ("group_norm", lambda lib, x: lib.nn.functional.group_norm(x, 3)),
    ("batch_norm_train", lambda lib, x: lib.nn.functional.batch_norm(x, None, None, training=True)),
    ("batch_norm_eval", lambda lib, x: lib.nn.functional.batch_norm(
        x, lib.zeros(3, dtype=x.dtype), lib.ones(3, dtype=x.dtype), training=False)),
]


@pytest.mark.parametrize("name,fn", REFUSED, ids=[r[0] for r in REFUSED])
def test_other_norms_refuse_complex(name, fn):
    x = make_pair((2, 3, 4), "complex64")
    with pytest.raises(NotImplementedError, match="not implemented for 'ComplexFloat'"):
        fn(vt, x[1])
    check(fn, x)
