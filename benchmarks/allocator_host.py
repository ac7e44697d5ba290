"""Host time of CUDA memory on the hot path, vibetensor vs torch, per call (us):

    python3 benchmarks/allocator_host.py [--json out.json]

Rows: the caching allocator's malloc+free of 4 KiB (our allocator object; torch has no Python
twin, so its caching_allocator_alloc/delete stands beside it), caching_allocator_alloc/delete,
the tensor floor's empty((1024,)) (storage + tensor, no front door), the front door's
empty(1024, device="cuda"), and that again with 300 live tensors of mixed sizes in the pools.
Run it with another vibetensor tree first on PYTHONPATH to get before/after in one session.
"""
import argparse
import json

import torch

import vibetensor.torch as vt
from vibetensor.runtime import cuda as rt
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import tensor as tt
from vibetensor.tensor.device import device
from timing import host_seconds


def us(fn, sync):
    return host_seconds(fn, sync, calls=5000, rounds=11, warmup=500) * 1e6


def measure():
    vsync, tsync = vt.cuda.synchronize, torch.cuda.synchronize
    vt.empty(1, device="cuda"), torch.empty(1, device="cuda")  # create contexts and allocators
    a, cuda0 = rt.get_allocator(0), device("cuda", 0)
    rows = [
        ("malloc+free 4 KiB (allocator)", us(lambda: a.malloc(4096), vsync),
         us(lambda: torch.cuda.caching_allocator_delete(torch.cuda.caching_allocator_alloc(4096)), tsync)),
        ("caching_allocator_alloc+delete 4 KiB", us(lambda: rt.caching_allocator_delete(rt.caching_allocator_alloc(4096)), vsync),
         us(lambda: torch.cuda.caching_allocator_delete(torch.cuda.caching_allocator_alloc(4096)), tsync)),
        ("tensor floor empty((1024,)) f32", us(lambda: tt.empty((1024,), dt.float32, cuda0), vsync),
         us(lambda: torch.empty(1024, device="cuda"), tsync)),
        ("empty(1024, device='cuda')", us(lambda: vt.empty(1024, device="cuda"), vsync),
         us(lambda: torch.empty(1024, device="cuda"), tsync)),
    ]
    sizes = [(i * 7919) % 300000 + 1 for i in range(300)]  # mixed sizes, small and large pool
    live_v = [vt.empty(n, device="cuda") for n in sizes]
    live_t = [torch.empty(n, device="cuda") for n in sizes]
    rows.append(("empty(1024) with 300 live tensors", us(lambda: vt.empty(1024, device="cuda"), vsync),
                 us(lambda: torch.empty(1024, device="cuda"), tsync)))
    del live_v, live_t
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = measure()
    print(f"{'host us per call':<40} {'vibetensor':>11} {'torch':>9} {'ratio':>6}")
    for name, ours, theirs in rows:
        print(f"{name:<40} {ours:>11.2f} {theirs:>9.2f} {ours / theirs:>6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: [ours, theirs] for name, ours, theirs in rows}, f, indent=1)


if __name__ == "__main__":
    main()
