"""CUDA kernels of cat and of the shape ops that copy (flip, roll, repeat, tril/triu, diag_embed,
fill, repeat_interleave).

Most are views plus copy_ (the strided, casting copy kernel of creation.py): cat copies each input
into its slice of the result, flip copies a negatively-strided view, roll copies two slices per
rolled dim, repeat copies an expanded view one dim at a time. tril/triu have a kernel of their own.
stack is a composite (cat, then a view) and runs on CUDA through cat.
"""
import numpy as np
import triton
import triton.language as tl

from vibetensor.backends.cuda import creation as cuda_creation
from vibetensor.dispatch import DispatchKey
from vibetensor.ops import creation, views
from vibetensor.ops import joining as j
from vibetensor.ops import scatter as sc
from vibetensor.ops import shape_ops as s
from vibetensor.ops.meta import bump_version, output
from vibetensor.ops.reduction import check_out_dtype
from vibetensor.runtime.cuda import launcher
from vibetensor.tensor import shape as sh
from vibetensor.tensor.iterator import collapse
from vibetensor.tensor.tensor import Tensor, alias, array, empty, empty_cpu, from_array

CUDA = DispatchKey.CUDA
BLOCK = 1024


@triton.jit
def _cat_part_kernel(src_ptr, dst_ptr, numel, cols, dst_cols, dst_start, BLOCK: tl.constexpr):
    """Copy a contiguous (rows, cols) input into columns dst_start.. of the contiguous (rows, dst_cols)
    result (cat's dim and the dims after it flattened into columns)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    row = offs // cols
    tl.store(dst_ptr + row * dst_cols + dst_start + (offs - row * cols), tl.load(src_ptr + offs, mask=mask), mask=mask)


def _cat_into(res, parts, dim):
    """cat into a contiguous result without a view or copy_ op per input (split's backward cats
    the q, k, v gradients every step, k's arriving transposed): a contiguous input of the result's
    dtype is one launch of the part kernel, any other (strided, or to be cast) one launch of the
    strided copy kernel into its slice of the result (a view made here, below the dispatcher)."""
    inner = 1
    for n in res._shape[dim + 1:]:
        inner *= n
    dst_cols = res._shape[dim] * inner
    kernel = launcher.cached_kernel(_cat_part_kernel, BLOCK=BLOCK)
    at = 0  # where the input starts along dim
    for t in parts:
        n = t._shape[dim]
        numel = t.numel()
        if numel and t._dtype is res._dtype and t.is_contiguous():
            kernel((launcher.cdiv(numel, BLOCK),), t, res, numel, n * inner, dst_cols, at * inner)
        elif numel:
            shape = (*res._shape[:dim], n, *res._shape[dim + 1:])
            cuda_creation._device_copy(alias(res, shape, res._stride, res._offset + at * res._stride[dim]), t)
        at += n


def _direct(res, parts):
    """The result contiguous, real, and aliased by no input: _cat_into applies."""
    if not res.is_contiguous() or res._dtype.kind == "c":  # (complex: Triton has no such element type)
        return False
    for t in parts:
        if t._storage is res._storage:
            return False
    return True


def cat(tensors, dim=0, out=None):
    spec = j.cat_meta(tensors, dim, out)
    res = j.allocate(spec, out)
    if spec.parts and res.numel() and _direct(res, spec.parts):
        _cat_into(res, spec.parts, spec.dim)
        if out is not None:
            bump_version(res)
        return res
    at = 0
    for t in spec.parts:  # one strided, casting copy per input into its slice of the result
        n = t._shape[spec.dim]
        if n and t.numel():
            creation.copy_(views.narrow(res, spec.dim, at, n), t)
        at += n
    if out is not None:
        bump_version(res)
    return res


# -- flip / roll / repeat: views and copies ----------------------------------------------------------------------------

def flip(self, dims):
    dims = s.flip_meta(self, dims)
    res = creation.empty_like(self)  # torch keeps the input's memory layout
    if self.numel() == 0:
        return res
    stride, offset = list(self._stride), self._offset
    for d in dims:  # read backwards along each flipped dim
        offset += (self._shape[d] - 1) * stride[d]
        stride[d] = -stride[d]
    creation.copy_(res, alias(self, self._shape, tuple(stride), offset))
    return res


def _roll_dim(x, shift, dim):
    """x rolled by `shift` along dim, into a new contiguous tensor (two slice copies)."""
    res = empty(x._shape, x._dtype, x._device)
    n = x._shape[dim]
    k = shift % n if n else 0
    if k == 0:
        return creation.copy_(res, x)
    creation.copy_(views.narrow(res, dim, k, n - k), views.narrow(x, dim, 0, n - k))
    creation.copy_(views.narrow(res, dim, 0, k), views.narrow(x, dim, n - k, k))
    return res


def roll(self, shifts, dims):
    shifts, dims = s.roll_meta(self, shifts, dims)
    if self.numel() == 0:
        return empty(self._shape, self._dtype, self._device)
    if not dims:  # the flattened tensor
        flat = views.reshape(creation.contiguous(self), (-1,))
        return views.reshape(_roll_dim(flat, shifts[0], 0), tuple(self._shape))
    res = self
    for shift, d in zip(shifts, dims):
        res = _roll_dim(res, shift, d)
    return res if res is not self else creation.clone(self)


def repeat(self, repeats):
    padded, shape = s.repeat_meta(self, tuple(repeats))
    if sh.numel(shape) == 0:
        return empty(shape, self._dtype, self._device)
    # a fresh contiguous copy (also when nothing repeats), then one expanding copy per repeated dim
    cur = creation.copy_(empty(padded, self._dtype, self._device), views.reshape(self, padded))
    for d, r in enumerate(repeats):
        if r == 1:
            continue
        grown = list(cur._shape)
        grown[d] *= r
        nxt = empty(tuple(grown), cur._dtype, cur._device)
        before, n, after = sh.numel(cur._shape[:d]), cur._shape[d], sh.numel(cur._shape[d + 1:])
        # (before, r, n, after): the result's blocks; the source is the same block r times (stride 0)
        dst = alias(nxt, (before, r, n, after), (r * n * after, n * after, after, 1), nxt._offset)
        src = alias(cur, (before, r, n, after), (n * after, 0, after, 1), cur._offset)
        creation.copy_(dst, src)
        cur = nxt
    return cur


# -- tril / triu -------------------------------------------------------------------------------------------------------

@triton.jit
def _triangle_kernel(x, dst, n, n1, n2, n3, rows, cols, x0, x1, x2, x3, xr, xc, d0, d1, d2, d3, dr, dc, diagonal,
                     LOWER: tl.constexpr, BLOCK: tl.constexpr):
    """dst[..., r, c] = x[..., r, c] on the kept side of the diagonal (c - r <= diagonal for the lower
    triangle, >= for the upper), else 0."""
    k = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = k < n
    b0, b1, b2, b3, r, c = cuda_creation.unravel6(k, n1, n2, n3, rows, cols)
    xo = b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3 + r * xr + c * xc
    do = b0 * d0 + b1 * d1 + b2 * d2 + b3 * d3 + r * dr + c * dc
    if LOWER:
        keep = (c - r) <= diagonal
    else:
        keep = (c - r) >= diagonal
    v = tl.load(x + xo, mask=inside & keep)
    tl.store(dst + do, tl.where(keep, v, 0).to(dst.dtype.element_ty), mask=inside)


_triangle = {True: launcher.Kernel(_triangle_kernel, LOWER=True, BLOCK=BLOCK),
             False: launcher.Kernel(_triangle_kernel, LOWER=False, BLOCK=BLOCK)}


def _parts(t):
    from vibetensor.backends.cuda.complex import parts
    return parts(t)


def _triangle_op(name, lower):
    def kernel(self, diagonal=0, out=None):
        s.triangle_meta(name, self)
        if out is not None and out is not self:
            check_out_dtype(out, self._dtype)
        res = output(name, out, self._shape, self._dtype, self._device, inplace=out is self)
        n = self.numel()
        if n:
            bshape, (xb, db) = collapse(self._shape[:-2], self._stride[:-2], res._stride[:-2])
            if len(bshape) > 4:
                raise NotImplementedError(f"{name}: more than 4 non-mergeable batch dims on CUDA")
            pad = 4 - len(bshape)
            bshape, xb, db = (1,) * pad + bshape, (0,) * pad + xb, (0,) * pad + db
            # complex: each part alone, on the float views (strides doubled)
            f = 2 if self._dtype.is_complex else 1
            for x, d in (zip(_parts(self), _parts(res)) if f == 2 else ((self, res),)):
                _triangle[lower]((launcher.cdiv(n, BLOCK),), x, d, n, *bshape[1:], self._shape[-2], self._shape[-1],
                                 *[f * v for v in xb + self._stride[-2:]], *[f * v for v in db + res._stride[-2:]],
                                 diagonal)
        if out is not None:
            bump_version(res)
        return res
    return kernel


# -- diag_embed / fill / repeat_interleave -------------------------------------------------------------------------

def diag_embed(self, offset=0, dim1=-2, dim2=-1):
    shape, d1, d2 = s.diag_embed_meta(self, offset, dim1, dim2)
    res = creation.full(shape, 0, self._dtype, device=self._device)
    if self.numel():
        creation.copy_(views.diagonal(res, offset, d1, d2), self)
    return res


def fill(self, value, out=None):
    s.fill_meta(self, value)
    res = creation.empty_like(self) if out is None else \
        output("fill", out, self._shape, self._dtype, self._device, inplace=out is self)
    n = res.numel()
    if n:
        if isinstance(value, Tensor) and value.is_cuda:  # read on the device: no sync
            creation.copy_(res, value)
        elif res.is_contiguous() and not res._dtype.is_complex:
            v = sc.scalar_for(value, res._dtype)
            is_float = isinstance(v, float) or res._dtype.is_floating_point
            bits = int(np.float64(v).view(np.int64)) if is_float else int(v)
            kernel = cuda_creation.fill_float if is_float else cuda_creation.fill_int
            kernel((launcher.cdiv(n, cuda_creation.BLOCK),), res, bits, n)
        else:
            creation.copy_(res, creation.full((), sc.scalar_for(value, res._dtype), res._dtype, device=res._device))
    if out is not None:
        bump_version(res)
    return res


def repeat_interleave(repeats, output_size=None):
    """Reads the repeats on the host (a synchronisation, as torch's without output_size)."""
    s.repeat_interleave_meta(repeats, output_size)
    host = empty_cpu(tuple(repeats._shape), repeats._dtype)
    creation.copy_(host, repeats)
    r = array(host)
    if r.size and r.min() < 0:
        raise RuntimeError("repeats can not be negative")
    total = int(r.sum())
    if output_size is not None and output_size != total:
        raise RuntimeError("allocated size does not match required size")
    values = np.repeat(np.arange(r.size), r).astype(repeats._dtype.np)
    return creation.to(from_array(values), repeats._dtype, repeats._device)


j.cat.register(CUDA, cat)
for _name in ("flip", "roll", "repeat", "diag_embed", "fill", "repeat_interleave"):
    getattr(s, _name).register(CUDA, globals()[_name])
s.tril.register(CUDA, _triangle_op("tril", True))
s.triu.register(CUDA, _triangle_op("triu", False))
