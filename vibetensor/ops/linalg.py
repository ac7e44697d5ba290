"""The matmul family, linear algebra and norms: declarations, torch's checks, and the composites.

Primitives with device kernels: mm, bmm, addmm, addmv, mv, dot, vdot, baddbmm, addbmm, addr,
linalg_cross, trace, linalg_matrix_exp, linalg_svd, linalg_svdvals, renorm, dist, and the fused multiply-add
family addcmul/addcdiv (elementwise, but kept with their addmm/addr relatives). Meta functions
check in torch's order and with its messages, then return Spec(shape, dtype, device); out= must
have the result dtype exactly, as torch's matmul kernels require (addr and addc* cast like
elementwise ops).
Composites (the same on every device, built from the ops above and views): matmul, outer, linear,
inner, matrix_norm, mvlgamma.
matmul follows torch's _matmul_impl step by step (fold into mm/mv, else broadcast into bmm), so
its results and its error messages are the ones torch gives.
"""
import collections
import math

from vibetensor.dispatch import declare, get, local
from vibetensor.ops import creation, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops import meta as m
from vibetensor.ops import reduction as r
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, make_tensor

Spec = collections.namedtuple("Spec", "shape dtype device")
_NAMES, _CPP = m.TYPE_NAMES, r.CPP_NAMES


def _tensors(op, names, *xs):
    for i, (name, x) in enumerate(zip(names, xs)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{op}(): argument '{name}' (position {i + 1}) must be Tensor, not {type(x).__name__}")


def _no_bool(kernel, dtype, numel=1, k=1):
    """torch has no bool products (nor any for its barebones unsigned types), but an empty result or
    an empty sum (k == 0) never reaches the kernel: those succeed (all False)."""
    if (dtype.kind == "b" or dtype in dt.BAREBONES) and numel and k:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{m.TYPE_NAMES[dtype]}\'')


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
    if not (isinstance(input, Tensor) and isinstance(m1, Tensor) and isinstance(m2, Tensor)):
        _tensors("addmm", ("input", "mat1", "mat2"), input, m1, m2)
    for name, t in (("mat1", m1), ("mat2", m2)):
        if len(t._shape) != 2:
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
    views.expanded_geometry(input, shape)  # torch's broadcast check, with expand's messages
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


_MATRIX_ORDS = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)


def matrix_norm_spec(a, ord, dim=(-2, -1), keepdim=False, dtype=None, out=None):
    """linalg.matrix_norm's checks; returns a reduction Spec plus the two dims as given (wrapped)."""
    op = "linalg.matrix_norm"
    _tensors("linalg_matrix_norm", ("A",), a)
    if isinstance(ord, bool) or ord not in _MATRIX_ORDS:
        raise RuntimeError(f"{op}: Order {ord} not supported.")
    if a.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor A must have at least 2 dimensions.")
    r.check_float_input(op, a)
    if (ord == "nuc" or ord in (2, -2)) and a._dtype.itemsize == 2 and a._dtype.kind == "f":
        raise RuntimeError(f"{op}: Low precision dtypes not supported. Got {_NAMES[a._dtype]}")
    if len(dim) != 2:
        raise RuntimeError(f"{op}: dim must be a 2-tuple. Got {' '.join(map(str, dim))}")
    dims = tuple(sh.wrap_dim(d, a.ndim) for d in dim)
    if dims[0] == dims[1]:
        raise RuntimeError(f"{op}: dims must be different. Got ({dims[0]}, {dims[1]})")
    r.check_norm_dtype(op, a._dtype, dtype)
    compute = dtype or a._dtype
    r.check_out_dtype(out, compute.to_real())
    return MatrixNormSpec(r.reduced_shape(a._shape, dims, keepdim), compute.to_real(), a._device,
                          tuple(sorted(dims)), compute, dims)


MatrixNormSpec = collections.namedtuple("MatrixNormSpec", r.Spec._fields + ("dims_given",))


def _declare(name, meta=None, composite=None):
    return declare(name, meta=meta, composite=composite, family="linalg")


def _memoized_product(meta):
    """m.memoize_spec for the meta of a product of two tensors, for calls without out= (its key built
    here, flat: one tuple per call, no second frame)."""
    cache = m.spec_cache()

    def meta_(a, b, out=None):
        if out is not None or not isinstance(a, Tensor) or not isinstance(b, Tensor):
            return meta(a, b, out)
        key = (a._dtype, a._shape, a._device, b._dtype, b._shape, b._device)
        spec = cache.get(key)
        if spec is None:
            spec = m.remember(cache, key, meta(a, b))
        return spec
    meta_.uncached = meta
    return meta_


def _memoized_add_product(meta):
    """A cache of the meta of beta * input + alpha * (m1 @ m2) for calls without out=: its spec depends
    on the three tensors' signatures and on the scalars' values only (linear's addmm, every call)."""
    cache = m.spec_cache()

    def meta_(input, m1, m2, beta=1, alpha=1, out=None):
        if out is not None or not (isinstance(input, Tensor) and isinstance(m1, Tensor) and isinstance(m2, Tensor)):
            return meta(input, m1, m2, beta, alpha, out)
        key = (input._dtype, input._shape, input._device, m1._dtype, m1._shape, m1._device,
               m2._dtype, m2._shape, m2._device, beta, alpha)
        try:
            spec = cache.get(key)
        except TypeError:  # (an unhashable scalar: validated, and refused, by the meta)
            return meta(input, m1, m2, beta, alpha, out)
        if spec is None:
            spec = m.remember(cache, key, meta(input, m1, m2, beta, alpha, out))
        return spec
    meta_.uncached = meta
    return meta_


mm = _declare("mm", _memoized_product(_mm_meta))     # mm(a, b)
bmm = _declare("bmm", _memoized_product(_bmm_meta))  # bmm(a, b)
addmm = _declare("addmm", _memoized_add_product(_addmm_meta))  # addmm(input, m1, m2, beta, alpha)
addmv = _declare("addmv", _addmv_meta)             # addmv(input, mat, vec, beta, alpha)
mv = _declare("mv", _mv_meta)                      # mv(mat, vec)
dot = _declare("dot", _dot_meta)                   # dot(a, b)
vdot = _declare("vdot", lambda a, b, out=None: _dot_meta(a, b, out, "vdot"))  # vdot(a, b) = sum(conj(a) * b)


# -- composites ----------------------------------------------------------------------------------------------

def _reshape(t, shape):
    """A view when strides allow one, else a contiguous copy viewed (torch's reshape)."""
    shape = tuple(shape)
    if views.view_geometry(t, shape)[1] is None:
        t = creation.contiguous.call_on(t)
    return views.view.call_on(t, shape)


def _operand(t, shape):
    """An operand of a product in `shape`: t itself when it has that shape already (matmul's usually
    do: a view of it would only cost a tensor), else _reshape(t, shape). Only for values the
    composite consumes, never for one it returns (an op's output is never its input)."""
    return t if t._shape == shape else _reshape(t, shape)


def _unsafe_view(t, shape):
    """torch's _unsafe_view: the fresh contiguous product t in `shape`, as a new tensor on t's memory
    (not a view: t is a temporary nobody else holds; torch's matmul returns such a tensor, whose
    _base is None)."""
    if t._shape == shape:
        return t
    return make_tensor(t._storage, shape, sh.contiguous_strides(shape), t._offset, t._dtype)


def _mT(t):
    return views.transpose.call_on(t, -2, -1)


def _t(t):
    nd = len(t._shape)
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return views.transpose.call_on(t, 0, 1) if nd == 2 else t


def _should_fold(a, b):
    """torch's rule: fold the larger (>=3-D) operand into a matrix and use mm/mv when that needs no
    copy (or the smaller operand requires grad, to keep its gradient small)."""
    da, db = len(a._shape), len(b._shape)
    larger = da >= db
    if not (max(da, db) >= 3 and (db if larger else da) <= 2):  # (both >= 3-D: a batched product)
        return False
    t1 = a if larger else _mT(b)
    if (b if larger else a)._requires_grad:
        return True
    if da == 2:
        return False
    if t1.numel() == 0:
        return True
    return all(t1._stride[i] == t1._stride[i + 1] * t1._shape[i + 1] for i in range(t1.ndim - 2))


def _matmul_folded(a, b):
    da = len(a._shape)
    transpose = len(b._shape) > da
    t1 = _mT(b) if transpose else a
    t2 = (_t(a) if da == 2 else a) if transpose else b
    out_shape = t1._shape[:-1]  # (*batch, n)
    folded = _operand(t1, (math.prod(out_shape), t1._shape[-1]))
    if len(t2._shape) == 1:
        return _unsafe_view(mv(folded, t2), out_shape)
    output = _unsafe_view(mm(folded, t2), out_shape + (t2._shape[1],))
    return creation.contiguous(_mT(output)) if transpose else output


def _matmul_batched(a, b):
    """Broadcast the batch dims, flatten them, one bmm."""
    da, db = len(a._shape), len(b._shape)
    n = a._shape[-2] if da > 1 else 1
    k1 = a._shape[-1]
    k2 = b._shape[-2] if db > 1 else b._shape[0]
    p = b._shape[-1] if db > 1 else 1
    batch_a, batch_b = a._shape[:max(da - 2, 0)], b._shape[:max(db - 2, 0)]
    if da == 3 and db == 3 and batch_a[0] != batch_b[0]:  # same gradient optimisation as should_fold
        if batch_a[0] == 1 and a._requires_grad:
            return matmul(views.squeeze(a, (0,)), b)
        if batch_b[0] == 1 and b._requires_grad:
            return matmul(a, views.squeeze(b, (0,)))
    batch = sh.broadcast_shapes(batch_a, batch_b)
    nb = math.prod(batch)
    a3 = _operand(_expand(a, batch + (n, k1)), (nb, n, k1))  # (B, n, k)
    if db == 1:
        b3 = views.unsqueeze.call_on(_reshape(_expand(b, batch + (k2,)), (nb, k2)), 2)  # (B, k, 1)
    else:
        b3 = _operand(_expand(b, batch + (k2, p)), (nb, k2, p))  # (B, k, p)
    out_shape = batch + ((n,) if da > 1 else ()) + ((p,) if db > 1 else ())
    return _unsafe_view(bmm(a3, b3), out_shape)


def _expand(t, shape):
    """t.expand(shape), or t itself when that is its shape already (matmul's operands usually are)."""
    return t if t._shape == shape else views.expand.call_on(t, shape)


def _matmul(a, b, out=None):
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
        _tensors("matmul", ("input", "other"), a, b)
    da, db = len(a._shape), len(b._shape)
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
    if not (isinstance(input, Tensor) and isinstance(weight, Tensor)):
        _tensors("linear", ("input", "weight"), input, weight)
    di, dw = len(input._shape), len(weight._shape)
    if di == 0 or dw == 0:
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are {di}D and {dw}D")
    if bias is not None and di == 2:
        return addmm(bias, input, _t(weight), 1, 1)
    if bias is None and di == 2 and dw == 2:
        return mm(input, _t(weight))  # what matmul would do, without its dispatch and checks
    if bias is not None and dw == 2 and input.is_contiguous() and (di == 3 or bias.ndim == 1):
        lead = input._shape[:-1]
        result = addmm(bias, _reshape(input, (math.prod(lead), input._shape[-1])), _t(weight), 1, 1)
        return views.view.call_on(result, lead + (result._shape[1],))
    output = matmul(input, _t(weight))
    if bias is not None:
        ew.add(output, bias, 1, out=output)
    return output


matmul = _declare("matmul", composite=_matmul)      # matmul(a, b)
outer = _declare("outer", composite=_outer)         # outer(a, b)
linear = _declare("linear", composite=_linear)      # linear(input, weight, bias=None)



# -- batched and outer products: baddbmm, addbmm, addr -----------------------------------------------------

def _size(t, d):
    """t.size(d) with torch's IndexError for a missing dim."""
    if t.ndim == 0:
        raise IndexError(f"Dimension specified as {d} but tensor has no dimensions")
    return t._shape[sh.wrap_dim(d, t.ndim)]


def _baddbmm_meta(input, b1, b2, beta=1, alpha=1, out=None):
    """beta * input + alpha * (b1 @ b2) per batch; input broadcast to (B, n, p)."""
    _tensors("baddbmm", ("input", "batch1", "batch2"), input, b1, b2)
    shape = (_size(b1, 0), _size(b1, 1), _size(b2, 2))
    if out is not input:
        views.expand(input, shape)  # torch's broadcast check, with expand's messages
    if input._dtype is not b1._dtype:
        raise RuntimeError(f"Input dtypes must be the same, got: input {_CPP[input._dtype]}, batch1: "
                           f"{_CPP[b1._dtype]}, batch2: {_CPP[b2._dtype]}")
    for name, t in (("batch1", b1), ("batch2", b2)):
        if t.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    if b2._shape[:2] != (b1._shape[0], b1._shape[2]):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{b1._shape[0]}, "
                           f"{b1._shape[2]}] but got: [{b2._shape[0]}, {b2._shape[1]}].")
    if out is input and tuple(input._shape) != shape:
        raise RuntimeError(f"Expected an output tensor with shape [{', '.join(map(str, shape))}] but got shape "
                           f"[{', '.join(map(str, input._shape))}]")
    if b1._dtype is not b2._dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[b1._dtype]} but found {_NAMES[b2._dtype]}")
    _no_bool("baddbmm", b1._dtype, sh.numel(shape), b1._shape[2])
    _bool_empty_sum(b1._dtype, sh.numel(shape), b1._shape[2] == 0 and beta != 0)
    scalar(beta, b1._dtype), scalar(alpha, b1._dtype)  # validates them
    return _spec("baddbmm", shape, b1._dtype, (input, b1, b2), out)


def _addbmm_meta(input, b1, b2, beta=1, alpha=1, out=None):
    """beta * input + alpha * sum_b (b1[b] @ b2[b]); input broadcast to (n, p)."""
    _tensors("addbmm", ("input", "batch1", "batch2"), input, b1, b2)
    shape = (_size(b1, 1), _size(b2, 2))
    if out is not input:
        views.expand(input, shape)
    for name, t in (("batch1", b1), ("batch2", b2)):
        if t.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    if b1._shape[0] != b2._shape[0]:
        raise RuntimeError(f"batch1 and batch2 must have same number of batches, got {b1._shape[0]} and "
                           f"{b2._shape[0]}")
    if b1._shape[2] != b2._shape[1]:
        raise RuntimeError(f"Incompatible matrix sizes for bmm ({b1._shape[1]}x{b1._shape[2]} and "
                           f"{b2._shape[1]}x{b2._shape[2]})")
    if tuple(input._shape) != shape and out is input:
        raise RuntimeError("self tensor does not match matmul output shape")
    for x, name in ((input, "self"), (b1, "mat1")):  # each batch is an addmm_ into the result
        if x._dtype is not b2._dtype:
            raise RuntimeError(f"{name} and mat2 must have the same dtype, but got {_NAMES[x._dtype]} and "
                               f"{_NAMES[b2._dtype]}")
    nb, k = b1._shape[0], b1._shape[2]
    _no_bool("addmm_impl_cpu_", b1._dtype, sh.numel(shape) * nb, k)
    _bool_empty_sum(b1._dtype, sh.numel(shape), (nb == 0 and beta != 0) or (k == 0 and not (nb == 1 and beta == 0)))
    scalar(beta, b1._dtype), scalar(alpha, b1._dtype)
    return _spec("addbmm", shape, b1._dtype, (input, b1, b2), out)


def _bool_empty_sum(dtype, numel, scaled):
    """torch scales a bool input by an integer beta when no product is added: that fails."""
    if dtype.kind == "b" and numel and scaled:
        raise RuntimeError("result type Long can't be cast to the desired output type Bool")


def check_addr_scalar(dtype, value, name):
    if isinstance(value, bool) and dtype.kind != "b":
        raise RuntimeError(f"Boolean {name} only supported for Boolean results.")
    if dtype.category < 2 and isinstance(value, (float, complex)):
        raise RuntimeError(f"For integral input tensors, argument {name} must not be a floating point number.")


def _addr_meta(input, v1, v2, beta=1, alpha=1, out=None):
    """beta * input + alpha * outer(v1, v2), with type promotion (an elementwise op in torch):
    out= may be any dtype the result casts to."""
    _tensors("addr", ("input", "vec1", "vec2"), input, v1, v2)
    for name, v in (("vec1", v1), ("vec2", v2)):
        if v.ndim != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {v.ndim}-D")
    shape = (v1._shape[0], v2._shape[0])
    if out is input:
        if input.ndim != 2:
            raise RuntimeError(f"2D tensor expected, got {input.ndim}D tensor for input")
        if tuple(input._shape) != shape:
            raise RuntimeError(f"size mismatch, input: [{', '.join(map(str, input._shape))}], v1: [{shape[0]}], "
                               f"v2: [{shape[1]}]")
    else:
        views.expand(input, shape)
    dtype = dt.result_type(input, v1, v2)
    check_addr_scalar(dtype, beta, "beta")
    check_addr_scalar(dtype, alpha, "alpha")
    scalar(beta, dtype), scalar(alpha, dtype)
    return Spec(shape, dtype, m.common_device("addr", (input, v1, v2)))


# -- cross, trace, inner ------------------------------------------------------------------------------------

def _cross_meta(a, b, dim=-1, out=None):
    """linalg.cross(a, b, dim): same ndim, length 3 along dim, the other dims broadcast."""
    _tensors("linalg_cross", ("input", "other"), a, b)
    if a.ndim != b.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    if a.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = sh.wrap_dim(dim, a.ndim)
    if a._shape[d] != 3 or b._shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {a._shape[d]} and "
                           f"{b._shape[d]}")
    shape = sh.broadcast_shapes(a._shape, b._shape)
    _no_bool("cross", a._dtype)  # the kernel is chosen by input's dtype, then other must match it
    if a._dtype is not b._dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[a._dtype]} but found {_NAMES[b._dtype]}")
    return _spec("linalg_cross", shape, a._dtype, (a, b), out)


def default_cross_dim(shape):
    """torch.cross without dim: the first dim of size 3 (deprecated by torch, which warns)."""
    for i, s in enumerate(shape):
        if s == 3:
            return i
    raise RuntimeError("no dimension of size 3 in input")


def _trace_meta(a):
    _tensors("trace", ("input",), a)
    _no_bool("trace", a._dtype)
    if a.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {a.ndim}")
    return Spec((), dt.int64 if a._dtype.category < 2 else a._dtype, a._device)


def _inner(a, b, out=None):
    """Sum over the last dims: (*a_lead, k) x (*b_lead, k) -> (*a_lead, *b_lead) (torch's tensordot)."""
    _tensors("inner", ("input", "other"), a, b)
    if a.ndim == 0 or b.ndim == 0:
        return ew.mul(a, b, out=out)
    if a._shape[-1] != b._shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes "
                           f"[{', '.join(map(str, a._shape))}] and [{', '.join(map(str, b._shape))}]")
    if a._dtype is not b._dtype:
        raise RuntimeError("both inputs should have same dtype")
    if a.ndim == 1 and b.ndim == 1:  # torch's tensordot contracts two vectors with dot
        return dot(a, b, out=out)
    k = a._shape[-1]
    a2 = _reshape(a, (math.prod(a._shape[:-1]), k))  # (n, k)
    b2 = _reshape(b, (math.prod(b._shape[:-1]), k))  # (p, k)
    result = views.view(mm(a2, _t(b2)), a._shape[:-1] + b._shape[:-1])
    if out is None:
        return result
    r.check_out_dtype(out, result._dtype)
    return creation.copy_(m.output("inner", out, result._shape, result._dtype, result._device), result)


# -- matrix functions --------------------------------------------------------------------------------------

def square_matrices(op, a):
    """torch's squareCheckInputs + checkFloatingOrComplex."""
    if a.ndim < 2:
        raise RuntimeError(f"{op}: The input tensor A must have at least 2 dimensions.")
    if a._shape[-1] != a._shape[-2]:
        raise RuntimeError(f"{op}: A must be batches of square matrices, but they are {a._shape[-2]} by "
                           f"{a._shape[-1]} matrices")
    r.check_float_input(op, a)


def _matrix_exp_meta(a, out=None):
    _tensors("linalg_matrix_exp", ("input",), a)
    square_matrices("linalg.matrix_exp", a)
    return _spec("linalg_matrix_exp", a._shape, a._dtype, (a,), out)


def _check_svd_input(op, a):
    _tensors(op, ("A",), a)
    if a.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    r.check_float_input("linalg.svd", a)
    if a._dtype in (dt.float16, dt.bfloat16) and a.numel():
        raise NotImplementedError(f'"linalg_svd_cpu" not implemented for \'{_NAMES[a._dtype]}\'')


def _svdvals_meta(a, out=None):
    """Singular values of each (m, n) matrix, descending: (*batch, min(m, n)), real."""
    _check_svd_input("linalg_svdvals", a)
    return _spec("linalg_svdvals", a._shape[:-2] + (min(a._shape[-2:]),), a._dtype.to_real(), (a,), out)


SvdSpec = collections.namedtuple("SvdSpec", "u s vh")
svd_result = r._return_type("linalg_svd", "U S Vh")


def _svd_meta(a, full_matrices=True, out=None):
    """A = U diag(S) Vh: U (*batch, m, m|k), S (*batch, k), Vh (*batch, n|k, n), k = min(m, n)."""
    _check_svd_input("linalg_svd", a)
    *batch, rows, cols = a._shape
    k = min(rows, cols)
    batch = tuple(batch)
    if out is not None:
        raise NotImplementedError("linalg.svd(out=...) is not implemented in vibetensor")
    return SvdSpec(Spec(batch + (rows, rows if full_matrices else k), a._dtype, a._device),
                   Spec(batch + (k,), a._dtype.to_real(), a._device),
                   Spec(batch + (cols if full_matrices else k, cols), a._dtype, a._device))


# -- norms: renorm, dist ------------------------------------------------------------------------------------

def renorm_dims(a, dim):
    """The dims each sub-tensor's norm runs over: all but dim."""
    d = sh.wrap_dim(dim, a.ndim)
    return tuple(i for i in range(a.ndim) if i != d)


def renorm_norm_dtype(dtype):
    """torch norms in the (CUDA) accumulate type: half types in float32."""
    return dt.float32 if dtype in (dt.float16, dt.bfloat16) else dtype


def _renorm_meta(a, p, dim, maxnorm, out=None):
    """Each slice a.select(dim, i) whose p-norm exceeds maxnorm is scaled down to norm maxnorm."""
    _tensors("renorm", ("input",), a)
    if isinstance(p, complex):
        raise RuntimeError("renorm: p must be real-valued")
    if not p > 0:
        raise RuntimeError("renorm: non-positive-norm not supported")
    if isinstance(maxnorm, complex):
        raise RuntimeError("renorm: maxnorm must be real-valued")
    if not maxnorm >= 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm:g}")
    if a.ndim <= 1:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {a.ndim} dimensions")
    renorm_dims(a, dim)
    r.check_float_input("linalg.vector_norm", a)
    if out is not None and out is not a:
        r.check_out_dtype(out, a._dtype)
    return Spec(tuple(a._shape), a._dtype, a._device)


def _dist_meta(a, b, p=2, out=None):
    """||a - b||_p over all elements (a - b broadcast and promoted): a real 0-d result."""
    _tensors("dist", ("input", "other"), a, b)
    shape, dtype, device = m.elementwise("dist", a, b)
    if dtype.category < 2:
        raise RuntimeError(f"norm(): input dtype should be either floating point or complex. Got {_NAMES[dtype]} "
                           "instead.")
    if sh.numel(shape) == 0 and (p < 0 or p == math.inf):
        raise RuntimeError(f"linalg.vector_norm cannot compute the {p:g} norm on an empty tensor because the "
                           "operation does not have an identity")
    return _spec("dist", (), dtype.to_real(), (a, b), out)


# -- fused multiply-add family: addcmul, addcdiv (elementwise) ----------------------------------------------

_ADDCDIV_INT = ("Integer division with addcdiv is no longer supported, and in a future  release addcdiv will perform "
                "a true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as (input + "
                "value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + value * "
                "tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter implementation: "
                "(input + value * tensor1 / tensor2), for all dtypes.")


def addc_value(value, dtype):
    """value in the result dtype, with torch's overflow check (half types compute in float32)."""
    return creation.scalar_to(value, dt.float32 if dtype in (dt.float16, dt.bfloat16) else dtype)


def _addc_meta(name):
    """input + value * t1 (*|/) t2, broadcast and promoted like an elementwise op."""
    def meta(input, t1, t2, value=1, out=None):
        _tensors(name, ("input", "tensor1", "tensor2"), input, t1, t2)
        if name == "addcdiv" and t1._dtype.category < 2 and t2._dtype.category < 2:
            raise RuntimeError(_ADDCDIV_INT)
        shape, dtype, device = m.elementwise(name, input, t1, t2)
        if dtype.kind == "b":
            raise NotImplementedError(f'"{name}_cpu_out" not implemented for \'Bool\'')
        addc_value(value, dtype)  # validates it
        return Spec(shape, dtype, device)
    return meta


# -- mvlgamma: a composite over lgamma ----------------------------------------------------------------------

def _mvlgamma(a, p, out=None):
    """log of the multivariate gamma function: sum_{i<p} lgamma(a - i/2) + p(p-1)/4 log(pi)."""
    _tensors("mvlgamma", ("input",), a)
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    try:
        lgamma = get("lgamma")
    except KeyError:
        raise NotImplementedError("mvlgamma needs the vt::lgamma op, which is not declared yet") from None
    dtype = a._dtype if a._dtype.category >= 2 else dt.get_default_dtype()
    shifts = creation.arange(-(p - 1) / 2, 0.5, 0.5, dtype, device=a._device)  # (p,): -(p-1)/2 ... 0
    terms = lgamma(ew.add(shifts, views.unsqueeze(a, -1)))  # (*a, p)
    return ew.add(r.sum(terms, -1, False), p * (p - 1) * math.log(math.pi) / 4, out=out)


def _matrix_norm(a, ord, dim=(-2, -1), keepdim=False, dtype=None, out=None):
    """torch's linalg_matrix_norm, built from vector norms, amax/amin and singular values."""
    spec = matrix_norm_spec(a, ord, dim, keepdim, dtype, out)
    d0, d1 = spec.dims_given
    if ord == "fro" or ord not in ("nuc",) and ord > 0 and a.numel() == 0:  # torch: zeros for empty A
        result = r.vector_norm(a, 2, (d0, d1), keepdim, dtype)
    elif ord == "nuc" or abs(ord) == 2:
        a_ = views.movedim(creation.to(a, dtype, a._device) if dtype else a, (d0, d1), (-2, -1))
        s = linalg_svdvals(a_)  # (*batch, k)
        result = r.sum(s, -1, False) if ord == "nuc" else (r.amax if ord > 0 else r.amin)(s, -1, False)
        if keepdim:
            for d in sorted((d0, d1)):
                result = views.unsqueeze(result, d)
    else:  # 1 / inf: the max column / row abs sum (-1 / -inf: the min)
        if abs(ord) == math.inf:
            d0, d1 = d1, d0
        if not keepdim and d0 < d1:
            d1 -= 1
        col_sums = r.vector_norm(a, 1, d0, keepdim, dtype)
        result = (r.amax if ord > 0 else r.amin)(col_sums, d1, keepdim)
    if out is None:
        return result
    return creation.copy_(m.output("linalg_matrix_norm", out, result._shape, result._dtype, result._device), result)


baddbmm = _declare("baddbmm", _baddbmm_meta)                  # baddbmm(input, b1, b2, beta, alpha)
addbmm = _declare("addbmm", _addbmm_meta)                     # addbmm(input, b1, b2, beta, alpha)
addr = _declare("addr", _addr_meta)                           # addr(input, v1, v2, beta, alpha)
linalg_cross = _declare("linalg_cross", _cross_meta)          # linalg_cross(a, b, dim)
trace = _declare("trace", _trace_meta)                        # trace(a)
inner = _declare("inner", composite=_inner)                   # inner(a, b)
linalg_matrix_exp = _declare("linalg_matrix_exp", _matrix_exp_meta)  # linalg_matrix_exp(a)
linalg_svdvals = _declare("linalg_svdvals", _svdvals_meta)    # linalg_svdvals(a)
linalg_svd = _declare("linalg_svd", _svd_meta)                # linalg_svd(a, full_matrices) -> (U, S, Vh)
matrix_norm = _declare("matrix_norm", composite=_matrix_norm)  # matrix_norm(a, ord, dim, keepdim, dtype)
renorm = _declare("renorm", _renorm_meta)                     # renorm(a, p, dim, maxnorm)
dist = _declare("dist", _dist_meta)                           # dist(a, b, p)
addcmul = _declare("addcmul", _addc_meta("addcmul"))          # addcmul(input, t1, t2, value)
addcdiv = _declare("addcdiv", _addc_meta("addcdiv"))          # addcdiv(input, t1, t2, value)
mvlgamma = _declare("mvlgamma", composite=_mvlgamma)          # mvlgamma(a, p)

# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's derivatives.yaml formulas with ops, so they differentiate again. The composite outer has
# none: autograd records the mul and view it is made of. matmul and linear, composites in torch,
# have their own here: one node each instead of one per view and product inside them (a node costs
# several us of Python; the reversal step's 9 linears and 4 batched matmuls made ~40).
from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


def _mH(t):
    return _conj(_mT(t))


def _scaled(t, s):
    """t * conj(s), skipping the multiplication for s == 1 (torch's maybe_multiply)."""
    return t if s == 1 else ew.mul(t, _conj(s))


def _column_major(t):
    return t._stride[0] == 1 and t._stride[1] == t._shape[0]


def _mat1_grad(grad, m1, m2):
    """grad @ m2^H, laid out like m1 (torch's mm_mat1_backward): a column-major m1 gets the
    transposed product, so no layout copy follows."""
    if _column_major(m1):
        return _mT(mm(_conj(m2), _mT(grad)))
    return mm(grad, _mH(m2))


def _mat2_grad(grad, m1, m2):
    """m1^H @ grad, laid out like m2 (torch's mm_mat2_backward): a weight used as weight.t() is
    column-major, and its gradient is computed as (grad^T @ m1)^T, so the weight's .grad comes out
    contiguous with no copy for the gradient layout contract."""
    if _column_major(m2):
        return _mT(mm(_mT(grad), _conj(m1)))
    return mm(_mH(m1), grad)


@_derivative(mm, save=(0, 1))
def _mm_derivative(ctx, grad, a, b):
    return (_mat1_grad(grad, a, b) if _needs(ctx, 0) else None,
            _mat2_grad(grad, a, b) if _needs(ctx, 1) else None)


@_derivative(bmm, save=(0, 1))
def _bmm_derivative(ctx, grad, a, b):
    return (bmm(grad, _mH(b)) if _needs(ctx, 0) else None,
            bmm(_mH(a), grad) if _needs(ctx, 1) else None)


@_derivative(addmm, save=(1, 2))
def _addmm_derivative(ctx, grad, input, m1, m2, beta=1, alpha=1):
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(_mat1_grad(grad, m1, m2), alpha) if _needs(ctx, 1) else None,
            _scaled(_mat2_grad(grad, m1, m2), alpha) if _needs(ctx, 2) else None)


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


@_derivative(baddbmm, save=(1, 2))
def _baddbmm_derivative(ctx, grad, input, b1, b2, beta=1, alpha=1):
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(bmm(grad, _mH(b2)), alpha) if _needs(ctx, 1) else None,
            _scaled(bmm(_mH(b1), grad), alpha) if _needs(ctx, 2) else None)


@_derivative(addbmm, save=(1, 2))
def _addbmm_derivative(ctx, grad, input, b1, b2, beta=1, alpha=1):
    per_batch = views.expand(views.unsqueeze(grad, 0), (b1._shape[0],) + tuple(grad._shape))  # (B, n, p)
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(bmm(per_batch, _mH(b2)), alpha) if _needs(ctx, 1) else None,
            _scaled(bmm(_mH(b1), per_batch), alpha) if _needs(ctx, 2) else None)


def _like(t, ref):
    """t in ref's dtype (addr promotes; its products in the backward need equal dtypes)."""
    return t if t._dtype is ref._dtype else creation.to(t, ref._dtype, t._device)


@_derivative(addr, save=(1, 2))
def _addr_derivative(ctx, grad, input, v1, v2, beta=1, alpha=1):
    return (_scaled(grad, beta) if _needs(ctx, 0) else None,
            _scaled(mv(grad, _conj(_like(v2, grad))), alpha) if _needs(ctx, 1) else None,
            _scaled(mv(_t(grad), _conj(_like(v1, grad))), alpha) if _needs(ctx, 2) else None)


@_derivative(linalg_cross, save=(0, 1))
def _cross_derivative(ctx, grad, a, b, dim=-1):
    return (linalg_cross(_conj(b), grad, dim) if _needs(ctx, 0) else None,
            linalg_cross(grad, _conj(a), dim) if _needs(ctx, 1) else None)


@_derivative(trace)
def _trace_derivative(ctx, grad, a):
    n, k = a._shape
    return ew.mul(creation.eye(n, k, grad._dtype, device=grad._device), grad)


@_derivative(linalg_matrix_exp, save=0)
def _matrix_exp_derivative(ctx, grad, a):
    """The Frechet derivative's adjoint: the top-right block of exp([[A^H, G], [0, A^H]])."""
    n = a._shape[-1]
    cat = get("cat")
    a_h = _mH(a)
    zeros = creation.full(a_h._shape, 0, a_h._dtype, device=a_h._device)
    block = cat([cat([a_h, grad], -1), cat([zeros, a_h], -1)], -2)  # (*batch, 2n, 2n)
    return views.narrow(views.narrow(linalg_matrix_exp(block), -2, 0, n), -1, n, n)


@_derivative(linalg_svdvals, save=0)
def _svdvals_derivative(ctx, grad, a):
    """U diag(gS) Vh, with U and Vh from an svd recorded like any op (so it differentiates again)."""
    u, _, vh = linalg_svd(a, False)
    if a._shape[-2] >= a._shape[-1]:
        return matmul(u, ew.mul(views.unsqueeze(grad, -1), vh))
    return matmul(ew.mul(u, views.unsqueeze(grad, -2)), vh)


@_derivative(linalg_svd, save=("result",))
def _svd_derivative(ctx, grads, a, full_matrices=True):
    """torch's svd_backward (distinct singular values assumed; real matrices)."""
    g_u, g_s, g_vh = grads
    u, s, vh = ctx.result
    rows, cols = a._shape[-2:]
    k = min(rows, cols)
    if k == 0:
        return creation.full(a._shape, 0, a._dtype, device=a._device)
    if full_matrices:  # only the first k singular vectors are determined by A
        g_u, u = views.narrow(g_u, -1, 0, k), views.narrow(u, -1, 0, k)
        g_vh, vh = views.narrow(g_vh, -2, 0, k), views.narrow(vh, -2, 0, k)
    skew = lambda x: ew.sub(x, _mH(x))  # noqa: E731
    uh_gu = skew(matmul(_mH(u), g_u))     # (*, k, k)
    vh_gv = skew(matmul(vh, _mH(g_vh)))   # (*, k, k)
    s2 = ew.mul(s, s)
    eye = creation.eye(k, k, dt.bool_, device=a._device)
    e = ew.where(eye, 1.0, ew.sub(views.unsqueeze(s2, -2), views.unsqueeze(s2, -1)))  # s_j^2 - s_i^2, 1 on the diagonal
    inner = ew.div(ew.add(ew.mul(uh_gu, views.unsqueeze(s, -2)), ew.mul(views.unsqueeze(s, -1), vh_gv)), e)
    inner = ew.add(inner, ew.mul(views.unsqueeze(g_s, -1), eye))  # + diag(gS)
    if rows > cols:  # [U inner + (I - U U^H) gU S^-1] Vh
        g_u_sinv = ew.div(g_u, views.unsqueeze(s, -2))
        g_a = ew.sub(ew.add(matmul(u, inner), g_u_sinv), matmul(u, matmul(_mH(u), g_u_sinv)))
        return matmul(g_a, vh)
    if rows < cols:  # U [inner Vh + S^-1 gVh (I - V Vh)]
        sinv_g_vh = ew.div(g_vh, views.unsqueeze(s, -1))
        g_a = ew.sub(ew.add(matmul(inner, vh), sinv_g_vh), matmul(matmul(sinv_g_vh, _mH(vh)), vh))
        return matmul(u, g_a)
    return matmul(u, matmul(inner, vh))


@_derivative(renorm, save=0)
def _renorm_derivative(ctx, grad, a, p, dim, maxnorm):
    """torch's renorm_backward: where the slice was scaled, the derivative of x * maxnorm / (norm + eps)."""
    dims = renorm_dims(a, dim)
    acc = renorm_norm_dtype(a._dtype)
    norm = r.vector_norm(a, p, dims, True, acc)
    grad_norm = r.sum(ew.mul(_conj(a), grad), dims, True, acc.to_real())
    nb = r.norm_backward(grad_norm, a, p, norm, dims, True)
    inv = ew.reciprocal(ew.add(norm, 1e-7))
    factor = ew.mul(inv, maxnorm)
    return ew.where(ew.gt(norm, maxnorm), ew.sub(ew.mul(factor, grad), ew.mul(ew.mul(factor, inv), nb)), grad)


@_derivative(dist, save=(0, 1, "result"))
def _dist_derivative(ctx, grad, a, b, p=2):
    diff = ew.sub(a, b)
    g = r.norm_backward(grad, diff, p, ctx.result, tuple(range(diff.ndim)), False)
    if g is None:  # p == 0: piecewise constant
        return None, None
    return (g if _needs(ctx, 0) else None), (ew.neg(g) if _needs(ctx, 1) else None)


@_derivative(addcmul, save=(1, 2))
def _addcmul_derivative(ctx, grad, input, t1, t2, value=1):
    return (grad if _needs(ctx, 0) else None,
            ew.mul(grad, _conj(ew.mul(t2, value))) if _needs(ctx, 1) else None,
            ew.mul(grad, _conj(ew.mul(t1, value))) if _needs(ctx, 2) else None)


@_derivative(addcdiv, save=(1, 2))
def _addcdiv_derivative(ctx, grad, input, t1, t2, value=1):
    return (grad if _needs(ctx, 0) else None,
            ew.mul(grad, _conj(ew.div(value, t2))) if _needs(ctx, 1) else None,
            ew.mul(ew.neg(grad), _conj(ew.div(ew.mul(t1, value), ew.mul(t2, t2)))) if _needs(ctx, 2) else None)


# -- matmul and linear: one node each ---------------------------------------------------------------------------
# The products torch's decompositions make in backward (equal values), without a node per view.

def _matmul_grads(ctx, grad, a, b):
    """(grad of a, grad of b) of matmul(a, b). A 1-D operand is a matrix with a unit dim added, as
    matmul treats it, and the dim is dropped from its gradient. Batch dims a broadcast added come
    back unsummed (the engine sums them down), except where matmul folded a's batch into the rows of
    one mm (b a matrix): then b's gradient is one mm over all rows, as torch's."""
    da, db = len(a._shape), len(b._shape)
    if da == 1 and db == 1:  # dot
        return (ew.mul(grad, _conj(b)) if _needs(ctx, 0) else None,
                ew.mul(grad, _conj(a)) if _needs(ctx, 1) else None)
    a2 = views.unsqueeze(a, 0) if da == 1 else a      # (.., n, k)
    b2 = views.unsqueeze(b, -1) if db == 1 else b     # (.., k, p)
    g2 = views.unsqueeze(grad, -2) if da == 1 else grad
    g2 = views.unsqueeze(g2, -1) if db == 1 else g2   # (.., n, p)
    ga = gb = None
    if _needs(ctx, 0):
        ga = matmul(g2, _mH(b2))                          # (.., n, k)
        ga = views.squeeze(ga, (-2,)) if da == 1 else ga
    if _needs(ctx, 1):
        if len(b2._shape) == 2 and len(a2._shape) > 2:  # folded: (rows, k)^H @ (rows, p)
            k, p = b2._shape
            gb = mm(_mH(_operand(a2, (a2.numel() // k if k else 0, k))), _operand(g2, (g2.numel() // p if p else 0, p)))
        else:
            gb = matmul(_mH(a2), g2)                      # (.., k, p)
        gb = views.squeeze(gb, (-1,)) if db == 1 else gb
    return ga, gb


_MATMUL_NAMES = {(1, 1): "DotBackward0", (1, 2): "SqueezeBackward4", (2, 1): "MvBackward0", (2, 2): "MmBackward0"}


def _matmul_name(a, b, out=None):
    """torch's grad_fn name for matmul's output (its decomposition's last node)."""
    da, db = len(a._shape), len(b._shape)
    if da == 3 and db == 3 and a._shape[0] == 1 != b._shape[0] and a._requires_grad:
        da = 2  # _matmul_batched squeezes a: (n, k) @ (B, k, p)
    return _MATMUL_NAMES.get((da, db), "CloneBackward0" if da == 2 else "UnsafeViewBackward0")


@_derivative(matmul, save=(0, 1), name=_matmul_name)
def _matmul_derivative(ctx, grad, a, b):
    return _matmul_grads(ctx, grad, a, b)


def _linear_name(input, weight, bias=None):
    """torch's grad_fn name for linear's output."""
    if bias is None:
        return _matmul_name(input, weight)
    if len(weight._shape) == 1:
        return "AddBackward0"
    di = len(input._shape)
    if di == 2:
        return "AddmmBackward0"
    return "ViewBackward0" if di == 1 or input.is_contiguous() else "AddBackward0"


@_derivative(linear, save=(0, 1), name=_linear_name)
def _linear_derivative(ctx, grad, input, weight, bias=None):
    """linear(x, W, b) = x @ W^T + b: x's gradient grad @ conj(W), W's one mm over every row,
    (grad rows)^T @ conj(x rows), contiguous like W; b gets grad, which the engine sums down."""
    gb = grad if bias is not None and _needs(ctx, 2) else None
    if len(weight._shape) == 1:  # x @ w: matmul's gradients
        gi, gw = _matmul_grads(ctx, grad, input, weight)
        return gi, gw, gb
    out_features, in_features = weight._shape
    gi = matmul(grad, _conj(weight)) if _needs(ctx, 0) else None  # (*, out) @ (out, in)
    gw = None
    if _needs(ctx, 1):
        rows = input.numel() // in_features if in_features else grad.numel() // max(out_features, 1)
        gw = mm(_mT(_operand(grad, (rows, out_features))), _conj(_operand(input, (rows, in_features))))
    return gi, gw, gb
