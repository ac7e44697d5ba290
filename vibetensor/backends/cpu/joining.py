"""CPU kernels of the joining ops, on NumPy: each input is cast into its slice of the result."""
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import joining as j
from vibetensor.ops.meta import bump_version
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def cat(tensors, dim=0, out=None):
    spec = j.cat_meta(tensors, dim, out)
    res = j.allocate(spec, out)
    dst, at = array(res), 0
    for t in spec.parts:
        n = t.shape[spec.dim]
        np.copyto(dst[(slice(None),) * spec.dim + (slice(at, at + n),)], array(t), casting="unsafe")
        at += n
    if out is not None:
        bump_version(res)
    return res


j.cat.register(CPU, cat)
