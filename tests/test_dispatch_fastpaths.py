"""The host fast paths of the dispatcher and the view ops give what the general paths give.

Cached view geometries (view, reshape, expand, transpose), composites calling their primitives
without a full dispatch (Op.kernel_on / call_on), redispatch's short device scan, and the
contiguous shortcut of view_strides: each compared with torch or with the general path it skips.
"""
import random

import pytest
import torch

import vibetensor.torch as vt
from oracle import check, make_pair
from vibetensor.dispatch import DispatchKey, dispatcher
from vibetensor.ops import views
from vibetensor.tensor import shape as sh
from vibetensor.tensor.device import device
from vibetensor.tensor.tensor import Storage, make_tensor

# (name, input shape, layout, fn): each runs twice in a row, so the second call takes the cached geometry
CASES = [
    ("view", (4, 6), "contiguous", lambda lib, x: x.view(2, 12)),
    ("view -1", (4, 6), "contiguous", lambda lib, x: x.view(-1, 3)),
    ("view 0-d", (), "contiguous", lambda lib, x: x.view(1, 1)),
    ("view empty", (0, 3), "contiguous", lambda lib, x: x.view(3, 0)),
    ("view transposed", (4, 6), "transposed", lambda lib, x: x.view(6, 2, 2)),
    ("view not viewable", (4, 6), "transposed", lambda lib, x: x.view(24)),
    ("view bad size", (4, 6), "contiguous", lambda lib, x: x.view(5, 5)),
    ("view two -1", (4, 6), "contiguous", lambda lib, x: x.view(-1, -1)),
    ("reshape view", (4, 6), "contiguous", lambda lib, x: x.reshape(3, -1)),
    ("reshape copy", (4, 6), "transposed", lambda lib, x: x.reshape(24)),
    ("reshape strided", (4, 6), "strided", lambda lib, x: x.reshape(2, 2, 6)),
    ("reshape bad", (4, 6), "contiguous", lambda lib, x: x.reshape(7, -1)),
    ("flatten", (2, 3, 4), "transposed", lambda lib, x: x.flatten(1)),
    ("unflatten", (2, 12), "contiguous", lambda lib, x: x.unflatten(1, (3, 4))),
    ("expand", (3, 1), "contiguous", lambda lib, x: x.expand(2, 3, 4)),
    ("expand -1", (3, 1), "contiguous", lambda lib, x: x.expand(-1, 5)),
    ("expand bad", (3, 2), "contiguous", lambda lib, x: x.expand(3, 4)),
    ("expand too few", (3, 2), "contiguous", lambda lib, x: x.expand(2)),
    ("transpose", (2, 3, 4), "contiguous", lambda lib, x: x.transpose(0, 2)),
    ("transpose negative", (2, 3, 4), "strided", lambda lib, x: x.transpose(-2, -1)),
    ("transpose 0-d", (), "contiguous", lambda lib, x: x.transpose(0, -1)),
    ("transpose bad dim", (2, 3), "contiguous", lambda lib, x: x.transpose(0, 2)),
    ("narrow", (5, 4), "contiguous", lambda lib, x: x.narrow(0, 1, 3)),
    ("split", (5, 4), "transposed", lambda lib, x: x.split(2, 1)),
    ("split sizes", (5, 4), "contiguous", lambda lib, x: x.split([1, 4])),
    ("unbind", (3, 2), "contiguous", lambda lib, x: x.unbind(1)),
    ("movedim", (2, 3, 4), "contiguous", lambda lib, x: x.movedim(0, -1)),
    ("permute", (2, 3, 4), "contiguous", lambda lib, x: x.permute(2, 0, 1)),
]


@pytest.mark.parametrize("name, shape, layout, fn", CASES, ids=[c[0] for c in CASES])
def test_views_repeat_like_torch(name, shape, layout, fn):
    pair = make_pair(shape, "float32", layout)
    for _ in range(2):
        check(fn, pair, check_stride=True)


@pytest.mark.parametrize("name, shape, layout, fn", CASES, ids=[c[0] for c in CASES])
def test_views_repeat_like_torch_with_grad(name, shape, layout, fn):
    """Through autograd: the same results, and gradients, as torch."""
    for _ in range(2):
        (tx, x) = make_pair(shape, "float32", layout)
        tx, x = tx.detach().requires_grad_(), x.detach().requires_grad_()
        try:
            expected = fn(torch, tx)
        except Exception as e:
            with pytest.raises(type(e)):
                fn(vt, x)
            continue
        got = fn(vt, x)
        expected, got = (expected, got) if isinstance(got, tuple) else ((expected,), (got,))
        for e, g in zip(expected, got):
            assert g.shape == e.shape and g.stride() == e.stride()
            assert (g.grad_fn is None) == (e.grad_fn is None)
        sum(e.sum() for e in expected).backward()
        sum(g.sum() for g in got).backward()
        assert x.grad.tolist() == tx.grad.tolist()


def test_reshape_view_shares_base_and_version():
    x = vt.zeros(4, 6)
    for _ in range(2):
        r = x.reshape(6, 4)
        assert r._base is x and r._version is x._version
        with vt.no_grad():
            r2 = x.reshape(3, 8)
        assert r2._base is x
    c = x.t().reshape(24)  # a copy: a fresh tensor, not a view
    assert c._base is None and c._version is not x._version


def test_wrapper_keys_see_the_primitives_of_composites():
    """With a wrapper key on (the profiler's boxed fallback here), composites call their primitives
    through the dispatcher, so the wrapper sees each as before the fast paths."""
    seen = []

    def fallback(op, args, kwargs):
        seen.append(op.name)
        return op.redispatch(None, *args, **kwargs)
    dispatcher.register_fallback(DispatchKey.Profiler, fallback)
    dispatcher.set_wrapper_active(DispatchKey.Profiler, True)
    try:
        x = vt.zeros(4, 6)
        cases = [(lambda: x.reshape(6, 4), ["vt::reshape", "vt::view"]),
                 (lambda: x.view(24), ["vt::view"]),
                 (lambda: x.narrow(0, 1, 2), ["vt::narrow", "vt::slice"]),
                 (lambda: x.unflatten(1, (2, 3)), ["vt::unflatten", "vt::view"]),
                 (lambda: x.transpose(0, 1), ["vt::transpose"])]
        for fn, expected in cases:
            seen.clear()
            fn()
            assert seen == expected
    finally:
        dispatcher.set_wrapper_active(DispatchKey.Profiler, False)
        del dispatcher._fallbacks[DispatchKey.Profiler]


def test_kernel_on_picks_what_call_picks():
    x = vt.zeros(2, 3)
    w = vt.zeros(2, 3, requires_grad=True)
    op = views.view
    assert op.kernel_on(x) is op._by_type["cpu"]
    assert op.kernel_on(w) is op._autograd
    assert op.kernel_on(w[0]) is op._autograd  # a view of a tensor requiring grad
    with vt.no_grad():
        assert op.kernel_on(w) is op._by_type["cpu"]
    dispatcher.set_wrapper_active(DispatchKey.Profiler, True)
    try:
        assert op.kernel_on(x) is None
    finally:
        dispatcher.set_wrapper_active(DispatchKey.Profiler, False)


def _tensor(device_type):
    return make_tensor(Storage(None, 0, device(device_type)), (0,), (1,), 0, vt.float32)


def test_device_type_is_scans():
    """redispatch's early-exit device scan agrees with the full scan on nested argument lists."""
    rng = random.Random(0)
    pool = [_tensor("cpu"), _tensor("cuda"), _tensor("meta"), 1, 2.0, None, "s"]

    def args(depth=0):
        out = []
        for _ in range(rng.randint(0, 4)):
            if depth < 3 and rng.random() < 0.25:
                inner = args(depth + 1)
                out.append(tuple(inner) if rng.random() < 0.5 else inner)
            else:
                out.append(rng.choice(pool))
        return tuple(out)
    for _ in range(3000):
        a = args()
        assert dispatcher._device_type(a) == dispatcher._scan(a)[0]


def test_view_strides_contiguous_shortcut_matches_the_walk():
    """A list as old shape takes the general walk: both answers agree for contiguous inputs."""
    shapes = [(), (1,), (6,), (2, 3), (3, 1, 2), (0, 2), (2, 0, 3), (1, 1), (4, 1, 6)]
    targets = [(6,), (2, 3), (3, 2), (1, 6, 1), (6, 1), (1,), (), (0,), (2, 0), (3, 0, 2), (1, 1), (2, 2, 6), (24,)]
    for s in shapes:
        st = sh.contiguous_strides(s)
        for t in targets:
            if sh.numel(t) == sh.numel(s):
                assert sh.view_strides(s, st, t) == sh.view_strides(list(s), st, t), (s, t)
