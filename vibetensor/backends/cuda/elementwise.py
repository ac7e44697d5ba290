"""CUDA kernels of the elementwise ops: one Triton kernel, specialised per op and dtype.

`_ew_kernel` loads up to two operands (tensors of any strides after collapsing to <= 4 dims,
broadcasting by zero strides, or Python numbers passed as 64-bit patterns so float64 scalars
stay exact), converts them to the compute dtype (float32 for half types, as torch's CUDA kernels
do), applies the op chosen by the `OP` constexpr (Triton prunes the other branches), and stores
in the result's dtype. A contiguous fast path skips the index arithmetic.

The op table maps each vt:: op name to (code, arity); ops not in it have no CUDA kernel yet and
raise NotImplementedError from the dispatcher.
"""
import numpy as np
import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.dispatch import DispatchKey, get, ops
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.iterator import broadcast_strides, collapse
from vibetensor.tensor.tensor import Tensor

CUDA = DispatchKey.CUDA
BLOCK = 1024
MAX_DIMS = 4

UNARY = ["neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos",
         "tan", "tanh", "sigmoid", "erf", "erfc", "floor", "ceil", "trunc", "reciprocal", "relu", "asin", "acos",
         "atan", "sinh", "cosh", "square", "isnan", "isinf", "isfinite", "logical_not", "bitwise_not", "sign"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "pow", "atan2",
          "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "fmod"]
CODE = {name: i for i, name in enumerate(UNARY + BINARY)}  # the kernel's OP numbers follow this order
_FLOAT_ONLY = ("pow", "fmod")  # libdevice has them for floats; integer forms are not written yet


@triton.jit
def _offset(i, n1, n2, n3, s0, s1, s2, s3):
    """Memory offset of flat index i in a 4-d index space with the given element strides."""
    i3 = i % n3
    r = i // n3
    i2 = r % n2
    r = r // n2
    i1 = r % n1
    i0 = r // n1
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3


@triton.jit
def _scalar(bits, COMPUTE: tl.constexpr, FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    v = tl.full((BLOCK,), bits, tl.int64)
    if FLOAT:
        v = v.to(tl.float64, bitcast=True)
    return v.to(COMPUTE)


@triton.jit
def _unary_math(x, OP: tl.constexpr):
    if OP == 0:
        r = -x
    elif OP == 1:
        r = tl.abs(x)
    elif OP == 2:
        r = tl.exp(x)
    elif OP == 3:
        r = tl.exp2(x)
    elif OP == 4:
        r = libdevice.expm1(x)
    elif OP == 5:
        r = tl.log(x)
    elif OP == 6:
        r = tl.log2(x)
    elif OP == 7:
        r = libdevice.log10(x)
    elif OP == 8:
        r = libdevice.log1p(x)
    elif OP == 9:
        r = tl.sqrt(x)
    elif OP == 10:
        r = tl.rsqrt(x)
    elif OP == 11:
        r = tl.sin(x)
    elif OP == 12:
        r = tl.cos(x)
    elif OP == 13:
        r = libdevice.tan(x)
    elif OP == 14:
        r = libdevice.tanh(x)
    elif OP == 15:
        r = tl.sigmoid(x)
    elif OP == 16:
        r = tl.erf(x)
    elif OP == 17:
        r = libdevice.erfc(x)
    elif OP == 18:
        r = tl.floor(x)
    elif OP == 19:
        r = tl.ceil(x)
    elif OP == 20:
        r = libdevice.trunc(x)
    elif OP == 21:
        r = 1 / x
    elif OP == 22:  # relu keeps NaN, as torch's
        r = tl.where(x < 0, 0, x)
    elif OP == 23:
        r = libdevice.asin(x)
    elif OP == 24:
        r = libdevice.acos(x)
    elif OP == 25:
        r = libdevice.atan(x)
    elif OP == 26:
        r = libdevice.sinh(x)
    elif OP == 27:
        r = libdevice.cosh(x)
    elif OP == 28:
        r = x * x
    elif OP == 29:
        r = x != x
    elif OP == 30:
        r = (x == float("inf")) | (x == float("-inf"))
    elif OP == 31:
        r = (x == x) & (x != float("inf")) & (x != float("-inf"))
    elif OP == 32:
        r = x == 0
    elif OP == 33:
        r = ~x
    else:  # sign
        r = tl.where(x > 0, 1, tl.where(x < 0, -1, 0)).to(x.dtype)
    return r


@triton.jit
def _binary_math(x, y, alpha, OP: tl.constexpr):
    if OP == 35:
        r = x + y * alpha
    elif OP == 36:
        r = x - y * alpha
    elif OP == 37:
        r = x * y
    elif OP == 38:
        r = x / y
    elif OP == 39:  # NaN propagates, as torch.maximum
        r = tl.where((x > y) | (x != x), x, y)
    elif OP == 40:
        r = tl.where((x < y) | (x != x), x, y)
    elif OP == 41:
        r = x == y
    elif OP == 42:
        r = x != y
    elif OP == 43:
        r = x < y
    elif OP == 44:
        r = x <= y
    elif OP == 45:
        r = x > y
    elif OP == 46:
        r = x >= y
    elif OP == 47:
        r = libdevice.pow(x, y)
    elif OP == 48:
        r = libdevice.atan2(x, y)
    elif OP == 49:
        r = (x != 0) & (y != 0)
    elif OP == 50:
        r = (x != 0) | (y != 0)
    elif OP == 51:
        r = (x != 0) ^ (y != 0)
    elif OP == 52:
        r = x & y
    elif OP == 53:
        r = x | y
    elif OP == 54:
        r = x ^ y
    else:  # fmod
        r = libdevice.fmod(x, y)
    return r


@triton.jit
def _ew_contig(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               SCALAR_FLOAT: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    """The contiguous case: seven arguments instead of twenty-two (host time is per argument)."""
    _ew_kernel(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,
               0, 0, 0, 0, OP, ARITY, X_SCALAR, Y_SCALAR, SCALAR_FLOAT, True, COMPUTE, BLOCK)


@triton.jit
def _ew_kernel(x_ptr, y_ptr, out_ptr, xbits, ybits, alpha_bits, n, n1, n2, n3,
               xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, os0, os1, os2, os3,
               OP: tl.constexpr, ARITY: tl.constexpr, X_SCALAR: tl.constexpr, Y_SCALAR: tl.constexpr,
               SCALAR_FLOAT: tl.constexpr, CONTIG: tl.constexpr, COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    if CONTIG:
        xo = i
        yo = i
        oo = i
    else:
        xo = _offset(i, n1, n2, n3, xs0, xs1, xs2, xs3)
        yo = _offset(i, n1, n2, n3, ys0, ys1, ys2, ys3)
        oo = _offset(i, n1, n2, n3, os0, os1, os2, os3)
    if X_SCALAR:
        x = _scalar(xbits, COMPUTE, SCALAR_FLOAT, BLOCK)
    else:
        x = tl.load(x_ptr + xo, mask=mask).to(COMPUTE)
    if ARITY == 1:
        r = _unary_math(x, OP)
    else:
        if Y_SCALAR:
            y = _scalar(ybits, COMPUTE, SCALAR_FLOAT, BLOCK)
        else:
            y = tl.load(y_ptr + yo, mask=mask).to(COMPUTE)
        alpha = _scalar(alpha_bits, COMPUTE, SCALAR_FLOAT, BLOCK)
        r = _binary_math(x, y, alpha, OP)
    tl.store(out_ptr + oo, r.to(out_ptr.dtype.element_ty), mask=mask)


# the compute dtype in Triton for each common dtype (half types compute in float32)
_COMPUTE = {dt.float16: tl.float32, dt.bfloat16: tl.float32, dt.float32: tl.float32, dt.float64: tl.float64,
            dt.int8: tl.int8, dt.int16: tl.int16, dt.int32: tl.int32, dt.int64: tl.int64, dt.uint8: tl.uint8,
            dt.bool_: tl.int8}
_kernels = {}


def _kernel(code, arity, x_scalar, y_scalar, scalar_float, contig, compute):
    key = (code, x_scalar, y_scalar, scalar_float, contig, compute)
    k = _kernels.get(key)
    if k is None:
        settings = dict(OP=code, ARITY=arity, X_SCALAR=x_scalar, Y_SCALAR=y_scalar, SCALAR_FLOAT=scalar_float,
                        COMPUTE=compute, BLOCK=BLOCK)
        k = _kernels[key] = launcher.Kernel(_ew_contig, **settings) if contig else \
            launcher.Kernel(_ew_kernel, CONTIG=False, **settings)
    return k


def _bits(value, is_float):
    """A Python number as the kernel's int64 scalar argument (a float64 bit pattern for floats)."""
    if is_float:
        return int(np.float64(value).view(np.int64))
    return int(value)


def launch(name, spec, a, b, res, alpha=1):
    """Compute op `name` of operands a (and b) into `res` (allocated by the caller)."""
    n = res.numel()
    if n == 0:
        return res
    compute = _COMPUTE.get(spec.common)
    if compute is None:
        raise NotImplementedError(f"{name}: {spec.common} is not supported by the CUDA kernels yet")
    if name in _FLOAT_ONLY and not spec.common.is_floating_point:
        raise NotImplementedError(f"{name}: integer inputs on CUDA are not supported yet")
    if name == "bitwise_not" and spec.common is dt.bool_:
        name = "logical_not"  # bools are stored as bytes: ~1 would be -2, i.e. still True
    code, arity = CODE[name], (1 if b is None else 2)
    if isinstance(a, Tensor) and a._device.type == "cpu":  # a CPU 0-d tensor joins as a number
        a = a.item()
    if isinstance(b, Tensor) and b._device.type == "cpu":
        b = b.item()
    x_scalar, y_scalar = not isinstance(a, Tensor), arity == 2 and not isinstance(b, Tensor)
    scalar_float = spec.common.is_floating_point
    tensors = [t for t in (a, b) if isinstance(t, Tensor)]
    if not tensors and b is not None:
        raise NotImplementedError(f"{name}: both operands are numbers")
    contig = res.is_contiguous() and all(t._shape == res._shape and t.is_contiguous() for t in tensors)
    if not contig:
        shape, strides = collapse(res._shape, *(broadcast_strides(t._shape, t._stride, res._shape) if isinstance(t, Tensor) else
                                                (0,) * res.ndim for t in (a, b if b is not None else a, res)))
        if len(shape) > MAX_DIMS:
            raise NotImplementedError(f"{name}: more than {MAX_DIMS} non-mergeable dims on CUDA")
        pad = MAX_DIMS - len(shape)
        shape = (1,) * pad + shape
        strides = [(0,) * pad + s for s in strides]
        sizes = shape[1:]
    kernel = _kernel(code, arity, x_scalar, y_scalar, scalar_float, contig, compute)
    x = a if not x_scalar else res
    y = b if arity == 2 and not y_scalar else res
    scalars = (_bits(a, scalar_float) if x_scalar else 0, _bits(b, scalar_float) if y_scalar else 0,
               _bits(alpha, scalar_float))
    grid = ((n + BLOCK - 1) // BLOCK,)
    if contig:
        kernel(grid, x, y, res, *scalars, n)
    else:
        kernel(grid, x, y, res, *scalars, n, *sizes, *strides[0], *strides[1], *strides[2])
    return res


def _register(name, arity):
    op = get(name)
    meta = op.meta

    if arity == 1:
        def kernel(a, out=None):
            spec = meta(a)
            res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
            launch(name, spec, a, None, res)
            if out is not None:
                bump_version(res)
            return res
    elif name in ("add", "sub"):
        def kernel(a, b, alpha=1, out=None):
            spec = meta(a, b)
            res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
            launch(name, spec, a, b, res, alpha)
            if out is not None:
                bump_version(res)
            return res
    else:
        def kernel(a, b, out=None):
            spec = meta(a, b)
            res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is a)
            launch(name, spec, a, b, res)
            if out is not None:
                bump_version(res)
            return res
    op.register(CUDA, kernel)


# square (code 28) has no op of its own: the front door composes it; its code stays for numbering
REGISTERED = [n for n in UNARY + BINARY if "vt::" + n in ops()]
for _name in REGISTERED:
    if _name != "div":
        _register(_name, 1 if _name in UNARY else 2)


def _div(a, b, rounding_mode=None, out=None):
    if rounding_mode is not None:
        raise NotImplementedError("div: rounding_mode on CUDA is not supported yet")
    spec = get("div").meta(a, b)
    res = output("div", out, spec.shape, spec.dtype, spec.device, inplace=out is a)
    launch("div", spec, a, b, res)
    if out is not None:
        bump_version(res)
    return res


get("div").register(CUDA, _div)
