"""One AdamW step over 100 CUDA parameters, vibetensor vs torch (foreach and fused), in one run.

    python3 benchmarks/cuda_optim.py [--json out.json]

Host time: the median over rounds of the mean wall time per step call (the GPU is synchronised
between rounds, so queued work never leaks into the next one). Device time: CUDA events around
20 steps, median per step. Also the allocator's malloc+free host time next to torch's
caching_allocator_alloc/delete, and the launch count of our step.
"""
import argparse
import json
import statistics

import numpy as np
import torch

import vibetensor.torch as vt
from vibetensor.runtime import cuda as rt
from vibetensor.runtime.cuda import launcher
from timing import host_seconds

N_PARAMS = 100


def shapes():
    """Mixed sizes, like a small transformer's: matrices, vectors, biases."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(N_PARAMS):
        kind = i % 4
        out.append(((256, 256), (1024,), (64, 512), (7,))[kind] if rng.random() < 0.9 else (int(rng.integers(1, 5000)),))
    return out


def make(lib, kwargs):
    rng = np.random.default_rng(1)
    params = [lib.tensor(rng.standard_normal(s).astype(np.float32), device="cuda", requires_grad=True)
              for s in shapes()]
    for p in params:
        p.grad = lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32), device="cuda")
    opt = lib.optim.AdamW(params, lr=1e-3, **kwargs)
    return opt


def device_ms(lib, step, reps=20):
    times = []
    for _ in range(5):
        start, end = lib.cuda.Event(enable_timing=True), lib.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / reps)
    return statistics.median(times)


def measure(lib, kwargs):
    opt = make(lib, kwargs)
    host = host_seconds(opt.step, lib.cuda.synchronize, calls=50, rounds=11, warmup=10) * 1e6
    return host, device_ms(lib, opt.step) * 1e3, opt


def launches(opt):
    count = [0]
    orig = launcher.Kernel.__call__

    def counting(k, *a, **kw):
        count[0] += 1
        return orig(k, *a, **kw)
    launcher.Kernel.__call__ = counting
    try:
        opt.step()
    finally:
        launcher.Kernel.__call__ = orig
    return count[0]


def allocator_us(nbytes=4096):
    ours = host_seconds(lambda: rt.caching_allocator_delete(rt.caching_allocator_alloc(nbytes)), vt.cuda.synchronize,
                        calls=5000, rounds=11) * 1e6
    theirs = host_seconds(lambda: torch.cuda.caching_allocator_delete(torch.cuda.caching_allocator_alloc(nbytes)),
                          torch.cuda.synchronize, calls=5000, rounds=11) * 1e6
    tensor_ours = host_seconds(lambda: vt.empty(1024, device="cuda"), vt.cuda.synchronize, calls=5000, rounds=11) * 1e6
    tensor_theirs = host_seconds(lambda: torch.empty(1024, device="cuda"), torch.cuda.synchronize, calls=5000,
                                 rounds=11) * 1e6
    return ours, theirs, tensor_ours, tensor_theirs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    res = {}
    res["ours_host_us"], res["ours_device_us"], opt = measure(vt, {})
    res["ours_launches"] = launches(opt)
    res["ours_foreach_host_us"], res["ours_foreach_device_us"], _ = measure(vt, {"foreach": True})
    res["torch_foreach_host_us"], res["torch_foreach_device_us"], _ = measure(torch, {"foreach": True})
    res["torch_fused_host_us"], res["torch_fused_device_us"], _ = measure(torch, {"fused": True})
    (res["alloc_free_ours_us"], res["alloc_free_torch_us"], res["empty_ours_us"],
     res["empty_torch_us"]) = allocator_us()
    print(f"AdamW step over {N_PARAMS} CUDA params (float32, mixed sizes); our default = fused multi-tensor "
          f"({res['ours_launches']} launches)")
    print(f"{'measure':<40} {'vibetensor':>11} {'torch':>9} {'ratio':>6}")
    rows = [("host us: ours vs torch fused", res["ours_host_us"], res["torch_fused_host_us"]),
            ("host us: ours vs torch foreach", res["ours_host_us"], res["torch_foreach_host_us"]),
            ("host us: foreach=True, both", res["ours_foreach_host_us"], res["torch_foreach_host_us"]),
            ("device us: ours vs torch fused", res["ours_device_us"], res["torch_fused_device_us"]),
            ("device us: ours vs torch foreach", res["ours_device_us"], res["torch_foreach_device_us"]),
            ("allocator alloc+delete host us (4 KiB)", res["alloc_free_ours_us"], res["alloc_free_torch_us"]),
            ("empty(1024) cuda host us", res["empty_ours_us"], res["empty_torch_us"])]
    for name, ours, theirs in rows:
        print(f"{name:<40} {ours:>11.2f} {theirs:>9.2f} {ours / theirs:>6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
