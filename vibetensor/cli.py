"""The `vibetensor` command.

    vibetensor ops [--family F] [--keys]   which ops the dispatcher holds, and their kernels' keys
    vibetensor train [--device D] [--iters N] [--out DIR] [--compile]
                                            the main job: train the sequence-reversal transformer
    vibetensor bench reversal [--iters N] [--seeds K] [--json F] [--plot F]
                                            that workload on vibetensor and PyTorch side by side (needs torch)
    vibetensor demo [--steps N]             train a small MLP on spirals, on CPU
    vibetensor conformance [options]        which ops pass PyTorch's OpInfo samples (needs torch; --help)
"""
import argparse
import sys
import time
from collections import Counter


def cmd_ops(args):
    import vibetensor.torch  # noqa: F401  (declares ops, registers kernels)
    from vibetensor import dispatch
    ops = dispatch.ops()
    families = Counter(op.family or "other" for op in ops.values())
    for name, op in sorted(ops.items()):
        if args.family and op.family != args.family:
            continue
        keys = f"  [{', '.join(dispatch.keys_of(name))}]" if args.keys else ""
        print(f"{name:<32} {op.family or 'other':<12}{keys}")
    print(f"\n{len(ops)} ops in {len(families)} families: "
          + ", ".join(f"{f} {n}" for f, n in sorted(families.items())))


def make_spirals(torch, n_per_class, classes=3, seed=0):
    """Interleaved 2-D spirals: a small problem a linear model cannot solve."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(classes):
        r = torch.linspace(0.1, 1.0, n_per_class)                                  # (n,)
        theta = r * 4.0 + c * (2 * 3.14159265 / classes) + torch.randn(n_per_class, generator=gen) * 0.2
        xs.append(torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1))  # (n, 2)
        ys.append(torch.full((n_per_class,), c, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def cmd_demo(args):
    """Train a 2-layer MLP on spirals with our autograd and SGD, printing loss and accuracy."""
    import vibetensor.torch as torch
    torch.manual_seed(0)
    x, y = make_spirals(torch, 200)                                   # (600, 2), (600,)
    hidden, classes = 64, 3
    w1 = (torch.randn(2, hidden) * 0.5).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = (torch.randn(hidden, classes) * 0.1).requires_grad_()
    b2 = torch.zeros(classes, requires_grad=True)
    params = [w1, b1, w2, b2]
    onehot = (y.unsqueeze(1) == torch.arange(classes).unsqueeze(0)).float()  # (600, 3)
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        h = torch.tanh(x @ w1 + b1)                                   # (600, 64)
        logits = h @ w2 + b2                                           # (600, 3)
        logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)   # log-softmax
        loss = -(logp * onehot).sum(dim=1).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad * args.lr)
        if step % (args.steps // 10 or 1) == 0:
            acc = (logits.argmax(dim=1) == y).float().mean().item()
            print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    dt = time.perf_counter() - t0
    print(f"{args.steps} steps in {dt:.2f} s ({args.steps / dt:.1f} it/s) on CPU; final accuracy {acc:.3f}")
    return 0 if acc > 0.9 else 1


def _one_blas_thread():
    """These workloads multiply small matrices, where OpenBLAS's threads gain little and, on a machine
    whose cores are busy, spin-wait: 4-6x slower steps measured on a shared 2-core host. Set before
    NumPy loads; an explicit OPENBLAS_NUM_THREADS wins."""
    import os
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def cmd_train(args):
    _one_blas_thread()
    from vibetensor.workloads import reversal
    return reversal.train_job(args.device, args.iters, args.out, args.compile, args.seed, args.eval)


def cmd_bench(args):
    """The runner imports torch (the rival), so it lives in benchmarks/, beside the package."""
    _one_blas_thread()
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{args.workload}.py"
    if not path.exists():
        raise SystemExit(f"bench {args.workload}: {path} not found (run from a source checkout)")
    spec = importlib.util.spec_from_file_location(f"vibetensor_bench_{args.workload}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


def cmd_conformance(args):
    """Forwards the remaining arguments; the package imports torch (the oracle), so only when run."""
    import vibetensor_conformance
    return vibetensor_conformance.main(args.rest)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="vibetensor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ops", help="list the dispatcher's ops")
    p.add_argument("--family")
    p.add_argument("--keys", action="store_true", help="show the dispatch keys each op has kernels for")
    p.set_defaults(fn=cmd_ops)
    p = sub.add_parser("train", help="the main job: train the sequence-reversal transformer (GPU if there is one)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--iters", type=int, help="iterations (default: 2000 on a GPU, the CPU default's on the CPU)")
    p.add_argument("--out", default="out/reversal", help="folder for the checkpoint and the loss-curve PNG")
    p.add_argument("--compile", action="store_true", help="capture the whole step into a CUDA graph (GPU only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval", type=int, default=512, help="held-out sequences for the final accuracy")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("bench", help="benchmark a workload against PyTorch (needs torch)")
    p.add_argument("workload", choices=["reversal"])
    p.add_argument("--iters", type=int,
                   help="iterations per variant (default: 2000 on a GPU, the CPU default's on the CPU)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--window", type=int, default=20, help="iterations per timing window")
    p.add_argument("--json", help="write the results here as JSON")
    p.add_argument("--plot", help="write the four loss curves here as a PNG")
    p.add_argument("--probe", action="store_true", help="first try each op the workload uses on the device, alone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1,
                   help="also run the captured variants for this many seeds (loss spread; CUDA only)")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("demo", help="train a small MLP on spirals, on CPU")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.5)
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("conformance", add_help=False,  # its own parser reads the rest, --help included
                       help="run PyTorch's OpInfo samples through vibetensor and compare with torch")
    p.set_defaults(fn=cmd_conformance)
    args, rest = ap.parse_known_args(argv)
    if args.cmd != "conformance" and rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return args.fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())
