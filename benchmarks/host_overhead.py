"""Host time per small op, vibetensor vs torch on CPU, measured side by side in one run.

    python3 benchmarks/host_overhead.py [--json out.json] [--no-layers]

Each case runs the same lambda against both libraries on 1024-element inputs (small enough that
the time is host overhead: argument parsing, dispatch, allocation). Reported: median over rounds
of the mean time per call; ratio = vibetensor / torch (lower is better, target <= 1.0).

The second table splits one call of ours into layers, each measured by timing the call entered
one floor lower (all in CPU-thread time, vibetensor and torch rounds interleaved, best round):
    front     torch-style call  - op call             (argument parsing, operators, methods)
    dispatch  op call           - device kernel call  (the dispatcher; composites: their inner ops)
    autograd  op call with inputs requiring grad - op call without (recording the node)
    meta      the op's meta function (a cache hit when memoised)
    alloc     allocating the result tensor
    kernel    device kernel call - meta - alloc       (the NumPy work and the kernel's glue)
"""
import argparse
import json
import time

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


def _thread_us(fn, calls=1000):
    t0 = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - t0) / calls / 1e3


def best_us(fns, rounds=15, warmup=100):
    """Best-round CPU-thread time per call of each fn, the fns interleaved round by round (so a busy
    machine slows them alike)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], _thread_us(fn))
    return best


def layer_cases(a, b):
    """(name, torch call, our call, op call, op call with grad, kernel call, meta call, alloc call)."""
    from vibetensor.dispatch import DispatchKey
    from vibetensor.ops import elementwise as ew, linalg as la, nn as nn_ops, reduction as r
    from vibetensor.tensor.tensor import empty
    cpu = DispatchKey.CPU
    x, y = vt.tensor(a), vt.tensor(b)
    xg, yg = vt.tensor(a, requires_grad=True), vt.tensor(b, requires_grad=True)
    m, w = x.view(32, 32), y.view(32, 32)
    mg, wg = vt.tensor(a.reshape(32, 32), requires_grad=True), vt.tensor(b.reshape(32, 32), requires_grad=True)
    wt = w.t()
    tx, ty = torch.tensor(a), torch.tensor(b)
    tm, tw = tx.view(32, 32), ty.view(32, 32)
    f32 = vt.float32
    vec, mat, scalar = lambda: empty((1024,), f32), lambda: empty((32, 32), f32), lambda: empty((), f32)
    add, mul, mm = ew.add.table[cpu], ew.mul.table[cpu], la.mm.table[cpu]
    sm, sm_cpu, sum_cpu = nn_ops.softmax, nn_ops.softmax.table[cpu], r.sum.table[cpu]
    F, tF = vt.nn.functional, torch.nn.functional
    return [
        ("a + b", lambda: tx + ty, lambda: x + y, lambda: ew.add(x, y, 1), lambda: ew.add(xg, yg, 1),
         lambda: add(x, y, 1), lambda: ew.add.meta(x, y, 1), vec),
        ("a * 2.0", lambda: tx * 2.0, lambda: x * 2.0, lambda: ew.mul(x, 2.0), lambda: ew.mul(xg, 2.0),
         lambda: mul(x, 2.0), lambda: ew.mul.meta(x, 2.0), vec),
        ("a.sum()", lambda: tx.sum(), lambda: x.sum(), lambda: r.sum(x, None, False, None),
         lambda: r.sum(xg, None, False, None), lambda: sum_cpu(x, None, False, None),
         lambda: r.sum.meta(x, None, False, None, None), scalar),
        ("x @ w", lambda: tm @ tw, lambda: m @ w, lambda: la.matmul(m, w), lambda: la.matmul(mg, wg),
         lambda: mm(m, w), lambda: la.mm.meta(m, w), mat),
        ("F.linear", lambda: tF.linear(tm, tw), lambda: F.linear(m, w), lambda: la.linear(m, w),
         lambda: la.linear(mg, wg), lambda: mm(m, wt), lambda: la.mm.meta(m, wt), mat),
        ("F.softmax", lambda: tF.softmax(tm, -1), lambda: F.softmax(m, -1), lambda: sm(m, -1, None),
         lambda: sm(mg, -1, None), lambda: sm_cpu(m, -1, None), lambda: sm.meta(m, -1, None), mat),
        ("a.add_(b)", lambda: tx.add_(ty), lambda: x.add_(y), lambda: ew.add(x, y, 1, out=x), None,
         lambda: add(x, y, 1, out=x), lambda: ew.add.meta(x, y, 1), None),
    ]


def layers_table(a, b):
    print(f"\n{'per layer (us)':<12} {'torch':>7} {'ours':>7} {'ratio':>6} | {'front':>6} {'dispatch':>8} "
          f"{'autograd':>8} {'meta':>6} {'alloc':>6} {'kernel':>6}")
    rows = []
    for name, theirs, ours, op, op_grad, kernel, meta, alloc in layer_cases(a, b):
        fns = [theirs, ours, op, op_grad, kernel, meta, alloc]
        t = best_us([f for f in fns if f is not None])
        t_torch, t_ours, t_op = t[:3]
        t_grad, rest = (t[3], t[4:]) if op_grad is not None else (None, t[3:])
        t_kernel, t_meta = rest[:2]
        t_alloc = rest[2] if alloc is not None else 0.0
        row = {"op": name, "torch_us": t_torch, "vibetensor_us": t_ours, "ratio": t_ours / t_torch,
               "front_us": t_ours - t_op, "dispatch_us": t_op - t_kernel,
               "autograd_us": (t_grad - t_op) if t_grad is not None else None, "meta_us": t_meta,
               "alloc_us": t_alloc, "kernel_us": t_kernel - t_meta - t_alloc}
        rows.append(row)
        grad = f"{row['autograd_us']:>8.2f}" if t_grad is not None else f"{'-':>8}"
        print(f"{name:<12} {t_torch:>7.2f} {t_ours:>7.2f} {row['ratio']:>6.2f} | {row['front_us']:>6.2f} "
              f"{row['dispatch_us']:>8.2f} {grad} {t_meta:>6.2f} {t_alloc:>6.2f} {row['kernel_us']:>6.2f}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer table")
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
    layers = [] if args.no_layers else layers_table(a, b)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ops": rows, "layers": layers}, f, indent=1)


if __name__ == "__main__":
    main()
