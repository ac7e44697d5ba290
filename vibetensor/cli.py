"""The `vibetensor` command.

    vibetensor ops [--family F] [--keys]   which ops the dispatcher holds, and their kernels' keys
    vibetensor demo [--steps N]             the main job: train a small network on CPU, end to end
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
    p = sub.add_parser("demo", help="train a small MLP on CPU (the main job, for now)")
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
