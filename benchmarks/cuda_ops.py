"""CUDA ops, vibetensor vs torch in one run (GPU machine): host time per small op, bandwidth of
add and sum on 256 MiB float32, bfloat16 8192^3 matmul throughput.

    python3 benchmarks/cuda_ops.py [--json out.json] [--sweep]

--sweep also times the sums under other split settings of the reduction kernels (programs per SM,
tiles per chunk), the figures their defaults were chosen from.

Host time: mean over many calls of a small op (1024 floats; 32x32 for matmul), synchronised
after each round; median of rounds. Bandwidth and TFLOP/s: CUDA events around one call after
warm-up, median of many; inputs rotated over two sets so L2 (50 MB) holds neither. Each timed
call is queued behind an untimed call on the other set, so the device is busy while the host
issues it and the events time device work (host cost is the first table); the figures timed from
an idle device, which add the host's launch latency, are printed beside them for reference.
vibetensor and torch are timed in turn within each repetition (alternating who goes first): the
GPU's clocks drift over a run (on an H200, torch's bf16 matmul timed first gave 790 TFLOP/s,
timed seconds later 675), and both must see the same drift. Results are checked against torch's. A missing op prints n/a with the reason.
"""
import argparse
import json
import statistics

import torch
from timing import round_robin_us

import vibetensor.torch as vt

MiB = 1 << 20


def _time_once(lib, fn, sets, i, queued):
    start, end = lib.cuda.Event(enable_timing=True), lib.cuda.Event(enable_timing=True)
    if queued:
        fn(*sets[(i + 1) % len(sets)])
    start.record()
    fn(*sets[i % len(sets)])
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def device_ms(runs, reps=21, queued=True):
    """Median ms per call of each (lib, fn, input sets) in `runs`, rotating over the sets; the
    contenders take turns within each repetition. `queued`: each timed call waits behind an
    untimed one on the next set (the device never idles while the host launches)."""
    for lib, fn, sets in runs:
        for s in sets:
            fn(*s)
        lib.cuda.synchronize()
    times = [[] for _ in runs]
    for i in range(reps):
        order = list(range(len(runs)))
        if i % 2:
            order.reverse()
        for j in order:
            lib, fn, sets = runs[j]
            times[j].append(_time_once(lib, fn, sets, i, queued))
    return [statistics.median(t) for t in times]


def rel_err(ours, theirs):
    """max |ours - theirs| / max |theirs| (float64 on the host)."""
    o = torch.from_numpy(ours.float().cpu().numpy()).double()
    t = theirs.double().cpu()
    return ((o - t).abs().max() / t.abs().max().clamp_min(1e-30)).item()


def small_cases(lib):
    x = lib.randn(1024, device="cuda") if lib is torch else vt.randn(1024).cuda()
    y = lib.randn(1024, device="cuda") if lib is torch else vt.randn(1024).cuda()
    m = x.view(32, 32)
    return {"add": lambda: x + y, "mul": lambda: x * y, "sum": lambda: x.sum(), "matmul": lambda: m @ m,
            "softmax": lambda: lib.softmax(m, dim=-1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()
    results = {}
    print(f"{'host time per op (us)':<24} {'vibetensor':>10} {'torch':>8} {'ratio':>6}")
    ours, theirs = small_cases(vt), small_cases(torch)
    cases = {}
    for name in ours:
        try:
            ours[name]()
        except Exception as e:
            print(f"{name:<24} {'n/a':>10}  ({type(e).__name__}: {str(e).splitlines()[0][:70]})")
            continue
        cases[("vt", name)] = (ours[name], 1000, vt.cuda.synchronize)
        cases[("torch", name)] = (theirs[name], 1000, torch.cuda.synchronize)
    us = round_robin_us(cases, rounds=9)
    for name in ours:
        if ("vt", name) in us:
            o, t = us[("vt", name)], us[("torch", name)]
            results[f"host_us_{name}"] = (o, t)
            print(f"{name:<24} {o:>10.2f} {t:>8.2f} {o / t:>6.2f}")

    n = 256 * MiB // 4
    copy_sets = [(torch.randn(n, device="cuda"), torch.empty(n, device="cuda")) for _ in range(2)]
    copy_ms, = device_ms([(torch, lambda a, b: b.copy_(a), copy_sets)])
    copy_bw = 2 * 256 * MiB / copy_ms / 1e9  # TB/s: read + write
    print(f"\ndevice-to-device copy: {copy_bw:.2f} TB/s (read + write)")
    del copy_sets
    from vibetensor.backends.cuda import reduction
    side = 8192  # 8192 x 8192 float32 = 256 MiB
    for name, fn, nbytes in (
            ("add", lambda a, b: a + b, 3 * 256 * MiB),
            ("sum", lambda a, b: a.sum(), 256 * MiB),
            ("sum rows", lambda a, b: a.view(side, side).sum(1), 256 * MiB),
            ("sum columns", lambda a, b: a.view(side, side).sum(0), 256 * MiB)):
        t_sets = [(torch.randn(n, device="cuda"), torch.randn(n, device="cuda")) for _ in range(2)]
        v_sets = [(vt.from_numpy(a.cpu().numpy()).cuda(), vt.from_numpy(b.cpu().numpy()).cuda()) for a, b in t_sets]
        runs = [(torch, fn, t_sets), (vt, fn, v_sets)]
        t_bw, v_bw = (nbytes / ms / 1e9 for ms in device_ms(runs))
        t_idle, v_idle = (nbytes / ms / 1e9 for ms in device_ms(runs, queued=False))
        err = rel_err(fn(*v_sets[0]), fn(*t_sets[0]))
        results[f"bw_{name.replace(' ', '_')}"] = (v_bw, t_bw, copy_bw, v_idle, t_idle, err)
        print(f"{name} 256 MiB: vibetensor {v_bw:.2f} TB/s ({v_bw / copy_bw:.0%} of copy), "
              f"torch {t_bw:.2f} TB/s ({t_bw / copy_bw:.0%}); from idle: {v_idle / copy_bw:.0%} / "
              f"{t_idle / copy_bw:.0%}; max rel diff {err:.1e}")
        if args.sweep and name.startswith("sum"):  # the split settings of the reduction kernels, side by side
            default = (reduction.WAVES, reduction.MIN_STEPS, reduction.COL_WAVES, reduction.COL_MIN_STEPS)
            for setting in ((4, 8, 4, 8), (16, 4, 8, 8), (64, 2, 16, 4), (32, 4, 12, 8)):
                reduction.WAVES, reduction.MIN_STEPS, reduction.COL_WAVES, reduction.COL_MIN_STEPS = setting
                reduction._plans.clear()
                t_ms, v_ms = device_ms(runs)
                err = rel_err(fn(*v_sets[0]), fn(*t_sets[0]))
                results[f"bw_{name.replace(' ', '_')}_{'_'.join(map(str, setting))}"] = (nbytes / v_ms / 1e9, err)
                print(f"    waves/min steps {setting}: vibetensor {nbytes / v_ms / 1e9 / copy_bw:.0%}, "
                      f"torch {nbytes / t_ms / 1e9 / copy_bw:.0%}, max rel diff {err:.1e}")
            reduction.WAVES, reduction.MIN_STEPS, reduction.COL_WAVES, reduction.COL_MIN_STEPS = default
            reduction._plans.clear()
        del t_sets, v_sets, runs

    from vibetensor.runtime.cuda import blas
    k = 8192
    torch.backends.cuda.matmul.allow_tf32 = False
    t_sets = [(torch.randn(k, k, device="cuda", dtype=torch.bfloat16),
               torch.randn(k, k, device="cuda", dtype=torch.bfloat16)) for _ in range(2)]
    v_sets = [(vt.from_numpy(a.float().cpu().numpy()).to(vt.bfloat16).cuda(),
               vt.from_numpy(b.float().cpu().numpy()).to(vt.bfloat16).cuda()) for a, b in t_sets]
    flop = 2 * k ** 3

    def mm(a, b):
        return a @ b

    def mm_gemm_ex(a, b):
        blas.use_lt[0] = False
        try:
            return a @ b
        finally:
            blas.use_lt[0] = True

    runs = [(torch, mm, t_sets), (vt, mm, v_sets), (vt, mm_gemm_ex, v_sets)]
    t_tf, v_tf, v_ex = (flop / ms / 1e9 for ms in device_ms(runs, reps=31))
    t_idle, v_idle, _ = (flop / ms / 1e9 for ms in device_ms(runs, queued=False))
    err = rel_err(mm(*v_sets[0]), mm(*t_sets[0]))
    results["bf16_matmul_tflops"] = (v_tf, t_tf, v_ex, v_idle, t_idle, err)
    print(f"bf16 matmul 8192^3: vibetensor {v_tf:.0f} TFLOP/s, torch {t_tf:.0f} TFLOP/s, ratio {v_tf / t_tf:.3f}")
    print(f"  (cuBLASLt; cublasGemmEx path {v_ex:.0f} TFLOP/s; from idle {v_idle:.0f} / {t_idle:.0f} = "
          f"{v_idle / t_idle:.3f}; max rel diff {err:.1e})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
