"""torch.functional's composites and their relatives: einsum, tensordot, kron, cdist, meshgrid,
cartesian_prod, combinations, block_diag, chain_matmul / linalg.multi_dot, diff, vander, trapezoid,
cov / corrcoef, complex / polar.

As in torch's own torch/functional.py, each is written with the front door's functions (views,
products, reductions, cat), so it runs on every device and autograd differentiates it through them.
"""
import itertools
import math
import warnings

from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.pointwise import _exporter
from vibetensor.torch.tensor_methods import method

__all__ = []


def _t():
    """The front door (imported at call time: this module is part of it)."""
    import vibetensor.torch as torch
    return torch


_export_function = _exporter(globals())


def _export(fn, name=None, as_method=False):
    """torch.<name> (pointwise's exporter), and Tensor.<name> too when torch has the method."""
    _export_function(fn, name)
    if as_method:
        method(fn, name)
    return fn


def _tensor(x, op, arg="input", pos=1):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    return x


def _sequence(tensors, op):
    """torch's *tensors or a single list/tuple of them."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for i, t in enumerate(tensors):
        _tensor(t, op, "tensors", i + 1)
    return tuple(tensors)


# -- einsum ---------------------------------------------------------------------------------------------------

def _einsum_terms(equation, operands):
    """([labels per operand], output labels): letters stay letters, the dims under '...' become ints
    (right-aligned across operands, as they broadcast)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError("einsum(): more operands were provided than specified in the equation" if
                         len(operands) > len(terms) else
                         "einsum(): fewer operands were provided than specified in the equation")
    n_ell = 0
    for i, (term, op) in enumerate(zip(terms, operands)):
        letters = term.replace("...", "")
        if not all(ch.isalpha() for ch in letters) or term.count("...") > 1:
            raise RuntimeError(f"einsum(): invalid subscript given at index {eq.find(term)} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
        has_ell = "..." in term
        if (op.ndim != len(letters)) if not has_ell else (op.ndim < len(letters)):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(letters)}) "
                               f"{'is more than' if op.ndim < len(letters) else 'does not match'} the number of "
                               f"dimensions ({op.ndim}) for operand {i}" + ("" if has_ell else
                                                                           " and no ellipsis was given"))
        if has_ell:
            n_ell = max(n_ell, op.ndim - len(letters))
    labels = []
    for term, op in zip(terms, operands):
        before, ell, after = term.partition("...")
        k = op.ndim - len(before) - len(after) if ell else 0
        labels.append(list(before) + list(range(n_ell - k, n_ell)) + list(after))
    if arrow:
        before, ell, after = rhs.partition("...")
        out = list(before) + (list(range(n_ell)) if ell else []) + list(after)
        seen = {ch for ls in labels for ch in ls if isinstance(ch, str)}
        for ch in before + after:
            if ch not in seen:
                raise RuntimeError(f"einsum(): output subscript {ch} does not appear in the equation for any input "
                                   "operand")
        if len(set(before + after)) != len(before + after):
            raise RuntimeError("einsum(): output subscript appears more than once in the output")
    else:
        counts = {}
        for ls in labels:
            for ch in ls:
                counts[ch] = counts.get(ch, 0) + 1
        out = list(range(n_ell)) + sorted(ch for ch, n in counts.items() if isinstance(ch, str) and n == 1)
    return labels, out


def _take_diagonals(x, labels):
    """A repeated label in one operand means its diagonal: (x, labels) with every label once."""
    torch = _t()
    labels = list(labels)
    while True:
        dup = next((lab for lab in labels if labels.count(lab) > 1), None)
        if dup is None:
            return x, labels
        i = labels.index(dup)
        j = labels.index(dup, i + 1)
        x = torch.diagonal(x, 0, i, j)  # the diagonal dim goes last
        labels = [lab for k, lab in enumerate(labels) if k not in (i, j)] + [dup]


def _aligned(x, labels, order):
    """x with its dims permuted into `order` and size-1 dims where it lacks a label."""
    present = [lab for lab in order if lab in labels]
    perm = [labels.index(lab) for lab in present]
    x = x.permute(perm) if perm != list(range(len(perm))) else x
    if len(present) == len(order):
        return x
    sizes = dict(zip(present, x.shape))
    return x.reshape([sizes.get(lab, 1) for lab in order])


def einsum(equation, *operands):
    """Sums of products over the labels of `equation` ("ij,jk->ik", with '...' and implicit output).
    Operands are aligned on one label order and multiplied pairwise; each label is summed out as soon
    as no later operand uses it."""
    torch = _t()
    if not isinstance(equation, str):
        raise NotImplementedError("einsum(): the sublist format (operand, [dims], ...) is not supported; "
                                  "pass an equation string")
    operands = _sequence(operands, "einsum")
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    labels, out = _einsum_terms(equation, operands)
    dtype = operands[0].dtype
    for op in operands[1:]:
        if op.dtype is not dtype:
            raise RuntimeError(f"expected scalar type {_type_name(dtype)} but found {_type_name(op.dtype)}")
    pairs = [_take_diagonals(x, ls) for x, ls in zip(operands, labels)]
    _check_sizes(pairs)
    summed = [lab for x, ls in pairs for lab in ls if lab not in out]
    order = out + list(dict.fromkeys(summed))
    result, done = None, set()
    for k, (x, ls) in enumerate(pairs):
        x = _aligned(x, ls, order)
        result = x if result is None else result * x
        later = {lab for _, ls2 in pairs[k + 1:] for lab in ls2}
        drop = [i for i, lab in enumerate(order) if i >= len(out) and lab not in later and lab not in done]
        if drop:  # no later operand uses these labels: sum them out now (kept as size-1 dims)
            result = torch.sum(result, drop, keepdim=True)
            done.update(order[i] for i in drop)
    return result.reshape(result.shape[:len(out)]) if result.ndim != len(out) else result


def _type_name(d):
    from vibetensor.ops.meta import TYPE_NAMES
    return TYPE_NAMES[d]


def _check_sizes(pairs):
    sizes = {}
    for i, (x, ls) in enumerate(pairs):
        for lab, n in zip(ls, x.shape):
            seen = sizes.get(lab)
            if seen is not None and n != seen and n != 1 and seen != 1:
                what = f"subscript {lab}" if isinstance(lab, str) else "dimension in ellipsis"
                raise RuntimeError(f"einsum(): {what} has size {n} for operand {i} which does not broadcast with "
                                   f"previously seen size {seen}")
            sizes[lab] = n if seen in (None, 1) else seen


_export(einsum)


# -- products ----------------------------------------------------------------------------------------------------

def tensordot(a, b, dims=2, out=None):
    """Contract a's dims_a with b's dims_b: (free a) x (free b), as one matrix product."""
    torch = _t()
    _tensor(a, "tensordot", "a", 1), _tensor(b, "tensordot", "b", 2)
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = dims
        da, db = ([da], [db]) if isinstance(da, int) else (list(da), list(db))
    if len(da) != len(db):
        raise RuntimeError(f"both dimension lists should have same length, but got {len(da)} and {len(db)}")
    da, db = [d % a.ndim if a.ndim else d for d in da], [d % b.ndim if b.ndim else d for d in db]
    for x, y in zip(da, db):  # a size-1 dim against a larger one: sum the larger one first (torch broadcasts)
        if b.shape[y] == 1 and a.shape[x] != 1:
            a = a.sum(x, keepdim=True)
        elif a.shape[x] == 1 and b.shape[y] != 1:
            b = b.sum(y, keepdim=True)
        elif a.shape[x] != b.shape[y]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[x]} in dim {x} "
                               f"and second has size {b.shape[y]} in dim {y}")
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    k = math.prod(a.shape[d] for d in da)
    am = a.permute(fa + da).reshape(math.prod(a.shape[d] for d in fa), k)  # (free a, K)
    bm = b.permute(db + fb).reshape(k, math.prod(b.shape[d] for d in fb))  # (K, free b)
    result = torch.mm(am, bm).reshape([a.shape[d] for d in fa] + [b.shape[d] for d in fb])
    return result if out is None else out.copy_(result)


def kron(input, other, *, out=None):
    """The Kronecker product: block (i, j) is input[i, j] * other, over any number of dims."""
    _tensor(input, "kron"), _tensor(other, "kron", "other", 2)
    n = max(input.ndim, other.ndim)
    a = input.reshape((1,) * (n - input.ndim) + tuple(input.shape))
    b = other.reshape((1,) * (n - other.ndim) + tuple(other.shape))
    a = a.reshape([s for d in a.shape for s in (d, 1)])  # (a0, 1, a1, 1, ...)
    b = b.reshape([s for d in b.shape for s in (1, d)])  # (1, b0, 1, b1, ...)
    result = (a * b).reshape([x * y for x, y in zip(a.shape[::2], b.shape[1::2])])
    return result if out is None else out.copy_(result)


def chain_matmul(*matrices, out=None):
    torch = _t()
    matrices = _sequence(matrices, "chain_matmul")
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    result = matrices[0]
    for m in matrices[1:]:
        result = torch.mm(result, m)
    return result.clone() if len(matrices) == 1 else result


def multi_dot(tensors, *, out=None):
    """linalg.multi_dot: the product of a chain of matrices; the first may be a row vector and the
    last a column vector (1-D), whose dims the result drops."""
    torch = _t()
    tensors = _sequence((tensors,), "linalg.multi_dot")
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    first, last = tensors[0].ndim == 1, tensors[-1].ndim == 1
    mats = [tensors[0].unsqueeze(0) if first else tensors[0], *tensors[1:-1],
            tensors[-1].unsqueeze(1) if last else tensors[-1]]
    for i, m in enumerate(mats):
        if m.ndim != 2:
            where = "first" if i == 0 else "last" if i == len(mats) - 1 else None
            raise RuntimeError(f"multi_dot(): the {where} tensor must be 1D or 2D but got {tensors[i].ndim}D" if where
                               else f"multi_dot(): tensor {i} must be 2D but got {m.ndim}D")
    result = mats[0]
    for m in mats[1:]:
        result = torch.mm(result, m)
    if first:
        result = result.squeeze(0)
    if last:
        result = result.squeeze(-1)
    return result if out is None else out.copy_(result)


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """The p-norm distance between each row of x1 (..., P, M) and each row of x2 (..., R, M): (..., P, R)."""
    torch = _t()
    _tensor(x1, "cdist", "x1", 1), _tensor(x2, "cdist", "x2", 2)
    for name, x in (("X1", x1), ("X2", x2)):
        if x.ndim < 2:
            raise RuntimeError(f"cdist only supports at least 2D tensors, {name} got: {x.ndim}D")
        if not x.dtype.is_floating_point:
            raise RuntimeError(f"cdist only supports floating-point dtypes, {name} got: {_type_name(x.dtype)}")
        if x.dtype in (dt.bfloat16, dt.float16):
            raise NotImplementedError(f'"cdist" not implemented for \'{_type_name(x.dtype)}\'')
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (..., P, R, M)
    return torch.linalg.vector_norm(diff, p, -1)


for _fn in (tensordot, chain_matmul, cdist):
    _export(_fn)
_export(kron, as_method=True)


# -- grids and combinations ---------------------------------------------------------------------------------

def meshgrid(*tensors, indexing=None):
    """Coordinate grids: output i is tensors[i] viewed along dim i and expanded over the others
    (indexing='ij'; 'xy' swaps the first two dims)."""
    tensors = _sequence(tensors, "meshgrid")
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    for i, t in enumerate(tensors):
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t.ndim}D")
    if not tensors:
        return ()
    for t in tensors[1:]:
        if t.dtype is not tensors[0].dtype:
            raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    order = list(tensors)
    if swap:
        order[0], order[1] = order[1], order[0]
    shape = [t.numel() for t in order]
    grids = []
    for i, t in enumerate(order):
        view = [1] * len(order)
        view[i] = -1
        grids.append(t.reshape(view).expand(shape))
    if swap:  # the 'ij' grids of the swapped inputs, swapped back: dims (y, x, ...)
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def cartesian_prod(*tensors):
    """Every tuple (a, b, ...) of elements of the 1-D tensors, as rows."""
    torch = _t()
    tensors = _sequence(tensors, "cartesian_prod")
    for t in tensors:
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape [{', '.join(map(str, t.shape))}]")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return torch.stack([g.flatten() for g in grids], 1)


def combinations(input, r=2, with_replacement=False):
    """The length-r combinations of a 1-D tensor's elements, as rows (itertools' order)."""
    torch = _t()
    _tensor(input, "combinations")
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape [{', '.join(map(str, input.shape))}]")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return torch.empty(0, dtype=input.dtype, device=input.device)
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(input.shape[0]), r))
    index = torch.tensor(rows, dtype=torch.int64, device=input.device).reshape(len(rows), r)  # (n_combinations, r)
    return input[index]


def block_diag(*tensors):
    """The tensors (2-D; 0-D and 1-D are one row) along the diagonal of a zero matrix."""
    torch = _t()
    tensors = _sequence(tensors, "block_diag")
    mats = []
    for i, t in enumerate(tensors):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t.ndim} dimensions")
        mats.append(t.reshape(1, -1) if t.ndim == 1 else t.reshape(1, 1) if t.ndim == 0 else t)
    if not mats:
        return torch.empty(1, 0)
    dtype = mats[0].dtype
    for m in mats[1:]:
        dtype = dt.promote_types(dtype, m.dtype)
    width = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        n, c = m.shape
        parts = [torch.zeros(n, left, dtype=dtype, device=m.device), m.to(dtype),
                 torch.zeros(n, width - left - c, dtype=dtype, device=m.device)]
        rows.append(torch.cat(parts, 1))
        left += c
    return torch.cat(rows, 0)


for _fn in (meshgrid, cartesian_prod, combinations, block_diag):
    _export(_fn)


# -- differences, Vandermonde, integration ------------------------------------------------------------------

def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along dim (bool: xor), after prepend/append are joined on."""
    torch = _t()
    _tensor(input, "diff")
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    parts = [t for t in (prepend, input, append) if t is not None]
    if n == 0:
        return input
    x = torch.cat(parts, dim) if len(parts) > 1 else input
    d = dim % x.ndim
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = x.narrow(d, 1, m - 1), x.narrow(d, 0, m - 1)
        x = torch.logical_xor(hi, lo) if x.dtype is dt.bool_ else hi - lo
    return x


def _int64_if_integral(x):
    return x.to(dt.int64) if x.dtype.kind in "biu" else x


def _powers(x, n):
    """(..., n): x**0, x**1, ... x**(n-1) along a new last dim, by cumulative products (torch's way)."""
    torch = _t()
    ones = torch.ones(*x.shape, 1, dtype=x.dtype, device=x.device)
    if n <= 1:
        return ones[..., :n]
    return torch.cat([ones, torch.cumprod(x.unsqueeze(-1).expand(*x.shape, n - 1), -1)], -1)


def vander(x, N=None, increasing=False):
    _tensor(x, "vander", "x", 1)
    if x.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    result = _powers(_int64_if_integral(x), n)
    return result if increasing else result.flip(-1)


def linalg_vander(x, *, N=None):
    _tensor(x, "linalg.vander", "x", 1)
    if x.dtype in (dt.bfloat16, dt.float16, dt.bool_):
        raise RuntimeError(f"linalg.vander supports floating point, complex, and integer tensors, but got "
                           f"{_type_name(x.dtype)}")
    x = x.reshape(1) if x.ndim == 0 else x
    n = x.shape[-1] if N is None else N
    if n <= 1:
        raise RuntimeError("N must be greater than 1.")
    return _powers(_int64_if_integral(x), n)


def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The integral of y along dim by the trapezoid rule, at spacing dx (default 1) or sample points x."""
    torch = _t()
    _tensor(y, "trapezoid", "y", 1)
    d = dim % y.ndim if y.ndim else 0
    n = y.shape[d] if y.ndim else 0
    if n == 0:
        return torch.zeros(*(y.shape[:d] + y.shape[d + 1:]), dtype=_float_of(y.dtype), device=y.device)
    mids = (y.narrow(d, 1, n - 1) + y.narrow(d, 0, n - 1))
    if isinstance(x, Tensor):
        if x.ndim == 1:
            spacing = diff(x).reshape([-1 if i == d else 1 for i in range(y.ndim)])
        else:
            spacing = diff(x, dim=dim)
        return (spacing * mids).sum(d) / 2
    step = 1 if x is None and dx is None else (dx if dx is not None else x)
    return mids.sum(d) * step / 2


def _float_of(d):
    return d if d.kind in "fc" else dt.get_default_dtype()


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    torch = _t()
    _tensor(y, "cumulative_trapezoid", "y", 1)
    d = dim % y.ndim if y.ndim else 0
    n = y.shape[d]
    mids = (y.narrow(d, 1, max(n - 1, 0)) + y.narrow(d, 0, max(n - 1, 0)))
    if isinstance(x, Tensor):
        spacing = diff(x).reshape([-1 if i == d else 1 for i in range(y.ndim)]) if x.ndim == 1 else diff(x, dim=dim)
        return torch.cumsum(spacing * mids, d) / 2
    step = 1 if x is None and dx is None else (dx if dx is not None else x)
    return torch.cumsum(mids * step, d) / 2 if step != 1 else torch.cumsum(mids, d) / 2


def trapz(y, x=None, *, dx=None, dim=-1):
    """trapz(y, x, dim=-1) or trapz(y, dx=1, dim=-1): trapezoid's older name."""
    return trapezoid(y, x, dx=dx, dim=dim)


_export(diff, as_method=True)
for _fn in (vander, trapezoid, cumulative_trapezoid, trapz):
    _export(_fn)


# -- covariance -------------------------------------------------------------------------------------------------

def cov(input, *, correction=1, fweights=None, aweights=None):
    """The covariance of the variables in input's rows (observations in columns), with optional
    frequency and observation weights (torch's formula)."""
    torch = _t()
    _tensor(input, "cov")
    if input.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                           f"{input.ndim} dimensions")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    if x.dtype.kind in "biu":
        x = x.to(dt.get_default_dtype())
    n_obs = x.shape[1]
    w = None
    for name, wt in (("fweights", fweights), ("aweights", aweights)):
        if wt is None:
            continue
        if wt.ndim > 1:
            raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got {name} with "
                               f"{wt.ndim} dimensions")
        if wt.numel() != n_obs:
            raise RuntimeError(f"cov(): expected {name} to have the same numel as there are observations in the "
                               f"input but got {wt.numel()} != {n_obs}")
        w = wt if w is None else w * wt
    if w is None:
        avg = x.mean(1)
        w_sum = n_obs
        norm = w_sum - correction
    else:
        w_sum = w.sum()
        avg = (x * w).sum(1) / w_sum
        if correction == 0:
            norm = w_sum
        elif aweights is None:
            norm = w_sum - correction
        else:
            norm = w_sum - correction * (w * aweights).sum() / w_sum
    if (norm.item() if isinstance(norm, Tensor) else norm) <= 0:
        warnings.warn("cov(): degrees of freedom is <= 0. Correction should be strictly less than the number of "
                      "observations.", RuntimeWarning, stacklevel=2)
        norm = norm * 0 if isinstance(norm, Tensor) else 0
    xc = x - avg.unsqueeze(1)
    other = xc * w if w is not None else xc
    c = torch.mm(xc, other.t().conj() if xc.dtype.is_complex else other.t())
    return (c / norm).squeeze()


def corrcoef(input):
    """Pearson correlation coefficients: cov normalised by the standard deviations, clipped to [-1, 1]."""
    torch = _t()
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = torch.diagonal(c)
    std = torch.sqrt(d.real if d.dtype.is_complex else d)
    c = c / std.unsqueeze(1)
    c = c / std.unsqueeze(0)
    if c.dtype.is_complex:
        return torch.complex(torch.clamp(c.real, -1, 1), torch.clamp(c.imag, -1, 1))
    return torch.clamp(c, -1, 1)


_export(cov, as_method=True)
_export(corrcoef, as_method=True)


# -- complex numbers from parts -----------------------------------------------------------------------------------

_COMPLEX_PARTS = (dt.float16, dt.float32, dt.float64)


def complex(real, imag, *, out=None):
    """real + i * imag, broadcast (both Half, Float or Double, of one dtype)."""
    torch = _t()
    _tensor(real, "complex", "real", 1), _tensor(imag, "complex", "imag", 2)
    if real.dtype not in _COMPLEX_PARTS or imag.dtype not in _COMPLEX_PARTS:
        raise RuntimeError(f"Expected both inputs to be Half, Float or Double tensors but got "
                           f"{_type_name(real.dtype)} and {_type_name(imag.dtype)}")
    if real.dtype is not imag.dtype:
        raise RuntimeError(f"Expected object of scalar type {_type_name(real.dtype)} but got scalar type "
                           f"{_type_name(imag.dtype)} for second argument")
    if real.dtype is dt.float16:
        raise NotImplementedError("complex(): vibetensor has no complex32 dtype for Half parts")
    re, im = torch.broadcast_tensors(real, imag)
    result = torch.view_as_complex(torch.stack([re, im], -1))
    return result if out is None else out.copy_(result)


def polar(abs, angle, *, out=None):
    """abs * (cos(angle) + i sin(angle))."""
    torch = _t()
    _tensor(abs, "polar", "abs", 1), _tensor(angle, "polar", "angle", 2)
    return complex(abs * torch.cos(angle), abs * torch.sin(angle), out=out)


_export(complex)
_export(polar)


# -- torch.* spellings of linear algebra (torch.det, torch.inverse, torch.cholesky, ...) ---------------------------

def _linalg():
    return _t().linalg


def det(input):
    return _linalg().det(input)


def slogdet(input):
    return _linalg().slogdet(input)


def logdet(input):
    """log(det(input)): NaN for a negative determinant, -inf for zero (real matrices)."""
    torch = _t()
    sign, logabsdet = _linalg().slogdet(input)
    if input.dtype.is_complex:
        return logabsdet + torch.log(sign)
    return torch.where(sign < 0, float("nan"), logabsdet)


def inverse(input, *, out=None):
    return _linalg().inv(input, out=out)


def cholesky(input, upper=False, *, out=None):
    return _linalg().cholesky(input, upper=upper, out=out)


def qr(input, some=True, *, out=None):
    """The deprecated torch.qr: some=True is mode 'reduced', False 'complete'."""
    return _linalg().qr(input, "reduced" if some else "complete", out=out)


def matrix_power(input, n):
    return _linalg().matrix_power(input, n)


def pinverse(input, rcond=1e-15):
    return _linalg().pinv(input, rtol=rcond)


def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True, *, out=None):
    return _linalg().lu_unpack(LU_data, LU_pivots, unpack_data, unpack_pivots, out=out)


def lu(A, pivot=True, get_infos=False, out=None):
    """The deprecated torch.lu: (LU, pivots) or (LU, pivots, infos)."""
    lu_, piv, info = _linalg().lu_factor_ex(A, pivot=pivot)
    return (lu_, piv, info) if get_infos else (lu_, piv)


def lu_solve(b, LU_data, LU_pivots, *, out=None):
    return _linalg().lu_solve(LU_data, LU_pivots, b, out=out)


def cholesky_solve(B, L, upper=False, *, out=None):
    """X with (L L^H) X = B (or U^H U when upper), L the Cholesky factor."""
    a = L.mH @ L if upper else L @ L.mH
    result = _linalg().solve(a, B)
    return result if out is None else out.copy_(result)


def cholesky_inverse(L, upper=False, *, out=None):
    a = L.mH @ L if upper else L @ L.mH
    result = _linalg().inv(a)
    return result if out is None else out.copy_(result)


for _fn in (det, slogdet, logdet, inverse, cholesky, qr, matrix_power, pinverse, cholesky_solve, cholesky_inverse,
            lu_solve):
    _export(_fn, as_method=True)
_export(lu_unpack)
_export(lu, as_method=True)


# -- conjugation, splitting and gathering relatives ------------------------------------------------------------------

def conj(input):
    """The complex conjugate (a copy: vibetensor has no lazy conjugate bit); real tensors are returned as they are."""
    from vibetensor.ops import elementwise as ew
    _tensor(input, "conj")
    return ew.conj(input) if input.dtype.is_complex else input


def conj_physical(input, *, out=None):
    from vibetensor.ops import elementwise as ew
    _tensor(input, "conj_physical")
    result = ew.conj(input) if input.dtype.is_complex else input.clone()
    return result if out is None else out.copy_(result)


def resolve_conj(input):
    """input itself: vibetensor materialises conjugation, so there is never a lazy bit to resolve."""
    return _tensor(input, "resolve_conj")


def resolve_neg(input):
    return _tensor(input, "resolve_neg")


def _is_conj(self):
    return False


def ravel(input):
    return _tensor(input, "ravel").reshape(-1)


def _split_at(name, dim, min_ndim):
    def fn(input, indices_or_sections):
        _tensor(input, name)
        d = dim if input.ndim > 1 or name != "hsplit" else 0
        if input.ndim < min_ndim:
            raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, but got a tensor "
                               f"with {input.ndim} dimensions!")
        if isinstance(indices_or_sections, int) and input.shape[d] % indices_or_sections if indices_or_sections \
                else False:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {d}, but the size of the dimension "
                               f"{input.shape[d]} is not divisible by the split_size {indices_or_sections}!")
        return input.tensor_split(indices_or_sections, d)
    fn.__name__ = name
    return fn


hsplit = _split_at("hsplit", 1, 1)
vsplit = _split_at("vsplit", 0, 2)
dsplit = _split_at("dsplit", 2, 3)


def take_along_dim(input, indices, dim=None, *, out=None):
    """input.gather(dim, indices) with input and indices broadcast except along dim (flattened when dim is None)."""
    torch = _t()
    _tensor(input, "take_along_dim"), _tensor(indices, "take_along_dim", "indices", 2)
    if dim is None:
        result = input.reshape(-1).gather(0, indices.reshape(-1))
    else:
        d = dim % input.ndim if input.ndim else 0
        indices = torch.where(indices < 0, indices + input.shape[d], indices)  # torch wraps negative indices
        shape_in, shape_idx = list(input.shape), list(indices.shape)
        shape_in[d] = shape_idx[d] = 1
        common = torch.broadcast_shapes(tuple(shape_in), tuple(shape_idx))
        in_shape, idx_shape = list(common), list(common)
        in_shape[d], idx_shape[d] = input.shape[d], indices.shape[d]
        result = input.broadcast_to(in_shape).gather(d, indices.broadcast_to(idx_shape))
    return result if out is None else out.copy_(result)


def unsafe_chunk(input, chunks, dim=0):
    return _tensor(input, "unsafe_chunk").chunk(chunks, dim)


def _sum_to_size(self, *size):
    """self summed down to `size` (a shape self expands from): leading dims summed away, size-1 dims kept."""
    torch = _t()
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    if torch.broadcast_shapes(size, tuple(self.shape)) != tuple(self.shape):
        raise RuntimeError(f"size {{{', '.join(map(str, size))}}} is not expandable to size "
                           f"{{{', '.join(map(str, self.shape))}}}.")
    lead = self.ndim - len(size)
    dims = list(range(lead)) + [lead + i for i, n in enumerate(size) if n == 1 and self.shape[lead + i] != 1]
    result = self.sum(dims, keepdim=True) if dims else self
    return result.reshape(size)


def angle(input, *, out=None):
    """The argument of each element: atan2(imag, real) for complex; pi for negative reals, 0 otherwise (NaN stays)."""
    torch = _t()
    _tensor(input, "angle")
    if input.dtype.is_complex:
        result = torch.atan2(input.imag, input.real)
    else:
        x = input if input.dtype.is_floating_point else input.to(dt.get_default_dtype())
        result = torch.where(torch.isnan(x), x, torch.where(x < 0, math.pi, 0.0).to(x.dtype))  # gradient: zero
    return result if out is None else out.copy_(result)


for _fn in (conj, conj_physical, resolve_conj, resolve_neg, ravel, angle):
    _export(_fn, as_method=True)
for _fn in (hsplit, vsplit, dsplit, take_along_dim, unsafe_chunk):
    _export(_fn, as_method=True)
method(_is_conj, "is_conj")
method(_is_conj, "is_neg")
method(_sum_to_size, "sum_to_size")


# -- older linear-algebra spellings ---------------------------------------------------------------------------

def svd(input, some=True, compute_uv=True, *, out=None):
    """The deprecated torch.svd: (U, S, V) with V (not V^H); without compute_uv, U and V are zeros."""
    torch = _t()
    u, s, vh = torch.linalg.svd(input, full_matrices=not some)
    if not compute_uv:
        m, n = input.shape[-2:]
        u = torch.zeros(*input.shape[:-2], m, m, dtype=input.dtype, device=input.device)
        vh = torch.zeros(*input.shape[:-2], n, n, dtype=input.dtype, device=input.device)
    return u, s, vh.mH


def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False, *, out=None):
    """(X, A.clone()) with A X = b (A^T X = b when transpose)."""
    torch = _t()
    coeff = A.mT if transpose else A
    x = torch.linalg.solve_triangular(coeff, b, upper=upper != transpose, unitriangular=unitriangular)
    return x, A.clone()


def empty_permuted(size, physical_layout, *, dtype=None, layout=None, device=None, requires_grad=False,
                   pin_memory=False):
    """An uninitialised tensor of `size` whose memory holds its dims in physical_layout's order."""
    torch = _t()
    size, order = tuple(size), tuple(physical_layout)
    if sorted(order) != list(range(len(size))):
        raise RuntimeError(f"Number of dimensions in size does not match the length of the physical_layout; "
                           f"i.e. len(size) = {len(size)} is not equal to len(physical_layout) = {len(order)}")
    physical = torch.empty([size[d] for d in order], dtype=dtype, device=device)
    inverse = [order.index(d) for d in range(len(size))]
    return physical.permute(inverse).requires_grad_(requires_grad)


_export(svd, as_method=True)
_export(triangular_solve, as_method=True)
_export(empty_permuted)


# -- numerical gradient ---------------------------------------------------------------------------------------

def _gradient_along(f, d, h, edge_order):
    """df/dx along dim d of f, x spaced by the number h or at the coordinates h (a 1-D tensor): central
    differences inside, one-sided (first or second order) at the two ends (NumPy's formulas)."""
    torch = _t()
    n = f.shape[d]
    if n < edge_order + 1:
        raise RuntimeError("torch.gradient expected each dimension size to be at least edge_order+1")
    at = lambda k, length=1: f.narrow(d, k % n, length)  # noqa: E731
    shape = [1] * f.ndim
    shape[d] = -1
    if isinstance(h, Tensor):
        dx = torch.diff(h.to(f.dtype))                      # (n - 1,)
        dx1, dx2 = dx[:-1].reshape(shape), dx[1:].reshape(shape)
        a = -dx2 / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        inner = a * at(0, n - 2) + b * at(1, n - 2) + c * at(2, n - 2)
        h0, h1, hm2, hm1 = dx[0], dx[1] if n > 2 else dx[0], dx[-2] if n > 2 else dx[-1], dx[-1]
    else:
        inner = (at(2, n - 2) - at(0, n - 2)) / (2 * h)
        h0 = h1 = hm2 = hm1 = h
    if edge_order == 1:
        first = (at(1) - at(0)) / h0
        last = (at(-1) - at(-2)) / hm1
    else:
        first = (-(2 * h0 + h1) / (h0 * (h0 + h1))) * at(0) + ((h0 + h1) / (h0 * h1)) * at(1) \
            - (h0 / (h1 * (h0 + h1))) * at(2)
        last = (hm1 / (hm2 * (hm2 + hm1))) * at(-3) - ((hm1 + hm2) / (hm2 * hm1)) * at(-2) \
            + ((2 * hm1 + hm2) / (hm1 * (hm2 + hm1))) * at(-1)
    return torch.cat([first, inner, last], d)


def gradient(input, *, spacing=1, dim=None, edge_order=1):
    """The numerical gradient of input along each of `dim` (all dims by default), one tensor per dim;
    spacing: a number, one number per dim, or one coordinate tensor per dim."""
    _tensor(input, "gradient")
    if edge_order not in (1, 2):
        raise RuntimeError("torch.gradient only supports edge_order=1 and edge_order=2.")
    dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    dims = [d % input.ndim for d in dims]
    if spacing is None:
        spacing = 1
    hs = list(spacing) if isinstance(spacing, (list, tuple)) else [spacing] * len(dims)
    if len(hs) != len(dims):
        raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar or it's spacing and dim "
                           f"arguments to have the same length, but got a spacing argument of length {len(hs)} "
                           f"and a dim argument of length {len(dims)}.")
    x = input if input.dtype.is_floating_point or input.dtype.is_complex else input.to(dt.get_default_dtype())
    return tuple(_gradient_along(x, d, h, edge_order) for d, h in zip(dims, hs))


_export(gradient)


# -- resizing in place ------------------------------------------------------------------------------------------

def _resize_(self, *sizes, memory_format=None):
    """Tensor.resize_: self reshaped to `sizes` with contiguous strides, its storage grown if needed
    (new elements uninitialised), as torch's."""
    from vibetensor.ops import meta as _m
    shape = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(shape)}")
    if self.requires_grad:
        raise RuntimeError("cannot resize variables that require grad")
    _m.resize_(self, shape)
    _m.bump_version(self)
    return self


def resize_as_(input, the_template, *, memory_format=None):
    return _resize_(input, tuple(the_template.shape))


method(_resize_, "resize_")
_export(resize_as_, as_method=True)


def geqrf(input, *, out=None):
    """LAPACK's geqrf: (a, tau), R above the diagonal of a and the Householder vectors below it."""
    from vibetensor.ops import decompositions as d
    result = d.geqrf(input)
    return result if out is None else tuple(o.copy_(r) for o, r in zip(out, result))


def orgqr(input, tau):
    return _linalg().householder_product(input, tau)


def ormqr(input, tau, other, left=True, transpose=False, *, out=None):
    """op(Q) @ other (left) or other @ op(Q), Q (m, m) the product of the reflectors in input and tau,
    op the conjugate transpose when transpose."""
    from vibetensor.torch.linalg import _householder_q
    q = _householder_q(input, tau, input.shape[-2])
    q = q.mH if transpose else q
    result = q @ other if left else other @ q
    return result if out is None else out.copy_(result)


for _fn in (geqrf, orgqr, ormqr):
    _export(_fn, as_method=True)


# -- triangle indices -----------------------------------------------------------------------------------------

def _triangle_indices(row, col, offset, lower, dtype, device):
    torch = _t()
    pairs = [(i, j) for i in range(row) for j in range(col) if (j - i <= offset if lower else j - i >= offset)]
    return torch.tensor([[i for i, _ in pairs], [j for _, j in pairs]], dtype=dtype or torch.int64,
                        device=device).reshape(2, len(pairs))


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    """(2, N): the row and column indices of the lower triangle of a row x col matrix (row-major)."""
    return _triangle_indices(row, col, offset, True, dtype, device)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _triangle_indices(row, col, offset, False, dtype, device)


_export(tril_indices)
_export(triu_indices)
