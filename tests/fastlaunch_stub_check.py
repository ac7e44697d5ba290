"""Run by test_fastlaunch.py in a subprocess whose libcuda.so.1 is a stub that records each
cuLaunchKernel (so no GPU is needed and a real driver is never shadowed in the test process).

Checks launcher.Kernel's C __call__ (fastlaunch.install) against the Python path's rules: the
cache entry it launches is the one launcher.specialize's key names, through changes of pointer
alignment, int specialisation, argument types, the current stream and device; misses, stream=,
and recording plans reach the Python _call. Prints "ok"."""
import ctypes
import struct
import sys
import threading

stub = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # soname libcuda.so.1: the extension binds to it
from triton.backends.nvidia import driver as nv  # noqa: E402

nv.library_dirs = lambda: [sys.argv[1].rsplit("/", 1)[0]]
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from vibetensor.runtime.cuda import fastlaunch, launcher  # noqa: E402
from vibetensor.runtime.cuda import stream as streams  # noqa: E402
from vibetensor.runtime.cuda import driver as drv  # noqa: E402

stub.last.restype = ctypes.POINTER(ctypes.c_uint64)


@triton.jit
def affine(x_ptr, out_ptr, n, scale, flag, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + i, tl.load(x_ptr + i) * scale, mask=(i < n) & flag)


class F32:
    def __str__(self):
        return "float32"


class F16:
    def __str__(self):
        return "float16"


class Tensorish:  # not a PointerArg: the C path asks data_ptr() and .dtype like Triton does
    def __init__(self, ptr, dtype):
        self.ptr, self.dtype = ptr, dtype

    def data_ptr(self):
        return self.ptr


mod = fastlaunch.module()
assert mod is not None, "the fast launcher did not build over the stub"
k = launcher.Kernel(affine, BLOCK=128)
misses = []


def compile_and_launch(self, key, grid, args):  # what a compile would cache: a distinct function per key
    misses.append(key)
    kinds = b"".join((b"i" if -2 ** 31 <= a < 2 ** 31 else b"l") if a.__class__ is int else
                     b"d" if a.__class__ in (float, bool) else b"p" for a in args)  # (as Triton types ints)
    function = 100 * (1 + len(self.cache)) + len(args) + 2  # (the stub reads the parameter count from it)
    self.cache[key] = (True, mod.launch, function, kinds + b"x", 32 * (1 + len(self.cache)), 0)


launcher.Kernel._compile_and_launch = compile_and_launch
launcher._install_c_call(mod)
assert launcher.Kernel.__call__ is not launcher.Kernel._call

f32, f16 = F32(), F16()


def last():
    r = stub.last()
    return {"count": r[0], "function": r[1], "grid": (r[2], r[3], r[4]), "block": r[5], "shared": r[6],
            "stream": r[7], "nparams": r[8], "params": [r[9 + i] for i in range(r[8])]}


def expect(args, grid, stream=0, device=0):
    entry = k.cache[(launcher.specialize(args)[0], device)]
    got = last()
    assert got["function"] == entry[2], (args, got, entry)
    assert got["grid"] == tuple(grid) + (1,) * (3 - len(grid)) and got["block"] == entry[4], got
    assert got["stream"] == stream, got
    raw = launcher.specialize(args)[1]
    kinds = entry[3].decode()
    # each parameter's 8-byte slot as the stub read it (an int32 fills the low half only)
    params = [p & 0xFFFFFFFF if kind == "i" else p for p, kind in zip(got["params"], kinds + "pp")]
    assert params == [_bits(v, kind) for v, kind in zip(raw, kinds)] + [0, 0], (got, raw)


def _bits(v, kind):
    """What a parameter's slot holds: pointers and int64 as themselves, int32 as its low 32 bits,
    floats ('d') as float64 bits."""
    if kind == "d":
        return int.from_bytes(struct.pack("<d", float(v)), "little")
    return v & 0xFFFFFFFF if kind == "i" else v


P = launcher.PointerArg
cases = [  # (args): alignment, int specialisation (1, multiple of 16, 64-bit), float vs bool, dtype
    (P(4096, f32), P(8192, f32), 100, 2.5, True),
    (P(4100, f32), P(8192, f32), 100, 2.5, True),   # x not 16-byte aligned
    (P(4096, f32), P(8192, f32), 1, 2.5, True),     # n == 1
    (P(4096, f32), P(8192, f32), 32, 2.5, True),    # n % 16 == 0
    (P(4096, f32), P(8192, f32), 2 ** 33, 2.5, True),  # n beyond 32 bits
    (P(4096, f16), P(8192, f32), 100, 2.5, True),   # another dtype
    (P(4096, f32), P(8192, f32), 100, 2.5, 0.5),    # a float where a bool was
    (Tensorish(4096, f32), Tensorish(8192, f32), 100, 2.5, True),
]
seen = set()
for rep in range(2):  # the first pass misses once per signature; the second hits (memo or cache) only
    for args in cases + cases[::-1]:
        key = (launcher.specialize(args)[0], 0)
        before = len(misses)
        k((3,), *args)
        assert len(misses) == before + (key not in seen), ("a miss" if key in seen else "no miss", args)
        if key in seen:  # (a miss compiles without launching, as Triton's JIT would launch itself)
            expect(args, (3,))
        seen.add(key)
assert len(misses) == len(seen) == len(k.cache) == 7, (len(misses), len(seen))  # (Tensorish keys as case 0)

# the memo holds the last hit, and the entry it launched is the cache's
args = cases[0]
k((5, 2), *args)
expect(args, (5, 2))
assert k.memo[0] is k.cache[k.memo[2]] and k.memo[2] == (launcher.specialize(args)[0], 0)

# the current stream (this thread's handles) and device are read per call
streams._local.handles = {0: 77, 1: 99}
k((1,), *args)
expect(args, (1,), stream=77)
drv._current.index = 1  # another device: its own key (a miss), its own stream
k((1,), *args)
assert misses[-1] == (launcher.specialize(args)[0], 1) and last()["stream"] == 77  # (no launch on a miss)
k((1,), *args)
expect(args, (1,), stream=99, device=1)
drv._current.index = 0
streams._local.handles = None

# stream= goes through the Python path, which launches on that stream


class S:
    cuda_stream = 55


count = last()["count"]
k((1,), *args, stream=S())
assert last()["count"] == count + 1
expect(args, (1,), stream=55)

# a recording plan sees the launch (the Python path records it)
rec = launcher.recorders[threading.get_ident()] = []
try:
    k((1,), *args)
finally:
    del launcher.recorders[threading.get_ident()]
assert len(rec) == 1 and rec[0][0] is k and rec[0][2] == args
expect(args, (1,))

print("ok")
