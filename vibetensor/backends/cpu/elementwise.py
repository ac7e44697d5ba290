"""CPU kernels of the elementwise ops, on NumPy.

Operands are converted to the op's compute dtype (half types compute in float32, as torch's CPU
kernels do), the ufunc writes straight into the output's bytes, and NumPy casts on the way out.
"""
import numpy as np

from vibetensor.backends.cpu import np_compute, operand
from vibetensor.dispatch import DispatchKey, get
from vibetensor.ops import elementwise as ew
from vibetensor.ops.meta import bump_version, output
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU


def _unary(name, fn):
    """Register fn(x, out_array) as op `name`'s CPU kernel: kernel(a, out=None)."""
    op = get(name)
    meta = op.meta

    def kernel(a, out=None):
        spec = meta(a)
        res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
        fn(operand(a, np_compute(spec.common)), array(res))
        if out is not None:
            bump_version(res)
        return res
    op.register(CPU, kernel)


def _binary(name, fn):
    """Register fn(x, y, out_array) as op `name`'s CPU kernel: kernel(a, b, out=None)."""
    op = get(name)
    meta = op.meta

    def kernel(a, b, out=None):
        spec = meta(a, b)
        res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
        ct = np_compute(spec.common)
        fn(operand(a, ct), operand(b, ct), array(res))
        if out is not None:
            bump_version(res)
        return res
    op.register(CPU, kernel)


def _ufunc(f):
    return lambda *xs_out: f(*xs_out[:-1], out=xs_out[-1], casting="unsafe")


def _add_kernel(sign):
    """add/sub take alpha: a + alpha * b (alpha must be integral for integral results)."""
    def kernel(a, b, alpha=1, out=None, _name="add" if sign > 0 else "sub"):
        spec = get(_name).meta(a, b)
        if alpha != 1 and spec.common.category < 2 and not isinstance(alpha, (int, bool)):
            raise RuntimeError(f"For integral input tensors, argument alpha must not be a floating point number.")
        res = output(_name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
        ct = np_compute(spec.common)
        y = operand(b, ct)
        if alpha != 1:
            y = np.multiply(y, operand(alpha, ct), dtype=ct)
        (np.add if sign > 0 else np.subtract)(operand(a, ct), y, out=array(res), casting="unsafe")
        if out is not None:
            bump_version(res)
        return res
    return kernel


def _div(a, b, rounding_mode=None, out=None):
    if rounding_mode not in (None, "trunc", "floor"):
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    spec = ew.div.meta(a, b) if rounding_mode is None else ew.spec_of("div", ew.REAL, a, b)
    res = output("div", out, spec.shape, spec.dtype, spec.device, inplace=out is a)
    ct = np_compute(spec.common)
    x, y = operand(a, ct), operand(b, ct)
    if rounding_mode is None:
        np.true_divide(x, y, out=array(res), casting="unsafe")
    else:
        if spec.common.category < 2 and not np.all(y):
            raise RuntimeError("ZeroDivisionError")
        q = np.floor_divide(x, y) if rounding_mode == "floor" else _trunc_div(x, y, spec.common.category < 2)
        np.copyto(array(res), q, casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


def _trunc_div(x, y, integral):
    if integral:  # C division: round toward zero, exact for all int64
        q = np.floor_divide(x, y)
        return q + ((np.remainder(x, y) != 0) & ((x < 0) != (y < 0)))
    return np.trunc(np.true_divide(x, y))


get("add").register(CPU, _add_kernel(+1))
get("sub").register(CPU, _add_kernel(-1))
get("div").register(CPU, _div)
_binary("mul", _ufunc(np.multiply))
_binary("eq", _ufunc(np.equal))
_unary("neg", _ufunc(np.negative))
_unary("exp", _ufunc(np.exp))
