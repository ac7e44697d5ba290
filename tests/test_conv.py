"""nn.functional's convolution family against torch: convolution (1-3d, transposed, groups, dilation,
'same'), pooling (max, avg, adaptive, lp), padding modes, unfold/fold, pixel/channel shuffles,
grid_sample, affine_grid, interpolate and scaled_dot_product_attention. Forward in float32 and
float64 (contiguous and non-contiguous inputs), gradients of every differentiable input,
gradcheck on tiny shapes, second derivatives, other dtypes, and errors. One line per variant."""
import math
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, torch_from_numpy


# -- inputs: (kind, shape); kinds: N normal, T transposed layout, S strided layout, P positive,
#    G grid coordinates (a little beyond [-1, 1]), B bool mask (never differentiated) ---------------------
def N(*shape):
    return ("N", shape)


def T(*shape):
    return ("T", shape)


def S(*shape):
    return ("S", shape)


def P(*shape):
    return ("P", shape)


def G(*shape):
    return ("G", shape)


def B(*shape):
    return ("B", shape)


def _base(kind, shape, rng, dtype):
    if kind == "B":
        return rng.random(shape) < 0.7
    lo, hi = {"P": (0.5, 2.0), "G": (-1.2, 1.2)}.get(kind, (-2.0, 2.0))
    return rng.uniform(lo, hi, shape).astype(dtype)


def make(spec, seed, dtype, requires_grad=False):
    """(torch tensor, vibetensor tensor) with equal values and memory layout."""
    kind, shape = spec
    rng = np.random.default_rng(seed)
    if kind == "T":
        a = _base(kind, shape[:-2] + (shape[-1], shape[-2]), rng, dtype)
        view = lambda t: t.transpose(-1, -2)  # noqa: E731
    elif kind == "S":
        a = _base(kind, shape[:-1] + (2 * shape[-1],), rng, dtype)
        view = lambda t: t[..., ::2]  # noqa: E731
    else:
        a = _base(kind, shape, rng, dtype)
        view = lambda t: t  # noqa: E731
    grad = requires_grad and kind != "B"
    tt = torch_from_numpy(a).requires_grad_(grad)
    vv = vt.from_numpy(a.copy()).requires_grad_(grad)
    return view(tt), view(vv), (tt, vv)


def F(lib):
    return lib.nn.functional


def TL(lib, name):
    """A torch.* level function (vibetensor's from functional_conv until torch/__init__ exports it)."""
    if lib is torch or hasattr(lib, name):
        return getattr(lib, name)
    from vibetensor.torch.nn.functional_conv import TORCH_FUNCTIONS
    return TORCH_FUNCTIONS[name]


def first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


# -- one line per function variant: (id, fn(lib, *inputs), input specs) ---------------------------------------
CASES = [
    # convolution
    ("conv1d", lambda L, x, w, b: F(L).conv1d(x, w, b, stride=2, padding=1), [N(2, 4, 9), N(6, 4, 3), N(6)]),
    ("conv1d_groups_dilation", lambda L, x, w: F(L).conv1d(x, w, groups=2, dilation=2), [S(1, 4, 10), N(4, 2, 3)]),
    ("conv1d_same_even", lambda L, x, w: F(L).conv1d(x, w, padding="same"), [N(2, 3, 8), N(2, 3, 4)]),
    ("conv1d_valid", lambda L, x, w: F(L).conv1d(x, w, padding="valid"), [N(2, 3, 8), N(2, 3, 4)]),
    ("conv1d_unbatched", lambda L, x, w, b: F(L).conv1d(x, w, b), [N(3, 7), N(2, 3, 3), N(2)]),
    ("conv2d", lambda L, x, w, b: F(L).conv2d(x, w, b, stride=2, padding=1), [N(2, 3, 7, 6), N(4, 3, 3, 3), N(4)]),
    ("conv2d_groups_dilation", lambda L, x, w: F(L).conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                                                          groups=2), [T(2, 4, 8, 7), N(6, 2, 3, 2)]),
    ("conv2d_depthwise", lambda L, x, w, b: F(L).conv2d(x, w, b, padding=1, groups=3),
     [S(1, 3, 6, 6), N(3, 1, 3, 3), N(3)]),
    ("conv2d_same_even", lambda L, x, w: F(L).conv2d(x, w, padding="same", dilation=(2, 1)),
     [N(1, 2, 6, 5), N(3, 2, 3, 4)]),
    ("conv2d_unbatched", lambda L, x, w: F(L).conv2d(x, w, stride=2), [T(3, 5, 5), N(2, 3, 2, 2)]),
    ("conv2d_transposed_weight", lambda L, x, w: F(L).conv2d(x, w), [N(2, 3, 5, 6), T(4, 3, 3, 2)]),
    ("conv3d", lambda L, x, w, b: F(L).conv3d(x, w, b, stride=(1, 2, 1), padding=1),
     [N(1, 2, 5, 4, 5), N(3, 2, 2, 3, 2), N(3)]),
    ("conv_transpose1d", lambda L, x, w, b: F(L).conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
     [N(2, 4, 5), N(4, 3, 3), N(3)]),
    ("conv_transpose1d_outpad_dilation", lambda L, x, w: F(L).conv_transpose1d(x, w, output_padding=1, dilation=2),
     [N(1, 2, 4), N(2, 3, 3)]),
    ("conv_transpose2d", lambda L, x, w, b: F(L).conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1,
                                                                   groups=2), [N(2, 4, 4, 5), N(4, 2, 3, 3), N(4)]),
    ("conv_transpose2d_dilation", lambda L, x, w: F(L).conv_transpose2d(x, w, stride=(1, 2), padding=(1, 0),
                                                                        dilation=2), [T(1, 2, 3, 4), N(2, 3, 2, 3)]),
    ("conv_transpose2d_unbatched", lambda L, x, w: F(L).conv_transpose2d(x, w, stride=2), [N(2, 3, 3), N(2, 1, 2, 2)]),
    ("conv_transpose3d", lambda L, x, w: F(L).conv_transpose3d(x, w, stride=2), [N(1, 2, 3, 3, 2), N(2, 2, 2, 2, 2)]),
    ("torch.convolution", lambda L, x, w, b: TL(L, "convolution")(x, w, b, [1, 2], [1, 0], [1, 1], False, [0, 0], 1),
     [N(2, 3, 5, 6), N(2, 3, 3, 3), N(2)]),
    ("torch.conv2d", lambda L, x, w: TL(L, "conv2d")(x, w, None, 1, 1), [N(1, 2, 4, 4), N(3, 2, 3, 3)]),
    # max pooling
    ("max_pool1d", lambda L, x: F(L).max_pool1d(x, 3, 2, 1), [N(2, 3, 9)]),
    ("max_pool1d_ceil_indices", lambda L, x: F(L).max_pool1d(x, 3, 2, ceil_mode=True, return_indices=True),
     [S(2, 3, 10)]),
    ("max_pool2d_indices", lambda L, x: F(L).max_pool2d(x, 3, 2, 1, return_indices=True), [N(2, 3, 7, 6)]),
    ("max_pool2d_dilation_ceil", lambda L, x: F(L).max_pool2d(x, (3, 2), (2, 3), 1, (2, 1), ceil_mode=True,
                                                              return_indices=True), [T(1, 2, 9, 8)]),
    ("max_pool2d_unbatched", lambda L, x: F(L).max_pool2d(x, 2), [N(3, 6, 5)]),
    ("max_pool3d_indices", lambda L, x: F(L).max_pool3d(x, 2, (1, 2, 2), (1, 0, 1), return_indices=True),
     [N(1, 2, 5, 6, 4)]),
    ("torch.max_pool1d_with_indices", lambda L, x: TL(L, "max_pool1d_with_indices")(x, 2), [N(2, 5)]),
    # average pooling
    ("avg_pool1d", lambda L, x: F(L).avg_pool1d(x, 3, 2, 1, count_include_pad=False), [N(2, 3, 9)]),
    ("avg_pool2d_ceil", lambda L, x: F(L).avg_pool2d(x, 3, 2, 1, ceil_mode=True), [T(2, 3, 7, 6)]),
    ("avg_pool2d_ceil_exclude_pad", lambda L, x: F(L).avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
     [N(2, 3, 7, 6)]),
    ("avg_pool2d_divisor", lambda L, x: F(L).avg_pool2d(x, (3, 2), 1, divisor_override=3), [N(3, 5, 4)]),
    ("avg_pool3d", lambda L, x: F(L).avg_pool3d(x, (2, 3, 2), 2, (1, 1, 0), ceil_mode=True), [N(1, 2, 5, 4, 6)]),
    ("adaptive_avg_pool1d", lambda L, x: F(L).adaptive_avg_pool1d(x, 4), [N(2, 3, 10)]),
    ("adaptive_avg_pool2d", lambda L, x: F(L).adaptive_avg_pool2d(x, (3, None)), [T(2, 3, 7, 9)]),
    ("adaptive_avg_pool2d_up", lambda L, x: F(L).adaptive_avg_pool2d(x, (5, 7)), [N(1, 2, 3, 4)]),
    ("adaptive_avg_pool3d", lambda L, x: F(L).adaptive_avg_pool3d(x, (2, 3, 4)), [N(1, 2, 5, 6, 7)]),
    ("adaptive_max_pool1d", lambda L, x: F(L).adaptive_max_pool1d(x, 4, return_indices=True), [N(2, 3, 10)]),
    ("adaptive_max_pool2d", lambda L, x: F(L).adaptive_max_pool2d(x, (3, 4), return_indices=True), [S(2, 3, 7, 9)]),
    ("adaptive_max_pool3d", lambda L, x: F(L).adaptive_max_pool3d(x, (2, 3, 4), return_indices=True),
     [N(1, 2, 5, 6, 7)]),
    ("lp_pool1d", lambda L, x: F(L).lp_pool1d(x, 2, 3, 2), [P(2, 3, 8)]),
    ("lp_pool2d", lambda L, x: F(L).lp_pool2d(x, 3, 2), [P(1, 2, 6, 6)]),
    ("lp_pool2d_inf", lambda L, x: F(L).lp_pool2d(x, float("inf"), 2), [N(1, 2, 6, 6)]),
    # padding
    ("pad_constant", lambda L, x: F(L).pad(x, (1, 2, 0, 1), value=0.5), [T(2, 3, 4, 5)]),
    ("pad_constant_negative", lambda L, x: F(L).pad(x, (-1, 2, 1, -2)), [N(2, 3, 4, 5)]),
    ("pad_constant_3dims", lambda L, x: F(L).pad(x, (1, 1, 0, 2, 1, 0)), [N(3, 2, 4)]),
    ("torch.constant_pad_nd", lambda L, x: TL(L, "constant_pad_nd")(x, (1, 0, 2, 1), 1.5), [N(2, 2, 3)]),
    ("pad_reflect1d", lambda L, x: F(L).pad(x, (2, 3), mode="reflect"), [N(2, 3, 5)]),
    ("pad_reflect2d", lambda L, x: F(L).pad(x, (1, 3, 2, 1), mode="reflect"), [T(1, 2, 4, 5)]),
    ("pad_reflect2d_unbatched", lambda L, x: F(L).pad(x, (1, 1, 2, 2), mode="reflect"), [N(2, 4, 5)]),
    ("pad_reflect3d", lambda L, x: F(L).pad(x, (1, 2, 0, 1, 2, 1), mode="reflect"), [N(1, 1, 3, 4, 5)]),
    ("pad_replicate1d_wide", lambda L, x: F(L).pad(x, (5, 4), mode="replicate"), [N(2, 3, 3)]),
    ("pad_replicate2d", lambda L, x: F(L).pad(x, (1, 2, -1, 1), mode="replicate"), [S(1, 2, 4, 5)]),
    ("pad_replicate3d", lambda L, x: F(L).pad(x, (1, 1, 1, 0, 0, 2), mode="replicate"), [N(1, 2, 2, 3, 2)]),
    ("pad_circular1d", lambda L, x: F(L).pad(x, (3, 1), mode="circular"), [N(2, 3, 3)]),
    ("pad_circular2d_negative", lambda L, x: F(L).pad(x, (1, -1, -1, 2), mode="circular"), [N(1, 2, 3, 4)]),
    ("pad_circular3d", lambda L, x: F(L).pad(x, (1, 1, 2, 0, 0, 1), mode="circular"), [N(1, 1, 2, 3, 4)]),
    # unfold / fold
    ("unfold", lambda L, x: F(L).unfold(x, (2, 3), (1, 2), 1, (2, 1)), [N(2, 3, 6, 5)]),
    ("unfold_unbatched", lambda L, x: F(L).unfold(x, 2), [T(3, 5, 5)]),
    ("fold", lambda L, x: F(L).fold(x, (5, 6), 2, 1, 1, (1, 2)), [N(2, 12, 24)]),
    ("fold_dilation_unbatched", lambda L, x: F(L).fold(x, (7, 7), 3, 2, 0, 2), [N(9, 4)]),
    # shuffles
    ("pixel_shuffle", lambda L, x: F(L).pixel_shuffle(x, 2), [T(2, 8, 3, 4)]),
    ("pixel_shuffle_5d", lambda L, x: F(L).pixel_shuffle(x, 3), [N(1, 2, 9, 2, 2)]),
    ("pixel_unshuffle", lambda L, x: F(L).pixel_unshuffle(x, 2), [N(2, 2, 6, 4)]),
    ("channel_shuffle", lambda L, x: F(L).channel_shuffle(x, 3), [N(2, 6, 3, 3)]),
    ("torch.channel_shuffle_3d", lambda L, x: TL(L, "channel_shuffle")(x, 2), [S(1, 4, 5)]),
    # grid_sample / affine_grid
    ("grid_sample_bilinear_zeros", lambda L, x, g: F(L).grid_sample(x, g, align_corners=False),
     [N(2, 3, 5, 6), G(2, 4, 3, 2)]),
    ("grid_sample_bilinear_border_ac", lambda L, x, g: F(L).grid_sample(x, g, padding_mode="border",
                                                                        align_corners=True),
     [T(2, 3, 5, 6), G(2, 4, 3, 2)]),
    ("grid_sample_bilinear_reflection", lambda L, x, g: F(L).grid_sample(x, g, padding_mode="reflection",
                                                                         align_corners=False),
     [N(1, 2, 4, 5), G(1, 5, 4, 2)]),
    ("grid_sample_bilinear_reflection_ac", lambda L, x, g: F(L).grid_sample(x, g, padding_mode="reflection",
                                                                            align_corners=True),
     [N(1, 2, 4, 5), G(1, 5, 4, 2)]),
    ("grid_sample_nearest", lambda L, x, g: F(L).grid_sample(x, g, mode="nearest", align_corners=False),
     [N(2, 2, 4, 5), G(2, 3, 3, 2)]),
    ("grid_sample_nearest_reflection", lambda L, x, g: F(L).grid_sample(x, g, mode="nearest",
                                                                        padding_mode="reflection", align_corners=True),
     [N(1, 2, 4, 5), G(1, 3, 3, 2)]),
    ("grid_sample_bicubic", lambda L, x, g: F(L).grid_sample(x, g, mode="bicubic", align_corners=False),
     [N(1, 2, 5, 6), G(1, 3, 4, 2)]),
    ("grid_sample_bicubic_border_ac", lambda L, x, g: F(L).grid_sample(x, g, mode="bicubic", padding_mode="border",
                                                                       align_corners=True),
     [N(1, 2, 5, 6), G(1, 3, 4, 2)]),
    ("grid_sample_bicubic_reflection", lambda L, x, g: F(L).grid_sample(x, g, mode="bicubic",
                                                                        padding_mode="reflection", align_corners=False),
     [N(1, 2, 5, 6), G(1, 3, 4, 2)]),
    ("grid_sample_3d_bilinear", lambda L, x, g: F(L).grid_sample(x, g, align_corners=False),
     [N(1, 2, 3, 4, 5), G(1, 2, 3, 2, 3)]),
    ("grid_sample_3d_nearest_border", lambda L, x, g: F(L).grid_sample(x, g, mode="nearest", padding_mode="border",
                                                                       align_corners=True),
     [N(1, 2, 3, 4, 5), G(1, 2, 3, 2, 3)]),
    ("affine_grid", lambda L, t: F(L).affine_grid(t, (2, 3, 4, 5), align_corners=False), [N(2, 2, 3)]),
    ("affine_grid_ac", lambda L, t: F(L).affine_grid(t, (2, 3, 4, 5), align_corners=True), [N(2, 2, 3)]),
    ("affine_grid_3d", lambda L, t: F(L).affine_grid(t, (1, 2, 3, 4, 5), align_corners=False), [N(1, 3, 4)]),
    ("affine_grid_then_sample", lambda L, x, t: F(L).grid_sample(x, F(L).affine_grid(t, (2, 3, 3, 4), False),
                                                                 align_corners=False), [N(2, 3, 5, 6), N(2, 2, 3)]),
    # interpolate
    ("interpolate_nearest_scale2", lambda L, x: F(L).interpolate(x, scale_factor=2), [N(2, 3, 4, 5)]),
    ("interpolate_nearest_size", lambda L, x: F(L).interpolate(x, size=(5, 7)), [T(2, 3, 4, 5)]),
    ("interpolate_nearest_1d_scale", lambda L, x: F(L).interpolate(x, scale_factor=1.5), [N(2, 3, 5)]),
    ("interpolate_nearest_3d", lambda L, x: F(L).interpolate(x, size=(3, 5, 2)), [N(1, 2, 2, 3, 4)]),
    ("interpolate_nearest_exact", lambda L, x: F(L).interpolate(x, size=(5, 3), mode="nearest-exact"),
     [N(2, 3, 4, 5)]),
    ("interpolate_linear", lambda L, x: F(L).interpolate(x, size=7, mode="linear"), [N(2, 3, 5)]),
    ("interpolate_linear_ac", lambda L, x: F(L).interpolate(x, size=7, mode="linear", align_corners=True),
     [S(2, 3, 5)]),
    ("interpolate_bilinear_scale", lambda L, x: F(L).interpolate(x, scale_factor=1.7, mode="bilinear"),
     [N(2, 3, 4, 5)]),
    ("interpolate_bilinear_recompute", lambda L, x: F(L).interpolate(x, scale_factor=1.7, mode="bilinear",
                                                                     recompute_scale_factor=True), [N(2, 3, 4, 5)]),
    ("interpolate_bilinear_ac_down", lambda L, x: F(L).interpolate(x, size=(3, 2), mode="bilinear",
                                                                   align_corners=True), [T(1, 2, 5, 6)]),
    ("interpolate_bicubic", lambda L, x: F(L).interpolate(x, size=(5, 9), mode="bicubic"), [N(1, 2, 4, 5)]),
    ("interpolate_bicubic_ac", lambda L, x: F(L).interpolate(x, size=(3, 8), mode="bicubic", align_corners=True),
     [N(1, 2, 4, 5)]),
    ("interpolate_trilinear", lambda L, x: F(L).interpolate(x, size=(3, 4, 5), mode="trilinear"),
     [N(1, 2, 2, 3, 4)]),
    ("interpolate_area", lambda L, x: F(L).interpolate(x, size=(3, 2), mode="area"), [N(2, 3, 7, 5)]),
    ("upsample_bilinear", lambda L, x: F(L).upsample_bilinear(x, scale_factor=2), [N(1, 2, 3, 4)]),
    # scaled dot-product attention
    ("sdpa", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v), [N(2, 3, 4, 8), N(2, 3, 5, 8),
                                                                             N(2, 3, 5, 6)]),
    ("sdpa_bool_mask_masked_row", lambda L, q, k, v, m: F(L).scaled_dot_product_attention(q, k, v, attn_mask=m),
     [N(2, 2, 4, 8), N(2, 2, 5, 8), N(2, 2, 5, 6), B(4, 5)]),
    ("sdpa_float_mask", lambda L, q, k, v, m: F(L).scaled_dot_product_attention(q, k, v, attn_mask=m),
     [N(2, 2, 4, 8), T(2, 2, 5, 8), N(2, 2, 5, 6), N(1, 2, 4, 5)]),
    ("sdpa_causal", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3),
     [N(1, 2, 5, 4), N(1, 2, 5, 4), N(1, 2, 5, 3)]),
    ("sdpa_causal_rect", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v, is_causal=True),
     [N(1, 1, 5, 4), N(1, 1, 3, 4), N(1, 1, 3, 4)]),
    ("sdpa_gqa", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v, enable_gqa=True),
     [N(1, 4, 3, 8), N(1, 2, 5, 8), N(1, 2, 5, 8)]),
    ("sdpa_3d_broadcast", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v),
     [N(2, 3, 4, 8), N(3, 5, 8), S(3, 5, 6)]),
    ("sdpa_2d", lambda L, q, k, v: F(L).scaled_dot_product_attention(q, k, v), [N(4, 8), N(5, 8), N(5, 6)]),
]
IDS = [c[0] for c in CASES]


def _run(lib, fn, ins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(lib, *ins)


def _pairs(specs, seed, dtype, requires_grad=False):
    made = [make(s, seed + i, dtype, requires_grad) for i, s in enumerate(specs)]
    return [m[0] for m in made], [m[1] for m in made], [m[2] for m in made]


@pytest.mark.parametrize("name,fn,specs", CASES, ids=IDS)
def test_forward_matches_torch(name, fn, specs):
    for dtype in ("float32", "float64"):
        t_in, v_in, _ = _pairs(specs, 0, dtype)
        assert_same(_run(vt, fn, v_in), _run(torch, fn, t_in))


def _grads(lib, fn, ins, leaves):
    out = first(_run(lib, fn, ins))
    g = np.random.default_rng(9).uniform(-1, 1, tuple(out.shape))
    diff = [x for x in leaves if x.requires_grad]
    return lib.autograd.grad(out, diff, lib.tensor(g, dtype=out.dtype), allow_unused=True)


@pytest.mark.parametrize("name,fn,specs", CASES, ids=IDS)
def test_gradients_match_torch(name, fn, specs):
    for dtype in ("float64", "float32"):
        t_in, v_in, leaves = _pairs(specs, 1, dtype, requires_grad=True)
        expected = _grads(torch, fn, t_in, [t for t, _ in leaves])
        got = _grads(vt, fn, v_in, [v for _, v in leaves])
        tol = {} if dtype == "float64" else {"rtol": 1e-5, "atol": 1e-5}
        assert_same(got, expected, **tol)


# -- gradcheck (float64, tiny shapes) ----------------------------------------------------------------------------
TINY = [
    ("conv2d", lambda L, x, w, b: F(L).conv2d(x, w, b, stride=(2, 1), padding=1, groups=2),
     [N(1, 2, 4, 3), N(2, 1, 2, 2), N(2)]),
    ("conv_transpose2d", lambda L, x, w: F(L).conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
     [N(1, 2, 2, 3), N(2, 1, 3, 2)]),
    ("conv1d_same", lambda L, x, w: F(L).conv1d(x, w, padding="same", dilation=1), [N(2, 2, 4), N(1, 2, 2)]),
    ("max_pool2d", lambda L, x: F(L).max_pool2d(x, 2, 1, 1), [N(1, 2, 3, 3)]),
    ("adaptive_max_pool1d", lambda L, x: F(L).adaptive_max_pool1d(x, 3), [N(1, 2, 5)]),
    ("avg_pool2d", lambda L, x: F(L).avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False),
     [N(1, 1, 4, 3)]),
    ("adaptive_avg_pool2d", lambda L, x: F(L).adaptive_avg_pool2d(x, (2, 3)), [N(1, 1, 3, 4)]),
    ("lp_pool1d", lambda L, x: F(L).lp_pool1d(x, 2, 2), [P(1, 2, 4)]),
    ("pad_reflect", lambda L, x: F(L).pad(x, (2, 1, 1, 1), mode="reflect"), [N(1, 1, 3, 3)]),
    ("pad_circular", lambda L, x: F(L).pad(x, (1, 2), mode="circular"), [N(1, 2, 3)]),
    ("pad_constant", lambda L, x: F(L).pad(x, (1, -1, 2, 0), value=2.0), [N(1, 2, 3)]),
    ("unfold", lambda L, x: F(L).unfold(x, 2, padding=1, stride=2), [N(1, 2, 3, 3)]),
    ("fold", lambda L, x: F(L).fold(x, (3, 3), 2), [N(1, 4, 4)]),
    ("pixel_shuffle", lambda L, x: F(L).pixel_shuffle(x, 2), [N(1, 4, 2, 1)]),
    ("channel_shuffle", lambda L, x: F(L).channel_shuffle(x, 2), [N(1, 4, 2)]),
    ("grid_sample_bilinear", lambda L, x, g: F(L).grid_sample(x, g, padding_mode="reflection", align_corners=False),
     [N(1, 1, 3, 3), G(1, 2, 2, 2)]),
    ("grid_sample_bicubic", lambda L, x, g: F(L).grid_sample(x, g, mode="bicubic", align_corners=True),
     [N(1, 1, 3, 3), G(1, 2, 1, 2)]),
    ("affine_grid", lambda L, t: F(L).affine_grid(t, (1, 1, 2, 3), align_corners=False), [N(1, 2, 3)]),
    ("interpolate_bicubic", lambda L, x: F(L).interpolate(x, size=(3, 4), mode="bicubic"), [N(1, 1, 2, 3)]),
    ("interpolate_linear", lambda L, x: F(L).interpolate(x, scale_factor=1.5, mode="linear"), [N(1, 2, 3)]),
    ("sdpa_float_mask", lambda L, q, k, v, m: F(L).scaled_dot_product_attention(q, k, v, attn_mask=m),
     [N(1, 2, 3), N(1, 3, 3), N(1, 3, 2), N(2, 3)]),
]


@pytest.mark.parametrize("name,fn,specs", TINY, ids=[c[0] for c in TINY])
def test_gradcheck(name, fn, specs):
    _, ins, _ = _pairs(specs, 2, "float64", requires_grad=True)
    diff = [x for x in ins if x.requires_grad]
    assert vt.autograd.gradcheck(lambda *xs: first(_run(vt, fn, _substitute(ins, xs))), diff)


def _substitute(ins, diff):
    it = iter(diff)
    return [next(it) if x.requires_grad else x for x in ins]


def _sdpa_math(lib, q, k, v, **kw):
    """torch's math attention (its CPU flash kernel has no second derivative) against ours."""
    if lib is torch:
        return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, **kw)[0]
    return F(lib).scaled_dot_product_attention(q, k, v, **kw)


# -- second derivatives against torch ------------------------------------------------------------------------------
# The gradient of grad_output is differentiated too (as gradgradcheck does), so the adjoint ops of the
# linear ones (avg_pool_backward, col2im, ...) are checked through their own derivatives.
SECOND = [
    ("conv2d", lambda L, x, w: F(L).conv2d(x, w, stride=(2, 1), padding=1, groups=2), [N(1, 2, 4, 3), N(2, 1, 2, 2)]),
    ("conv_transpose2d", lambda L, x, w: F(L).conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
     [N(1, 2, 2, 3), N(2, 1, 3, 2)]),
    ("conv1d_dilation", lambda L, x, w: F(L).conv1d(x, w, stride=2, dilation=2), [N(2, 2, 7), N(3, 2, 2)]),
    ("max_pool2d", lambda L, x: F(L).max_pool2d(x, 2, 1, 1), [N(1, 2, 3, 3)]),
    ("adaptive_max_pool2d", lambda L, x: F(L).adaptive_max_pool2d(x, (2, 3)), [N(1, 2, 3, 4)]),
    ("avg_pool2d", lambda L, x: F(L).avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False),
     [N(1, 1, 4, 3)]),
    ("adaptive_avg_pool2d", lambda L, x: F(L).adaptive_avg_pool2d(x, (2, 3)), [N(1, 1, 3, 4)]),
    ("pad_reflect", lambda L, x: F(L).pad(x, (2, 1, 1, 1), mode="reflect"), [N(1, 1, 3, 3)]),
    ("pad_constant", lambda L, x: F(L).pad(x, (1, -1, 2, 0), value=2.0), [N(1, 2, 3)]),
    ("unfold", lambda L, x: F(L).unfold(x, 2, padding=1, stride=2), [N(1, 2, 3, 3)]),
    ("fold", lambda L, x: F(L).fold(x, (3, 3), 2), [N(1, 4, 4)]),
    ("pixel_shuffle", lambda L, x: F(L).pixel_shuffle(x, 2), [N(1, 4, 2, 1)]),
    ("channel_shuffle", lambda L, x: F(L).channel_shuffle(x, 2), [N(1, 4, 2)]),
    ("interpolate_bicubic", lambda L, x: F(L).interpolate(x, size=(3, 4), mode="bicubic"), [N(1, 1, 2, 3)]),
    ("affine_grid", lambda L, t: F(L).affine_grid(t, (1, 1, 2, 3), align_corners=False), [N(1, 2, 3)]),
    ("conv2d_bias", lambda L, x, w, b: F(L).conv2d(x, w, b, padding=1), [N(1, 2, 3, 3), N(2, 2, 2, 2), N(2)]),
    ("sdpa_float_mask", lambda L, q, k, v, m: F(L).scaled_dot_product_attention(q, k, v, attn_mask=m),
     [N(1, 2, 3), N(1, 3, 3), N(1, 3, 2), N(2, 3)]),
    ("sdpa_gqa_causal", lambda L, q, k, v: _sdpa_math(L, q, k, v, is_causal=True, enable_gqa=True),
     [N(1, 4, 3, 2), N(1, 2, 3, 2), N(1, 2, 3, 2)]),
]


def _second(lib, fn, ins, leaves):
    out = first(_run(lib, fn, ins))
    rng = np.random.default_rng(5)
    g_out = lib.tensor(rng.uniform(-1, 1, tuple(out.shape)), requires_grad=True)
    firsts = lib.autograd.grad(out, leaves, g_out, create_graph=True)
    vs = [lib.tensor(rng.uniform(-1, 1, tuple(g.shape))) for g in firsts]
    seconds = lib.autograd.grad(firsts, leaves + [g_out], vs, allow_unused=True)
    # a gradient that is zero because the first one did not depend on that input: torch may return
    # zeros where we return None
    return [lib.zeros_like(x) if g is None else g for g, x in zip(seconds, leaves + [g_out])]


@pytest.mark.parametrize("name,fn,specs", SECOND, ids=[c[0] for c in SECOND])
def test_second_derivative_matches_torch(name, fn, specs):
    t_in, v_in, leaves = _pairs(specs, 3, "float64", requires_grad=True)
    expected = _second(torch, fn, t_in, [t for t, _ in leaves if t.requires_grad])
    got = _second(vt, fn, v_in, [v for t, v in leaves if t.requires_grad])
    assert_same(got, expected)


# -- other dtypes: forward only (one line per op and dtype) ------------------------------------------------------
def _typed(lib, a, dtype):
    t = lib.tensor(a)
    return t.to(getattr(lib, dtype))


DTYPE_CASES = [
    ("conv2d_int64", "int64", lambda L, x, w: F(L).conv2d(x, w, padding=1), [(1, 2, 4, 4), (3, 2, 3, 3)], None),
    ("conv_transpose1d_int64", "int64", lambda L, x, w: F(L).conv_transpose1d(x, w, stride=2), [(1, 2, 4), (2, 3, 2)],
     None),
    ("conv2d_float16", "float16", lambda L, x, w: F(L).conv2d(x, w), [(1, 2, 4, 4), (3, 2, 3, 3)], 2e-2),
    ("conv2d_bfloat16", "bfloat16", lambda L, x, w: F(L).conv2d(x, w), [(1, 2, 4, 4), (3, 2, 3, 3)], 1e-1),
    ("max_pool2d_int64", "int64", lambda L, x: F(L).max_pool2d(x, 2, 1, 1, return_indices=True), [(1, 2, 3, 4)],
     None),
    ("avg_pool2d_int64", "int64", lambda L, x: F(L).avg_pool2d(x, 2, 1, 1), [(1, 2, 3, 4)], None),
    ("max_pool2d_float16", "float16", lambda L, x: F(L).max_pool2d(x, 2), [(1, 2, 4, 4)], None),
    ("pad_reflect_int64", "int64", lambda L, x: F(L).pad(x, (2, 1), mode="reflect"), [(2, 3, 4)], None),
    ("pad_replicate_int64", "int64", lambda L, x: F(L).pad(x, (2, 1, 1, 0), mode="replicate"), [(2, 3, 4)], None),
    ("pad_circular_bool", "bool", lambda L, x: F(L).pad(x, (1, 2), mode="circular"), [(2, 3, 4)], None),
    ("pad_constant_bool", "bool", lambda L, x: F(L).pad(x, (1, 1), value=1), [(2, 3)], None),
    ("pad_constant_int_value", "int64", lambda L, x: F(L).pad(x, (1, 1), value=2.7), [(2, 3)], None),
    ("pixel_shuffle_bool", "bool", lambda L, x: F(L).pixel_shuffle(x, 2), [(1, 4, 2, 3)], None),
    ("unfold_bool", "bool", lambda L, x: F(L).unfold(x, 2), [(1, 2, 3, 3)], None),
    ("interpolate_nearest_uint8", "uint8", lambda L, x: F(L).interpolate(x, scale_factor=2), [(1, 2, 3, 4)], None),
    ("interpolate_nearest_float16", "float16", lambda L, x: F(L).interpolate(x, size=(5, 3)), [(1, 2, 3, 4)], None),
]


@pytest.mark.parametrize("name,dtype,fn,shapes,tol", DTYPE_CASES, ids=[c[0] for c in DTYPE_CASES])
def test_other_dtypes(name, dtype, fn, shapes, tol):
    rng = np.random.default_rng(4)
    arrays = [rng.integers(-4, 5, s) if dtype != "bool" else rng.random(s) < 0.5 for s in shapes]
    if dtype == "uint8":
        arrays = [np.abs(a) * 20 for a in arrays]
    if dtype in ("float16", "bfloat16"):
        arrays = [rng.uniform(-2, 2, s) for s in shapes]
    expected = fn(torch, *[_typed(torch, a, dtype) for a in arrays])
    got = fn(vt, *[_typed(vt, a, dtype) for a in arrays])
    kw = {} if tol is None else {"rtol": tol, "atol": tol}
    assert_same(got, expected, **kw)


# -- special values and edge shapes ------------------------------------------------------------------------------------
def test_max_pool_nan_inf_and_ties_pick_torchs_index():
    a = np.array([[[[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -np.inf, -np.inf], [5.0, 5.0, 0.0, np.nan]]]])
    both = [F(lib).max_pool2d(lib.tensor(a), 2, 1, 1, return_indices=True) for lib in (torch, vt)]
    assert_same(both[1], both[0])
    both = [F(lib).adaptive_max_pool2d(lib.tensor(a), (2, 2), return_indices=True) for lib in (torch, vt)]
    assert_same(both[1], both[0])


def test_empty_batch():
    for fn in (lambda L, x: F(L).conv2d(x, L.ones(2, 3, 2, 2)), lambda L, x: F(L).max_pool2d(x, 2),
               lambda L, x: F(L).avg_pool2d(x, 2), lambda L, x: F(L).interpolate(x, scale_factor=2),
               lambda L, x: F(L).pad(x, (1, 1, 2, 0), mode="reflect"), lambda L, x: F(L).unfold(x, 2),
               lambda L, x: F(L).adaptive_max_pool2d(x, 3),
               lambda L, x: F(L).grid_sample(x, L.zeros(0, 2, 2, 2), align_corners=True)):
        assert_same(fn(vt, vt.zeros(0, 3, 4, 4)), fn(torch, torch.zeros(0, 3, 4, 4)))


def test_sdpa_dropout_uses_vibetensor_generator():
    q, k, v = (vt.randn(2, 3, 4, 8) for _ in range(3))
    vt.manual_seed(3)
    a = F(vt).scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    vt.manual_seed(3)
    b = F(vt).scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    c = F(vt).scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    assert np.array_equal(a.numpy(), b.numpy()) and not np.array_equal(a.numpy(), c.numpy())
    assert float(F(vt).scaled_dot_product_attention(q, k, v, dropout_p=1.0).abs().max()) == 0.0
    # E[dropout(P) V] = P V: averaged over many draws the output approaches the undropped one
    base = F(vt).scaled_dot_product_attention(q, k, v).numpy()
    mean = np.mean([F(vt).scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy() for _ in range(300)], 0)
    assert np.abs(mean - base).mean() < 0.1


def test_sdpa_dropout_gradient_is_consistent():
    """With a fixed seed, the gradient of dropout attention matches finite differences (same mask)."""
    def f(q):
        vt.manual_seed(11)
        return F(vt).scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    k, v = vt.randn(1, 3, 2, dtype=vt.float64), vt.randn(1, 3, 2, dtype=vt.float64)
    q = vt.randn(1, 2, 2, dtype=vt.float64, requires_grad=True)
    assert vt.autograd.gradcheck(f, (q,))


NODE_NAMES = ["conv2d", "conv_transpose2d", "max_pool2d_indices", "max_pool3d_indices", "avg_pool2d_ceil",
              "avg_pool3d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d", "pad_constant",
              "pad_reflect2d", "pad_replicate3d", "unfold", "fold", "pixel_shuffle", "pixel_unshuffle",
              "channel_shuffle", "grid_sample_bicubic", "grid_sample_3d_bilinear", "affine_grid",
              "interpolate_nearest_size", "interpolate_nearest_exact", "interpolate_linear",
              "interpolate_bilinear_scale", "interpolate_bicubic", "interpolate_trilinear"]


@pytest.mark.parametrize("name", NODE_NAMES)
def test_node_names_match_torch(name):
    _, fn, specs = CASES[IDS.index(name)]
    t_in, v_in, _ = _pairs(specs, 0, "float64", requires_grad=True)
    expected, got = first(_run(torch, fn, t_in)), first(_run(vt, fn, v_in))
    assert type(got.grad_fn).__name__ == type(expected.grad_fn).__name__


def test_reflect_and_replicate_pads_of_large_integers_are_exact():
    a = np.array([[[2 ** 60 + 1, 3, 2 ** 62 + 7]]], dtype=np.int64)
    for mode in ("reflect", "replicate", "circular"):
        assert_same(F(vt).pad(vt.tensor(a), (2, 2), mode=mode), F(torch).pad(torch.tensor(a), (2, 2), mode=mode))


def test_uint8_linear_interpolation_is_refused():
    """torch's uint8 bilinear/bicubic kernels round in fixed point; rather than be off by one we refuse."""
    with pytest.raises(NotImplementedError, match="Byte"):
        F(vt).interpolate(vt.zeros(1, 1, 2, 2, dtype=vt.uint8), scale_factor=2, mode="bilinear")


def test_torch_level_names():
    from vibetensor.torch.nn import functional_conv as fc
    for name in fc.TORCH_FUNCTIONS:
        assert hasattr(torch, name), name
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2, 6))
    t, v = torch.tensor(x), vt.tensor(x)
    assert_same(fc.TORCH_FUNCTIONS["adaptive_max_pool1d"](v, 4), torch.adaptive_max_pool1d(t, 4))
    img, grid = x.reshape(1, 1, 2, 6), x[..., :4].reshape(1, 2, 2, 2)
    assert_same(fc.TORCH_FUNCTIONS["grid_sampler"](vt.tensor(img), vt.tensor(grid), 0, 1, True),
                torch.grid_sampler(torch.tensor(img), torch.tensor(grid), 0, 1, True))


# -- grid_sample with NaN and infinite grid values, forward and backward -----------------------------------------
NONFINITE_GRID = [(nd, mode, padding_mode, align_corners)
                  for nd, modes in ((2, ("bilinear", "nearest", "bicubic")), (3, ("bilinear", "nearest")))
                  for mode in modes for padding_mode in ("zeros", "border", "reflection")
                  for align_corners in (False, True)]


def _nonfinite_grid(nd, dtype, seed):
    """(input, grid, output gradient) with NaN, inf and -inf at a third of the grid's values."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (2, 3, 4, 5) if nd == 2 else (2, 3, 3, 4, 5)).astype(dtype)
    g = rng.uniform(-1.2, 1.2, (2, 3, 4, 2) if nd == 2 else (2, 3, 2, 2, 3)).astype(dtype)
    flat = g.reshape(-1)
    picks = rng.choice(flat.size, flat.size // 3, replace=False)
    flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype), picks.size)
    return x, g, rng.uniform(-1, 1, g.shape[:1] + (3,) + g.shape[1:-1]).astype(dtype)


def _sample_and_grads(lib, x, g, go, **kw):
    xi, gi = torch_from_numpy(x) if lib is torch else vt.from_numpy(x), lib.tensor(g)
    xi.requires_grad_(True), gi.requires_grad_(True)
    y = F(lib).grid_sample(xi, gi, **kw)
    return (y,) + tuple(lib.autograd.grad(y, (xi, gi), lib.tensor(go)))


@pytest.mark.parametrize("nd,mode,padding_mode,align_corners", NONFINITE_GRID)
def test_grid_sample_nonfinite_grid_matches_torch(nd, mode, padding_mode, align_corners):
    """torch's CPU kernels: 2-d clamps a NaN coordinate to 0 and a NaN weight (zeros padding, bicubic) gives
    NaN; 3-d clamps NaN to size - 1 forward, skips it backward and skips out-of-bounds corners."""
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    for dtype in ("float32", "float64"):
        x, g, go = _nonfinite_grid(nd, dtype, 5)
        got = _sample_and_grads(vt, x, g, go, **kw)
        if nd == 2 and mode == "bilinear" and padding_mode != "zeros":
            # torch's 2-d bilinear backward reads out of bounds (crashes) where padding leaves a NaN
            # coordinate; ours keeps the forward's clamp to 0 with a zero multiplier: the gradient of grid
            # value -1, which pads to exactly 0 in both modes.
            lost = np.isnan(g) | (np.isinf(g) if padding_mode == "reflection" else False)
            expected = (F(torch).grid_sample(torch.tensor(x), torch.tensor(g), **kw),)
            expected += _sample_and_grads(torch, x, np.where(lost, -1, g).astype(dtype), go, **kw)[1:]
        else:
            expected = _sample_and_grads(torch, x, g, go, **kw)
        assert_same(got, expected)


def test_warnings_like_torch():
    x = vt.zeros(1, 1, 2, 2)
    with pytest.warns(UserWarning, match="align_corners=False"):
        F(vt).grid_sample(x, vt.zeros(1, 1, 1, 2))
    with pytest.warns(UserWarning, match="zero-padded copy"):
        F(vt).conv1d(vt.zeros(1, 1, 4), vt.zeros(1, 1, 2), padding="same")
    with pytest.warns(UserWarning, match="deprecated"):
        F(vt).upsample(x, scale_factor=2)


# -- errors: torch's exception types --------------------------------------------------------------------------------
def _x(*shape):
    return lambda L: L.zeros(*shape)


ERRORS = [
    ("conv2d_input_dims", lambda L: F(L).conv2d(L.zeros(5, 5), L.zeros(2, 1, 3, 3))),
    ("conv2d_input_5d", lambda L: F(L).conv2d(L.zeros(1, 1, 1, 5, 5), L.zeros(2, 1, 3, 3))),
    ("conv2d_in_channels_vs_groups", lambda L: F(L).conv2d(L.zeros(2, 4, 5, 5), L.zeros(6, 3, 3, 3), groups=3)),
    ("conv2d_out_channels_vs_groups", lambda L: F(L).conv2d(L.zeros(2, 4, 5, 5), L.zeros(5, 2, 3, 3), groups=2)),
    ("conv2d_channels", lambda L: F(L).conv2d(L.zeros(2, 4, 5, 5), L.zeros(6, 3, 3, 3))),
    ("conv2d_kernel_too_big", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 7, 7))),
    ("conv2d_dtype_mismatch", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3, dtype=L.float64))),
    ("conv2d_bias_shape", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(2, 1, 3, 3), L.zeros(3))),
    ("conv2d_bias_dtype", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(2, 1, 3, 3), L.zeros(2).double())),
    ("conv2d_stride0", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), stride=0)),
    ("conv2d_negative_padding", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), padding=-1)),
    ("conv2d_groups0", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), groups=0)),
    ("conv2d_stride_len", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), stride=(1, 2, 3))),
    ("conv2d_same_strided", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), padding="same",
                                                  stride=2)),
    ("conv2d_bad_padding_string", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5), L.zeros(1, 1, 3, 3), padding="full")),
    ("conv2d_bool", lambda L: F(L).conv2d(L.zeros(1, 1, 5, 5).bool(), L.zeros(1, 1, 3, 3).bool())),
    ("conv1d_weight_2d", lambda L: F(L).conv1d(L.zeros(1, 2, 5), L.zeros(3, 2))),
    ("conv_transpose2d_output_padding", lambda L: F(L).conv_transpose2d(L.zeros(1, 2, 3, 3), L.zeros(2, 1, 3, 3),
                                                                        stride=2, output_padding=2)),
    ("conv_transpose2d_channels", lambda L: F(L).conv_transpose2d(L.zeros(1, 4, 3, 3), L.zeros(3, 1, 3, 3))),
    ("conv_transpose1d_output_too_small", lambda L: F(L).conv_transpose1d(L.zeros(1, 2, 5), L.zeros(2, 3, 3),
                                                                          padding=4)),
    ("max_pool2d_pad_too_big", lambda L: F(L).max_pool2d(L.zeros(1, 1, 6, 6), 3, 2, 2)),
    ("max_pool2d_output_too_small", lambda L: F(L).max_pool2d(L.zeros(2, 3, 6, 7), 8)),
    ("max_pool2d_2d_input", lambda L: F(L).max_pool2d(L.zeros(6, 7), 2)),
    ("max_pool2d_bool", lambda L: F(L).max_pool2d(L.zeros(1, 1, 4, 4).bool(), 2)),
    ("max_pool2d_kernel_len", lambda L: F(L).max_pool2d(L.zeros(1, 1, 4, 4), (2, 2, 2))),
    ("max_pool2d_empty_plane", lambda L: F(L).max_pool2d(L.zeros(1, 0, 4, 4), 2)),
    ("max_pool2d_dilation0", lambda L: F(L).max_pool2d(L.zeros(1, 1, 4, 4), 2, 1, 0, 0)),
    ("max_pool1d_4d_input", lambda L: F(L).max_pool1d(L.zeros(2, 3, 6, 7), 2)),
    ("avg_pool2d_divisor0", lambda L: F(L).avg_pool2d(L.zeros(1, 1, 4, 4), 2, divisor_override=0)),
    ("avg_pool2d_2d_input", lambda L: F(L).avg_pool2d(L.zeros(6, 7), 2)),
    ("avg_pool1d_4d_input", lambda L: F(L).avg_pool1d(L.zeros(2, 3, 6, 7), 2)),
    ("avg_pool2d_stride0", lambda L: F(L).avg_pool2d(L.zeros(1, 1, 4, 4), 2, 0)),
    ("avg_pool3d_input_smaller_than_kernel", lambda L: F(L).avg_pool3d(L.zeros(1, 1, 2, 4, 4), 3, 1, 1)),
    ("adaptive_avg_pool2d_int", lambda L: F(L).adaptive_avg_pool2d(L.zeros(1, 1, 4, 4).long(), 2)),
    ("adaptive_avg_pool2d_output_len", lambda L: F(L).adaptive_avg_pool2d(L.zeros(1, 1, 4, 4), (1, 2, 3))),
    ("adaptive_avg_pool2d_empty_dim", lambda L: F(L).adaptive_avg_pool2d(L.zeros(1, 1, 0, 4), 2)),
    ("adaptive_avg_pool2d_2d_input", lambda L: F(L).adaptive_avg_pool2d(L.zeros(6, 7), 2)),
    ("adaptive_max_pool2d_int", lambda L: F(L).adaptive_max_pool2d(L.zeros(1, 1, 4, 4).long(), 2)),
    ("pad_odd_length", lambda L: F(L).pad(L.zeros(1, 2, 3), (1, 2, 3))),
    ("pad_too_long", lambda L: F(L).pad(L.zeros(1, 2, 3), (1,) * 8)),
    ("pad_negative_size", lambda L: F(L).pad(L.zeros(1, 2, 3), (-2, -2))),
    ("pad_reflect_too_big", lambda L: F(L).pad(L.zeros(1, 2, 3), (3, 0), mode="reflect")),
    ("pad_circular_wraps_twice", lambda L: F(L).pad(L.zeros(1, 2, 3), (4, 0), mode="circular")),
    ("pad_reflect_with_value", lambda L: F(L).pad(L.zeros(1, 2, 3), (1, 1), mode="reflect", value=1.0)),
    ("pad_bad_mode", lambda L: F(L).pad(L.zeros(1, 2, 3), (1, 1), mode="wrap")),
    ("pad_reflect_dims", lambda L: F(L).pad(L.zeros(2, 3), (1, 1, 1, 1), mode="reflect")),
    ("pad_reflect_bool", lambda L: F(L).pad(L.zeros(1, 2, 3).bool(), (1, 1), mode="reflect")),
    ("pad_reflect_empty_dim", lambda L: F(L).pad(L.zeros(2, 0, 3), (1, 1), mode="reflect")),
    ("pad_replicate_bool", lambda L: F(L).pad(L.zeros(1, 2, 3).bool(), (1, 1), mode="replicate")),
    ("pad_replicate_output_empty", lambda L: F(L).pad(L.zeros(2, 2, 3), (-2, -1), mode="replicate")),
    ("pad_circular_negative_output", lambda L: F(L).pad(L.zeros(2, 2, 3), (-2, -2), mode="circular")),
    ("pad_constant_crop_past_input", lambda L: F(L).pad(L.zeros(2, 3), (0, 0, 1, -3))),
    ("unfold_kernel_too_big", lambda L: F(L).unfold(L.zeros(1, 2, 3, 3), 4)),
    ("unfold_kernel0", lambda L: F(L).unfold(L.zeros(1, 2, 3, 3), 0)),
    ("unfold_int", lambda L: F(L).unfold(L.zeros(1, 2, 3, 3).long(), 2)),
    ("unfold_kernel_len", lambda L: F(L).unfold(L.zeros(1, 2, 3, 3), (2, 2, 2))),
    ("fold_channels", lambda L: F(L).fold(L.zeros(1, 7, 4), (3, 3), 2)),
    ("fold_blocks", lambda L: F(L).fold(L.zeros(1, 8, 5), (3, 3), 2)),
    ("fold_input_dims", lambda L: F(L).fold(L.zeros(1, 1, 8, 4), (3, 3), 2)),
    ("pixel_shuffle_channels", lambda L: F(L).pixel_shuffle(L.zeros(1, 7, 2, 2), 2)),
    ("pixel_shuffle_dims", lambda L: F(L).pixel_shuffle(L.zeros(8, 2), 2)),
    ("pixel_shuffle_factor0", lambda L: F(L).pixel_shuffle(L.zeros(1, 8, 2, 2), 0)),
    ("pixel_unshuffle_height", lambda L: F(L).pixel_unshuffle(L.zeros(1, 1, 3, 2), 2)),
    ("channel_shuffle_indivisible", lambda L: F(L).channel_shuffle(L.zeros(1, 5, 2, 2), 2)),
    ("channel_shuffle_groups0", lambda L: F(L).channel_shuffle(L.zeros(1, 4, 2, 2), 0)),
    ("channel_shuffle_dims", lambda L: F(L).channel_shuffle(L.zeros(4, 2), 2)),
    ("grid_sample_mode", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2), L.zeros(1, 1, 1, 2), mode="area")),
    ("grid_sample_padding_mode", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2), L.zeros(1, 1, 1, 2),
                                                            padding_mode="wrap")),
    ("grid_sample_dtype", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2), L.zeros(1, 1, 1, 2).double(),
                                                     align_corners=False)),
    ("grid_sample_batch", lambda L: F(L).grid_sample(L.zeros(2, 1, 2, 2), L.zeros(1, 1, 1, 2), align_corners=False)),
    ("grid_sample_last_dim", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2), L.zeros(1, 1, 1, 3),
                                                        align_corners=False)),
    ("grid_sample_bicubic_3d", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2, 2), L.zeros(1, 1, 1, 1, 3),
                                                          mode="bicubic", align_corners=False)),
    ("grid_sample_int", lambda L: F(L).grid_sample(L.zeros(1, 1, 2, 2).long(), L.zeros(1, 1, 1, 2).long(),
                                                   align_corners=False)),
    ("grid_sample_empty_input", lambda L: F(L).grid_sample(L.zeros(1, 1, 0, 2), L.zeros(1, 1, 1, 2),
                                                           align_corners=False)),
    ("affine_grid_theta_shape", lambda L: F(L).affine_grid(L.zeros(2, 3), (2, 3, 4, 5), align_corners=False)),
    ("affine_grid_int_theta", lambda L: F(L).affine_grid(L.zeros(2, 2, 3).long(), (2, 3, 4, 5), False)),
    ("affine_grid_size_len", lambda L: F(L).affine_grid(L.zeros(2, 2, 3), (2, 3, 4), align_corners=False)),
    ("affine_grid_zero_size", lambda L: F(L).affine_grid(L.zeros(2, 2, 3), (2, 3, 0, 5), align_corners=False)),
    ("affine_grid_batch", lambda L: F(L).affine_grid(L.zeros(2, 2, 3), (3, 3, 4, 5), align_corners=False)),
    ("interpolate_size_and_scale", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2), size=3, scale_factor=2)),
    ("interpolate_neither", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2))),
    ("interpolate_nearest_align_corners", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2), size=3,
                                                                     align_corners=True)),
    ("interpolate_bilinear_3d", lambda L: F(L).interpolate(L.zeros(1, 2, 2), size=3, mode="bilinear")),
    ("interpolate_bad_mode", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2), size=3, mode="cubic")),
    ("interpolate_2d_input", lambda L: F(L).interpolate(L.zeros(2, 2), size=3)),
    ("interpolate_size_len", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2), size=(3, 3, 3))),
    ("interpolate_int", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2).long(), scale_factor=2)),
    ("interpolate_output_zero", lambda L: F(L).interpolate(L.zeros(1, 1, 4, 5), size=(0, 3))),
    ("interpolate_recompute_with_size", lambda L: F(L).interpolate(L.zeros(1, 1, 2, 2), size=3,
                                                                   recompute_scale_factor=True)),
    ("sdpa_dtype", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 2, 3), L.zeros(1, 2, 3).double(),
                                                               L.zeros(1, 2, 3))),
    ("sdpa_mask_dtype", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 2, 3), L.zeros(1, 2, 3),
                                                                    L.zeros(1, 2, 3), attn_mask=L.zeros(2, 2).long())),
    ("sdpa_mask_and_causal", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 2, 3), L.zeros(1, 2, 3),
                                                                         L.zeros(1, 2, 3), attn_mask=L.zeros(2, 2),
                                                                         is_causal=True)),
    ("sdpa_1d", lambda L: F(L).scaled_dot_product_attention(L.zeros(3), L.zeros(3), L.zeros(3))),
    ("sdpa_int", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 2, 3).long(), L.zeros(1, 2, 3).long(),
                                                             L.zeros(1, 2, 3).long())),
    ("sdpa_gqa_heads", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 4, 3, 8), L.zeros(1, 3, 5, 8),
                                                                   L.zeros(1, 3, 5, 8), enable_gqa=True)),
    ("sdpa_heads_without_gqa", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 4, 3, 8), L.zeros(1, 2, 5, 8),
                                                                           L.zeros(1, 2, 5, 8))),
    ("sdpa_embedding", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 2, 3), L.zeros(1, 2, 4),
                                                                   L.zeros(1, 2, 3))),
    ("sdpa_mask_shape", lambda L: F(L).scaled_dot_product_attention(L.zeros(1, 4, 3), L.zeros(1, 5, 3),
                                                                    L.zeros(1, 5, 3), attn_mask=L.zeros(3, 5))),
]


@pytest.mark.parametrize("name,fn", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_match_torch(name, fn):
    with pytest.raises(Exception) as expected:
        _run(torch, lambda lib: fn(lib), ())
    exc = expected.type if not expected.type.__module__.startswith("torch") else RuntimeError
    with pytest.raises(exc):
        _run(vt, lambda lib: fn(lib), ())


def test_errors_leave_no_partial_gradient_graph():
    """A failed conv raises before touching anything: its inputs keep no grad_fn and no .grad."""
    x = vt.zeros(1, 1, 3, 3, requires_grad=True)
    with pytest.raises(RuntimeError):
        F(vt).conv2d(x, vt.zeros(1, 1, 5, 5, requires_grad=True))
    assert x.grad is None and x.grad_fn is None


@pytest.mark.parametrize("size", [(4, 4), (3, 5)])
def test_conv_matches_torch_on_a_larger_problem(size):
    """A network-sized call (batch 4, 16 -> 32 channels) stays within float32 tolerance and fast."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16) + tuple(s * 4 for s in size)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32) / math.sqrt(16 * 9)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1)
    assert_same(F(vt).conv2d(vt.tensor(x), vt.tensor(w), padding=1), expected, rtol=1e-5, atol=1e-5)


def _random_config(seed):
    """A random windowed op: conv, transposed conv, max or avg pooling of 1-3 spatial dims."""
    r = np.random.default_rng(seed)
    n, kind = int(r.integers(1, 4)), ["conv", "conv_transpose", "max_pool", "avg_pool"][seed % 4]
    k = tuple(int(v) for v in r.integers(1, 4, n))
    s = tuple(int(v) for v in r.integers(1, 3, n))
    d = tuple(int(v) for v in r.integers(1, 3, n))
    p = tuple(int(r.integers(0, kk // 2 + 1)) for kk in k)
    size = tuple(int(v) for v in r.integers(4, 7, n))
    g = int(r.integers(1, 3))
    if kind == "conv":
        specs = [N(2, 2 * g, *size), N(2 * g, 2, *k), N(2 * g)]
        return lambda L, x, w, b: getattr(F(L), f"conv{n}d")(x, w, b, s, p, d, g), specs
    if kind == "conv_transpose":
        op = tuple(int(r.integers(0, max(a, b))) for a, b in zip(s, d))
        specs = [N(2, 2 * g, *size), N(2 * g, 3, *k), N(3 * g)]
        return lambda L, x, w, b: getattr(F(L), f"conv_transpose{n}d")(x, w, b, s, p, op, g, d), specs
    ceil = bool(r.integers(0, 2))
    if kind == "max_pool":
        return lambda L, x: getattr(F(L), f"max_pool{n}d")(x, k, s, p, d, ceil), [N(2, 3, *size)]
    include = bool(r.integers(0, 2))
    return lambda L, x: getattr(F(L), f"avg_pool{n}d")(x, k, s, p, ceil, include), [N(2, 3, *size)]


@pytest.mark.parametrize("seed", range(24))
def test_random_configurations_match_torch(seed):
    fn, specs = _random_config(seed)
    t_in, v_in, leaves = _pairs(specs, seed, "float64", requires_grad=True)
    assert_same(_run(vt, fn, v_in), _run(torch, fn, t_in))
    assert_same(_grads(vt, fn, v_in, [v for _, v in leaves]), _grads(torch, fn, t_in, [t for t, _ in leaves]))
