"""Scans (cumsum, cumprod, cummax, cummin, logcumsumexp) and order statistics (sort, argsort, msort,
topk, kthvalue, median, nanmedian, mode) on CUDA against torch's CUDA results, forward and backward
(marker `cuda`).

Where torch leaves the answer unspecified (which of several equal elements an unstable sort, topk,
kthvalue, median or mode points at), the values must equal torch's and every index must point at an
element equal to its value. Half-type sums and products along a dim that is not the last (nor the only
one of more than one element) follow torch's sequential kernel, rounding every partial result: they
must equal torch's bits. Elsewhere they accumulate in float32 and round each output once (torch's tree
and cub scans round partials in orders of their own): compared with torch's float32 result rounded."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import LAYOUTS, assert_same, check, make_pair, to_numpy

pytestmark = pytest.mark.cuda

SHAPE = (6, 40, 33)  # rows of 6 (dim 0), 40 (dim 1) and 33 (dim 2) elements
DIMS = [0, 1, -1]
DTYPES = ["float32", "bfloat16", "float64", "int64", "bool"]
TOL = {"float32": (1e-5, 1e-4), "float64": (1e-7, 1e-7), "bfloat16": (1.6e-2, 1e-2)}


def cuda_pair(shape, dtype, layout="contiguous", seed=0, **kw):
    t, v = make_pair(shape, dtype, layout, seed, **kw)
    return t.cuda(), v.cuda()


def _raises_like_torch(fn, t_args, v_args):
    """True (after checking we raise too) when torch rejects the call."""
    try:
        fn(torch, *t_args)
    except RuntimeError:  # NotImplementedError and IndexError are RuntimeError / LookupError in ours
        with pytest.raises(RuntimeError):
            fn(vt, *v_args)
        return True
    return False


# -- scans -----------------------------------------------------------------------------------------------------

SCANS = [  # (name, fn(lib, a, dim))
    ("cumsum", lambda lib, a, d: a.cumsum(d)),
    ("cumsum_float64", lambda lib, a, d: lib.cumsum(a, d, dtype=lib.float64)),
    ("cumprod", lambda lib, a, d: lib.cumprod(a, d)),
    ("cummax", lambda lib, a, d: lib.cummax(a, d)),
    ("cummin", lambda lib, a, d: lib.cummin(a, d)),
    ("logcumsumexp", lambda lib, a, d: lib.logcumsumexp(a, d)),
]


STEPWISE = ("cumsum", "cumprod")  # the scans torch's outer-dim kernel runs in the half type itself


def _walks_columns(t, d):
    """Does torch's CUDA scan along d take its sequential outer-dim kernel?"""
    return t.ndim > 1 and d % t.ndim != t.ndim - 1 and t.numel() != t.shape[d]


def _expected_scan(fn, t, d, stepwise):
    out = fn(torch, t, d)
    if t.dtype == torch.bfloat16 and isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16 and \
            not stepwise:
        out = fn(torch, t.float(), d).to(torch.bfloat16)  # rounded once, as ours
    return out


def check_scan(fn, t, v, d, dtype, tol=None, name=None):
    if _raises_like_torch(fn, (t, d), (v, d)):
        return
    stepwise = dtype == "bfloat16" and name in STEPWISE and _walks_columns(t, d)
    rtol, atol = (0, 0) if stepwise else tol or TOL.get(dtype, (0, 0))
    assert_same(fn(vt, v, d), _expected_scan(fn, t, d, stepwise), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,fn", SCANS, ids=[c[0] for c in SCANS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_scans(name, fn, dtype):
    """Every layout and dim; NaN/inf/-0.0 in the float inputs; cummax/cummin indices exact (the later
    of equal elements wins, as torch's CUDA kernel)."""
    for layout in LAYOUTS:
        for d in DIMS:
            t, v = cuda_pair(SHAPE, dtype, layout, seed=d + 5, special=True)
            check_scan(fn, t, v, d, dtype, name=name)


LONG_SCANS = [  # (shape, dim, dtype): rows of several chunks; 1_100_000 needs two levels of chunk totals
    ((3, 5000), 1, "float32"), ((5000, 3), 0, "float32"), ((3, 5000), 1, "int64"), ((3, 5000), 1, "bfloat16"),
    ((5000, 3), 0, "bfloat16"),
    ((2, 1_100_000), 1, "int64"), ((1_100_000,), 0, "float64")]


@pytest.mark.parametrize("shape,d,dtype", LONG_SCANS, ids=[f"{s}-{d}-{t}" for s, d, t in LONG_SCANS])
def test_long_scans(shape, d, dtype):
    t, v = cuda_pair(shape, dtype, seed=11, special=dtype == "bfloat16")
    tol = {"float32": (1e-4, 2e-3), "float64": (1e-9, 1e-6)}.get(dtype)
    for name, fn in SCANS:
        if name == "cumprod" and dtype != "int64":  # products of values near 1 stay finite over long rows
            check_scan(fn, t / 1024 + 1, v / 1024 + 1, d, dtype, tol, name)
        else:
            check_scan(fn, t, v, d, dtype, tol, name)


# -- sorting: deterministic results ----------------------------------------------------------------------------

SORTS = [  # (name, fn(lib, a, dim)): a stable sort's values and indices are fully specified
    ("sort_stable", lambda lib, a, d: lib.sort(a, dim=d, stable=True)),
    ("sort_stable_descending", lambda lib, a, d: lib.sort(a, dim=d, descending=True, stable=True)),
    ("argsort_stable", lambda lib, a, d: lib.argsort(a, dim=d, descending=True, stable=True)),
    ("msort", lambda lib, a, d: lib.msort(a.movedim(d, 0))),
]


@pytest.mark.parametrize("name,fn", SORTS, ids=[c[0] for c in SORTS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sorts(name, fn, dtype):
    """Ties (bfloat16, int64, bool) keep their input order; NaN sorts as the greatest value."""
    for layout in LAYOUTS:
        for d in DIMS:
            check(fn, cuda_pair(SHAPE, dtype, layout, seed=d + 7, special=True), d)


LONG_SORTS = [  # (shape, dim, dtype): rows just over one sorting block, and rows of many merge passes
    ((4, 257), 1, "float32"), ((3, 5000), 1, "bfloat16"), ((5000, 3), 0, "int64"), ((100_000,), 0, "float32")]


@pytest.mark.parametrize("shape,d,dtype", LONG_SORTS, ids=[f"{s}-{d}-{t}" for s, d, t in LONG_SORTS])
def test_long_sorts(shape, d, dtype):
    pair = cuda_pair(shape, dtype, seed=13, special=True)
    for _, fn in SORTS[:3]:
        check(fn, pair, d)
    for name, fn, reduces in PICKS:
        if name != "mode":
            check_picked(fn, reduces, *pair, d)


# -- sorting: results torch leaves partly unspecified -----------------------------------------------------------

PICKS = [  # (name, fn(lib, a, dim), reduces the dim)
    ("sort", lambda lib, a, d: lib.sort(a, d), False),
    ("sort_descending", lambda lib, a, d: lib.sort(a, d, True), False),
    ("topk", lambda lib, a, d: lib.topk(a, 5, d), False),
    ("topk_smallest", lambda lib, a, d: lib.topk(a, 3, d, largest=False), False),
    ("kthvalue", lambda lib, a, d: lib.kthvalue(a, 2, d), True),
    ("kthvalue_keepdim", lambda lib, a, d: lib.kthvalue(a, 4, d, keepdim=True), False),
    ("median", lambda lib, a, d: lib.median(a, d), True),
    ("nanmedian_keepdim", lambda lib, a, d: lib.nanmedian(a, d, keepdim=True), False),
    ("mode", lambda lib, a, d: lib.mode(a, d), True),
]


def _np(t):
    a = to_numpy(t)
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


def check_picked(fn, reduces, t, v, d):
    """Values equal torch's; indices have torch's shape and point at elements equal to the values."""
    if _raises_like_torch(fn, (t, d), (v, d)):
        return
    expected, got = fn(torch, t, d), fn(vt, v, d)
    assert_same(got.values, expected.values, rtol=0, atol=0)
    assert_same(got.indices.shape, tuple(expected.indices.shape))
    assert got.indices.dtype == vt.int64
    values, indices = _np(got.values), to_numpy(got.indices)
    if reduces:
        values, indices = np.expand_dims(values, d), np.expand_dims(indices, d)
    np.testing.assert_array_equal(np.take_along_axis(_np(v), indices, axis=d), values)


@pytest.mark.parametrize("name,fn,reduces", PICKS, ids=[c[0] for c in PICKS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_picks(name, fn, reduces, dtype):
    for layout in LAYOUTS:
        for d in DIMS:
            t, v = cuda_pair(SHAPE, dtype, layout, seed=d + 9, special=True)
            if name == "mode":  # a unique mode: two thirds of each row hold one value
                t, v = _planted(t, v, d)
            check_picked(fn, reduces, t, v, d)


# kthvalue among equal elements: torch's CUDA kernel returns the smallest index holding the k-th value
# (measured on an H200 for slices of 5 to 1000 elements), and so do we. bfloat16 values from a few
# integers: ties everywhere.
KTH_TIES = [((5, 5, 5), 2, 1), ((5, 5, 5), 2, -1), ((5, 5, 5), 4, 0), ((6, 32), 7, 1), ((3, 7), 1, 0), ((9,), 5, 0),
            ((4, 300), 100, 1), ((2, 1000), 999, -1)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "int64"])
@pytest.mark.parametrize("shape,k,d", KTH_TIES, ids=[f"{s}-{k}-{d}" for s, k, d in KTH_TIES])
def test_kthvalue_ties(shape, k, d, dtype):
    t, v = cuda_pair(shape, "int64", seed=k + d, low=-2, high=2)
    t, v = t.to(getattr(torch, dtype)), v.to(getattr(vt, dtype))
    check(lambda lib, a: lib.kthvalue(a, k, d), (t, v))
    check(lambda lib, a: lib.kthvalue(a, k, d, keepdim=True), (t, v))


# cumprod's gradient is built from scans (torch's reversed_cumsum(y * grad) / x): along an outer dim in
# bfloat16 both the forward scan and the backward's follow torch's rounding, so the gradient is its bits
CUMPROD_GRADS = [((5, 5, 5), 0), ((5, 5, 5), 1), ((4, 6), 0), ((3, 40, 2), 1)]


@pytest.mark.parametrize("shape,d", CUMPROD_GRADS, ids=[f"{s}-{d}" for s, d in CUMPROD_GRADS])
def test_cumprod_grad_bfloat16_outer_dims(shape, d):
    t, v = cuda_pair(shape, "bfloat16", seed=len(shape) + d, low=0.5, high=1.5)
    gt, gv = cuda_pair(shape, "bfloat16", seed=17)

    def grad(lib, a, g):
        a = a.detach().requires_grad_(True)
        y = lib.cumprod(a, d)
        return (y.detach(),) + lib.autograd.grad(y, a, g)
    assert_same(grad(vt, v, gv), grad(torch, t, gt), rtol=0, atol=0)


def _planted(t, v, d):
    """t, v with the elements at positions p % 3 != 0 along d set to the row's first element, so each
    row along d has one most frequent value (NaN rows excepted: a NaN equals nothing, in both)."""
    def plant(lib, a):
        n = a.shape[d]
        keep = (lib.arange(n, device="cuda") % 3 == 0).reshape([n if i == d % a.ndim else 1 for i in range(a.ndim)])
        first = a.narrow(d, 0, 1)
        first = lib.where(first != first, lib.zeros_like(first), first)  # a NaN row start: plant 0
        return lib.where(keep, a, first)
    return plant(torch, t), plant(vt, v)


def test_whole_median():
    for dtype in ("float32", "bfloat16", "float64", "int64"):
        for layout in LAYOUTS:
            for special in (False, True):
                pair = cuda_pair(SHAPE, dtype, layout, seed=3, special=special)
                check(lambda lib, a: (a.median(), a.nanmedian()), pair)
    check(lambda lib, a: (a.median(), a.nanmedian()), cuda_pair((0, 3), "float32"))
    check(lambda lib, a: (a.median(), a.nanmedian()), cuda_pair((), "float32"))
    check(lambda lib, a: lib.full((3,), float("nan"), device="cuda").nanmedian(), cuda_pair((), "float32"))
    t, v = cuda_pair((4, 9), "float32", seed=4, special=True)

    def nan_row(lib, a):  # row 2 all NaN
        return lib.where(lib.arange(4, device="cuda").reshape(4, 1) == 2, float("nan"), a)
    t, v = nan_row(torch, t), nan_row(vt, v)
    check_picked(lambda lib, a, d: a.median(d), True, t, v, 1)
    check_picked(lambda lib, a, d: a.nanmedian(d), True, t, v, 1)


def test_long_mode():
    t, v = _planted(*cuda_pair((3, 5000), "int64", seed=6), 1)
    check_picked(lambda lib, a, d: lib.mode(a, d), True, t, v, 1)


# -- edges: empty, 0-d, dims, errors, out= -------------------------------------------------------------------

EDGE_OPS = [  # (name, fn(lib, a))
    ("cumsum", lambda lib, a: a.cumsum(-1)),
    ("cumprod", lambda lib, a: a.cumprod(0)),
    ("cummax", lambda lib, a: a.cummax(-1)),
    ("cummin", lambda lib, a: a.cummin(0)),
    ("logcumsumexp", lambda lib, a: a.logcumsumexp(-1)),
    ("sort", lambda lib, a: a.sort(-1, stable=True)),
    ("argsort", lambda lib, a: a.argsort(0, stable=True)),
    ("topk0", lambda lib, a: a.topk(0, -1)),
    ("topk1", lambda lib, a: a.topk(1, 0)),
    ("kthvalue", lambda lib, a: a.kthvalue(1, -1)),
    ("median", lambda lib, a: a.median(-1)),
    ("nanmedian", lambda lib, a: a.nanmedian(0, keepdim=True)),
    ("mode", lambda lib, a: a.mode(-1)),
    ("dim_out_of_range", lambda lib, a: a.cumsum(3)),
    ("sort_dim_out_of_range", lambda lib, a: a.sort(-4)),
    ("topk_k_too_big", lambda lib, a: a.topk(10, 0)),
    ("kthvalue_k_too_big", lambda lib, a: a.kthvalue(10, 0)),
]


@pytest.mark.parametrize("name,fn", EDGE_OPS, ids=[c[0] for c in EDGE_OPS])
def test_edges(name, fn):
    for shape in ((0, 5), (5, 0), (), (1,), (3, 1)):
        if name == "topk0" and shape == ():  # torch leaves its 0-d result unwritten
            continue
        check(fn, cuda_pair(shape, "float32", seed=1))


def test_out_forms():
    """out= tensors laid out transposed (written through a copy), in-place scans, resizing an empty out."""
    pair = cuda_pair((7, 9), "float32", seed=3, special=True)

    def outs(lib, *dtypes):
        return tuple(lib.empty(9, 7, dtype=d, device="cuda").t() for d in dtypes)

    cases = [
        lambda lib, a: lib.cumsum(a, 1, out=outs(lib, lib.float32)[0]),
        lambda lib, a: lib.cumsum(a, 0, out=lib.empty(0, dtype=lib.float64, device="cuda")),
        lambda lib, a: lib.logcumsumexp(a, 0, out=outs(lib, lib.float32)[0]),
        lambda lib, a: lib.cummax(a, 1, out=outs(lib, lib.float32, lib.int64)),
        lambda lib, a: lib.sort(a, 0, stable=True, out=outs(lib, lib.float32, lib.int64)),
        lambda lib, a: lib.topk(a, 2, 1, out=(lib.empty(0, device="cuda"), lib.empty(0, dtype=lib.int64, device="cuda"))).values,
        lambda lib, a: lib.kthvalue(a, 3, 1, out=(lib.empty(7, device="cuda"), lib.empty(7, dtype=lib.int64, device="cuda"))).values,
        lambda lib, a: lib.median(a, 0, out=(lib.empty(9, device="cuda"), lib.empty(9, dtype=lib.int64, device="cuda"))).values,
        lambda lib, a: a.clone().t().cumsum_(0),
        lambda lib, a: a.clone().cumprod_(1),
        lambda lib, a: lib.cumsum(a, 1, out=lib.empty(7, 9, dtype=lib.int64, device="cuda")),  # dtype error
        lambda lib, a: lib.cummax(a, 1, out=outs(lib, lib.float64, lib.int64)),                 # dtype error
    ]
    for fn in cases:
        check(fn, pair)


# -- gradients ---------------------------------------------------------------------------------------------------

GRADS = [  # (name, fn(lib, a)): float inputs without ties
    ("cumsum", lambda lib, a: a.cumsum(1)),
    ("cumsum_dim0", lambda lib, a: a.cumsum(0)),
    ("cumprod", lambda lib, a: a.cumprod(1)),
    ("cummax", lambda lib, a: a.cummax(1).values),
    ("cummin", lambda lib, a: a.cummin(0).values),
    ("logcumsumexp", lambda lib, a: a.logcumsumexp(1)),
    ("sort", lambda lib, a: a.sort(1, descending=True).values),
    ("topk", lambda lib, a: a.topk(3, 0).values),
    ("kthvalue", lambda lib, a: a.kthvalue(2, 1).values),
    ("median_dim", lambda lib, a: a.median(0).values),
    ("nanmedian_dim", lambda lib, a: a.nanmedian(1, keepdim=True).values),
    ("median", lambda lib, a: a.median()),
]


def _grad(lib, fn, a):
    x = a.detach().clone().requires_grad_(True)
    out = fn(lib, x)
    w = lib.tensor(np.random.default_rng(7).uniform(-1, 1, tuple(out.shape)), dtype=out.dtype).cuda()
    return out.detach(), lib.autograd.grad(out, x, w)[0]


@pytest.mark.parametrize("name,fn", GRADS, ids=[g[0] for g in GRADS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients(name, fn, dtype):
    for shape in ((5, 37), (3, 3000)):  # one chunk, and rows of several (reverse scans in backward)
        t, v = cuda_pair(shape, dtype, "transposed", seed=17, low=0.5, high=1.5)
        rtol, atol = {"float32": (1e-4, 1e-3), "float64": (1e-9, 1e-9)}[dtype]
        assert_same(_grad(vt, fn, v), _grad(torch, fn, t), rtol=rtol, atol=atol)


def _numeric_vjp(fn, x, w, eps=1e-6):
    """w . d fn(x) / dx by central differences of our CUDA forward (x a float64 ndarray)."""
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[k] += eps
        lo[k] -= eps
        diff = to_numpy(fn(vt, vt.from_numpy(hi).cuda())) - to_numpy(fn(vt, vt.from_numpy(lo).cuda()))
        g[k] = np.sum(diff * w) / (2 * eps)
    return g


@pytest.mark.parametrize("name,fn", GRADS[:8], ids=[g[0] for g in GRADS[:8]])
def test_gradcheck(name, fn):
    """Our CUDA backward against central differences of our CUDA forward, in float64."""
    x = make_pair((3, 6), "float64", seed=19, low=0.5, high=1.5)[0].numpy()
    v = vt.from_numpy(x.copy()).cuda().requires_grad_(True)
    out = fn(vt, v)
    for seed in (0, 1):
        w = np.random.default_rng(seed).uniform(-1, 1, tuple(out.shape))
        analytic = to_numpy(vt.autograd.grad(out, v, vt.from_numpy(w).cuda(), retain_graph=True)[0])
        np.testing.assert_allclose(analytic, _numeric_vjp(fn, x, w), rtol=1e-6, atol=1e-7)


# -- capture ---------------------------------------------------------------------------------------------------

def test_capturable():
    """No host sync and no allocation outside the pool: the ops capture into a CUDA graph, and a
    replay on new input data gives the eager results."""
    x = cuda_pair((3, 3000), "float32", seed=21)[1]

    def step(a):
        return (a.cumsum(1), a.cummax(0).indices, a.logcumsumexp(1), a.sort(1).values, a.topk(4, 1).indices,
                a.median(1).values, a.kthvalue(7, 1).values, a.mode(0).values)

    step(x)
    vt.cuda.synchronize()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g):
        outs = step(x)
    x.copy_(cuda_pair((3, 3000), "float32", seed=22)[1])
    g.replay()
    for got, expected in zip(outs, step(x)):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))
