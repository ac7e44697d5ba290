"""CPU kernels for creation and copy. The range factories follow torch's CPU arithmetic (which
dtype each step is computed in) so values match torch's to the last bit in the common cases."""
import ml_dtypes
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation as c
from vibetensor.ops.meta import bump_version
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.device import CPU as CPU_DEVICE
from vibetensor.tensor.tensor import array, empty_cpu

CPU = DispatchKey.CPU


def full(shape, value, dtype, device=None):
    value = c.full_meta(shape, value, dtype)
    t = empty_cpu(tuple(shape), dtype)
    array(t).fill(value)
    return t


def copy_(dst, src):
    c.copy_meta(dst, src)
    if src._device.type != "cpu":  # device -> host copies belong to that device's backend
        return c.copy_.table[DispatchKey.CUDA](dst, src)
    d, s = array(dst), array(src)
    if d.dtype.kind != "c" and s.dtype.kind == "c":
        s = s.real  # torch drops the imaginary part (with a warning in torch; silently here)
    np.copyto(d, s, casting="unsafe")
    bump_version(dst)
    return dst


def _store(res, values, out):
    np.copyto(array(res), values, casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


def arange(start, end, step, dtype, device=None, out=None):
    shape = c.arange_meta(start, end, step, dtype)
    res = c.range_output("arange", out, shape, dtype, CPU_DEVICE)
    idx = np.arange(shape[0], dtype=np.int64)
    if dtype.category == 1:  # integral: int64 accumulation from truncated start/step
        values = np.int64(int(start)) + np.int64(int(step)) * idx
    elif dtype in (dt.float16, dt.bfloat16):  # accumulate type float
        values = np.float32(start) + np.float32(step) * idx.astype(np.float32)
    else:
        values = np.float64(start) + np.float64(step) * idx.astype(np.float64)
    return _store(res, values, out)


def _rounder(dtype):
    """Arithmetic as torch's scalar_t does it: every half-precision result is rounded to the dtype."""
    if dtype is dt.bfloat16:
        return np.float32, lambda x: np.asarray(x).astype(ml_dtypes.bfloat16).astype(np.float32)
    if dtype is dt.float16:
        return np.float32, lambda x: np.asarray(x).astype(np.float16).astype(np.float32)
    return dtype.np.type, lambda x: x


def _fused(base, step, k):
    """base + step * k rounded once, as a fused multiply-add (exact in a wider type)."""
    real = np.asarray(base).dtype.type
    wide = np.float64 if real is np.float32 else np.longdouble
    return (wide(base) + wide(step) * k.astype(wide)).astype(real)


def _fused_complex(base, step, k):
    return _fused(base.real, step.real, k) + 1j * _fused(base.imag, step.imag, k)


def _linspace_values(start, end, steps, dtype):
    """torch's two-sided linspace: the first half steps up from start, the second down from end."""
    idx = np.arange(steps, dtype=np.int64)
    back = steps - idx - 1
    first = idx < steps // 2
    if dtype.category < 2:  # integral: double step between the truncated endpoints, fused multiply-add
        s, e = float(int(start)), float(int(end))
        step = np.longdouble((e - s) / (steps - 1))
        return np.where(first, s + step * idx, e - step * back).astype(np.float64)
    if dtype.kind in "fc" and dtype.to_real() in (dt.float32, dt.float64):
        # torch's compiled loop fuses start + step * i into one rounding (per component)
        ct = dtype.np.type
        s, e = ct(start), ct(end)
        real = np.dtype(ct).type(0).real.dtype.type
        diff, n = e - s, real(steps - 1)
        step = ct(diff.real / n + 1j * (diff.imag / n)) if dtype.is_complex else ct(diff / n)  # per component
        fused = _fused_complex if dtype.is_complex else _fused
        return np.where(first, fused(s, step, idx), fused(e, -step, back))
    ct, rnd = _rounder(dtype)
    s, e = rnd(ct(start)), rnd(ct(end))
    step = rnd(rnd(e - s) / rnd(ct(steps - 1)))
    return np.where(first, rnd(s + rnd(step * rnd(idx.astype(ct)))), rnd(e - rnd(step * rnd(back.astype(ct)))))


def linspace(start, end, steps, dtype, device=None, out=None):
    shape = c.linspace_meta(start, end, steps, dtype)
    res = c.range_output("linspace", out, shape, dtype, CPU_DEVICE)
    if steps == 1:
        return _store(res, np.array(start), out)
    return _store(res, _linspace_values(start, end, steps, dtype) if steps else array(res), out)


def logspace(start, end, steps, base, dtype, device=None, out=None):
    """base ** linspace(start, end): exponents as torch forms them, powers in double precision."""
    shape = c.linspace_meta(start, end, steps, dtype)
    res = c.range_output("logspace", out, shape, dtype, CPU_DEVICE)
    if steps == 1:
        return _store(res, np.power(complex(base) if dtype.is_complex else float(base),
                                    complex(start) if dtype.is_complex else float(start)), out)
    if steps == 0:
        return res
    idx = np.arange(steps, dtype=np.int64)
    first, back = idx < steps // 2, steps - idx - 1
    if dtype.is_complex:
        ct = dtype.np.type
        s, e = ct(start), ct(end)
        step = (e - s) / ct(steps - 1)
        expo = np.where(first, s + step * idx.astype(ct), e - step * back.astype(ct))
        return _store(res, np.power(ct(base), expo), out)
    if dtype.category < 2:  # integral endpoints truncate, as start.to<int64_t>()
        s, e = float(int(start)), float(int(end))
        diff = float(int(end) - int(start))
    else:
        ct, rnd = _rounder(dtype)
        s, e = rnd(ct(start)), rnd(ct(end))
        diff = float(rnd(e - s))
        s, e = float(s), float(e)
    step = diff / (steps - 1)
    expo = np.where(first, s + step * idx, e - step * back)  # plain double arithmetic (no fused madd here)
    return _store(res, np.power(np.float64(base), expo), out)


def eye(n, m, dtype, device=None, out=None):
    shape = c.eye_meta(n, m, dtype)
    res = c.range_output("eye", out, shape, dtype, CPU_DEVICE)
    values = np.zeros(shape, dtype.np)
    k = np.arange(min(n, m))
    values[k, k] = 1
    return _store(res, values, out)


c.full.register(CPU, full)
c.copy_.register(CPU, copy_)
c.arange.register(CPU, arange)
c.linspace.register(CPU, linspace)
c.logspace.register(CPU, logspace)
c.eye.register(CPU, eye)
