"""Two GPUs (marker `cuda`; skipped with fewer than two): peer copies both ways (strided, offset and
broadcast sources, every dtype, casts, into strided destinations), their stream order (work queued on a
side stream of the source or of the destination), host copies to and from the second GPU, the device
guard and current device, per-device allocator statistics, wrong ordinals, checkpoints across devices,
and ops on tensors of a GPU that is not the current one. Values are checked against torch's."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair


def _two_gpus():
    try:
        return vt.cuda.is_available() and vt.cuda.device_count() >= 2
    except Exception:
        return False


pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not _two_gpus(), reason="needs two GPUs")]

DIRECTIONS = [(0, 1), (1, 0)]
DTYPES = ["float32", "bfloat16", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"]
VIEWS = {  # how the source is laid out on its GPU: the same view of the same values in both libraries
    "contiguous": lambda a: a,
    "transposed": lambda a: a.transpose(0, 1),  # dense, not contiguous: to() keeps its strides
    "strided": lambda a: a[::2, 1::3],
    "offset": lambda a: a[1:, 2:],              # a storage offset
    "expanded": lambda a: a[:1].expand(6, 12),  # stride 0
}


def _pair_on(dtype, index, seed=0, shape=(6, 12)):
    """(torch, vt) tensors with equal values on cuda:index (through a host copy to that GPU)."""
    t, v = make_pair(shape, dtype, seed=seed)
    return t.to(f"cuda:{index}"), v.to(f"cuda:{index}")


@pytest.fixture(autouse=True)
def _current_device_stays_0():
    """Every test starts on cuda:0 and must leave it current: moving tensors never switches devices."""
    assert vt.cuda.current_device() == 0
    yield
    assert vt.cuda.current_device() == 0


@pytest.mark.parametrize("src,dst", DIRECTIONS)
@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_to_other_gpu(src, dst, view, dtype):
    t, v = _pair_on(dtype, src, seed=1)
    got = VIEWS[view](v).to(f"cuda:{dst}")
    expected = VIEWS[view](t).to(f"cuda:{dst}")
    assert got.device == vt.device("cuda", dst)
    assert_same(got, expected, rtol=0, atol=0, check_stride=True)


@pytest.mark.parametrize("src,dst", DIRECTIONS)
def test_complex_and_empty_tensors_cross(src, dst):
    for dtype, shape in (("complex64", (3, 5)), ("float32", (0, 4)), ("int64", ())):
        t, v = _pair_on(dtype, src, seed=2, shape=shape)
        assert_same(v.to(f"cuda:{dst}"), t.to(f"cuda:{dst}"), rtol=0, atol=0)


@pytest.mark.parametrize("src,dst", DIRECTIONS)
@pytest.mark.parametrize("from_dtype,to_dtype", [("float32", "bfloat16"), ("float32", "float16"),
                                                 ("int64", "float32"), ("float64", "int32"), ("bool", "float32"),
                                                 ("float32", "bool"), ("bfloat16", "float64")])
@pytest.mark.parametrize("view", ["contiguous", "transposed", "strided"])
def test_to_other_gpu_with_cast(src, dst, from_dtype, to_dtype, view):
    t, v = _pair_on(from_dtype, src, seed=3)
    got = VIEWS[view](v).to(f"cuda:{dst}", getattr(vt, to_dtype))
    expected = VIEWS[view](t).to(f"cuda:{dst}", getattr(torch, to_dtype))
    assert got.device == vt.device("cuda", dst)
    assert_same(got, expected, rtol=0, atol=0, check_stride=True)


@pytest.mark.parametrize("src,dst", DIRECTIONS)
@pytest.mark.parametrize("non_blocking", [False, True])
@pytest.mark.parametrize("dst_dtype", ["float32", "float64"])
def test_copy_into_strided_destination_on_other_gpu(src, dst, non_blocking, dst_dtype):
    """copy_ across GPUs into a strided view, broadcasting a strided source and casting."""
    ts, vs = _pair_on("float32", src, seed=4, shape=(12,))
    td, vd = _pair_on(dst_dtype, dst, seed=5, shape=(6, 12))
    for d, s in ((td, ts), (vd, vs)):
        d[1:, ::2].copy_(s[::2], non_blocking=non_blocking)  # (5, 6) <- (6,), broadcast
    assert_same(vd, td, rtol=0, atol=0)
    ts2, vs2 = _pair_on("bfloat16", src, seed=6, shape=(12, 6))
    td.t().copy_(ts2, non_blocking=non_blocking)  # a transposed destination, another dtype
    vd.t().copy_(vs2, non_blocking=non_blocking)
    assert_same(vd, td, rtol=0, atol=0)


@pytest.mark.parametrize("src,dst", DIRECTIONS)
def test_copy_waits_for_work_on_the_sources_side_stream(src, dst):
    """The copy runs on the source's current stream, after the work queued there (here: ~ms of copies
    and then the write of the values), and the destination's stream waits for it: no host sync."""
    n = 1 << 22
    s = vt.cuda.Stream(device=src)
    assert s.device == vt.device("cuda", src)
    with vt.cuda.device(src):
        big, big2 = vt.ones(1 << 26, device="cuda"), vt.empty(1 << 26, device="cuda")
        x = vt.zeros(n, device="cuda")
    vt.cuda.synchronize(src)
    with vt.cuda.stream(s):
        assert vt.cuda.current_device() == src and vt.cuda.current_stream() == s
        for _ in range(20):
            big2.copy_(big)
        x.fill_(7.0)
        y = x.to(f"cuda:{dst}", non_blocking=True)
        z = vt.empty(n, device=f"cuda:{dst}")
        z.copy_(x, non_blocking=True)
    assert y.device == vt.device("cuda", dst)
    assert (y.cpu().numpy() == 7.0).all() and (z.cpu().numpy() == 7.0).all()  # read on dst's own stream
    vt.cuda.current_stream(src).wait_stream(s)  # s's work is done before x is freed on the default stream


@pytest.mark.parametrize("src,dst", DIRECTIONS)
def test_copy_waits_for_work_on_the_destinations_stream(src, dst):
    """A copy into memory that the destination's current (side) stream is still writing lands after it."""
    n = 1 << 22
    s = vt.cuda.Stream(device=dst)
    with vt.cuda.device(dst):
        big, big2 = vt.ones(1 << 26, device="cuda"), vt.empty(1 << 26, device="cuda")
        out = vt.zeros(n, device="cuda")
    with vt.cuda.device(src):
        x = vt.full((n,), 9.0, device="cuda")
    vt.cuda.synchronize(src)
    vt.cuda.synchronize(dst)
    with vt.cuda.stream(s):
        for _ in range(20):
            big2.copy_(big)
        out.fill_(5.0)     # queued behind the copies on s
        out.copy_(x)       # peer copy: after the fill, before anything queued later on s
    s.synchronize()
    assert (out.cpu().numpy() == 9.0).all()


def test_host_copies_to_and_from_the_second_gpu():
    x = vt.arange(1 << 20, dtype=vt.float32)
    g = x.pin_memory().to("cuda:1", non_blocking=True)  # truly asynchronous: ordered on cuda:1's stream
    assert g.device == vt.device("cuda", 1)
    np.testing.assert_array_equal(g.cpu().numpy(), x.numpy())
    for dtype, view in (("bfloat16", "transposed"), ("int64", "strided"), ("bool", "offset"), ("float32", "expanded")):
        t, v = _pair_on(dtype, 1, seed=7)
        assert_same(VIEWS[view](v).cpu(), VIEWS[view](t).cpu(), rtol=0, atol=0)
        assert_same(VIEWS[view](v).to("cpu", vt.float64), VIEWS[view](t).to("cpu", torch.float64), rtol=0, atol=0)
    host = vt.zeros(6, 12)
    host[:, ::2].copy_(_pair_on("float32", 1, seed=8)[1][:, 1::2])  # device -> a strided host view
    expect = torch.zeros(6, 12)
    expect[:, ::2].copy_(_pair_on("float32", 1, seed=8)[0][:, 1::2])
    assert_same(host, expect, rtol=0, atol=0)


def test_to_forms_and_round_trip():
    t, v = _pair_on("float32", 0, seed=9)
    one = v.to("cuda:1")
    assert one.to("cuda:1") is one and one.to(1) is one and one.cuda(1) is one
    assert v.cuda(1).device == v.to(vt.device("cuda", 1)).device == vt.device("cuda", 1)
    back = one.to("cuda:0", copy=True)
    assert back.device == vt.device("cuda", 0)
    assert_same(back, t, rtol=0, atol=0)


def test_device_guard_current_device_and_streams():
    x = vt.ones(3).to("cuda:1")
    assert vt.cuda.current_device() == 0 == torch.cuda.current_device()  # allocating on cuda:1 switches nothing
    s1 = vt.cuda.Stream(device=1)
    vt.cuda.synchronize(1)
    s1.synchronize()
    vt.cuda.current_stream(1).synchronize()
    assert vt.cuda.current_stream(1).query() and s1.query()
    free, total = vt.cuda.mem_get_info(1)
    assert 0 < free <= total
    assert vt.cuda.current_device() == 0
    with vt.cuda.device(1):
        assert vt.cuda.current_device() == 1 and vt.cuda.current_stream().device == vt.device("cuda", 1)
        y = vt.ones(3, device="cuda")  # "cuda" is the current device
        assert y.device == vt.device("cuda", 1)
        z = y * 2 + x
        with vt.cuda.device(0):
            assert vt.cuda.current_device() == 0
        assert vt.cuda.current_device() == 1
    assert vt.cuda.current_device() == 0
    assert z.device == vt.device("cuda", 1) and z.cpu().tolist() == [3.0, 3.0, 3.0]
    with vt.cuda.stream(s1):  # a stream's context makes its device current too
        assert vt.cuda.current_device() == 1 and vt.cuda.current_stream() == s1
        w = vt.full((4,), 2.0, device="cuda")
    assert vt.cuda.current_device() == 0 and w.device == vt.device("cuda", 1)
    vt.cuda.current_stream(1).wait_stream(s1)
    assert w.cpu().tolist() == [2.0] * 4
    e = vt.cuda.current_stream(1).record_event()  # an event of cuda:1's default stream, waited on cuda:0
    vt.cuda.current_stream(0).wait_event(e)
    e.synchronize()
    assert e.query()
    vt.cuda.set_device(1)
    try:
        assert vt.cuda.current_device() == 1 and vt.ones(2, device="cuda").device == vt.device("cuda", 1)
    finally:
        vt.cuda.set_device(0)


def test_allocator_statistics_are_per_device():
    base0, base1 = vt.cuda.memory_allocated(0), vt.cuda.memory_allocated(1)
    x = vt.empty(1 << 20, dtype=vt.uint8, device="cuda:1")
    assert vt.cuda.memory_allocated(1) == base1 + (1 << 20) and vt.cuda.memory_allocated(0) == base0
    assert vt.cuda.memory_allocated("cuda:1") == vt.cuda.memory_allocated(vt.device("cuda", 1)) == base1 + (1 << 20)
    assert vt.cuda.memory_stats(1)["allocated_bytes.all.current"] == base1 + (1 << 20)
    assert vt.cuda.max_memory_allocated(1) >= base1 + (1 << 20)
    assert "device ID 1 " in vt.cuda.memory_summary(1)
    del x
    assert vt.cuda.memory_allocated(1) == base1
    vt.cuda.reset_peak_memory_stats(1)
    assert vt.cuda.max_memory_allocated(1) == base1
    assert any(seg["device"] == 1 for seg in vt.cuda.memory_snapshot())


def test_allocator_statistics_on_the_second_gpu_equal_torch():
    """The same sequence of allocations and frees on cuda:1 gives torch's numbers there."""
    sizes = [512, 1, 1 << 20, (1 << 20) + 1, 3 << 20, 25 << 20, 7 << 20, 100]
    frees = [1, 3, 4]
    ours, theirs = [], []
    for lib, keep in ((vt, ours), (torch, theirs)):
        lib.cuda.empty_cache()
        base = lib.cuda.memory_stats(1)
        live = [lib.empty(n, dtype=lib.uint8, device="cuda:1") for n in sizes]
        for i in frees:
            live[i] = None
        stats = lib.cuda.memory_stats(1)
        keep.extend((k, stats.get(k, 0) - base.get(k, 0)) for k in (
            "allocated_bytes.all.current", "reserved_bytes.all.current", "allocation.all.current",
            "segment.all.current", "active_bytes.all.current", "inactive_split.all.current",
            "allocation.small_pool.current", "allocation.large_pool.current"))
        del live
    assert ours == theirs


def test_wrong_device_ordinal():
    n = vt.cuda.device_count()
    x = vt.ones(2, device="cuda:0")
    attempts = {
        "empty": lambda: vt.empty(2, device=f"cuda:{n}"),
        "to": lambda: x.to(f"cuda:{n}"),
        "host to": lambda: vt.ones(2).to(f"cuda:{n}"),
        "set_device": lambda: vt.cuda.set_device(n),
        "Stream": lambda: vt.cuda.Stream(device=n),
        "device guard": lambda: vt.cuda.device(n).__enter__(),
        "synchronize": lambda: vt.cuda.synchronize(n),
        "mem_get_info": lambda: vt.cuda.mem_get_info(n),
        "properties": lambda: vt.cuda.get_device_properties(n),
    }
    for name, attempt in attempts.items():
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            attempt()
        assert vt.cuda.current_device() == 0, name
    with pytest.raises(RuntimeError):  # torch rejects it with the same exception type
        torch.empty(2, device=f"cuda:{n}")
    assert x.device == vt.device("cuda", 0) and x.cpu().tolist() == [1.0, 1.0]  # the runtime is fine afterwards


def test_checkpoint_across_devices(tmp_path):
    path = tmp_path / "ck.pt"
    t, v = _pair_on("float32", 1, seed=10)
    vt.save({"a": v, "b": VIEWS["strided"](v), "c": v.to("cuda:0")}, path)
    back = vt.load(path)
    assert back["a"].device == vt.device("cuda", 1) and back["c"].device == vt.device("cuda", 0)
    assert_same(back["b"], VIEWS["strided"](t), rtol=0, atol=0)
    swapped = vt.load(path, map_location={"cuda:1": "cuda:0", "cuda:0": "cuda:1"})
    assert swapped["a"].device == vt.device("cuda", 0) and swapped["c"].device == vt.device("cuda", 1)
    assert_same(swapped["a"], t, rtol=0, atol=0)
    moved = vt.load(path, map_location=lambda storage, location: storage.cuda(1))
    assert {k: x.device.index for k, x in moved.items()} == {"a": 1, "b": 1, "c": 1}
    assert vt.load(path, map_location="cuda:1")["c"].device == vt.device("cuda", 1)


# Ops (kernels, factories, autograd) on tensors of a GPU that is not the current one run on that GPU, as
# torch's device guard makes them. Run in a child process: a kernel launched on the wrong GPU faults, and a
# fault poisons the CUDA context for the rest of the process.
_OPS_ON_THE_OTHER_GPU = textwrap.dedent("""
    import vibetensor.torch as vt
    assert vt.cuda.current_device() == 0
    a = vt.arange(6.0).to("cuda:1")
    b = vt.ones(6, device="cuda:1")             # a factory for cuda:1 while cuda:0 is current
    c = (a * 2 + b).sum()
    assert c.device == vt.device("cuda", 1), c.device
    assert c.cpu().item() == 36.0, c.cpu().item()
    w = vt.ones(4, device="cuda:0", requires_grad=True)
    loss = (w.to("cuda:1") * 3).sum()           # forward across GPUs; backward brings the gradient home
    loss.backward()
    assert w.grad.device == vt.device("cuda", 0) and w.grad.cpu().tolist() == [3.0] * 4
    assert vt.cuda.current_device() == 0
    print("ok")
""")


def test_ops_run_on_their_tensors_gpu_not_the_current_one():
    run = subprocess.run([sys.executable, "-c", _OPS_ON_THE_OTHER_GPU], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
