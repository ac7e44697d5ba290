"""The reversal transformer (issue 8) on vibetensor and PyTorch, side by side in one run.

    python3 -m vibetensor bench reversal [--iters N] [--json F] [--plot F] [--probe]
    python3 benchmarks/reversal.py       [same options]

Four variants train from the same initial weights on the same batches (vibetensor/workloads/
reversal.py, one code for both frameworks):
  vibetensor eager      the step as written
  vibetensor captured   vibetensor.compile(step): the whole step replayed as one CUDA graph
  torch eager           the same code with `import torch`
  torch cuda graph      torch's whole-network recipe: warm-up on a side stream, torch.cuda.graph
                        capture with static input buffers, replay (SGD without momentum keeps no
                        step counters, so the optimiser is capturable as is)
Reported per variant: ms/iter (CUDA events marked every --window iterations, read at the end; the
median over windows after the first, which holds warm-up and capture), peak memory (max allocated
after reset_peak_memory_stats, above what was allocated before the variant: the uploaded batches),
final loss, held-out greedy token/sequence accuracy, and each loss curve's relative difference from
torch eager's (at the last iteration, over the mean of the last window, and the maximum over the run).
On the CPU the two eager variants run (perf_counter windows); the captured ones need CUDA.

This file imports torch (the rival), so it lives beside the package, never inside it.
"""
import argparse
import json
import os
import platform
import sys
import traceback
from dataclasses import asdict, replace

import numpy as np
import torch

import vibetensor.torch as vt
from vibetensor.workloads import reversal as R
from vibetensor.workloads.plot import line_plot

VARIANTS = ("vibetensor eager", "vibetensor captured", "torch eager", "torch cuda graph")


# -- the four variants: each returns (model, losses as NumPy, clock) --------------------------------------------

def run_step_loop(fw, cfg, device, X, Y, window, captured=False):
    model, opt, step = R.make(fw, cfg, device)

    def train_step(x, y):
        return step(model, opt, x, y, cfg.clip)
    fn = train_step
    if captured:
        from vibetensor.compile import compile
        fn = compile(train_step)
    clock = R.WindowClock(fw, device, window)
    return model, R.train(fw, fn, X, Y, clock=clock), clock


def run_torch_graph(cfg, device, X, Y, window, warmup=3):
    """torch.cuda.graphs' whole-network recipe. Warm-up steps train on batches 0..warmup-1 (their
    losses count); capture records without running; replays train on the rest."""
    model, opt, step = R.make(torch, cfg, device)
    iters = X.shape[0]
    static_x, static_y = X[0].clone(), Y[0].clone()
    losses = torch.zeros(iters, device=device)
    clock = R.WindowClock(torch, device, window)
    clock.mark(0)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(warmup):
            static_x.copy_(X[i])
            static_y.copy_(Y[i])
            losses[i].copy_(step(model, opt, static_x, static_y, cfg.clip).detach())
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)  # backward allocates the grads from the graph's pool
    with torch.cuda.graph(graph):
        static_loss = step(model, opt, static_x, static_y, cfg.clip)
    for i in range(warmup, iters):
        if i % window == 0:
            clock.mark(i)
        static_x.copy_(X[i])
        static_y.copy_(Y[i])
        graph.replay()
        losses[i].copy_(static_loss.detach())
    clock.mark(iters)
    return model, losses.cpu().numpy(), clock


def run_variant(name, cfg, device, data, window):
    """One variant with its memory measured and its model evaluated. Errors become part of the
    result (a missing CUDA kernel is information, not the end of the run); what was measured
    before the error is kept. `data` holds the NumPy batches under "numpy" and gains each
    framework's device copy."""
    fw = vt if name.startswith("vibetensor") else torch
    cuda = device.startswith("cuda")
    if name.endswith(("captured", "graph")) and not cuda:
        return {"error": "needs CUDA"}
    result = {}
    try:
        if fw not in data:  # uploaded once per framework, before its first variant's memory baseline
            data[fw] = R.upload(fw, *data["numpy"], device)
        X, Y = data[fw]
        if cuda:
            fw.cuda.synchronize()
            fw.cuda.reset_peak_memory_stats()
            base = fw.cuda.memory_allocated()
        if name == "torch cuda graph":
            model, losses, clock = run_torch_graph(cfg, device, X, Y, window)
        else:
            model, losses, clock = run_step_loop(fw, cfg, device, X, Y, window, captured=name.endswith("captured"))
        result["ms_per_iter"] = clock.ms_per_iter(skip=1)
        if cuda:
            fw.cuda.synchronize()
            result["peak_mib"] = (fw.cuda.max_memory_allocated() - base) / 2**20
        result["losses"] = [float(v) for v in losses]
        result["final_loss"] = float(losses[-1])
        result["token_accuracy"], result["sequence_accuracy"] = R.evaluate(fw, model, cfg, device=device)
    except Exception as e:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        traceback.print_exc(file=sys.stderr)
        result["error"] = (f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                           f"[{os.path.relpath(frame.filename)}:{frame.lineno}]")
    return result


def compare(results, window):
    """Relative difference of each loss curve from torch eager's."""
    ref = results.get("torch eager", {}).get("losses")
    if ref is None:
        return
    ref = np.asarray(ref)
    for name, r in results.items():
        if "losses" not in r or name == "torch eager":
            continue
        a = np.asarray(r["losses"])
        rel = np.abs(a - ref) / np.abs(ref)
        w = min(window, len(a))
        r["rel_diff_end"] = float(rel[-1])
        r["rel_diff_last_window"] = float(abs(a[-w:].mean() - ref[-w:].mean()) / abs(ref[-w:].mean()))
        r["rel_diff_max"] = float(rel.max())


# -- a probe: each op the workload uses, alone on the device ----------------------------------------------------

def probes(t, dev):
    """(name, thunk) pairs: each runs one building block forward and backward on `dev`."""
    F = t.nn.functional

    def leaf(*shape):
        return t.randn(*shape).to(dev).requires_grad_()

    def back(y):
        y.float().sum().backward()

    ids = t.tensor([[1, 5, 2], [3, 0, 7]]).to(dev)
    tgt = t.tensor([1, -100, 3, 0, -100, 2]).to(dev)
    return [
        ("to(device) / cpu()", lambda: t.zeros(3).to(dev).cpu()),
        ("embedding", lambda: back(F.embedding(ids, leaf(8, 4)))),
        ("slice + broadcast add", lambda: back(leaf(2, 3, 4) + leaf(8, 4)[:3])),
        ("layer_norm", lambda: back(F.layer_norm(leaf(2, 3, 4), (4,), leaf(4), leaf(4)))),
        ("linear 3-d", lambda: back(F.linear(leaf(2, 3, 4), leaf(6, 4), leaf(6)))),
        ("split/view/transpose/reshape", lambda: back(leaf(2, 3, 6).split(3, dim=2)[1].view(2, 3, 3, 1)
                                                      .transpose(1, 2).reshape(2, 9))),
        ("matmul 4-d", lambda: back(leaf(2, 2, 3, 4) @ leaf(2, 2, 3, 4).transpose(-2, -1))),
        ("mask add (-inf)", lambda: back(leaf(2, 3, 3) + t.triu(t.full((3, 3), float("-inf")), 1).to(dev))),
        ("softmax", lambda: back(F.softmax(leaf(2, 3, 5), dim=-1) * leaf(2, 3, 5))),
        ("relu", lambda: back(F.relu(leaf(2, 5)))),
        ("cross_entropy ignore_index", lambda: back(F.cross_entropy(leaf(6, 5), tgt, ignore_index=-100))),
        ("clip_grad_norm_", lambda: _clip(t, leaf(3, 4))),
        ("SGD step", lambda: _sgd(t, leaf(3, 4))),
        ("zeros + copy_ into element", lambda: t.zeros(4, device=dev)[1].copy_(t.ones((), device=dev))),
        ("argmax", lambda: F.softmax(t.randn(2, 3, 5).to(dev), -1).argmax(dim=-1).cpu()),
    ]


def _clip(t, p):
    p.sum().backward()
    return t.nn.utils.clip_grad_norm_([p], 1.0)


def _sgd(t, p):
    p.sum().backward()
    t.optim.SGD([p], lr=0.1).step()


def probe(device):
    missing = []
    for name, thunk in probes(vt, device):
        try:
            thunk()
            vt.cuda.synchronize() if device.startswith("cuda") else None
            print(f"  ok       {name}")
        except Exception as e:
            line = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"  FAILED   {name}: {line}")
            missing.append((name, line))
    return missing


def seed_spread(results, cfg, device, args):
    """The final loss of one run is chaotic (atomic-add gradients and summation order change the
    trajectory): torch's own CUDA graph ends 10% off torch eager on the same seed. Repeating the
    fast variants over seeds shows whether the frameworks differ by more than seeds do."""
    fast = ("vibetensor captured", "torch cuda graph")
    ends = {name: [] for name in fast}
    for name in fast:
        if "losses" in results[name]:
            ends[name].append(float(np.mean(results[name]["losses"][-args.window:])))
    for seed in range(1, args.seeds):
        c = replace(cfg, seed=cfg.seed + seed)
        data = {"numpy": R.batches(c)}
        for name in fast:
            r = run_variant(name, c, device, data, args.window)
            if "losses" in r:
                ends[name].append(float(np.mean(r["losses"][-args.window:])))
    print(f"\nmean loss of the last {args.window} iterations over {args.seeds} seeds (mean, sd, each seed):")
    for name, v in ends.items():
        print(f"  {name:<22} {np.mean(v):.5f} {np.std(v):.5f}  " + " ".join(f"{x:.4f}" for x in v))
    a, b = (np.mean(ends[n]) for n in fast)
    print(f"  ratio {fast[0]} / {fast[1]}: {a / b:.3f}")
    results["seed_spread"] = {"window": args.window, "last_window_means": ends}


# -- main ------------------------------------------------------------------------------------------------------

def fmt(v, spec):
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if v is None else format(v, spec)


def report(results):
    print(f"\n{'variant':<22}{'ms/iter':>9}{'peak MiB':>10}{'final loss':>12}{'tok acc':>9}{'seq acc':>9}"
          f"{'rel end':>9}{'rel max':>9}")
    for name, r in results.items():
        if "error" in r and len(r) == 1:
            print(f"{name:<22}  {r['error']}")
            continue
        print(f"{name:<22}{fmt(r.get('ms_per_iter'), '9.3f')}{fmt(r.get('peak_mib'), '10.1f')}"
              f"{fmt(r.get('final_loss'), '12.4f')}{fmt(r.get('token_accuracy'), '9.4f')}"
              f"{fmt(r.get('sequence_accuracy'), '9.4f')}{fmt(r.get('rel_diff_end'), '9.2e')}"
              f"{fmt(r.get('rel_diff_max'), '9.2e')}")
        if "error" in r:
            print(f"{'':<22}  then {r['error']}")


def main(args):
    device = R.resolve_device(vt, args.device)
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench reversal: vibetensor sees a GPU but this torch build has no CUDA")
    if not cuda and os.environ.get("OPENBLAS_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OPENBLAS_NUM_THREADS"]))  # the same thread count for both
    cfg = R.REFERENCE if cuda else R.CPU
    cfg = replace(cfg, iters=args.iters or cfg.iters, seed=args.seed)
    print(f"bench reversal on {device} ({torch.cuda.get_device_name() if cuda else platform.processor() or 'cpu'}):"
          f" {R.describe(cfg)}; torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    if getattr(args, "probe", False):
        print("probe: each op of the workload alone on the device (vibetensor)")
        probe(device)
    data = {"numpy": R.batches(cfg)}  # the same batches for every variant; each framework's copy on the device
    results = {}
    for name in VARIANTS:
        print(f"{name} ...", flush=True)
        results[name] = run_variant(name, cfg, device, data, args.window)
    compare(results, args.window)
    report(results)
    if args.seeds > 1 and cuda:
        seed_spread(results, cfg, device, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "config": asdict(cfg), "torch": torch.__version__, "window": args.window,
                       "variants": results}, f, indent=1)
        print(f"results: {args.json}")
    if args.plot:
        curves = {name: r["losses"] for name, r in results.items() if "losses" in r}
        if curves:
            print(line_plot(args.plot, curves, title="loss curves"))
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--plot")
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1,
                    help="also run the captured variants for this many seeds (loss spread; CUDA only)")
    sys.exit(main(ap.parse_args()))
