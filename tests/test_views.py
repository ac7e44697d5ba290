"""View ops against torch: values, shape, strides, storage offset, view-or-copy, and aliasing (a write
through a view shows in its base and back, and both see the version counter move). One table line
per op, run over memory layouts; errors must match torch's type and message and change nothing.
A Hypothesis test applies random chains of view ops to both libraries."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy

LAYOUTS = ["contiguous", "transposed", "strided", "expanded"]


# (name, fn(lib, x), input shape, dtype); x is laid out in each of LAYOUTS
VIEWS = [
    ("view -1", lambda lib, x: x.view(-1), (2, 3, 4), "float32"),
    ("view varargs", lambda lib, x: x.view(3, -1, 2), (2, 3, 4), "float32"),
    ("view tuple", lambda lib, x: x.view((4, 6)), (2, 3, 4), "float32"),
    ("view list", lambda lib, x: x.view([2, 12]), (2, 3, 4), "float32"),
    ("view split last", lambda lib, x: x.view(2, 3, 2, 2), (2, 3, 4), "float32"),
    ("view add ones", lambda lib, x: x.view(1, 2, 1, 3, 4, 1), (2, 3, 4), "float32"),
    ("view 0-d", lambda lib, x: x.view(1, 1), (), "float32"),
    ("view empty", lambda lib, x: x.view(3, 0), (0, 3), "float32"),
    ("view empty -1", lambda lib, x: x.view(-1, 0), (0, 3), "float32"),
    ("view_as", lambda lib, x: x.view_as(lib.zeros(4, 6)), (2, 3, 4), "float32"),
    ("view dtype same size", lambda lib, x: x.view(lib.int32), (2, 3, 4), "float32"),
    ("view dtype smaller", lambda lib, x: x.view(lib.float16), (2, 3, 4), "float32"),
    ("view dtype bytes", lambda lib, x: x.view(lib.uint8), (2, 3), "int64"),
    ("view dtype larger", lambda lib, x: x.view(lib.float64), (2, 3, 4), "float32"),
    ("view dtype complex", lambda lib, x: x.view(lib.complex64), (2, 3, 4), "float32"),
    ("view dtype kw", lambda lib, x: x.view(dtype=lib.int16), (2, 4), "float16"),
    ("view dtype 0-d same", lambda lib, x: x.view(lib.int32), (), "float32"),
    ("reshape", lambda lib, x: x.reshape(-1), (2, 3, 4), "float32"),
    ("reshape tuple", lambda lib, x: x.reshape((4, 6)), (2, 3, 4), "float32"),
    ("reshape fn", lambda lib, x: lib.reshape(x, (3, 8)), (2, 3, 4), "float32"),
    ("reshape view-able", lambda lib, x: x.reshape(2, 3, 2, 2), (2, 3, 4), "float32"),
    ("reshape_as", lambda lib, x: x.reshape_as(lib.zeros(6, 4)), (2, 3, 4), "float32"),
    ("reshape 0-d", lambda lib, x: x.reshape(()), (1,), "float32"),
    ("permute", lambda lib, x: x.permute(2, 0, 1), (2, 3, 4), "float32"),
    ("permute tuple", lambda lib, x: x.permute((1, 2, 0)), (2, 3, 4), "float32"),
    ("permute neg", lambda lib, x: lib.permute(x, (-1, 0, -2)), (2, 3, 4), "float32"),
    ("transpose", lambda lib, x: x.transpose(0, 2), (2, 3, 4), "float32"),
    ("transpose same", lambda lib, x: x.transpose(1, 1), (2, 3, 4), "float32"),
    ("transpose 0-d", lambda lib, x: x.transpose(0, -1), (), "float32"),
    ("swapaxes", lambda lib, x: lib.swapaxes(x, 0, 1), (2, 3, 4), "float32"),
    ("swapdims", lambda lib, x: x.swapdims(-1, 0), (2, 3, 4), "float32"),
    ("t", lambda lib, x: x.t(), (3, 4), "float32"),
    ("t 1-d", lambda lib, x: lib.t(x), (4,), "float32"),
    ("T 2-d", lambda lib, x: x.T, (3, 4), "float32"),
    ("T 3-d", lambda lib, x: x.T, (2, 3, 4), "float32"),
    ("mT", lambda lib, x: x.mT, (2, 3, 4), "float32"),
    ("H real", lambda lib, x: x.H, (3, 4), "float32"),
    ("mH real", lambda lib, x: x.mH, (2, 3, 4), "float32"),
    ("adjoint real", lambda lib, x: x.adjoint(), (2, 3, 4), "float32"),
    ("expand", lambda lib, x: x[:, :1].expand(3, 5), (3, 4), "float32"),
    ("expand -1", lambda lib, x: x[:, :1].expand(-1, 5), (3, 4), "float32"),
    ("expand leading", lambda lib, x: x.expand(2, 3, 4), (3, 4), "float32"),
    ("expand leading one", lambda lib, x: x.expand(1, 3, 4), (3, 4), "float32"),
    ("expand 0-d", lambda lib, x: x.expand(2, 3), (), "float32"),
    ("expand to zero", lambda lib, x: x[:1].expand(0, 4), (3, 4), "float32"),
    ("expand tuple", lambda lib, x: x.expand((2, 3, 4)), (3, 4), "float32"),
    ("expand_as", lambda lib, x: x[:, :1].expand_as(lib.zeros(2, 3, 4)), (3, 4), "float32"),
    ("broadcast_to", lambda lib, x: lib.broadcast_to(x, (2, 3, 4)), (3, 4), "float32"),
    ("broadcast_tensors", lambda lib, x: lib.broadcast_tensors(x, x[:1, :, None, None][0]), (3, 4), "float32"),
    ("squeeze all", lambda lib, x: x[:, :1, None].squeeze(), (3, 4), "float32"),
    ("squeeze dim", lambda lib, x: x[:, :1].squeeze(1), (3, 4), "float32"),
    ("squeeze non-1 dim", lambda lib, x: x.squeeze(0), (3, 4), "float32"),
    ("squeeze tuple", lambda lib, x: lib.squeeze(x[None, :, :1], (0, 2)), (3, 4), "float32"),
    ("squeeze 0-d", lambda lib, x: x.squeeze(0), (), "float32"),
    ("unsqueeze", lambda lib, x: x.unsqueeze(1), (3, 4), "float32"),
    ("unsqueeze last", lambda lib, x: lib.unsqueeze(x, -1), (3, 4), "float32"),
    ("unsqueeze 0-d", lambda lib, x: x.unsqueeze(0), (), "float32"),
    ("flatten", lambda lib, x: x.flatten(), (2, 3, 4), "float32"),
    ("flatten from 1", lambda lib, x: lib.flatten(x, 1), (2, 3, 4), "float32"),
    ("flatten 0..1", lambda lib, x: x.flatten(0, 1), (2, 3, 4), "float32"),
    ("flatten 0-d", lambda lib, x: x.flatten(), (), "float32"),
    ("unflatten", lambda lib, x: x.unflatten(2, (2, 2)), (2, 3, 4), "float32"),
    ("unflatten -1", lambda lib, x: lib.unflatten(x, -1, (-1, 2)), (2, 3, 4), "float32"),
    ("narrow", lambda lib, x: x.narrow(1, 1, 2), (2, 3, 4), "float32"),
    ("narrow neg start", lambda lib, x: lib.narrow(x, -1, -3, 2), (2, 3, 4), "float32"),
    ("narrow tensor start", lambda lib, x: x.narrow(2, lib.tensor(1), 2), (2, 3, 4), "float32"),
    ("select", lambda lib, x: x.select(1, 2), (2, 3, 4), "float32"),
    ("select neg", lambda lib, x: lib.select(x, -1, -1), (2, 3, 4), "float32"),
    ("as_strided", lambda lib, x: x.as_strided((2, 2), (1, 2)), (2, 3, 4), "float32"),
    ("as_strided offset", lambda lib, x: lib.as_strided(x, (3,), (2,), 1), (2, 3, 4), "float32"),
    ("as_strided of view", lambda lib, x: x[1].as_strided((2,), (1,)), (2, 3, 4), "float32"),
    ("unfold", lambda lib, x: x.unfold(2, 2, 1), (2, 3, 4), "float32"),
    ("unfold step", lambda lib, x: x.unfold(1, 2, 2), (2, 3, 4), "float32"),
    ("unfold size 0", lambda lib, x: x.unfold(0, 0, 1), (2, 3), "float32"),
    ("unfold 0-d", lambda lib, x: x.unfold(0, 1, 1), (), "float32"),
    ("split", lambda lib, x: x.split(2, 2), (2, 3, 4), "float32"),
    ("split uneven", lambda lib, x: lib.split(x, 2, dim=1), (2, 3, 4), "float32"),
    ("split list", lambda lib, x: lib.split(x, [1, 3], dim=-1), (2, 3, 4), "float32"),
    ("split big", lambda lib, x: x.split(10), (2, 3, 4), "float32"),
    ("split empty dim", lambda lib, x: x.split(2), (0, 3), "float32"),
    ("split zero on empty", lambda lib, x: x.split(0), (0, 3), "float32"),
    ("split_with_sizes", lambda lib, x: x.split_with_sizes([2, 0, 1], 1), (2, 3, 4), "float32"),
    ("chunk", lambda lib, x: x.chunk(3, 2), (2, 3, 4), "float32"),
    ("chunk more than size", lambda lib, x: lib.chunk(x, 5, -1), (2, 3, 4), "float32"),
    ("chunk empty", lambda lib, x: x.chunk(2), (0, 3), "float32"),
    ("tensor_split sections", lambda lib, x: x.tensor_split(3, 2), (2, 3, 4), "float32"),
    ("tensor_split indices", lambda lib, x: lib.tensor_split(x, [1, 3, 10], dim=2), (2, 3, 4), "float32"),
    ("tensor_split reversed", lambda lib, x: x.tensor_split([3, 1], 2), (2, 3, 4), "float32"),
    ("tensor_split tensor", lambda lib, x: x.tensor_split(lib.tensor([1, 2]), 2), (2, 3, 4), "float32"),
    ("tensor_split 0-d tensor", lambda lib, x: x.tensor_split(lib.tensor(2), 1), (2, 3, 4), "float32"),
    ("unbind", lambda lib, x: x.unbind(1), (2, 3, 4), "float32"),
    ("unbind fn", lambda lib, x: lib.unbind(x), (2, 3, 4), "float32"),
    ("diagonal", lambda lib, x: x.diagonal(), (3, 4), "float32"),
    ("diagonal offset", lambda lib, x: x.diagonal(1, 1, 2), (2, 3, 4), "float32"),
    ("diagonal neg offset", lambda lib, x: lib.diagonal(x, -1, 1, 2), (2, 3, 4), "float32"),
    ("diagonal off the end", lambda lib, x: x.diagonal(10, 1, 2), (2, 3, 4), "float32"),
    ("diagonal reversed dims", lambda lib, x: lib.diagonal(x, offset=1, dim1=-1, dim2=0), (2, 3, 4), "float32"),
    ("movedim", lambda lib, x: x.movedim(0, 2), (2, 3, 4), "float32"),
    ("movedim tuple", lambda lib, x: lib.movedim(x, (0, 1), (2, 0)), (2, 3, 4), "float32"),
    ("moveaxis", lambda lib, x: lib.moveaxis(x, -1, 0), (2, 3, 4), "float32"),
    ("real of complex", lambda lib, x: x.real, (2, 3), "complex64"),
    ("imag of complex", lambda lib, x: x.imag, (2, 3), "complex64"),
    ("real of real", lambda lib, x: lib.real(x), (2, 3), "float32"),
    ("view_as_real", lambda lib, x: lib.view_as_real(x), (2, 3), "complex128"),
    ("view_as_real 0-d", lambda lib, x: lib.view_as_real(x), (), "complex64"),
    ("view_as_complex", lambda lib, x: lib.view_as_complex(x[..., :2]), (3, 4), "float32"),
    ("view_as_complex f64", lambda lib, x: lib.view_as_complex(x), (3, 2), "float64"),
    ("atleast_1d", lambda lib, x: lib.atleast_1d(x), (), "float32"),
    ("atleast_2d", lambda lib, x: lib.atleast_2d(x, x[0]), (3,), "float32"),
    ("atleast_3d", lambda lib, x: lib.atleast_3d([x, x[0], x[0, 0]]), (2, 3), "float32"),
    ("ellipsis alias", lambda lib, x: x[...], (2, 3), "int64"),
    # errors: the input must stay unchanged
    ("view incompatible", lambda lib, x: x.t().view(-1), (3, 4), "float32"),
    ("view -1 twice", lambda lib, x: x.view(-1, -1), (2, 3, 4), "float32"),
    ("view numel", lambda lib, x: x.view(5, 5), (2, 3, 4), "float32"),
    ("view negative", lambda lib, x: x.view(-2, 12), (2, 3, 4), "float32"),
    ("view float size", lambda lib, x: x.view(2.0, 12), (2, 3, 4), "float32"),
    ("view ambiguous", lambda lib, x: x.view(-1, 0), (2, 0), "float32"),
    ("view dtype odd size", lambda lib, x: x[..., :3].view(lib.float64), (2, 3, 4), "float32"),
    ("view dtype stride", lambda lib, x: x.t().view(lib.float16), (3, 4), "float32"),
    ("view dtype offset", lambda lib, x: x[..., 1:3].view(lib.float64), (2, 3, 4), "float32"),
    ("view dtype 0-d", lambda lib, x: x.view(lib.float64), (), "float32"),
    ("reshape numel", lambda lib, x: x.reshape(7), (2, 3, 4), "float32"),
    ("permute length", lambda lib, x: x.permute(0, 1), (2, 3, 4), "float32"),
    ("permute duplicate", lambda lib, x: x.permute(0, 1, 1), (2, 3, 4), "float32"),
    ("permute out of range", lambda lib, x: x.permute(0, 1, 3), (2, 3, 4), "float32"),
    ("transpose out of range", lambda lib, x: x.transpose(0, 3), (2, 3, 4), "float32"),
    ("t 3-d", lambda lib, x: x.t(), (2, 3, 4), "float32"),
    ("mT 1-d", lambda lib, x: x.mT, (4,), "float32"),
    ("mH 1-d", lambda lib, x: x.mH, (4,), "float32"),
    ("H 3-d", lambda lib, x: x.H, (2, 3, 4), "float32"),
    ("H 1-d", lambda lib, x: x.H, (4,), "float32"),
    ("adjoint 1-d", lambda lib, x: x.adjoint(), (4,), "float32"),
    ("expand fewer dims", lambda lib, x: x.expand(4), (3, 4), "float32"),
    ("expand mismatch", lambda lib, x: x.expand(3, 5), (3, 4), "float32"),
    ("expand -1 leading", lambda lib, x: x.expand(-1, 3, 4), (3, 4), "float32"),
    ("squeeze out of range", lambda lib, x: x.squeeze(2), (3, 4), "float32"),
    ("unsqueeze out of range", lambda lib, x: x.unsqueeze(3), (3, 4), "float32"),
    ("flatten reversed", lambda lib, x: x.flatten(2, 1), (2, 3, 4), "float32"),
    ("unflatten product", lambda lib, x: x.unflatten(2, (3, 2)), (2, 3, 4), "float32"),
    ("unflatten empty", lambda lib, x: x.unflatten(2, ()), (2, 3, 4), "float32"),
    ("narrow too long", lambda lib, x: x.narrow(2, 1, 5), (2, 3, 4), "float32"),
    ("narrow start", lambda lib, x: x.narrow(2, 5, 0), (2, 3, 4), "float32"),
    ("narrow negative length", lambda lib, x: x.narrow(2, 0, -1), (2, 3, 4), "float32"),
    ("narrow 0-d", lambda lib, x: x.narrow(0, 0, 1), (), "float32"),
    ("select out of range", lambda lib, x: x.select(1, 3), (2, 3, 4), "float32"),
    ("select 0-d", lambda lib, x: x.select(0, 0), (), "float32"),
    ("as_strided outside storage", lambda lib, x: x.as_strided((5, 5), (5, 1)), (2, 3, 4), "float32"),
    ("as_strided negative stride", lambda lib, x: x.as_strided((2,), (-1,)), (2, 3, 4), "float32"),
    ("as_strided negative offset", lambda lib, x: x.as_strided((2,), (1,), -1), (2, 3, 4), "float32"),
    ("as_strided lengths", lambda lib, x: x.as_strided((2, 2), (1,)), (2, 3, 4), "float32"),
    ("unfold too big", lambda lib, x: x.unfold(2, 5, 1), (2, 3, 4), "float32"),
    ("unfold step 0", lambda lib, x: x.unfold(2, 2, 0), (2, 3, 4), "float32"),
    ("unfold negative size", lambda lib, x: x.unfold(2, -1, 1), (2, 3, 4), "float32"),
    ("split zero", lambda lib, x: x.split(0, 2), (2, 3, 4), "float32"),
    ("split negative", lambda lib, x: x.split(-1, 2), (2, 3, 4), "float32"),
    ("split sizes sum", lambda lib, x: x.split([1, 2], -1), (2, 3, 4), "float32"),
    ("split sizes negative", lambda lib, x: x.split_with_sizes([5, -1], 2), (2, 3, 4), "float32"),
    ("chunk 0", lambda lib, x: x.chunk(0), (2, 3, 4), "float32"),
    ("chunk 0-d", lambda lib, x: x.chunk(2), (), "float32"),
    ("tensor_split 0 sections", lambda lib, x: x.tensor_split(0), (2, 3, 4), "float32"),
    ("tensor_split 0-d", lambda lib, x: x.tensor_split(2), (), "float32"),
    ("unbind 0-d", lambda lib, x: x.unbind(), (), "float32"),
    ("diagonal same dims", lambda lib, x: x.diagonal(0, 1, 1), (2, 3, 4), "float32"),
    ("movedim counts", lambda lib, x: x.movedim((0, 1), (2,)), (2, 3, 4), "float32"),
    ("movedim repeated source", lambda lib, x: x.movedim((0, 0), (1, 2)), (2, 3, 4), "float32"),
    ("movedim repeated destination", lambda lib, x: x.movedim((0, 1), (2, 2)), (2, 3, 4), "float32"),
    ("imag of real", lambda lib, x: x.imag, (2, 3), "float32"),
    ("view_as_real of real", lambda lib, x: lib.view_as_real(x), (2, 3), "float32"),
    ("view_as_complex last size", lambda lib, x: lib.view_as_complex(x[..., :3]), (3, 4), "float32"),
    ("view_as_complex offset", lambda lib, x: lib.view_as_complex(x[..., 1:3]), (3, 4), "float32"),
    ("view_as_complex int", lambda lib, x: lib.view_as_complex(x), (3, 2), "int64"),
    ("view_as_complex 0-d", lambda lib, x: lib.view_as_complex(x), (), "float32"),
]


def _pair(shape, dtype, layout, seed):
    """make_pair, except empty inputs: torch.from_numpy gives those strides (0, ...), so build them
    with zeros() in both libraries."""
    if 0 in shape:
        return torch.zeros(shape, dtype=getattr(torch, dtype)), vt.zeros(shape, dtype=getattr(vt, dtype))
    return make_pair(shape, dtype, layout, seed=seed, special=False)


def _quiet(fn, lib, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(lib, x)


def _shares(a, b, lib):
    if lib is torch:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    return a.untyped_storage() is b.untyped_storage()


def _internal_overlap(t):
    return any(s == 0 and n > 1 for n, s in zip(t.shape, t.stride()))


def _flat(r):
    return list(r) if isinstance(r, (tuple, list)) else [r]


def _same_views(got, expected, v, t):
    """Geometry, values, and whether the result aliases the input, equal to torch's."""
    assert type(got) is type(expected) if isinstance(expected, (tuple, list)) else True
    for g, e in zip(_flat(got), _flat(expected), strict=True):
        assert_same(g, e, check_stride=True)
        assert g.storage_offset() == e.storage_offset(), f"offset {g.storage_offset()} != {e.storage_offset()}"
        assert _shares(g, v, vt) == _shares(e, t, torch), "view-or-copy differs from torch"
        assert (g is v) == (e is t), "torch returns the input itself (or not)"


def run_both(fn, t, v):
    """fn on both; same result geometry, or the same exception (torch's message) with v untouched."""
    before, version = to_numpy(v), v._version.value
    try:
        expected = _quiet(fn, torch, t)
    except Exception as e:
        kind = RuntimeError if type(e).__module__.startswith("torch") else type(e)
        with pytest.raises(kind) as ours:
            _quiet(fn, vt, v)
        assert str(e).split("\n")[0] in str(ours.value), f"torch: {e}\nours: {ours.value}"
        assert np.array_equal(to_numpy(v), before, equal_nan=True) and v._version.value == version
        return None
    got = _quiet(fn, vt, v)
    _same_views(got, expected, v, t)
    return got, expected


def check_aliasing(t, v, rt, rv):
    """Write through each view: the base changes as torch's does; write the base: views follow.
    Version counters move together."""
    for et, ev in zip(_flat(rt), _flat(rv)):
        if et.numel() == 0 or _internal_overlap(et):
            continue
        t0, v0, et0, ev0 = t._version, v._version.value, et._version, ev._version.value
        et[...] = 7
        ev[...] = 7
        assert_same(v, t)
        assert v._version.value - v0 == t._version - t0 and ev._version.value - ev0 == et._version - et0
    if not _internal_overlap(t) and t.numel():
        pattern = np.asarray(np.arange(t.numel()).reshape(t.shape) % 5)
        t.copy_(torch.from_numpy(pattern))
        v.copy_(vt.from_numpy(pattern))
        for et, ev in zip(_flat(rt), _flat(rv)):
            assert_same(ev, et)


@pytest.mark.parametrize("name,fn,shape,dtype", VIEWS, ids=[v[0] for v in VIEWS])
def test_view(name, fn, shape, dtype):
    for layout in LAYOUTS:
        t, v = _pair(shape, dtype, layout, seed=1)
        both = run_both(fn, t, v)
        if both is not None:
            check_aliasing(t, v, both[1], both[0])


def test_version_counter_shared():
    t, v = make_pair((3, 4), "float32", seed=2)
    for lib, x in ((torch, t), (vt, v)):
        y = x.view(12)[2:]
        y[0] = 5.0
        x[1] = 2.0
        z = x.view(lib.int32)
        z[0, 0] = 3
    assert_same(v, t)
    assert v._version.value == t._version == v.view(-1)._version.value == 3


def test_real_imag_setters():
    for dtype in ("complex64", "float32"):
        t, v = make_pair((2, 3), dtype, "transposed", seed=5)
        for fn in (lambda lib, x: setattr(x, "real", lib.ones(2, 3)), lambda lib, x: setattr(x, "imag", lib.ones(3))):
            run_both(lambda lib, x: (fn(lib, x), x)[1], t, v)
        assert_same(v, t)
        assert v._version.value == t._version


INPLACE = [
    ("t_", lambda lib, x: x.t_(), (3, 4)),
    ("transpose_", lambda lib, x: x.transpose_(0, 2), (2, 3, 4)),
    ("swapdims_", lambda lib, x: x.swapdims_(0, 1), (2, 3, 4)),
    ("squeeze_", lambda lib, x: x.squeeze_(), (1, 3, 1)),
    ("squeeze_ dim", lambda lib, x: x.squeeze_(2), (1, 3, 1)),
    ("unsqueeze_", lambda lib, x: x.unsqueeze_(1), (3, 4)),
    ("as_strided_", lambda lib, x: x.as_strided_((2, 2), (1, 3), 1), (3, 4)),
    ("unsqueeze_ bad dim", lambda lib, x: x.unsqueeze_(5), (3, 4)),
]


@pytest.mark.parametrize("name,fn,shape", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_geometry(name, fn, shape):
    for layout in ("contiguous", "transposed", "strided"):
        t, v = make_pair(shape, "float32", layout, seed=3)
        t0, v0 = t._version, v._version.value
        both = run_both(fn, t, v)
        if both is not None:
            assert both[0] is v and both[1] is t
            assert v._version.value - v0 == t._version - t0


# -- random chains of view ops ---------------------------------------------------------------------------------------

def _perm(r, n):
    dims = list(range(n))
    out = []
    for k in r[:n] + [0] * max(0, n - len(r)):
        out.append(dims.pop(k % len(dims)))
    return out


def _view_shape(shape, r):
    n = len(shape)
    choice = r[0] % 4
    if choice == 0 or n == 0:
        return (-1,)
    d = r[1] % n
    if choice == 1:  # split dim d
        size = shape[d]
        divisors = [k for k in range(1, size + 1) if size % k == 0] or [1]
        k = divisors[r[2] % len(divisors)]
        return shape[:d] + (k, size // k if k else 0) + shape[d + 1:]
    if choice == 2 and n >= 2:  # merge dims d, d+1
        d = min(d, n - 2)
        return shape[:d] + (shape[d] * shape[d + 1],) + shape[d + 2:]
    return (1,) + shape


def _op(name):
    """fn(lib, x, r): one view op with arguments derived from x's shape and random ints r."""
    def apply(lib, x, r):
        shape, n = tuple(x.shape), x.ndim
        d = r[0] % n if n else 0
        if name == "permute":
            return x.permute(*_perm(r, n))
        if name == "transpose":
            return x.transpose(d, r[1] % n if n else 0)
        if name == "view":
            return x.view(_view_shape(shape, r))
        if name == "reshape":
            return x.reshape(_view_shape(shape, r[1:] + r[:1]))
        if name == "expand":
            sizes = [(r[1 + i % 3] % 3) + 1 if s == 1 else s for i, s in enumerate(shape)]
            return x.expand(*([r[3] % 3 + 1] if r[2] % 2 else []), *sizes)
        if name == "squeeze":
            return x.squeeze() if r[1] % 2 else x.squeeze(d)
        if name == "unsqueeze":
            return x.unsqueeze(r[0] % (n + 1))
        if name == "narrow" and n:
            start = r[1] % (shape[d] + 1)
            return x.narrow(d, start, r[2] % (shape[d] - start + 1))
        if name == "select" and n and shape[d]:
            return x.select(d, r[1] % (2 * shape[d]) - shape[d])
        if name == "slice" and n:
            return x[(slice(None),) * d + (slice(r[1] % 5 - 2, r[2] % 6 - 1, r[3] % 3 + 1),)]
        if name == "flatten":
            e = r[1] % n if n else 0
            return x.flatten(min(d, e), max(d, e))
        if name == "unfold" and n:
            return x.unfold(d, r[1] % (shape[d] + 1), r[2] % 3 + 1)
        if name == "diagonal" and n >= 2:
            return x.diagonal(r[1] % 5 - 2, d, (d + 1 + r[2] % (n - 1)) % n)
        if name == "movedim" and n:
            return x.movedim(d, r[1] % n)
        if name == "as_strided":
            limit = x.untyped_storage().nbytes() // x.element_size() if lib is torch else \
                x.untyped_storage().nbytes // x.element_size()
            size = tuple(r[i] % 3 + 1 for i in range(r[0] % 3))
            stride = tuple(r[3 - i] % 4 for i in range(len(size)))
            extent = sum((a - 1) * b for a, b in zip(size, stride)) + 1
            return x.as_strided(size, stride, r[3] % max(limit - extent + 1, 1)) if extent <= limit else x
        return x
    return apply


CHAIN_OPS = ["permute", "transpose", "view", "reshape", "expand", "squeeze", "unsqueeze", "narrow", "select",
             "slice", "flatten", "unfold", "diagonal", "movedim", "as_strided"]


@settings(max_examples=150, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=4),
       layout=st.sampled_from(LAYOUTS),
       chain=st.lists(st.tuples(st.sampled_from(CHAIN_OPS), st.lists(st.integers(0, 99), min_size=4, max_size=4)),
                      min_size=1, max_size=6))
def test_random_view_chains(shape, layout, chain):
    t, v = _pair(tuple(shape), "float32", layout, seed=4)
    base_t, base_v = t, v
    for name, r in chain:
        both = run_both(lambda lib, x: _op(name)(lib, x, r), t, v)
        if both is None:
            return
        v, t = both
    check_aliasing(base_t, base_v, t, v)
