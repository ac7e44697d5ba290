"""Launching Triton kernels without torch, and without Triton's per-call Python binding.

Triton's default CUDA driver imports torch for the current device and stream; `TritonDriver`
answers those questions from our runtime instead. A `Kernel` wraps a `@triton.jit` function: the
first call for a specialisation goes through Triton's JIT (compiling and launching), and the
compiled kernel's C launcher is cached under our own key, so later calls skip Triton's argument
binding and call the C function directly (target: <= 5 us host time per launch).

Specialisation key, mirroring what Triton specialises on: for each pointer argument its dtype
and 16-byte alignment; for each integer its being 1, divisible by 16, and fitting in 32 bits;
floats by type only; constexprs by value.
"""
import threading

from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import fastlaunch
from vibetensor.runtime.cuda import stream as streams

_installed = threading.Lock()
_current = drv._current
_streams_local = streams._local
_driver_set = [False]


def install_triton_driver():
    """Make Triton use our runtime for device, stream and capability (never importing torch)."""
    if _driver_set[0]:
        return
    with _installed:
        if _driver_set[0]:
            return
        import triton
        from triton.backends.nvidia.driver import CudaDriver, CudaLauncher, CudaUtils

        class TritonDriver(CudaDriver):
            def __init__(self):  # the base __init__ imports torch: set what it would, ourselves
                self.utils = CudaUtils()
                self.launcher_cls = CudaLauncher
                self.get_current_device = drv.current_device
                self.set_current_device = drv.set_device
                self.get_current_stream = lambda index=None: streams.current_stream(index).cuda_stream
                self.get_device_capability = lambda index=None: _capability(index)

            @staticmethod
            def is_active():
                return True

        drv.ensure_context()
        triton.runtime.driver.set_active(TritonDriver())
        _driver_set[0] = True


def _capability(index=None):
    p = drv.properties(drv.current_device() if index is None else index)
    return p["major"], p["minor"]


class PointerArg:
    """What Triton needs of a pointer argument: data_ptr() and a dtype whose name ends in the
    element type (e.g. 'float32'). Used for raw allocations in tests and benchmarks."""
    __slots__ = ("ptr", "dtype")

    def __init__(self, ptr, dtype):
        self.ptr, self.dtype = ptr, dtype

    def data_ptr(self):
        return self.ptr


_I32 = range(-2147483648, 2147483648)  # (`in` a range is O(1))


def specialize(args):
    """(key, raw): Triton's specialisation key of the arguments, and the values the C launcher
    takes (pointers as integers). One pass, so each data_ptr() is called once. An int's entry
    packs what Triton specialises on (== 1, divisible by 16, fits 32 bits) into one small int."""
    key, raw = [], []
    for a in args:
        t = a.__class__
        if t is int:
            key.append((a == 1) + 2 * (a & 15 == 0) + 4 * (a in _I32))
            raw.append(a)
        elif t is float or t is bool:
            key.append(t)
            raw.append(a)
        else:
            p = a.data_ptr()
            key.append((a.dtype, p & 15 == 0))
            raw.append(p)
    return tuple(key), raw


def cdiv(a, b):
    """ceil(a / b) for the host side of a launch (triton.cdiv is a constexpr_function: ~1 us a call)."""
    return -(-a // b)


def next_power_of_2(n):
    """The smallest power of two >= n (1 for n <= 1), on the host."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


# thread id -> list of (kernel, grid, args, stream) launched while a replay plan is being built
# (backends/cuda/plan.py); empty, so one dict test, whenever nothing records.
recorders = {}
# what a recording also holds when a launch compiled its kernel: compiling makes driver calls (device
# properties, context) that would taint the recording, so the plan waits for a later call
COMPILED = ("compiled",)


def _record(item):
    """Add a launch (or COMPILED) to this thread's recording, if a plan is being built here."""
    rec = recorders.get(threading.get_ident())
    if rec is not None:
        rec.append(item)


class Kernel:
    """A cached, fast-launching wrapper of a @triton.jit function, with its constexprs bound:

        add = Kernel(add_kernel, BLOCK=1024)    # add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr)
        add((grid,), x, y, out, n)              # runtime arguments only

    Binding constexprs once keeps them off the per-call path; make one Kernel per variant.
    Once our C launcher is built, __call__ is its C version (fastlaunch's kernel_call, installed by
    _install_c_call), which reads the slots below directly and falls back to the Python `_call`.
    """
    __slots__ = ("fn", "cache", "constexprs", "tail", "memo")

    def __init__(self, jit_fn, **constexprs):
        self.fn = jit_fn
        self.cache = {}  # (arg keys, constexprs, device) -> (is_ours, launch, function, 3 launch settings)
        self.memo = None  # the C __call__'s last hit: (entry, argument signature, key, device)
        params = list(jit_fn.params)
        first = next((i for i, p in enumerate(params) if p.is_constexpr), len(params))
        if any(not p.is_constexpr for p in params[first:]):
            raise TypeError(f"{jit_fn.__name__}: declare constexpr parameters after all runtime parameters")
        unknown = set(constexprs) - {p.name for p in params[first:]}
        if unknown:
            raise TypeError(f"{jit_fn.__name__}: unknown constexpr(s) {sorted(unknown)}")
        self.constexprs = {p.name: constexprs.get(p.name, p.default) for p in params[first:]}  # declared order
        self.tail = tuple(self.constexprs.values())

    def _call(self, grid, *args, stream=None):
        if recorders:
            _record((self, grid, args, stream))
        device = _current.index  # drv.current_device(), inlined: this is the hot path
        if _c_launch[0] is not None and grid.__class__ is tuple:
            # the C path: specialise, look up, launch (None), or a key to compile, or NotImplemented
            if stream is not None:
                s = stream.cuda_stream
            else:  # streams.current_stream_handle(device), inlined
                handles = _streams_local.handles
                s = handles.get(device, 0) if handles else 0
            miss = _c_launch[0](self.cache, device, s, grid, self.tail, *args)
            if miss is None:
                return
            if miss is not NotImplemented:
                if recorders:
                    _record(COMPILED)
                self._compile_and_launch(miss, grid, args)
                return
        arg_key, raw = specialize(args)
        key = (arg_key, device)
        entry = self.cache.get(key)
        if entry is None:
            if recorders:
                _record(COMPILED)
            self._compile_and_launch(key, grid, args)
            return
        if stream is not None:
            s = stream.cuda_stream
        else:  # streams.current_stream_handle(device), inlined
            handles = _streams_local.handles
            s = handles.get(device, 0) if handles else 0
        n = len(grid)
        fast, launch, function, a, b, c = entry
        # constexpr arguments keep their positions in the argument list (the launcher skips them)
        if fast:  # ours: (kinds, block_x, shared)
            if n == 1:
                launch(function, grid[0], 1, 1, b, c, s, a, *raw, *self.tail)
            else:
                launch(function, grid[0], grid[1], grid[2] if n > 2 else 1, b, c, s, a, *raw, *self.tail)
            return
        gx = grid[0]
        gy = grid[1] if n > 1 else 1
        gz = grid[2] if n > 2 else 1
        # Triton's launcher: (packed_metadata, cooperative, pdl)
        launch(gx, gy, gz, s, function, b, c, None, None, a, None, None, None, *raw, *self.tail)

    __call__ = _call

    def _compile_and_launch(self, key, grid, args):
        install_triton_driver()
        drv.ensure_context()
        compiled = self.fn[grid](*args, **self.constexprs)  # Triton's JIT path: compiles, then launches
        run = compiled.run
        if run.global_scratch_size or run.profile_scratch_size:
            return  # kernels needing scratch memory keep Triton's own path (none of ours do)
        num_warps, num_ctas, shared = compiled.packed_metadata
        kinds = fastlaunch.kinds_of(list(compiled.src.signature.values()))
        plain = num_ctas == 1 and not run.launch_cooperative_grid and not run.launch_pdl
        lean = fastlaunch.module() if kinds is not None and plain else None
        if lean is not None:
            if _c_launch[0] is None:
                _install_c_call(lean)
            self.cache[key] = (True, lean.launch, int(compiled.function), kinds, 32 * num_warps, shared)
        else:
            self.cache[key] = (False, run.launch, compiled.function, compiled.packed_metadata,
                               run.launch_cooperative_grid, run.launch_pdl)


# fastlaunch's launch_cached once the C module is built (the first kernel compiled through it)
_c_launch = [None]


def _install_c_call(lean):
    """Launch through the C module from now on: Kernel.__call__ becomes its C version (the Python
    `_call` stays the fallback for whatever the C one does not do itself)."""
    _c_launch[0] = lean.launch_cached
    Kernel.__call__ = lean.install(Kernel, Kernel._call, _current, _streams_local, recorders, PointerArg)

_cached = {}


def cached_kernel(fn, **constexprs):
    """The Kernel of `fn` with these constexprs, made on first use. Keyed by id(fn): hashing a
    JITFunction takes a lock and hashes its source (~1 us); keyword order is fixed per call site."""
    key = (id(fn), *constexprs.items())
    k = _cached.get(key)
    if k is None:
        k = _cached[key] = Kernel(fn, **constexprs)
    return k
