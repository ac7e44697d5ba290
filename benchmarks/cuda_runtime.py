"""CUDA runtime benchmark and self-check, vibetensor vs torch in one run (GPU machine).

    python3 benchmarks/cuda_runtime.py [--json out.json]

Phase 1 runs with `import torch` blocked, proving our runtime and Triton launches need no torch:
  - a Triton add through our launcher, checked against NumPy
  - host time per launch: our cached fast path vs Triton's JIT path (`kernel[grid](...)`)
  - 100 launches captured into a CUDA graph on a side stream: replay equals eager; time per kernel
Phase 2 imports torch and measures torch eager `x + y` host time on the same machine.
"""
import argparse
import json
import statistics
import sys

import numpy as np

sys.modules["torch"] = None  # phase 1: any torch import fails loudly

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from vibetensor.runtime.cuda import driver as drv  # noqa: E402
from vibetensor.runtime.cuda import graphs, launcher, stream as streams  # noqa: E402
from timing import host_seconds, round_robin_us  # noqa: E402


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)


class F32:
    def __str__(self):
        return "torch.float32"


def device_array(host):
    cu = drv._driver()
    ptr = int(drv.call(cu.cuMemAlloc, host.nbytes))
    drv.call(cu.cuMemcpyHtoD, ptr, host.ctypes.data, host.nbytes)
    return launcher.PointerArg(ptr, F32())


def to_host(p, n):
    out = np.empty(n, np.float32)
    drv.call(drv._driver().cuMemcpyDtoH, out.ctypes.data, p.ptr, out.nbytes)
    return out


def host_time(fn, calls=2000, rounds=11):
    return host_seconds(fn, streams.synchronize, calls, rounds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    drv.init()
    props = drv.properties(0)
    print(f"device: {props['name']} sm_{props['major']}{props['minor']} SMs={props['multi_processor_count']}")
    drv.ensure_context(0)
    rng = np.random.default_rng(0)
    n = 1024
    xa, ya = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    x, y, out = device_array(xa), device_array(ya), device_array(np.full(n, np.nan, np.float32))
    add = launcher.Kernel(add_kernel, BLOCK=1024)
    grid = (triton.cdiv(n, 1024),)
    add(grid, x, y, out, n)
    streams.synchronize()
    assert np.array_equal(to_host(out, n), xa + ya), "Triton add through our launcher is wrong"
    fast, launch, function, a, b, c = next(iter(add.cache.values()))
    results["lean_c_launcher"] = fast
    s0 = streams.current_stream().cuda_stream
    ctx_sync = (lambda: drv.call(drv._driver().cuCtxSynchronize))
    created = streams.Stream()
    if fast:
        def c_launch(gx, stream):
            return lambda: launch(function, gx, 1, 1, b, c, stream, a, x.ptr, y.ptr, out.ptr, n, 1024)
    else:
        def c_launch(gx, stream):
            return lambda: launch(gx, 1, 1, stream, function, b, c, None, None, a, None, None, None, x.ptr, y.ptr,
                                  out.ptr, n, 1024)
    cases = {
        "fast_launch_us": (lambda: add(grid, x, y, out, n), 2000, ctx_sync),
        "triton_jit_launch_us": (lambda: add_kernel[grid](x, y, out, n, BLOCK=1024), 2000, ctx_sync),
        # where the fast path's time goes: building the key, the current stream, the bare C launch
        "specialize_us": (lambda: launcher.specialize((x, y, out, n)), 20000, ctx_sync),
        "current_stream_us": (lambda: streams.current_stream(), 20000, ctx_sync),
        "c_launch_only_us": (c_launch(1, s0), 2000, ctx_sync),
        # the C launch split: argument conversion alone (an empty grid returns before the driver), and
        # cuLaunchKernel on the legacy NULL stream (above) vs the per-thread default stream vs a created one
        "c_call_no_launch_us": (c_launch(0, s0), 20000, ctx_sync),
        "c_launch_per_thread_stream_us": (c_launch(1, 2), 2000, ctx_sync),
        "c_launch_created_stream_us": (c_launch(1, created.cuda_stream), 2000, ctx_sync),
    }
    results.update(round_robin_us(cases, rounds=15))

    # graph: 100 dependent launches (out = out + y) captured, replay equals eager
    big = 1 << 20
    ba = rng.standard_normal(big).astype(np.float32)
    bb = rng.standard_normal(big).astype(np.float32)
    bx, by = device_array(ba), device_array(bb)
    g = graphs.CUDAGraph()
    side = streams.Stream()
    add((big // 1024,), bx, by, bx, big, stream=side)  # compile outside the capture
    side.synchronize()
    drv.call(drv._driver().cuMemcpyHtoD, bx.ptr, ba.ctypes.data, ba.nbytes)
    with graphs.graph(g, stream=side):
        for _ in range(100):
            add((big // 1024,), bx, by, bx, big)
    g.replay(side)
    side.synchronize()
    expect = ba.copy()
    for _ in range(100):
        expect = expect + bb
    got = to_host(bx, big)
    assert np.allclose(got, expect, rtol=1e-5, atol=1e-4), "graph replay != eager"
    start, end = streams.Event(enable_timing=True), streams.Event(enable_timing=True)
    times = []
    for _ in range(20):
        start.record(side)
        g.replay(side)
        end.record(side)
        end.synchronize()
        times.append(start.elapsed_time(end) / 100 * 1e3)
    results["graph_replay_us_per_kernel"] = statistics.median(times)

    # phase 2: torch, for comparison, on the same machine
    del sys.modules["torch"]
    import torch
    tx, ty = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
    results["torch_add_host_us"] = host_time(lambda: tx + ty) * 1e6
    tg = torch.cuda.CUDAGraph()
    bx_t, by_t = torch.randn(big, device="cuda"), torch.randn(big, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        bx_t.add_(by_t)
    torch.cuda.synchronize()
    with torch.cuda.graph(tg):
        for _ in range(100):
            bx_t.add_(by_t)
    times = []
    for _ in range(20):
        st, en = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        st.record()
        tg.replay()
        en.record()
        en.synchronize()
        times.append(st.elapsed_time(en) / 100 * 1e3)
    results["torch_graph_replay_us_per_kernel"] = statistics.median(times)

    print(f"{'measure':<34} {'vibetensor':>11} {'torch/triton':>13} {'ratio':>6}")
    rows = [("launch host us (cached kernel)", results["fast_launch_us"], results["triton_jit_launch_us"]),
            ("launch host us vs torch x+y", results["fast_launch_us"], results["torch_add_host_us"]),
            ("graph replay us per kernel", results["graph_replay_us_per_kernel"],
             results["torch_graph_replay_us_per_kernel"])]
    for name, ours, theirs in rows:
        print(f"{name:<34} {ours:>11.2f} {theirs:>13.2f} {ours / theirs:>6.2f}")
    print(f"lean C launcher in use: {results['lean_c_launcher']}")
    print("fast-path parts (us): " + ", ".join(f"{k}={results[k]:.2f}" for k in
                                             ("specialize_us", "c_launch_only_us", "current_stream_us")))
    print("C launch (us): " + ", ".join(f"{k}={v:.2f}" for k, v in results.items() if k.startswith("c_")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
