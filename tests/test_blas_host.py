"""The host path of the CUDA matrix products on CPU: the simulated device (benchmarks/cuda_host_sim.py)
with the REAL blas.run over a fake cuBLASLt / cuBLAS that records, for every library call, the
product it describes (transposes, epilogue, bias pointer, layouts, alpha, beta, operand pointers).
A repeated product (the kernels' repeat caches, blas.run's plan cache, the bias pointer set only
when it changes) must describe exactly what its first, fully validated call described.
In a subprocess: the simulation patches the runtime process-wide."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="the simulation needs Triton (installed by the test extras)")
pytest.importorskip("cuda.bindings", reason="the simulation needs cuda-bindings (installed by the test extras)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r'''
import ctypes, sys, types
sys.path[:0] = [ROOT, ROOT + "/benchmarks"]
from vibetensor.runtime.cuda import blas
real_run = blas.run
import cuda_host_sim as S
vt = S.install()
blas.run = real_run
from vibetensor.backends.cuda import linalg as cl

NS = types.SimpleNamespace
CALLS = []  # what each library call computes
objects = {}  # fake handle -> its attributes


def new(**attrs):
    h = len(objects) + 1
    objects[h] = {k: v for k, v in attrs.items() if k != "compute"}
    if "compute" in attrs:  # (attribute 0: the compute type)
        objects[h][0] = attrs["compute"]
    return h


def read(ptr, kind):
    return {"f": ctypes.c_float, "d": ctypes.c_double}[kind].from_address(ptr).value


def value(ptr, size):
    return {4: ctypes.c_uint32, 8: ctypes.c_uint64}[size].from_address(ptr).value


class Result:
    def __init__(self):
        self.buf = ctypes.create_string_buffer(8)
        self.ptr, self.state = ctypes.addressof(self.buf), 0


class Lt:
    MatmulDescAttribute = NS(TRANSA=3, TRANSB=4, EPILOGUE=7, BIAS_POINTER=8)
    MatrixLayoutAttribute = NS(BATCH_COUNT=5, STRIDED_BATCH_OFFSET=6)
    MatmulPreferenceAttribute = NS(MAX_WORKSPACE_BYTES=1, REDUCTION_SCHEME_MASK=2, MIN_ALIGNMENT_A_BYTES=3,
                                   MIN_ALIGNMENT_B_BYTES=4, MIN_ALIGNMENT_C_BYTES=5, MIN_ALIGNMENT_D_BYTES=6)
    Epilogue, ReductionScheme, MatmulHeuristicResult = NS(BIAS=4), NS(COMPUTE_TYPE=1), Result
    create = staticmethod(lambda: new())
    matmul_desc_create = staticmethod(lambda compute, scale: new(compute=compute))
    matrix_layout_create = staticmethod(lambda data, rows, cols, ld: new(data=data, rows=rows, cols=cols, ld=ld))
    matmul_preference_create = staticmethod(lambda: new())
    matmul_preference_destroy = matrix_layout_destroy = matmul_desc_destroy = staticmethod(lambda h: None)

    @staticmethod
    def matmul_desc_set_attribute(h, attr, ptr, size):
        objects[h][attr] = value(ptr, size)

    matrix_layout_set_attribute = matmul_preference_set_attribute = matmul_desc_set_attribute

    @staticmethod
    def matmul_algo_get_heuristic(handle, desc, a, b, c, d, pref, n, result, found):
        ctypes.c_int32.from_address(found).value = 1

    @staticmethod
    def matmul(handle, desc, al, a, a_l, b, b_l, be, c, c_l, d, d_l, algo, ws, ws_size, stream):
        kind = "d" if objects[desc][0] == 70 else "f"
        CALLS.append(("lt", sorted(objects[desc].items()), [sorted(objects[x].items(), key=str) for x in (a_l, b_l, c_l)],
                      read(al, kind), read(be, kind), a, b, c, d, c_l == d_l))


class Cublas:
    ComputeType = NS(COMPUTE_32F=68, COMPUTE_32F_FAST_TF32=77, COMPUTE_64F=70)
    Operation, GemmAlgo = NS(N=0, T=1), NS(DEFAULT=-1)
    Math = NS(DEFAULT_MATH=0, DISALLOW_REDUCED_PRECISION_REDUCTION=16)
    create = staticmethod(lambda: new())
    set_math_mode = set_stream = set_workspace = staticmethod(lambda *args: None)

    @staticmethod
    def gemm_ex(h, tb, ta, n, m, k, al, b, dtb, ldb, a, dta, lda, be, c, dtc, ldc, compute, algo):
        kind = "d" if compute == 70 else "f"
        CALLS.append(("gemm_ex", tb, ta, n, m, k, read(al, kind), b, ldb, a, lda, read(be, kind), c, ldc, compute))

    @staticmethod
    def gemm_strided_batched_ex(h, tb, ta, n, m, k, al, b, dtb, ldb, sb, a, dta, lda, sa, be, c, dtc, ldc, sc,
                                batch, compute, algo):
        kind = "d" if compute == 70 else "f"
        CALLS.append(("batched_ex", tb, ta, n, m, k, read(al, kind), b, ldb, sb, a, lda, sa, read(be, kind), c, ldc,
                      sc, batch, compute))


blas._modules["lt"], blas._modules["cublas"] = Lt(), Cublas()


def cuda(*shape, dtype=vt.float32):
    return vt.empty(*shape, dtype=dtype, device="cuda")


def calls_of(fn):
    """The library calls of fn(), with the result's address named: results differ between calls."""
    del CALLS[:]
    res = fn()
    ptr = res.data_ptr()
    return [tuple("RES" if isinstance(v, int) and v == ptr and v > 4096 else v for v in call) for call in CALLS], res


F = vt.nn.functional
x, w, bias, bias2 = cuda(64, 32), cuda(48, 32), cuda(48), cuda(48)
xb, yb = cuda(8, 16, 32), cuda(8, 32, 24)
xd, wd = cuda(16, 8, dtype=vt.float64), cuda(8, 4, dtype=vt.float64)
wide = cuda(96, 40)
out, out_t, x3, strided, bias_d = cuda(64, 48), cuda(48, 64).T, cuda(2, 64, 32), cuda(96)[::2], cuda(4, dtype=vt.float64)
c3, e1, e2 = cuda(8, 16, 24), cuda(5, 0), cuda(0, 3)
CASES = {  # name -> a call of the op
    "mm": lambda: vt.mm(x, w.T), "mm_T_operand": lambda: x @ wide[:32, :48], "mm_offset": lambda: x[1:, 1:] @ w.T[1:, :],
    "mm_copy": lambda: x[:, ::2] @ w[:, :16].T, "matmul_3d": lambda: x3 @ w.T,
    "bmm": lambda: vt.bmm(xb, yb), "bmm_mT": lambda: xb @ yb.mT.mT, "bmm_T": lambda: yb.mT @ xb.mT,
    "linear": lambda: F.linear(x, w, bias), "linear_other_bias": lambda: F.linear(x, w, bias2),
    "addmm_alpha": lambda: vt.addmm(bias, x, w.T, alpha=0.5), "addmm_beta": lambda: vt.addmm(bias, x, w.T, beta=0.5),
    "linear_strided_bias": lambda: F.linear(x, w, strided), "linear_3d": lambda: F.linear(x3, w, bias),
    "mm_out": lambda: vt.mm(x, w.T, out=out), "mm_out_T": lambda: vt.mm(x, w.T, out=out_t),
    "float64": lambda: xd @ wd, "float64_linear": lambda: F.linear(xd, wd.T, bias_d),
    "baddbmm": lambda: vt.baddbmm(c3, xb, yb, beta=0.5),
    "empty_inner": lambda: e1 @ e2,
}
for name, fn in CASES.items():
    first, r1 = calls_of(fn)
    assert bool(first) == (name != "empty_inner"), name  # (an empty sum fills zeros: no library call)
    for _ in range(2):
        again, r2 = calls_of(fn)
        assert again == first, (name, first, again)
        assert (r2.shape, r2.dtype, r2.stride()) == (r1.shape, r1.dtype, r1.stride()), name
    if name in ("linear", "linear_other_bias", "addmm_alpha"):
        ((kind, attrs, *_),) = first
        assert kind == "lt" and dict(attrs)[8] == (bias2 if name == "linear_other_bias" else bias).data_ptr(), name

# alternating biases: each call's descriptor holds its own bias
for b in (bias, bias2, bias, bias2):
    ((_, attrs, *_),), _ = calls_of(lambda: F.linear(x, w, b))
    assert dict(attrs)[8] == b.data_ptr()

# the repeats are really taken
assert cl.mm.repeats and cl.bmm.repeats and cl._bias_repeats

# cuBLASLt switched off after a repeat: the bias is copied into the result and cublasGemmEx adds beta=1 * C
blas.use_lt[0] = False
for _ in range(2):
    calls, _ = calls_of(lambda: F.linear(x, w, bias))
    assert [c[0] for c in calls] == ["gemm_ex"] and calls[0][11] == 1.0, calls
    calls, _ = calls_of(lambda: vt.mm(x, w.T))
    assert [c[0] for c in calls] == ["gemm_ex"] and calls[0][11] == 0.0, calls
blas.use_lt[0] = True
calls, _ = calls_of(lambda: F.linear(x, w, bias))
assert [c[0] for c in calls] == ["lt"], calls

# the TF32 switch reaches a repeated product
for tf32, compute in ((True, 77), (False, 68), (True, 77)):
    blas.allow_tf32[0] = tf32
    ((_, attrs, *_),), _ = calls_of(lambda: vt.mm(x, w.T))
    assert dict(attrs)[0] == compute, (tf32, attrs)
blas.allow_tf32[0] = False

# errors stay torch's on repeats (nothing of a failed call is remembered)
for fn, kind, text in ((lambda: vt.mm(x, cuda(32, 8, dtype=vt.float64)), RuntimeError, "expected m1 and m2"),
                       (lambda: vt.mm(x, 3), TypeError, "must be Tensor"),
                       (lambda: vt.bmm(xb, cuda(8, 31, 24)), RuntimeError, "Expected size for first two"),
                       (lambda: vt.addmm(bias, x, w), RuntimeError, "cannot be multiplied"),
                       (lambda: vt.addmm(bias, x, w.T, beta=[1]), TypeError, ""),
                       (lambda: vt.mm(x.to(vt.int32), w.T.to(vt.int32)), NotImplementedError, "")):
    for _ in range(2):
        try:
            fn()
        except kind as e:
            assert text in str(e), e
        else:
            raise AssertionError(f"no {kind.__name__}")
print("ok")
'''


def test_repeated_products_describe_what_their_first_call_described():
    r = subprocess.run([sys.executable, "-c", f"ROOT = {ROOT!r}\n" + SCRIPT], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), r.stdout + r.stderr
