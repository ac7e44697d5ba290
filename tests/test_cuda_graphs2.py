"""CUDA graphs, second part (marker `cuda`): Philox RNG under capture (fresh numbers per replay),
syncing ops refused during capture, make_graphed_callables, graph pools, peer copies, and memory
returning to its baseline after a training-like loop."""
import numpy as np
import pytest

import vibetensor.torch as vt
import vibetensor.torch.nn.functional as F
from vibetensor.torch import nn

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True, scope="module")
def _release_memory():
    """Leave no cached blocks behind for later files' allocator-statistics tests."""
    yield
    import gc
    gc.collect()
    vt.cuda.empty_cache()


def np_of(t):
    return t.detach().cpu().numpy()


def _capture(fn, *args):
    """Warm fn up eagerly (kernels compile outside the capture), then capture it: (graph, outputs)."""
    fn(*args)
    vt.cuda.synchronize()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g):
        out = fn(*args)
    return g, out


def _draws(out):
    out.uniform_()
    out.add_(vt.randn(out.shape, device="cuda"))
    return out


def test_replays_draw_fresh_numbers_equal_to_eager_draws():
    out = vt.empty(1000, device="cuda")
    vt.cuda.manual_seed(5)
    eager = [np_of(_draws(out)).copy() for _ in range(4)]  # the reference sequence
    vt.cuda.manual_seed(5)
    gen = vt.cuda.default_generators[0]
    _draws(out)                                             # warm-up consumes draw 1
    offset = gen.get_offset()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g):
        _draws(out)
    assert gen.get_offset() == offset                       # capturing consumes nothing
    g.replay()
    first = np_of(out).copy()
    g.replay()
    second = np_of(out).copy()
    assert not np.array_equal(first, second)                # each replay draws fresh numbers
    np.testing.assert_array_equal(first, eager[1])          # ... exactly those eager calls would draw
    np.testing.assert_array_equal(second, eager[2])
    third = np_of(_draws(out))                              # eager after replays continues the stream
    np.testing.assert_array_equal(third, eager[3])
    g.reset()


@pytest.mark.parametrize("first_draw", [
    lambda x: F.dropout((x * 2).sum(0), 0.5),            # a (64, 64) temporary freed before the draw
    lambda x: (x + 1).mean() - 2 + vt.rand(8, device="cuda"),  # temporaries freed before the draw
], ids=["dropout_after_temporary", "rand_after_temporary"])
def test_replays_equal_eager_draws_after_freed_temporaries(first_draw):
    """The graph's Philox (seed, offset) buffer is written before each replay, so no captured
    kernel may use its memory. When it came from the graph's private pool it took the block of a
    temporary freed earlier in the capture, and the replayed temporary overwrote seed and offset:
    the training step's dropout masks (and so its losses) then differed from eager steps."""
    x = vt.ones(64, 64, device="cuda")
    vt.cuda.manual_seed(11)
    eager = [np_of(first_draw(x)) for _ in range(4)]
    vt.cuda.manual_seed(11)
    first_draw(x)  # warm-up: draw 1
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g):
        out = first_draw(x)
    for k in (1, 2, 3):
        g.replay()
        np.testing.assert_array_equal(np_of(out), eager[k], err_msg=f"replay {k}")
    g.reset()


def test_dropout_under_capture_changes_per_replay():
    x = vt.ones(4096, device="cuda")
    y = vt.empty(4096, device="cuda")
    g, _ = _capture(lambda: y.copy_(F.dropout(x, 0.5)))
    masks = []
    for _ in range(3):
        g.replay()
        masks.append(np_of(y) != 0)
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    assert all(0.4 < m.mean() < 0.6 for m in masks)
    assert set(np.unique(np_of(y))) <= {0.0, 2.0}


@pytest.mark.parametrize("name,sync", [
    (".item()", lambda x: x.sum().item()),
    (".tolist()", lambda x: x.tolist()),
    (".cpu()", lambda x: x.cpu()),
    ("print", lambda x: repr(x)),
    ("torch.cuda.synchronize()", lambda x: vt.cuda.synchronize()),
])
def test_syncing_ops_raise_during_capture(name, sync):
    x = vt.ones(4, device="cuda")
    g = vt.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="capturing a CUDA graph"):
        with vt.cuda.graph(g):
            assert vt.cuda.is_current_stream_capturing()
            sync(x)
    assert not vt.cuda.is_capturing() and not vt.cuda.is_current_stream_capturing()
    with pytest.raises(RuntimeError, match="not been captured"):
        g.replay()  # a capture that raised is discarded
    assert x.sum().item() == 4.0  # the runtime stays usable


def test_capture_inside_capture_and_default_stream_refused():
    g1, g2 = vt.cuda.CUDAGraph(), vt.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="already capturing"):
        with vt.cuda.graph(g1):
            with vt.cuda.graph(g2):
                pass
    with pytest.raises(RuntimeError, match="non-default stream"):
        g2.capture_begin(vt.cuda.default_stream())


def test_graphs_share_a_pool():
    pool = vt.cuda.graph_pool_handle()
    x = vt.arange(100, dtype=vt.float32, device="cuda")
    outs = []
    graphs = []
    for k in (2.0, 3.0):
        x * k
        g = vt.cuda.CUDAGraph()
        with vt.cuda.graph(g, pool=pool):
            outs.append(x * k)
        graphs.append(g)
    assert graphs[0].pool() == graphs[1].pool() == pool
    x.copy_(vt.arange(100, dtype=vt.float32, device="cuda") + 1)
    for g in graphs:
        g.replay()
    np.testing.assert_array_equal(np_of(outs[0]), (np.arange(100) + 1) * 2.0)
    np.testing.assert_array_equal(np_of(outs[1]), (np.arange(100) + 1) * 3.0)


def _mlp(seed):
    vt.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).cuda()


def test_make_graphed_callables_module_matches_eager():
    ref, model = _mlp(0), _mlp(0)
    x = vt.randn(8, 16, device="cuda", requires_grad=True)
    graphed = vt.cuda.make_graphed_callables(model, (x,))
    assert graphed is model
    for step in range(3):
        xi = vt.randn(8, 16, device="cuda").requires_grad_(True)
        xr = xi.detach().clone().requires_grad_(True)
        out, out_ref = graphed(xi), ref(xr)
        np.testing.assert_allclose(np_of(out), np_of(out_ref), rtol=1e-5, atol=1e-6)
        (out * (step + 1)).sum().backward()
        (out_ref * (step + 1)).sum().backward()
        np.testing.assert_allclose(np_of(xi.grad), np_of(xr.grad), rtol=1e-5, atol=1e-6)
        for p, q in zip(model.parameters(), ref.parameters()):  # .grad accumulates across steps, as eager
            np.testing.assert_allclose(np_of(p.grad), np_of(q.grad), rtol=1e-5, atol=1e-5)
    model.eval()  # not the captured mode: the original forward runs
    np.testing.assert_allclose(np_of(model(x)), np_of(ref(x)), rtol=1e-5, atol=1e-6)


def test_make_graphed_callables_functions():
    w = vt.randn(5, 5, device="cuda", requires_grad=True)

    def f(a):
        return (a @ w).relu()

    def h(a, b):
        return a * b, a + b

    a = vt.randn(3, 5, device="cuda", requires_grad=True)
    b = vt.randn(3, 5, device="cuda")
    gf, gh = vt.cuda.make_graphed_callables((f, h), ((a,), (a, b)))
    a2 = vt.randn(3, 5, device="cuda", requires_grad=True)
    y = gf(a2)
    np.testing.assert_allclose(np_of(y), np_of((a2 @ w).relu()), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    want = ((np_of(a2) @ np_of(w)) > 0).astype(np.float32) @ np_of(w).T
    np.testing.assert_allclose(np_of(a2.grad), want, rtol=1e-5, atol=1e-5)
    p, s = gh(a2.detach(), b)
    np.testing.assert_allclose(np_of(p), np_of(a2) * np_of(b), rtol=1e-6)
    np.testing.assert_allclose(np_of(s), np_of(a2) + np_of(b), rtol=1e-6)
    with pytest.raises(TypeError, match="only Tensors"):
        vt.cuda.make_graphed_callables(f, (a, 3))


def test_memory_returns_to_baseline_after_training_loop():
    """Forward, backward, optimiser step, del: allocated bytes come back without gc.collect()."""
    import gc
    model = _mlp(1)
    opt = vt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    x, y = vt.randn(64, 16, device="cuda"), vt.randn(64, 4, device="cuda")
    gc.disable()
    try:
        for step in range(3):
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            del loss
            if step == 0:
                base = vt.cuda.memory_allocated()  # parameters + momentum buffers
        assert vt.cuda.memory_allocated() == base
        del opt
        assert vt.cuda.memory_allocated() < base
    finally:
        gc.enable()


@pytest.mark.skipif(not vt.cuda.is_available() or vt.cuda.device_count() < 2,
                    reason="peer copies need 2 GPUs (run on a multi-GPU machine)")
def test_peer_copies_between_devices():
    a = vt.arange(1000, dtype=vt.float32, device="cuda:0")
    b = a.to("cuda:1")
    assert b.device.index == 1
    np.testing.assert_array_equal(np_of(b), np.arange(1000, dtype=np.float32))
    c = vt.zeros(10, 100, dtype=vt.float64, device="cuda:1")
    c.t().copy_(a.reshape(100, 10)[:, :].cuda(0))  # strided destination, casting, across devices
    np.testing.assert_array_equal(np_of(c), np.arange(1000, dtype=np.float64).reshape(100, 10).T)
    back = b.to("cuda:0") * 2
    np.testing.assert_array_equal(np_of(back), np.arange(1000) * 2.0)
