"""Where the host time of one eager training step of the reversal workload goes (vibetensor).

    python3 benchmarks/reversal_profile.py [--device cuda] [--steps 50] [--top 30]
    python3 benchmarks/reversal_profile.py --phases [--steps 200]    # vibetensor vs torch, per phase

Prints the wall time per step without a profiler, then cProfile's table over `--steps` steps
(sorted by own time, and by cumulative time for the model's layers), and the number of op calls,
autograd nodes, kernel launches and allocations per step.

--phases: host time of each phase of the step (zero_grad, forward, backward, clip, optimiser step),
median over the steps, for vibetensor and (when it imports) torch in the same run. The step is
host-bound on both, so host time per phase is where the step's time goes.
"""
import argparse
import cProfile
import gc
import io
import pstats
import time

import vibetensor.torch as torch
from vibetensor.workloads import reversal as R


def run_steps(model, opt, step, X, Y, n, offset=0):
    for i in range(n):
        loss = step(model, opt, X[(offset + i) % X.shape[0]], Y[(offset + i) % Y.shape[0]], 1.0)
    if str(X.device).startswith("cuda"):
        torch.cuda.synchronize()
    return loss


PHASES = ("zero_grad", "forward", "backward", "clip", "opt.step")


def phase_times(fw, device, steps):
    """Median host ms of each phase of the eager step on framework `fw` (same code as R.build's step)."""
    cfg = R.Config()
    model, opt, _ = R.make(fw, cfg, device)
    X, Y = R.upload(fw, *R.batches(cfg, iters=64), device)
    times = {p: [] for p in PHASES}
    for i in range(steps + 10):
        x, y = X[i % X.shape[0]], Y[i % Y.shape[0]]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        loss = model.loss(x, y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        fw.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        if i >= 10:  # after warm-up
            for p, a, b in zip(PHASES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                times[p].append((b - a) * 1e3)
    if device.startswith("cuda"):
        fw.cuda.synchronize()
    import statistics
    return {p: statistics.median(v) for p, v in times.items()}


def print_phases(device, steps):
    ours = phase_times(torch, device, steps)
    try:
        import torch as rival
        theirs = phase_times(rival, device, steps)
    except ImportError:
        theirs = None
    print(f"host ms per phase of the eager step, median of {steps} ({device})")
    print(f"{'phase':12s} {'vibetensor':>10s} {'torch':>8s} {'ratio':>6s}")
    for p in PHASES + ("step",):
        a = ours[p] if p != "step" else sum(ours.values())
        if theirs is None:
            print(f"{p:12s} {a:10.3f}")
            continue
        b = theirs[p] if p != "step" else sum(theirs.values())
        print(f"{p:12s} {a:10.3f} {b:8.3f} {a / b:6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--gc", choices=("default", "freeze", "off"), default="default",
                    help="the cyclic garbage collector: as is, frozen after warm-up, or off")
    ap.add_argument("--phases", action="store_true", help="host time per phase, vibetensor vs torch")
    args = ap.parse_args()
    if args.phases:
        return print_phases(args.device, args.steps)
    cfg = R.Config()
    model, opt, step = R.make(torch, cfg, args.device)
    X, Y = R.upload(torch, *R.batches(cfg, iters=64), args.device)
    run_steps(model, opt, step, X, Y, 10)  # warm-up: kernels compiled, plans made, caches filled
    if args.gc == "freeze":
        gc.collect()
        gc.freeze()
    elif args.gc == "off":
        gc.disable()
    t0 = time.perf_counter()
    run_steps(model, opt, step, X, Y, args.steps)
    wall = (time.perf_counter() - t0) / args.steps * 1e3
    print(f"eager step, {args.device}: {wall:.2f} ms per step (no profiler)")
    prof = cProfile.Profile()
    prof.enable()
    run_steps(model, opt, step, X, Y, args.steps)
    prof.disable()
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    calls = {f"{fn[0].rsplit('/', 2)[-1]}:{fn[2]}": v[1] / args.steps for fn, v in st.stats.items()}
    for name in ("dispatcher.py:__call__", "derivatives.py:_make_node", "launcher.py:__call__", "plan.py:_replay",
                 "blas.py:run", "allocator.py:malloc"):
        if name in calls:
            print(f"  {name:32s} {calls[name]:8.1f} calls per step")
    st.sort_stats("tottime").print_stats(args.top)
    st.sort_stats("cumtime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
