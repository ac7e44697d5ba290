"""Backward host time of a 20-layer MLP of width 64 on CPU, vibetensor vs torch in one run.

    python3 benchmarks/autograd_backward.py [--layers 20] [--width 64] [--batch 32] [--json out.json]

The same network (x @ W.T + b, then tanh, per layer; loss = mean of the output) is built in both
libraries from the same initial values. Timed: loss.backward() alone (forward not timed), median
over repeats, after warm-up. Small shapes, so the time is the engine's per-node host overhead.
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch

import vibetensor.torch as vt


def build(lib, weights, biases):
    ws = [lib.tensor(w, requires_grad=True) for w in weights]
    bs = [lib.tensor(b, requires_grad=True) for b in biases]
    return ws, bs


def forward(lib, x, ws, bs):
    h = x
    for w, b in zip(ws, bs):
        h = lib.tanh(h @ w.T + b)    # (B, width)
    return h.mean()


def time_backward(lib, x, ws, bs, repeats):
    samples = []
    for i in range(repeats + 5):
        for p in ws + bs:
            p.grad = None
        loss = forward(lib, x, ws, bs)
        t0 = time.perf_counter()
        loss.backward()
        dt = time.perf_counter() - t0
        if i >= 5:  # warm-up
            samples.append(dt)
    return statistics.median(samples), [w.grad for w in ws]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((args.width, args.width)) / np.sqrt(args.width)).astype(np.float32)
               for _ in range(args.layers)]
    biases = [np.zeros(args.width, np.float32) for _ in range(args.layers)]
    x = rng.standard_normal((args.batch, args.width)).astype(np.float32)
    results = {}
    grads = {}
    for name, lib in (("vibetensor", vt), ("torch", torch)):
        ws, bs = build(lib, weights, biases)
        results[name], grads[name] = time_backward(lib, lib.tensor(x), ws, bs, args.repeats)
    worst = max(float(np.abs(g.detach().numpy() - t.detach().numpy()).max())
                for g, t in zip(grads["vibetensor"], grads["torch"]))
    ratio = results["vibetensor"] / results["torch"]
    nodes = args.layers * 4 + 1  # per layer: mm, T, add, tanh; plus mean
    print(f"{args.layers}-layer MLP, width {args.width}, batch {args.batch}: backward on CPU")
    print(f"{'':<12} {'ms':>8} {'us/node':>8}")
    for name in ("vibetensor", "torch"):
        print(f"{name:<12} {results[name] * 1e3:>8.3f} {results[name] * 1e6 / nodes:>8.1f}")
    print(f"ratio vibetensor/torch: {ratio:.2f}   max |grad difference|: {worst:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ms": {k: v * 1e3 for k, v in results.items()}, "ratio": ratio, "max_grad_diff": worst}, f)


if __name__ == "__main__":
    main()
