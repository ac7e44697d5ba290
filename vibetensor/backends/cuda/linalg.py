"""CUDA kernels of the matrix products: mm, bmm, addmm, baddbmm, addbmm, mv, addmv on cuBLASLt / cuBLAS
(runtime/cuda/blas.py).

matmul, linear and the other composites reach these. An operand whose last two dims are
row-major, or row-major after a transpose (a `.T` / `.mT` view), goes to the library as it is,
with the transpose flag; anything else is made contiguous first. The resulting problem tuple is
cached per operand geometry, so a repeated product goes straight to blas.run. float32 follows the
TF32 switch (torch.backends.cuda.matmul.allow_tf32); half types accumulate in float32.
"""
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, linalg as la, views
from vibetensor.ops import elementwise as ew
from vibetensor.ops.meta import bump_version, output, remember
from vibetensor.runtime.cuda import blas
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.shape import contiguous_strides
from vibetensor.tensor.tensor import alias, empty

CUDA = DispatchKey.CUDA
_SUPPORTED = {dt.float16: "float16", dt.bfloat16: "bfloat16", dt.float32: "float32", dt.float64: "float64",
              dt.complex64: "complex64", dt.complex128: "complex128"}  # (complex: cublasGemmEx)


def _layout(shape, stride):
    """(transposed, leading dim, needs a copy) for the last two dims as cuBLAS can read them: row-major,
    or row-major after a transpose (a `.T` / `.mT` view); anything else is made contiguous first."""
    rows, cols = shape[-2], shape[-1]
    rs, cs = stride[-2], stride[-1]
    if cs == 1 and (rs >= max(cols, 1) or rows == 1):
        return False, max(rs, cols, 1), False
    if rs == 1 and (cs >= max(rows, 1) or cols == 1):
        return True, max(cs, rows, 1), False
    return False, max(cols, 1), True


def _dtype_name(op, dtype):
    name = _SUPPORTED.get(dtype)
    if name is None:
        raise NotImplementedError(f"{op}: {dtype} matrix products on CUDA are not supported yet")
    return name


def _problem(op, a, b, res):
    """(blas problem tuple, copy a, copy b) of res (.., m, n) = a (.., m, k) @ b (.., k, n), or None
    when m, n or k is 0 (nothing for cuBLAS to do)."""
    name = _dtype_name(op, res._dtype)
    m, n, k = res._shape[-2], res._shape[-1], a._shape[-1]
    if m == 0 or n == 0 or k == 0:
        return None
    ta, lda, copy_a = _layout(a._shape, a._stride)
    tb, ldb, copy_b = _layout(b._shape, b._stride)
    batch = res._shape[0] if len(res._shape) == 3 else 1
    stride_a = stride_b = 0
    if batch > 1:  # a copy is contiguous
        stride_a = m * k if copy_a else a._stride[0]
        stride_b = k * n if copy_b else b._stride[0]
    return (name, m, n, k, ta, tb, lda, ldb, n, batch, stride_a, stride_b, m * n), copy_a, copy_b


_problems = {}  # operand/result geometry -> _problem's answer: a repeated product skips the layout logic


def _plan(op, a, b, res):
    """_problem's answer for this geometry, cached: (problem or None, copy a, copy b)."""
    key = (res._dtype, res._shape, a._shape, a._stride, b._shape, b._stride)
    plan = _problems.get(key)
    if plan is None:
        if len(_problems) > 4096:
            _problems.clear()
        plan = _problems[key] = _problem(op, a, b, res) or (None, False, False)
    return plan


def _gemm(op, a, b, res, beta=0.0, alpha=1.0, bias=0):
    """res (.., m, n) = alpha * a (.., m, k) @ b (.., k, n) + beta * res; batched when 3-D; res contiguous.
    bias: a device pointer to n values added to each row in cuBLASLt's epilogue; then None is
    returned, having done nothing, where the epilogue cannot be used."""
    problem, copy_a, copy_b = _plan(op, a, b, res)
    if problem is None:
        if bias:
            return None
        if res._shape[-2] and res._shape[-1] and beta != 1:  # k == 0: an empty sum leaves beta * res
            if beta == 0:
                creation.copy_(res, creation.full((), 0, res._dtype, device=res._device))
            else:
                ew.mul(res, beta, out=res)
        return res
    if copy_a:
        a = creation.contiguous(a)
    if copy_b:
        b = creation.contiguous(b)
    # (the operands' data pointers, _ptr inlined: every product comes here)
    if not blas.run(problem, a._storage.data.ptr + a._offset * a._dtype.itemsize,
                    b._storage.data.ptr + b._offset * b._dtype.itemsize,
                    res._storage.data.ptr + res._offset * res._dtype.itemsize, res._device.index, alpha, beta,
                    bias=bias):
        return None
    return res


def _ptr(t):
    """t.data_ptr() of a CUDA tensor (its storage's block pointer plus the byte offset)."""
    return t._storage.data.ptr + t._offset * t._dtype.itemsize


# Repeats. A training step runs the same products every step: the first call of an operand geometry
# (dtypes, devices, shapes, strides; and the scalars for addmm) without out= is validated by the meta
# and planned as usual, and remembers (result shape, dtype, device, blas problem) where the operands
# went to the library as they are; a repeat goes straight to empty() and blas.run. (The meta's answer
# and the problem depend on nothing else; dtype-, TF32- and cuBLASLt-switch-dependent choices stay in
# blas.run.)

def _product(name, op):
    """The kernel of mm or bmm: res = a @ b."""
    repeats = {}

    def kernel(a, b, out=None):
        key = None
        if out is None:
            try:
                key = (a._dtype, a._device, a._shape, a._stride, b._dtype, b._device, b._shape, b._stride)
            except AttributeError:  # (not tensors: the meta raises torch's error)
                pass
            hit = repeats.get(key)
            if hit is not None:
                shape, dtype, device, problem = hit
                res = empty(shape, dtype, device)
                size = dtype.itemsize
                blas.run(problem, a._storage.data.ptr + a._offset * size, b._storage.data.ptr + b._offset * size,
                         res._storage.data.ptr, device.index)
                return res
        spec = op.meta(a, b, out)
        res = output(name, out, spec.shape, spec.dtype, spec.device)
        target = res if out is None or res.is_contiguous() else output(name, None, spec.shape, spec.dtype, spec.device)
        _gemm(name, a, b, target)
        if key is not None:
            _remember(repeats, key, spec, _plan(name, a, b, target))
        return _finish(res, target, out)
    kernel.__name__ = kernel.__qualname__ = name
    kernel.repeats = repeats
    return kernel


def _remember(repeats, key, spec, plan):
    problem, copy_a, copy_b = plan
    if problem is not None and not copy_a and not copy_b:  # (empty products and copied operands: the full path)
        remember(repeats, key, (spec.shape, spec.dtype, spec.device, problem))


mm = _product("mm", la.mm)
bmm = _product("bmm", la.bmm)


def _add_product(name, spec, input, a, b, beta, alpha, out, shape=None, repeat=None):
    """res = beta * input + alpha * (a @ b), cuBLAS adding beta * C in place; `shape` views the
    result as the matrix (or batch) the product fills (mv's (m,) as (m, 1)). repeat: addmm's key
    for _bias_repeats (a call without out=)."""
    res = output(name, out, spec.shape, spec.dtype, spec.device, inplace=out is not None and out is input)
    target = res if out is None or res.is_contiguous() else output(name, None, spec.shape, spec.dtype, spec.device)
    if _bias_epilogue(name, input, beta, target) and _gemm(name, a, b, target, 0.0, _number(alpha),
                                                            bias=_ptr(input)) is not None:
        if repeat is not None:
            _remember(_bias_repeats, repeat, spec, _plan(name, a, b, target))
        return _finish(res, target, out)  # linear's bias added by cuBLASLt: no broadcast copy first
    if input is not None and beta != 0 and target is not input:
        creation.copy_(target, views.expand(input, spec.shape))
    product = target if shape is None else alias(target, shape, contiguous_strides(shape), target._offset)
    _gemm(name, a, b, product, beta=_number(beta) if input is not None and beta != 0 else 0.0, alpha=_number(alpha))
    return _finish(res, target, out)


def _number(v):
    """alpha/beta for blas.run: a float, or a complex number as it is (complex products)."""
    return v if isinstance(v, complex) else float(v)


def _bias_epilogue(name, input, beta, target):
    """addmm(bias, x, w.t()) with a dense 1-D bias of the result's dtype: the bias can ride in the
    product's epilogue."""
    return (name == "addmm" and beta == 1 and input is not None and len(input._shape) == 1 and input is not target
            and input._stride[0] == 1 and input._dtype is target._dtype and len(target._shape) == 2
            and input._shape[0] == target._shape[1] and input._storage is not target._storage)


def _column(v):
    """A 1-d tensor as a (k, 1) matrix view."""
    return alias(v, (v._shape[0], 1), (v._stride[0], 1), v._offset)


_bias_repeats = {}  # addmm's repeats that ran with the bias epilogue (linear's, every call of a layer)


def addmm(input, m1, m2, beta=1, alpha=1, out=None):
    key = None
    if out is None:
        try:
            key = (input._dtype, input._device, input._shape, input._stride, m1._dtype, m1._device, m1._shape,
                   m1._stride, m2._dtype, m2._device, m2._shape, m2._stride, beta, alpha)
            hit = _bias_repeats.get(key)
        except (AttributeError, TypeError):  # (not tensors, or an unhashable scalar: the meta raises)
            key = hit = None
        if hit is not None:
            shape, dtype, device, problem = hit
            res = empty(shape, dtype, device)
            size = dtype.itemsize
            if blas.run(problem, m1._storage.data.ptr + m1._offset * size, m2._storage.data.ptr + m2._offset * size,
                        res._storage.data.ptr, device.index, 1.0 if alpha == 1 else _number(alpha), 0.0,
                        bias=input._storage.data.ptr + input._offset * size):
                return res
            _bias_repeats.pop(key, None)  # (no epilogue now, e.g. cuBLASLt switched off: the full path)
    spec = la.addmm.meta(input, m1, m2, beta, alpha, out)
    return _add_product("addmm", spec, input, m1, m2, beta, alpha, out, repeat=key)


def baddbmm(input, b1, b2, beta=1, alpha=1, out=None):
    spec = la.baddbmm.meta(input, b1, b2, beta, alpha, out)
    return _add_product("baddbmm", spec, input, b1, b2, beta, alpha, out)


def addbmm(input, b1, b2, beta=1, alpha=1, out=None):
    """sum over the batch of b1[i] @ b2[i] is one matrix product: (n, B*k) @ (B*k, p)."""
    spec = la.addbmm.meta(input, b1, b2, beta, alpha, out)
    batch, n, k = b1._shape
    a = creation.contiguous(views.permute(b1, (1, 0, 2)))  # (n, B, k)
    b = creation.contiguous(b2)  # (B, k, p)
    a = alias(a, (n, batch * k), (batch * k, 1), a._offset)
    b = alias(b, (batch * k, b2._shape[2]), (b2._shape[2], 1), b._offset)
    return _add_product("addbmm", spec, input, a, b, beta, alpha, out)


def addmv(input, mat, vec, beta=1, alpha=1, out=None):
    spec = la.addmv.meta(input, mat, vec, beta, alpha, out)
    return _add_product("addmv", spec, input, mat, _column(vec), beta, alpha, out, shape=(spec.shape[0], 1))


def mv(mat, vec, out=None):
    spec = la.mv.meta(mat, vec, out)
    return _add_product("mv", spec, None, mat, _column(vec), 0, 1, out, shape=(spec.shape[0], 1))


def _finish(res, target, out):
    if target is not res:
        creation.copy_(res, target)
    if out is not None:
        bump_version(res)
    return res


la.mm.register(CUDA, mm)
la.bmm.register(CUDA, bmm)
la.addmm.register(CUDA, addmm)
la.baddbmm.register(CUDA, baddbmm)
la.addbmm.register(CUDA, addbmm)
la.addmv.register(CUDA, addmv)
la.mv.register(CUDA, mv)
