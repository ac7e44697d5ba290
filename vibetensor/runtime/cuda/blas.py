"""cuBLAS through nvmath-python's bindings: handles per device and thread, workspaces from our
caching allocator (so matrix products can be captured into CUDA graphs: no cudaMalloc inside).

`gemm` takes row-major operands, as tensors are laid out, and maps them onto cuBLAS's
column-major view: row-major C = A @ B is column-major C^T = B^T @ A^T, so the operands swap and
nothing is transposed in memory.
"""
import threading

import numpy as np

from vibetensor.runtime import cuda as _cuda
from vibetensor.runtime.cuda import stream as streams

WORKSPACE_BYTES = 32 << 20  # what cuBLAS recommends for Hopper

# cudaDataType and cuBLAS compute types by dtype name
CUDA_DATA_TYPE = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 14}
_ONE = {np.float32: np.ones(1, np.float32), np.float64: np.ones(1, np.float64)}
_local = threading.local()  # per-thread handles: cuBLAS handles must not be shared across threads
allow_tf32 = [False]  # torch.backends.cuda.matmul.allow_tf32


def _cublas():
    import nvmath.bindings.cublas as cublas  # imported on first matrix product
    return cublas


class _Handle:
    """One cuBLAS handle, its current stream, and a workspace per stream it has run on."""

    def __init__(self, device_index):
        self.cublas = _cublas()
        self.handle = self.cublas.create()
        self.device_index, self.stream, self.workspaces = device_index, None, {}

    def bind(self, stream):
        if stream is not self.stream:
            key = stream.cuda_stream
            self.cublas.set_stream(self.handle, key)
            ws = self.workspaces.get(key)
            if ws is None:
                ws = self.workspaces[key] = _cuda.alloc(WORKSPACE_BYTES, self.device_index, stream)
            self.cublas.set_workspace(self.handle, ws.ptr, WORKSPACE_BYTES)
            self.stream = stream
        return self.handle


def handle(device_index, stream):
    handles = getattr(_local, "handles", None)
    if handles is None:
        handles = _local.handles = {}
    h = handles.get(device_index)
    if h is None:
        h = handles[device_index] = _Handle(device_index)
    return h.bind(stream)


def _compute_type(dtype_name):
    C = _cublas().ComputeType
    if dtype_name == "float64":
        return C.COMPUTE_64F, np.float64
    if dtype_name == "float32":
        return (C.COMPUTE_32F_FAST_TF32 if allow_tf32[0] else C.COMPUTE_32F), np.float32
    return C.COMPUTE_32F, np.float32  # half types accumulate in float32


def _scalar(value, np_type):
    if value == 1:
        return _ONE[np_type]
    return np.array([value], np_type)  # kept alive by the caller's frame until the call returns


def gemm(a, b, c, m, n, k, dtype_name, device_index, *, lda, ldb, ldc, trans_a=False, trans_b=False,
         batch=1, stride_a=0, stride_b=0, stride_c=0, alpha=1.0, beta=0.0, stream=None):
    """Row-major C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C, on raw device pointers,
    batched with element strides. lda/ldb/ldc are the row-major leading dimensions (row strides)."""
    cublas = _cublas()
    stream = stream or streams.current_stream(device_index)
    h = handle(device_index, stream)
    compute, scalar_type = _compute_type(dtype_name)
    al, be = _scalar(alpha, scalar_type), _scalar(beta, scalar_type)
    dt = CUDA_DATA_TYPE[dtype_name]
    op = cublas.Operation
    # column-major view: C^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m)
    tb, ta = (op.T if trans_b else op.N), (op.T if trans_a else op.N)
    algo = cublas.GemmAlgo.DEFAULT
    if batch == 1:
        cublas.gemm_ex(h, tb, ta, n, m, k, al.ctypes.data, b, dt, ldb, a, dt, lda, be.ctypes.data,
                       c, dt, ldc, compute, algo)
    else:
        cublas.gemm_strided_batched_ex(h, tb, ta, n, m, k, al.ctypes.data, b, dt, ldb, stride_b, a, dt, lda,
                                       stride_a, be.ctypes.data, c, dt, ldc, stride_c, batch, compute, algo)
