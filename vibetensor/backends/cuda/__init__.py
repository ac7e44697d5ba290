"""The CUDA backend: Triton kernels (and cuBLAS for matrix products), registered under
DispatchKey.CUDA. Imported on first CUDA use (`vibetensor.torch.cuda` or a tensor moved to a GPU),
so the CPU path never imports Triton or the CUDA bindings.
"""
from vibetensor.backends.cuda import creation, elementwise, linalg, reduction  # noqa: F401  (registers kernels)
from vibetensor.backends.cuda import activation, indexing, joining, nn  # noqa: F401
from vibetensor.backends.cuda import autograd_streams, conv, foreach, random  # noqa: F401
