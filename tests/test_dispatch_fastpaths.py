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
from vibetensor.tensor.tensor import Storage, Tensor, make_tensor

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
    ("slice", (5, 4), "contiguous", lambda lib, x: x[1:3]),
    ("slices", (5, 4), "transposed", lambda lib, x: x[1:4, :2]),
    ("slices step", (5, 4), "strided", lambda lib, x: x[::2, 1:]),
    ("slices clamp", (5, 4), "contiguous", lambda lib, x: x[-10:10, 3:1]),
    ("slices too many", (5,), "contiguous", lambda lib, x: x[1:, :2]),
    ("slice then int", (5, 4), "contiguous", lambda lib, x: x[1:, 2]),
    ("split last dim", (3, 7), "strided", lambda lib, x: x.split(3, -1)),
    ("split larger", (3, 2), "contiguous", lambda lib, x: x.split(5)),
    ("split zero", (3, 2), "contiguous", lambda lib, x: x.split(0)),
    ("split bad dim", (3, 2), "contiguous", lambda lib, x: x.split(1, 2)),
    ("swapaxes", (2, 3, 4), "transposed", lambda lib, x: x.swapaxes(0, -1)),
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
                 (lambda: x.transpose(0, 1), ["vt::transpose"]),
                 (lambda: x.split(2), ["vt::split", "vt::slice", "vt::slice"]),
                 (lambda: x[1:, :2], ["vt::slice", "vt::slice"])]
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


def test_split_pieces_are_slices_under_grad_mode():
    """split's kernel called with grad mode on (a composite inside a traced formula) makes its pieces
    with slice calls autograd records, as before the cached split geometry."""
    (tx, x) = make_pair((5, 3), "float32", "contiguous")
    x = x.detach().requires_grad_()
    pieces = views._split(x, 2, 0)
    assert [p.grad_fn.name() for p in pieces] == ["SliceBackward0"] * 3
    sum((p * (k + 1)).sum() for k, p in enumerate(pieces)).backward()
    assert x.grad.tolist() == [[1.0] * 3] * 2 + [[2.0] * 3] * 2 + [[3.0] * 3]


def test_module_hooks_fire_after_the_hookless_fast_path():
    """Module.__call__ skips the hook machinery while a module has no hooks; registering one later
    (and removing it) is seen at once."""
    lin = vt.nn.Linear(3, 2)
    x = vt.ones(1, 3)
    calls = []
    lin(x)
    pre = lin.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    post = lin.register_forward_hook(lambda m, args, out: calls.append("post"))
    lin(x)
    assert calls == ["pre", "post"]
    pre.remove()
    post.remove()
    lin(x)
    assert calls == ["pre", "post"]
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        lin.nothing
    assert lin.weight is lin._parameters["weight"]


def test_addmm_meta_cache_keeps_the_errors():
    """addmm's spec is cached per signature for calls without out=; failures are not cached, and
    the scalars' values are part of the key."""
    m1, m2 = vt.ones(2, 3), vt.ones(3, 4)
    for bias in (vt.ones(4), vt.ones(2, 4), vt.ones(1)):
        for _ in range(2):
            assert vt.addmm(bias, m1, m2).tolist() == torch.addmm(torch.ones(tuple(bias.shape)), torch.ones(2, 3),
                                                                   torch.ones(3, 4)).tolist()
    for _ in range(2):
        with pytest.raises(RuntimeError):
            vt.addmm(vt.ones(3), m1, m2)  # not broadcastable to (2, 4)
        with pytest.raises(RuntimeError):
            vt.addmm(vt.ones(4), m1, m2, beta=1j)  # a complex scalar for a float result
    assert vt.addmm(vt.ones(4), m1, m2, beta=2, alpha=0.5).tolist() == [[3.5] * 4] * 2


def test_is_contiguous_fast_case_and_lists():
    """The row-major shortcut agrees with torch's rule, and shapes given as lists still work."""
    for shape, stride in [((2, 3), (3, 1)), ((2, 3), (1, 2)), ((1, 3), (7, 1)), ((0, 3), (1, 5)), ((), ()),
                          ((2, 1, 3), (3, 9, 1))]:
        expected = torch.empty(64).as_strided(shape, stride).is_contiguous()
        assert sh.is_contiguous(shape, stride) == expected
        assert sh.is_contiguous(list(shape), stride) == expected
    assert sh.numel((2, 3, 4)) == 24 and sh.numel(()) == 1 and sh.numel([0, 5]) == 0


def test_list_arguments_pick_the_same_kernel_with_grad_mode_off():
    """With grad mode off a list argument is scanned for its device only (settled at the first GPU
    tensor); the kernel chosen is the one the full scan picks."""
    op = dispatcher.get("test_fastpaths_lists") if "vt::test_fastpaths_lists" in dispatcher.ops() else \
        dispatcher.declare("test_fastpaths_lists")
    op.register(DispatchKey.CPU, lambda *args: "cpu")
    op.register(DispatchKey.CUDA, lambda *args: "cuda")
    op.register(DispatchKey.Meta, lambda *args: "meta")
    cpu, cuda, meta = _tensor("cpu"), _tensor("cuda"), _tensor("meta")
    cases = [([cpu, cuda],), ([cpu, cpu],), (cpu, [cpu, meta]), (cuda, [cpu, meta]), ([[cpu], (cuda,)],), ([1, 2.0],),
             ([cpu, cuda], [meta]), ((2, 3), [cpu])]
    for args in cases:
        expected = dispatcher._scan(args)[0] or "cpu"
        assert op(*args) == expected
        with vt.no_grad():
            assert op(*args) == expected


def test_tensors_hash_by_identity():
    """Tensors (and Parameters) are dict keys and set members by identity, as in torch, even
    though == compares elementwise."""
    a, b = vt.zeros(3), vt.zeros(3)
    p = vt.nn.Parameter(vt.zeros(3))
    d = {a: 1, b: 2, p: 3}
    assert len(d) == 3 and d[a] == 1 and d[b] == 2 and d[p] == 3
    assert {a, b, a, p} == {a, b, p} and len({a, b, a}) == 2
    assert hash(a) == hash(a) and hash(a) != hash(b)


MATMUL_SHAPES = [((2, 3, 4), (2, 4, 5)), ((2, 2, 3, 4), (2, 2, 4, 5)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 5)), ((2, 3, 4), (1, 2, 4, 5)),
                 ((3, 4), (4, 5)), ((2, 1, 4), (2, 4, 1))]


@pytest.mark.parametrize("a, b", MATMUL_SHAPES)
def test_matmul_results_are_not_views(a, b):
    """matmul's batched and folded products return the product itself in the result's shape (torch's
    _unsafe_view: no _base), and operands already in the product's shape are used as they are:
    values, strides, grad_fn names and gradients as torch's."""
    for requires_grad in (False, True):
        (ta, va), (tb, vb) = make_pair(a, "float64", "contiguous"), make_pair(b, "float64", "transposed")
        ta, va = ta.detach().requires_grad_(requires_grad), va.detach().requires_grad_(requires_grad)
        expected, got = ta @ tb, va @ vb
        assert got._base is None and expected._base is None
        assert got.shape == expected.shape and got.stride() == expected.stride()
        assert torch.allclose(torch.tensor(got.tolist(), dtype=torch.float64), expected.detach())
        if requires_grad:
            assert got.grad_fn.name() == expected.grad_fn.name()
            (expected * expected).sum().backward()
            (got * got).sum().backward()
            assert torch.allclose(torch.tensor(va.grad.tolist(), dtype=torch.float64), ta.grad)


def _nested(lib):
    """A model with shared submodules and a shared parameter at several depths, built alike in both."""
    lib.manual_seed(0)
    shared = lib.nn.Linear(2, 2)
    inner = lib.nn.Sequential(lib.nn.Linear(2, 3), shared, lib.nn.ReLU())
    outer = lib.nn.Sequential(inner, lib.nn.Sequential(shared, lib.nn.LayerNorm(2)), inner, lib.nn.Linear(2, 2))
    outer[3].weight = shared.weight  # a parameter held twice
    outer.add_module("gap", None)
    return outer


def test_module_walks_match_torch():
    """named_modules (a stack walk), parameters (without names) and their options give torch's order
    and duplicate handling."""
    tm, vm = _nested(torch), _nested(vt)
    for kwargs in ({}, {"remove_duplicate": False}, {"prefix": "m"}):
        assert [n for n, _ in vm.named_modules(**kwargs)] == [n for n, _ in tm.named_modules(**kwargs)]
    for recurse in (True, False):
        assert [n for n, _ in vm.named_parameters(recurse=recurse)] == \
            [n for n, _ in tm.named_parameters(recurse=recurse)]
        names = {}
        for n, p in vm.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), n)  # (the first place a parameter is found)
        assert [names[id(p)] for p in vm.parameters(recurse=recurse)] == \
            [n for n, _ in tm.named_parameters(recurse=recurse)]
    assert len(list(vm.modules())) == len(list(tm.modules()))


def test_module_walks_honour_overrides():
    """A submodule overriding named_modules, or a module overriding named_parameters, is asked as
    torch's recursion asks it."""
    class Hidden(vt.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = vt.nn.Linear(1, 1), vt.nn.Linear(1, 1)

        def named_modules(self, memo=None, prefix="", remove_duplicate=True):
            yield prefix, self  # hides its children

    class Renamed(vt.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = vt.nn.Linear(1, 1)

        def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
            yield "only", self.lin.weight

    model = vt.nn.Sequential(Hidden(), vt.nn.Linear(1, 1))
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert len(list(model.parameters())) == 2  # the second Linear's
    r = Renamed()
    assert list(r.parameters()) == [r.lin.weight]


_REPLAY_FIELDS = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import cuda_host_sim as S
vt = S.install()
from vibetensor.tensor.tensor import Tensor, VersionCounter, make_tensor_python as make_tensor
x, y = vt.empty(4, 4, device="cuda"), vt.empty(4, 4, device="cuda")
made = [x + y for _ in range(3)]  # the first call records its plan, the others replay it
made.append(vt.empty(4, 4, device="cuda"))  # (tensor.new_tensor, as the replays)
from vibetensor.tensor import fasttensor, tensor
assert (tensor.new_tensor is tensor.new_tensor_python) == (fasttensor.module() is None)  # the C, where it builds
fields = [f for f in Tensor.__slots__ if f not in ("__dict__", "__weakref__", "grad")]
for r in made:
    ref = make_tensor(r._storage, r._shape, r._stride, r._offset, r._dtype)
    for f in fields:
        mine, theirs = getattr(r, f), getattr(ref, f)  # (an unset slot raises AttributeError)
        if f == "_version":
            assert type(mine) is VersionCounter and mine.value == 0 and mine is not x._version, f
        else:
            assert mine is theirs or mine == theirs, (f, mine, theirs)
    assert type(r) is Tensor and not r.__dict__ and r.grad is None
print("ok")
"""


def test_replayed_results_are_made_as_make_tensor_makes_them():
    """Replay plans and empty() make results with tensor.new_tensor (C) or inline make_tensor's stores
    (backends/cuda/plan.py): a slot either misses would raise."""
    pytest.importorskip("triton", reason="the simulation needs Triton")
    pytest.importorskip("cuda.bindings", reason="the simulation needs cuda-bindings")
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", _REPLAY_FIELDS, root], capture_output=True, text=True, timeout=300,
                       cwd=root)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), r.stdout + r.stderr


def _attribute_story(lib):
    """What module attribute reads give, step by step, once a name is registered on the class's
    instances (the second read of a name takes the class's _Registered short way in vibetensor)."""
    nn, seen = lib.nn, []

    def read(m, name):
        try:
            v = getattr(m, name)
            return "None" if v is None else type(v).__name__
        except AttributeError:
            return "AttributeError"

    class Net(nn.Module):
        def __init__(self, bias=True):
            super().__init__()
            self.fc = nn.Linear(2, 2, bias=bias)
            self.register_buffer("scale", lib.ones(1))

    a, b = Net(), Net(bias=False)
    for _ in range(2):  # (twice: the first read goes through __getattr__, the second through the class)
        seen += [read(a, "fc"), read(a, "scale"), read(a.fc, "bias"), read(b.fc, "bias"), read(a, "missing")]
    seen.append(hasattr(Net, "fc"))  # the class itself has no such attribute
    del b.fc
    seen += [read(b, "fc"), hasattr(b, "fc")]
    b.fc = 3  # a plain attribute now
    seen += [read(b, "fc"), read(a, "fc")]
    a.__dict__["scale"] = "shadow"  # an instance attribute wins over the registries
    seen += [read(a, "scale"), "fc" in dir(b), "scale" in dir(Net()), "fc" in dir(nn.Module())]
    b.register_parameter("fc2", None)
    seen += [read(b, "fc2"), read(a, "fc2")]

    class Wrapped(nn.Module):  # its own __getattr__: asked every time
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(1, 1)

        def __getattr__(self, name):
            seen.append("asked " + name)
            return super().__getattr__(name)

    w = Wrapped()
    seen += [read(w, "inner"), read(w, "inner")]
    return seen


def test_module_attribute_reads_match_torch():
    assert _attribute_story(vt) == _attribute_story(torch)


def test_tensor_construction_runs_no_python_code():
    """make_tensor and the replay plans make results with Tensor(): it must stay object's own
    constructor (a Python __new__/__init__ would run, slowly, for every op's result)."""
    from vibetensor.tensor.tensor import Tensor
    assert Tensor.__new__ is object.__new__ and Tensor.__init__ is object.__init__
    t = make_tensor(Storage(None, 0, device("cpu")), (0,), (1,), 0, vt.float32)
    assert t._view_info is None and t._base is None and t.grad_fn is None and not t.__dict__


def _fields(t):
    return {f: getattr(t, f) for f in Tensor.__slots__ if f not in ("__dict__", "__weakref__", "grad")}


def test_c_make_tensor_and_new_tensor_fill_every_slot_as_the_python():
    """tensor.make_tensor / new_tensor (fasttensor's C where it builds) against make_tensor_python /
    new_tensor_python: the same field values, a fresh version counter unless one is given."""
    from vibetensor.tensor import fasttensor
    from vibetensor.tensor import tensor as T
    if fasttensor.module() is None:
        pytest.skip("no C compiler: the Python is installed")
    assert T.make_tensor is fasttensor.module().make_tensor
    base = vt.ones(2, 3)
    cases = [((), {}), ((base._version,), {}), ((base._version, base), {}), ((), {"base": base}),
             ((), {"version": base._version, "base": base}), ((None, None), {})]
    for extra, kw in cases:
        args = (base._storage, (3, 2), (1, 3), 0, base._dtype) + extra
        mine, ref = T.make_tensor(*args, **kw), T.make_tensor_python(*args, **kw)
        a, b = _fields(mine), _fields(ref)
        if "version" not in kw and not extra[:1] or extra[:1] == (None,):
            assert a.pop("_version") is not b.pop("_version")
        assert a == b and type(mine) is Tensor and not mine.__dict__ and mine.grad is None
    made = T.new_tensor(base._storage.data, 24, base._device, (6,), (1,), 0, base._dtype)
    ref = T.new_tensor_python(base._storage.data, 24, base._device, (6,), (1,), 0, base._dtype)
    a, b = _fields(made), _fields(ref)
    assert a.pop("_storage").data is b.pop("_storage").data and a.pop("_version").value == b.pop("_version").value
    assert a == b
    for bad in [lambda: T.make_tensor(base._storage, (1,)), lambda: T.make_tensor(*args, versio=None),
                lambda: T.make_tensor(base._storage, (3, 2), (1, 3), 0, base._dtype, None, version=None)]:
        with pytest.raises(TypeError):
            bad()
