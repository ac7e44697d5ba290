"""Creation and copy operators: empty, full, arange, linspace, logspace, eye, copy_, and the
composites built on them.

`copy_(dst, src)` is the one primitive that moves data between devices and dtypes; clone,
contiguous and to() are composites over empty + copy_, so each device implements copying once.
Device kernels (backends/<device>/creation.py) take normalised arguments:

    full(shape, value, dtype, device=)                     (value already checked by full_meta)
    arange(start, end, step, dtype, device=, out=None)
    linspace(start, end, steps, dtype, device=, out=None)
    logspace(start, end, steps, base, dtype, device=, out=None)
    eye(n, m, dtype, device=, out=None)
"""
import math
import warnings

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import memory_format as mf
from vibetensor.tensor import shape as sh
from vibetensor.tensor.memory_format import is_non_overlapping_and_dense  # noqa: F401  (ops import it from here)
from vibetensor.tensor.tensor import Tensor, empty as _empty_tensor, make_tensor

# c10's type names, as torch prints them in "value cannot be converted" messages
C10_NAMES = {dt.bool_: "bool", dt.uint8: "uint8_t", dt.int8: "int8_t", dt.int16: "int16_t", dt.int32: "int",
             dt.int64: "int64_t", dt.float16: "c10::Half", dt.bfloat16: "c10::BFloat16", dt.float32: "float",
             dt.float64: "double", dt.complex64: "c10::complex<float>", dt.complex128: "c10::complex<double>",
             dt.uint16: "uint16_t", dt.uint32: "uint32_t", dt.uint64: "uint64_t"}
INT_RANGE = {dt.uint8: (0, 255), dt.int8: (-128, 127), dt.int16: (-2 ** 15, 2 ** 15 - 1),
             dt.int32: (-2 ** 31, 2 ** 31 - 1), dt.int64: (-2 ** 63, 2 ** 63 - 1),
             dt.uint16: (0, 2 ** 16 - 1), dt.uint32: (0, 2 ** 32 - 1), dt.uint64: (0, 2 ** 64 - 1)}
FLOAT_MAX = {dt.float16: 65504.0, dt.bfloat16: 3.3895313892515355e38, dt.float32: 3.4028234663852886e38,
             dt.float64: 1.7976931348623157e308, dt.complex64: 3.4028234663852886e38,
             dt.complex128: 1.7976931348623157e308}


# -- scalars ----------------------------------------------------------------------------------------------

def overflows(value, dtype):
    """c10's overflows<To>(value): would storing this Python number in `dtype` overflow? (Unsigned
    types accept negatives down to -max: they wrap, as torch allows; infinities fit every float.)"""
    if dtype is dt.bool_:
        return False
    if isinstance(value, complex):
        if not dtype.is_complex and value.imag != 0:
            return True
        value = value.real
    if dtype.kind in "fc":
        v = float(value)
        return math.isfinite(v) and abs(v) > FLOAT_MAX[dtype]
    lo, hi = INT_RANGE[dtype]
    if isinstance(value, float):
        return math.isnan(value) or value < lo or value > hi
    value = int(value)
    if lo == 0:
        return value > hi or -value > hi
    return not lo <= value <= hi


def scalar_to(value, dtype, names=C10_NAMES):
    """A Python number made ready to fill a `dtype` tensor, or torch's RuntimeError on overflow."""
    if isinstance(value, int) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 64:
        raise OverflowError("int too big to convert")
    if overflows(value, dtype):
        raise RuntimeError(f"value cannot be converted to type {names[dtype]} without overflow")
    if isinstance(value, complex) and not dtype.is_complex:
        value = value.real
    if dtype.category == 1 and isinstance(value, float):
        value = int(value)  # C casts truncate toward zero
    if dtype.category == 1 and value < 0 and INT_RANGE[dtype][0] == 0:
        value += INT_RANGE[dtype][1] + 1  # two's complement wrap (uint8: -1 -> 255)
    return value


def check_size(shape, op=None):
    for s in shape:
        if s < 0:
            if op == "zeros":
                raise RuntimeError("zeros: Dimension size must be non-negative.")
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: [{', '.join(map(str, shape))}]")


# -- geometry -----------------------------------------------------------------------------------------------

def preserve_strides(t, memory_format=None):
    """The strides torch gives a new tensor like t in memory_format (None = preserve: t's own when
    t is non-overlapping and dense, else those of the format t's strides suggest)."""
    return mf.strides_for(t._shape, t._stride, memory_format)


def empty_strided(shape, stride, dtype, device):
    """A tensor with the given geometry over fresh storage just big enough for it."""
    shape, stride = tuple(shape), tuple(stride)
    if sh.numel(shape) == 0:
        n = 0
    else:
        n = 1 + sum((s - 1) * st for s, st in zip(shape, stride))
    base = _empty_tensor((n,), dtype, device)
    return make_tensor(base._storage, shape, stride, 0, dtype)


def _empty_like(t, dtype=None, device=None, memory_format=None):
    dtype, device = dtype or t._dtype, device or t._device
    stride = preserve_strides(t, memory_format)
    if stride == sh.contiguous_strides(t._shape):
        return _empty_tensor(t._shape, dtype, device)
    return empty_strided(t._shape, stride, dtype, device)


# -- copies -----------------------------------------------------------------------------------------------------

def copy_meta(dst, src):
    """copy_ broadcasts src to dst's shape and casts to dst's dtype (complex -> real drops imag)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' (position 1) must be Tensor, not {type(src).__name__}")
    shape = sh.broadcast_shapes(dst._shape, src._shape)  # torch's "size of tensor a ..." error
    if shape != tuple(dst._shape):
        raise RuntimeError(f"output with shape [{', '.join(map(str, dst._shape))}] doesn't match the broadcast "
                           f"shape [{', '.join(map(str, shape))}]")


def _empty(shape, dtype=None, device=None):
    return _empty_tensor(shape, dtype or dt.get_default_dtype(), device)


def _clone(self, memory_format=None):
    return copy_(_empty_like(self, memory_format=memory_format), self)


def _contiguous_format(memory_format):
    return mf.contiguous_format if memory_format is None or memory_format is mf.preserve_format else memory_format


def _is_contiguous_as(self, memory_format=None):
    return mf.is_contiguous(self._shape, self._stride, _contiguous_format(memory_format))


def _contiguous(self, memory_format=None):
    """self when already contiguous in memory_format (contiguous_format when None), else a copy that is."""
    if _is_contiguous_as(self, memory_format):
        return self
    return copy_(_empty_like(self, memory_format=_contiguous_format(memory_format)), self)


def _to_unchanged(self, dtype, device, copy=False, memory_format=None):
    return dtype is self._dtype and device == self._device and not copy and \
        mf.keeps_layout(self._shape, self._stride, memory_format)


def _to(self, dtype, device, copy=False, memory_format=None):
    """Tensor.to with canonical dtype and device: returns self when nothing changes and not copy;
    a copy keeps self's strides when they are dense (memory_format=None is preserve)."""
    if _to_unchanged(self, dtype, device, copy, memory_format):
        return self
    return copy_(_empty_like(self, dtype, device, memory_format), self)


# -- ranges --------------------------------------------------------------------------------------------------

def _not_implemented(kernel, dtype):
    return NotImplementedError(f'"{kernel}" not implemented for \'{m.TYPE_NAMES[dtype]}\'')


def arange_meta(start, end, step, dtype):
    """torch's arange length: ceil((end - start) / step) in double (int64 uses exact integers)."""
    if dtype is dt.bool_ or dtype.is_complex or dtype in dt.BAREBONES:
        raise _not_implemented("arange_cpu", dtype)
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise RuntimeError(f"unsupported range: {_num(start)} -> {_num(end)}")
    if not ((step > 0 and end >= start) or (step < 0 and end <= start)):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is dt.int64:
        xs, xe, xst = int(start), int(end), int(step)
        sgn = (xst > 0) - (xst < 0)
        size = _trunc_div(xe - xs + xst - sgn, xst)  # C integer division, as torch
    else:
        size = math.ceil((float(end) - float(start)) / float(step))
    if not 0 <= size <= 2 ** 63 - 1:
        raise RuntimeError("invalid size, possible overflow?")
    return (size,)


def _trunc_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _num(x):
    return "%g" % x if isinstance(x, float) else str(x)


def linspace_meta(start, end, steps, dtype):
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    if dtype is dt.bool_ or dtype in dt.BAREBONES:
        raise _not_implemented("linspace_cpu", dtype)
    return (steps,)


def eye_meta(n, m_, dtype):
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m_ < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m_}")
    if dtype in dt.BAREBONES:
        raise _not_implemented("eye", dtype)
    return (n, m_)


def range_output(op, out, shape, dtype, device):
    """out= for the range factories: torch warns (arange) or silently resizes (others)."""
    if op == "arange" and out is not None and out.numel() not in (0, sh.numel(shape)):
        warnings.warn(f"The number of elements in the out tensor of shape [{', '.join(map(str, out._shape))}] is "
                      f"{out.numel()} which does not match the computed number of elements {sh.numel(shape)}. Note "
                      "that this may occur as a result of rounding error. The out tensor will be resized to a tensor "
                      f"of shape ({shape[0]},).", UserWarning, stacklevel=4)
    if out is not None and tuple(out._shape) != tuple(shape):
        m.resize_(out, shape)
    return m.output(op, out, shape, dtype, device)


def full_meta(shape, value, dtype):
    check_size(shape)
    return scalar_to(value, dtype)


empty = declare("empty", composite=_empty, family="creation")
full = declare("full", meta=full_meta, family="creation")  # device kernels fill
arange = declare("arange", meta=arange_meta, family="creation")
linspace = declare("linspace", meta=linspace_meta, family="creation")
logspace = declare("logspace", meta=linspace_meta, family="creation")
eye = declare("eye", meta=eye_meta, family="creation")
copy_ = declare("copy_", meta=copy_meta, family="creation")  # copy_(dst, src): device kernels
clone = declare("clone", composite=_clone, family="creation")
contiguous = declare("contiguous", composite=_contiguous, family="creation")
to = declare("to", composite=_to, family="creation")
empty_like = _empty_like


# -- derivatives (autograd) ---------------------------------------------------------------------------------------
# Copies pass the gradient back unchanged, cast to the source's dtype and moved to its device. The factories
# make tensors from numbers: nothing to differentiate.

from vibetensor.autograd import derivative as _derivative, nondifferentiable as _nondifferentiable  # noqa: E402
from vibetensor.dispatch import DispatchKey as _DispatchKey  # noqa: E402


def _back_to(grad, meta):
    """The gradient in the input's dtype and on its device (a complex gradient of a real input keeps
    its real part)."""
    if grad._dtype is meta._dtype and grad._device == meta._device:
        return grad
    return to(grad, meta._dtype, meta._device)


@_derivative(copy_, inplace=True, name="torch::autograd::CopyBackwards")
def _copy_backward(ctx, grad, self, src):
    # self's old value is overwritten: it gets no gradient (zeros, as torch)
    return full(tuple(grad._shape), 0, grad._dtype, device=grad._device), _back_to(grad, src)


@_derivative(clone)
def _clone_backward(ctx, grad, self, memory_format=None):
    return grad


@_derivative(contiguous, name="CloneBackward0")
def _contiguous_backward(ctx, grad, self, memory_format=None):
    return grad


@_derivative(to, name="ToCopyBackward0")
def _to_backward(ctx, grad, self, dtype, device, copy=False, memory_format=None):
    return _back_to(grad, self)


def _returns_self_when(op, unchanged):
    """torch returns the input itself from contiguous()/to() when nothing changes: no node then."""
    recorded = op.table[_DispatchKey.Autograd]

    def kernel(self, *args, **kwargs):
        if unchanged(self, *args, **kwargs):
            return self
        return recorded(self, *args, **kwargs)
    kernel.__name__ = recorded.__name__
    op.register(_DispatchKey.Autograd, kernel)


_returns_self_when(contiguous, _is_contiguous_as)
_returns_self_when(to, _to_unchanged)

for _op in (empty, full, arange, linspace, logspace, eye):
    _nondifferentiable(_op)
