"""Special functions (vibetensor/backends/cpu/special.py and the ops over it) against torch and, where
torch itself is inexact, against mpmath: dense accuracy sweeps over wide ranges (negative arguments,
next to poles and zeros, large arguments, NaN/inf), torch's values at the special points, the
front-door forms table-driven tests don't reach (torch.special out=, polygamma's and ldexp's
routes, frexp's out tuple), and derivatives (gradients against torch, gradcheck in float64)."""

import mpmath
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair
from vibetensor.backends.cpu import special as sp

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
mpmath.mp.dps = 40
INF, NAN = float("inf"), float("nan")
RNG = np.random.default_rng(12)


def _grid(*parts):
    return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])


def _rel_err(got, want, floor=2.3e-308):
    """max |got - want| / max(|want|, floor) over finite references (subnormal results count
    absolutely); non-finite ones must agree exactly."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = np.isfinite(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    assert same[~finite].all(), f"non-finite mismatch: got {got[~finite & ~same]}, want {want[~finite & ~same]}"
    if not finite.any():
        return 0.0
    g, w = got[finite], want[finite]
    err = np.abs(g - w) / np.maximum(np.abs(w), floor)
    worst = int(np.argmax(err))
    print(f"worst relative error {err[worst]:.3g}: got {g[worst]!r}, want {w[worst]!r}")
    return float(err[worst])


def _torch(fn, x):
    return fn(torch.from_numpy(np.asarray(x, np.float64))).numpy()


# -- accuracy sweeps against torch (float64): (name, ours, torch's, points, bound on the relative error) -------
WIDE = _grid(np.linspace(-8, 8, 4001), np.logspace(-300, 2, 400), -np.logspace(-300, 2, 400))
SWEEPS = [
    ("erf", sp.erf, torch.erf, WIDE, 1e-15),
    ("erfc", sp.erfc, torch.erfc, _grid(np.linspace(-8, 26.5, 4001), -np.logspace(-300, 1, 200)), 2e-15),
    ("erfcx_positive", sp.erfcx, torch.special.erfcx, _grid(np.linspace(0, 50, 2001), np.logspace(-300, 300, 300)),
     2e-15),
    ("erfcx_negative", sp.erfcx, torch.special.erfcx, np.linspace(-26.6, 0, 2001), 1e-13),  # torch: ~5e-14 there
    ("erfinv", sp.erfinv, torch.erfinv, _grid(np.linspace(-0.999, 0.999, 4001), np.logspace(-300, -1, 200)), 2e-15),
    ("lgamma_positive", sp.lgamma, torch.lgamma,
     _grid(np.linspace(0.01, 40, 4001), np.logspace(-300, 300, 400), 1 + np.linspace(-1e-5, 1e-5, 101),
           2 + np.linspace(-1e-5, 1e-5, 101)), 3e-15),
    ("digamma", sp.digamma, torch.digamma, _grid(np.linspace(0.01, 40, 4001), np.logspace(-300, 300, 300)), 1e-14),
    ("polygamma2", lambda x: sp.polygamma(2, x), lambda t: torch.polygamma(2, t), np.linspace(0.01, 40, 2001), 5e-15),
    ("polygamma5", lambda x: sp.polygamma(5, x), lambda t: torch.polygamma(5, t), np.linspace(0.01, 40, 2001), 5e-15),
    ("i0", sp.i0, torch.i0, np.linspace(-700, 700, 4001), 3e-15),
    ("i0e", sp.i0e, torch.special.i0e, _grid(np.linspace(-700, 700, 4001), np.logspace(0, 300, 100)), 3e-15),
    ("i1", sp.i1, torch.special.i1, _grid(np.linspace(-700, 700, 4001), np.logspace(-300, 0, 100)), 3e-15),
    ("i1e", sp.i1e, torch.special.i1e, _grid(np.linspace(-700, 700, 4001), np.logspace(0, 300, 100)), 3e-15),
    ("ndtri", sp.ndtri, torch.special.ndtri, _grid(np.linspace(1e-6, 1 - 1e-6, 4001), np.logspace(-320, -1, 300),
                                                   1 - np.logspace(-16, -1, 100)), 2e-15),
    ("log_ndtr", sp.log_ndtr, torch.special.log_ndtr, _grid(np.linspace(-60, 8, 4001), -np.logspace(1, 150, 100)),
     2e-14),  # x / sqrt(2) is rounded: erfc's conditioning (~2 x^2 ulps) shows where log_ndtr is tiny
]


@pytest.mark.parametrize("name,ours,theirs,x,bound", SWEEPS, ids=[s[0] for s in SWEEPS])
def test_accuracy_against_torch(name, ours, theirs, x, bound):
    assert _rel_err(ours(x), _torch(theirs, x)) <= bound


def test_lgamma_negative_against_torch():
    """log|Gamma| for x < 0 (reflection): relative accuracy, absolute next to its zeros (~-2.457, -2.747, ...)."""
    x = _grid(np.linspace(-40, -0.01, 4001), -np.logspace(-300, 0, 200))
    x = x[x != np.round(x)]
    got, want = sp.lgamma(x), _torch(torch.lgamma, x)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) < 4e-15


def test_digamma_negative_against_torch():
    """torch's algorithm (Cephes): the same reflection, so the same cancellation next to its zeros."""
    x = np.linspace(-40, -0.01, 4001)
    x = x[x != np.round(x)]
    got, want = sp.digamma(x), _torch(torch.digamma, x)
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) < 1e-13


def test_polygamma_negative_against_torch():
    x = np.linspace(-30.3, -0.01, 1500)
    x = x[x != np.round(x)]
    for n in (2, 3, 4):
        got, want = sp.polygamma(n, x), _torch(lambda t: torch.polygamma(n, t), x)
        assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) < 1e-13, n


def _mp(fn, xs):
    return np.array([float(fn(mpmath.mpf(float(v)))) for v in xs])


def test_trigamma_against_mpmath():
    """torch's trigamma stops its series early (~5e-10 relative); ours is the Hurwitz zeta(2, x)."""
    x = _grid(np.linspace(-20.3, 30, 600), np.logspace(-8, 8, 60))
    x = x[x != np.round(x)]
    assert _rel_err(sp.polygamma(1, x), _mp(lambda v: mpmath.psi(1, v), x)) < 2e-15
    assert _rel_err(sp.polygamma(1, x), _torch(lambda t: torch.polygamma(1, t), x)) < 1e-9


def test_lgamma_near_its_zeros_against_mpmath():
    """Relative accuracy next to lgamma's zeros at 1 and 2 (torch's libm has it too)."""
    x = _grid(1 + np.logspace(-15, -1, 60), 1 - np.logspace(-15, -1, 60), 2 + np.logspace(-15, -1, 60),
              2 - np.logspace(-15, -1, 60))
    assert _rel_err(sp.lgamma(x), _mp(lambda v: mpmath.loggamma(v).real, x)) < 3e-15


def test_erfinv_next_to_one_against_mpmath():
    y = _grid(1 - np.logspace(-16, -1, 80), -(1 - np.logspace(-16, -1, 80)))
    assert _rel_err(sp.erfinv(y), _mp(mpmath.erfinv, y)) < 2e-15


def test_ndtri_far_tail_against_mpmath():
    """Down to the smallest subnormal probabilities (Newton on log(erfc) never overflows)."""
    p = _grid(np.logspace(-323, -20, 40))

    def ref(v):
        x = -mpmath.sqrt(-2 * mpmath.log(v))
        for _ in range(60):
            x -= (mpmath.log(mpmath.ncdf(x)) - mpmath.log(v)) * mpmath.ncdf(x) / mpmath.npdf(x)
        return x
    assert _rel_err(sp.ndtri(p), _mp(ref, p)) < 2e-15


def test_zeta_against_torch():
    s = np.repeat([1.5, 2.0, 3.0, 4.5, 10.0, 50.0, 200.0], 400)
    q = np.tile(_grid(np.linspace(0.01, 30, 300), np.logspace(-5, 6, 100)), 7)
    got, want = sp.zeta(s, q), torch.special.zeta(torch.from_numpy(s), torch.from_numpy(q)).numpy()
    assert _rel_err(got, want, floor=1e-300) < 1e-13
    s = np.repeat([2.0, 3.0, 4.0, 7.0], 300)  # negative q: the series through the negative terms
    q = np.tile(-np.linspace(0.013, 5000.7, 300), 4)
    got, want = sp.zeta(s, q), torch.special.zeta(torch.from_numpy(s), torch.from_numpy(q)).numpy()
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) < 1e-12


# -- values at the special points: exactly torch's (inf/NaN, signed zeros) --------------------------------------
POINTS = np.array([0.0, -0.0, 1.0, 2.0, -1.0, -2.0, -2.5, 0.5, 1e-300, -1e-300, 1e300, -1e300, INF, -INF, NAN,
                   171.7, 2.6e305, -3.5e15, 5e-324, -5e-324, 27.0, -27.0, 710.0, -710.0, 1e-17, 0.25, 1 - 2 ** -53])
POINT_FUNCTIONS = [
    ("lgamma", sp.lgamma, torch.lgamma), ("digamma", sp.digamma, torch.digamma),
    ("polygamma2", lambda x: sp.polygamma(2, x), lambda t: torch.polygamma(2, t)),
    ("polygamma3", lambda x: sp.polygamma(3, x), lambda t: torch.polygamma(3, t)),
    ("i0", sp.i0, torch.i0), ("i0e", sp.i0e, torch.special.i0e), ("i1", sp.i1, torch.special.i1),
    ("i1e", sp.i1e, torch.special.i1e), ("ndtri", sp.ndtri, torch.special.ndtri),
    ("log_ndtr", sp.log_ndtr, torch.special.log_ndtr), ("erfcx", sp.erfcx, torch.special.erfcx),
    ("erfinv", sp.erfinv, torch.erfinv), ("erf", sp.erf, torch.erf), ("erfc", sp.erfc, torch.erfc),
]


@pytest.mark.parametrize("name,ours,theirs", POINT_FUNCTIONS, ids=[f[0] for f in POINT_FUNCTIONS])
def test_special_points(name, ours, theirs):
    got, want = ours(POINTS), _torch(theirs, POINTS)
    same = (np.isnan(got) & np.isnan(want)) | ((got == want) & (np.signbit(got) == np.signbit(want))) | \
        (np.isfinite(want) & (np.abs(got - want) <= 1e-13 * np.abs(want) + 5e-324))  # i1(5e-324): a tie
    assert same.all(), list(zip(POINTS[~same], got[~same], want[~same]))


def test_trigamma_special_points():
    """torch's trigamma: 0 at +inf, NaN at -inf, inf at 0; at the negative integers (double poles) it
    returns large finite values that depend on sin's rounding, where we return +inf."""
    got = sp.polygamma(1, np.array([INF, -INF, 0.0, -0.0, NAN, -1.0, -7.0, -3.5e15]))
    assert got[0] == 0 and np.isnan(got[1]) and got[2] == INF and got[3] == INF and np.isnan(got[4])
    assert (got[5:] == INF).all()


def test_zeta_special_points():
    # (torch's zeta(1e300, 2) is NaN, 0 * inf in its tail; ours is the limit, 0)
    s = np.array([1.0, 0.5, 2.0, 2.0, 3.0, 2.5, 2.0, 4.0, NAN, 2.0, INF, INF, INF, NAN, 1e6])
    q = np.array([1.0, 1.0, 0.0, -1.0, -2.5, -0.5, INF, -INF, 1.0, NAN, 2.0, 1.0, 0.5, -3.0, 2.0])
    got, want = sp.zeta(s, q), torch.special.zeta(torch.from_numpy(s), torch.from_numpy(q)).numpy()
    same = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= 1e-15 * np.abs(want))
    assert same.all(), [(a, b, g, w) for a, b, g, w, ok in zip(s, q, got, want, same) if not ok]


# -- the front door: torch.special, out=, the routes of polygamma, ldexp, frexp ------------------------------
SPECIAL_UNARY = ["erf", "erfc", "erfinv", "erfcx", "expit", "exp2", "expm1", "log1p", "gammaln", "digamma", "psi",
                 "i0", "i0e", "i1", "i1e", "sinc", "entr", "ndtr", "ndtri", "log_ndtr"]


@pytest.mark.parametrize("name", SPECIAL_UNARY)
def test_special_namespace_unary(name):
    x = make_pair((3, 4), "float32", "transposed", seed=1, special=True, low=0.05, high=0.95)
    check(lambda lib, a: getattr(lib.special, name)(a), x)
    check(lambda lib, a: getattr(lib.special, name)(a, out=lib.empty(0, dtype=lib.float64)), x, rtol=1.3e-6, atol=1e-5)
    check(lambda lib, a: getattr(lib.special, name)(a, out=lib.empty(2, dtype=lib.int64)), x)  # can't cast


def test_special_namespace_others():
    x = make_pair((3, 4), "float64", seed=2, low=0.1, high=3.0)
    y = make_pair((4,), "float64", seed=3, low=-0.5, high=3.0)
    for fn in (lambda lib, a, b: lib.special.xlog1py(a, b), lambda lib, a, b: lib.special.xlogy(a, b),
               lambda lib, a, b: lib.special.zeta(a + 1, b), lambda lib, a, b: lib.special.xlog1py(2.5, b),
               lambda lib, a, b: lib.special.zeta(a + 1, 2), lambda lib, a, b: lib.special.polygamma(2, a),
               lambda lib, a, b: lib.special.multigammaln(a + 2, 3), lambda lib, a, b: lib.special.round(a, decimals=1),
               lambda lib, a, b: lib.special.logit(a / 4, eps=0.1), lambda lib, a, b: lib.special.logsumexp(a, 1),
               lambda lib, a, b: lib.special.softmax(a, 0), lambda lib, a, b: lib.special.log_softmax(a, 1),
               lambda lib, a, b: lib.special.xlog1py(a, b, out=lib.empty(0, dtype=lib.float64))):
        check(fn, x, y)


def test_polygamma_forms():
    x = make_pair((3, 4), "float32", "transposed", seed=4, special=True, low=-3.0, high=3.0)
    for n in (0, 1, 2, 4):
        check(lambda lib, a: a.polygamma(n), x)
        check(lambda lib, a: lib.polygamma(n, a, out=lib.empty(0)), x)
        check(lambda lib, a: (a.clone().polygamma_(n)), x)
    check(lambda lib, a: lib.tensor([1, 2]).polygamma_(1), x)  # float result into a long tensor
    for bad in (-1, 1.0, True):
        check(lambda lib, a: lib.polygamma(bad, a), x)
    check(lambda lib, a: lib.polygamma(1, a.to(lib.complex64)), x)


def test_ldexp_routes():
    """A floating input with integral exponents is exact (std::ldexp): no overflow of 2 ** e on the
    way; others go through input * pow(2., e) in torch's dtypes; out= and in-place likewise."""
    x = make_pair((6,), "float64", seed=5, low=-3, high=3)
    e = (torch.tensor([-1100, 1030, 0, 5, -5, 2 ** 40]), vt.tensor([-1100, 1030, 0, 5, -5, 2 ** 40]))
    check(lambda lib, a, b: lib.ldexp(a * 1e300, b), x, e)
    for xd in ("float16", "bfloat16", "float32", "float64", "int32", "complex64", "bool"):
        for ed in ("int8", "int64", "float16", "float32", "float64", "bool"):
            check(lambda lib, a, b: lib.ldexp(a, b), make_pair((2, 3), xd, seed=6, low=-3, high=3),
                  make_pair((3,), ed, seed=7, low=-20, high=20))
            check(lambda lib, a, b: lib.ldexp(a, b), make_pair((), xd, seed=6), make_pair((3,), ed, seed=7))
    f32, i64 = make_pair((3,), "float32", seed=8), make_pair((3,), "int64", seed=9, low=-4, high=4)
    check(lambda lib, a, b: a.clone().ldexp_(b), f32, i64)
    check(lambda lib, a, b: lib.ldexp_(a.clone(), b.float()), f32, i64)
    check(lambda lib, a, b: lib.ldexp(a, b, out=lib.empty(0)), f32, i64)
    check(lambda lib, a, b: lib.ldexp(a, b, out=lib.empty(3, dtype=lib.int64)), f32, i64)
    check(lambda lib, a, b: b.clone().ldexp_(b), f32, i64)
    check(lambda lib, a, b: lib.ldexp(a, 2), f32, i64)


def test_frexp_forms():
    for d in ("float16", "bfloat16", "float32", "float64"):
        x = make_pair((3, 4), d, "strided", seed=10, special=True, low=-1e3, high=1e3)
        check(lambda lib, a: lib.frexp(a), x)
        check(lambda lib, a: a.frexp(), x)
        check(lambda lib, a: lib.frexp(a * 1e-30), x)
        m, e = vt.empty(0, dtype=getattr(vt, d)), vt.empty(0, dtype=vt.int32)
        got = vt.frexp(x[1], out=(m, e))
        assert got.mantissa is m and got.exponent is e
        assert_same(got, torch.frexp(x[0]))
    tiny = (torch.tensor([5e-324, 1e308, -0.0]), vt.tensor([5e-324, 1e308, -0.0]))
    check(lambda lib, a: lib.frexp(a), tiny)
    x = make_pair((3,), "float32", seed=11)
    for out in ((lambda lib: (lib.empty(3, dtype=lib.float64), lib.empty(3, dtype=lib.int32))),
                (lambda lib: (lib.empty(3), lib.empty(3, dtype=lib.int64))), (lambda lib: lib.empty(3))):
        check(lambda lib, a: lib.frexp(a, out=out(lib)), x)
    check(lambda lib, a: lib.frexp(a.long()), x)
    assert "mantissa=" in repr(vt.frexp(vt.ones(2)))


def test_nextafter_steps_in_its_own_dtype():
    for d in ("float16", "bfloat16", "float32", "float64"):
        x = make_pair((5,), d, seed=12, special=True)
        check(lambda lib, a: lib.nextafter(a, a + 1), x)
        check(lambda lib, a: lib.nextafter(a, lib.full((), -INF, dtype=lib.float64)), x)


def test_errors_match_torch():
    for fn, exc in [
        (lambda lib: lib.special.ndtri(lib.ones(2, dtype=lib.float16)), NotImplementedError),
        (lambda lib: lib.special.zeta(lib.ones(2, dtype=lib.bfloat16), lib.ones(2, dtype=lib.bfloat16)),
         NotImplementedError),
        (lambda lib: lib.erfinv(lib.ones(2, dtype=lib.complex64)), NotImplementedError),
        (lambda lib: lib.polygamma(-1, lib.ones(2)), RuntimeError),
        (lambda lib: lib.frexp(lib.ones(2, dtype=lib.int32)), RuntimeError),
        (lambda lib: lib.ldexp(lib.ones(2), lib.ones(2, dtype=lib.bool)), NotImplementedError),
        (lambda lib: lib.nextafter(lib.ones(2), 1.0), TypeError),
    ]:
        with pytest.raises(exc) as theirs:
            fn(torch)
        with pytest.raises(exc) as ours:
            fn(vt)
        assert str(ours.value) == str(theirs.value) or exc is TypeError


# -- derivatives ---------------------------------------------------------------------------------------------
POS = (0.2, 3.0)
GRADS = [  # (id, fn(lib, *inputs), input shapes, domain)
    ("erfinv", lambda lib, a: a.erfinv(), [(3, 4)], (-0.95, 0.95)),
    ("lgamma", lambda lib, a: a.lgamma(), [(3, 4)], (-3.0, 3.0)),
    ("digamma", lambda lib, a: a.digamma(), [(3, 4)], (-3.0, 3.0)),
    ("polygamma1", lambda lib, a: lib.polygamma(1, a), [(3, 4)], POS),
    ("polygamma2", lambda lib, a: a.polygamma(2), [(3, 4)], (-3.0, 3.0)),
    ("mvlgamma", lambda lib, a: a.mvlgamma(3), [(3, 4)], (1.5, 4.0)),
    ("i0", lambda lib, a: a.i0(), [(3, 4)], (-4.0, 4.0)),
    ("i0e", lambda lib, a: lib.special.i0e(a), [(3, 4)], (-4.0, 4.0)),
    ("i1", lambda lib, a: lib.special.i1(a), [(3, 4)], (-4.0, 4.0)),
    ("i1e", lambda lib, a: lib.special.i1e(a), [(3, 4)], (-4.0, 4.0)),
    ("sinc", lambda lib, a: a.sinc(), [(3, 4)], (-3.0, 3.0)),
    ("entr", lambda lib, a: lib.special.entr(a), [(3, 4)], POS),
    ("ndtr", lambda lib, a: lib.special.ndtr(a), [(3, 4)], (-3.0, 3.0)),
    ("ndtri", lambda lib, a: lib.special.ndtri(a), [(3, 4)], (0.05, 0.95)),
    ("log_ndtr", lambda lib, a: lib.special.log_ndtr(a), [(3, 4)], (-5.0, 3.0)),
    ("erfcx", lambda lib, a: lib.special.erfcx(a), [(3, 4)], (-3.0, 3.0)),
    ("xlog1py", lambda lib, a, b: lib.special.xlog1py(a, b), [(3, 4), (4,)], POS),
    ("xlog1py_scalar", lambda lib, a: lib.special.xlog1py(a, 2.0), [(3, 4)], POS),
    ("zeta_q", lambda lib, a: lib.special.zeta(3.0, a), [(3, 4)], POS),
    ("nextafter", lambda lib, a, b: lib.nextafter(a, b), [(3, 4), (4,)], POS),
    ("ldexp_float", lambda lib, a, b: lib.ldexp(a, b), [(3, 4), (4,)], (-2.0, 2.0)),
    ("ldexp_int", lambda lib, a: lib.ldexp(a, lib.tensor([3, 2, 0, 1])), [(3, 4)], (-2.0, 2.0)),
    ("frexp", lambda lib, a: lib.frexp(a * 100).mantissa, [(3, 4)], (-2.0, 2.0)),
]
GRAD_IDS = [g[0] for g in GRADS]


def _leaves(lib, arrays):
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def _grads(lib, fn, arrays, create_graph=False):
    ins = _leaves(lib, arrays)
    out = fn(lib, *ins)
    w = lib.tensor(np.random.default_rng(7).uniform(-1, 1, tuple(out.shape)).astype(arrays[0].dtype))
    return lib.autograd.grad(out, ins, w, allow_unused=True, create_graph=create_graph)


def _arrays(shapes, seed, domain, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [rng.uniform(*domain, s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("name,fn,shapes,domain", GRADS, ids=GRAD_IDS)
def test_gradient_matches_torch(name, fn, shapes, domain):
    for dtype in ("float64", "float32"):
        arrays = _arrays(shapes, 1, domain, dtype)
        assert_same(_grads(vt, fn, arrays), _grads(torch, fn, arrays))


@pytest.mark.parametrize("name,fn,shapes,domain", GRADS, ids=GRAD_IDS)
def test_gradcheck(name, fn, shapes, domain):
    if name == "nextafter":  # not differentiable in b: torch's gradient (0) is a convention
        return
    ins = _leaves(vt, _arrays(shapes, 2, domain))
    assert vt.autograd.gradcheck(lambda *xs: fn(vt, *xs), ins)


@pytest.mark.parametrize("name", ["lgamma", "digamma", "erfinv", "sinc", "i0", "i1e", "ndtri", "log_ndtr"])
def test_second_derivative_matches_torch(name):
    _, fn, shapes, domain = GRADS[GRAD_IDS.index(name)]
    arrays = _arrays(shapes, 3, domain)

    def second(lib):
        ins = _leaves(lib, arrays)
        (g,) = lib.autograd.grad(fn(lib, *ins).sum(), ins, create_graph=True)
        return lib.autograd.grad(g, ins, lib.tensor(np.linspace(-1, 1, g.numel()).reshape(tuple(g.shape))))
    assert_same(second(vt), second(torch))


def test_zeta_derivative_in_s_is_not_implemented():
    s = vt.tensor([2.0, 3.0], requires_grad=True)
    y = vt.special.zeta(s, vt.tensor([1.5, 2.0])).sum()
    with pytest.raises(NotImplementedError, match="zeta"):
        y.backward()


def test_gradients_at_special_points():
    """torch's conventions where the formulas divide by zero: sinc'(0) = 0, i1'(0) = i1e'(0) = 0.5,
    xlog1py's d/dx = 0 where x = 0 and y <= -1, erfinv' = inf at 1, lgamma' = digamma (NaN at -1)."""
    cases = [(lambda lib, a: a.sinc(), [0.0, 1.0, -2.0]), (lambda lib, a: lib.special.i1(a), [0.0, 1e-20, 1.0]),
             (lambda lib, a: lib.special.i1e(a), [0.0, -1e-20, -1.0]), (lambda lib, a: a.erfinv(), [1.0, -1.0, 0.0]),
             (lambda lib, a: a.lgamma(), [0.0, -1.0, 2.5]), (lambda lib, a: lib.special.entr(a), [0.0, 1.0, 2.0]),
             (lambda lib, a: lib.special.xlog1py(a, lib.tensor([-1.0, -1.0, 2.0])), [0.0, -1.5, 1.0])]
    for fn, values in cases:
        arrays = [np.array(values)]
        assert_same(_grads(vt, fn, arrays), _grads(torch, fn, arrays))


# half types: torch rounds each step of a derivative formula to the dtype, so ours must take the same steps
# (nextafter: no step where a == b; ldexp: grad * result * ln 2), and the broadcast sums must agree
HALF_GRADS = [
    ("nextafter", lambda lib, a, b: lib.nextafter(a, b)),
    ("ldexp_float", lambda lib, a, b: lib.ldexp(a, b * 4)),
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name,fn", HALF_GRADS, ids=[g[0] for g in HALF_GRADS])
def test_half_type_gradients_round_like_torch(name, fn, dtype):
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-3, 3, (10, 1, 5)).astype(np.float32), rng.uniform(-3, 3, (10, 5)).astype(np.float32)
    b[0] = a[0, 0]  # a == b somewhere
    w = rng.standard_normal((10, 10, 5)).astype(np.float32)

    def grads(lib):
        ins = [lib.tensor(x).to(getattr(lib, dtype)).requires_grad_() for x in (a, b)]
        return lib.autograd.grad(fn(lib, *ins), ins, lib.tensor(w).to(getattr(lib, dtype)))
    assert_same(grads(vt), grads(torch), rtol=0, atol=0)


def test_ldexp_gradient_for_negative_integer_exponents():
    """d/dx ldexp(x, e) = 2^e. torch computes it as pow(2, e) in integers, which is 0 for e < 0; ours
    is ldexp(grad, e), exact."""
    x = vt.tensor([1.5, -3.0, 2.0], requires_grad=True)
    vt.ldexp(x, vt.tensor([-2, -1100, 3])).sum().backward()
    assert x.grad.tolist() == [0.25, 2.0 ** -1100, 8.0]


# -- orthogonal polynomials: torch's recurrences and special cases, over x, n grids (float64) ---------------------
POLYNOMIALS = ["chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
               "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
               "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he",
               "laguerre_polynomial_l", "legendre_polynomial_p"]
# (no NaN x: torch's CPU kernels return uninitialised values there for several kinds; ours give NaN)
_POLY_X = np.array([-2.5, -1.0, -0.999, -0.7, -0.5, -0.1, 0.0, 0.1, 0.3, 0.5, 0.75, 0.999, 1.0, 1.5, 3.0, INF])
_POLY_N = np.array([-3.0, -1.0, 0.0, 1.0, 1.9, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 24.0, NAN, INF])


@pytest.mark.parametrize("name", POLYNOMIALS)
def test_orthogonal_polynomials_against_torch(name):
    x, n = np.meshgrid(_POLY_X, _POLY_N)
    ours = getattr(vt.special, name)(vt.tensor(x), vt.tensor(n))
    theirs = getattr(torch.special, name)(torch.tensor(x), torch.tensor(n))
    assert_same(ours, theirs, rtol=1e-12, atol=1e-12)
    check(lambda lib: getattr(lib.special, name)(lib.tensor([0.3, -0.2]), 3))  # a Python degree
    check(lambda lib: getattr(lib.special, name)(0.5, lib.tensor([2, 5])))  # a Python x, integer degrees


@pytest.mark.parametrize("case", [
    lambda lib: lib.special.chebyshev_polynomial_t(lib.tensor([0.5], dtype=lib.bfloat16), lib.tensor([2.0])),
    lambda lib: lib.special.legendre_polynomial_p(lib.tensor([0.5j]), 2),
    lambda lib: lib.special.hermite_polynomial_h(lib.tensor([1, 2]), lib.tensor([3, 4])),  # integers: float32
    lambda lib: lib.special.laguerre_polynomial_l(lib.tensor([0.5], requires_grad=True), 3).requires_grad,
    lambda lib: lib.special.chebyshev_polynomial_u(lib.tensor([0.5, 0.2]), 3, out=lib.empty(2, dtype=lib.float64)),
])
def test_orthogonal_polynomial_forms(case):
    check(case)
