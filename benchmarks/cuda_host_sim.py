"""The host side of the CUDA path, without a GPU: a simulated device under the caching allocator,
every kernel launch and driver call a no-op. Nothing is computed (tensor values are garbage), but
everything the host does for a CUDA op runs: dispatch, meta, allocation, kernel choice, launch
argument preparation, replay plans, autograd. So host costs can be profiled, and the host glue
tested, on a machine with Triton and cuda-bindings installed but no driver.

    python3 benchmarks/cuda_host_sim.py --bench    # host us per small op, and per reversal step
    python3 benchmarks/cuda_host_sim.py --check    # replay plans launch what the full path launches

Not simulated: cuBLAS (matrix products launch nothing here, so their glue is missing from the
figures), Triton compilation (a kernel's first call is noted as compiled), device synchronisation.
`install()` patches the runtime process-wide: use it in a process of its own.
"""
import argparse
import sys
import time

import numpy as np

LAUNCHES = []  # (function, grid..., kinds, args) of every simulated launch, while `recording` is on
recording = [False]


def _launch(*args):
    if recording[0]:
        LAUNCHES.append(args)


def install():
    from vibetensor.runtime import cuda as rc
    from vibetensor.runtime.cuda import blas, driver as drv, launcher, memory, stream as streams
    from vibetensor.runtime.cuda.simulated import SimulatedDevice

    drv._state["init"] = True
    drv.device_count = lambda: 1
    drv.ensure_context = lambda index=None: None
    drv._current.ctx_index = 0
    props = {"major": 9, "minor": 0, "name": "simulated", "multi_processor_count": 132, "total_memory": 80 << 30}
    drv.properties = lambda index: props

    import functools

    class Device(SimulatedDevice):  # the real device's current_stream (device.CudaDevice's)
        current_stream = functools.partial(streams.current_stream_at, 0)
    rc.set_device_factory(lambda index: Device(80 << 30))

    def compile_and_launch(self, key, grid, args):  # every argument a pointer or a 64-bit int
        kinds = b"".join(b"l" if isinstance(a, (int, float, bool)) else b"p" for a in args) + b"x" * len(self.tail)
        self.cache[key] = entry = (True, _launch, len(self.cache) + 1, kinds, 128, 0)
        grid = tuple(grid) + (1,) * (3 - len(grid))
        _launch(entry[2], *grid, 128, 0, streams.current_stream_handle(key[1]), kinds,
                *launcher.specialize(args)[1], *self.tail)
    launcher.Kernel._compile_and_launch = compile_and_launch
    launcher.install_triton_driver = lambda: None
    blas.gemm = lambda *args, **kwargs: None
    blas.run = lambda *args, **kwargs: True  # (True: a bias epilogue "ran", as cuBLASLt does on a GPU)

    host_buffers = []

    def host_alloc(size, flags):
        buf = np.empty(size, np.uint8)
        host_buffers.append(buf)
        return buf.ctypes.data
    real_call = drv.call

    def call(fn, *args):  # device work and events do nothing; pinned memory is plain host memory
        name = getattr(fn, "__name__", "")
        if fn is host_alloc:
            return host_alloc(*args)
        if name.startswith(("cuMemcpy", "cuMemset", "cuEvent", "cuStream", "cuLaunch", "cuCtxSync")):
            return 0
        return real_call(fn, *args)
    drv.call = call

    class Driver:  # memory.py reaches cuMemHostAlloc through its own handle
        def __getattr__(self, name):
            from cuda.bindings import driver as cu
            return host_alloc if name == "cuMemHostAlloc" else getattr(cu, name)
    memory._cu = Driver

    def event_init(self, enable_timing=False, blocking=False, interprocess=False):
        self.handle, self.enable_timing, self.recorded = 0, enable_timing, False
    for name, fn in {"__init__": event_init, "record": lambda self, stream=None: None,
                     "wait": lambda self, stream=None: None, "query": lambda self: True,
                     "synchronize": lambda self: None, "__del__": lambda self: None}.items():
        setattr(streams.Event, name, fn)
    import vibetensor.torch as vt
    vt.cuda.synchronize = lambda device=None: None
    return vt


def _host_us(fn, calls=2000, rounds=7):
    for _ in range(200):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time_ns() - t0) / calls / 1e3)
    return best


def _reversal(vt, steps):
    from vibetensor.workloads import reversal as R
    cfg = R.Config()
    model, opt, step = R.make(vt, cfg, "cuda")
    X, Y = R.upload(vt, *R.batches(cfg, iters=8), "cuda")
    for i in range(steps):
        step(model, opt, X[i % 8], Y[i % 8], 1.0)
    return lambda: step(model, opt, X[0], Y[0], 1.0)


def bench(vt):
    x, y = vt.empty(1024, device="cuda"), vt.empty(1024, device="cuda")
    m = x.view(32, 32)
    print("host us per op (CPU thread time, simulated device; cuBLAS glue not included)")
    for name, fn in (("add", lambda: x + y), ("mul scalar", lambda: x * 2.0), ("exp", lambda: vt.exp(x)),
                     ("sum", lambda: x.sum()), ("softmax", lambda: vt.softmax(m, -1)),
                     ("empty", lambda: vt.empty(1024, device="cuda"))):
        print(f"  {name:12s} {_host_us(fn):7.2f}")
    step = _reversal(vt, 5)
    print(f"  reversal step {_host_us(step, calls=5, rounds=3) / 1e3:7.2f} ms")


def _canonical(launch, inputs):
    """A launch with its pointers named: ('in', k) for input k's, 'new' for others (the pointers
    lead the kernel's arguments, after the 8 launch settings)."""
    kinds = launch[7]
    out = list(launch[:8])
    for a, kind in zip(launch[8:], kinds.decode()):
        out.append((("in", inputs.index(a)) if a in inputs else "new") if kind == "p" else a)
    return tuple(out + list(launch[8 + len(kinds):]))


def check(vt):
    """Each op with plans off (the truth), then three times with plans on (the first makes the
    plans, the others replay): all must launch the same kernels with the same arguments."""
    F = vt.nn.functional
    x, x2 = vt.empty(8, 33, device="cuda"), vt.empty(8, 33, device="cuda")
    w, b = vt.empty(33, device="cuda"), vt.empty(33, device="cuda")
    t = vt.empty(33, 8, device="cuda").t()
    target = vt.empty(8, dtype=vt.int64, device="cuda")
    cases = {
        "add": lambda: x + t, "mul scalar": lambda: x * 2.5, "exp": lambda: vt.exp(t), "where": lambda: vt.where(x > 0, x, t),
        "softmax": lambda: F.softmax(x, -1), "log_softmax": lambda: F.log_softmax(t, 0),
        "layer_norm": lambda: F.layer_norm(x, (33,), w, b), "gelu": lambda: F.gelu(x),
        "cross_entropy": lambda: F.cross_entropy(x, target), "clamp": lambda: x.clamp(-1, 1),
        "contiguous": lambda: t.contiguous(), "sum": lambda: x.sum(), "mean dim": lambda: t.mean(0),
        "amax": lambda: x.amax(1), "x*x then x*x2": lambda: (x * x, x * x2),
        # one tensor whose options alone differ: a plan each (their key holds the options)
        "mean dims 0, 1": lambda: (t.mean(0), t.mean((1,)), t.mean(1, True)),
        "softmax dims": lambda: (F.softmax(x, -1), F.softmax(x, 0)),
    }
    from vibetensor.backends.cuda import plan
    replays = []
    real_compile = plan._compile  # counts the replays: each plan's replay function, wrapped as it is made
    plan._compile = lambda p: (lambda run: lambda args: replays.append(1) or run(args))(real_compile(p))
    inputs = [a.data_ptr() for a in (x, w, b, t, target, x2)]
    failures = 0
    for name, fn in cases.items():
        runs = []
        replays.clear()
        for i in range(4):  # full path without plans (the truth), full path (plans made), replay, replay
            plan.enabled[0] = i > 0
            LAUNCHES.clear()
            recording[0] = True
            fn()
            recording[0] = False
            runs.append([_canonical(launch, inputs) for launch in LAUNCHES])
        ok = runs[0] == runs[1] == runs[2] == runs[3] and runs[0] and len(replays) >= 2
        failures += not ok
        print(f"  {name:14s} {len(runs[0])} launch(es), {len(replays)} replays: "
              f"{'same launches' if ok else 'DIFFERENT (or not replayed)'}")
    step = _reversal(vt, 3)
    step()
    print("reversal steps ran")
    if failures:
        print(f"{failures} op(s) replay differently")
        return 1
    print("ok")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    vt = install()
    if args.check:
        return check(vt)
    bench(vt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
