"""More complex64 / complex128 ops on CUDA against torch's CUDA results (marker `cuda`): the inverse
trigonometric and hyperbolic functions, exp2, sinc and logaddexp (and the special values of every complex
unary op), cumsum / cumprod / logcumsumexp, nansum / nanmean / logsumexp, logspace, addr and complex
alpha / beta of the matrix products, index_add with a complex alpha, lerp with a complex weight, rms_norm,
the cuSOLVER decompositions of complex matrices, gradients; and the ops torch's CUDA kernels refuse for
complex inputs, refused the same way."""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair, to_numpy
from test_cuda_complex import CDTYPES, GRAD_TOL, _cuda, _loss, cpair, special_pair

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("no_tf32")]  # (conftest.py)

LAYOUTS = [((9, 7), "contiguous"), ((9, 7), "transposed"), ((4, 6), "strided"), ((4, 6), "expanded"),
           ((), "contiguous"), ((0, 3), "contiguous")]


# -- elementwise -----------------------------------------------------------------------------------------------------

NEW_UNARY = [  # (name, fn): ops new on CUDA for complex tensors
    ("asin", lambda lib, z: z.asin()),
    ("acos", lambda lib, z: z.acos()),
    ("atan", lambda lib, z: z.atan()),
    ("asinh", lambda lib, z: z.asinh()),
    ("acosh", lambda lib, z: z.acosh()),
    ("atanh", lambda lib, z: z.atanh()),
    ("exp2", lambda lib, z: z.exp2()),
    ("sinc", lambda lib, z: lib.sinc(z)),
    ("silu", lambda lib, z: lib.nn.functional.silu(z)),
    ("square", lambda lib, z: (z.square(), z ** 2, lib.pow(z, 2.0))),
    ("aliases", lambda lib, z: (lib.arcsin(z), lib.arccos(z), lib.arctan(z), lib.arcsinh(z), lib.arccosh(z),
                                lib.arctanh(z))),
]


@pytest.mark.parametrize("name,fn", NEW_UNARY, ids=[u[0] for u in NEW_UNARY])
def test_new_unary_ops(name, fn):
    for dtype in CDTYPES:
        for shape, layout in LAYOUTS if dtype == "complex64" else LAYOUTS[:3]:
            check(fn, cpair(shape, dtype, layout, seed=1))
    for low, high in ((-30.0, 30.0), (-0.01, 0.01)):  # large arguments; near the origin
        check(fn, cpair((64,), "complex64", seed=2, low=low, high=high))
    if name not in ("aliases", "silu", "square"):  # the in-place form
        check(lambda lib, z: getattr(z.clone(), name + "_")(), cpair((5, 6), "complex128", seed=3))


_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1e-5, -1e-7, 1e-30, 1.5, 1e10, -1e20, 1e30, float("inf"),
           float("-inf"), float("nan"), 0.9999999, 1.0000001]
GRID = np.array([complex(a, b) for a in _VALUES for b in _VALUES])  # 400 numbers: axes, infinities, NaN, huge


def _grid_mismatches(ours, theirs, z, rtol, atol):
    """The grid points where ours and torch's differ by torch.isclose's rule (the oracle's: equal, or
    both NaN in some part, or finite and |ours - theirs| <= atol + rtol |theirs|), for the message."""
    o, t = to_numpy(ours).reshape(-1), to_numpy(theirs).reshape(-1)
    close = torch.isclose(torch.from_numpy(o), torch.from_numpy(t), rtol=rtol, atol=atol, equal_nan=True).numpy()
    return [(z[i], o[i], t[i]) for i in np.flatnonzero(~close)]


SPECIAL_UNARY = [n for n, _ in NEW_UNARY[:-1]] + ["sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "log",
                                                   "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt",
                                                   "reciprocal", "sigmoid", "sgn", "abs", "angle"]


@pytest.mark.parametrize("name", SPECIAL_UNARY)
@pytest.mark.parametrize("dtype", CDTYPES)
def test_unary_special_values(name, dtype):
    """Every combination of signed zeros, infinities, NaN, huge and ordinary parts (thrust's C99 annex G
    values, as torch's kernels reach them through c10::complex)."""
    z = GRID.astype(dtype)
    lib_fn = lambda lib: getattr(lib.nn.functional, name) if name == "silu" else getattr(lib, name)  # noqa: E731
    theirs = lib_fn(torch)(torch.from_numpy(z).cuda())
    ours = lib_fn(vt)(vt.from_numpy(z).cuda())
    assert repr(ours.dtype) == str(theirs.dtype)
    rtol, atol = (1e-5, 1e-5) if dtype == "complex64" else (1e-7, 1e-7)
    bad = _grid_mismatches(ours, theirs, z, rtol, atol)
    assert not bad, f"{name} {dtype}: {len(bad)} of {z.size} differ (z, ours, torch): {bad[:24]}"


def test_logaddexp():
    check(lambda lib, x, y: lib.logaddexp(x, y), cpair((5, 7), seed=4), cpair((5, 7), seed=5, layout="transposed"))
    check(lambda lib, x, y: lib.logaddexp(x, y), cpair((5, 7), "complex128", seed=6, low=-40, high=40),
          cpair((7,), "complex128", seed=7, low=-40, high=40))
    check(lambda lib, x, y: (lib.logaddexp(x, y), lib.logaddexp(y, x)), cpair((4, 6), seed=8),
          _cuda(make_pair((4, 6), "float32", "strided", seed=9)))
    vals = [0.0, -0.0, 1.0, -1.5, 2.0, 30.0, -100.0, float("inf"), float("-inf"), float("nan")]
    zs = [complex(a, b) for a in vals for b in vals]
    for dtype in CDTYPES:
        x = np.array([a for a in zs for _ in zs], dtype)
        y = np.array([b for _ in zs for b in zs], dtype)
        theirs = torch.logaddexp(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
        ours = vt.logaddexp(vt.from_numpy(x).cuda(), vt.from_numpy(y).cuda())
        bad = _grid_mismatches(ours, theirs, list(zip(x, y)), 1e-5, 1e-5)
        assert not bad, f"logaddexp {dtype}: {len(bad)} of {x.size} differ ((x, y), ours, torch): {bad[:24]}"


def test_lerp_with_a_complex_weight():
    check(lambda lib, a, b: (lib.lerp(a, b, 0.5j), lib.lerp(a, b, 0.25 - 0.75j), a.clone().lerp_(b, 2 + 1j),
                             lib.lerp(a, b, 0.3)), cpair((4, 5), seed=10), cpair((4, 5), seed=11, layout="transposed"))


# -- scans -------------------------------------------------------------------------------------------------------------

SCANS = [
    ("cumsum", lambda lib, z, d: z.cumsum(d)),
    ("cumprod", lambda lib, z, d: (z * 0.6).cumprod(d)),
    ("logcumsumexp", lambda lib, z, d: z.logcumsumexp(d)),
]


@pytest.mark.parametrize("name,fn", SCANS, ids=[s[0] for s in SCANS])
def test_scans(name, fn):
    for dtype in CDTYPES:
        tol = 2e-5 if dtype == "complex64" else 1e-9
        for layout in ("contiguous", "transposed", "strided", "expanded"):
            z = cpair((4, 9, 33), dtype, layout, seed=12)
            for d in (0, 1, 2, -1):
                check(lambda lib, x: fn(lib, x, d), z, rtol=tol, atol=tol)
    check(lambda lib, x: (fn(lib, x, 0), fn(lib, x, -1)), cpair((), seed=13))
    check(lambda lib, x: (fn(lib, x, 0), fn(lib, x, 1)), cpair((0, 5), seed=14))


def test_scans_of_long_rows():
    """Rows longer than one program's span (256): spans scanned from the scanned span totals."""
    rng = np.random.default_rng(15)
    unit = np.exp(1j * rng.uniform(-np.pi, np.pi, (3, 1000))) * rng.uniform(0.999, 1.001, (3, 1000))
    for dtype, tol in (("complex64", 2e-3), ("complex128", 1e-9)):
        t, v = torch.from_numpy(unit.astype(dtype)).cuda(), vt.from_numpy(unit.astype(dtype)).cuda()
        check(lambda lib, x: (x.cumprod(1), x.cumprod(0), x.t().cumprod(0), x.logcumsumexp(1), x.cumsum(1)),
              (t, v), rtol=tol, atol=tol)
    check(lambda lib, x: (x.cumsum(0), x.logcumsumexp(0)), cpair((70_000,), seed=16), rtol=1e-3, atol=1e-3)


def test_scan_arguments_and_in_place_forms():
    def fn(lib, z, x):
        out = lib.empty(4, 12, dtype=lib.complex64, device="cuda")[:, ::2]
        return (x.cumsum(0, dtype=lib.complex64), x.cumprod(1, dtype=lib.complex128), z.clone().cumsum_(1),
                z.clone().cumprod_(0), lib.cumsum(z, 1, out=out), out, lib.logcumsumexp(z, 0, out=z.clone()),
                lib.cumulative_trapezoid(z, dim=1), lib.linalg.vander(z[0], N=4))
    check(fn, cpair((4, 6), seed=17), _cuda(make_pair((4, 6), "float32", seed=18)))


def nan_pair(dtype="complex64", seed=0, strided=False):
    """special_pair's values with its infinities made 3: NaN and signed zeros in either part. (Where
    infinities meet, products and sums depend on the order torch's tree scans and reductions happen to
    combine them in.)"""
    out = []
    for lib, z in zip((torch, vt), special_pair(dtype, seed)):
        parts = lib.view_as_real(z)
        z = lib.view_as_complex(lib.where(lib.isinf(parts), 3.0, parts).contiguous())
        if strided:  # every other column of a (6, 16) tensor
            base = lib.zeros(6, 16, dtype=z.dtype, device="cuda")
            base[:, ::2] = z
            z = base[:, ::2]
        out.append(z)
    return tuple(out)


SCAN_SPECIALS = [
    ("cumsum", lambda lib, z: (z.cumsum(1), z.cumsum(0)), special_pair),
    ("cumprod", lambda lib, z: (z.cumprod(1), z.cumprod(0)), nan_pair),
    ("logcumsumexp", lambda lib, z: (z.logcumsumexp(1), z.logcumsumexp(0)), nan_pair),
]


@pytest.mark.parametrize("name,fn,values", SCAN_SPECIALS, ids=[s[0] for s in SCAN_SPECIALS])
def test_scan_special_values(name, fn, values):
    check(fn, values(seed=19))
    check(fn, values("complex128", seed=20, strided=True))


# -- reductions --------------------------------------------------------------------------------------------------------

def test_nansum_and_nanmean():
    """torch's CUDA nansum takes complex numbers (its CPU one refuses): a NaN in either part drops the number."""
    fn = lambda lib, z: (z.nansum(), z.nansum(0), z.nansum(1, keepdim=True), z.nanmean(), z.nanmean(1),  # noqa: E731
                         lib.nanmean(z, (0, 1)), z.nansum(dtype=lib.complex128))
    check(fn, nan_pair(seed=21))
    check(fn, nan_pair("complex128", seed=22, strided=True))
    check(fn, cpair((3, 0), seed=23))


def test_logsumexp():
    for dtype in CDTYPES:
        tol = 2e-5 if dtype == "complex64" else 1e-9
        for layout in ("contiguous", "transposed", "strided"):
            check(lambda lib, z: (z.logsumexp(0), z.logsumexp(1, keepdim=True), z.logsumexp((0, 1)),
                                  lib.logsumexp(z * 30, -1)), cpair((6, 40), dtype, layout, seed=24),
                  rtol=tol, atol=tol)
    check(lambda lib, z: (z.logsumexp(0), z.logsumexp(1)), cpair((0, 4), seed=25))


def test_logsumexp_special_values():
    check(lambda lib, z: (z.logsumexp(1), z.logsumexp(0)), special_pair(seed=26))


# -- creation --------------------------------------------------------------------------------------------------------

LOGSPACE = [  # (start, end, steps, base)
    (0, 1 + 1j, 7, 10.0), (-1 - 2j, 2 + 0.5j, 100, 2.0), (0.5, 3, 5, 0.5), (1j, -1j, 2, 3.0), (2 - 1j, 0, 1, 10.0),
    (0, 1, 0, 10.0), (-3, 3 + 3j, 1000, 1.1),
]


@pytest.mark.parametrize("start,end,steps,base", LOGSPACE, ids=str)
@pytest.mark.parametrize("dtype", CDTYPES)
def test_logspace(start, end, steps, base, dtype):
    tol = (1e-5, 1e-5) if dtype == "complex64" else (1e-12, 1e-12)
    check(lambda lib: lib.logspace(start, end, steps, base, dtype=getattr(lib, dtype), device="cuda"),
          rtol=tol[0], atol=tol[1])
    check(lambda lib: lib.logspace(start, end, steps, base, out=lib.empty(steps * 2, dtype=getattr(lib, dtype),
                                                                           device="cuda")[::2]),
          rtol=tol[0], atol=tol[1])


# -- matrix products with complex scalars, addr, index_add, rms_norm ----------------------------------------------

def test_products_with_complex_alpha_and_beta():
    def fn(lib, a, b, c):
        return (lib.addmm(c, a, b, alpha=1j, beta=1 - 1j), lib.addmm(c, a, b, alpha=0.5 + 2j, beta=0),
                lib.baddbmm(c.unsqueeze(0), a.unsqueeze(0), b.unsqueeze(0), alpha=2j, beta=0.5j),
                lib.addbmm(c, a.unsqueeze(0).expand(2, -1, -1), b.unsqueeze(0).expand(2, -1, -1), alpha=-1j),
                lib.addmv(c[:, 0], a, b[:, 1], alpha=1j, beta=2), a.clone().addmm_(a[:, :5].t(), a, alpha=1j),
                lib.addmm(c[0], a, b, alpha=1j))  # (a 1-d bias)
    for dtype in CDTYPES:
        tol = 1e-5 if dtype == "complex64" else 1e-12
        check(fn, cpair((5, 6), dtype, seed=27), cpair((6, 4), dtype, "transposed", seed=28),
              cpair((5, 4), dtype, seed=29), rtol=tol, atol=tol)


def test_addr():
    def fn(lib, m, x, y):
        nan_m = m.clone()
        nan_m[0, 0] = complex("nan+nanj")
        return (lib.addr(m, x, y), lib.addr(m, x, y, alpha=1j, beta=2 - 1j), lib.addr(nan_m, x, y, beta=0),
                m.clone().addr_(x, y, alpha=0.5), lib.addr(m, x.real.contiguous(), y))
    check(fn, cpair((5, 4), seed=30), cpair((5,), seed=31), cpair((4,), seed=32))
    check(fn, cpair((5, 4), "complex128", "transposed", seed=33), cpair((5,), "complex128", seed=34),
          cpair((4,), "complex128", seed=35))


def test_index_add_with_a_complex_alpha():
    d = (torch.tensor([1, 4, 1, 1], device="cuda"), vt.tensor([1, 4, 1, 1], device="cuda"))
    check(lambda lib, z, w, i: (z.clone().index_add_(0, i, w[:4], alpha=2 - 1j), z.clone().index_add_(1, i, w[:, :4],
                                                                                                      alpha=1j),
                                lib.index_add(z, 0, i, w[:4].t().contiguous().t(), alpha=0.5j),
                                z.clone().index_add_(0, i, w[:4], alpha=3)),
          cpair((5, 6), seed=36), cpair((5, 6), seed=37), d)


def test_rms_norm():
    """torch's composite for complex inputs: x rsqrt(mean(x^2) + eps) (the complex square), times weight."""
    F_t, F_v = torch.nn.functional, vt.nn.functional
    for dtype in CDTYPES:
        z = cpair((3, 4, 8), dtype, seed=38)
        w = _cuda(make_pair((8,), "float32", seed=39))
        wz = cpair((4, 8), dtype, seed=40)
        check(lambda lib, x, w1, w2: (
            (F_t if lib is torch else F_v).rms_norm(x, (8,)),
            (F_t if lib is torch else F_v).rms_norm(x, (8,), w1, eps=1e-3),
            (F_t if lib is torch else F_v).rms_norm(x, (4, 8), w2)), z, w, wz, rtol=1e-4, atol=1e-4)


# -- what torch's CUDA kernels refuse for complex numbers -----------------------------------------------------------

def _idx(lib):
    return lib.tensor([[0, 1, 0, 1]], device="cuda")


REFUSED = [  # (name, fn(lib, z)): torch's CUDA kernels raise; we must raise the same type
    ("sort", lambda lib, z: z.sort()),
    ("argsort", lambda lib, z: z.argsort(1)),
    ("msort", lambda lib, z: lib.msort(z)),
    ("topk", lambda lib, z: z.topk(2)),
    ("scatter_reduce_prod", lambda lib, z: z.clone().scatter_reduce_(0, _idx(lib), z[:1], "prod")),
    ("scatter_multiply", lambda lib, z: z.clone().scatter_(0, _idx(lib), z[:1], reduce="multiply")),
    ("index_reduce", lambda lib, z: z.clone().index_reduce_(0, _idx(lib)[0, :2], z[:2], "prod")),
    ("unique", lambda lib, z: lib.unique(z)),
    ("isin", lambda lib, z: lib.isin(z, z[0])),
    ("amax", lambda lib, z: z.amax()),
    ("cummax", lambda lib, z: z.cummax(0)),
    ("clamp", lambda lib, z: z.clamp(0, 1)),
    ("lt", lambda lib, z: z < z),
]


@pytest.mark.parametrize("name,fn", REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_refused_like_torch_cuda(name, fn):
    check(fn, cpair((3, 4), seed=41))


# -- cuSOLVER decompositions of complex matrices -----------------------------------------------------------------------

SOLVER_TOL = {"complex64": (2e-4, 2e-4), "complex128": (1e-9, 1e-9)}


def _cmatrix(kind, shape, rng):
    """complex128 test data: general (well conditioned), hpd (Hermitian positive-definite), herm, rect."""
    a = rng.uniform(-1, 1, shape) + 1j * rng.uniform(-1, 1, shape)
    n = shape[-1]
    if kind == "general":
        a = a + n * rng.choice([-1.0, 1.0, 1j, -1j], size=shape[:-1])[..., None] * np.eye(n)
    elif kind == "hpd":
        a = a @ np.conj(np.swapaxes(a, -1, -2)) + n * np.eye(n)
    elif kind == "herm":
        a = a + np.conj(np.swapaxes(a, -1, -2))
    return a


def mpair(kind, shape, dtype, seed=0, transposed=False, grad=False):
    """(torch, vibetensor) CUDA complex matrices with equal values (a .mT view when `transposed`)."""
    a = _cmatrix(kind, shape, np.random.default_rng(seed))
    base = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if transposed else a
    t = torch.from_numpy(base.astype(dtype)).cuda()
    v = vt.from_numpy(base.astype(dtype)).cuda()
    if grad:
        t.requires_grad_()
        v.requires_grad_()
    return (t.mT, v.mT) if transposed else (t, v)


def _quiet(fn):
    def run(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    return run


SOLVER = [  # (name, fn(lib, *inputs), [(kind, shape), ...]): results torch's kernels determine uniquely
    ("inv", lambda L, a: L.linalg.inv(a), [("general", (2, 4, 4))]),
    ("inv_ex", lambda L, a: tuple(L.linalg.inv_ex(a)), [("general", (4, 4))]),
    ("det", lambda L, a: L.linalg.det(a), [("general", (3, 4, 4))]),
    ("slogdet", lambda L, a: tuple(L.linalg.slogdet(a)), [("general", (3, 4, 4))]),
    ("solve", lambda L, a, b: L.linalg.solve(a, b), [("general", (2, 4, 4)), ("rect", (2, 4, 3))]),
    ("solve_vector", lambda L, a, b: L.linalg.solve(a, b), [("general", (4, 4)), ("rect", (4,))]),
    ("cholesky", lambda L, a: L.linalg.cholesky(a), [("hpd", (2, 5, 5))]),
    ("cholesky_upper", lambda L, a: L.linalg.cholesky(a, upper=True), [("hpd", (5, 5))]),
    ("cholesky_solve", lambda L, a, b: L.cholesky_solve(b, L.linalg.cholesky(a)), [("hpd", (4, 4)),
                                                                                   ("rect", (4, 2))]),
    ("cholesky_inverse", lambda L, a: L.cholesky_inverse(L.linalg.cholesky(a)), [("hpd", (4, 4))]),
    ("lu_factor", lambda L, a: tuple(L.linalg.lu_factor(a)), [("rect", (5, 5))]),
    ("lu_wide", lambda L, a: tuple(L.linalg.lu(a)), [("rect", (2, 4, 6))]),
    ("lu_unpack", lambda L, a: tuple(L.lu_unpack(*L.linalg.lu_factor(a))), [("rect", (5, 5))]),
    ("lu_solve", lambda L, a, b: L.linalg.lu_solve(*L.linalg.lu_factor(a), b), [("general", (4, 4)),
                                                                               ("rect", (4, 3))]),
    ("solve_triangular", lambda L, a, b: L.linalg.solve_triangular(a.triu(), b, upper=True),
     [("general", (4, 4)), ("rect", (4, 3))]),
    ("geqrf", lambda L, a: tuple(L.geqrf(a)), [("rect", (5, 3))]),
    ("qr_r", lambda L, a: L.linalg.qr(a, mode="r")[1].abs(), [("rect", (5, 3))]),
    ("svdvals", lambda L, a: L.linalg.svdvals(a), [("rect", (2, 5, 3))]),
    ("svdvals_wide", lambda L, a: L.linalg.svdvals(a), [("rect", (3, 6))]),
    ("norms", lambda L, a: (L.linalg.matrix_norm(a, "nuc"), L.linalg.matrix_norm(a, 2), L.linalg.cond(a)),
     [("general", (4, 4))]),
    ("pinv", lambda L, a: L.linalg.pinv(a), [("rect", (5, 3))]),
    ("matrix_rank", lambda L, a: L.linalg.matrix_rank(a), [("rect", (2, 4, 3))]),
    ("lstsq", lambda L, a, b: L.linalg.lstsq(a, b).solution, [("rect", (6, 3)), ("rect", (6, 2))]),
    ("eigvalsh", lambda L, a: L.linalg.eigvalsh(a), [("herm", (2, 5, 5))]),
    ("eigvalsh_upper", lambda L, a: L.linalg.eigvalsh(a, UPLO="U"), [("rect", (4, 4))]),
    ("matrix_exp", lambda L, a: L.linalg.matrix_exp(a), [("rect", (2, 4, 4))]),
    ("matrix_exp_large_norm", lambda L, a: L.linalg.matrix_exp(a * 8), [("rect", (3, 3))]),
    ("householder_product", lambda L, a: L.linalg.householder_product(*L.geqrf(a)), [("rect", (5, 3))]),
]


@pytest.mark.parametrize("name,fn,specs", SOLVER, ids=[c[0] for c in SOLVER])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_decompositions(name, fn, specs, dtype):
    pairs = [mpair(kind, shape, dtype, seed=50 + i, transposed=i == 0 and len(shape) > 1)
             for i, (kind, shape) in enumerate(specs)]
    rtol, atol = SOLVER_TOL[dtype]
    got = check(_quiet(fn), *pairs, rtol=rtol, atol=atol)
    for x in got if isinstance(got, tuple) else (got,):
        assert x.is_cuda


@pytest.mark.parametrize("dtype", CDTYPES)
def test_batched_lu_factor_pivots_like_lapack(dtype):
    """A batch of complex matrices: each is factored as one matrix (cuSOLVER's getrf, LAPACK's pivot rule:
    the largest |re| + |im|), as torch's CPU and single-matrix CUDA paths do. (torch's batched CUDA path,
    cuBLAS's getrfBatched, can pick another pivot on near-ties, here in the second matrix.)"""
    t, v = mpair("rect", (2, 5, 5), dtype, seed=50, transposed=True)
    ours = vt.linalg.lu_factor(v)
    theirs = torch.linalg.lu_factor(t.cpu())
    rtol, atol = SOLVER_TOL[dtype]
    assert_same(tuple(ours), tuple(theirs), rtol=rtol, atol=atol)
    p, lower, upper = vt.lu_unpack(*ours)
    _close(to_numpy(p @ lower @ upper), to_numpy(v), dtype, 10)


def _phases(m):
    """The phase of each column's largest-magnitude entry (..., 1, cols): a column's free factor."""
    idx = np.argmax(np.abs(m), axis=-2)[..., None, :]
    p = np.take_along_axis(m, idx, axis=-2)
    return p / np.abs(p)


def _close(ours, theirs, dtype, scale=1.0):
    rtol, atol = SOLVER_TOL[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=rtol * scale, atol=atol * scale)


def _eye_like(m):
    eye = np.eye(m.shape[-1])
    return np.broadcast_to(eye, m.shape[:-2] + eye.shape)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 4)], ids=str)
@pytest.mark.parametrize("dtype", CDTYPES)
def test_qr_up_to_phases(shape, dtype):
    t, v = mpair("rect", shape, dtype, seed=60, transposed=True)
    for mode in ("reduced", "complete"):
        (tq, tr), (vq, vr) = torch.linalg.qr(t, mode=mode), vt.linalg.qr(v, mode=mode)
        assert tuple(vq.shape) == tuple(tq.shape) and tuple(vr.shape) == tuple(tr.shape)
        tq_, tr_, vq_, vr_ = (to_numpy(x).astype(np.complex128) for x in (tq, tr, vq, vr))
        k = min(shape[-2:])
        # column j of Q and row j of R share a phase: divide it out (by R's diagonal)
        tp = np.diagonal(tr_, axis1=-2, axis2=-1)[..., :k] / np.abs(np.diagonal(tr_, axis1=-2, axis2=-1)[..., :k])
        vp = np.diagonal(vr_, axis1=-2, axis2=-1)[..., :k] / np.abs(np.diagonal(vr_, axis1=-2, axis2=-1)[..., :k])
        _close(vr_[..., :k, :] * np.conj(vp)[..., :, None], tr_[..., :k, :] * np.conj(tp)[..., :, None], dtype, 10)
        _close(vq_[..., :k] * vp[..., None, :], tq_[..., :k] * tp[..., None, :], dtype, 10)
        _close(vq_ @ vr_, to_numpy(v).astype(np.complex128), dtype, 10)                      # Q R = A
        _close(np.conj(np.swapaxes(vq_, -1, -2)) @ vq_, _eye_like(vq_), dtype, 10)           # Q^H Q = I


@pytest.mark.parametrize("uplo", ["L", "U"])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_eigh_up_to_phases(uplo, dtype):
    t, v = mpair("herm", (3, 5, 5), dtype, seed=61)
    (tw, tv), (vw, vv) = torch.linalg.eigh(t, UPLO=uplo), vt.linalg.eigh(v, UPLO=uplo)
    assert repr(vw.dtype) == str(tw.dtype) and repr(vv.dtype) == str(tv.dtype)
    _close(to_numpy(vw), to_numpy(tw), dtype)
    tv_, vv_ = to_numpy(tv).astype(np.complex128), to_numpy(vv).astype(np.complex128)
    _close(vv_ * np.conj(_phases(vv_)), tv_ * np.conj(_phases(tv_)), dtype, 10)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 3, 6)], ids=str)
@pytest.mark.parametrize("dtype", CDTYPES)
def test_svd_up_to_phases(shape, dtype):
    t, v = mpair("rect", shape, dtype, seed=62, transposed=True)
    for full in (False, True):
        (tu, ts, tvh), (vu, vs, vvh) = torch.linalg.svd(t, full_matrices=full), vt.linalg.svd(v, full_matrices=full)
        for o, e in ((vu, tu), (vs, ts), (vvh, tvh)):
            assert tuple(o.shape) == tuple(e.shape) and repr(o.dtype) == str(e.dtype) and o.is_cuda
        _close(to_numpy(vs), to_numpy(ts), dtype)
        k = min(shape[-2:])
        tu_, vu_ = to_numpy(tu).astype(np.complex128)[..., :k], to_numpy(vu).astype(np.complex128)[..., :k]
        tvh_, vvh_ = to_numpy(tvh).astype(np.complex128)[..., :k, :], to_numpy(vvh).astype(np.complex128)[..., :k, :]
        tp, vp = _phases(tu_), _phases(vu_)  # (u_j, v_j) share a phase
        _close(vu_ * np.conj(vp), tu_ * np.conj(tp), dtype, 10)
        _close(vvh_ * np.swapaxes(vp, -1, -2), tvh_ * np.swapaxes(tp, -1, -2), dtype, 10)
        a = to_numpy(v).astype(np.complex128)
        _close((vu_ * to_numpy(vs).astype(np.float64)[..., None, :]) @ vvh_, a, dtype, 10)   # U S Vh = A
        m = to_numpy(vu).astype(np.complex128)
        _close(np.conj(np.swapaxes(m, -1, -2)) @ m, _eye_like(m), dtype, 10)


def _sorted(x):
    return np.take_along_axis(x, np.lexsort((np.round(x.imag, 3), np.round(x.real, 3)), axis=-1), axis=-1)


@pytest.mark.parametrize("dtype", CDTYPES)
def test_eig(dtype):
    t, v = mpair("rect", (2, 5, 5), dtype, seed=63, transposed=True)
    tw, _ = torch.linalg.eig(t)
    vw, vv = vt.linalg.eig(v)
    assert repr(vw.dtype) == str(tw.dtype) and repr(vv.dtype) == str(tw.dtype) and vv.is_cuda
    ours, theirs = to_numpy(vw).astype(np.complex128), to_numpy(tw).astype(np.complex128)
    _close(_sorted(ours), _sorted(theirs), dtype, 10)
    a, vec = to_numpy(v).astype(np.complex128), to_numpy(vv).astype(np.complex128)
    _close(a @ vec, vec * ours[..., None, :], dtype, 10)                      # A V = V diag(L)
    _close(np.linalg.norm(vec, axis=-2), np.ones(ours.shape), dtype, 10)
    _close(to_numpy(vt.linalg.eigvals(v)), ours, dtype)


def test_solver_errors_like_torch_cuda():
    z = np.zeros((3, 3), np.complex64)
    check(lambda L, a: L.linalg.inv(a), (torch.from_numpy(z).cuda(), vt.from_numpy(z).cuda()))
    check(lambda L, a: L.linalg.cholesky(-a), mpair("hpd", (3, 3), "complex64", seed=64))


# -- gradients ---------------------------------------------------------------------------------------------------------

GRADS = [  # (name, fn(lib, *inputs), shapes); complex leaves
    ("inverse_trig", lambda lib, a: a.asin() + a.acos() * 2 + a.atan(), [(4, 5)]),
    ("inverse_hyperbolic", lambda lib, a: a.asinh() + (a + 3).acosh() + a.atanh(), [(4, 5)]),
    ("exp2_sinc", lambda lib, a: a.exp2() + lib.sinc(a), [(4, 5)]),
    ("logaddexp", lambda lib, a, b: lib.logaddexp(a, b), [(4, 5), (5,)]),
    ("scans", lambda lib, a: a.cumsum(1) + (a * 0.5).cumprod(1) + a.logcumsumexp(0), [(4, 5)]),
    ("logsumexp", lambda lib, a: a.logsumexp(1), [(4, 5)]),
    ("nansum", lambda lib, a: a.nansum(0) + a.nanmean(0), [(4, 5)]),
    ("addr", lambda lib, m, x, y: lib.addr(m, x, y, alpha=1j, beta=0.5 - 1j), [(4, 5), (4,), (5,)]),
    ("addmm", lambda lib, c, a, b: lib.addmm(c, a, b, alpha=1 + 1j, beta=-1j), [(4, 5), (4, 3), (3, 5)]),
    ("lerp", lambda lib, a, b: lib.lerp(a, b, 0.3 + 0.2j), [(4, 5), (4, 5)]),
    ("index_add", lambda lib, a, b: a.index_add(0, lib.tensor([1, 1, 3], device="cuda"), b, alpha=2j),
     [(4, 5), (3, 5)]),
]


@pytest.mark.parametrize("name,fn,shapes", GRADS, ids=[g[0] for g in GRADS])
@pytest.mark.parametrize("dtype", CDTYPES)
def test_gradients(name, fn, shapes, dtype):
    pairs = [cpair(s, dtype, seed=70 + i, low=-0.9, high=0.9) for i, s in enumerate(shapes)]
    results = []
    for k, lib in enumerate((torch, vt)):
        xs = [p[k].detach().clone().requires_grad_(True) for p in pairs]
        out = fn(lib, *xs)
        results.append((out.detach(),) + tuple(lib.autograd.grad(_loss(lib, out, 7), xs)))
    rtol, atol = GRAD_TOL[dtype]
    assert_same(results[1], results[0], rtol=rtol * 10, atol=atol * 10)


SOLVER_GRADS = [  # (name, loss(lib, a)): losses blind to the factors' phases
    ("inv", lambda L, a: L.linalg.inv(a)),
    ("det", lambda L, a: L.linalg.det(a)),
    ("solve", lambda L, a: L.linalg.solve(a, a[..., :2] * 2)),
    ("eigvalsh", lambda L, a: L.linalg.eigvalsh(a + a.mH)),
    ("svdvals", lambda L, a: L.linalg.svdvals(a)),
    ("matrix_exp", lambda L, a: L.linalg.matrix_exp(a * 0.5)),
    ("cholesky", lambda L, a: L.linalg.cholesky(a @ a.mH + 4 * L.eye(4, device="cuda"))),
]


@pytest.mark.parametrize("name,fn", SOLVER_GRADS, ids=[g[0] for g in SOLVER_GRADS])
def test_decomposition_gradients(name, fn):
    t, v = mpair("general", (2, 4, 4), "complex128", seed=80)
    results = []
    for k, lib in enumerate((torch, vt)):
        x = (t, v)[k].detach().clone().requires_grad_(True)
        out = fn(lib, x)
        results.append((out.detach(),) + tuple(lib.autograd.grad(_loss(lib, out, 9), [x])))
    assert_same(results[1], results[0], rtol=1e-7, atol=1e-7)
