"""Complex special values on CPU against torch: every combination of signed zeros, infinities, NaN,
huge, tiny and subnormal parts through the complex unary ops, products, powers and cumprod.

torch's CPU kernels run contiguous tensors through Vectorized<c10::complex> (AVX2/AVX512) loops and the
leftover tail, and strided tensors, through scalar code compiled with fused multiply-adds; the two
disagree at overflow and underflow (square of 1e20 + 1e20i in complex64: nan + inf i vectorized,
-inf + inf i scalar; sgn and reciprocal of subnormals). We follow the vectorized loops, so the grid is
padded to a multiple of 64 elements: every point then goes through torch's vector path. Values are
compared by torch.isclose(equal_nan=True) (a complex number is NaN when either part is): NaN must
meet NaN, an infinite part must be equal exactly."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import LAYOUTS, check, make_pair, to_numpy

CDTYPES = ["complex64", "complex128"]
_INF, _NAN = float("inf"), float("nan")
_PARTS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 0.7, 0.9999999, 1.0000001, -1e-3, 1e-5, -1e-7, 1e-20, 1e-30,
          1e-40, 1e-45, 1e-200, 1e-300, 5e-324, 89.0, 700.0, -745.0, 1e10, -1e20, 1e30, 3e38, 1e200, 1e300,
          _INF, -_INF, _NAN]
_GRID = [complex(a, b) for a in _PARTS for b in _PARTS]
GRID = np.array(_GRID + _GRID[:(-len(_GRID)) % 64])  # 1152 numbers: a multiple of every vector width
PERM = np.random.default_rng(0).permutation(GRID.size)  # pairs every grid point with another one


def _mismatches(ours, theirs, z, rtol, atol):
    """(z, ours, torch) where torch.isclose(equal_nan=True) fails."""
    o, t = to_numpy(ours).reshape(-1), to_numpy(theirs).reshape(-1)
    close = torch.isclose(torch.from_numpy(o), torch.from_numpy(t), rtol=rtol, atol=atol, equal_nan=True).numpy()
    return [(z[i], o[i], t[i]) for i in np.flatnonzero(~close)]


def _compare(fn, dtype, grid=GRID):
    with np.errstate(over="ignore"):  # complex64: parts past 3.4e38 become inf
        z = grid.astype(dtype)
    theirs = fn(torch, torch.from_numpy(z.copy()))
    ours = fn(vt, vt.from_numpy(z.copy()))
    assert repr(ours.dtype) == str(theirs.dtype) and tuple(ours.shape) == tuple(theirs.shape)
    rtol, atol = (1e-5, 1e-5) if dtype == "complex64" else (1e-7, 1e-7)
    points = z if theirs.numel() == z.size else np.arange(theirs.numel())
    bad = _mismatches(ours, theirs, points, rtol, atol)
    assert not bad, f"{len(bad)} of {theirs.numel()} differ (z, ours, torch): {bad[:12]}"


UNARY = [  # one line per op: fn(lib, z)
    ("exp", lambda lib, z: z.exp()),
    ("exp2", lambda lib, z: z.exp2()),
    ("expm1", lambda lib, z: z.expm1()),
    ("log", lambda lib, z: z.log()),
    ("log2", lambda lib, z: z.log2()),
    ("log10", lambda lib, z: z.log10()),
    ("log1p", lambda lib, z: z.log1p()),
    ("sqrt", lambda lib, z: z.sqrt()),
    ("rsqrt", lambda lib, z: z.rsqrt()),
    ("sin", lambda lib, z: z.sin()),
    ("cos", lambda lib, z: z.cos()),
    ("tan", lambda lib, z: z.tan()),
    ("sinh", lambda lib, z: z.sinh()),
    ("cosh", lambda lib, z: z.cosh()),
    ("tanh", lambda lib, z: z.tanh()),
    ("asin", lambda lib, z: z.asin()),
    ("acos", lambda lib, z: z.acos()),
    ("atan", lambda lib, z: z.atan()),
    ("asinh", lambda lib, z: z.asinh()),
    ("acosh", lambda lib, z: z.acosh()),
    ("atanh", lambda lib, z: z.atanh()),
    ("sigmoid", lambda lib, z: z.sigmoid()),
    ("silu", lambda lib, z: lib.nn.functional.silu(z)),
    ("sinc", lambda lib, z: lib.sinc(z)),
    ("reciprocal", lambda lib, z: z.reciprocal()),
    ("abs", lambda lib, z: z.abs()),
    ("angle", lambda lib, z: z.angle()),
    ("sgn", lambda lib, z: z.sgn()),
    ("neg", lambda lib, z: -z),
    ("conj", lambda lib, z: z.conj_physical()),
    ("square", lambda lib, z: z.square()),
    ("pow_2", lambda lib, z: lib.pow(z, 2.0)),
    ("pow_3", lambda lib, z: z ** 3),
    ("pow_-1", lambda lib, z: z ** -1),
    ("pow_-2", lambda lib, z: z ** -2),
    ("pow_0.5", lambda lib, z: z ** 0.5),
    ("pow_-0.5", lambda lib, z: z ** -0.5),
    ("pow_2.5", lambda lib, z: z ** 2.5),
]


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name,fn", UNARY, ids=[u[0] for u in UNARY])
def test_unary_special_values(name, fn, dtype):
    _compare(fn, dtype)


BINARY = [  # the grid against a permutation of itself, a real tensor, numbers
    ("mul", lambda lib, z: z * z[PERM]),
    ("mul_complex_number", lambda lib, z: z * (2 - 3j)),
    ("mul_huge_number", lambda lib, z: z * lib.tensor(1e30 + 1e30j, dtype=z.dtype)),
    ("mul_real_tensor", lambda lib, z: z.imag[PERM] * z),
    ("mul_int_tensor", lambda lib, z: z * lib.arange(z.numel())),
    ("mul_", lambda lib, z: z.clone().mul_(z[PERM])),
    ("div", lambda lib, z: z / z[PERM]),
    ("rdiv", lambda lib, z: 1 / z),
    ("add", lambda lib, z: z + z[PERM]),
]


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_binary_special_values(name, fn, dtype):
    _compare(fn, dtype)


# cumprod multiplies in the acc type (complex128) from 1 + 0i in scalar code. Products past 1e308 are left
# out (parts over 1e100, and runs longer than 4): there torch's fused multiply-adds and NumPy's differ in
# where -inf and NaN land (1e300 * 1e300 parts) and in the rounding of a finite part beside an infinite one.
_SCAN_GRID = np.array([z for z in GRID if not (1e100 < abs(z.real) < _INF or 1e100 < abs(z.imag) < _INF)])
_SCAN_GRID = _SCAN_GRID[:_SCAN_GRID.size // 64 * 64]

SCANS = [
    ("cumprod_rows", lambda lib, z: z.reshape(-1, 4).cumprod(1)),
    ("cumprod_cols", lambda lib, z: z.reshape(4, -1).cumprod(0)),
    ("cumsum", lambda lib, z: z.reshape(-1, 4).cumsum(1)),
]


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("name,fn", SCANS, ids=[s[0] for s in SCANS])
def test_scan_special_values(name, fn, dtype):
    _compare(fn, dtype, _SCAN_GRID)


def test_cumprod_first_element_multiplied_in():
    """torch's cumprod computes 1 * z for the first element: an infinite part makes the other NaN."""
    for dtype in CDTYPES:
        _compare(lambda lib, z: z.cumprod(0), dtype, np.array([complex(0, _INF), 1, 2]))
        _compare(lambda lib, z: z.cumprod(0), dtype, np.array([complex(-_INF, 1.5), 1j]))


# the rewritten kernels on ordinary values: every layout, 0-d and empty, out= and in-place
CHANGED = [
    ("mul", lambda lib, z: (z * z.flip(-1), z * 2.5, z * (1 - 2j))),
    ("square", lambda lib, z: (z.square(), z ** 2, z ** 3, z ** -1)),
    ("reciprocal", lambda lib, z: z.reciprocal()),
    ("sgn", lambda lib, z: z.sgn()),
    ("log2", lambda lib, z: z.log2()),
    ("log1p", lambda lib, z: (z.log1p(), (z * 1e-4).log1p())),
    ("cumprod", lambda lib, z: (z.cumprod(-1), z.cumprod(0) if z.ndim else z.cumprod(0))),
]
SHAPES = [((5, 6), layout) for layout in LAYOUTS] + [((), "contiguous"), ((0, 3), "contiguous")]


@pytest.mark.parametrize("name,fn", CHANGED, ids=[c[0] for c in CHANGED])
def test_changed_kernels_layouts(name, fn):
    for dtype in CDTYPES:
        for shape, layout in SHAPES:
            check(fn, make_pair(shape, dtype, layout, seed=1, low=-2.0, high=2.0))


INPLACE_OUT = [
    ("mul_", lambda lib, z, o: z.clone().mul_(z)),
    ("reciprocal_", lambda lib, z, o: z.clone().reciprocal_()),
    ("sgn_", lambda lib, z, o: z.clone().sgn_()),
    ("log2_", lambda lib, z, o: z.clone().log2_()),
    ("log1p_", lambda lib, z, o: z.clone().log1p_()),
    ("square_out", lambda lib, z, o: lib.square(z, out=o)),
    ("mul_out", lambda lib, z, o: lib.mul(z, z, out=o)),
    ("log1p_out", lambda lib, z, o: lib.log1p(z, out=o)),
    ("log2_out", lambda lib, z, o: lib.log2(z, out=o)),
    ("reciprocal_out", lambda lib, z, o: lib.reciprocal(z, out=o)),
    ("cumprod_out", lambda lib, z, o: lib.cumprod(z, 1, out=o)),
    ("mul_out_real", lambda lib, z, o: lib.mul(z, z, out=o.real.clone())),  # complex into float: refused
]


@pytest.mark.parametrize("name,fn", INPLACE_OUT, ids=[c[0] for c in INPLACE_OUT])
def test_inplace_and_out(name, fn):
    z = make_pair((4, 5), "complex64", seed=2)
    out = (torch.zeros(4, 5, dtype=torch.complex128), vt.zeros(4, 5, dtype=vt.complex128))  # a wider out= dtype
    check(fn, z, out)
