"""Where the host time of one eager training step of the reversal workload goes (vibetensor).

    python3 benchmarks/reversal_profile.py [--device cuda] [--steps 50] [--top 30]

Prints the wall time per step without a profiler, then cProfile's table over `--steps` steps
(sorted by own time, and by cumulative time for the model's layers), and the number of op calls,
autograd nodes, kernel launches and allocations per step.
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--gc", choices=("default", "freeze", "off"), default="default",
                    help="the cyclic garbage collector: as is, frozen after warm-up, or off")
    args = ap.parse_args()
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
