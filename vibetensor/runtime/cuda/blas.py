"""cuBLASLt (and cuBLAS) through nvmath-python's bindings: handles per device and thread,
workspaces from our caching allocator (so matrix products can be captured into CUDA graphs: no
cudaMalloc inside).

`gemm` takes row-major operands, as tensors are laid out, and maps them onto the libraries'
column-major view: row-major C = A @ B is column-major C^T = B^T @ A^T, so the operands swap and
nothing is transposed in memory.

float16, bfloat16 and float32 run on cuBLASLt: per problem signature (shapes, transposes, leading
dims, batch strides, dtype, operand alignments) the matmul descriptor, the four matrix layouts and
the algorithm the heuristic ranks first are built once and cached, so a repeated call is one dict
lookup and one cublasLtMatmul. float64, and any signature cuBLASLt finds no algorithm for, run on
cublasGemmEx. Reductions over k (split-k) are kept in the compute type on both paths: reducing
partial sums in a half type's precision loses digits torch's per-batch results keep.
"""
import threading

import numpy as np

from vibetensor.runtime import cuda as _cuda
from vibetensor.runtime.cuda import stream as streams

WORKSPACE_BYTES = 32 << 20  # what cuBLAS recommends for Hopper

# cudaDataType by dtype name
CUDA_DATA_TYPE = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 14, "complex64": 4, "complex128": 5}
_LT_DTYPES = ("float16", "bfloat16", "float32")
_streams_local = streams._local
_local = threading.local()  # per-thread handles: cuBLAS handles must not be shared across threads
allow_tf32 = [False]  # torch.backends.cuda.matmul.allow_tf32
use_lt = [True]  # cuBLASLt for half types and float32 (False: cublasGemmEx for every dtype)


_modules = {}


def _cublas():
    m = _modules.get("cublas")
    if m is None:
        import nvmath.bindings.cublas as m  # imported on first matrix product
        _modules["cublas"] = m
    return m


def _cublaslt():
    m = _modules.get("lt")
    if m is None:
        import nvmath.bindings.cublasLt as m
        _modules["lt"] = m
    return m


class _Handle:
    """One device's cuBLAS and cuBLASLt handles for this thread, and a workspace per stream (shared
    by both libraries: work on one stream runs in order)."""

    def __init__(self, device_index):
        self.device_index, self.workspaces = device_index, {}
        self.cublas = self.lt = self.stream = None
        # cuBLASLt plans with a bias epilogue: each call sets its bias pointer on the descriptor,
        # so they are per thread (the handle's), not shared like _lt_plans
        self.bias_plans = {}

    def workspace(self, stream):
        key = stream.cuda_stream
        ws = self.workspaces.get(key)
        if ws is None:
            ws = self.workspaces[key] = _cuda.alloc(WORKSPACE_BYTES, self.device_index, stream)
        return ws.ptr

    def cublas_on(self, stream):
        cublas = _cublas()
        if self.cublas is None:
            self.cublas = cublas.create()
            M = cublas.Math
            cublas.set_math_mode(self.cublas, M.DEFAULT_MATH | M.DISALLOW_REDUCED_PRECISION_REDUCTION)
        if stream is not self.stream:
            cublas.set_stream(self.cublas, stream.cuda_stream)
            cublas.set_workspace(self.cublas, self.workspace(stream), WORKSPACE_BYTES)
            self.stream = stream
        return self.cublas

    def lt_handle(self):
        if self.lt is None:
            self.lt = _cublaslt().create()
        return self.lt


def thread_handle(local, device_index, make):
    """The library handle object of this thread for a device (`local`: the library's
    threading.local), made by make(device_index) on first use: cuBLAS and cuSOLVER handles must
    not be shared across threads."""
    handles = getattr(local, "handles", None)
    if handles is None:
        handles = local.handles = {}
    h = handles.get(device_index)
    if h is None:
        h = handles[device_index] = make(device_index)
    return h


def _handle(device_index):
    return thread_handle(_local, device_index, _Handle)


def handle(device_index, stream):
    """The cuBLAS handle of this thread for the device, bound to `stream` and its workspace."""
    return _handle(device_index).cublas_on(stream)


def _compute_type(dtype_name):
    """(cublasComputeType_t, NumPy type of alpha/beta, cudaDataType of alpha/beta)."""
    C = _cublas().ComputeType
    if dtype_name == "complex64":  # CUDA_C_32F alpha/beta
        return C.COMPUTE_32F, np.complex64, 4
    if dtype_name == "complex128":
        return C.COMPUTE_64F, np.complex128, 5
    if dtype_name == "float64":
        return C.COMPUTE_64F, np.float64, 1
    if dtype_name == "float32":
        return (C.COMPUTE_32F_FAST_TF32 if allow_tf32[0] else C.COMPUTE_32F), np.float32, 0
    return C.COMPUTE_32F, np.float32, 0  # half types accumulate in float32


_SCALARS = {(t, v): np.array([v], t) for t in (np.float32, np.float64) for v in (0.0, 1.0)}
_SCALAR_PTRS = {k: a.ctypes.data for k, a in _SCALARS.items()}  # (ndarray.ctypes costs ~1 us a call)


def _scalar(value, np_type):
    """(host pointer to alpha/beta as np_type, the array holding it: keep it alive until the call returns)."""
    ptr = _SCALAR_PTRS.get((np_type, value))
    if ptr is not None:
        return ptr, None
    a = np.array([value], np_type)
    return a.ctypes.data, a


def _alignment(low_bits):
    """The alignment in bytes (at most 256) of an address whose low 8 bits are `low_bits`."""
    return low_bits & -low_bits if low_bits else 256


class _LtPlan:
    """cuBLASLt's objects for one problem signature: descriptor, layouts of A, B, C (= D), the
    chosen algorithm (first field of the heuristic result), and the scalar type, with host
    pointers to its 1 and 0 (the usual alpha and beta). (Host-side objects of a few hundred
    bytes, never destroyed: the cache is bounded and rarely cleared.)"""
    __slots__ = ("desc", "layouts", "result", "algo", "scalar_type", "one", "zero", "bias", "bias_ptr", "bias_now",
                 "__weakref__")

    def __init__(self, desc, layouts, result, scalar_type):
        self.desc, self.layouts, self.result, self.scalar_type = desc, layouts, result, scalar_type
        self.algo = int(result.ptr)
        self.one, self.zero = _SCALAR_PTRS[scalar_type, 1.0], _SCALAR_PTRS[scalar_type, 0.0]
        # a bias plan's pointer attribute, written through this buffer when it changes (a new
        # ndarray and its .ctypes cost ~1.5 us a call); a layer's bias keeps its address, so
        # most calls find it set already
        self.bias = np.zeros(1, np.uint64)
        self.bias_ptr, self.bias_now = self.bias.ctypes.data, 0

    def set_bias(self, pointer):
        self.bias[0] = pointer
        _cublaslt().matmul_desc_set_attribute(self.desc, _BIAS_POINTER[0], self.bias_ptr, 8)
        self.bias_now = pointer


_lt_plans = {}  # signature -> _LtPlan, or None where cuBLASLt has no algorithm (cublasGemmEx then)
_BIAS_POINTER = [None]  # cublasLtMatmulDescAttributes_t's BIAS_POINTER, as an int (set with the first plan)


def _set(setter, obj, attr, value, np_type):
    buf = np.array([value], np_type)
    setter(obj, attr, buf.ctypes.data, buf.itemsize)


def _lt_plan(lt_handle, dtype_name, m, n, k, trans_a, trans_b, lda, ldb, ldc, batch, stride_a, stride_b,
             stride_c, aligns, bias=False):
    """Build the cuBLASLt objects of a row-major problem (see gemm), or None if no algorithm fits.
    bias: the BIAS epilogue adds a vector of n entries to every row of C (its pointer is set per call)."""
    lt, cublas = _cublaslt(), _cublas()
    compute, scalar_type, scale = _compute_type(dtype_name)
    data = CUDA_DATA_TYPE[dtype_name]
    D, L, P = lt.MatmulDescAttribute, lt.MatrixLayoutAttribute, lt.MatmulPreferenceAttribute
    desc = lt.matmul_desc_create(compute, scale)
    _BIAS_POINTER[0] = int(D.BIAS_POINTER)
    if bias:  # column-major D is (n, m): the epilogue's per-row vector is our per-column bias
        _set(lt.matmul_desc_set_attribute, desc, D.EPILOGUE, int(lt.Epilogue.BIAS), np.uint32)
    # column-major: C^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m); the library's A is our b
    _set(lt.matmul_desc_set_attribute, desc, D.TRANSA, int(cublas.Operation.T if trans_b else cublas.Operation.N),
         np.int32)
    _set(lt.matmul_desc_set_attribute, desc, D.TRANSB, int(cublas.Operation.T if trans_a else cublas.Operation.N),
         np.int32)
    shapes = (((k, n) if trans_b else (n, k)), ldb, stride_b), (((m, k) if trans_a else (k, m)), lda, stride_a), \
        ((n, m), ldc, stride_c)
    layouts = []
    for (rows, cols), ld, stride in shapes:
        layout = lt.matrix_layout_create(data, rows, cols, ld)
        layouts.append(layout)
        if batch > 1:
            _set(lt.matrix_layout_set_attribute, layout, L.BATCH_COUNT, batch, np.int32)
            _set(lt.matrix_layout_set_attribute, layout, L.STRIDED_BATCH_OFFSET, stride, np.int64)
    pref = lt.matmul_preference_create()
    try:
        _set(lt.matmul_preference_set_attribute, pref, P.MAX_WORKSPACE_BYTES, WORKSPACE_BYTES, np.uint64)
        # split-k partials reduced in the compute type (or no split), never in the output type
        _set(lt.matmul_preference_set_attribute, pref, P.REDUCTION_SCHEME_MASK, int(lt.ReductionScheme.COMPUTE_TYPE),
             np.uint32)
        for attr, align in zip((P.MIN_ALIGNMENT_B_BYTES, P.MIN_ALIGNMENT_A_BYTES, P.MIN_ALIGNMENT_C_BYTES,
                                P.MIN_ALIGNMENT_D_BYTES), aligns + (aligns[2],)):
            _set(lt.matmul_preference_set_attribute, pref, attr, align, np.uint32)
        result = lt.MatmulHeuristicResult()
        found = np.zeros(1, np.int32)
        a_l, b_l, c_l = layouts
        lt.matmul_algo_get_heuristic(lt_handle, desc, a_l, b_l, c_l, c_l, pref, 1, result.ptr, found.ctypes.data)
    except Exception:  # noqa: BLE001  (cuBLASLt refuses the problem: cublasGemmEx takes it)
        found = np.zeros(1, np.int32)
    finally:
        lt.matmul_preference_destroy(pref)
    if found[0] < 1 or int(result.state) != 0:
        for layout in layouts:
            lt.matrix_layout_destroy(layout)
        lt.matmul_desc_destroy(desc)
        return None
    return _LtPlan(desc, tuple(layouts), result, scalar_type)


def gemm(a, b, c, m, n, k, dtype_name, device_index, *, lda, ldb, ldc, trans_a=False, trans_b=False,
         batch=1, stride_a=0, stride_b=0, stride_c=0, alpha=1.0, beta=0.0, stream=None):
    """Row-major C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C, on raw device pointers,
    batched with element strides. lda/ldb/ldc are the row-major leading dimensions (row strides)."""
    problem = (dtype_name, m, n, k, trans_a, trans_b, lda, ldb, ldc, batch, stride_a, stride_b, stride_c)
    run(problem, a, b, c, device_index, alpha, beta, stream)


def run(problem, a, b, c, device_index, alpha=1.0, beta=0.0, stream=None, bias=0):
    """gemm with its geometry as one tuple `problem` (dtype_name, m, n, k, trans_a, trans_b, lda,
    ldb, ldc, batch, stride_a, stride_b, stride_c), which callers may keep: the hot path.
    bias: a device pointer to n values added to every row of C by cuBLASLt's epilogue (unbatched
    half/float32 problems); returns False, having done nothing, where cuBLASLt cannot."""
    try:  # (_handle, inlined: this is every matrix product's path)
        h = _local.handles[device_index]
    except (AttributeError, KeyError):
        h = _handle(device_index)
    dtype_name = problem[0]
    if dtype_name in _LT_DTYPES and use_lt[0]:
        # the addresses' low bits: cuBLASLt's kernels depend on the operands' alignment
        key = (problem, a & 255, b & 255, c & 255, device_index, allow_tf32[0], bias & 255 if bias else -1)
        plans = _lt_plans if not bias else h.bias_plans  # (a bias plan's descriptor holds its pointer: the thread's)
        plan = plans.get(key, False)
        if plan is False:
            if len(plans) > 4096:
                plans.clear()
            plan = plans[key] = _lt_plan(h.lt_handle(), *problem, tuple(_alignment(v) for v in key[1:4]),
                                         bias=bool(bias))
        if plan is not None:
            if bias and bias != plan.bias_now:
                plan.set_bias(bias)
            if stream is None:  # streams.current_stream_handle, inlined
                current = _streams_local.handles
                s = current.get(device_index, 0) if current else 0
            else:
                s = stream.cuda_stream
            ws = h.workspaces.get(s)
            ws = ws.ptr if ws is not None else h.workspace(stream or streams.current_stream(device_index))
            if alpha == 1.0 and beta == 0.0:
                al, be = plan.one, plan.zero
            else:  # (keep_a, keep_b: the arrays live until the call returns)
                al, keep_a = _scalar(alpha, plan.scalar_type)
                be, keep_b = _scalar(beta, plan.scalar_type)
            a_l, b_l, c_l = plan.layouts
            _modules["lt"].matmul(h.lt or h.lt_handle(), plan.desc, al, b, a_l, a, b_l, be, c, c_l, c, c_l, plan.algo,
                                  ws, WORKSPACE_BYTES, s)
            return True
    if bias:
        return False
    _, m, n, k, trans_a, trans_b, lda, ldb, ldc, batch, stride_a, stride_b, stride_c = problem
    cublas = _cublas()
    handle_ = h.cublas_on(stream or streams.current_stream(device_index))
    compute, scalar_type, _ = _compute_type(dtype_name)
    al, keep_a = _scalar(alpha, scalar_type)
    be, keep_b = _scalar(beta, scalar_type)
    dt = CUDA_DATA_TYPE[dtype_name]
    op = cublas.Operation
    # column-major view: C^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m)
    tb, ta = (op.T if trans_b else op.N), (op.T if trans_a else op.N)
    algo = cublas.GemmAlgo.DEFAULT
    if batch == 1:
        cublas.gemm_ex(handle_, tb, ta, n, m, k, al, b, dt, ldb, a, dt, lda, be, c, dt, ldc, compute, algo)
    else:
        cublas.gemm_strided_batched_ex(handle_, tb, ta, n, m, k, al, b, dt, ldb, stride_b, a, dt, lda, stride_a,
                                       be, c, dt, ldc, stride_c, batch, compute, algo)
    return True

