"""Special functions on NumPy arrays, vectorised, to float64 accuracy (no SciPy).

Every public function takes array-likes (any real dtype), computes in float64 and returns a float64
ndarray of the broadcast shape; the kernels cast to the op's result dtype. Arrays are processed in
cache-sized blocks. Cheap piecewise forms compute every piece and pick (np.where); costly ones work
region by region on the elements that fall in it (_fill, boolean masks). Values at poles,
infinities and NaN follow torch (noted where torch is odd).

Algorithms (all from the literature, written here for NumPy):
  erf, erfc, erfcx  W. J. Cody's rational Chebyshev approximations (Math. Comp. 23, 1969; netlib
                    specfun CALERF), exp(-x^2) evaluated in two factors to keep its accuracy.
  erfinv, ndtri     M. Giles' approximation ("Approximating the erfinv function", GPU Computing
                    Gems, 2011) or the tail asymptotics as a start, then Halley/Newton steps on
                    erf, or on log(erfc) in the tails (accurate down to the smallest doubles).
  lgamma            Taylor series of lgamma(1 + z) in (zeta(k) - 1) near 1 and 2, upward
                    recurrence, Stirling's series from 10 on, reflection for x <= -0.5.
  digamma           recurrence to x >= 10 and the asymptotic series (torch's algorithm: Cephes).
  zeta, polygamma   Hurwitz zeta by direct summation and the Euler-Maclaurin tail;
                    polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x); trigamma_float32 is torch's
                    own float32 trigamma (inexact next to poles), so float32 results match it.
  i0, i0e, i1, i1e  power series for |x| <= 20, Hankel's asymptotic series beyond.
"""
import math
from fractions import Fraction

import numpy as np

_INF, _NAN = float("inf"), float("nan")
_EULER = 0.57721566490153286061   # Euler-Mascheroni constant
_ONE_MINUS_EULER = 0.42278433509846713939
_HALF_LOG_2PI = 0.91893853320467274178
_SQRT2 = 1.41421356237309504880
_SQRT1_2 = 0.70710678118654752440
_FRAC_1_SQRTPI = 0.56418958354775628695   # 1 / sqrt(pi)
_TWO_OVER_SQRTPI = 1.12837916709551257390


def _bernoulli(n):
    """B_0 .. B_n as exact fractions (Akiyama-Tanigawa), B_1 = +1/2 (only even ones are used)."""
    a, out = [], []
    for m in range(n + 1):
        a.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            a[j - 1] = j * (a[j - 1] - a[j])
        out.append(a[0])
    return out


_B = _bernoulli(26)


_BLOCK = 1 << 15  # elements per block: a function's many temporaries stay in the CPU caches


def _blocked(fn, *flats):
    n = flats[0].size
    if n <= _BLOCK:
        return fn(*flats)
    out = np.empty(n)
    for start in range(0, n, _BLOCK):
        out[start:start + _BLOCK] = fn(*(f[start:start + _BLOCK] for f in flats))
    return out


def _unary(fn):
    """fn(x) on flat float64 blocks -> the result in x's shape (0-d included)."""
    def wrapped(x):
        x = np.asarray(x, dtype=np.float64)
        return _blocked(fn, x.ravel()).reshape(x.shape)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _binary(fn):
    def wrapped(a, b):
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        return _blocked(fn, a.ravel(), b.ravel()).reshape(a.shape)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _fill(out, mask, fn, *xs):
    """out[mask] = fn(*(x[mask] for x in xs)): one region of a piecewise function."""
    if mask.any():
        out[mask] = fn(*(x[mask] for x in xs))


def _nans(x):
    return np.full(x.shape, _NAN)


# -- error function family (Cody) ---------------------------------------------------------------------------
# erf on |x| <= 0.46875: x * P(x^2) / Q(x^2)
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
          1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
# exp(x^2) erfc(x) on 0.46875 < x <= 4
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
           8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
           2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
           3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
# exp(x^2) erfc(x) on x > 4: (1/sqrt(pi) - z P(z) / Q(z)) / x with z = 1 / x^2
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
           6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
           2.33520497626869185e-3)
_ERF_SMALL = 0.46875


def _erf_small(x):
    y = x * x
    num = (((_ERF_A[4] * y + _ERF_A[0]) * y + _ERF_A[1]) * y + _ERF_A[2]) * y + _ERF_A[3]
    den = (((y + _ERF_B[0]) * y + _ERF_B[1]) * y + _ERF_B[2]) * y + _ERF_B[3]
    return x * num / den


def _erfcx_mid(y):
    num, den = _ERFC_C[8] * y, y
    for c, d in zip(_ERFC_C[:7], _ERFC_D[:7]):
        num, den = (num + c) * y, (den + d) * y
    return (num + _ERFC_C[7]) / (den + _ERFC_D[7])


def _erfcx_large(y):
    z = 1.0 / (y * y)
    num, den = _ERFC_P[5] * z, z
    for p, q in zip(_ERFC_P[:4], _ERFC_Q[:4]):
        num, den = (num + p) * z, (den + q) * z
    return (_FRAC_1_SQRTPI - z * (num + _ERFC_P[4]) / (den + _ERFC_Q[4])) / y


def _erfcx_tail(y):
    """exp(y^2) erfc(y) for y > 0.46875 (inf included). Both of Cody's forms are computed and one is
    picked: cheaper than gathering each region's elements."""
    return np.where(y <= 4.0, _erfcx_mid(y), _erfcx_large(y))


def _exp_square(y, sign):
    """exp(sign * y^2) for y >= 0: y^2 split as a short part (exact square) and a small rest, so the
    rounding of y * y does not show (it would cost ~y^2 ulps)."""
    short = np.trunc(16.0 * y) / 16.0
    rest = (y - short) * (y + short)
    return np.exp(sign * short * short) * np.exp(sign * rest)


def _erfc_tail(y):
    """erfc(y) for y > 0.46875: 0 from where it underflows (inf included)."""
    y = np.minimum(y, 27.5)
    return _exp_square(y, -1.0) * _erfcx_tail(y)


@_unary
def erfc(x):
    """Complementary error function."""
    y = np.abs(x)
    tail = _erfc_tail(y)
    return np.where(y <= _ERF_SMALL, 1.0 - _erf_small(x), np.where(x < 0, 2.0 - tail, tail))


@_unary
def erf(x):
    """Error function."""
    y = np.abs(x)
    return np.where(y <= _ERF_SMALL, _erf_small(x), np.copysign((0.5 - _erfc_tail(y)) + 0.5, x))


def _erfcx_small(x):
    return np.exp(x * x) * (1.0 - _erf_small(x))


@_unary
def erfcx(x):
    """Scaled complementary error function exp(x^2) erfc(x)."""
    y = np.abs(x)
    tail = _erfcx_tail(y)
    # erfcx(-y) = 2 exp(y^2) - erfcx(y), overflowing from y ~ 26.6
    negative = np.where(y < 26.7, 2.0 * _exp_square(np.minimum(y, 26.7), 1.0) - tail, _INF)
    return np.where(y <= _ERF_SMALL, _erfcx_small(x), np.where(x < 0, negative, tail))


# -- inverse error functions -------------------------------------------------------------------------------------

def _giles(w):
    """Giles' single-precision erfinv(y) / y, in terms of w = -log((1 - y)(1 + y)), w < ~50."""
    central = w < 5.0
    out = np.empty_like(w)
    _fill(out, central, lambda v: _poly((2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                                         0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                                         1.50140941), v - 2.5), w)
    _fill(out, ~central, lambda v: _poly((-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                                          0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                                          2.83297682), np.sqrt(v) - 3.0), w)
    return out


def _poly(coeffs, x):
    """Horner: coefficients from the highest power down."""
    r = np.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        r = r * x + c
    return r


def _erfinv_central(a):
    """erfinv(a) for 0 <= a <= 0.5: Giles, then two Halley steps on erf(x) - a."""
    x = a * _giles(-np.log1p(-a * a))
    for _ in range(2):
        u = (_erf_small_or_mid(x) - a) / (_TWO_OVER_SQRTPI * np.exp(-x * x))
        x = x - u / (1.0 + x * u)
    return x


def _erf_small_or_mid(x):
    """erf for 0 <= x < ~0.6 (the central inverse's iterates)."""
    return np.where(x <= _ERF_SMALL, _erf_small(x), (0.5 - _exp_square(x, -1.0) * _erfcx_mid(x)) + 0.5)


def _erfcinv(t):
    """x >= 0 with erfc(x) = t, for 0 < t <= 0.5 (t may be as small as the smallest double).

    Start: Giles (in w = -log(t (2 - t)), exact for small t) or, far out, x^2 = -log(t sqrt(pi) x)
    iterated. Then Newton on g(x) = log(erfcx(x)) - x^2 - log(t), whose slope -2/sqrt(pi)/erfcx(x)
    never under- or overflows."""
    w = -np.log(t * (2.0 - t))
    x = np.empty_like(t)
    near = w < 25.0
    _fill(x, near, lambda v, tv: (1.0 - tv) * _giles(v), w, t)
    log_t = np.log(t)

    def far(lt):
        r = np.sqrt(-lt)
        for _ in range(3):
            r = np.sqrt(-lt - np.log(r / _FRAC_1_SQRTPI))
        return r
    _fill(x, ~near, far, log_t)
    for _ in range(3):
        e = _erfcx_positive_any(x)
        x = x + (np.log(e) - x * x - log_t) * e / _TWO_OVER_SQRTPI
    return x


def _erfcx_positive_any(y):
    """erfcx(y) for y >= 0."""
    return np.where(y <= _ERF_SMALL, _erfcx_small(y), _erfcx_tail(y))


@_unary
def erfinv(y):
    """Inverse error function: +-inf at +-1, NaN outside [-1, 1]."""
    out = _nans(y)
    a = np.abs(y)
    central = a <= 0.5
    _fill(out, central, lambda v: np.copysign(_erfinv_central(np.abs(v)), v), y)
    tail = (a > 0.5) & (a < 1.0)
    _fill(out, tail, lambda v: np.copysign(_erfcinv(1.0 - np.abs(v)), v), y)  # 1 - |y| is exact here
    _fill(out, a == 1.0, lambda v: np.copysign(_INF, v), y)
    return out


@_unary
def ndtri(p):
    """Inverse of the standard normal CDF: -inf at 0, inf at 1, NaN outside [0, 1]."""
    out = _nans(p)
    central = (p >= 0.25) & (p <= 0.75)
    _fill(out, central, lambda v: _SQRT2 * erfinv(2.0 * v - 1.0), p)  # 2p - 1 is exact here
    low = (p > 0.0) & (p < 0.25)
    _fill(out, low, lambda v: -_SQRT2 * _erfcinv(2.0 * v), p)
    high = (p > 0.75) & (p < 1.0)
    _fill(out, high, lambda v: _SQRT2 * _erfcinv(2.0 * (1.0 - v)), p)  # 1 - p is exact here
    out[p == 0.0] = -_INF
    out[p == 1.0] = _INF
    return out


@_unary
def log_ndtr(x):
    """log of the standard normal CDF, accurate far into the left tail (through erfcx)."""
    out = _nans(x)
    left = x < -1.0
    _fill(out, left, lambda v: np.log(erfcx(-v * _SQRT1_2) / 2.0) - 0.5 * v * v, x)
    _fill(out, ~left & ~np.isnan(x), lambda v: np.log1p(-erfc(v * _SQRT1_2) / 2.0), x)
    return out


# -- Hurwitz zeta, polygamma ------------------------------------------------------------------------------------
_EM = [float(_B[2 * j] / math.factorial(2 * j)) for j in range(1, 13)]  # B_2j / (2j)!, j = 1..12


def _zeta_sum(s, q):
    """Hurwitz zeta(s, q) = sum_k (q + k)^-s for 1 < s (inf too) and -4096 < q < inf, q not a
    non-positive integer (s an integer where q < 0). The first N terms are summed directly, the rest
    is the Euler-Maclaurin tail at w = q + N with N taking w to s + 10, where the remainder after 12
    terms, ~2 (s)_25 / (2 pi w)^26 relative, is below 1e-20 -- unless the terms fall below 2^-60 of
    the first positive one sooner (large s): then those N terms are the sum."""
    power = _power_of(s)
    shift = np.maximum(np.ceil(s + 10.0 - q), 0.0)
    first = np.maximum(np.ceil(-q), 0.0)  # terms up to the first positive base, then decaying ones
    converged = first + np.ceil((q + first) * np.expm1(42.0 / (s - 1.0))) + 1.0
    tail = shift <= converged
    n = np.where(tail, shift, converged)
    total = np.zeros_like(q)
    live = np.arange(q.size)
    for k in range(int(n.max(initial=0.0))):
        more = n[live] > k
        if 2 * np.count_nonzero(more) < live.size:  # gather the few still summing (rarely pays otherwise)
            live = live[more]
            more = np.ones(live.size, bool)
        total[live] += np.where(more, power(q[live] + k, 0, live), 0.0)
    i = np.nonzero(tail)[0]
    if i.size:
        si, wi = s[i], q[i] + n[i]
        b1 = power(wi, 1, i)  # w^(1-s): the integral term survives where w^-s underflows
        b = b1 / wi
        rest = b1 / (si - 1.0) + 0.5 * b
        term = si * b / wi
        rest += _EM[0] * term
        w2 = wi * wi
        for j in range(1, len(_EM)):
            term = term * ((si + 2 * j - 1) * (si + 2 * j) / w2)
            rest += _EM[j] * term
        total[i] += rest
    return total


def _power_of(s):
    """power(base, d, index=None) = base^-(s - d) (s at `index`): by multiplications when s is one
    small integer for all elements (polygamma's case: NumPy's pow costs ~100 ns an element)."""
    s0 = s[0] if s.size else 2.0
    if s0 == np.floor(s0) and 2 <= s0 <= 64 and (s == s0).all():
        m = int(s0)
        return lambda base, d, index=None: _int_power(1.0 / base, m - d)
    return lambda base, d, index=None: base ** (d - (s if index is None else s[index]))


def _int_power(r, m):
    """r^m for an int m >= 1 by repeated squaring."""
    result = None
    while m:
        if m & 1:
            result = r if result is None else result * r
        m >>= 1
        if m:
            r = r * r
    return result


@_binary
def zeta(s, q):
    """Hurwitz zeta function as torch has it: inf at s == 1 and at q a non-positive integer, NaN for
    s < 1, for q < 0 with s not an integer, for q = +inf and for s = +inf with q > 1."""
    out = _nans(s)
    out[s == 1.0] = _INF
    ok = s > 1.0
    integral_q = q == np.floor(q)
    negative = ok & (q < 0) & ~integral_q & (s == np.floor(s))
    _fill(out, ok & (q > 0) & (q < _INF) | negative & (q > -4096), _zeta_sum, s, q)
    out[~(s < 1.0) & (q <= 0) & integral_q] = _INF  # s NaN too: torch checks the pole first
    _fill(out, negative & (q <= -4096), _zeta_far_negative, s, q)
    out[(s == _INF) & (q > 1)] = _NAN  # torch's (Cephes') tail: 0 * inf
    return out


def _zeta_far_negative(s, q):
    """zeta(s, q) for q <= -4096 not an integer, s an integer: with r = q - trunc(q) in (-1, 0) (exact),
    the terms at q, q + 1, ..., q - trunc(q) - 1 < 0 are (-1)^s (j - r)^-s, j = 0 .. -trunc(q), so
    zeta(s, q) = zeta(s, 1 + r) + (-1)^s (zeta(s, -r) - zeta(s, 1 - q))."""
    r = q - np.trunc(q)
    sign = np.where(np.fmod(s, 2.0) == 0, 1.0, -1.0)
    return _zeta_sum(s, 1.0 + r) + sign * (_zeta_sum(s, -r) - _zeta_sum(s, 1.0 - q))


def polygamma(n, x):
    """The n-th derivative of digamma, n >= 0 an int: (-1)^(n+1) n! zeta(n + 1, x) for n >= 1."""
    if n == 0:
        return digamma(x)
    if n == 1:
        return trigamma(x)
    factorial = float(math.factorial(n)) if n <= 170 else _INF
    return (factorial if n % 2 else -factorial) * zeta(float(n + 1), x)


@_unary
def trigamma(x):
    """polygamma(1, x) = zeta(2, x); reflection for x < 0: psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x).
    0 at +inf, NaN at -inf as torch; +inf at 0 and the negative integers."""
    out = _nans(x)
    s = np.full_like(x, 2.0)
    _fill(out, (x > 0) & (x < _INF), _zeta_sum, s, x)
    _fill(out, (x < 0) & (x > -_INF), lambda v, sv: (np.pi / _sin_pi_abs(v)) ** 2 - _zeta_sum(sv, 1.0 - v),
          x, s)
    out[(x == 0) | ((x < 0) & (x == np.floor(x)))] = _INF
    out[x == _INF] = 0.0
    out[x == -_INF] = _NAN
    return out


def trigamma_float32(x):
    """torch's float32 trigamma, reproduced: its short series in float32 arithmetic, with sin(pi x)
    rounded in float32 (so ~1e-5 relative next to the poles, and large finite values at the negative
    integers). torch computes float32 and half types so; matching it there beats being exact."""
    f = np.float32
    x = np.asarray(x, dtype=f)
    pi = f(np.pi)
    reflect = x < f(0.5)
    s = np.sin(pi * x)
    result = np.where(reflect, -(pi * pi) / (s * s), f(0.0))
    x = np.where(reflect, f(1.0) - x, x)
    for _ in range(6):
        result = result + f(1.0) / (x * x)
        x = x + f(1.0)
    ixx = f(1.0) / (x * x)
    result = result + (f(1.0) + f(1.0) / (f(2.0) * x) + ixx * (f(1 / 6) - ixx * (f(1 / 30) - ixx * f(1 / 42)))) / x
    return np.where(reflect, -result, result)


# -- gamma function family ----------------------------------------------------------------------------------
# lgamma(1 + z) = -gamma z + (z - log1p(z)) + S(z) and lgamma(2 + z) = (1 - gamma) z + S(z), for |z| <= 1/2,
# with S(z) = sum_k>=2 (-1)^k (zeta(k) - 1) z^k / k (the rest of the series of lgamma(1 + z) in zeta(k))
_ZETA_MINUS_1 = _zeta_sum(np.arange(2.0, 32.0), np.full(30, 2.0))  # zeta(k) - 1 = zeta(k, 2)
_LGAMMA1P = [(-1) ** k * _ZETA_MINUS_1[k - 2] / k for k in range(31, 1, -1)]  # z^31 .. z^2
# Stirling: lgamma(x) = (x - 1/2) log x - x + log(2 pi) / 2 + sum_k B_2k / (2k (2k - 1) x^(2k - 1))
_STIRLING = [float(_B[2 * k] / (2 * k * (2 * k - 1))) for k in range(8, 0, -1)]


def _series_s(z):
    return _poly(_LGAMMA1P, z) * z * z


def _lgamma1p(z):
    """lgamma(1 + z) for |z| <= 1/2, to a few ulps relative (also next to its zero at z = 0)."""
    return -_EULER * z + (z - np.log1p(z)) + _series_s(z)


def _lgamma2p(z):
    """lgamma(2 + z) for |z| <= 1/2 (also next to its zero at z = 0)."""
    return _ONE_MINUS_EULER * z + _series_s(z)


def _lgamma_recurrence(x):
    """lgamma for 2.5 <= x < 10: log((x - 1)(x - 2)...(y)) + lgamma(y), y in [1.5, 2.5)."""
    y, prod = x.copy(), np.ones_like(x)
    for _ in range(8):
        up = y >= 2.5
        y = np.where(up, y - 1.0, y)
        prod = np.where(up, prod * y, prod)
    return np.log(prod) + _lgamma2p(y - 2.0)


def _lgamma_stirling(x):
    """lgamma for x >= 10 (finite): x (log x - 1) keeps from overflowing before lgamma does."""
    r = 1.0 / (x * x)
    log_x = np.log(x)
    return x * (log_x - 1.0) - 0.5 * log_x + _HALF_LOG_2PI + _poly(_STIRLING, r) / x


def _lgamma_positive(x):
    """lgamma for x >= 0.5."""
    out = np.empty_like(x)
    _fill(out, x < 1.5, lambda v: _lgamma1p(v - 1.0), x)
    _fill(out, (x >= 1.5) & (x < 2.5), lambda v: _lgamma2p(v - 2.0), x)
    _fill(out, (x >= 2.5) & (x < 10.0), _lgamma_recurrence, x)
    _fill(out, (x >= 10.0) & (x < _INF), _lgamma_stirling, x)
    out[x == _INF] = _INF
    return out


def _sin_pi_abs(x):
    """|sin(pi x)|, exact in its argument reduction (x - round(x) is exact)."""
    return np.abs(np.sin(np.pi * (x - np.round(x))))


@_unary
def lgamma(x):
    """log |Gamma(x)|: +inf at 0 and the negative integers, +inf at +-inf."""
    out = _nans(x)
    near0 = np.abs(x) < 0.5  # Gamma(x) = Gamma(1 + x) / x
    _fill(out, near0, lambda v: _lgamma1p(v) - np.log(np.abs(v)), x)
    _fill(out, x >= 0.5, _lgamma_positive, x)
    neg = (x <= -0.5) & (x > -_INF)  # reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x)
    _fill(out, neg, lambda v: np.log(np.pi / _sin_pi_abs(v)) - _lgamma_positive(1.0 - v), x)
    out[x == -_INF] = _INF
    return out


# digamma asymptotics: psi(x) ~ log x - 1/(2x) - sum_k B_2k / (2k x^2k)
_DIGAMMA = [float(_B[2 * k] / (2 * k)) for k in range(7, 0, -1)]
_PSI_10 = 2.25175258906672110764  # digamma(10)


def _digamma_positive(x):
    """digamma for x > 0 (inf included): recurrence up to 10, then the asymptotic series."""
    acc = np.zeros_like(x)
    for _ in range(10):
        low = x < 10.0
        if not low.any():
            break
        acc = np.where(low, acc - 1.0 / x, acc)
        x = np.where(low, x + 1.0, x)
    z = 1.0 / (x * x)
    series = np.where(x < 1e17, z * _poly(_DIGAMMA, z), 0.0)
    return np.where(x == 10.0, acc + _PSI_10, acc + np.log(x) - 0.5 / x - series)


@_unary
def digamma(x):
    """psi(x) = d/dx lgamma(x): -inf at +0, +inf at -0, NaN at the negative integers and -inf."""
    out = _nans(x)
    _fill(out, x > 0, _digamma_positive, x)
    out[x == 0] = np.copysign(_INF, -x[x == 0])
    neg = (x < 0) & (x != np.trunc(x))  # reflection: psi(1 - x) - pi / tan(pi r), r = frac(x)
    _fill(out, neg, lambda v: _digamma_positive(1.0 - v) - np.pi / np.tan(np.pi * (v - np.trunc(v))), x)
    return out


def mvlgamma(x, p):
    """Multivariate log-gamma: sum_j<p lgamma(x - j/2) + p (p - 1) / 4 log(pi)."""
    x = np.asarray(x, dtype=np.float64)
    total = np.zeros_like(x)
    for j in range(p):
        total = total + lgamma(x - 0.5 * j)
    return total + p * (p - 1) / 4 * math.log(math.pi)


# -- modified Bessel functions of the first kind ----------------------------------------------------------------
_BESSEL_SERIES_MAX = 20.0


def _bessel_series(x, nu):
    """I_nu(x) for 0 <= x <= 20 (nu = 0, 1): sum_k (x/2)^(2k+nu) / (k! (k+nu)!), 40 positive terms."""
    h = 0.5 * x
    q = h * h
    term = np.ones_like(x) if nu == 0 else h.copy()
    total = term.copy()
    for k in range(1, 41):
        term = term * q / (k * (k + nu))
        total += term
    return total


def _bessel_asymptotic(x, nu):
    """exp(-x) I_nu(x) for x > 20 (inf included): Hankel's series sum_k (-1)^k a_k(nu) / x^k / sqrt(2 pi x),
    stopped at 40 terms (its smallest term at x = 20 is ~e^-2x)."""
    mu = 4.0 * nu * nu
    term = np.ones_like(x)
    total = term.copy()
    for k in range(1, 41):
        term = term * (-(mu - (2 * k - 1) ** 2) / (8.0 * k)) / x
        total += term
    return total / np.sqrt(2.0 * np.pi * x)


def _bessel(x, nu, scaled):
    """I_nu(|x|) or exp(-|x|) I_nu(|x|), odd in x for nu = 1. Unscaled values overflow to inf past
    ~709.8 and are NaN at +-inf, as torch's (Cephes) are."""
    a = np.abs(x)
    out = _nans(x)
    series = a <= _BESSEL_SERIES_MAX
    _fill(out, series, (lambda v: _bessel_series(v, nu) * np.exp(-v)) if scaled else
          (lambda v: _bessel_series(v, nu)), a)
    far = a > _BESSEL_SERIES_MAX
    _fill(out, far, (lambda v: _bessel_asymptotic(v, nu)) if scaled else
          (lambda v: np.exp(v) * _bessel_asymptotic(v, nu)), a)
    return np.where(x < 0, -out, out) if nu == 1 else out


@_unary
def i0(x):
    """Modified Bessel function I0."""
    return _bessel(x, 0, False)


@_unary
def i0e(x):
    """exp(-|x|) I0(x)."""
    return _bessel(x, 0, True)


@_unary
def i1(x):
    """Modified Bessel function I1."""
    return _bessel(x, 1, False)


@_unary
def i1e(x):
    """exp(-|x|) I1(x)."""
    return _bessel(x, 1, True)


# -- orthogonal polynomials (torch.special.*_polynomial_*(x, n)) -------------------------------------------------
# The three-term recurrences, run for every element at once up to the largest degree asked for, with torch's
# special cases on top (in its order of precedence): n < 0 gives 0, the end points have closed forms, and for
# the Chebyshev kinds inside (-1, 1) a high degree uses the trigonometric form. n is truncated to an integer
# as C++ casts it; NaN and infinite degrees count as negative (what the cast gives on x86).

def _degrees(n):
    n = np.asarray(n, np.float64)
    bad = ~np.isfinite(n) | (np.abs(n) >= 2.0 ** 63)
    return np.where(bad, -1, np.trunc(np.where(bad, 0, n))).astype(np.int64)


def _recurrence(x, n, p0, p1, step):
    """P_n for P_0 = p0, P_1 = p1, P_m = step(m, P_{m-1}, P_{m-2})."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), n)
    p, q = np.broadcast_to(p0, x.shape).astype(np.float64), np.broadcast_to(p1, x.shape).astype(np.float64)
    out = np.where(n <= 0, p, q)
    for m in range(2, int(n.max(initial=1)) + 1):
        p, q = q, step(m, q, p)
        out = np.where(n == m, q, out)
    return out


def _chebyshev(x, n, first, ends, trig, min_trig):
    """A Chebyshev kind of P_1 = first(x), P_m = 2x P_{m-1} - P_{m-2}; ends(x, n) at |x| == 1, and
    trig(theta, n) (theta = acos x) for n > min_trig inside (-1, 1)."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), _degrees(n))
    with np.errstate(all="ignore"):
        out = _recurrence(x, n, 1.0, first(x), lambda m, q, p: (x + x) * q - p)
        inside = (n > min_trig) & (np.abs(x) < 1)
        if inside.any():
            out = np.where(inside, trig(np.arccos(np.where(inside, x, 0.0)), n), out)
        out = np.where(np.abs(x) == 1, ends(x, n), out)
    return np.where(n < 0, 0.0, out)


def _odd(n):
    return n % 2 == 1


def chebyshev_t(x, n):
    return _chebyshev(x, n, lambda x: x, _ends_t, lambda t, n: np.cos(n * t), 6)


def chebyshev_u(x, n):
    return _chebyshev(x, n, lambda x: x + x, _ends_u, _trig_u, 8)


def chebyshev_v(x, n):
    return _chebyshev(x, n, lambda x: x + x - 1, _ends_v, _trig_v, 8)


def chebyshev_w(x, n):
    return _chebyshev(x, n, lambda x: x + x + 1, _ends_w, _trig_w, 8)


def _shifted(kind, min_trig):
    """The shifted kind on [0, 1]: the kind at y = 2x - 1, with torch's end points x == 1 and x == 0 and
    its own threshold for the trigonometric form."""
    def fn(x, n):
        x = np.asarray(x, np.float64)
        y = x + x - 1
        kind_fn, ends, trig = kind
        x, n = np.broadcast_arrays(x, _degrees(n))
        y = np.broadcast_to(y, x.shape)
        with np.errstate(all="ignore"):
            out = _recurrence(y, n, 1.0, kind_fn(y), lambda m, q, p: (y + y) * q - p)
            inside = (n > min_trig) & (np.abs(y) < 1)
            if inside.any():
                out = np.where(inside, trig(np.arccos(np.where(inside, y, 0.0)), n), out)
            out = np.where((x == 1) | (x == 0), ends(np.where(x == 1, 1.0, -1.0), n), out)
        return np.where(n < 0, 0.0, out)
    return fn


def _ends_t(x, n):
    return np.where((x > 0) | ~_odd(n), 1.0, -1.0)


def _ends_u(x, n):
    return np.where((x > 0) | ~_odd(n), n + 1.0, -(n + 1.0))


def _ends_v(x, n):
    return np.where(x > 0, 1.0, np.where(_odd(n), -(n + n + 1.0), n + n + 1.0))


def _ends_w(x, n):
    return np.where(x > 0, n + n + 1.0, np.where(_odd(n), -1.0, 1.0))


def _trig_u(t, n):
    s = np.sin(t)
    return np.where(s != 0, np.sin((n + 1) * t) / np.where(s != 0, s, 1.0), (n + 1) * np.cos((n + 1) * t) / np.cos(t))


def _trig_v(t, n):
    return np.where(np.sin(t / 2) != 1, np.cos((n + 0.5) * t) / np.cos(t / 2), _ends_v(-1.0, n))


def _trig_w(t, n):
    return np.where(np.cos(t / 2) != 1, np.sin((n + 0.5) * t) / np.sin(t / 2), _ends_w(np.cos(t), n))


shifted_chebyshev_t = _shifted((lambda y: y, _ends_t, lambda t, n: np.cos(n * t)), 6)
shifted_chebyshev_u = _shifted((lambda y: y + y, _ends_u, _trig_u), 6)
shifted_chebyshev_v = _shifted((lambda y: y + y - 1, _ends_v, _trig_v), 6)
shifted_chebyshev_w = _shifted((lambda y: y + y + 1, _ends_w, lambda t, n: np.where(
    np.cos(t / 2) != 1, np.sin((n + 0.5) * t) / np.sin(t / 2), np.where(_odd(n), -1.0, 1.0))), 4)


def hermite_h(x, n):
    """Physicists' Hermite: H_m = 2x H_{m-1} - 2(m-1) H_{m-2}."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), _degrees(n))
    with np.errstate(all="ignore"):
        out = _recurrence(x, n, 1.0, x + x, lambda m, q, p: (x + x) * q - (2 * (m - 1)) * p)
    return np.where(n < 0, 0.0, out)


def hermite_he(x, n):
    """Probabilists' Hermite: He_m = x He_{m-1} - (m-1) He_{m-2}."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), _degrees(n))
    with np.errstate(all="ignore"):
        out = _recurrence(x, n, 1.0, x, lambda m, q, p: x * q - (m - 1) * p)
    return np.where(n < 0, 0.0, out)


def laguerre_l(x, n):
    """L_m = ((2(m-1) + 1 - x) L_{m-1} - (m-1) L_{m-2}) / m; torch gives 1 at x == 0 for every n >= 0."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), _degrees(n))
    with np.errstate(all="ignore"):
        out = _recurrence(x, n, 1.0, 1 - x, lambda m, q, p: ((2 * (m - 1) + (1 - x)) * q - (m - 1) * p) / m)
    return np.where(n < 0, 0.0, np.where(x == 0, 1.0, out))


def legendre_p(x, n):
    """P_m = ((2m - 1) x P_{m-1} - (m-1) P_{m-2}) / m; +-1 at the end points."""
    x, n = np.broadcast_arrays(np.asarray(x, np.float64), _degrees(n))
    with np.errstate(all="ignore"):
        out = _recurrence(x, n, 1.0, x, lambda m, q, p: ((2 * m - 1) * x * q - (m - 1) * p) / m)
    return np.where(n < 0, 0.0, np.where(np.abs(x) == 1, _ends_t(x, n), out))
