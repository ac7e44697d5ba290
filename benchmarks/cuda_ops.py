"""CUDA ops, vibetensor vs torch in one run (GPU machine): host time per small op, bandwidth of
add and sum on 256 MiB float32, bfloat16 8192^3 matmul throughput.

    python3 benchmarks/cuda_ops.py [--json out.json]

Host time: mean over many calls of a small op (1024 floats; 32x32 for matmul), synchronised
after each round; median of rounds. Bandwidth and TFLOP/s: CUDA events around repeated calls
after warm-up, inputs rotated over several sets so L2 (50 MB) holds none of them, median.
A missing op prints n/a with the reason, never a number.
"""
import argparse
import json
import statistics

import torch
from timing import host_seconds

import vibetensor.torch as vt

MiB = 1 << 20


def host_us(fn, sync):
    return host_seconds(fn, sync, calls=1000, rounds=9, warmup=50) * 1e6


def device_ms(lib, fn, sets, reps=10):
    """Median ms per call with CUDA events, rotating over input sets."""
    for s in sets:
        fn(*s)
    times = []
    for i in range(reps):
        start, end = lib.cuda.Event(enable_timing=True), lib.cuda.Event(enable_timing=True)
        start.record()
        fn(*sets[i % len(sets)])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def small_cases(lib):
    x = lib.randn(1024, device="cuda") if lib is torch else vt.randn(1024).cuda()
    y = lib.randn(1024, device="cuda") if lib is torch else vt.randn(1024).cuda()
    m = x.view(32, 32)
    return {"add": lambda: x + y, "mul": lambda: x * y, "sum": lambda: x.sum(), "matmul": lambda: m @ m,
            "softmax": lambda: lib.softmax(m, dim=-1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    print(f"{'host time per op (us)':<24} {'vibetensor':>10} {'torch':>8} {'ratio':>6}")
    ours, theirs = small_cases(vt), small_cases(torch)
    for name in ours:
        try:
            o = host_us(ours[name], vt.cuda.synchronize)
        except Exception as e:
            print(f"{name:<24} {'n/a':>10}  ({type(e).__name__}: {str(e).splitlines()[0][:70]})")
            continue
        t = host_us(theirs[name], torch.cuda.synchronize)
        results[f"host_us_{name}"] = (o, t)
        print(f"{name:<24} {o:>10.2f} {t:>8.2f} {o / t:>6.2f}")

    n = 256 * MiB // 4
    copy_sets = [(torch.randn(n, device="cuda"), torch.empty(n, device="cuda")) for _ in range(2)]
    copy_ms = device_ms(torch, lambda a, b: b.copy_(a), copy_sets)
    copy_bw = 2 * 256 * MiB / copy_ms / 1e9  # TB/s: read + write
    print(f"\ndevice-to-device copy: {copy_bw:.2f} TB/s (read + write)")
    del copy_sets
    for name, fn_t, fn_v, nbytes in (
            ("add", lambda a, b: a + b, lambda a, b: a + b, 3 * 256 * MiB),
            ("sum", lambda a, b: a.sum(), lambda a, b: a.sum(), 256 * MiB)):
        t_sets = [(torch.randn(n, device="cuda"), torch.randn(n, device="cuda")) for _ in range(2)]
        v_sets = [(vt.from_numpy(a.cpu().numpy()).cuda(), vt.from_numpy(b.cpu().numpy()).cuda()) for a, b in t_sets]
        t_bw = nbytes / device_ms(torch, fn_t, t_sets) / 1e9
        v_bw = nbytes / device_ms(vt, fn_v, v_sets) / 1e9
        results[f"bw_{name}"] = (v_bw, t_bw, copy_bw)
        print(f"{name} 256 MiB: vibetensor {v_bw:.2f} TB/s ({v_bw / copy_bw:.0%} of copy), "
              f"torch {t_bw:.2f} TB/s ({t_bw / copy_bw:.0%})")
        del t_sets, v_sets

    k = 8192
    torch.backends.cuda.matmul.allow_tf32 = False
    t_sets = [(torch.randn(k, k, device="cuda", dtype=torch.bfloat16),
               torch.randn(k, k, device="cuda", dtype=torch.bfloat16)) for _ in range(2)]
    v_sets = [(vt.from_numpy(a.float().cpu().numpy()).to(vt.bfloat16).cuda(),
               vt.from_numpy(b.float().cpu().numpy()).to(vt.bfloat16).cuda()) for a, b in t_sets]
    flop = 2 * k ** 3
    t_tf = flop / device_ms(torch, lambda a, b: a @ b, t_sets) / 1e9
    v_tf = flop / device_ms(vt, lambda a, b: a @ b, v_sets) / 1e9
    results["bf16_matmul_tflops"] = (v_tf, t_tf)
    print(f"bf16 matmul 8192^3: vibetensor {v_tf:.0f} TFLOP/s, torch {t_tf:.0f} TFLOP/s, ratio {v_tf / t_tf:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
