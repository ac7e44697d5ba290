"""Host time of CUDA memory on the hot path, vibetensor vs torch, per call (us):

    python3 benchmarks/allocator_host.py [--json out.json]
    python3 benchmarks/allocator_host.py --sim     # no GPU: cuda_host_sim's simulated device

Rows: the caching allocator's malloc+free of 4 KiB (our allocator object; torch has no Python
twin, so its caching_allocator_alloc/delete stands beside it), caching_allocator_alloc/delete,
the tensor floor's empty((1024,)) (storage + tensor, no front door), the front door's
empty(1024, device="cuda"), and that again with 300 live tensors of mixed sizes in the pools.
--sim adds malloc+free rows for a 4 MiB (large pool) request and for six requests of mixed
sizes freed in turn, times CPU-thread time (best of the rounds), and has no torch column.
Run it with another vibetensor tree first on PYTHONPATH to get before/after in one session.
"""
import argparse
import json

from timing import host_seconds


def us(fn, sync):
    return host_seconds(fn, sync, calls=5000, rounds=11, warmup=500) * 1e6


def measure(sim):
    if sim:
        import cuda_host_sim
        vt, torch = cuda_host_sim.install(), None
    else:
        import torch
        import vibetensor.torch as vt
    from vibetensor.runtime import cuda as rt
    from vibetensor.tensor import dtype as dt
    from vibetensor.tensor import tensor as tt
    from vibetensor.tensor.device import device

    def row(name, ours, theirs):
        if sim:  # CPU-thread time, best of the rounds: steadier on a shared machine
            return name, cuda_host_sim._host_us(ours, calls=5000, rounds=11), None
        return name, us(ours, vt.cuda.synchronize), us(theirs, torch.cuda.synchronize)

    vt.empty(1, device="cuda")  # create the context and allocator (torch's too)
    if not sim:
        torch.empty(1, device="cuda")
    a, cuda0 = rt.get_allocator(0), device("cuda", 0)

    def torch_pair(n=4096):
        return lambda: torch.cuda.caching_allocator_delete(torch.cuda.caching_allocator_alloc(n))

    def six():  # live at once, then freed in allocation order
        hs = [a.malloc(n) for n in (4096, 8192, 600, 40000, 4096, 1 << 16)]
        del hs
    rows = [row("malloc+free 4 KiB (allocator)", lambda: a.malloc(4096), torch_pair())]
    if sim:
        rows += [row("malloc+free 4 MiB (allocator)", lambda: a.malloc(4 << 20), None),
                 row("6 mallocs, then their frees (allocator)", six, None)]
    rows += [
        row("caching_allocator_alloc+delete 4 KiB",
            lambda: rt.caching_allocator_delete(rt.caching_allocator_alloc(4096)), torch_pair()),
        row("tensor floor empty((1024,)) f32", lambda: tt.empty((1024,), dt.float32, cuda0),
            lambda: torch.empty(1024, device="cuda")),
        row("empty(1024, device='cuda')", lambda: vt.empty(1024, device="cuda"),
            lambda: torch.empty(1024, device="cuda")),
    ]
    sizes = [(i * 7919) % 300000 + 1 for i in range(300)]  # mixed sizes, small and large pool
    live_v = [vt.empty(n, device="cuda") for n in sizes]
    live_t = None if sim else [torch.empty(n, device="cuda") for n in sizes]
    rows.append(row("empty(1024) with 300 live tensors", lambda: vt.empty(1024, device="cuda"),
                    lambda: torch.empty(1024, device="cuda")))
    del live_v, live_t
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--sim", action="store_true", help="the simulated device (no GPU, no torch)")
    args = ap.parse_args()
    rows = measure(args.sim)
    print(f"{'host us per call':<40} {'vibetensor':>11} {'torch':>9} {'ratio':>6}")
    for name, ours, theirs in rows:
        if theirs is None:
            print(f"{name:<40} {ours:>11.2f} {'-':>9} {'-':>6}")
        else:
            print(f"{name:<40} {ours:>11.2f} {theirs:>9.2f} {ours / theirs:>6.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: [ours, theirs] for name, ours, theirs in rows}, f, indent=1)


if __name__ == "__main__":
    main()
