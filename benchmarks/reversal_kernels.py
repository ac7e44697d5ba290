"""GPU time per kernel of one reversal training step, vibetensor vs torch, in one run (GPU machine).

    python3 benchmarks/reversal_kernels.py [--steps 20] [--top 25] [--json out.json]

The captured variants (our `vibetensor.compile(step)` and torch's whole-step CUDA graph) are
limited by GPU time, so their gap is in the kernels. torch.profiler's CUPTI tracing is
process-wide: it records every kernel the process runs, ours (launched through the driver, inside
graph replays) included. Kernel durations are summed per name over `--steps` replays and printed
per step, largest first, with the totals: kernels per step, kernel time per step, and the replay
wall time per step (CUDA events) for each side. The eager variants' kernel totals follow, to
separate their GPU time from their host time.
"""
import argparse
import collections
import json
import os
import statistics
import tempfile

import torch
from torch.profiler import ProfilerActivity, profile

import vibetensor.torch as vt
from vibetensor.compile import compile as vt_compile
from vibetensor.workloads import reversal as R


def kernels(trace_path):
    """{name: [count, total us]} of the GPU kernels, memcpys and memsets in a chrome trace."""
    with open(trace_path) as f:
        events = json.load(f)["traceEvents"]
    out = collections.defaultdict(lambda: [0, 0.0])
    for e in events:
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            k = out[e["name"][:90]]
            k[0] += 1
            k[1] += e.get("dur", 0.0)
    return out


def profiled(fn, steps, sync):
    """Kernel table (see `kernels`) of `steps` calls of fn."""
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        sync()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        return kernels(path)


def event_ms(fw, fn, steps):
    start, end = fw.cuda.Event(enable_timing=True), fw.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / steps)
    return statistics.median(times)


def ours(cfg, X, Y, captured):
    model, opt, step = R.make(vt, cfg, "cuda")
    fn = (lambda x, y: step(model, opt, x, y, cfg.clip))
    if captured:
        fn = vt_compile(fn)
    for i in range(4):  # eager, capture, replays
        fn(X[i], Y[i])
    vt.cuda.synchronize()
    return lambda: fn(X[0], Y[0])


def theirs(cfg, X, Y, captured):
    model, opt, step = R.make(torch, cfg, "cuda")
    if not captured:
        for i in range(3):
            step(model, opt, X[i], Y[i], cfg.clip)
        return lambda: step(model, opt, X[0], Y[0], cfg.clip)
    sx, sy = X[0].clone(), Y[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(model, opt, sx, sy, cfg.clip)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step(model, opt, sx, sy, cfg.clip)
    return graph.replay


def table(name, ks, steps, top):
    total = sum(v[1] for v in ks.values()) / steps
    count = sum(v[0] for v in ks.values()) / steps
    print(f"\n{name}: {count:.0f} kernels per step, {total:.1f} us of kernel time per step")
    print(f"  {'us/step':>8} {'n/step':>6}  kernel")
    for k, (n, us) in sorted(ks.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {us / steps:8.1f} {n / steps:6.1f}  {k}")
    return {"kernels_per_step": count, "kernel_us_per_step": total,
            "top": {k: [n / steps, us / steps] for k, (n, us) in ks.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json")
    args = ap.parse_args()
    cfg = R.Config()
    xs, ys = R.batches(cfg, iters=4)
    data = {vt: R.upload(vt, xs, ys, "cuda"), torch: R.upload(torch, xs, ys, "cuda")}
    results, walls = {}, {}
    for captured in (True, False):
        for fw, make in ((vt, ours), (torch, theirs)):
            name = f"{'vibetensor' if fw is vt else 'torch'} {'captured' if captured else 'eager'}"
            fn = make(cfg, *data[fw], captured)
            walls[name] = event_ms(fw, fn, args.steps)
            results[name] = table(name, profiled(fn, args.steps, fw.cuda.synchronize), args.steps, args.top)
            results[name]["wall_ms_per_step"] = walls[name]
    print(f"\n{'variant':<22} {'wall ms/step':>12} {'kernel us/step':>15} {'kernels/step':>13}")
    for name, r in results.items():
        print(f"{name:<22} {r['wall_ms_per_step']:>12.3f} {r['kernel_us_per_step']:>15.1f} "
              f"{r['kernels_per_step']:>13.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
