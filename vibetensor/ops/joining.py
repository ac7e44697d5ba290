"""Joining operators: cat (one kernel per device) and stack (a composite: cat, then a view).

cat follows torch's rules: dtypes promote across the inputs; 1-D empty tensors of shape (0,) are
skipped (a legacy rule: once they were the only empty tensors); every other input must match the
first non-skipped one except along `dim`; the result is channels-last when every input is.
"""
from collections import namedtuple

from vibetensor.dispatch import declare
from vibetensor.ops import creation, views
from vibetensor.ops.indexing import assert_no_internal_overlap, assert_no_overlap
from vibetensor.ops.meta import TYPE_NAMES, common_device, output
from vibetensor.ops.views import _fmt
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import memory_format as mf
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

CatSpec = namedtuple("CatSpec", "shape stride dtype device dim parts")


def _skipped(t):
    return t.ndim == 1 and t._shape[0] == 0


def cat_meta(tensors, dim, out=None):
    """Validate a cat and describe its result: CatSpec(shape, stride, dtype, device, dim, parts),
    `parts` being the inputs that contribute (not skipped)."""
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    parts = [t for t in tensors if not _skipped(t)]
    if parts:
        dim = sh.wrap_dim(dim, parts[0].ndim, "cat")
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    dtype = dt.result_type(*tensors)
    device = common_device("cat", tensors)
    if out is not None and not dt.can_cast(dtype, out._dtype):
        raise TypeError(f"torch.cat(): input types can't be cast to the desired output type {TYPE_NAMES[out._dtype]}")
    if not parts:
        return CatSpec((0,), (1,), dtype, device, dim, parts)
    first = next(i for i, t in enumerate(tensors) if not _skipped(t))
    for i, t in enumerate(tensors):
        if not _skipped(t):
            _check_shape_except_dim(tensors[first], t, dim, i)
    shape = list(parts[0]._shape)
    shape[dim] = sum(t._shape[dim] for t in parts)
    shape = tuple(shape)
    if out is not None:
        assert_no_internal_overlap(out)
        for t in tensors:
            assert_no_overlap(out, t)
    return CatSpec(shape, _output_strides(shape, tensors), dtype, device, dim, parts)


def _check_shape_except_dim(first, t, dim, i):
    if first.ndim != t.ndim:
        raise RuntimeError(f"Tensors must have same number of dimensions: got {first.ndim} and {t.ndim}")
    for d in range(first.ndim):
        if d != dim and first._shape[d] != t._shape[d]:
            raise RuntimeError(f"Sizes of tensors must match except in dimension {dim}. Expected size "
                               f"{first._shape[d]} but got size {t._shape[d]} for tensor number {i} in the list.")


# -- memory format: torch's suggest_memory_format, as cat uses it ------------------------------------------------

def _output_strides(shape, tensors):
    if len(shape) == 4 and all(mf.is_channels_last_strides(t._shape, t._stride) for t in tensors):
        return mf.channels_last_strides(shape)
    if len(shape) == 5 and all(mf.is_channels_last_strides(t._shape, t._stride, mf.channels_last_3d)
                               for t in tensors):
        return mf.channels_last_strides(shape, mf.channels_last_3d)
    return sh.contiguous_strides(shape)


def allocate(spec, out):
    """The tensor cat writes: new (in spec's layout) or `out`, resized as torch resizes it."""
    if out is None:
        return creation.empty_strided(spec.shape, spec.stride, spec.dtype, spec.device)
    return output("cat", out, spec.shape, out._dtype, spec.device)


# -- stack ---------------------------------------------------------------------------------------------------------

def _stack(tensors, dim=0, out=None):
    """stack = cat along dim, viewed with the new dim split off (or cat of unsqueezed inputs when
    the new dim is last, which no view can produce)."""
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    first = tensors[0]
    d = sh.wrap_dim(dim, first.ndim + 1, "stack")
    for i, t in enumerate(tensors):
        if t._shape != first._shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {_fmt(first._shape)} at "
                               f"entry 0 and {_fmt(t._shape)} at entry {i}")
    if d < first.ndim:
        result_shape = first._shape[:d] + (len(tensors),) + first._shape[d:]
        cat_shape = first._shape[:d] + (first._shape[d] * len(tensors),) + first._shape[d + 1:]
        if out is None:
            return views._unsafe_view(cat(tensors, d), result_shape)  # not a view: no one else sees the cat
        output("stack", out, result_shape, out._dtype, out._device)
        if sh.view_strides(out._shape, out._stride, cat_shape) is not None:
            cat(tensors, d, out=views.view(out, cat_shape))
            return out
    return cat([views.unsqueeze(t, d) for t in tensors], d, out=out)


cat = declare("cat", meta=cat_meta, family="joining")  # cat(tensors, dim=0, out=None): device kernels
stack = declare("stack", composite=_stack, family="joining")


# -- derivatives (autograd) ---------------------------------------------------------------------------------------
# cat's gradient is the gradient cut back into the pieces (each cast back to its input's dtype by the engine);
# stack's is the gradient unbound along the new dim.

from vibetensor.autograd import derivative as _derivative  # noqa: E402


@_derivative(cat)
def _cat_backward(ctx, grad, tensors, dim=0):
    grads, start = [], 0
    d = None
    for t in tensors:
        if _skipped(t):  # (0,)-shaped inputs took no part
            grads.append(creation.full((0,), 0, grad._dtype, device=grad._device))
            continue
        d = sh.wrap_dim(dim, t.ndim) if d is None else d
        n = t._shape[d]
        grads.append(views.narrow(grad, d, start, n))
        start += n
    return grads, None


@_derivative(stack)
def _stack_backward(ctx, grad, tensors, dim=0):
    return list(views.unbind(grad, sh.wrap_dim(dim, grad.ndim))), None
