"""The conv family on CUDA against torch's CUDA results (marker `cuda`): every variant of
tests/test_conv.py's table (convolution 1-3d, transposed, groups, dilation; max/avg/adaptive/lp
pooling with ceil_mode and padding; padding modes; unfold/fold; shuffles; affine_grid;
interpolate; attention), forward in float32 and bfloat16 and gradients of every differentiable
input, plus larger problems, integer dtypes and errors. TF32 is off on both sides."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, torch_from_numpy
from test_conv import CASES, F, _base, first

pytestmark = pytest.mark.cuda


def N(*shape):
    return ("N", shape)


# grid_sampler is tested on CUDA in test_cuda_solver_sampling.py (torch's bfloat16 backward differs); lp_pool p = inf:
# torch 2.11 (the GPU machine's oracle) lacks the max-pooling special case that torch 2.13 and we have
SKIPPED = ("affine_grid_then_sample", "lp_pool2d_inf")
TABLE = [c for c in CASES if "grid_sample" not in c[0] and c[0] not in SKIPPED] + [
    ("conv2d_network_sized", lambda L, x, w, b: F(L).conv2d(x, w, b, padding=1), [N(8, 16, 20, 20), N(32, 16, 3, 3),
                                                                                 N(32)]),
    ("conv2d_groups4_stride", lambda L, x, w: F(L).conv2d(x, w, stride=2, padding=2, dilation=2, groups=4),
     [N(3, 8, 17, 13), N(12, 2, 3, 3)]),
    ("conv_transpose2d_groups_dilation", lambda L, x, w, b: F(L).conv_transpose2d(
        x, w, b, stride=3, padding=1, output_padding=2, groups=2, dilation=2), [N(2, 4, 5, 6), N(4, 3, 2, 3), N(6)]),
    ("conv1d_long", lambda L, x, w: F(L).conv1d(x, w, stride=3, padding=4, dilation=3), [N(4, 6, 300), N(5, 6, 5)]),
    ("conv3d_groups", lambda L, x, w, b: F(L).conv3d(x, w, b, padding=(1, 0, 1), groups=2),
     [N(2, 4, 6, 5, 7), N(4, 2, 3, 2, 3), N(4)]),
    ("max_pool2d_big_ceil", lambda L, x: F(L).max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
     [N(4, 8, 33, 31)]),
    ("avg_pool2d_big_ceil_pad", lambda L, x: F(L).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
     [N(4, 8, 33, 31)]),
    ("interpolate_bilinear_big", lambda L, x: F(L).interpolate(x, size=(45, 37), mode="bilinear"), [N(2, 3, 20, 17)]),
    ("interpolate_bilinear_big_ac", lambda L, x: F(L).interpolate(x, scale_factor=2, mode="bilinear",
                                                                  align_corners=True), [N(2, 3, 20, 17)]),
    ("interpolate_nearest_down", lambda L, x: F(L).interpolate(x, size=(7, 5)), [N(2, 3, 20, 17)]),
    ("adaptive_avg_pool2d_global", lambda L, x: F(L).adaptive_avg_pool2d(x, 1), [N(4, 16, 9, 9)]),
]
IDS = [c[0] for c in TABLE]
DTYPES = {"float32": (torch.float32, vt.float32), "bfloat16": (torch.bfloat16, vt.bfloat16)}
# (rtol, atol): TF32 is off; bfloat16 rounds once at the end on both sides, but sums in other orders
TOL = {"float32": (1e-4, 1e-4), "bfloat16": (3e-2, 6e-2)}


@pytest.fixture(autouse=True)
def no_cudnn_tf32(no_tf32):  # (conftest.py's no_tf32 for matrix products, and torch's convolutions too)
    # torch's cudnn flags through its context manager: once torch's internal test utilities are
    # imported in this process (test_amp does), assigning them directly raises
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        yield


def make(spec, seed, dtype, requires_grad=False):
    """(torch, vibetensor) CUDA tensors with equal values and layout, and their leaves."""
    kind, shape = spec
    rng = np.random.default_rng(seed)
    if kind == "T":
        a = _base(kind, shape[:-2] + (shape[-1], shape[-2]), rng, np.float32)
        view = lambda t: t.transpose(-1, -2)  # noqa: E731
    elif kind == "S":
        a = _base(kind, shape[:-1] + (2 * shape[-1],), rng, np.float32)
        view = lambda t: t[..., ::2]  # noqa: E731
    else:
        a = _base(kind, shape, rng, np.float32)
        view = lambda t: t  # noqa: E731
    tt, vv = torch_from_numpy(a).cuda(), vt.from_numpy(a.copy()).cuda()
    if kind != "B":
        tt, vv = tt.to(DTYPES[dtype][0]), vv.to(DTYPES[dtype][1])
    grad = requires_grad and kind != "B"
    tt.requires_grad_(grad)
    vv.requires_grad_(grad)
    return view(tt), view(vv), (tt, vv)


def _pairs(specs, seed, dtype, requires_grad=False):
    made = [make(s, seed + i, dtype, requires_grad) for i, s in enumerate(specs)]
    return [m[0] for m in made], [m[1] for m in made], [m[2] for m in made]


def _run(lib, fn, ins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(lib, *ins)


def _on_cuda(result):
    for r in result if isinstance(result, (tuple, list)) else (result,):
        assert r.is_cuda, "result left the GPU"


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name,fn,specs", TABLE, ids=IDS)
def test_forward_matches_torch_cuda(name, fn, specs, dtype):
    t_in, v_in, _ = _pairs(specs, 0, dtype)
    got = _run(vt, fn, v_in)
    _on_cuda(got)
    rtol, atol = TOL[dtype]
    assert_same(got, _run(torch, fn, t_in), rtol=rtol, atol=atol)


def _grads(lib, fn, ins, leaves):
    out = first(_run(lib, fn, ins))
    g = np.random.default_rng(9).uniform(-1, 1, tuple(out.shape))
    seed = lib.tensor(g, dtype=out.dtype).to(out.device)
    diff = [x for x in leaves if x.requires_grad]
    return lib.autograd.grad(out, diff, seed, allow_unused=True)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name,fn,specs", TABLE, ids=IDS)
def test_gradients_match_torch_cuda(name, fn, specs, dtype):
    t_in, v_in, leaves = _pairs(specs, 1, dtype, requires_grad=True)
    expected = _grads(torch, fn, t_in, [t for t, _ in leaves])
    got = _grads(vt, fn, v_in, [v for _, v in leaves])
    rtol, atol = TOL[dtype]
    assert_same(got, expected, rtol=rtol * 10, atol=atol * 10)


def test_conv_double_backward_cuda():
    """The weight-gradient op differentiated again (both adjoint pairs on the GPU)."""
    fn = lambda L, x, w: F(L).conv2d(x, w, stride=(2, 1), padding=1, groups=2)  # noqa: E731
    t_in, v_in, leaves = _pairs([N(2, 4, 6, 5), N(4, 2, 3, 2)], 3, "float32", requires_grad=True)
    outs = []
    for lib, ins, lv in ((torch, t_in, [t for t, _ in leaves]), (vt, v_in, [v for _, v in leaves])):
        out = fn(lib, *ins)
        g = lib.tensor(np.random.default_rng(5).uniform(-1, 1, tuple(out.shape)), dtype=out.dtype).to(out.device)
        gx, gw = lib.autograd.grad(out, lv, g, create_graph=True)
        outs.append(lib.autograd.grad((gx * gx).sum() + (gw * gw).sum(), lv))
    assert_same(outs[1], outs[0], rtol=1e-3, atol=1e-3)


INT_CASES = [
    ("conv2d_int64", lambda L, x, w: F(L).conv2d(x, w, padding=1), [(1, 2, 4, 4), (3, 2, 3, 3)]),
    ("max_pool2d_int64", lambda L, x: F(L).max_pool2d(x, 2, 1, 1, return_indices=True), [(1, 2, 3, 4)]),
    ("avg_pool2d_int64", lambda L, x: F(L).avg_pool2d(x, 2, 1, 1), [(1, 2, 3, 4)]),
    ("pad_reflect_int64", lambda L, x: F(L).pad(x, (2, 1), mode="reflect"), [(2, 3, 4)]),
    ("pad_constant_int_value", lambda L, x: F(L).pad(x, (1, 1), value=2.7), [(2, 3)]),
    ("pad_circular_bool", lambda L, x: F(L).pad(x.bool(), (1, 2), mode="circular"), [(2, 3, 4)]),
    ("pixel_shuffle_int64", lambda L, x: F(L).pixel_shuffle(x, 2), [(1, 4, 2, 3)]),
    ("interpolate_nearest_uint8", lambda L, x: F(L).interpolate(x.abs().to(L.uint8), scale_factor=2),
     [(1, 2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,shapes", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_integer_inputs_like_torch_cuda(name, fn, shapes):
    """Results where torch's CUDA kernels take integers; torch's exception type where they don't."""
    rng = np.random.default_rng(4)
    arrays = [rng.integers(-4, 5, s) for s in shapes]
    try:
        expected = fn(torch, *[torch.tensor(a).cuda() for a in arrays])
    except Exception as e:
        exc = type(e) if not type(e).__module__.startswith("torch") else RuntimeError
        with pytest.raises(exc):
            fn(vt, *[vt.tensor(a).cuda() for a in arrays])
        return
    assert_same(fn(vt, *[vt.tensor(a).cuda() for a in arrays]), expected)


def test_conv_is_a_constant_number_of_launches():
    """Batch and groups change no launch count: the convolution is not looped per image or group."""
    from vibetensor.runtime.cuda import launcher
    calls = []
    original = launcher.Kernel.__call__

    def counting(self, grid, *args, **kw):
        calls.append(self.fn.__name__)
        return original(self, grid, *args, **kw)

    counts = []
    for nb, groups in ((2, 2), (16, 4)):
        x = vt.randn(nb, 8, 10, 10).cuda()
        w = vt.randn(8, 8 // groups, 3, 3).cuda()
        F(vt).conv2d(x, w, padding=1, groups=groups)  # compile first
        calls.clear()
        launcher.Kernel.__call__ = counting
        try:
            F(vt).conv2d(x, w, padding=1, groups=groups)
        finally:
            launcher.Kernel.__call__ = original
        counts.append(len(calls))
    assert counts[0] == counts[1] <= 2, counts  # im2col and the bias/permute copy (the product is cuBLAS)
