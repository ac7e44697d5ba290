"""vibetensor.compile: whole-step CUDA-graph capture. CPU tests (CI): arguments, guard keys, and
that on CPU tensors fn is simply called. GPU tests (marker `cuda`): a training step captured and
replayed equals the eager steps, and tinygrad's capture footguns (test/test_jit_footguns.py) are
handled or raise clear errors."""
import sys

import numpy as np
import pytest

import vibetensor
import vibetensor.torch as vt
import vibetensor.torch.nn.functional as F
from vibetensor.torch import nn

C = sys.modules["vibetensor.compile"]  # the module (vibetensor.compile is the function)
cuda = pytest.mark.cuda


@pytest.fixture(autouse=True, scope="module")
def _release_memory():
    """Leave no cached blocks behind for later files' allocator-statistics tests."""
    yield
    import gc
    gc.collect()
    if vt.cuda.is_available():
        vt.cuda.empty_cache()


def np_of(t):
    return t.detach().cpu().numpy()


# -- CPU (CI) ------------------------------------------------------------------------------------------------

def test_cpu_tensors_just_call_fn():
    calls = []

    @vibetensor.compile
    def f(x, k=2):
        calls.append(1)
        return x * k

    x = vt.arange(4.0)
    for i in range(4):
        np.testing.assert_array_equal(np_of(f(x + i)), (np.arange(4.0) + i) * 2)
    np.testing.assert_array_equal(np_of(f(x, k=3)), np.arange(4.0) * 3)
    assert len(calls) == 5 and f.entries == {}  # every call ran fn; nothing was captured
    assert f.__name__ == "f" and "compile" in vibetensor.compile.__module__


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="unknown mode"):
        vibetensor.compile(lambda x: x, mode="trace")
    with pytest.raises(ValueError, match="recapture must be"):
        vibetensor.compile(lambda x: x, recapture="never")
    assert isinstance(vibetensor.compile(recapture="error")(lambda x: x), C.Compiled)


def test_flatten_round_trips_nested_arguments():
    tree = ((1, [2.5, "a"]), {"b": None, "c": (3,)})
    leaves, rebuild = C.flatten(tree)
    assert leaves == [1, 2.5, "a", None, 3]
    assert rebuild(leaves) == tree
    assert rebuild(["x"] * 5) == (("x", ["x", "x"]), {"b": "x", "c": ("x",)})
    assert C.flatten([1, 2])[1] != C.flatten((1, 2))[1]


def test_guard_key_facts():
    x, y = vt.zeros(2, 3), vt.zeros(2, 3)
    key = lambda *leaves: C.guard_key(C.flatten(leaves)[1], list(leaves))  # noqa: E731
    assert key(x, 1) == key(y, 1)                       # tensors by shape/dtype/device, not identity
    assert key(x, 1) != key(x, 2)                       # Python values are part of the key
    assert key(x, x) != key(x, y)                       # the same tensor twice is a different call
    assert key(x, 1) != key(vt.zeros(3, 2), 1)
    assert key(x, 1) != key(x.double(), 1)
    assert key(x, 1) != key(x.requires_grad_(), 1)
    obj = object()
    assert key(obj) == key(obj) and key(obj) != key(object())  # unhashable/opaque objects by identity


def test_positional_and_keyword_calls_share_a_key():
    f = vibetensor.compile(lambda a, b=1: a)
    assert f._normalise((1,), {"b": 2}) == f._normalise((1, 2), {})


# -- GPU ----------------------------------------------------------------------------------------------------

def _model(seed):
    vt.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4)).cuda()


def _batches(n):
    vt.manual_seed(100)
    return [(vt.randn(32, 16, device="cuda"), vt.randn(32, 4, device="cuda")) for _ in range(n)]


def _trainer(model, lr=0.05, foreach=False):
    """A training step; the single-tensor SGD by default (many small in-place kernels to capture),
    foreach=None: the CUDA default (the fused multi-tensor kernel)."""
    opt = vt.optim.SGD(model.parameters(), lr=lr, momentum=0.9, foreach=foreach)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    step.opt = opt
    return step


@cuda
def test_captured_training_step_equals_eager_steps():
    """Call 1 eager, call 2 capture + replay, then replays: the same losses and weights as running the
    step eagerly every time, dropout included (the replays draw what eager calls would)."""
    data = _batches(8)
    eager_model, graph_model = _model(0), _model(0)
    eager_step, graph_step = _trainer(eager_model), vibetensor.compile(_trainer(graph_model))
    vt.cuda.manual_seed(7)
    eager = [np_of(eager_step(x, y)).copy() for x, y in data]
    vt.cuda.manual_seed(7)
    captured = [np_of(graph_step(x, y)).copy() for x, y in data]
    np.testing.assert_allclose(captured, eager, rtol=1e-5, atol=1e-7)
    for p, q in zip(graph_model.parameters(), eager_model.parameters()):
        np.testing.assert_allclose(np_of(p), np_of(q), rtol=1e-5, atol=1e-6)
    assert len(graph_step.entries) == 1


@cuda
@pytest.mark.parametrize("foreach", [False, None], ids=["single_tensor", "default_impl"])
def test_optimizer_lr_on_the_device_follows_a_schedule(foreach):
    """lr as a 0-d CUDA tensor, changed in place between steps (a schedule, outside the step): the
    replays read the current value, matching eager steps. default_impl is the CUDA default
    (fused multi-tensor) SGD."""
    data = _batches(6)
    rates = [0.05, 0.05, 0.02, 0.1, 0.01, 0.03]
    losses = []
    for compiled in (False, True):
        model = _model(2)
        lr = vt.tensor(rates[0], device="cuda")
        step = _trainer(model, lr=lr, foreach=foreach)
        if compiled:
            step = vibetensor.compile(step)
        vt.cuda.manual_seed(3)
        out = []
        for (x, y), rate in zip(data, rates):
            lr.copy_(vt.tensor(rate))
            out.append(np_of(step(x, y)).copy())
        losses.append(out)
        assert np.all(np.isfinite(out))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-7)


@cuda
def test_memory_stays_flat_over_replays():
    step = vibetensor.compile(_trainer(_model(1)))
    x, y = _batches(1)[0]
    for _ in range(3):
        step(x, y)
    before = vt.cuda.memory_allocated()
    for _ in range(50):
        step(x, y)
    assert vt.cuda.memory_allocated() == before


@cuda
def test_outputs_are_static_buffers():
    f = vibetensor.compile(lambda x: x.sum())
    r1 = f(vt.tensor([1.0, 1.0], device="cuda"))  # eager: an independent tensor
    r2 = f(vt.tensor([2.0, 2.0], device="cuda"))  # capture
    r3 = f(vt.tensor([3.0, 3.0], device="cuda"))  # replay
    assert r1.item() == 2 and r3.item() == 6
    assert r2.item() == 6  # overwritten by the third call: the documented footgun
    r4 = f(vt.tensor([4.0, 4.0], device="cuda")).clone()  # the workaround
    f(vt.tensor([5.0, 5.0], device="cuda"))
    assert r4.item() == 8


@cuda
def test_side_effects_run_in_eager_and_capture_calls_only():
    count = [0]

    @vibetensor.compile
    def f(x):
        count[0] += 1
        return x * 2

    for i in range(5):
        out = f(vt.full((3,), float(i), device="cuda"))
        np.testing.assert_array_equal(np_of(out), [2.0 * i] * 3)
    assert count[0] == 2


@cuda
def test_item_inside_a_captured_step_raises():
    f = vibetensor.compile(lambda x: x * x.sum().item())
    x = vt.ones(3, device="cuda")
    f(x)  # eager: fine
    with pytest.raises(RuntimeError, match=r"vibetensor.compile\(<lambda>\).*synchronises with the host"):
        f(x)
    assert not vt.cuda.is_capturing()
    assert (x + 1).sum().item() == 6.0  # the runtime stays usable


@cuda
def test_random_ops_draw_fresh_numbers_per_replay():
    f = vibetensor.compile(lambda x: x + vt.rand(x.shape, device="cuda"))
    zeros = vt.zeros(3, device="cuda")
    results = {tuple(np_of(f(zeros)).tolist()) for _ in range(6)}
    assert len(results) == 6
    g = vibetensor.compile(lambda x: F.dropout(x, 0.5))
    ones = vt.ones(2048, device="cuda")
    masks = [np_of(g(ones)) != 0 for _ in range(4)]
    assert all(not np.array_equal(masks[i], masks[i + 1]) for i in range(3))


@cuda
def test_shape_change_recaptures_or_raises():
    f = vibetensor.compile(lambda a, b: a + b)
    for n in (10, 10, 10, 20, 20, 20):
        a, b = vt.randn(n, device="cuda"), vt.randn(n, device="cuda")
        np.testing.assert_allclose(np_of(f(a, b)), np_of(a) + np_of(b), rtol=1e-6)
    assert len(f.entries) == 2
    g = vibetensor.compile(lambda a, b: a + b, recapture="error")
    x = vt.randn(10, device="cuda")
    g(x, x)
    g(x, x)
    with pytest.raises(RuntimeError, match=r"(?s)arguments changed since capture.*now: +Tensor\[20\]"):
        g(vt.randn(20, device="cuda"), vt.randn(20, device="cuda"))
    with pytest.raises(RuntimeError, match="arguments changed"):
        g(x, x.double())


@cuda
def test_python_arguments_are_guarded():
    f = vibetensor.compile(lambda x, mult, square: x * x if square else x * mult)
    x = vt.tensor([3.0], device="cuda")
    assert [f(x, m, False).item() for m in (1, 2, 3, 4)] == [3.0, 6.0, 9.0, 12.0]
    assert f(x, 1, True).item() == 9.0 and f(x, 1, True).item() == 9.0 and f(x, 1, False).item() == 3.0


@cuda
def test_input_mutation_and_aliasing():
    @vibetensor.compile
    def bump(x):
        x.add_(1)
        return x * 1

    a = vt.zeros(1, device="cuda")
    for _ in range(5):
        bump(a)
    assert a.item() == 5.0  # in-place updates reach the caller's tensor on every call

    step = vibetensor.compile(lambda x: x + 1)
    out = step(vt.tensor([10.0], device="cuda"))
    out = step(vt.tensor([20.0], device="cuda"))
    out = step(out)  # the input is the previous (static) output
    assert out.item() == 22.0
    assert step(vt.tensor([100.0], device="cuda")).item() == 101.0

    twice = vibetensor.compile(lambda a, b: a.add_(b))  # the same tensor twice is one buffer
    t = vt.ones(2, device="cuda")
    for _ in range(3):
        twice(t, t)
    np.testing.assert_array_equal(np_of(t), [8.0, 8.0])


@cuda
def test_tensors_in_containers_and_kwargs():
    f = vibetensor.compile(lambda a, arr, scale=1.0: {"sum": (a + arr[0]) * scale})
    for i in range(4):
        b = vt.full((3,), float(i), device="cuda")
        np.testing.assert_array_equal(np_of(f(vt.ones(3, device="cuda"), [b])["sum"]), [1.0 + i] * 3)
    np.testing.assert_array_equal(np_of(f(vt.ones(3, device="cuda"), [b], scale=2.0)["sum"]), [8.0] * 3)


@cuda
def test_non_tensor_outputs_raise():
    f = vibetensor.compile(lambda x: (x * 2, 3))
    x = vt.ones(2, device="cuda")
    f(x)
    with pytest.raises(TypeError, match="returned a int"):
        f(x)


@cuda
def test_nested_compiled_functions_are_inlined():
    inner = vibetensor.compile(lambda t: t + 1)
    outer = vibetensor.compile(lambda t: inner(t) * 3)
    for i in range(4):
        assert outer(vt.tensor([float(i)], device="cuda")).item() == (i + 1) * 3


@cuda
def test_host_inputs_are_pinned_static_buffers():
    w = vt.ones(4, device="cuda")
    f = vibetensor.compile(lambda x_host, w: x_host.cuda(non_blocking=True) * w)
    for i in range(4):
        np.testing.assert_array_equal(np_of(f(vt.full((4,), float(i)), w)), [float(i)] * 4)


@cuda
def test_learning_rate_on_the_device():
    """A Python-float lr would be frozen into the graph: keep it in a device tensor, changed in place
    outside the step (a schedule), and the replays read the current value."""
    w = vt.zeros(3, device="cuda", requires_grad=True)
    lr = vt.tensor(0.5, device="cuda")

    @vibetensor.compile
    def step(target):
        w.grad = None
        loss = ((w - target) ** 2).sum()
        loss.backward()
        with vt.no_grad():
            w.sub_(lr * w.grad)
        return loss

    target = vt.ones(3, device="cuda")
    expect = np.zeros(3)
    for k, rate in enumerate([0.1, 0.2, 0.3, 0.05, 0.25]):  # each differs: a frozen lr would show
        lr.copy_(vt.tensor(rate))  # outside the step: the replays read the current value
        step(target)
        expect = expect - rate * 2 * (expect - 1.0)
        np.testing.assert_allclose(np_of(w), expect, rtol=1e-5, err_msg=f"step {k}")
