"""The rest of the elementwise ops, the activations and the extended reductions on CUDA, against
torch's CUDA results (marker `cuda`): forward over dtypes and layouts (with NaN/inf, 0-d, empty),
and gradients (backward runs our CUDA kernels too)."""
import pytest
import torch
import torch.nn.functional as TF

import vibetensor.torch as vt
import vibetensor.torch.nn.functional as VF
from oracle import LAYOUTS, assert_same, check, make_pair

pytestmark = pytest.mark.cuda


def _cuda(pair):
    return pair[0].cuda(), pair[1].cuda()


def _pair(shape, dtype, layout="contiguous", seed=0, **kw):
    return _cuda(make_pair(shape, dtype, layout, seed=seed, **kw))


def F(lib):
    return TF if lib is torch else VF


def _tol(dtype):
    return dict(rtol=2e-2, atol=2e-2) if dtype == "bfloat16" else dict(rtol=1e-4, atol=1e-5)


# -- elementwise: (id, fn(lib, *tensors), operand shapes, dtypes, make_pair keywords) ---------------------------
F32_BF16 = ["float32", "bfloat16"]
ELEMENTWISE = [
    ("where", lambda lib, c, a, b: lib.where(c > 0, a, b), [(5, 7), (5, 7), (7,)], F32_BF16 + ["int64"], {}),
    ("where_scalar", lambda lib, c, a: lib.where(c > 0, a, 2.5), [(5, 7), (5, 7)], F32_BF16, {}),
    ("clamp_scalars", lambda lib, a: a.clamp(-1, 0.5), [(6, 9)], F32_BF16 + ["int64"], {"special": True}),
    ("clamp_min", lambda lib, a: a.clamp(min=0.25), [(6, 9)], F32_BF16, {"special": True}),
    ("clamp_max_int", lambda lib, a: a.clamp(max=1), [(6, 9)], ["int64", "int32"], {}),
    ("clamp_tensors", lambda lib, a, lo, hi: a.clamp(lo, hi), [(4, 5), (5,), (4, 1)], F32_BF16, {}),
    ("lerp_scalar", lambda lib, a, b: lib.lerp(a, b, 0.3), [(6, 5), (5,)], F32_BF16, {}),
    ("lerp_tensor", lambda lib, a, b, w: lib.lerp(a, b, w), [(6, 5), (6, 5), (5,)], F32_BF16, {}),
    ("addcmul", lambda lib, a, b, c: lib.addcmul(a, b, c, value=0.5), [(4, 6), (4, 6), (6,)], F32_BF16, {}),
    ("addcmul_int", lambda lib, a, b, c: lib.addcmul(a, b, c, value=3), [(4, 6), (4, 6), (6,)], ["int64"], {}),
    ("addcdiv", lambda lib, a, b, c: lib.addcdiv(a, b, c, value=-2), [(4, 6), (4, 6), (4, 6)], F32_BF16,
     {"low": 0.5, "high": 3}),
    ("round_decimals", lambda lib, a: lib.round(a * 100, decimals=1), [(7, 6)], ["float32"], {}),
    ("round_neg_decimals", lambda lib, a: lib.round(a * 1000, decimals=-2), [(7, 6)], ["float32"], {}),
    ("round_int", lambda lib, a: lib.round(a), [(7, 6)], ["int64"], {}),
    ("floor_int", lambda lib, a: lib.floor(a), [(7, 6)], ["int32"], {}),
    ("logit_eps", lambda lib, a: lib.logit(a, eps=0.1), [(7, 6)], F32_BF16, {"low": -0.5, "high": 1.5}),
    ("nan_to_num", lambda lib, a: lib.nan_to_num(a), [(9, 8)], F32_BF16, {"special": True}),
    ("nan_to_num_values", lambda lib, a: lib.nan_to_num(a, nan=1.5, posinf=9.0, neginf=-9.0), [(9, 8)],
     ["float32"], {"special": True}),
    ("nan_to_num_int", lambda lib, a: lib.nan_to_num(a), [(9, 8)], ["int64"], {}),
    ("isclose", lambda lib, a, b: lib.isclose(a, a + b * 1e-6), [(5, 6), (5, 6)], ["float32"], {"special": True}),
    ("isclose_nan", lambda lib, a: lib.isclose(a, a, equal_nan=True), [(5, 6)], ["float32"], {"special": True}),
    ("div_trunc", lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"), [(6, 7), (7,)], F32_BF16, {"special": True}),
    ("div_floor", lambda lib, a, b: lib.div(a, b, rounding_mode="floor"), [(6, 7), (7,)], F32_BF16, {"special": True}),
    ("div_modes_int", lambda lib, a, b: (lib.div(a, b * 0 + 3, rounding_mode="trunc"),
                                         lib.div(a, b * 0 - 4, rounding_mode="floor"), a // 3), [(6, 7), (7,)],
     ["int64", "int32"], {"low": -50, "high": 50}),
    ("remainder_fmod_int", lambda lib, a: (lib.remainder(a, 7), lib.fmod(a, -7), lib.remainder(a, -3)), [(6, 7)],
     ["int64", "int16"], {"low": -50, "high": 50}),
    ("pow_int", lambda lib, a, b: (a ** b.abs(), lib.pow(a, 3), lib.pow(a, b)), [(6, 7), (7,)], ["int64"],
     {"low": -4, "high": 4}),
    ("shifts", lambda lib, a, b: (a << b, a >> b), [(6, 7), (7,)], ["int64", "int32", "uint8"], {"low": 0, "high": 9}),
    ("erfinv", lambda lib, a: lib.erfinv(a), [(8, 9)], F32_BF16, {"low": -1, "high": 1}),
    ("lgamma", lambda lib, a: lib.lgamma(a), [(8, 9)], F32_BF16, {"low": 0.1, "high": 8}),
    ("digamma", lambda lib, a: lib.digamma(a), [(8, 9)], ["float32", "float64"], {"low": -6, "high": 12}),
    ("digamma_special", lambda lib, a: lib.digamma(a), [(8, 9)], ["float32"], {"special": True}),
    ("i0_i1", lambda lib, a: (lib.i0(a), lib.special.i1(a)), [(8, 9)], ["float32"], {}),
    ("erfcx_ndtri", lambda lib, a: (lib.special.erfcx(a), lib.special.ndtri(a.abs() / 4)), [(8, 9)], ["float32"], {}),
    ("log_ndtr_entr", lambda lib, a: (lib.special.log_ndtr(a * 3), lib.special.entr(a)), [(8, 9)], ["float32"],
     {"special": True}),
    ("xlog1py", lambda lib, a, b: lib.special.xlog1py(a, b), [(8, 9), (9,)], ["float32"], {"low": -0.9}),
    ("float_power", lambda lib, a, b: lib.float_power(a, b), [(5, 4), (4,)], ["float32"], {"low": 0.5}),
    ("sgn_signbit", lambda lib, a: (lib.sgn(a), lib.signbit(a)), [(5, 9)], F32_BF16 + ["int64"], {"special": True}),
]


@pytest.mark.parametrize("name,fn,shapes,dtypes,kw", ELEMENTWISE, ids=[c[0] for c in ELEMENTWISE])
def test_elementwise(name, fn, shapes, dtypes, kw):
    for dtype in dtypes:
        for layout in ("contiguous", "transposed", "expanded"):
            pairs = [_pair(s, dtype, layout if i == 0 else "contiguous", seed=i + 1, **kw) for i, s in enumerate(shapes)]
            check(fn, *pairs, **_tol(dtype))


def test_empty_and_zero_dim():
    for shape in ((), (0, 3)):
        a, b = _pair(shape, "float32", seed=1), _pair(shape, "float32", seed=2)
        check(lambda lib, x, y: (lib.where(x > 0, x, y), x.clamp(-1, 1), lib.lerp(x, y, 0.5), lib.hypot(x, y),
                                 lib.logaddexp(x, y)), a, b)


def test_inplace_and_out_forms():
    a, b = _pair((6, 4), "float32", seed=1), _pair((6, 4), "float32", seed=2)
    check(lambda lib, x, y: x.clone().clamp_(-0.5, 0.5), a, b)
    check(lambda lib, x, y: x.clone().lerp_(y, 0.25), a, b)
    check(lambda lib, x, y: x.clone().addcmul_(x, y, value=2), a, b)
    check(lambda lib, x, y: x.clone()[:, ::2].nan_to_num_(0.0), a, b)
    check(lambda lib, x, y: lib.where(x > 0, x, y, out=x.clone()), a, b)


# -- activations: forward over dtypes and layouts, gradients through activation_backward ----------------------
ACTIVATIONS = [
    ("relu6", lambda lib, x: F(lib).relu6(x)),
    ("hardtanh", lambda lib, x: F(lib).hardtanh(x, -0.5, 1.5)),
    ("leaky_relu", lambda lib, x: F(lib).leaky_relu(x, 0.2)),
    ("elu", lambda lib, x: F(lib).elu(x, 1.3)),
    ("selu", lambda lib, x: F(lib).selu(x)),
    ("celu", lambda lib, x: F(lib).celu(x, 0.7)),
    ("gelu", lambda lib, x: F(lib).gelu(x)),
    ("gelu_tanh", lambda lib, x: F(lib).gelu(x, approximate="tanh")),
    ("silu", lambda lib, x: F(lib).silu(x)),
    ("mish", lambda lib, x: F(lib).mish(x)),
    ("softplus", lambda lib, x: F(lib).softplus(x, beta=2, threshold=3)),
    ("hardshrink", lambda lib, x: F(lib).hardshrink(x, 0.4)),
    ("softshrink", lambda lib, x: F(lib).softshrink(x, 0.4)),
    ("hardsigmoid", lambda lib, x: F(lib).hardsigmoid(x)),
    ("hardswish", lambda lib, x: F(lib).hardswish(x)),
    ("threshold", lambda lib, x: F(lib).threshold(x, 0.1, -2.0)),
    ("logsigmoid", lambda lib, x: F(lib).logsigmoid(x)),
    ("softsign", lambda lib, x: F(lib).softsign(x)),
    ("tanhshrink", lambda lib, x: F(lib).tanhshrink(x)),
    ("glu", lambda lib, x: F(lib).glu(x, -1)),
]


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[c[0] for c in ACTIVATIONS])
def test_activation_forward(name, fn):
    for dtype in F32_BF16:
        for layout in ("contiguous", "transposed"):
            check(fn, _pair((6, 10), dtype, layout, seed=3, special=True), **_tol(dtype))


def _grads(fn, pair, extra=()):
    """fn's output and the gradients of sum(out * w) w.r.t. the input, in torch and in vibetensor."""
    def run(lib, x, *rest):
        x = x.detach().clone().requires_grad_()
        y = fn(lib, x, *rest)
        y = y if isinstance(y, tuple) else (y,)
        total = None
        for k, t in enumerate(y):
            if t.dtype.is_floating_point:
                term = (t * (k + 1.5)).sum()
                total = term if total is None else total + term
        total.backward()
        return tuple(t.detach() for t in y) + (x.grad,)
    return run


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=[c[0] for c in ACTIVATIONS])
def test_activation_backward(name, fn):
    check(_grads(fn, None), _pair((5, 8), "float32", "transposed", seed=4, low=-4, high=4), rtol=1e-4, atol=1e-5)


def test_prelu():
    x, w = _pair((4, 3, 5), "float32", seed=5), _pair((3,), "float32", seed=6)
    check(lambda lib, a, b: F(lib).prelu(a, b), x, w)


# -- gradients of elementwise ops and reductions on CUDA ----------------------------------------------------------
GRADS = [
    ("where", lambda lib, x, y: lib.where(x > 0, x * 2, y)),
    ("clamp", lambda lib, x, y: x.clamp(-0.5, 0.7)),
    ("clamp_tensor", lambda lib, x, y: x.clamp(min=y)),
    ("lerp", lambda lib, x, y: lib.lerp(x, y, 0.3)),
    ("addcmul", lambda lib, x, y: lib.addcmul(x, x, y, value=0.5)),
    ("addcdiv", lambda lib, x, y: lib.addcdiv(x, x, y.abs() + 1, value=0.5)),
    ("logaddexp", lambda lib, x, y: lib.logaddexp(x, y)),
    ("hypot_xlogy", lambda lib, x, y: (lib.hypot(x, y), lib.xlogy(x, y.abs() + 0.1))),
    ("remainder_copysign", lambda lib, x, y: (lib.remainder(x, 1.3), lib.copysign(x, y))),
    ("erfinv_lgamma", lambda lib, x, y: (lib.erfinv(x / 4), lib.lgamma(x.abs() + 0.5))),
    ("var_std", lambda lib, x, y: (x.var(1), x.std(0, correction=0), x.var())),
    ("var_mean", lambda lib, x, y: lib.var_mean(x, 1)),
    ("logsumexp", lambda lib, x, y: lib.logsumexp(x, 1)),
    ("norms", lambda lib, x, y: (lib.linalg.vector_norm(x), lib.linalg.vector_norm(x, 1, dim=1),
                                 lib.linalg.vector_norm(x, 3.5, dim=0), x.norm(float("inf")))),
    ("max_dim", lambda lib, x, y: x.max(1)[0]),
    ("amax_min", lambda lib, x, y: (x.amax(0), x.min())),
    ("prod", lambda lib, x, y: x.prod(1)),
    ("nansum_nanmean", lambda lib, x, y: (x.nansum(1), x.nanmean(0))),
]


@pytest.mark.parametrize("name,fn", GRADS, ids=[g[0] for g in GRADS])
def test_gradients(name, fn):
    x, y = _pair((6, 7), "float32", "transposed", seed=7), _pair((6, 7), "float32", seed=8)
    check(lambda lib, a, b: _grads(lambda lib_, t: fn(lib_, t, b), None)(lib, a), x, y, rtol=1e-4, atol=1e-5)


# -- reductions -----------------------------------------------------------------------------------------------
REDUCTIONS = [  # (name, fn, dtypes, special)
    ("argmax", lambda lib, a: (a.argmax(), a.argmax(1), a.argmax(0, keepdim=True)), F32_BF16 + ["int64"], True),
    ("argmin", lambda lib, a: (a.argmin(), a.argmin(2)), F32_BF16 + ["int64"], True),
    ("max_dim", lambda lib, a: tuple(a.max(1)) + tuple(a.min(-1, keepdim=True)), F32_BF16 + ["int64"], True),
    ("max_all", lambda lib, a: (a.max(), a.min()), F32_BF16 + ["int64", "bool"], True),
    ("aminmax", lambda lib, a: tuple(lib.aminmax(a, dim=1)) + tuple(lib.aminmax(a)), F32_BF16 + ["int64"], True),
    ("amax_int", lambda lib, a: (a.amax((0, 2)), a.amin(1)), ["int64", "int32", "bool"], False),
    ("prod", lambda lib, a: (a.prod(1), a.prod()), ["float32", "float64", "int64"], False),
    ("all_any", lambda lib, a: (a.all(), a.any(1), a.all((0, 2), keepdim=True), a.any(())), F32_BF16 + ["int64", "bool"],
     True),
    ("count_nonzero", lambda lib, a: (lib.count_nonzero(a), lib.count_nonzero(a, (0, 1))), ["float32", "int64"], True),
    ("var_std", lambda lib, a: (a.var(1), a.std((0, 2), keepdim=True), a.var(correction=0)), ["float32", "float64",
                                                                                            "bfloat16"], False),
    ("var_mean", lambda lib, a: tuple(lib.var_mean(a, 1)) + tuple(lib.std_mean(a, (0, 1), correction=2)),
     ["float32", "bfloat16"], False),
    ("logsumexp", lambda lib, a: (lib.logsumexp(a, 1), lib.logsumexp(a, (0, 2), keepdim=True)), F32_BF16, True),
    ("logsumexp_int", lambda lib, a: lib.logsumexp(a, 1), ["int64"], False),
    ("norms", lambda lib, a: tuple(lib.linalg.vector_norm(a, p, dim=1) for p in (2, 1, float("inf"), -float("inf"), 0,
                                                                                 3.0, 0.5)), F32_BF16, False),
    ("nansum_nanmean", lambda lib, a: (a.nansum(1), lib.nansum(a), a.nanmean((0, 2))), F32_BF16, True),
]


@pytest.mark.parametrize("name,fn,dtypes,special", REDUCTIONS, ids=[c[0] for c in REDUCTIONS])
def test_reductions(name, fn, dtypes, special):
    for dtype in dtypes:
        for layout in LAYOUTS:
            check(fn, _pair((4, 37, 5), dtype, layout, seed=9, special=special), **_tol(dtype))


def test_arg_ties_take_the_first_index():
    a = (torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, float("nan"), 5.0, float("nan"), 1.0]]),
         vt.tensor([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, float("nan"), 5.0, float("nan"), 1.0]]))
    check(lambda lib, x: (x.argmax(1), x.argmin(1), tuple(x.max(1)), x.argmax()), _cuda(a))


def test_long_rows_and_empty():
    check(lambda lib, a: (a.argmax(), a.argmin(1), a.prod(1), a.var(1), a.amax(1)),
          _pair((2, 70_000), "float32", seed=10, low=0.999, high=1.001), rtol=1e-4, atol=1e-4)
    e = _pair((0, 4), "float32", seed=11)
    check(lambda lib, a: (a.all(), a.any(0), a.prod(0), lib.logsumexp(a, 0), lib.linalg.vector_norm(a, dim=0),
                          lib.count_nonzero(a, 0)), e)
    z = _pair((), "float32", seed=12)
    check(lambda lib, a: (a.argmax(), a.max(), a.prod(), a.all(), lib.logsumexp(a, 0)), z)


def test_reduction_out_forms():
    a = _pair((5, 6), "float32", seed=13)
    check(lambda lib, x: lib.argmax(x, 1, out=lib.empty(5, dtype=lib.int64, device=x.device)), a)
    check(lambda lib, x: lib.prod(x, 1, out=lib.empty(5, device=x.device)), a)
    check(lambda lib, x: lib.any(x, 1, out=lib.empty(5, dtype=lib.uint8, device=x.device)), a)
