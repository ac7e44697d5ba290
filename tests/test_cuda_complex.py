"""complex64 / complex128 tensors on CUDA against torch's CUDA results (marker `cuda`): creation and
casting copies, complex views, elementwise math (with real tensors and numbers mixed in), reductions,
matrix products, and gradients through them (torch's conjugate Wirtinger convention)."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import LAYOUTS, assert_same, check, make_pair

pytestmark = pytest.mark.cuda

CDTYPES = ["complex64", "complex128"]
GRAD_TOL = {"complex64": (1e-4, 1e-4), "complex128": (1e-9, 1e-9)}


def _cuda(pair):
    return pair[0].cuda(), pair[1].cuda()


def cpair(shape, dtype="complex64", layout="contiguous", seed=0, low=-2.0, high=2.0):
    return _cuda(make_pair(shape, dtype, layout, seed, low=low, high=high))


def special_pair(dtype="complex64", seed=0, strided=False):
    """(6, 8) complex values with NaN, +-inf and signed zeros in either part (strided: every other column);
    the finite parts are multiples of 1/4, so sums are exact in any order."""
    rng = np.random.default_rng(seed)
    shape = (6, 16) if strided else (6, 8)
    a = (np.round(rng.uniform(-8, 8, shape)) / 4 + 1j * np.round(rng.uniform(-8, 8, shape)) / 4).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    flat = a.reshape(-1)
    for part in ("real", "imag"):
        picks = rng.integers(0, flat.size, flat.size // 4)
        values = getattr(flat, part).copy()
        values[picks] = rng.choice(specials, picks.size)
        if part == "real":
            flat.real = values
        else:
            flat.imag = values
    t, v = torch.from_numpy(a.copy()), vt.from_numpy(a.copy())
    if strided:
        t, v = t[:, ::2], v[:, ::2]
    return t.cuda(), v.cuda()


# -- creation, movement, casting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", CDTYPES)
def test_factories(dtype):
    check(lambda lib: (lib.zeros(3, 4, dtype=getattr(lib, dtype), device="cuda"),
                       lib.ones(5, dtype=getattr(lib, dtype), device="cuda"),
                       lib.full((2, 3), 1.5 - 2j, dtype=getattr(lib, dtype), device="cuda"),
                       lib.full((2, 3), 1 + 1j, device="cuda"),
                       lib.eye(3, 4, dtype=getattr(lib, dtype), device="cuda"),
                       lib.zeros_like(lib.ones(2, 2, dtype=getattr(lib, dtype), device="cuda")),
                       lib.ones(0, dtype=getattr(lib, dtype), device="cuda"),
                       lib.linspace(-1 + 2j, 3 - 1j, 7, dtype=getattr(lib, dtype), device="cuda"),
                       lib.linspace(0, 1j, 1, dtype=getattr(lib, dtype), device="cuda")))


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_and_layout_copies(dtype, layout):
    t, v = make_pair((5, 6), dtype, layout, seed=1)
    g = v.cuda()
    assert g.device == vt.device("cuda", 0) and g.dtype == v.dtype
    assert_same(g.cpu(), t, rtol=0, atol=0)
    check(lambda lib, a: (a.contiguous(), a.clone(), a.t().contiguous(), a[1:, ::2].clone(), a.cpu()),
          (t.cuda(), g), rtol=0, atol=0)


CASTS = [("complex64", "complex128"), ("complex128", "complex64"), ("float32", "complex64"),
         ("float64", "complex64"), ("int64", "complex64"), ("bool", "complex128"), ("float16", "complex64"),
         ("complex64", "float32"), ("complex128", "int32"), ("complex64", "bool"), ("complex64", "bfloat16")]


@pytest.mark.parametrize("src,dst", CASTS, ids=[f"{a}-{b}" for a, b in CASTS])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_casting_copies(src, dst):
    for layout in ("contiguous", "transposed"):
        pair = _cuda(make_pair((4, 6), src, layout, seed=2))
        check(lambda lib, a: a.to(getattr(lib, dst)), pair)
    pair = _cuda(make_pair((4, 6), src, seed=3))
    check(lambda lib, a: a.to(getattr(lib, dst)).cpu(), pair)  # the cast done on the way to the host


def test_copy_into_strided_complex_destinations():
    def fn(lib, z, x):
        out = lib.zeros(4, 12, dtype=lib.complex64, device="cuda")
        out[:, ::2].copy_(z)          # complex -> strided complex
        out[:, 1::2].copy_(x[0])      # real, broadcast -> strided complex
        out.real[0].copy_(x[1])       # into the real parts only
        out.imag[:, 3] = 7.0
        host = lib.zeros(4, 6, dtype=lib.complex128)
        host.copy_(z)                 # device -> host, cast on the way
        return out, host
    check(fn, cpair((4, 6), seed=4), _cuda(make_pair((4, 6), "float32", seed=5)))


@pytest.mark.parametrize("dtype", CDTYPES)
def test_complex_views(dtype):
    def fn(lib, z):
        r = lib.view_as_real(z)
        return (r, z.real, z.imag, lib.view_as_complex(r), z.conj(), lib.conj_physical(z), z.conj().imag,
                z.real.t(), lib.view_as_real(z[:, 1]), z.angle(), lib.resolve_conj(z.conj()))
    check(fn, cpair((4, 6), dtype, seed=6))
    check(lambda lib, z: (z.real, z.imag, z.angle(), z.abs()), cpair((4, 6), dtype, "transposed", seed=6))


def test_writes_through_complex_views_reach_the_base():
    def fn(lib, z):
        z = z.clone()
        z.real.mul_(2)
        z.imag[1:] = -1.0
        lib.view_as_real(z)[0, :, 1].add_(10)
        return z
    check(fn, cpair((3, 5), seed=7))


def test_complex_and_polar_build_complex_tensors():
    re, im = _cuda(make_pair((3, 5), "float32", seed=8)), _cuda(make_pair((3, 5), "float32", seed=9))
    check(lambda lib, a, b: (lib.complex(a, b), lib.polar(a.abs(), b)), re, im)


# -- elementwise ---------------------------------------------------------------------------------------------------

UNARY = [  # (name, fn): finite inputs in [-2, 2] + [-2, 2]i
    ("neg", lambda lib, z: -z),
    ("reciprocal", lambda lib, z: z.reciprocal()),
    ("abs", lambda lib, z: z.abs()),
    ("sgn", lambda lib, z: z.sgn()),
    ("exp", lambda lib, z: z.exp()),
    ("log", lambda lib, z: z.log()),
    ("log2", lambda lib, z: z.log2()),
    ("log10", lambda lib, z: z.log10()),
    ("log1p", lambda lib, z: z.log1p()),
    ("expm1", lambda lib, z: z.expm1()),
    ("sqrt", lambda lib, z: z.sqrt()),
    ("rsqrt", lambda lib, z: z.rsqrt()),
    ("sin", lambda lib, z: z.sin()),
    ("cos", lambda lib, z: z.cos()),
    ("tan", lambda lib, z: z.tan()),
    ("sinh", lambda lib, z: z.sinh()),
    ("cosh", lambda lib, z: z.cosh()),
    ("tanh", lambda lib, z: z.tanh()),
    ("sigmoid", lambda lib, z: z.sigmoid()),
    ("square", lambda lib, z: z.square()),
    ("isnan", lambda lib, z: (z.isnan(), z.isinf(), z.isfinite(), z.isreal())),
    ("pow_scalar", lambda lib, z: (z ** 2, z ** 0.5, z ** -1, z ** 3.5, z ** (0.5 + 1j), z ** 0, z ** 1, z ** -0.5)),
    ("conj_physical", lambda lib, z: lib.conj_physical(z)),
]
FULL_SWEEP = {"neg", "abs", "exp", "log", "sqrt", "reciprocal", "tanh", "sigmoid", "pow_scalar"}


@pytest.mark.parametrize("name,fn", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, fn):
    for dtype in CDTYPES if name in FULL_SWEEP else CDTYPES[:1]:
        for shape, layout in (((9, 7), "contiguous"), ((9, 7), "transposed"), ((4, 6), "strided"),
                              ((4, 6), "expanded"), ((), "contiguous"), ((0, 3), "contiguous")):
            check(fn, cpair(shape, dtype, layout, seed=10))


def test_unary_near_the_axes_and_large_arguments():
    z = np.array([0, 1e-30, 1j * 1e-30, -1, -1 + 0j, 1j, -1j, 2 - 1e-8j, -4 + 1e-7j, -4 - 0j, 30 + 1j, -30 + 2j,
                  1 + 30j, 1e-4 + 1e-4j, -1e-4 + 2j, 50 + 0j], np.complex64)
    pair = (torch.from_numpy(z).cuda(), vt.from_numpy(z).cuda())
    for name in ("neg", "reciprocal", "abs", "sgn", "sqrt", "rsqrt", "log", "log1p", "expm1", "tanh", "exp"):
        check(dict(UNARY)[name], pair)


SPECIAL = [  # ops whose NaN/inf/signed-zero results follow from the formula alone
    ("neg", lambda lib, z: -z),
    ("abs", lambda lib, z: z.abs()),
    ("predicates", lambda lib, z: (z.isnan(), z.isinf(), z.isfinite(), z.isreal())),
    ("reciprocal", lambda lib, z: z.reciprocal()),
    ("conj", lambda lib, z: (z.conj(), lib.conj_physical(z), z.real, z.imag)),
    ("eq_ne", lambda lib, z: (z == z, z != z, z == z.conj(), z != 0)),
    ("mul", lambda lib, z: (z * z, z * 2, z * z.real)),
    ("add", lambda lib, z: (z + z.flip(0), z - 1.5, 2 - z)),
    ("nan_to_num", lambda lib, z: (lib.nan_to_num(z), lib.nan_to_num(z, nan=1.0, posinf=2.0, neginf=-3.0))),
    ("where", lambda lib, z: lib.where(z.isfinite(), z, 0)),
    ("isclose", lambda lib, z: (lib.isclose(z, z.flip(1)), lib.isclose(z, z, equal_nan=True),
                                lib.isclose(z, z + 1e-6, rtol=0, atol=1e-5))),
    ("sum", lambda lib, z: (z.sum(0), z.sum(1), z.mean(1))),
]


@pytest.mark.parametrize("name,fn", SPECIAL, ids=[s[0] for s in SPECIAL])
def test_special_values(name, fn):
    check(fn, special_pair(seed=11))
    check(fn, special_pair(seed=12, strided=True))


BINARY = [  # (name, fn(lib, x, y))
    ("add", lambda lib, x, y: x + y),
    ("sub", lambda lib, x, y: x - y),
    ("mul", lambda lib, x, y: x * y),
    ("div", lambda lib, x, y: x / y),
    ("pow", lambda lib, x, y: x ** y),
    ("eq", lambda lib, x, y: (x == y, x != y)),
    ("add_alpha", lambda lib, x, y: (lib.add(x, y, alpha=2 - 1j), lib.sub(x, y, alpha=0.5))),
]
FULL_OPERANDS = {"add", "mul", "div"}


def _operands(name):
    """(x, y) pairs: complex with complex (every layout, broadcast, mixed precision), with real
    tensors and with numbers; the full set for a few ops."""
    out = [(cpair((5, 7), seed=20, layout=layout), cpair((5, 7), seed=21, layout=layout)) for layout in LAYOUTS]
    out.append((cpair((5, 7), seed=22), cpair((7,), seed=23)))  # broadcast
    out.append((cpair((5, 7), seed=24), 1.5 - 0.5j))
    if name in FULL_OPERANDS:
        out += [(cpair((5, 7), "complex128", seed=25), cpair((5, 7), seed=26)),
                (cpair((5, 7), seed=27), _cuda(make_pair((5, 7), "float32", "transposed", seed=28, low=0.5))),
                (_cuda(make_pair((5, 7), "float64", seed=29, low=0.5)), cpair((5, 7), seed=30)),
                (cpair((5, 7), seed=31), _cuda(make_pair((5, 7), "int64", seed=32, low=1))),
                (cpair((5, 7), seed=33), 3), (cpair((5, 7), seed=34), -0.25), (2 + 1j, cpair((5, 7), seed=35)),
                (_cuda(make_pair((5, 7), "float32", seed=36)), 1j)]
    return out


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn):
    for x, y in _operands(name):
        check(fn, x, y)


def test_logical_ops_float_power_addc_and_lerp():
    def fn(lib, z, w):
        return (z.logical_not(), lib.logical_and(z, z.real > 0), lib.logical_or(z, 0 * z), lib.logical_xor(z, w),
                lib.float_power(z, 2), lib.float_power(z, 0.5), z.float_power(w), lib.float_power(z.real, 1j),
                lib.addcmul(z, z, w, value=2), lib.addcdiv(z, z, w, value=0.5 - 1j), lib.addcmul(z, z.real, w),
                lib.lerp(z, w, 0.3), lib.lerp(z, w, 0.7), lib.lerp(z, w, w * 0.2))
    check(fn, cpair((5, 7), seed=44), cpair((5, 7), seed=45, layout="transposed"))
    check(lambda lib, z: (z.clone().addcmul_(z, z), z.clone().lerp_(z.flip(0), 0.5)), cpair((5, 7), "complex128", seed=46))


def test_scalars_as_cpu_tensors_and_in_place_forms():
    def fn(lib, z, w):
        z = z.clone()
        z.add_(w)
        z.mul_(2 - 1j)
        z.div_(w[0])
        z.sub_(lib.tensor(0.5 + 1j))  # a CPU 0-d tensor joins as a number
        z.pow_(2)
        w2 = w * lib.tensor(1j)
        return z, w2, lib.mul(w, 3, out=lib.empty(5, 7, dtype=lib.complex128, device="cuda"))
    check(fn, cpair((5, 7), seed=40), cpair((5, 7), seed=41))


def test_pow_with_tensor_exponents_and_number_bases():
    check(lambda lib, x, y: (x ** y, 2 ** x, (0.5 + 1j) ** x, x ** y.real), cpair((4, 5), seed=42),
          cpair((4, 5), seed=43, low=-1, high=1))


def test_unsupported_ops_raise():  # (more in test_cuda_complex_more.py: the ops torch's CUDA kernels refuse)
    z = vt.ones(3, dtype=vt.complex64, device="cuda")
    with pytest.raises(RuntimeError):  # as torch: ordering is undefined for complex numbers
        z < z


# -- reductions ----------------------------------------------------------------------------------------------------

REDUCTIONS = [
    ("sum", lambda lib, z: (z.sum(), z.sum(0), z.sum(1), z.sum((0, 2), keepdim=True), z.sum(-1))),
    ("mean", lambda lib, z: (z.mean(), z.mean(1), z.mean((0, 1)))),
    ("prod", lambda lib, z: ((z * 0.3).prod(), (z * 0.5).prod(1), (z * 0.5).prod(0), (z * 0.5).prod(2, keepdim=True))),
    ("var_std", lambda lib, z: (z.var(), z.var(1), z.std(0, correction=0), lib.var_mean(z, 2),
                                lib.std_mean(z, (0, 1)))),
    ("norms", lambda lib, z: (lib.linalg.vector_norm(z), lib.linalg.vector_norm(z, 1, dim=1),
                              lib.linalg.vector_norm(z, float("inf"), dim=(0, 2)), z.norm(dim=0),
                              lib.linalg.norm(z[0]))),
]


@pytest.mark.parametrize("name,fn", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_reductions(name, fn, dtype):
    tol = 2e-5 if dtype == "complex64" else 1e-9
    for layout in LAYOUTS:
        check(fn, cpair((4, 9, 33), dtype, layout, seed=50), rtol=tol, atol=tol)


def test_reductions_of_long_rows_and_dtype_arguments():
    check(lambda lib, z: (z.sum(), z.sum(0), z.mean(1), z.sum(1, dtype=lib.complex128)), cpair((3, 70_000), seed=51),
          rtol=1e-4, atol=1e-3)
    check(lambda lib, x: (x.sum(dtype=lib.complex64), x.sum(0, dtype=lib.complex128), lib.trace(x.to(lib.complex64))),
          _cuda(make_pair((6, 6), "float32", seed=52)))
    check(lambda lib, z: (z.sum(), z.prod(), z.sum(0), z.prod(0)), cpair((0, 4), seed=53))


# -- matrix products ---------------------------------------------------------------------------------------------

MATMUL = [
    ("mm", lambda lib, a, b: a @ b),
    ("mm_t", lambda lib, a, b: (a.t() @ b.t().contiguous().t(), a.mH @ a, b @ b.mH)),
    ("bmm", lambda lib, a, b: lib.bmm(a.unsqueeze(0).expand(3, -1, -1), b.unsqueeze(0).expand(3, -1, -1).mT.mT)),
    ("matmul_broadcast", lambda lib, a, b: (lib.matmul(a.unsqueeze(0).expand(2, -1, -1), b), a @ b[:, 0])),
    ("addmm", lambda lib, a, b: (lib.addmm(b[0], a, b), lib.addmm(a @ b, a, b, beta=0.5, alpha=2))),
    ("vector", lambda lib, a, b: (lib.mv(a, b[:, 1]), lib.dot(a[0], b[:, 0]), lib.vdot(a[0], b[:, 0]),
                                  lib.trace(a[:, :5]), lib.outer(a[0], b[0]))),
]


@pytest.mark.parametrize("name,fn", MATMUL, ids=[m[0] for m in MATMUL])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_matmul(name, fn, dtype):
    tol = 1e-5 if dtype == "complex64" else 1e-12
    check(fn, cpair((6, 9), dtype, seed=60), cpair((9, 5), dtype, seed=61), rtol=tol, atol=tol)


def test_mixed_real_complex_matmul_is_refused_like_torch():
    check(lambda lib, a, b: a @ b, cpair((3, 4), seed=62), _cuda(make_pair((4, 2), "float32", seed=63)))


# -- gradients -------------------------------------------------------------------------------------------------------

GRADS = [  # (name, fn(lib, *inputs), number of complex inputs, shapes)
    ("add_sub", lambda lib, a, b: (a + b * (2 - 1j)) - a * b, [(4, 5), (4, 5)]),
    ("div", lambda lib, a, b: a / b + a / 3, [(4, 5), (4, 5)]),
    ("exp_log", lambda lib, a: a.exp() + (a + 3).log(), [(4, 5)]),
    ("sqrt_rsqrt", lambda lib, a: (a + 3).sqrt() + (a + 3).rsqrt(), [(4, 5)]),
    ("trig", lambda lib, a: a.sin() * a.cos() + a.tanh() + a.sigmoid(), [(4, 5)]),
    ("reciprocal_pow", lambda lib, a: a.reciprocal() + a ** 2 + a ** 1.5, [(4, 5)]),
    ("abs_angle_sgn", lambda lib, a: a.abs() + a.angle() + a.sgn().real, [(4, 5)]),
    ("views", lambda lib, a: lib.view_as_real(a).sum(-1) * a.imag + a.real, [(4, 5)]),
    ("conj", lambda lib, a, b: a.conj() * b + lib.conj_physical(b), [(4, 5), (4, 5)]),
    ("reductions", lambda lib, a: (a.sum(0) * a.mean(1).sum() + (a * 0.5).prod(1).sum()), [(4, 5)]),
    ("matmul", lambda lib, a, b: a @ b + (a.mH @ a).sum(), [(4, 5), (5, 3)]),
    ("broadcast", lambda lib, a, b: a * b, [(4, 5), (5,)]),
    ("norm_var", lambda lib, a: lib.linalg.vector_norm(a, dim=1) + a.var(1), [(4, 5)]),
]


def _loss(lib, out, seed):
    """A real scalar from out: sum(Re(out * c)) for fixed complex c (a real out: sum(out * c.real))."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, tuple(out.shape)) + 1j * rng.uniform(-1, 1, tuple(out.shape))
    if out.dtype.is_complex:
        return (out * lib.tensor(c.astype(np.complex128)).to(out.dtype).cuda()).real.sum()
    return (out * lib.tensor(c.real).to(out.dtype).cuda()).sum()


@pytest.mark.parametrize("name,fn,shapes", GRADS, ids=[g[0] for g in GRADS])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_gradients(name, fn, shapes, dtype):
    pairs = [cpair(s, dtype, seed=70 + i) for i, s in enumerate(shapes)]
    results = []
    for k, lib in enumerate((torch, vt)):
        xs = [p[k].detach().clone().requires_grad_(True) for p in pairs]
        out = fn(lib, *xs)
        grads = lib.autograd.grad(_loss(lib, out, 7), xs)
        results.append((out.detach(),) + tuple(grads))
    rtol, atol = GRAD_TOL[dtype]
    assert_same(results[1], results[0], rtol=rtol, atol=atol)


def test_gradient_of_real_inputs_through_complex_ops():
    """A real leaf feeding complex ops gets the real part of the complex gradient, as in torch."""
    pair = _cuda(make_pair((4, 5), "float32", seed=80))
    results = []
    for k, lib in enumerate((torch, vt)):
        x = pair[k].detach().clone().requires_grad_(True)
        z = lib.complex(x, x * 2) * (1 - 2j) + x * 1j
        loss = (z.abs() + z.exp().real).sum()
        results.append((loss.detach(),) + lib.autograd.grad(loss, [x]))
    assert_same(results[1], results[0], rtol=1e-5, atol=1e-5)


# -- indexing and copies of parts ------------------------------------------------------------------------------------

INDEXING = [  # (name, fn(lib, z, w, i, d)): z, w complex (5, 6); i = [3, 0, 2]; d = [1, 4, 1, 1] (repeats)
    ("index_select", lambda lib, z, w, i, d: (z.index_select(1, i), z.index_select(0, i), z.t().index_select(0, i))),
    ("gather", lambda lib, z, w, i, d: (z.gather(1, d.view(1, -1).expand(5, -1)), lib.take(z, d))),
    ("getitem", lambda lib, z, w, i, d: (z[i], z[:, i], z[z.real > 0], z[i, i], z.t()[d])),
    ("setitem", lambda lib, z, w, i, d: _setitem(lib, z.clone(), w, i, d)),
    ("masks", lambda lib, z, w, i, d: (z.masked_fill(z.imag > 0, 2 - 1j), z.masked_fill(z.real > 0, 0.5),
                                       z.masked_select(z.real > 1), z.masked_scatter(z.real > 0, w),
                                       z.nonzero(), lib.count_nonzero(z * (z.real > 0)))),
    ("scatter", lambda lib, z, w, i, d: (z.clone().scatter_(1, i.view(1, -1).expand(5, -1), w),
                                         z.clone().scatter_add_(1, d.view(1, -1).expand(5, -1), w),
                                         z.clone().index_add_(0, d, w[:4]), z.clone().index_add_(1, d, w[:, :4], alpha=2),
                                         z.clone().index_copy_(1, i, w[:, :3]), z.clone().index_fill_(0, i, 1 + 3j),
                                         z.clone().put_(d, w[0, :4], accumulate=True))),
    ("triangles", lambda lib, z, w, i, d: (z.tril(), z.triu(1), z.t().tril(-1), lib.diag(z), lib.diag_embed(z[0]))),
    ("joining", lambda lib, z, w, i, d: (lib.cat([z, w], 1), lib.stack([z, w]), z.flip(0), z.roll(2, 1),
                                         z.repeat(2, 1), z.t().reshape(-1), z.unsqueeze(0).expand(2, -1, -1).contiguous())),
]


def _setitem(lib, z, w, i, d):
    z[i] = 1j
    z[:, i] = w[:, :3]
    z[z.real > 1.5] = 0
    z[0, i] = 2.0  # a real value into complex elements
    z.index_put_((d,), w[:4], accumulate=True)
    return z


@pytest.mark.parametrize("name,fn", INDEXING, ids=[x[0] for x in INDEXING])
def test_indexing(name, fn):
    i = (torch.tensor([3, 0, 2]).cuda(), vt.tensor([3, 0, 2]).cuda())
    d = (torch.tensor([1, 4, 1, 1]).cuda(), vt.tensor([1, 4, 1, 1]).cuda())
    for dtype in CDTYPES:
        check(fn, cpair((5, 6), dtype, seed=90), cpair((5, 6), dtype, seed=91), i, d)


def test_indexing_gradients():
    i = (torch.tensor([3, 0, 2, 2]).cuda(), vt.tensor([3, 0, 2, 2]).cuda())
    z = cpair((5, 6), seed=92)
    results = []
    for k, lib in enumerate((torch, vt)):
        x = z[k].detach().clone().requires_grad_(True)
        out = x[i[k]] * 2 + x.index_select(1, i[k]).sum() + x.tril().masked_fill(x.real > 0, 1j).sum()
        results.append((out.detach(),) + lib.autograd.grad(_loss(lib, out, 9), [x]))
    assert_same(results[1], results[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", CDTYPES)
def test_random_complex_tensors(dtype):
    """randn: each part N(0, 1/2) (variance 1 in all); rand: each part U(0, 1); drawn on the device."""
    vt.manual_seed(0)
    z = vt.randn(200_000, dtype=getattr(vt, dtype), device="cuda")
    u = vt.rand(1000, 3, dtype=getattr(vt, dtype), device="cuda")
    assert z.device.type == "cuda" and z.dtype == getattr(vt, dtype)
    a, b = z.cpu().numpy(), u.cpu().numpy()
    assert abs(a.real.var() - 0.5) < 0.01 and abs(a.imag.var() - 0.5) < 0.01 and abs(a.mean()) < 0.01
    assert abs(np.corrcoef(a.real, a.imag)[0, 1]) < 0.01
    assert 0 <= b.real.min() and b.real.max() < 1 and 0 <= b.imag.min() and b.imag.max() < 1
    assert abs(b.real.mean() - 0.5) < 0.05 and abs(b.imag.mean() - 0.5) < 0.05
    s = vt.empty(4, 6, dtype=getattr(vt, dtype), device="cuda")[:, ::2].normal_(2.0, 0.5)  # strided: via a copy
    assert s.abs().sum().item() > 0
