"""The matmul family and matrix norms: declarations, torch's checks, and the composites.

Primitives with device kernels: mm, bmm, addmm, addmv, mv, dot, vdot, matrix_norm. Meta functions
check in torch's order and with its messages, then return Spec(shape, dtype, device); out= must
have the result dtype exactly, as torch's matmul kernels require.
Composites (the same on every device, built from the ops above and views): matmul, outer, linear.
matmul follows torch's _matmul_impl step by step (fold into mm/mv, else broadcast into bmm), so
its results and its error messages are the ones torch gives.
"""
import collections
import math

from vibetensor.dispatch import declare, local
from vibetensor.ops import creation, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import meta as m
from vibetensor.ops import reduction as r
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

Spec = collections.namedtuple("Spec", "shape dtype device")
_NAMES, _CPP = m.TYPE_NAMES, r.CPP_NAMES


def _tensors(op, names, *xs):
    for i, (name, x) in enumerate(zip(names, xs)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}(): argument '{name}' (position {i + 1}) must be Tensor, not {type(x).__name__}")


def _no_bool(kernel, dtype, numel=1, k=1):
    """torch has no bool products, but an empty result or an empty sum (k == 0) never reaches the
    kernel: those succeed (all False)."""
    if dtype.kind == "b" and numel and k:
        raise NotImplementedError(f'"{kernel}" not implemented for \'Bool\'')


def _spec(op, shape, dtype, tensors, out):
    r.check_out_dtype(out, dtype)
    return Spec(tuple(shape), dtype, m.common_device(op, tensors))


def _shapes_mismatch(a, b):
    return RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({a._shape[0]}x{a._shape[1]} and "
                        f"{b._shape[0]}x{b._shape[1]})")


def scalar(value, dtype):
    """alpha/beta in the result dtype: truncated for integers; complex only for complex results."""
    if isinstance(value, complex) and not dtype.is_complex:
        if value.imag != 0:
            raise RuntimeError(f"value cannot be converted to type {_CPP[dtype]} without overflow")
        value = value.real
    if dtype.category < 2 and not isinstance(value, bool):
        return int(value)
    return value


def _check_inplace(input, out, shape):
    if out is input and tuple(input._shape) != tuple(shape):
        raise RuntimeError(f"Bad in-place call: input tensor size [{', '.join(map(str, input._shape))}] and output "
                           f"tensor size [{', '.join(map(str, shape))}] should match")


# -- primitives ----------------------------------------------------------------------------------------------

def _mm_meta(a, b, out=None):
    _tensors("mm", ("input", "mat2"), a, b)
    if a.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if a._shape[1] != b._shape[0]:
        raise _shapes_mismatch(a, b)
    if a._dtype is not b._dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {_CPP[a._dtype]} != {_CPP[b._dtype]}")
    _no_bool("addmm_impl_cpu_", a._dtype, a._shape[0] * b._shape[1], a._shape[1])
    return _spec("mm", (a._shape[0], b._shape[1]), a._dtype, (a, b), out)


def _bmm_meta(a, b, out=None):
    _tensors("bmm", ("input", "mat2"), a, b)
    if a.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if b._shape[:2] != (a._shape[0], a._shape[2]):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{a._shape[0]}, "
                           f"{a._shape[2]}] but got: [{b._shape[0]}, {b._shape[1]}].")
    if a._dtype is not b._dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[a._dtype]} but found {_NAMES[b._dtype]}")
    _no_bool("bmm", a._dtype, a._shape[0] * a._shape[1] * b._shape[2], a._shape[2])
    return _spec("bmm", (a._shape[0], a._shape[1], b._shape[2]), a._dtype, (a, b), out)


def _addmm_meta(input, m1, m2, beta=1, alpha=1, out=None):
    """beta * input + alpha * (m1 @ m2), input broadcast to the product's shape."""
    _tensors("addmm", ("input", "mat1", "mat2"), input, m1, m2)
    for name, t in (("mat1", m1), ("mat2", m2)):
        if t.ndim != 2:
            raise RuntimeError(f"{name} must be a matrix, got {t.ndim}-D tensor")
    if input._dtype is not m2._dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got {_NAMES[input._dtype]} and "
                           f"{_NAMES[m2._dtype]}")
    if m1._dtype is not m2._dtype:
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {_NAMES[m1._dtype]} and "
                           f"{_NAMES[m2._dtype]}")
    if m1._shape[1] != m2._shape[0]:
        raise _shapes_mismatch(m1, m2)
    shape = (m1._shape[0], m2._shape[1])
    views.expand(input, shape)  # torch's broadcast check, with expand's messages
    _check_inplace(input, out, shape)
    _no_bool("addmm_impl_cpu_", m1._dtype, sh.numel(shape), m1._shape[1])
    if m1._dtype.kind == "b" and sh.numel(shape) and not m1._shape[1]:  # torch scales input by an int beta
        raise RuntimeError("result type Long can't be cast to the desired output type Bool")
    scalar(beta, m1._dtype), scalar(alpha, m1._dtype)  # validates them
    return _spec("addmm", shape, m1._dtype, (input, m1, m2), out)


def _addmv_checks(in_ndim, in_numel, in_size, in_dtype, mat, vec):
    if not (mat.ndim == 2 and vec.ndim == 1 and in_ndim <= 1):
        raise RuntimeError(f"vector + matrix @ vector expected, got {in_ndim}, {mat.ndim}, {vec.ndim}")
    if not (mat._shape[1] == vec._shape[0] and (mat._shape[0] == in_numel or in_numel == 1)):
        raise RuntimeError(f"size mismatch, got input ({in_size}), mat ({mat._shape[0]}x{mat._shape[1]}), "
                           f"vec ({vec._shape[0]})")
    if not (in_dtype is mat._dtype is vec._dtype):
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {_NAMES[in_dtype]}, "
                           f"{_NAMES[mat._dtype]}, and {_NAMES[vec._dtype]}")
    _no_bool("addmv_impl_cpu", mat._dtype, mat._shape[0], mat._shape[1])


def _addmv_meta(input, mat, vec, beta=1, alpha=1, out=None):
    _tensors("addmv", ("input", "mat", "vec"), input, mat, vec)
    _addmv_checks(input.ndim, input.numel(), input._shape[0] if input.ndim else input.numel(), input._dtype,
                  mat, vec)
    shape = (mat._shape[0],)
    _check_inplace(input, out, shape)
    scalar(beta, mat._dtype), scalar(alpha, mat._dtype)  # validates them
    return _spec("addmv", shape, mat._dtype, (input, mat, vec), out)


def _mv_meta(mat, vec, out=None):
    """mv is addmv into a fresh result of vec's dtype: torch's messages name that result as input."""
    _tensors("mv", ("input", "vec"), mat, vec)
    if mat.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    rows = mat._shape[0]
    _addmv_checks(1, rows, rows, vec._dtype, mat, vec)
    return _spec("mv", (rows,), mat._dtype, (mat, vec), out)


def _dot_meta(a, b, out=None, op="dot"):
    _tensors(op, ("input", "tensor"), a, b)
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a.ndim}D and {b.ndim}D tensors")
    if a._dtype is not b._dtype:
        raise RuntimeError(f"dot : expected both vectors to have same dtype, but found {_NAMES[a._dtype]} and "
                           f"{_NAMES[b._dtype]}")
    if a._shape != b._shape:
        n, k = a.numel(), b.numel()
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{n}] and src [{k}] to have the same number "
                           f"of elements, but got {n} and {k} elements respectively")
    _no_bool("dot", a._dtype)
    return _spec(op, (), a._dtype, (a, b), out)


def _matrix_norm_meta(a, ord, dim=(-2, -1), keepdim=False, dtype=None, out=None):
    """linalg.matrix_norm for the string orders ('fro', 'nuc') that torch.norm routes here; returns a
    reduction Spec (dims: the two matrix dims)."""
    op = "linalg.matrix_norm"
    if ord not in ("fro", "nuc"):
        raise RuntimeError(f"{op}: Order {ord} not supported.")
    if a.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor A must have at least 2 dimensions.")
    r.check_float_input(op, a)
    if ord == "nuc" and a._dtype.itemsize == 2 and a._dtype.kind == "f":
        raise RuntimeError(f"{op}: Low precision dtypes not supported. Got {_NAMES[a._dtype]}")
    if len(dim) != 2:
        raise RuntimeError(f"{op}: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
    dims = tuple(sh.wrap_dim(d, a.ndim) for d in dim)
    if dims[0] == dims[1]:
        raise RuntimeError(f"{op}: dims must be different. Got ({dims[0]}, {dims[1]})")
    r.check_norm_dtype(op, a._dtype, dtype)
    compute = dtype or a._dtype
    r.check_out_dtype(out, compute.to_real())
    return r.Spec(r.reduced_shape(a._shape, dims, keepdim), compute.to_real(), a._device, dims, compute)


def _declare(name, meta=None, composite=None):
    return declare(name, meta=meta, composite=composite, family="linalg")


mm = _declare("mm", _mm_meta)                      # mm(a, b)
bmm = _declare("bmm", _bmm_meta)                   # bmm(a, b)
addmm = _declare("addmm", _addmm_meta)             # addmm(input, m1, m2, beta, alpha)
addmv = _declare("addmv", _addmv_meta)             # addmv(input, mat, vec, beta, alpha)
mv = _declare("mv", _mv_meta)                      # mv(mat, vec)
dot = _declare("dot", _dot_meta)                   # dot(a, b)
vdot = _declare("vdot", lambda a, b, out=None: _dot_meta(a, b, out, "vdot"))  # vdot(a, b) = sum(conj(a) * b)
matrix_norm = _declare("matrix_norm", _matrix_norm_meta)  # matrix_norm(a, ord, dim, keepdim, dtype)


# -- composites ----------------------------------------------------------------------------------------------

def _reshape(t, shape):
    """A view when strides allow one, else a contiguous copy viewed (torch's reshape)."""
    if sh.view_strides(t._shape, t._stride, shape) is None:
        t = creation.contiguous(t)
    return views.view(t, tuple(shape))


def _mT(t):
    return views.transpose(t, -2, -1)


def _t(t):
    if t.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {t.ndim}D")
    return views.transpose(t, 0, 1) if t.ndim == 2 else t


def _should_fold(a, b):
    """torch's rule: fold the larger (>=3-D) operand into a matrix and use mm/mv when that needs no
    copy (or the smaller operand requires grad, to keep its gradient small)."""
    larger = a.ndim >= b.ndim
    t1 = a if larger else _mT(b)
    if not (t1.ndim >= 3 and (b.ndim if larger else a.ndim) <= 2):
        return False
    if (b if larger else a)._requires_grad:
        return True
    if a.ndim == 2:
        return False
    if t1.numel() == 0:
        return True
    return all(t1._stride[i] == t1._stride[i + 1] * t1._shape[i + 1] for i in range(t1.ndim - 2))


def _matmul_folded(a, b):
    transpose = b.ndim > a.ndim
    t1 = _mT(b) if transpose else a
    t2 = (_t(a) if a.ndim == 2 else a) if transpose else b
    out_shape = t1._shape[:-1]  # (*batch, n)
    folded = _reshape(t1, (math.prod(out_shape), t1._shape[-1]))
    if t2.ndim == 1:
        return views.view(mv(folded, t2), out_shape)
    output = views.view(mm(folded, t2), out_shape + (t2._shape[1],))
    return creation.contiguous(_mT(output)) if transpose else output


def _matmul_batched(a, b):
    """Broadcast the batch dims, flatten them, one bmm."""
    n = a._shape[-2] if a.ndim > 1 else 1
    k1 = a._shape[-1]
    k2 = b._shape[-2] if b.ndim > 1 else b._shape[0]
    p = b._shape[-1] if b.ndim > 1 else 1
    batch_a, batch_b = a._shape[:max(a.ndim - 2, 0)], b._shape[:max(b.ndim - 2, 0)]
    if a.ndim == 3 and b.ndim == 3 and batch_a[0] != batch_b[0]:  # same gradient optimisation as should_fold
        if batch_a[0] == 1 and a._requires_grad:
            return matmul(views.squeeze(a, (0,)), b)
        if batch_b[0] == 1 and b._requires_grad:
            return matmul(a, views.squeeze(b, (0,)))
    batch = sh.broadcast_shapes(batch_a, batch_b)
    nb = math.prod(batch)
    a3 = _reshape(views.expand(a, batch + (n, k1)), (nb, n, k1))  # (B, n, k)
    if b.ndim == 1:
        b3 = views.unsqueeze(_reshape(views.expand(b, batch + (k2,)), (nb, k2)), 2)  # (B, k, 1)
    else:
        b3 = _reshape(views.expand(b, batch + (k2, p)), (nb, k2, p))  # (B, k, p)
    out_shape = batch + ((n,) if a.ndim > 1 else ()) + ((p,) if b.ndim > 1 else ())
    return views.view(bmm(a3, b3), out_shape)


def _matmul(a, b, out=None):
    _tensors("matmul", ("input", "other"), a, b)
    da, db = a.ndim, b.ndim
    if da == 0 or db == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {da}D and {db}D")
    if out is not None and local.grad_enabled and (a._requires_grad or b._requires_grad
                                                   or getattr(out, "_requires_grad", False)):
        raise RuntimeError("matmul(): functions with out=... arguments don't support automatic differentiation, "
                           "but one of the arguments requires grad.")
    if da == 1 and db == 1:
        result = dot(a, b)
    elif da == 2 and db == 1:
        result = mv(a, b)
    elif da == 1 and db == 2:
        result = views.squeeze(mm(views.unsqueeze(a, 0), b), (0,))
    elif da == 2 and db == 2:
        result = mm(a, b)
    elif _should_fold(a, b):
        result = _matmul_folded(a, b)
    else:
        result = _matmul_batched(a, b)
    if out is None:
        return result
    r.check_out_dtype(out, result._dtype)
    return creation.copy_(m.output("matmul", out, result._shape, result._dtype, result._device), result)


def _outer(a, b, out=None):
    _tensors("outer", ("input", "vec2"), a, b)
    for name, t in (("self", a), ("vec2", b)):
        if t.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
    return ew.mul(views.unsqueeze(a, 1), b, out=out)  # (n, 1) * (m,) -> (n, m)


def _linear(input, weight, bias=None):
    """input @ weight.T + bias, routed like torch (fused addmm for 2-D and contiguous inputs)."""
    _tensors("linear", ("input", "weight"), input, weight)
    if input.ndim == 0 or weight.ndim == 0:
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are {input.ndim}D and "
                           f"{weight.ndim}D")
    if bias is not None and input.ndim == 2:
        return addmm(bias, input, _t(weight), 1, 1)
    if bias is not None and input.is_contiguous() and (input.ndim == 3 or bias.ndim == 1):
        lead = input._shape[:-1]
        result = addmm(bias, _reshape(input, (math.prod(lead), input._shape[-1])), _t(weight), 1, 1)
        return views.view(result, lead + (result._shape[1],))
    output = matmul(input, _t(weight))
    if bias is not None:
        ew.add(output, bias, 1, out=output)
    return output


matmul = _declare("matmul", composite=_matmul)      # matmul(a, b)
outer = _declare("outer", composite=_outer)         # outer(a, b)
linear = _declare("linear", composite=_linear)      # linear(input, weight, bias=None)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's derivatives.yaml formulas with ops, so they differentiate again. Composites (matmul,
# outer, linear) have none: autograd records the mm/bmm/mv/dot and views they are made of.
from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


def _mH(t):
    return _conj(_mT(t))


def _scaled(t, s):
    """t * conj(s), skipping the multiplication for s == 1 (torch's maybe_multiply)."""
    return t if s == 1 else ew.mul(t, _conj(s))


@_derivative(mm, save=(0, 1))
def _mm_derivative(ctx, grad, a, b):
    return (mm(grad, _mH(b)) if _needs(ctx, 0) else None,
            mm(_mH(a), grad) if _needs(ctx, 1) else None)


@_derivative(bmm, save=(0, 1))
def _bmm_derivative(ctx, grad, a, b):
    return (bmm(grad, _mH(b)) if _needs(ctx, 0) else None,
            bmm(_mH(a), grad) if _needs(ctx, 1) else None)


@_derivative(addmm, save=(1, 2))
def _addmm_derivative(ctx, grad, input, m1, m2, beta=1, alpha=1):
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(mm(grad, _mH(m2)), alpha) if _needs(ctx, 1) else None,
            _scaled(mm(_mH(m1), grad), alpha) if _needs(ctx, 2) else None)


@_derivative(addmv, save=(1, 2))
def _addmv_derivative(ctx, grad, input, mat, vec, beta=1, alpha=1):
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(outer(grad, _conj(vec)), alpha) if _needs(ctx, 1) else None,
            _scaled(mv(_mH(mat), grad), alpha) if _needs(ctx, 2) else None)


@_derivative(mv, save=(0, 1))
def _mv_derivative(ctx, grad, mat, vec):
    return (outer(grad, _conj(vec)) if _needs(ctx, 0) else None,
            mv(_mH(mat), grad) if _needs(ctx, 1) else None)


@_derivative(dot, save=(0, 1))
def _dot_derivative(ctx, grad, a, b):
    return (ew.mul(grad, _conj(b)) if _needs(ctx, 0) else None,
            ew.mul(grad, _conj(a)) if _needs(ctx, 1) else None)


@_derivative(vdot, save=(0, 1))
def _vdot_derivative(ctx, grad, a, b):
    return (ew.mul(_conj(grad), b) if _needs(ctx, 0) else None,
            ew.mul(grad, a) if _needs(ctx, 1) else None)


@_derivative(matrix_norm, save=(0, "result"), name="LinalgMatrixNormBackward0")
def _matrix_norm_derivative(ctx, grad, a, ord, dim=(-2, -1), keepdim=False, dtype=None):
    dims = tuple(sorted(sh.wrap_dim(d, a.ndim) for d in dim))
    if ord == "fro":
        return r.norm_backward(grad, a, 2, ctx.result, dims, keepdim)
    raise NotImplementedError(f"the derivative of linalg.matrix_norm with ord={ord!r} is not implemented")
