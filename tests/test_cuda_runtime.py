"""The CUDA runtime on a real GPU (marker `cuda`): copies, pinned memory, streams, events,
the caching allocator against torch's, graphs, launches without torch."""
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import vibetensor.torch as vt
from oracle import DTYPES, LAYOUTS, make_pair, to_numpy

pytestmark = pytest.mark.cuda

REAL = [d for d in DTYPES if not d.startswith("complex")]


@pytest.mark.parametrize("dtype", REAL)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip(dtype, layout):
    t, v = make_pair((5, 7), dtype, layout, seed=1)
    g = v.cuda()
    assert g.device == vt.device("cuda", 0) and g.dtype == v.dtype
    np.testing.assert_array_equal(to_numpy(g.cpu()), to_numpy(t))


@pytest.mark.parametrize("src,dst", [("float32", "float16"), ("float32", "bfloat16"), ("int64", "float32"),
                                     ("float64", "int32"), ("bool", "float32"), ("float32", "bool")])
def test_cast_copies_on_device(src, dst):
    t, v = make_pair((4, 6), src, "transposed", seed=2)
    got = v.cuda().to(getattr(vt, dst))
    expect = t.to(getattr(__import__("torch"), dst))
    np.testing.assert_array_equal(to_numpy(got.cpu()), to_numpy(expect))


def test_copy_into_strided_destination_broadcasts():
    dst = vt.zeros(4, 6, device="cuda")
    src = vt.arange(6, dtype=vt.float32).cuda()
    dst[:, ::2].copy_(src[::2])
    expect = np.zeros((4, 6), np.float32)
    expect[:, ::2] = np.arange(6, dtype=np.float32)[::2]
    np.testing.assert_array_equal(dst.cpu().numpy(), expect)


def test_pinned_memory_async_copy():
    x = vt.arange(1 << 20, dtype=vt.float32)
    p = x.pin_memory()
    assert p.is_pinned() and not x.is_pinned()
    g = p.to("cuda", non_blocking=True)
    vt.cuda.synchronize()
    np.testing.assert_array_equal(g.cpu().numpy(), x.numpy())


def test_pinned_copy_captured_in_a_graph_keeps_its_block():
    """A pinned block copied from inside a capture is the graph's (each replay reads it), not the
    cache's: freeing its tensor leaves it alone, reusing the size finds no half-recorded event
    (cuEventQuery used to fail with INVALID_VALUE there), and the block returns after reset()."""
    from vibetensor.runtime.cuda import memory
    host = vt.full((16,), 3.0).pin_memory()
    dev = vt.empty(16, device="cuda")
    g, s = vt.cuda.CUDAGraph(), vt.cuda.Stream()
    s.wait_stream(vt.cuda.current_stream())
    with vt.cuda.graph(g, stream=s):
        dev.copy_(host, non_blocking=True)
    block = weakref.ref(memory.block_of(host._storage.data))
    del host
    again = [vt.full((16,), float(i)).pin_memory() for i in range(3)]  # the same size: the cache is asked
    assert all(a.is_pinned() for a in again)
    g.replay()
    vt.cuda.synchronize()
    np.testing.assert_array_equal(dev.cpu().numpy(), np.full(16, 3.0, np.float32))  # the graph's block, intact
    assert g.extras["pinned blocks"] == [block()] and not block().events
    g.reset()
    assert "pinned blocks" not in g.extras and block() is None  # back in the cache


def test_full_on_device():
    for dtype in (vt.float32, vt.int64, vt.bfloat16, vt.bool):
        g = vt.full((3, 5), 7, dtype=dtype, device="cuda")
        np.testing.assert_array_equal(g.cpu().numpy().astype(np.float64), np.full((3, 5), 7 if dtype is not vt.bool else 1))


def test_streams_and_events():
    s = vt.cuda.Stream()
    assert s != vt.cuda.current_stream()
    with vt.cuda.stream(s):
        assert vt.cuda.current_stream() == s
        x = vt.ones(1 << 20, device="cuda")
    vt.cuda.current_stream().wait_stream(s)
    start, end = vt.cuda.Event(enable_timing=True), vt.cuda.Event(enable_timing=True)
    start.record()
    y = x.cpu()
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) >= 0 and end.query() and s.query()
    assert y.numpy().sum() == 1 << 20


def test_memory_returns_to_baseline_by_refcount():
    import gc
    base = vt.cuda.memory_allocated()
    gc.disable()
    try:
        xs = [vt.ones(1000 + i, device="cuda") for i in range(50)]
        assert vt.cuda.memory_allocated() > base
        del xs
        assert vt.cuda.memory_allocated() == base
    finally:
        gc.enable()


_STATS_SCRIPT = """
import json, sys
import torch
import vibetensor.torch as vt
sizes = [512, 1, 1 << 20, (1 << 20) + 1, 3 << 20, 25 << 20, 7 << 20, 100]
out = {}
for name, lib in (("vt", vt), ("torch", torch)):
    live = [lib.empty(n, dtype=lib.uint8, device="cuda") for n in sizes]
    for i in (1, 3, 4):
        live[i] = None
    stats = lib.cuda.memory_stats()
    out[name] = [(k, stats.get(k, 0)) for k in (
        "allocated_bytes.all.current", "reserved_bytes.all.current", "allocation.all.current",
        "segment.all.current", "active_bytes.all.current", "inactive_split.all.current",
        "allocation.small_pool.current", "allocation.large_pool.current")]
json.dump(out, sys.stdout)
"""


def test_allocator_statistics_equal_torch():
    """The same sequence of allocations and frees gives torch's numbers. In a fresh process: in a
    test worker, blocks other tests left alive (cached RNG state, error buffers) change where the
    small requests land, for either library."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", _STATS_SCRIPT], capture_output=True, text=True, timeout=300, cwd=root,
                       env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["vt"] == stats["torch"]


def test_record_stream_delays_reuse():
    """A block used on another stream is not handed out again until that stream's work is done."""
    s = vt.cuda.Stream()
    big, big2 = vt.ones(1 << 26, device="cuda"), vt.empty(1 << 26, device="cuda")
    x = vt.ones(1 << 18, device="cuda")
    ptr = x.data_ptr()
    vt.cuda.synchronize()
    with vt.cuda.stream(s):
        for _ in range(30):  # ~10 ms of copies keep s busy while we free and re-allocate
            big2.copy_(big)
    x.record_stream(s)
    del x
    y = vt.empty(1 << 18, device="cuda")
    assert y.data_ptr() != ptr, "a block still in use on another stream was reused"
    s.synchronize()
    del y
    z = vt.empty(1 << 18, device="cuda")
    w = vt.empty(1 << 18, device="cuda")
    assert ptr in (z.data_ptr(), w.data_ptr()), "the block did not come back after the stream finished"


def test_out_of_memory_is_recoverable():
    free, total = vt.cuda.mem_get_info()
    with pytest.raises(vt.cuda.OutOfMemoryError) as e:
        vt.empty(total * 2, dtype=vt.uint8, device="cuda")
    assert "Tried to allocate" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    x = vt.ones(10, device="cuda")
    assert x.cpu().numpy().sum() == 10


def test_bad_device_ordinal():
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        vt.ones(2, device="cuda:99")


def test_capture_rejects_default_stream():
    g = vt.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="non-default stream"):
        g.capture_begin(vt.cuda.default_stream())


def test_runtime_and_launches_need_no_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import vibetensor.torch as vt\n"
            "x = vt.full((1000,), 2.0, device='cuda')\n"
            "assert x.cpu().numpy().sum() == 2000\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12), ("bfloat16", 1e-2), ("float16", 2e-3)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
def test_cublas_gemm_through_our_handles(dtype, tol, trans_a, trans_b):
    """cuBLAS via nvmath on our allocations (workspace from our allocator): batched, transposed."""
    from vibetensor.runtime.cuda import blas
    rng = np.random.default_rng(0)
    batch, m, n, k = 3, 33, 17, 45
    npd = getattr(vt, dtype).np
    a = rng.standard_normal((batch, k, m) if trans_a else (batch, m, k)).astype(npd)
    b = rng.standard_normal((batch, n, k) if trans_b else (batch, k, n)).astype(npd)
    ga, gb = vt.from_numpy(a).cuda(), vt.from_numpy(b).cuda()
    gc = vt.full((batch, m, n), float("nan"), dtype=getattr(vt, dtype), device="cuda")
    blas.gemm(ga.data_ptr(), gb.data_ptr(), gc.data_ptr(), m, n, k, dtype, 0,
              lda=a.shape[2], ldb=b.shape[2], ldc=n, trans_a=trans_a, trans_b=trans_b, batch=batch,
              stride_a=m * k, stride_b=k * n, stride_c=m * n)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = (a64.transpose(0, 2, 1) if trans_a else a64) @ (b64.transpose(0, 2, 1) if trans_b else b64)
    got = gc.cpu().numpy().astype(np.float64)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < tol


def test_graph_replay_rereads_inputs_and_uses_a_private_pool():
    s = vt.cuda.Stream()
    src = vt.arange(1000, dtype=vt.float32).cuda()
    out = vt.full((1000,), -1.0, device="cuda")
    with vt.cuda.stream(s):  # warm up: compile the kernels outside the capture
        out.copy_(src.to(vt.float16))
    s.synchronize()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g, stream=s):
        tmp = src.to(vt.float16)  # allocated during capture: from the graph's private pool
        out.copy_(tmp)
    del tmp  # its block stays in the private pool: the replayed kernels keep writing it
    reserved = vt.cuda.memory_reserved()
    src.copy_(vt.arange(1000, dtype=vt.float32) * 2)
    g.replay(s)
    s.synchronize()
    np.testing.assert_array_equal(out.cpu().numpy(), np.arange(1000, dtype=np.float32) * 2)
    assert vt.cuda.memory_reserved() == reserved
    g.reset()
    vt.cuda.empty_cache()
    assert vt.cuda.memory_reserved() <= reserved


def test_host_sync_inside_capture_raises_and_runtime_stays_usable():
    x = vt.ones(4, device="cuda")
    g = vt.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="capturing a CUDA graph"):
        with vt.cuda.graph(g):
            x.cpu()
    assert not vt.cuda.is_capturing()
    assert x.cpu().numpy().sum() == 4


def test_full_is_exact_for_every_dtype():
    for dtype, value in ((vt.int64, 2**62 + 1), (vt.float64, 0.1), (vt.float32, 1 / 3), (vt.int8, -7),
                         (vt.bfloat16, 3.14159), (vt.bool, True)):
        np.testing.assert_array_equal(vt.full((3,), value, dtype=dtype, device="cuda").cpu().numpy(),
                                      vt.full((3,), value, dtype=dtype).numpy())
    with pytest.raises(RuntimeError, match="overflow"):
        vt.full((2,), 300, dtype=vt.int8, device="cuda")


def _affine_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def affine(x_ptr, out_ptr, n, scale, shift, negate, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        y = tl.load(x_ptr + offs, mask=mask) * scale + shift
        y = tl.where(negate, -y, y)
        tl.store(out_ptr + offs, y, mask=mask)
    return affine


@pytest.mark.parametrize("n", [1, 16, 17, 1000])
@pytest.mark.parametrize("shift", [0, 3, 2 ** 33])
def test_cached_launch_in_c_equals_python_path(n, shift):
    """Kernel's C path (fastlaunch.launch_cached) keys the cache exactly as launcher.specialize,
    and launches what Triton's own path computes: ints specialised as 1 / multiple of 16 / 64-bit."""
    from vibetensor.runtime.cuda import fastlaunch, launcher
    k = launcher.Kernel(_affine_kernel(), BLOCK=256)
    x = vt.arange(n, dtype=vt.float32, device="cuda") - 7.0
    ref = (x.cpu().numpy() * 2.5 + np.float32(shift)) * -1.0
    for negate in (True, True, True):  # the first call compiles, the others take the C path
        out = vt.full((n,), float("nan"), device="cuda")
        k((launcher.cdiv(n, 256),), x, out, n, 2.5, shift, negate)
        np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-6)
    mod = fastlaunch.module()
    assert mod is not None and launcher._c_launch[0] is mod.launch_cached
    args = (x, out, n, 2.5, shift, True)
    key = mod.launch_cached({}, 0, 0, (1,), k.tail, *args)  # an empty cache: the key comes back
    assert key == (launcher.specialize(args)[0], 0) and key in k.cache
    assert mod.launch_cached({}, 0, 0, (1,), k.tail, x, out, 2 ** 70, 2.5, 0, True) is NotImplemented


def test_kernel_call_in_c_follows_every_signature_change():
    """Kernel.__call__ in C (fastlaunch.install) remembers its last signature: alternating pointer
    alignment, int specialisations, raw PointerArgs, streams (current or stream=) and a recording
    plan each launch what the Python path launches."""
    from vibetensor.runtime.cuda import launcher
    k = launcher.Kernel(_affine_kernel(), BLOCK=256)
    base = vt.arange(40, dtype=vt.float32, device="cuda") - 7.0
    side = vt.cuda.Stream()
    cases = [(0, 17), (1, 17), (0, 16), (4, 1), (1, 17), (0, 17), (0, 16)]  # (pointer offset, n)
    for rep in range(2):  # the first pass compiles what is new; the second runs on memos and cache hits
        for offset, n in cases:
            x = base[offset:offset + n]
            ref = (x.cpu().numpy() * 2.5 + np.float32(3)) * -1.0
            out = vt.full((n,), float("nan"), device="cuda")
            k((1,), x, out, n, 2.5, 3, True)
            np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-6)
            raw = vt.full((n,), float("nan"), device="cuda")
            k((1,), launcher.PointerArg(x.data_ptr(), x.dtype), launcher.PointerArg(raw.data_ptr(), raw.dtype),
              n, 2.5, 3, True)
            np.testing.assert_array_equal(raw.cpu().numpy(), out.cpu().numpy())
            on_side = vt.full((n,), float("nan"), device="cuda")
            side.wait_stream(vt.cuda.current_stream())
            if rep:
                with vt.cuda.stream(side):
                    k((1,), x, on_side, n, 2.5, 3, True)
            else:
                k((1,), x, on_side, n, 2.5, 3, True, stream=side)
            side.synchronize()
            np.testing.assert_array_equal(on_side.cpu().numpy(), out.cpu().numpy())
    assert launcher.Kernel.__call__ is not launcher.Kernel._call  # the C version is installed
    assert k.memo is not None and k.memo[2] in k.cache and k.memo[0] is k.cache[k.memo[2]]
    rec = launcher.recorders[threading.get_ident()] = []
    try:
        k((1,), x, out, n, 2.5, 3, True)
    finally:
        del launcher.recorders[threading.get_ident()]
    assert len(rec) == 1 and rec[0][0] is k  # a recording plan sees the launch
