"""The CPU backend: kernels on NumPy, registered with the dispatcher under DispatchKey.CPU.

Importing this package registers every CPU kernel (one module per op family).
"""
import warnings

import numpy as np

from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, array

# NumPy reports overflow / invalid / divide-by-zero as RuntimeWarnings attributed to the calling
# module. torch is silent there (inf/nan are results, not errors), so our kernels are too; a
# filter costs nothing per call, unlike np.errstate (~2 us).
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"vibetensor\.backends\.cpu")

# torch's CPU kernels compute half types in float32 ("opmath") and round once at the end.
_COMPUTE = {dt.float16: np.dtype(np.float32), dt.bfloat16: np.dtype(np.float32)}


def np_compute(d):
    """The NumPy dtype a kernel computes in for result/common dtype `d`."""
    return _COMPUTE.get(d, d.np)


def operand(x, ct):
    """A NumPy operand in compute dtype `ct`: a view of a tensor's bytes (cast if needed) or a
    0-d array for a Python number (integers wrap like torch's, e.g. int8 + 1000)."""
    if isinstance(x, Tensor):
        a = array(x)
        return a if a.dtype == ct else a.astype(ct)
    return np.array(x).astype(ct)


from vibetensor.backends.cpu import (  # noqa: E402,F401  (importing registers the kernels)
    conv, creation, decompositions, elementwise, foreach, indexing, joining, linalg, nn, random, reduction, scans, scatter, shape_ops,
    sorting)
