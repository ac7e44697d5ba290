"""Device functions of complex math beyond complex.py's: the inverse trigonometric and hyperbolic functions,
log1p and logaddexp. Each takes and returns (re, im) in the compute dtype; complex.py's code tables
call them.

torch's CUDA kernels reach thrust's complex functions through c10::complex, and thrust's asin, acos, atan,
asinh, acosh and atanh are FreeBSD's catrig (Hull, Fairgrieve and Tang's algorithm: accurate near the
branch cuts and for large or tiny arguments, and C99 annex G's special values). These are ports of it,
every branch computed and the right one selected (a GPU has no per-element branches): catrig's constants
for double (complex128) and float (complex64) are picked by the compute dtype. logaddexp is torch's
_log_add_exp_helper for complex numbers (LogAddExp.cuh), which logcumsumexp's scan combines with too.
"""
import triton
import triton.language as tl
from triton.language.extra import libdevice
from triton.runtime.jit import constexpr_function

PIO2 = tl.constexpr(1.5707963267948966)
PIO2_LO = tl.constexpr(6.123233995736766e-17)  # pi/2 - PIO2
LN2 = tl.constexpr(0.6931471805599453)
M_E = tl.constexpr(2.718281828459045)

# catrig's per-type limits, (float64, float32): _limit(name, x.dtype) picks one at compile time
_LIMITS = {
    "EPS": (2.220446049250313e-16, 1.1920928955078125e-07),
    "RECIP_EPS": (4503599627370496.0, 8388608.0),
    "SQRT_3_EPS": (2.5809568279517849e-8, 5.9801995673e-4),
    "SQRT_6_EPS": (3.6500241499888571e-8, 8.4572793338e-4),
    "SQRT_MIN": (1.4916681462400413e-154, 1.0842021724855044e-19),
    "FOUR_SQRT_MIN": (5.966672584960166e-154, 4.336808689942018e-19),
    "HALF_MAX": (8.988465674311579e307, 1.7014117331926443e38),
}


@constexpr_function
def _limit(name, dtype):
    return _LIMITS[name][0 if dtype == tl.float64 else 1]


@triton.jit
def _signbit(x):
    return libdevice.signbit(x) != 0


@triton.jit
def _isinf(x):
    return tl.abs(x) == float("inf")


@triton.jit
def _half_hypot_minus(a, b, h):
    """catrig's f(a, b, hypot(a, b)) = (hypot(a, b) - b) / 2, without cancellation for b > 0."""
    return tl.where(b < 0, (h - b) / 2, tl.where(b == 0, a / 2, a * a / (h + b) / 2))


@triton.jit
def _clog_large(x, y):
    """log z for |z| beyond 1/eps (catrig's clog_for_large_values): hypot scaled by e near overflow."""
    ax = tl.maximum(tl.abs(x), tl.abs(y))
    HALF_MAX: tl.constexpr = _limit("HALF_MAX", x.dtype)
    big = ax > HALF_MAX
    re = tl.where(big, libdevice.log(libdevice.hypot(x / M_E, y / M_E)) + 1, libdevice.log(libdevice.hypot(x, y)))
    return re, libdevice.atan2(y, x)


@triton.jit
def _hard_work(x, y):
    """catrig's do_hard_work for x, y >= 0 below 1/eps: (rx = Re casinh(x + iy), B usable, B,
    sqrt(A^2 - y^2), new y), with A = (|z + i| + |z - i|) / 2 and B = y / A."""
    EPS: tl.constexpr = _limit("EPS", x.dtype)
    FOUR_SQRT_MIN: tl.constexpr = _limit("FOUR_SQRT_MIN", x.dtype)
    R = libdevice.hypot(x, y + 1)
    S = libdevice.hypot(x, y - 1)
    A = tl.maximum((R + S) / 2, 1.0)
    # rx = log(A + sqrt(A^2 - 1)), via log1p of A - 1 when A is small
    am1 = _half_hypot_minus(x, 1 + y, R) + _half_hypot_minus(x, 1 - y, S)
    one_minus_y2 = tl.maximum((1 - y) * (1 + y), 0.0)
    y2_minus_one = tl.maximum((y - 1) * (y + 1), 0.0)
    rx_small = tl.where((y == 1) & (x < EPS * EPS / 128), libdevice.sqrt(x),
                        tl.where(x >= EPS * tl.abs(y - 1), libdevice.log1p(am1 + libdevice.sqrt(am1 * (A + 1))),
                                 tl.where(y < 1, x / libdevice.sqrt(one_minus_y2),
                                          libdevice.log1p((y - 1) + libdevice.sqrt(y2_minus_one)))))
    rx = tl.where(A < 10, rx_small, libdevice.log(A + libdevice.sqrt(A * A - 1)))
    # B = y / A; where B is near 1, asin(B) loses accuracy: atan2(y, sqrt(A^2 - y^2)) instead
    B = y / A
    near_one = (y == 1) & (x < EPS / 128)
    direct = x >= EPS * tl.abs(y - 1)
    amy = _half_hypot_minus(x, y + 1, R) + _half_hypot_minus(x, y - 1, S)
    s = tl.where(near_one, libdevice.sqrt(x) * libdevice.sqrt((A + y) / 2),
                 tl.where(direct, libdevice.sqrt(amy * (A + y)),
                          tl.where(y > 1, x * (4 / EPS / EPS) * y / libdevice.sqrt(y2_minus_one),
                                   libdevice.sqrt(one_minus_y2))))
    scaled = ~near_one & ~direct & (y > 1)  # s and y both scaled by 4 / eps^2
    tiny = y < FOUR_SQRT_MIN  # y / A could underflow: atan2 of rescaled values
    usable = ~tiny & (B <= 0.6417)
    sqrt_a2my2 = tl.where(tiny, A * (2 / EPS), s)
    new_y = tl.where(tiny, y * (2 / EPS), tl.where(scaled, y * (4 / EPS / EPS), y))
    return rx, usable, B, sqrt_a2my2, new_y


@triton.jit
def casinh(x, y):
    """catrig's casinh: sign(x) log(A + sqrt(A^2 - 1)) + i asin(B)."""
    RECIP_EPS: tl.constexpr = _limit("RECIP_EPS", x.dtype)
    SQRT_6_EPS: tl.constexpr = _limit("SQRT_6_EPS", x.dtype)
    ax = tl.abs(x)
    ay = tl.abs(y)
    nan = (x != x) | (y != y)
    # casinh(+-inf + i nan) = +-inf + i nan; casinh(nan +- i inf) = +-inf + i nan; casinh(nan + 0i) = nan + 0i
    nan_re = tl.where(_isinf(x), x, tl.where(_isinf(y), y, x + y))
    nan_im = tl.where(_isinf(x), y + y, tl.where(_isinf(y), x + x, tl.where(y == 0, y, x + y)))
    # |z| > 1/eps: sign(x) log(sign(x) z) + ln 2
    neg = _signbit(x)
    lr, li = _clog_large(tl.where(neg, -x, x), tl.where(neg, -y, y))
    large = ~nan & ((ax > RECIP_EPS) | (ay > RECIP_EPS))
    rx, usable, B, s, new_y = _hard_work(tl.where(large | nan, 0.0, ax), tl.where(large | nan, 0.0, ay))
    ry = tl.where(usable, libdevice.asin(B), libdevice.atan2(new_y, s))
    tiny = (ax < SQRT_6_EPS / 4) & (ay < SQRT_6_EPS / 4)  # casinh(z) = z + O(z^3)
    re = tl.where(tiny, x, libdevice.copysign(rx, x))
    im = tl.where(tiny, y, libdevice.copysign(ry, y))
    re = tl.where(large, libdevice.copysign(lr + LN2, x), re)
    im = tl.where(large, libdevice.copysign(li, y), im)
    return tl.where(nan, nan_re, re), tl.where(nan, nan_im, im)


@triton.jit
def casin(x, y):
    """asin z = reverse(asinh(reverse z)), reverse(x + iy) = y + ix."""
    re, im = casinh(y, x)
    return im, re


@triton.jit
def cacos(x, y):
    """catrig's cacos: accurate near z = 1 (not pi/2 - asin z)."""
    RECIP_EPS: tl.constexpr = _limit("RECIP_EPS", x.dtype)
    SQRT_6_EPS: tl.constexpr = _limit("SQRT_6_EPS", x.dtype)
    ax = tl.abs(x)
    ay = tl.abs(y)
    sx = _signbit(x)
    sy = _signbit(y)
    nan = (x != x) | (y != y)
    # cacos(+-inf + i nan) = nan - i inf; cacos(nan +- i inf) = nan -+ i inf; cacos(0 + i nan) = pi/2 + i nan
    nan_re = tl.where(_isinf(x), y + y, tl.where(_isinf(y), x + x, tl.where(x == 0, PIO2, x + y)))
    nan_im = tl.where(_isinf(x), float("-inf"), tl.where(_isinf(y), -y, tl.where(x == 0, y + y, x + y)))
    lr, li = _clog_large(x, y)
    large = ~nan & ((ax > RECIP_EPS) | (ay > RECIP_EPS))
    large_re = tl.abs(li)
    large_im = tl.where(sy, lr + LN2, -(lr + LN2))
    ry, usable, B, s, new_x = _hard_work(tl.where(large | nan, 0.0, ay), tl.where(large | nan, 0.0, ax))
    rx = tl.where(usable, libdevice.acos(tl.where(sx, -B, B)), libdevice.atan2(s, tl.where(sx, -new_x, new_x)))
    ry = tl.where(sy, ry, -ry)
    tiny = (ax < SQRT_6_EPS / 4) & (ay < SQRT_6_EPS / 4)  # cacos(z) = pi/2 - z + O(z^3)
    rx = tl.where(tiny, PIO2 - (x - PIO2_LO), rx)
    ry = tl.where(tiny, -y, ry)
    one = (x == 1) & (y == 0)
    rx = tl.where(one, 0.0, rx)
    ry = tl.where(one, -y, ry)
    re = tl.where(nan, nan_re, tl.where(large, large_re, rx))
    im = tl.where(nan, nan_im, tl.where(large, large_im, ry))
    return re, im


@triton.jit
def cacosh(x, y):
    """catrig's cacosh: +-i acos z, the sign making the real part >= 0."""
    rx, ry = cacos(x, y)
    both = (rx != rx) & (ry != ry)
    re = tl.where(both, ry, tl.where(rx != rx, tl.abs(ry), tl.where(ry != ry, ry, tl.abs(ry))))
    im = tl.where(both, rx, tl.where(rx != rx, rx, tl.where(ry != ry, ry, libdevice.copysign(rx, y))))
    return re, im


@triton.jit
def _real_part_reciprocal(x, y):
    """Re(1 / (x + iy)) = x / (x^2 + y^2) for |z| beyond 1/eps, without overflow."""
    h = libdevice.hypot(x, y)
    return tl.where(_isinf(x), 1 / x, (x / h) / h)


@triton.jit
def catanh(x, y):
    """catrig's catanh: log1p(4|x| / |z - 1|^2) / 4 + i atan2(2y, (1 - x)(1 + x) - y^2) / 2."""
    EPS: tl.constexpr = _limit("EPS", x.dtype)
    RECIP_EPS: tl.constexpr = _limit("RECIP_EPS", x.dtype)
    SQRT_3_EPS: tl.constexpr = _limit("SQRT_3_EPS", x.dtype)
    SQRT_MIN: tl.constexpr = _limit("SQRT_MIN", x.dtype)
    ax = tl.abs(x)
    ay = tl.abs(y)
    zero = tl.zeros_like(x)
    nan = (x != x) | (y != y)
    # catanh(+-inf + i nan) = +-0 + i nan; catanh(nan +- i inf) = +-0 +- i pi/2
    nan_re = tl.where(_isinf(x) | _isinf(y), libdevice.copysign(zero, x), x + y)
    nan_im = tl.where(_isinf(x), y + y, tl.where(_isinf(y), libdevice.copysign(zero + PIO2, y), x + y))
    large = (ax > RECIP_EPS) | (ay > RECIP_EPS)
    large_re = _real_part_reciprocal(x, y)
    large_im = libdevice.copysign(zero + PIO2, y)
    dx = ax - 1
    squares = tl.where(ay < SQRT_MIN, dx * dx, dx * dx + ay * ay)
    rx = tl.where((ax == 1) & (ay < EPS), (LN2 - libdevice.log(ay)) / 2, libdevice.log1p(4 * ax / squares) / 4)
    ry = tl.where(ax == 1, libdevice.atan2(zero + 2, -ay) / 2,
                  tl.where(ay < EPS, libdevice.atan2(2 * ay, (1 - ax) * (1 + ax)) / 2,
                           libdevice.atan2(2 * ay, (1 - ax) * (1 + ax) - ay * ay) / 2))
    tiny = (ax < SQRT_3_EPS / 2) & (ay < SQRT_3_EPS / 2)  # catanh(z) = z + O(z^3)
    re = tl.where(tiny, x, libdevice.copysign(rx, x))
    im = tl.where(tiny, y, libdevice.copysign(ry, y))
    re = tl.where(nan, nan_re, tl.where(large, large_re, re))
    im = tl.where(nan, nan_im, tl.where(large, large_im, im))
    # the real axis inside [-1, 1] (atanh of a real number) and the imaginary axis (i atan y) come first
    real_axis = (y == 0) & (ax <= 1)
    imag_axis = x == 0
    re = tl.where(real_axis, libdevice.atanh(x), tl.where(imag_axis, x, re))
    im = tl.where(real_axis, y, tl.where(imag_axis, libdevice.atan(y), im))
    return re, im


@triton.jit
def catan(x, y):
    """atan z = reverse(atanh(reverse z))."""
    re, im = catanh(y, x)
    return im, re


@triton.jit
def _exp_inf(c, s, y):
    """e^z for Re z = +inf from c = cos y, s = sin y (torch's _fast_build_exp_inf): (inf, nan) for a
    non-finite y, else inf c + i inf s, exactly 0 where c or s is."""
    finite = (y == y) & ~_isinf(y)
    re = tl.where(finite, tl.where(c == 0, 0.0, float("inf") * c), float("inf"))
    im = tl.where(finite, tl.where(s == 0, 0.0, float("inf") * s), float("nan"))
    return re, im


@triton.jit
def log1p(a, b):
    """torch's jiterated complex log1p: 0.5 log1p(a (2 + a) + b^2) near 0 (|z| < 0.5), else log|1 + z|."""
    theta = libdevice.atan2(b, a + 1)
    r = a * (2 + a) + b * b
    near = libdevice.hypot(a, b) < 0.5
    re = tl.where(near, tl.where(r == 0, a, 0.5 * libdevice.log1p(r)), libdevice.log(libdevice.hypot(a + 1, b)))
    return re, theta


@triton.jit
def clogaddexp(xr, xi, yr, yi):
    """torch's complex _log_add_exp_helper: log(e^x + e^y) = log1p(e^(min - max)) + max, the order by real
    parts (a NaN in either part wins); equal infinite real parts handled apart. (Also the combine of
    logcumsumexp's scan, so each sine, cosine and log1p is evaluated once: small code.)"""
    x_nan = (xr != xr) | (xi != xi)
    y_nan = (yr != yr) | (yi != yi)
    take_y_min = y_nan | (~x_nan & ~(xr < yr))
    take_y_max = y_nan | (~x_nan & ~(xr >= yr))
    lo_r = tl.where(take_y_min, yr, xr)
    lo_i = tl.where(take_y_min, yi, xi)
    hi_r = tl.where(take_y_max, yr, xr)
    hi_i = tl.where(take_y_max, yi, xi)
    dr = lo_r - hi_r
    di = lo_i - hi_i
    # equal infinite real parts: -inf gives the min itself, +inf log1p(e^min + e^max - 1);
    # otherwise log1p(e^(min - max)) + max, e^(min - max) being 0 (or built for +inf) at infinite differences
    same_inf = _isinf(lo_r) & (lo_r == hi_r)
    angle = tl.where(same_inf, lo_i, di)
    c1 = libdevice.cos(angle)
    s1 = libdevice.sin(angle)
    c2 = libdevice.cos(hi_i)
    s2 = libdevice.sin(hi_i)
    er1, ei1 = _exp_inf(c1, s1, angle)
    er2, ei2 = _exp_inf(c2, s2, hi_i)
    dfinite = (dr == dr) & ~_isinf(dr)
    e = libdevice.exp(tl.where(dfinite, dr, 0.0))
    ar = tl.where(same_inf, er1 + er2 - 1, tl.where(dfinite, e * c1, tl.where(dr < 0, 0.0, er1)))
    ai = tl.where(same_inf, ei1 + ei2, tl.where(dfinite, e * s1, tl.where(dr < 0, 0.0, ei1)))
    lr, li = log1p(ar, ai)
    re = tl.where(same_inf, tl.where(lo_r < 0, lo_r, lr), lr + hi_r)
    im = tl.where(same_inf, tl.where(lo_r < 0, lo_i, li), li + hi_i)
    nan = x_nan | y_nan
    return tl.where(nan, float("nan"), re), tl.where(nan, float("nan"), im)
