"""Convolution, pooling, padding, im2col, resampling, grid sampling and attention: declarations,
torch's checks (meta) and derivatives. Kernels live in backends/<device>/conv.py.

Ops take normalised arguments (tuples of ints, one per spatial dim, from the front door
vibetensor/torch/nn/functional_conv.py). Inputs may be batched (N, C, *spatial) or unbatched
(C, *spatial) wherever torch's functional form accepts both, so one op serves both.

Linear ops come in adjoint pairs whose derivatives are each other, so every order of derivative
is available without further kernels:
  convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
  convolution_weight_grad(input, grad_output, weight_size, stride, padding, dilation, groups)
      (both bilinear: each one's derivative is written with the two of them)
  avg_pool / avg_pool_backward, im2col / col2im, resample / resample_backward,
  spatial_gather / spatial_scatter_add (max pooling's backward), pixel_shuffle / pixel_unshuffle,
  channel_shuffle, constant_pad_nd, affine_grid_generator / affine_grid_backward
Others: max_pool and adaptive_max_pool -> (values, indices); grid_sampler (its backward is one op
that is not differentiated again, as in torch); sdpa_math -> (output, attention weights).
"""
import collections
import math

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.ops.reduction import CPP_NAMES
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor

Spec = collections.namedtuple("Spec", "shape dtype device")
ConvSpec = collections.namedtuple("ConvSpec", "shape dtype device stride padding dilation output_padding batched")
PoolSpec = collections.namedtuple("PoolSpec", "shape dtype device out batched")
_NAMES = m.TYPE_NAMES
FLOATS = (dt.float16, dt.bfloat16, dt.float32, dt.float64)


def sizes(shape):
    """torch's IntArrayRef printing: [2, 3, 4]."""
    return "[" + ", ".join(map(str, shape)) + "]"


def check_tensor(op, name, pos, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{name}' (position {pos}) must be Tensor, not {type(x).__name__}")


def check_dtype(kernel, t, allowed):
    """torch's AT_DISPATCH error for a dtype the kernel has no instance for."""
    if t._dtype not in allowed:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_NAMES[t._dtype]}\'')


_NOT_BOOL = tuple(d for d in dt.ALL if d is not dt.bool_)
REAL = tuple(d for d in dt.ALL if d.category in (1, 2))


def _declare(name, meta=None, composite=None):
    return declare(name, meta=meta, composite=composite, family="conv")


# -- convolution -----------------------------------------------------------------------------------------------

def _expand_param(name, value, dim):
    value = tuple(value)
    if len(value) == 1:
        return value * dim
    if len(value) != dim:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of {dim} values to match the "
                           f"convolution dimensions, but got {name}={sizes(value)}")
    return value


def conv_params(dim, stride, padding, dilation, output_padding):
    return (_expand_param("stride", stride, dim), _expand_param("padding", padding, dim),
            _expand_param("dilation", dilation, dim), _expand_param("output_padding", output_padding, dim))


def _per_channel(values, dim):
    """Sizes as torch's messages print them: 1-d convolutions run as 2-d ones of height 1."""
    values = ((1,) if dim == 1 else ()) + tuple(values)
    return " x ".join(map(str, values))


_AXES = {1: ("height", "width"), 2: ("height", "width"), 3: ("depth", "height", "width")}


def _output_padding_error(op, s, d):
    if len(s) == 1:
        op, s, d = (0,) + op, (1,) + s, (1,) + d
    names = _AXES[len(s)]
    parts = [f"{what}_{n}: {v}" for what, vs in (("output_padding", op), ("stride", s), ("dilation", d))
             for n, v in zip(names, vs)]
    return RuntimeError("output padding must be smaller than either stride or dilation, but got " + " ".join(parts))


def _conv_meta(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    check_tensor("convolution", "input", 1, input)
    check_tensor("convolution", "weight", 2, weight)
    if bias is not None:
        check_tensor("convolution", "bias", 3, bias)
    dim = weight.ndim - 2
    if dim <= 0:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    s, p, d, op = conv_params(dim, stride, padding, dilation, output_padding)
    if any(v < 0 for v in p):
        raise RuntimeError("negative padding is not supported")
    if any(v < 0 for v in op):
        raise RuntimeError("negative output_padding is not supported")
    if any(v <= 0 for v in s):
        raise RuntimeError("non-positive stride is not supported")
    if any(v < 0 for v in d):
        raise RuntimeError("dilation should be greater than zero")
    if any(v == 0 for v in d):
        raise RuntimeError("non-positive dilation is not supported")
    ws = weight._shape
    batched = input.ndim == weight.ndim
    if not batched and input.ndim != weight.ndim - 1:
        raise RuntimeError(f"Expected {weight.ndim}-dimensional input for {weight.ndim}-dimensional weight "
                           f"{sizes(ws)}, but got {input.ndim}-dimensional input of size {sizes(input._shape)} instead")
    xs = input._shape if batched else (1,) + input._shape
    if ws[0] < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but got "
                           f"weight of size {sizes(ws)} instead")
    if ws[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size [{sizes(ws)}] instead")
    spatial = xs[2:]
    if not transposed:
        if xs[1] != ws[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {sizes(ws)}, expected input{sizes(xs)} to have "
                               f"{ws[1] * groups} channels, but got {xs[1]} channels instead")
        if bias is not None and (bias.ndim != 1 or bias._shape[0] != ws[0]):
            raise RuntimeError(f"Given weight of size {sizes(ws)}, expected bias to be 1-dimensional with {ws[0]} "
                               f"elements, but got bias of size {sizes(bias._shape)} instead")
        padded = [i + 2 * pi for i, pi in zip(spatial, p)]
        kernel = [di * (k - 1) + 1 for di, k in zip(d, ws[2:])]
        if any(a < b for a, b in zip(padded, kernel)):
            raise RuntimeError(f"Calculated padded input size per channel: ({_per_channel(padded, dim)}). Kernel size: "
                               f"({_per_channel(kernel, dim)}). Kernel size can't be greater than actual input size")
        out = tuple((a - b) // si + 1 for a, b, si in zip(padded, kernel, s))
        channels = ws[0]
    else:
        if xs[1] != ws[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {sizes(ws)}, expected input{sizes(xs)} to have "
                               f"{ws[0]} channels, but got {xs[1]} channels instead")
        if bias is not None and (bias.ndim != 1 or bias._shape[0] != ws[1] * groups):
            raise RuntimeError(f"Given transposed=1, weight of size {sizes(ws)}, expected bias to be 1-dimensional "
                               f"with {ws[1] * groups} elements, but got bias of size {sizes(bias._shape)} instead")
        if any(o >= si and o >= di for o, si, di in zip(op, s, d)):
            raise _output_padding_error(op, s, d)
        out = tuple((i - 1) * si - 2 * pi + di * (k - 1) + o + 1
                    for i, si, pi, di, k, o in zip(spatial, s, p, d, ws[2:], op))
        if any(o < 1 for o in out):
            raise RuntimeError(f"Given input size per channel: ({_per_channel(spatial, dim)}). Calculated output size "
                               f"per channel: ({_per_channel(out, dim)}). Output size is too small")
        channels = ws[1] * groups
    if input._dtype is not weight._dtype:
        raise RuntimeError(f"Input type ({m.legacy_type_name(input)}) and weight type ({m.legacy_type_name(weight)}) "
                           "should be the same or input should be a MKLDNN tensor and weight is a dense tensor")
    if bias is not None and bias._dtype is not input._dtype:
        raise RuntimeError(f"Input type ({CPP_NAMES[input._dtype]}) and bias type ({CPP_NAMES[bias._dtype]}) should "
                           "be the same")
    check_dtype("slow_conv2d_cpu", input, _NOT_BOOL)
    device = m.common_device("convolution", (input, weight, bias))
    shape = ((xs[0],) if batched else ()) + (channels,) + out
    return ConvSpec(shape, input._dtype, device, s, p, d, op, batched)


def _conv_weight_grad_meta(input, grad_output, weight_size, stride, padding, dilation, groups):
    """d<convolution(input, w), grad_output>/dw, in the frame of a (non-transposed) convolution."""
    dim = len(weight_size) - 2
    s, p, d, _ = conv_params(dim, stride, padding, dilation, (0,))
    batched = input.ndim == dim + 2
    if grad_output.ndim != input.ndim or input._dtype is not grad_output._dtype:
        raise RuntimeError(f"convolution_weight_grad: input {sizes(input._shape)} ({_NAMES[input._dtype]}) and "
                           f"grad_output {sizes(grad_output._shape)} ({_NAMES[grad_output._dtype]}) don't match")
    device = m.common_device("convolution_weight_grad", (input, grad_output))
    return ConvSpec(tuple(weight_size), input._dtype, device, s, p, d, (0,) * dim, batched)


convolution = _declare("convolution", _conv_meta)
convolution_weight_grad = _declare("convolution_weight_grad", _conv_weight_grad_meta)


# -- pooling ---------------------------------------------------------------------------------------------------

def pooling_output_shape(size, k, pad, s, d, ceil_mode):
    """torch's pooling_output_shape (Pool.h): the window count along one dim, with its checks."""
    if s == 0:
        raise RuntimeError("stride should not be zero")
    if pad < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {pad}")
    if pad > ((k - 1) * d + 1) // 2:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pad}, kernel_size={k} "
                           f"and dilation={d}")
    out = (size + 2 * pad - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + pad:  # the last window must start inside the image
        out -= 1
    return out


_HWD = {1: ("W",), 2: ("H", "W"), 3: ("T", "H", "W")}


def _labelled(what, values):
    return " ".join(f"{what}{n}: {v}" for n, v in zip(_HWD[len(values)], values))


def _pool_meta(name, input, kernel, stride, padding, dilation, ceil_mode):
    """(output spatial size, batched) of a max/avg pooling; torch's checks (Pool.h) in torch's order."""
    nsp = len(kernel)
    if input.ndim not in (nsp + 1, nsp + 2):
        if nsp == 2:
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        raise RuntimeError(f"{name}: Expected {nsp + 1}D or {nsp + 2}D (batch mode) tensor with optional 0 dim batch "
                           f"size for input, but got:{sizes(input._shape)}")
    spatial = input._shape[-nsp:]
    out = tuple(pooling_output_shape(i, k, p, s, d, ceil_mode)
                for i, k, p, s, d in zip(spatial, kernel, padding, stride, dilation))
    if any(k <= 0 for k in kernel):
        raise RuntimeError(f"kernel size should be greater than zero, but got {_labelled('k', kernel)}")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"stride should be greater than zero, but got {_labelled('d', stride)}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got {_labelled('dilation', dilation)}")
    batched = input.ndim == nsp + 2
    if 0 in input._shape[1 if batched else 0:]:
        raise RuntimeError(f"Expected {nsp + 1}D or {nsp + 2}D (batch mode) tensor with optional 0 dim batch size for "
                           f"input, but got:{sizes(input._shape)}")
    if any(o < 1 for o in out):
        planes = input._shape[-nsp - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, (planes,) + spatial))}). Calculated output size: "
                           f"({'x'.join(map(str, (planes,) + out))}). Output size is too small")
    return out, batched


def _max_pool_meta(input, kernel_size, stride, padding, dilation, ceil_mode):
    check_tensor("max_pool", "input", 1, input)
    nsp = len(kernel_size)
    out, batched = _pool_meta(f"max_pool{nsp}d", input, kernel_size, stride, padding, dilation, ceil_mode)
    check_dtype(f"max_pool{nsp}d", input, REAL)
    return PoolSpec(input._shape[:-nsp] + out, input._dtype, input._device, out, batched)


def _avg_pool_meta(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    check_tensor("avg_pool", "input", 1, input)
    nsp = len(kernel_size)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    out, batched = _pool_meta(f"avg_pool{nsp}d", input, kernel_size, stride, padding, (1,) * nsp, ceil_mode)
    if nsp == 3 and any(i < k for i, k in zip(input._shape[-3:], kernel_size)):
        t, h, w = input._shape[-3:]
        raise RuntimeError(f"input image (T: {t} H: {h} W: {w}) smaller than kernel size (kT: {kernel_size[0]} kH: "
                           f"{kernel_size[1]} kW: {kernel_size[2]})")
    check_dtype(f"avg_pool{nsp}d", input, REAL)
    return PoolSpec(input._shape[:-nsp] + out, input._dtype, input._device, out, batched)


def _avg_pool_backward_meta(grad, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad,
                            divisor_override):
    nsp = len(kernel_size)
    return PoolSpec(tuple(input_size), grad._dtype, grad._device, tuple(grad._shape[-nsp:]), len(input_size) == nsp + 2)


def check_adaptive(name, input, output_size, dtypes):
    check_tensor(name, "input", 1, input)
    nsp = len(output_size)
    if input.ndim not in (nsp + 1, nsp + 2):
        raise RuntimeError(f"{name}(): Expected {nsp + 1}D or {nsp + 2}D tensor, but got {sizes(input._shape)}")
    if any(o < 0 for o in output_size):
        raise RuntimeError(f"{name}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{', '.join(map(str, output_size))}}}")
    for i in range(1, input.ndim) if input.ndim == nsp + 2 else range(input.ndim):
        if input._shape[i] == 0:
            raise RuntimeError(f"{name}(): Expected input to have non-zero size for non-batch dimensions, but input "
                               f"has sizes {sizes(input._shape)} with dimension {i} being empty")
    check_dtype(name, input, dtypes)
    return input._shape[:-nsp] + tuple(output_size)


def _adaptive_max_pool_meta(input, output_size):
    nsp = len(output_size)
    shape = check_adaptive(f"adaptive_max_pool{nsp}d", input, output_size, FLOATS)
    return PoolSpec(shape, input._dtype, input._device, tuple(output_size), input.ndim == nsp + 2)


def _spatial_gather_meta(input, indices, nsp):
    """input (..., *S) with nsp spatial dims, flat indices into S shaped (..., *O) -> (..., *O)."""
    return Spec(tuple(indices._shape), input._dtype, input._device)


def _spatial_scatter_add_meta(grad, indices, input_size, nsp):
    """The adjoint of spatial_gather: grad (..., *O) added at flat indices into zeros of input_size."""
    return Spec(tuple(input_size), grad._dtype, grad._device)


max_pool = _declare("max_pool", _max_pool_meta)                  # -> (values, indices)
adaptive_max_pool = _declare("adaptive_max_pool", _adaptive_max_pool_meta)  # -> (values, indices)
spatial_gather = _declare("spatial_gather", _spatial_gather_meta)
spatial_scatter_add = _declare("spatial_scatter_add", _spatial_scatter_add_meta)
avg_pool = _declare("avg_pool", _avg_pool_meta)
avg_pool_backward = _declare("avg_pool_backward", _avg_pool_backward_meta)


# -- separable resampling: adaptive average pooling, interpolation, reflect/replicate/circular padding -------
# `maps` holds one entry per trailing dim of the input, each a tuple (kind, in_size, out_size, *params):
#   ("adaptive",)                         adaptive average pooling
#   ("nearest", scale) ("nearest-exact", scale)      scale: torch's scale_factor or None
#   ("linear", align_corners, scale) ("cubic", align_corners, scale)
#   ("reflect", pad_left) ("replicate", pad_left) ("circular", pad_left)
# Each dim is a fixed linear map of taps (indices and weights), built by the kernel.

def _resample_meta(input, maps):
    n = len(maps)
    if input.ndim < n or tuple(input._shape[input.ndim - n:]) != tuple(mp[1] for mp in maps):
        raise RuntimeError(f"resample: input of size {sizes(input._shape)} doesn't match the maps' input sizes")
    return Spec(input._shape[:input.ndim - n] + tuple(mp[2] for mp in maps), input._dtype, input._device)


def _resample_backward_meta(grad, maps):
    n = len(maps)
    return Spec(grad._shape[:grad.ndim - n] + tuple(mp[1] for mp in maps), grad._dtype, grad._device)


resample = _declare("resample", _resample_meta)
resample_backward = _declare("resample_backward", _resample_backward_meta)


# -- constant padding ------------------------------------------------------------------------------------------

def _constant_pad_meta(input, pad, value=0):
    check_tensor("constant_pad_nd", "input", 1, input)
    if len(pad) % 2:
        raise RuntimeError("Length of pad must be even but instead it equals " + str(len(pad)))
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Length of pad should be no more than twice the number of dimensions of the input. Pad "
                           f"length is {len(pad)} while the input has {input.ndim} dimensions.")
    shape = list(input._shape)
    for j in range(len(pad) // 2):
        i = input.ndim - 1 - j
        lo, hi = pad[2 * j], pad[2 * j + 1]
        kept = shape[i] + min(lo, 0)  # torch narrows the input by the negative pads, one side at a time
        if kept < 0 or kept + min(hi, 0) < 0:
            raise RuntimeError("narrow(): length must be non-negative.")
        shape[i] += lo + hi
    return Spec(tuple(shape), input._dtype, input._device)  # (the value is cast to the input's dtype)


constant_pad_nd = _declare("constant_pad_nd", _constant_pad_meta)


# -- im2col / col2im (F.unfold / F.fold) -----------------------------------------------------------------------

def _fold_params_check(kernel_size, dilation, padding, stride):
    names = ("height", "width")
    for what, vals, ok, cond in (("kernel size", kernel_size, "greater than zero", lambda v: v > 0),
                                 ("dilation", dilation, "greater than zero", lambda v: v > 0),
                                 ("padding", padding, "non-negative", lambda v: v >= 0),
                                 ("stride", stride, "greater than zero", lambda v: v > 0)):
        if not all(cond(v) for v in vals):
            label = {"kernel size": "kernel", "padding": "pad"}.get(what, what)
            got = " ".join(f"{label}_{n}: {v}" for n, v in zip(names, vals))
            raise RuntimeError(f"{what} should be {ok}, but got {got}")


def sliding_blocks(spatial, kernel_size, dilation, padding, stride):
    return tuple((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                 for i, k, d, p, s in zip(spatial, kernel_size, dilation, padding, stride))


def _tuple_str(values):
    return "(" + ", ".join(map(str, values)) + ")"


def _im2col_meta(input, kernel_size, dilation, padding, stride):
    check_tensor("im2col", "input", 1, input)
    _fold_params_check(kernel_size, dilation, padding, stride)
    if input.ndim not in (3, 4) or 0 in input._shape[input.ndim - 3:]:
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {sizes(input._shape)}")
    blocks = sliding_blocks(input._shape[-2:], kernel_size, dilation, padding, stride)
    if any(b < 1 for b in blocks):
        raise RuntimeError(f"Given input with spatial size {_tuple_str(input._shape[-2:])}, kernel_size="
                           f"{_tuple_str(kernel_size)}, dilation={_tuple_str(dilation)}, padding="
                           f"{_tuple_str(padding)}, calculated shape of the array of sliding blocks as "
                           f"{_tuple_str(blocks)}, but its components must be at least one.")
    check_dtype("im2col_out_cpu", input, FLOATS + (dt.complex64, dt.complex128, dt.bool_))
    c = input._shape[-3] * math.prod(kernel_size)
    return Spec(input._shape[:-3] + (c, math.prod(blocks)), input._dtype, input._device)


def _col2im_meta(input, output_size, kernel_size, dilation, padding, stride):
    check_tensor("col2im", "input", 1, input)
    _fold_params_check(kernel_size, dilation, padding, stride)
    if input.ndim not in (2, 3) or 0 in input._shape[input.ndim - 2:]:
        raise RuntimeError("Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero "
                           f"dimensions for input, but got: {sizes(input._shape)}")
    kprod = math.prod(kernel_size)
    if input._shape[-2] % kprod:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
                           f"got input.size(1)={input._shape[-2]} and kernel_size={_tuple_str(kernel_size)}.")
    blocks = sliding_blocks(output_size, kernel_size, dilation, padding, stride)
    if any(b < 1 for b in blocks):
        raise RuntimeError(f"Given output_size={_tuple_str(output_size)}, kernel_size={_tuple_str(kernel_size)}, "
                           f"dilation={_tuple_str(dilation)}, padding={_tuple_str(padding)}, stride="
                           f"{_tuple_str(stride)}, calculated shape of the array of sliding blocks as "
                           f"{_tuple_str(blocks)}, but its components must be at least one.")
    if input._shape[-1] != math.prod(blocks):
        raise RuntimeError(f"Given output_size={_tuple_str(output_size)}, kernel_size={_tuple_str(kernel_size)}, "
                           f"dilation={_tuple_str(dilation)}, padding={_tuple_str(padding)}, stride="
                           f"{_tuple_str(stride)}, expected size of input's dimension 2 to match the calculated number "
                           f"of sliding blocks {' * '.join(map(str, blocks))} = {math.prod(blocks)}, but got "
                           f"input.size(2)={input._shape[-1]}.")
    check_dtype("col2im_out_cpu", input, FLOATS + (dt.complex64, dt.complex128, dt.bool_))
    return Spec(input._shape[:-2] + (input._shape[-2] // kprod,) + tuple(output_size), input._dtype, input._device)


im2col = _declare("im2col", _im2col_meta)
col2im = _declare("col2im", _col2im_meta)


# -- pixel and channel shuffles --------------------------------------------------------------------------------

def _pixel_shuffle_meta(input, upscale_factor):
    check_tensor("pixel_shuffle", "input", 1, input)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    r = upscale_factor
    if r <= 0:
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    c, h, w = input._shape[-3:]
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    return Spec(input._shape[:-3] + (c // (r * r), h * r, w * r), input._dtype, input._device)


def _pixel_unshuffle_meta(input, downscale_factor):
    check_tensor("pixel_unshuffle", "input", 1, input)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    r = downscale_factor
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    c, h, w = input._shape[-3:]
    if h % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, but input.size(-2)={h}"
                           f" is not divisible by {r}")
    if w % r:
        raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)={w}"
                           f" is not divisible by {r}")
    return Spec(input._shape[:-3] + (c * r * r, h // r, w // r), input._dtype, input._device)


def _channel_shuffle_meta(input, groups):
    check_tensor("channel_shuffle", "input", 1, input)
    if input.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with sizes "
                           f"{sizes(input._shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of groups:{groups}")
    c = input._shape[1]
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups.")
    return Spec(tuple(input._shape), input._dtype, input._device)


pixel_shuffle = _declare("pixel_shuffle", _pixel_shuffle_meta)
pixel_unshuffle = _declare("pixel_unshuffle", _pixel_unshuffle_meta)
channel_shuffle = _declare("channel_shuffle", _channel_shuffle_meta)


# -- grid sampling ---------------------------------------------------------------------------------------------
MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")


def _grid_sampler_meta(input, grid, mode, padding_mode, align_corners):
    check_tensor("grid_sampler", "input", 1, input)
    check_tensor("grid_sampler", "grid", 2, grid)
    if input._dtype is not grid._dtype:
        raise RuntimeError(f"expected scalar type {_NAMES[input._dtype]} but found {_NAMES[grid._dtype]}")
    nd = input.ndim
    if nd not in (4, 5) or grid.ndim != nd:
        raise RuntimeError(f"grid_sampler(): expected 4D or 5D input and grid with same number of dimensions, but "
                           f"got input with sizes {sizes(input._shape)} and grid with sizes {sizes(grid._shape)}")
    if input._shape[0] != grid._shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, but got input with sizes "
                           f"{sizes(input._shape)} and grid with sizes {sizes(grid._shape)}")
    if grid._shape[-1] != nd - 2:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {nd - 2} in last dimension, but got grid with "
                           f"sizes {sizes(grid._shape)}")
    for i in range(2, nd):
        if input._shape[i] == 0:
            raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial dimensions, but input has "
                               f"sizes {sizes(input._shape)} with dimension {i} being empty")
    if mode == "bicubic" and nd != 4:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    check_dtype(f"grid_sampler_{nd - 2}d_cpu_kernel_impl", input, FLOATS)
    device = m.common_device("grid_sampler", (input, grid))
    return Spec(input._shape[:2] + grid._shape[1:-1], input._dtype, device)


def _grid_sampler_backward_meta(grad, input, grid, mode, padding_mode, align_corners):
    return Spec(tuple(input._shape), input._dtype, input._device)


grid_sampler = _declare("grid_sampler", _grid_sampler_meta)
grid_sampler_backward = _declare("grid_sampler_backward", _grid_sampler_backward_meta)  # -> (g_input, g_grid)


def _affine_grid_meta(theta, size, align_corners):
    check_tensor("affine_grid_generator", "theta", 1, theta)
    nsp = len(size) - 2
    return Spec((size[0],) + tuple(size[2:]) + (nsp,), theta._dtype, theta._device)


def _affine_grid_backward_meta(grad, size, align_corners):
    nsp = len(size) - 2
    return Spec((size[0], nsp, nsp + 1), grad._dtype, grad._device)


affine_grid_generator = _declare("affine_grid_generator", _affine_grid_meta)
affine_grid_backward = _declare("affine_grid_backward", _affine_grid_backward_meta)


# -- scaled dot-product attention ------------------------------------------------------------------------------

def _sdpa_meta(query, key, value, attn_mask, dropout_mask, scale, is_causal, enable_gqa):
    """(output, attention weights). query (..., Hq, L, E), key (..., Hk, S, E), value (..., Hk, S, Ev);
    batch dims broadcast (matmul's rules); Hq a multiple of Hk when enable_gqa."""
    for name, pos, t in (("query", 1, query), ("key", 2, key), ("value", 3, value)):
        check_tensor("scaled_dot_product_attention", name, pos, t)
    if not (query._dtype is key._dtype is value._dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got query.dtype: "
                           f"{CPP_NAMES[query._dtype]} key.dtype: {CPP_NAMES[key._dtype]} and value.dtype: "
                           f"{CPP_NAMES[value._dtype]} instead.")
    if attn_mask is not None and attn_mask._dtype is not dt.bool_ and attn_mask._dtype is not query._dtype:
        raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                           f"attn_mask.dtype: {CPP_NAMES[attn_mask._dtype]} and  query.dtype: "
                           f"{CPP_NAMES[query._dtype]} instead.")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError("scaled_dot_product_attention: query, key and value must have at least 2 dimensions, got "
                           f"{sizes(query._shape)}, {sizes(key._shape)} and {sizes(value._shape)}")
    if query._shape[-1] != key._shape[-1]:
        raise RuntimeError(f"Expected query and key to have the same embedding size, got {query._shape[-1]} and "
                           f"{key._shape[-1]}")
    if key._shape[-2] != value._shape[-2]:
        raise RuntimeError(f"Expected key and value to have the same sequence length, got {key._shape[-2]} and "
                           f"{value._shape[-2]}")
    if query._dtype not in FLOATS:
        raise RuntimeError(f"expected scalar type Float but found {_NAMES[query._dtype]}")
    kshape = gqa_shape(query, key, enable_gqa)
    vshape = kshape[:-1] + (value._shape[-1],)
    from vibetensor.tensor import shape as sh
    lead = sh.broadcast_shapes(query._shape[:-2], kshape[:-2], vshape[:-2])
    L, S = query._shape[-2], key._shape[-2]
    if attn_mask is not None:
        sh.broadcast_shapes(attn_mask._shape, lead + (L, S))
    device = m.common_device("scaled_dot_product_attention", (query, key, value, attn_mask))
    return Spec(lead + (L, value._shape[-1]), query._dtype, device), Spec(lead + (L, S), query._dtype, device)


def gqa_shape(query, key, enable_gqa):
    """key's shape with its heads repeated to query's (grouped-query attention)."""
    ks = tuple(key._shape)
    if not enable_gqa or query.ndim < 3 or key.ndim < 3 or query._shape[-3] == ks[-3]:
        return ks
    hq, hk = query._shape[-3], ks[-3]
    if hk == 0 or hq % hk:
        raise RuntimeError("Number of heads in key and value must divide the number of heads in query")
    return ks[:-3] + (hq,) + ks[-2:]


sdpa_math = _declare("sdpa_math", _sdpa_meta)  # -> (output, attention weights before dropout)


# -- derivatives (autograd) ------------------------------------------------------------------------------------
from vibetensor.autograd import derivative as _derivative  # noqa: E402
from vibetensor.ops import elementwise as _ew  # noqa: E402
from vibetensor.ops import linalg as _la  # noqa: E402
from vibetensor.ops import reduction as _r  # noqa: E402
from vibetensor.ops import views as _v  # noqa: E402


def _needs(ctx, i):
    n = ctx.needs_input_grad
    return i < len(n) and n[i]


def _fit(t, shape):
    """Narrow t's trailing dims down to `shape` (a transposed convolution whose output_padding is at
    least its stride covers positions the forward one never reached)."""
    for i, (have, want) in enumerate(zip(t._shape, shape)):
        if have != want:
            t = _v.narrow(t, i, 0, want)
    return t


def _grad_output_padding(input_shape, grad_shape, weight_shape, s, p, d):
    """The output_padding that makes a transposed convolution of grad_shape return input_shape."""
    n = len(s)
    return tuple(i + 2 * pi - di * (k - 1) - 1 - (o - 1) * si
                 for i, o, k, si, pi, di in zip(input_shape[-n:], grad_shape[-n:], weight_shape[2:], s, p, d))


@_derivative(convolution, save=(0, 1))
def _convolution_backward(ctx, grad, input, weight, bias, stride, padding, dilation, transposed, output_padding,
                          groups):
    dim = weight.ndim - 2
    s, p, d, _ = conv_params(dim, stride, padding, dilation, output_padding)
    gx = gw = gb = None
    if _needs(ctx, 0):
        if transposed:
            gx = _fit(convolution(grad, weight, None, s, p, d, False, (0,) * dim, groups), input._shape)
        else:
            opad = _grad_output_padding(input._shape, grad._shape, weight._shape, s, p, d)
            gx = convolution(grad, weight, None, s, p, d, True, opad, groups)
    if _needs(ctx, 1):
        x, gy = (grad, input) if transposed else (input, grad)
        gw = convolution_weight_grad(x, gy, weight._shape, s, p, d, groups)
    if bias is not None and _needs(ctx, 2):
        batched = input.ndim == weight.ndim
        gb = _r.sum(grad, (0,) + tuple(range(2, grad.ndim)) if batched else tuple(range(1, grad.ndim)), False)
    return gx, gw, gb


@_derivative(convolution_weight_grad, save=(0, 1))
def _convolution_weight_grad_backward(ctx, grad, input, grad_output, weight_size, stride, padding, dilation, groups):
    """<convolution_weight_grad(x, gy), G> = <convolution(x, G), gy> = <x, convolution_transposed(gy, G)>."""
    dim = len(weight_size) - 2
    s, p, d, _ = conv_params(dim, stride, padding, dilation, (0,))
    gx = ggy = None
    if _needs(ctx, 0):
        opad = _grad_output_padding(input._shape, grad_output._shape, weight_size, s, p, d)
        gx = convolution(grad_output, grad, None, s, p, d, True, opad, groups)
    if _needs(ctx, 1):
        ggy = _fit(convolution(input, grad, None, s, p, d, False, (0,) * dim, groups), grad_output._shape)
    return gx, ggy


@_derivative(max_pool, save=("result",), name=lambda x, k, *a: f"MaxPool{len(k)}DWithIndicesBackward0")
def _max_pool_backward(ctx, grad, input, kernel_size, *params):
    return spatial_scatter_add(grad[0], ctx.result[1], input._shape, len(kernel_size))


@_derivative(adaptive_max_pool, save=("result",), name=lambda x, o: f"AdaptiveMaxPool{len(o)}DBackward0")
def _adaptive_max_pool_backward(ctx, grad, input, output_size):
    return spatial_scatter_add(grad[0], ctx.result[1], input._shape, len(output_size))


@_derivative(spatial_scatter_add, save=(1,))
def _spatial_scatter_add_backward(ctx, grad, g, indices, input_size, nsp):
    return spatial_gather(grad, indices, nsp), None


@_derivative(spatial_gather, save=(1,))
def _spatial_gather_backward(ctx, grad, input, indices, nsp):
    return spatial_scatter_add(grad, indices, input._shape, nsp), None


@_derivative(avg_pool, name=lambda x, k, *a: f"AvgPool{len(k)}DBackward0")
def _avg_pool_derivative(ctx, grad, input, *params):
    return avg_pool_backward(grad, input._shape, *params)


@_derivative(avg_pool_backward)
def _avg_pool_backward_derivative(ctx, grad, g, input_size, *params):
    return avg_pool(grad, *params)


@_derivative(resample, name=lambda x, maps: _resample_node_name(maps))
def _resample_derivative(ctx, grad, input, maps):
    return resample_backward(grad, maps)


_RESAMPLE_NODES = {"adaptive": "AdaptiveAvgPool{n}D", "reflect": "ReflectionPad{n}D", "replicate": "ReplicationPad{n}D",
                   "circular": "CircularPad{n}D", "nearest": "UpsampleNearest{n}D",
                   "nearest-exact": "UpsampleNearestExact{n}D", "cubic": "UpsampleBicubic{n}D"}
_LINEAR_NODES = {1: "UpsampleLinear1D", 2: "UpsampleBilinear2D", 3: "UpsampleTrilinear3D"}


def _resample_node_name(maps):
    """torch's node name for what the maps do (AdaptiveAvgPool2DBackward0, UpsampleBilinear2DBackward0...)."""
    n, kind = len(maps), maps[0][0]
    return (_LINEAR_NODES[n] if kind == "linear" else _RESAMPLE_NODES[kind].format(n=n)) + "Backward0"


@_derivative(resample_backward)
def _resample_backward_derivative(ctx, grad, g, maps):
    return resample(grad, maps)


@_derivative(constant_pad_nd)
def _constant_pad_nd_backward(ctx, grad, input, pad, value=0):
    return constant_pad_nd(grad, tuple(-v for v in pad), 0)


@_derivative(im2col, name="Im2ColBackward0")
def _im2col_backward(ctx, grad, input, kernel_size, dilation, padding, stride):
    return col2im(grad, tuple(input._shape[-2:]), kernel_size, dilation, padding, stride)


@_derivative(col2im, name="Col2ImBackward0")
def _col2im_backward(ctx, grad, input, output_size, kernel_size, dilation, padding, stride):
    return im2col(grad, kernel_size, dilation, padding, stride)


@_derivative(pixel_shuffle)
def _pixel_shuffle_backward(ctx, grad, input, upscale_factor):
    return pixel_unshuffle(grad, upscale_factor)


@_derivative(pixel_unshuffle)
def _pixel_unshuffle_backward(ctx, grad, input, downscale_factor):
    return pixel_shuffle(grad, downscale_factor)


@_derivative(channel_shuffle)
def _channel_shuffle_backward(ctx, grad, input, groups):
    return channel_shuffle(grad, input._shape[1] // groups)


@_derivative(grid_sampler, save=(0, 1), name=lambda x, *a: f"GridSampler{x.ndim - 2}DBackward0")
def _grid_sampler_derivative(ctx, grad, input, grid, mode, padding_mode, align_corners):
    return grid_sampler_backward(grad, input, grid, mode, padding_mode, align_corners)


@_derivative(affine_grid_generator)
def _affine_grid_derivative(ctx, grad, theta, size, align_corners):
    return affine_grid_backward(grad, size, align_corners)


@_derivative(affine_grid_backward)
def _affine_grid_backward_derivative(ctx, grad, g, size, align_corners):
    return affine_grid_generator(grad, size, align_corners)


def repeat_heads(t, hq):
    """(..., Hk, S, E) -> (..., hq, S, E), each head repeated hq // Hk times in a row (repeat_interleave)."""
    hk = t._shape[-3]
    if hk == hq:
        return t
    lead = tuple(t._shape[:-3])
    wide = _v.expand(_v.unsqueeze(t, -3), lead + (hk, hq // hk) + tuple(t._shape[-2:]))
    return _v.reshape(wide, lead + (hq,) + tuple(t._shape[-2:]))


def _sum_heads(g, hk):
    """The adjoint of repeat_heads: (..., hq, S, E) -> (..., hk, S, E)."""
    hq = g._shape[-3]
    if hq == hk:
        return g
    lead = tuple(g._shape[:-3])
    return _r.sum(_v.reshape(g, lead + (hk, hq // hk) + tuple(g._shape[-2:])), (-3,), False)  # over the group


def _mT(t):
    return _v.transpose(t, -2, -1)


@_derivative(sdpa_math, save=(0, 1, 2, 4, "result"), name="ScaledDotProductAttentionMathBackward0")
def _sdpa_backward(ctx, grad, query, key, value, attn_mask, dropout_mask, scale, is_causal, enable_gqa):
    """out = dropout(softmax(q k^T * scale + mask)) v, with P the softmax (the op's second output)."""
    g_out, g_attn = grad
    attn = ctx.result[1]
    hq = query._shape[-3] if query.ndim >= 3 else None
    k = repeat_heads(key, hq) if enable_gqa and hq is not None else key
    v = repeat_heads(value, hq) if enable_gqa and hq is not None else value
    p = attn if dropout_mask is None else _ew.mul(attn, dropout_mask)
    gq = gk = gv = gmask = None
    if _needs(ctx, 2):
        gv = _la.matmul(_mT(p), g_out)
        gv = _sum_heads(gv, value._shape[-3]) if v is not value else gv
    if _needs(ctx, 0) or _needs(ctx, 1) or _needs(ctx, 3):
        g_p = _la.matmul(g_out, _mT(v))
        if dropout_mask is not None:
            g_p = _ew.mul(g_p, dropout_mask)
        g_p = _ew.add(g_p, g_attn)
        g_s = _ew.mul(attn, _ew.sub(g_p, _r.sum(_ew.mul(g_p, attn), (-1,), True)))  # softmax's backward
        if _needs(ctx, 0):
            gq = _ew.mul(_la.matmul(g_s, k), scale)
        if _needs(ctx, 1):
            gk = _ew.mul(_la.matmul(_mT(g_s), query), scale)
            gk = _sum_heads(gk, key._shape[-3]) if k is not key else gk
        if _needs(ctx, 3):
            gmask = g_s
    return gq, gk, gv, gmask, None
