"""The dispatcher's call path in C (fastdispatch) and in Python (its specification) pick the same kernels.

Each behaviour runs on both: Op.__call__ / Op.call_on as the C methods and as call_python /
call_on_python (the `impl` fixture installs one or the other and restores the default after).
The ops are private Op objects whose kernels report which key ran them and with what arguments;
the tensors are empty ones on fake storage, so "cuda" and "meta" tensors need no GPU.
"""
import shutil
import sys

import pytest

import vibetensor.torch as vt
from vibetensor.dispatch import DispatchKey, dispatcher, fastdispatch
from vibetensor.dispatch.dispatcher import Op
from vibetensor.tensor.device import device
from vibetensor.tensor.tensor import Storage, Tensor, make_tensor

KEYS = {"cpu": DispatchKey.CPU, "cuda": DispatchKey.CUDA, "meta": DispatchKey.Meta, "autograd": DispatchKey.Autograd}


@pytest.fixture(params=["c", "python"])
def impl(request):
    if request.param == "c" and fastdispatch.module() is None:
        pytest.skip("no C compiler (or VIBETENSOR_FASTDISPATCH=0): the Python runs")
    dispatcher.install_native(request.param == "c")
    yield request.param
    dispatcher.install_native()


def _tensor(device_type, requires_grad=False, base=None):
    t = make_tensor(Storage(None, 0, device(device_type)), (0,), (1,), 0, vt.float32)
    t._requires_grad, t._base = requires_grad, base
    return t


def _op(keys=("cpu", "cuda", "meta", "autograd")):
    """A private op whose kernel at each key returns (key, args, kwargs)."""
    op = Op("vt::_test_dispatch_native")
    for key in keys:
        op.register(KEYS[key], lambda *args, _key=key, **kwargs: (_key, args, kwargs))
    return op


def cpu0():
    return make_tensor(Storage(None, 0, device("cpu")), (), (), 0, vt.float32)  # a CPU 0-d tensor


def grad_base():
    return _tensor("cuda", requires_grad=True)


# (name, args maker, kwargs, grad mode, expected key): the kernel's key that runs
CALLS = [
    ("cpu", lambda: (_tensor("cpu"),), {}, True, "cpu"),
    ("cuda", lambda: (_tensor("cuda"), 2), {}, True, "cuda"),
    ("cpu 0-d yields to cuda", lambda: (cpu0(), _tensor("cuda")), {}, True, "cuda"),
    ("cuda then cpu 0-d", lambda: (_tensor("cuda"), cpu0()), {}, True, "cuda"),
    ("first non-cpu wins", lambda: (_tensor("cpu"), _tensor("meta"), _tensor("cuda")), {}, True, "meta"),
    ("requires grad", lambda: (_tensor("cuda"), _tensor("cuda", True)), {}, True, "autograd"),
    ("requires grad, grad mode off", lambda: (_tensor("cuda", True),), {}, False, "cuda"),
    ("view of a base that requires grad", lambda: (_tensor("cuda", base=grad_base()),), {}, True, "autograd"),
    ("view, grad mode off", lambda: (_tensor("meta", base=grad_base()),), {}, False, "meta"),
    ("view of a plain base", lambda: (_tensor("cuda", base=_tensor("cuda")),), {}, True, "cuda"),
    ("parameter", lambda: (vt.nn.Parameter(vt.zeros(2)),), {}, True, "autograd"),
    ("list of tensors", lambda: ([_tensor("cpu"), _tensor("cuda")],), {}, True, "cuda"),
    ("list of tensors, grad mode off", lambda: ([_tensor("cpu"), _tensor("meta")],), {}, False, "meta"),
    ("list with a grad tensor", lambda: (_tensor("cpu"), [1, _tensor("cpu", True)]), {}, True, "autograd"),
    ("list with a grad tensor, grad mode off", lambda: ([_tensor("cpu", True)],), {}, False, "cpu"),
    ("list with a grad view", lambda: ((_tensor("cuda", base=grad_base()),),), {}, True, "autograd"),
    ("nested lists", lambda: ([[_tensor("cpu")], (_tensor("cuda"),)],), {}, True, "cuda"),
    ("nested lists, grad mode off", lambda: ([[_tensor("cpu")], (_tensor("meta"),)],), {}, False, "meta"),
    ("cuda then a list, grad mode off", lambda: (_tensor("cuda"), [_tensor("meta")]), {}, False, "cuda"),
    ("a list of cpu after cuda", lambda: (_tensor("cuda"), [_tensor("cpu"), 1.0]), {}, True, "cuda"),
    ("shape tuple", lambda: (_tensor("meta"), (2, 3)), {}, True, "meta"),
    ("bools in a list", lambda: ([True, False], _tensor("cuda")), {}, True, "cuda"),
    ("a list subclass is not looked into", lambda: (type("L", (list,), {})([_tensor("cuda")]),), {}, True, "cpu"),
    ("no tensors", lambda: (1, 2.0, None, "s"), {}, True, "cpu"),
    ("no arguments", lambda: (), {}, True, "cpu"),
    ("device= str", lambda: ((2, 3),), {"device": "cuda"}, True, "cuda"),
    ("device= str with index", lambda: ((2, 3),), {"dtype": None, "device": "cuda:1"}, True, "cuda"),
    ("device= device", lambda: (4,), {"device": device("meta")}, True, "meta"),
    ("device= None", lambda: (4,), {"device": None}, True, "cpu"),
    ("a str subclass device=", lambda: (4,), {"device": type("S", (str,), {})("meta:0")}, True, "meta"),
    ("a tensor's device before device=", lambda: (_tensor("cpu"),), {"device": "cuda"}, True, "cpu"),
    ("device= and grad", lambda: (_tensor("cpu", True),), {"device": "cuda"}, True, "autograd"),
    ("keywords pass through", lambda: (_tensor("cuda"),), {"alpha": 2, "out": None}, True, "cuda"),
]


@pytest.mark.parametrize("name, make_args, kwargs, grad_mode, expected", CALLS, ids=[c[0] for c in CALLS])
def test_call_picks_the_kernel(impl, name, make_args, kwargs, grad_mode, expected):
    op, args = _op(), make_args()
    with vt.set_grad_enabled(grad_mode):
        key, got_args, got_kwargs = op(*args, **kwargs)
        assert op.__call__(*args, **kwargs)[0] == key  # the method itself, as well as the type's call slot
        assert Op.__call__(op, *args, **kwargs)[0] == key
        assert Op.call_python(op, *args, **kwargs)[0] == key  # (the specification, whichever is installed)
    assert key == expected
    assert len(got_args) == len(args) and all(g is a for g, a in zip(got_args, args))
    assert got_kwargs == kwargs and all(got_kwargs[k] is v for k, v in kwargs.items())


def test_no_autograd_kernel_falls_to_the_device(impl):
    op = _op(("cpu", "cuda"))
    assert op(_tensor("cuda", True))[0] == "cuda"
    assert op.call_on(_tensor("cpu", True), 1)[0] == "cpu"


# (name, args maker, kwargs, op keys): calls that raise; C and Python raise the same type and message
def _unset_base():
    t = Tensor.__new__(Tensor)
    t._device, t._requires_grad = device("cpu"), False  # _base never set
    return t


def _bare_op():
    op = Op.__new__(Op)  # no __init__: _autograd and _by_type never set
    op.name, op.table = "vt::_bare", dispatcher._EMPTY
    return op


def _boom(*args, **kwargs):
    raise ValueError("boom from the kernel")


RAISES = [
    ("missing kernel", lambda: (_tensor("meta"),), {}, ("cpu", "cuda")),
    ("missing kernel by device=", lambda: (3,), {"device": "meta"}, ("cpu",)),
    ("unknown device=", lambda: (3,), {"device": "xla"}, ("cpu",)),
    ("device= without a type", lambda: (3,), {"device": object()}, ("cpu",)),
    ("device= bad str", lambda: (3,), {"device": 3.5}, ("cpu",)),
    ("a slot never set", lambda: (_unset_base(),), {}, ("cpu",)),
    ("a slot never set in a list", lambda: ([_unset_base()],), {}, ("cpu",)),
    ("op slots never set, grad", lambda: (_tensor("cpu", True),), {}, "bare"),
    ("op slots never set", lambda: (_tensor("cpu"),), {}, "bare"),
    ("kernel raises", lambda: (_tensor("cuda"),), {}, "boom"),
    ("autograd kernel raises", lambda: (_tensor("cuda", True),), {"x": 1}, "boom"),
    ("kernel rejects a keyword", lambda: (_tensor("cpu"),), {"nope": 1}, "strict"),
]


def _make_op(keys):
    if keys == "bare":
        return _bare_op()
    if keys == "boom":
        op = Op("vt::_test_boom")
        op.register(DispatchKey.CUDA, _boom)
        op.register(DispatchKey.Autograd, _boom)
        return op
    if keys == "strict":
        op = Op("vt::_test_strict")
        op.register(DispatchKey.CPU, lambda t: t)
        return op
    return _op(keys)


def _outcome(fn):
    try:
        return ("ok", fn())
    except Exception as e:  # noqa: BLE001
        return (type(e), str(e))


@pytest.mark.parametrize("name, make_args, kwargs, keys", RAISES, ids=[c[0] for c in RAISES])
def test_errors_are_the_pythons(impl, name, make_args, kwargs, keys):
    op, args = _make_op(keys), make_args()
    expected = _outcome(lambda: Op.call_python(op, *args, **kwargs))
    assert expected[0] != "ok", expected  # (each case raises)
    assert _outcome(lambda: op(*args, **kwargs)) == expected


def test_missing_kernel_message(impl):
    with pytest.raises(NotImplementedError, match=r"Could not run 'vt::_test_dispatch_native' with arguments from "
                                                  r"the 'Meta' backend: the op has kernels for \['CPU'\] only"):
        _op(("cpu",))(_tensor("meta"))


def test_the_kernels_exception_is_the_one_raised(impl):
    error = ValueError("mine")

    def kernel(*args):
        raise error
    op = Op("vt::_test_raise")
    op.register(DispatchKey.CPU, kernel)
    for call in (lambda: op(_tensor("cpu")), lambda: op.call_on(_tensor("cpu"), 1)):
        with pytest.raises(ValueError) as info:
            call()
        assert info.value is error


def test_lazy_backend_loads_once(impl, monkeypatch):
    op, loads = _op(("cpu",)), []

    def loader():
        loads.append(1)
        op.register(DispatchKey.Meta, lambda *args: "meta, loaded")
    monkeypatch.setitem(dispatcher._lazy_backends, DispatchKey.Meta, loader)
    assert op(_tensor("meta")) == "meta, loaded"
    assert op(_tensor("meta")) == "meta, loaded" and op.call_on(_tensor("meta")) == "meta, loaded"
    assert loads == [1]


def test_lazy_backend_through_call_on(impl, monkeypatch):
    op = _op(("cpu",))
    monkeypatch.setitem(dispatcher._lazy_backends, DispatchKey.Meta,
                        lambda: op.register(DispatchKey.Meta, lambda *args: ("meta", args)))
    t = _tensor("meta")
    assert op.call_on(t, 1, (2,)) == ("meta", (t, 1, (2,)))


def test_a_new_registration_is_seen_at_once(impl):
    op, t = _op(("cpu",)), _tensor("cpu")
    assert op(t)[0] == "cpu" and op.call_on(t)[0] == "cpu"
    op.register(DispatchKey.CPU, lambda *args: "replaced")
    assert op(t) == "replaced" and op.call_on(t) == "replaced"


def test_kernels_replacing_the_table_during_the_call(impl):
    """A kernel that registers over itself (dropping the table that held it) runs to its end."""
    op = Op("vt::_test_reregister")

    def kernel(*args):
        op.register(DispatchKey.CPU, lambda *a: "second")
        return "first"
    op.register(DispatchKey.CPU, kernel)
    del kernel
    assert op(_tensor("cpu")) == "first" and op(_tensor("cpu")) == "second"


# call_on(t, *args): (name, t maker, args, grad mode, expected key)
CALL_ON = [
    ("cpu", lambda: _tensor("cpu"), (1, 2), True, "cpu"),
    ("cuda", lambda: _tensor("cuda"), ((2, 3),), True, "cuda"),
    ("requires grad", lambda: _tensor("cuda", True), (), True, "autograd"),
    ("requires grad, grad mode off", lambda: _tensor("meta", True), (), False, "meta"),
    ("view of a base that requires grad", lambda: _tensor("cuda", base=grad_base()), (0,), True, "autograd"),
    ("view of a plain base", lambda: _tensor("cuda", base=_tensor("cuda")), (0,), True, "cuda"),
    ("parameter", lambda: vt.nn.Parameter(vt.zeros(2)), (), True, "autograd"),
]


@pytest.mark.parametrize("name, make_t, args, grad_mode, expected", CALL_ON, ids=[c[0] for c in CALL_ON])
def test_call_on_picks_the_kernel(impl, name, make_t, args, grad_mode, expected):
    op, t = _op(), make_t()
    with vt.set_grad_enabled(grad_mode):
        key, got_args, got_kwargs = op.call_on(t, *args)
        assert Op.call_on_python(op, t, *args)[0] == key
    assert key == expected and got_args[0] is t and got_args[1:] == args and got_kwargs == {}


CALL_ON_RAISES = [
    ("no arguments", lambda op: op.call_on()),
    ("not a tensor", lambda op: op.call_on(3, 1)),
    ("keywords", lambda op: op.call_on(_tensor("cpu"), dim=1)),
    ("missing kernel", lambda op: op.call_on(_tensor("meta"))),
    ("a slot never set", lambda op: op.call_on(_unset_base())),
    ("op slots never set", lambda op: _bare_op().call_on(_tensor("cpu", True))),
]


@pytest.mark.parametrize("name, call", CALL_ON_RAISES, ids=[c[0] for c in CALL_ON_RAISES])
def test_call_on_errors_are_the_pythons(impl, name, call):
    op = _op(("cpu", "cuda"))
    got = _outcome(lambda: call(op))
    dispatcher.install_native(False)
    assert got == _outcome(lambda: call(op)) and got[0] != "ok"


def test_wrapper_keys(impl, monkeypatch):
    """With a wrapper key on, calls go to the op's kernel at that key, else to the key's fallback,
    which may redispatch below itself; call_on too. Switched off, the fast path again."""
    seen = []

    def fallback(op, args, kwargs):
        seen.append((op.name, args, kwargs))
        return op.redispatch(None, *args, **kwargs)
    monkeypatch.setitem(dispatcher._fallbacks, DispatchKey.Profiler, fallback)
    op, t = _op(("cpu", "cuda")), _tensor("cuda")
    dispatcher.set_wrapper_active(DispatchKey.Profiler, True)
    try:
        assert op(t, 1, alpha=2)[0] == "cuda"
        assert op.call_on(t, 5)[0] == "cuda"
        assert seen == [(op.name, (t, 1), {"alpha": 2}), (op.name, (t, 5), {})]
        op.register(DispatchKey.Profiler, lambda *args, **kwargs: "the op's own")
        assert op(t) == "the op's own" and op.call_on(t) == "the op's own"
    finally:
        dispatcher.set_wrapper_active(DispatchKey.Profiler, False)
    assert op(t)[0] == "cuda" and op.call_on(t)[0] == "cuda" and len(seen) == 2


def test_grad_mode_is_per_thread(impl):
    import threading
    op, t, got = _op(), _tensor("cuda", True), []
    with vt.no_grad():
        th = threading.Thread(target=lambda: got.append((op(t)[0], op.call_on(t)[0])))
        th.start()
        th.join()
        got.append((op(t)[0], op.call_on(t)[0]))
    assert got == [("autograd", "autograd"), ("cuda", "cuda")]


def test_real_ops_with_autograd(impl):
    """End to end through real ops: views, lists (cat), grad mode off, backward."""
    x = vt.ones(2, 3, requires_grad=True)
    y = (x * 2)[1:]
    z = vt.cat([y, x.t().reshape(2, 3)], 0).sum()
    z.backward()
    assert x.grad.tolist() == [[1.0] * 3, [3.0] * 3]  # (the reshape: each once; the slice: row 1, twice)
    with vt.no_grad():
        assert (x * 2).grad_fn is None and x[1:].grad_fn is None


def test_no_reference_leaks(impl):
    """Many calls down every path leave the process's allocated blocks where they were."""
    op, boom = _op(), _make_op("boom")
    t, g, v, lst = _tensor("cuda"), _tensor("cuda", True), _tensor("cpu", base=grad_base()), [_tensor("cpu")]

    def calls():
        op(t, 1, (2, 3), alpha=1)
        op(g)
        op(v, lst)
        op(4, device="meta")
        op([1, 2], device="cuda:0")
        op.call_on(t, 1)
        op.call_on(g)
        with vt.no_grad():
            op(g, lst)
            op.call_on(v)
        for bad in (lambda: boom(t), lambda: op(3, device="xla"), lambda: op.call_on(3)):
            try:
                bad()
            except Exception:  # noqa: BLE001
                pass
    for _ in range(200):
        calls()
    before = sys.getallocatedblocks()
    for _ in range(5000):
        calls()
    assert sys.getallocatedblocks() - before < 100


def test_the_c_is_installed_where_it_builds():
    import os
    if os.environ.get("VIBETENSOR_FASTDISPATCH") == "0":
        pytest.skip("VIBETENSOR_FASTDISPATCH=0: the Python runs")
    if not (shutil.which("gcc") or shutil.which("cc") or os.environ.get("CC")):
        pytest.skip("no C compiler: the Python dispatcher runs")
    assert fastdispatch.module() is not None
    assert type(Op.__call__).__name__ == "method_descriptor" and Op.__call__ is not Op.call_python
    assert type(Op.call_on).__name__ == "method_descriptor" and Op.call_on is not Op.call_on_python
