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
from vibetensor.runtime.cuda import stream as streams

_installed = threading.Lock()
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


def specialize(args):
    """(key, raw): Triton's specialisation key of the arguments, and the values the C launcher
    takes (pointers as integers). One pass, so each data_ptr() is called once."""
    key, raw = [], []
    for a in args:
        t = type(a)
        if t is int:
            key.append((a == 1, a % 16 == 0, -2147483648 <= a < 2147483648))
            raw.append(a)
        elif t is float or t is bool:
            key.append(t)
            raw.append(a)
        else:
            p = a.data_ptr()
            key.append((a.dtype, p % 16 == 0))
            raw.append(p)
    return tuple(key), raw


class Kernel:
    """A cached, fast-launching wrapper of a @triton.jit function.

        add = Kernel(add_kernel)                # add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr)
        add((grid,), x, y, out, n, BLOCK=1024)  # constexprs by keyword
    """

    def __init__(self, jit_fn):
        self.fn = jit_fn
        self.cache = {}  # (arg keys, constexprs, device) -> (launch, function, packed_metadata, coop, pdl)
        params = list(jit_fn.params)
        first = next((i for i, p in enumerate(params) if p.is_constexpr), len(params))
        if any(not p.is_constexpr for p in params[first:]):
            raise TypeError(f"{jit_fn.__name__}: declare constexpr parameters after all runtime parameters")
        self.constexprs = {p.name: p.default for p in params[first:]}  # declared order, with defaults
        self.defaults = tuple(self.constexprs.values())

    def __call__(self, grid, *args, stream=None, **constexprs):
        device = drv.current_device()
        tail = tuple(constexprs.get(n, d) for n, d in self.constexprs.items()) if constexprs else self.defaults
        arg_key, raw = specialize(args)
        key = (arg_key, tail, device)
        entry = self.cache.get(key)
        s = (stream or streams.current_stream(device)).cuda_stream
        if entry is None:
            self._compile_and_launch(key, grid, args, constexprs)
            return
        launch, function, packed, coop, pdl = entry
        gx = grid[0]
        gy = grid[1] if len(grid) > 1 else 1
        gz = grid[2] if len(grid) > 2 else 1
        # constexpr arguments occupy their positions in the C launcher's argument list too
        launch(gx, gy, gz, s, function, coop, pdl, None, None, packed, None, None, None,
               *raw, *tail)

    def _compile_and_launch(self, key, grid, args, constexprs):
        install_triton_driver()
        drv.ensure_context()
        compiled = self.fn[grid](*args, **constexprs)  # Triton's JIT path: compiles, then launches
        run = compiled.run
        if run.global_scratch_size or run.profile_scratch_size:
            return  # kernels needing scratch memory keep Triton's own path (none of ours do)
        self.cache[key] = (run.launch, compiled.function, compiled.packed_metadata,
                           run.launch_cooperative_grid, run.launch_pdl)
