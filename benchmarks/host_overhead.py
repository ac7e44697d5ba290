"""Host time per small op, vibetensor vs torch on CPU, measured side by side in one run.

    python3 benchmarks/host_overhead.py [--json out.json]

Each case runs the same lambda against both libraries on 1024-element inputs (small enough that
the time is host overhead: argument parsing, dispatch, allocation). Reported: median over rounds
of the mean time per call; ratio = vibetensor / torch (lower is better, target <= 1.0).
"""
import argparse
import json

import numpy as np
import torch
from timing import host_seconds

import vibetensor.torch as vt

CASES = [  # (name, fn(lib, x, y)) on two (1024,) float32 tensors
    ("add", lambda lib, x, y: x + y),
    ("mul", lambda lib, x, y: x * y),
    ("add_", lambda lib, x, y: x.add_(y)),
    ("exp", lambda lib, x, y: lib.exp(x)),
    ("view", lambda lib, x, y: x.view(32, 32)),
    ("getitem", lambda lib, x, y: x[3:100]),
    ("sum", lambda lib, x, y: x.sum()),
    ("mm 32x32", lambda lib, x, y: x.view(32, 32) @ y.view(32, 32)),
]


def time_per_call(fn, x, y):
    return host_seconds(lambda: fn(x, y), calls=2000, rounds=15, warmup=200)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    a = np.random.default_rng(0).standard_normal(1024).astype(np.float32)
    b = np.random.default_rng(1).standard_normal(1024).astype(np.float32)
    rows = []
    print(f"{'op':<10} {'vibetensor us':>14} {'torch us':>10} {'ratio':>7}")
    for name, fn in CASES:
        try:
            ours = time_per_call(lambda x, y: fn(vt, x, y), vt.tensor(a), vt.tensor(b))
        except Exception as e:  # an op not built yet shows as missing, not as a fake number
            print(f"{name:<10} {'n/a':>14}  ({type(e).__name__}: {e})")
            continue
        theirs = time_per_call(lambda x, y: fn(torch, x, y), torch.tensor(a), torch.tensor(b))
        rows.append({"op": name, "vibetensor_us": ours * 1e6, "torch_us": theirs * 1e6, "ratio": ours / theirs})
        print(f"{name:<10} {ours * 1e6:>14.2f} {theirs * 1e6:>10.2f} {ours / theirs:>7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
