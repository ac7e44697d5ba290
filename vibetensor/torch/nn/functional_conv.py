"""nn.functional: convolution, pooling, padding, im2col, pixel shuffle, grid_sample, interpolation
and attention. User signatures and defaults as torch's; each parses its arguments into one op of
vibetensor/ops/conv.py (or a few, for the composites lp_pool and 'same' padding)."""
import math
import numbers
import warnings

from vibetensor.ops import conv as ops
from vibetensor.ops import elementwise as ew
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, empty

_FLOATS = ops.FLOATS


def _ints(v):
    """An int or a sequence of ints as a tuple (torch's IntArrayRef from a Python argument)."""
    if isinstance(v, numbers.Integral):
        return (int(v),)
    return tuple(int(x) for x in v)


def _ntuple(v, n):
    """torch's _single/_pair/_triple: an int repeated n times; a sequence kept as it is."""
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    return tuple(int(x) for x in v)


def _need_tensor(fn, name, pos, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not {type(x).__name__}")


# -- convolution -----------------------------------------------------------------------------------------------

def _check_conv_input(fn, n, input, weight):
    _need_tensor(fn, "input", 1, input)
    _need_tensor(fn, "weight", 2, weight)
    if input.ndim not in (n + 1, n + 2):
        raise RuntimeError(f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {fn}, but got input of size: "
                           f"{ops.sizes(input.shape)}")


def _conv(fn, n, input, weight, bias, stride, padding, dilation, groups):
    _check_conv_input(fn, n, input, weight)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            return _conv_same(input, weight, bias, stride, dilation, groups)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    return ops.convolution(input, weight, bias, _ints(stride), _ints(padding), _ints(dilation), False, (0,),
                           int(groups))


def _conv_same(input, weight, bias, stride, dilation, groups):
    """padding='same': the output has the input's size; an odd total padding puts the extra zero on
    the right, which needs an explicitly padded copy (torch's _convolution_mode)."""
    stride = _ints(stride)
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    dim = weight.ndim - 2
    dilation = _ints(dilation)
    dilation = dilation * dim if len(dilation) == 1 else dilation
    total = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    left = [t // 2 for t in total]
    if all(t == 2 * lo for t, lo in zip(total, left)):
        return ops.convolution(input, weight, bias, stride, tuple(left), dilation, False, (0,), int(groups))
    warnings.warn("Using padding='same' with even kernel lengths and odd dilation may require a zero-padded copy of "
                  "the input be created", UserWarning, stacklevel=3)
    pad_nd = [0] * (2 * dim)
    for i in range(dim):
        pad_nd[2 * (dim - 1 - i) + 1] = total[i] - 2 * left[i]  # F.pad order: last dim first
    padded = ops.constant_pad_nd(input, tuple(pad_nd), 0)
    return ops.convolution(padded, weight, bias, stride, tuple(left), dilation, False, (0,), int(groups))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(fn, n, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_conv_input(fn, n, input, weight)
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    return ops.convolution(input, weight, bias, _ints(stride), _ints(padding), _ints(dilation), True,
                           _ints(output_padding), int(groups))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


def convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """torch.convolution: the batched primitive under every conv*d."""
    _need_tensor("convolution", "input", 1, input)
    _need_tensor("convolution", "weight", 2, weight)
    if input.ndim != weight.ndim:
        raise RuntimeError(f"Expected {weight.ndim}-dimensional input for {weight.ndim}-dimensional weight "
                           f"{ops.sizes(weight.shape)}, but got {input.ndim}-dimensional input of size "
                           f"{ops.sizes(input.shape)} instead")
    return ops.convolution(input, weight, bias, _ints(stride), _ints(padding), _ints(dilation), bool(transposed),
                           _ints(output_padding), int(groups))


# -- pooling ---------------------------------------------------------------------------------------------------
_COUNT = {1: "one int", 2: "two ints", 3: "three ints"}


def _pool_args(fn, n, kernel_size, stride, padding, dilation=1):
    """Expand pooling arguments to n values each, with torch's length checks."""
    def expand(name, v, allow_empty=False, wording="must either be a single int, or a tuple of"):
        v = _ints(v) if v is not None else ()
        if allow_empty and not v:
            return None
        if len(v) not in (1, n):
            raise RuntimeError(f"{fn}: {name} {wording} {_COUNT[n]}")
        return v * n if len(v) == 1 else v
    k = expand("kernel_size", kernel_size)
    s = expand("stride", stride, True, "must either be omitted, a single int, or a tuple of") or k
    p = expand("padding", padding, wording="must either be a single int, or a tuple of")
    d = expand("dilation", dilation)
    return k, s, p, d


def _max_pool(fn, n, input, kernel_size, stride, padding, dilation, ceil_mode):
    _need_tensor(fn, "input", 1, input)
    k, s, p, d = _pool_args(fn, n, kernel_size, stride, padding, dilation)
    return ops.max_pool(input, k, s, p, d, bool(ceil_mode))


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    return tuple(_max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode))


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    return tuple(_max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode))


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):
    return tuple(_max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    values, indices = max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (values, indices) if return_indices else values


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    values, indices = max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (values, indices) if return_indices else values


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    values, indices = max_pool3d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode)
    return (values, indices) if return_indices else values


def _avg_pool(fn, n, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    _need_tensor(fn, "input", 1, input)
    if n == 1 and input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.ndim}-dimensional tensor for argument #1 "
                           "'self' (while checking arguments for avg_pool1d)")
    if n == 2 and input.ndim < 3:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(input.ndim, 1)}, "
                         f"{max(input.ndim, 1) - 1}], but got -3)")
    k, s, p, _ = _pool_args(fn, n, kernel_size, stride, padding)
    return ops.avg_pool(input, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _output_size(fn, n, input, output_size):
    """torch's _list_with_default: an int repeated, None entries taken from the input."""
    if isinstance(output_size, numbers.Integral):
        return (int(output_size),) * n
    output_size = tuple(output_size)
    if len(output_size) != n:
        raise RuntimeError(f"{fn}: output_size must be {n}")
    return tuple(input.shape[input.ndim - n + i] if v is None else int(v) for i, v in enumerate(output_size))


def _check_1d(fn, input):
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.ndim}-dimensional tensor for argument #1 "
                           f"'self' (while checking arguments for {fn})")


def _adaptive_avg_pool(fn, n, input, output_size):
    _need_tensor(fn, "input", 1, input)
    if n == 1:
        _check_1d(fn, input)
    out = _output_size(fn, n, input, output_size)
    ops.check_adaptive(fn, input, out, _FLOATS)
    maps = tuple(("adaptive", input.shape[input.ndim - n + i], o) for i, o in enumerate(out))
    return ops.resample(input, maps)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg_pool("adaptive_avg_pool3d", 3, input, output_size)


def _adaptive_max_pool(fn, n, input, output_size):
    _need_tensor(fn, "input", 1, input)
    if n == 1:
        _check_1d(fn, input)
    return tuple(ops.adaptive_max_pool(input, _output_size(fn, n, input, output_size)))


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool1d", 1, input, output_size)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool2d", 2, input, output_size)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=False):
    return _adaptive_max_pool("adaptive_max_pool3d", 3, input, output_size)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    values, indices = adaptive_max_pool1d_with_indices(input, output_size)
    return (values, indices) if return_indices else values


def adaptive_max_pool2d(input, output_size, return_indices=False):
    values, indices = adaptive_max_pool2d_with_indices(input, output_size)
    return (values, indices) if return_indices else values


def adaptive_max_pool3d(input, output_size, return_indices=False):
    values, indices = adaptive_max_pool3d_with_indices(input, output_size)
    return (values, indices) if return_indices else values


def _lp_pool(n, input, norm_type, kernel_size, stride, ceil_mode):
    """(sum over the window of x ** p) ** (1 / p), as torch composes it from avg_pool."""
    max_pool, avg = (max_pool1d, avg_pool1d) if n == 1 else (max_pool2d, avg_pool2d) if n == 2 else \
        (max_pool3d, avg_pool3d)
    if isinstance(norm_type, (int, float)) and math.isinf(norm_type):
        pooled = max_pool(ew.abs(input) if norm_type > 0 else ew.neg(ew.abs(input)), kernel_size, stride, 0, 1,
                          ceil_mode)
        return pooled if norm_type > 0 else ew.neg(pooled)
    out = avg(ew.pow(input, norm_type), kernel_size, stride, 0, ceil_mode)
    window = math.prod(_ntuple(kernel_size, n))
    return ew.pow(ew.mul(ew.mul(ew.sign(out), ew.relu(ew.abs(out))), window), 1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# -- padding ---------------------------------------------------------------------------------------------------
_PAD_MODES = {"reflect": "reflection", "replicate": "replication", "circular": "circular"}
_PAD_DIMS = {1: (2, 3), 2: (3, 4), 3: (4, 5)}


def pad(input, pad, mode="constant", value=None):
    """F.pad: `pad` lists (left, right) pairs starting from the last dim."""
    _need_tensor("pad", "input", 1, input)
    pad = _ints(pad)
    if mode != "constant" and mode not in _PAD_MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) > 2 * input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.ndim}")
    if mode == "constant":
        return ops.constant_pad_nd(input, pad, 0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f'Padding mode "{mode}" doesn\'t take in value argument')
    n = len(pad) // 2
    if input.ndim not in _PAD_DIMS.get(n, ()):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    return ops.resample(input, _pad_maps(mode, input, pad, n))


def _pad_maps(mode, input, pad, n):
    """One resample map per padded dim, checked as torch's reflection/replication/circular pads are."""
    shape = tuple(input.shape)
    lo_dims = n + 1  # the dims that must be non-empty: channel and spatial
    if mode != "circular" and 0 in shape[-lo_dims:]:
        raise RuntimeError(f"Expected {n + 1}D or {n + 2}D (batch mode) tensor with possibly 0 batch size and other "
                           f"non-zero dimensions for input, but got: {ops.sizes(shape)}")
    if mode != "circular":
        ops.check_dtype(f"{_PAD_MODES[mode]}_pad{n}d", input, ops.REAL + (dt.complex64, dt.complex128))
    maps = []
    for j in range(n):  # j counts from the last dim
        dim = input.ndim - 1 - j
        size, lo, hi = shape[dim], pad[2 * j], pad[2 * j + 1]
        out = size + lo + hi
        if mode == "reflect" and (lo >= size or hi >= size):
            raise RuntimeError(f"Argument #{4 + 2 * j}: Padding size should be less than the corresponding input "
                               f"dimension, but got: padding ({lo}, {hi}) at dimension {dim} of input "
                               f"{ops.sizes(shape)}")
        if mode == "circular":
            if lo > size or hi > size:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            if out < 0 or (out > 0 and size + min(lo, 0) + min(hi, 0) <= 0):  # (torch reads memory it never wrote)
                raise RuntimeError("Negative padding value is resulting in an empty dimension")
        elif out < 1:
            raise RuntimeError(f"input ({'WHD'[j]}: {size}) is too small. Calculated output {'WHD'[j]}: {out}")
        maps.append((mode, size, out, lo))
    return tuple(reversed(maps))


# -- im2col / col2im -------------------------------------------------------------------------------------------

def _fold_arg(name, v):
    v = _ntuple(v, 2)
    if len(v) != 2:
        raise RuntimeError(f"It is expected {name} equals to 2, but got size {len(v)}")
    return v


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C * prod(kernel_size), L), one column per sliding block."""
    _need_tensor("unfold", "input", 1, input)
    return ops.im2col(input, _fold_arg("kernel_size", kernel_size), _fold_arg("dilation", dilation),
                      _fold_arg("padding", padding), _fold_arg("stride", stride))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the adjoint of unfold: overlapping blocks are summed."""
    _need_tensor("fold", "input", 1, input)
    return ops.col2im(input, _fold_arg("output_size", output_size), _fold_arg("kernel_size", kernel_size),
                      _fold_arg("dilation", dilation), _fold_arg("padding", padding), _fold_arg("stride", stride))


# -- shuffles --------------------------------------------------------------------------------------------------

def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r)."""
    return ops.pixel_shuffle(input, int(upscale_factor))


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W)."""
    return ops.pixel_unshuffle(input, int(downscale_factor))


def channel_shuffle(input, groups):
    """(N, g * k, *) -> (N, k * g, *): channel c of group g goes to position c * groups + g."""
    return ops.channel_shuffle(input, int(groups))


native_channel_shuffle = channel_shuffle


def constant_pad_nd(input, pad, value=0):
    """torch.constant_pad_nd: F.pad's constant mode (negative pads crop)."""
    return ops.constant_pad_nd(input, _ints(pad), value)


# -- grid sampling ---------------------------------------------------------------------------------------------
_ALIGN_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
                  "Please specify align_corners=True if the old behavior is desired. See the documentation of "
                  "grid_sample for details.")


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample input (N, C, *S) at grid (N, *O, len(S)) locations in [-1, 1] (x first)."""
    if mode not in ops.MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but "
                         f"got: '{mode}'")
    if padding_mode not in ops.PADDING_MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or "
                         f"'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, UserWarning, stacklevel=2)
        align_corners = False
    return ops.grid_sampler(input, grid, mode, padding_mode, bool(align_corners))


def grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners):
    """torch.grid_sampler: modes as torch's enums (0 bilinear, 1 nearest, 2 bicubic; 0 zeros, 1 border,
    2 reflection)."""
    return ops.grid_sampler(input, grid, ops.MODES[interpolation_mode], ops.PADDING_MODES[padding_mode],
                            bool(align_corners))


def affine_grid(theta, size, align_corners=None):
    """The sampling grid (N, *size[2:], n) of a batch of affine maps theta (N, n, n + 1)."""
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, UserWarning, stacklevel=2)
        align_corners = False
    if theta.dtype.category != 2:  # torch's is_floating_point
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = tuple(int(s) for s in size)
    if len(size) in (4, 5):
        n = len(size) - 2
        if theta.ndim != 3 or theta.shape[-2] != n or theta.shape[-1] != n + 1:
            raise ValueError(f"Expected a batch of {n}D affine matrices of shape Nx{n}x{n + 1} for size {size}. "
                             f"Got {theta.shape}.")
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    if align_corners and min(size[2:]) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size grids when "
                      "align_corners=True. This is not an intended use case of affine_grid. See the documentation "
                      "of affine_grid for details.", UserWarning, stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    return affine_grid_generator(theta, size, align_corners)


def affine_grid_generator(theta, size, align_corners):
    size = tuple(int(s) for s in size)
    if theta.shape[0] != size[0]:
        n = len(size) - 2
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: [{size[0]}, {n + 1}] but "
                           f"got: [{theta.shape[0]}, {n + 1}].")
    return ops.affine_grid_generator(theta, size, bool(align_corners))


# -- interpolation ---------------------------------------------------------------------------------------------
_NEEDS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}
_KIND = {"nearest": "nearest", "nearest-exact": "nearest-exact", "linear": "linear", "bilinear": "linear",
         "trilinear": "linear", "bicubic": "cubic"}
_UINT8_MODES = ("nearest", "nearest-exact")  # (torch's uint8 bilinear/bicubic round in fixed point: not matched)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of (N, C, *S): nearest(-exact), (bi/tri)linear, bicubic, area."""
    _need_tensor("interpolate", "input", 1, input)
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear "
                             "| bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    dim = input.ndim - 2
    output_size, scales = _interpolate_sizes(input, dim, size, scale_factor, mode, recompute_scale_factor)
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and input.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                         "tensor as input")
    need = _NEEDS.get(mode)
    if need is not None and input.ndim in (3, 4, 5) and input.ndim != need:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {need}D input")
    if input.ndim not in (3, 4, 5) or (mode not in _KIND and mode != "area"):
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
                                  "the modes: nearest | linear | bilinear | bicubic | trilinear | lanczos | area | "
                                  f"nearest-exact (got {mode})")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not implemented in vibetensor")
    if mode == "area":
        return _adaptive_avg_pool(f"adaptive_avg_pool{dim}d", dim, input, output_size)
    spatial = tuple(input.shape[2:])
    if output_size is None:  # torch's compute_output_size: int(input_size * scale)
        output_size = tuple(int(s * f) for s, f in zip(spatial, scales))
    if any(s <= 0 for s in spatial + tuple(output_size)):
        names = "DHW"[3 - dim:]
        raise RuntimeError("Input and output sizes should be greater than 0, but got input ("
                           + ", ".join(f"{n}: {s}" for n, s in zip(names, spatial)) + ") output ("
                           + ", ".join(f"{n}: {s}" for n, s in zip(names, output_size)) + ")")
    allowed = _FLOATS + ((dt.uint8,) if mode in _UINT8_MODES else ())
    kernel = f"upsample_{'nearest' if mode.startswith('nearest') else mode}{dim}d"
    ops.check_dtype(kernel, input, allowed)
    scales = scales or (None,) * dim
    kind = _KIND[mode]
    maps = tuple((kind, i, o, sc) if kind.startswith("nearest") else (kind, i, o, bool(align_corners), sc)
                 for i, o, sc in zip(spatial, output_size, scales))
    return ops.resample(input, maps)


def _interpolate_sizes(input, dim, size, scale_factor, mode, recompute_scale_factor):
    """(output_size, None) or (None, scale_factors), validated as torch's F.interpolate does."""
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                                 f"with spatial dimensions of {list(input.shape[2:])} and output size of {size}. "
                                 "Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size in "
                                 "(o1, o2, ...,oK) format.")
            if not all(isinstance(x, numbers.Integral) for x in size):
                raise TypeError(f"expected size to be one of int or Tuple[int] or Tuple[int, int] or Tuple[int, int, "
                                f"int], but got size with types {[type(x) for x in size]}")
            output_size = tuple(int(x) for x in size)
        else:
            output_size = (int(size),) * dim
        scales = None
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got "
                                 f"input with spatial dimensions of {list(input.shape[2:])} and scale_factor of shape "
                                 f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                                 "scale_factor in (s1, s2, ...,sK) format.")
            scales = tuple(float(s) for s in scale_factor)
        else:
            scales = (float(scale_factor),) * dim
        output_size = None
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" and output_size is None:
        recompute_scale_factor = True
    if recompute_scale_factor:
        output_size = tuple(math.floor(s * f) for s, f in zip(input.shape[2:], scales))
        scales = None
    return output_size, scales


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# -- attention -------------------------------------------------------------------------------------------------

def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False, *, generator=None):
    """softmax(Q K^T * scale + mask) V over (..., L, E) / (..., S, E) / (..., S, Ev); dropout on the
    attention weights draws from vibetensor's generator (values differ from torch's RNG)."""
    for name, pos, t in (("query", 1, query), ("key", 2, key), ("value", 3, value)):
        _need_tensor("scaled_dot_product_attention", name, pos, t)
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
                           f"{query.ndim} key.dim: {key.ndim} and value.dim: {value.ndim} instead.")
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else float("inf")
    dropout_mask = None
    if dropout_p > 0.0:
        dropout_mask = _dropout_mask(query, key, value, dropout_p, enable_gqa, generator)
    out, _ = ops.sdpa_math(query, key, value, attn_mask, dropout_mask, float(scale), bool(is_causal), bool(enable_gqa))
    return out


def _dropout_mask(query, key, value, p, enable_gqa, generator):
    """Keep-mask of the attention weights, scaled by 1 / (1 - p) (all zero for p == 1)."""
    from vibetensor.torch.random import bernoulli_  # (the front door's sampler: its generator handling)
    _, attn_spec = ops.sdpa_math.meta(query, key, value, None, None, 1.0, False, enable_gqa)
    mask = empty(attn_spec.shape, attn_spec.dtype, attn_spec.device)
    if p >= 1.0:
        return bernoulli_(mask, 0.0, generator=generator)
    return ew.div(bernoulli_(mask, 1.0 - p, generator=generator), 1.0 - p)


# torch.* names (torch/__init__.py exports these): torch-level forms differ from F's in a few places
# (torch.adaptive_max_pool1d returns (values, indices); torch.max_pool2d only values).
TORCH_FUNCTIONS = {
    "conv1d": conv1d, "conv2d": conv2d, "conv3d": conv3d, "conv_transpose1d": conv_transpose1d,
    "conv_transpose2d": conv_transpose2d, "conv_transpose3d": conv_transpose3d, "convolution": convolution,
    "max_pool1d": max_pool1d, "max_pool2d": max_pool2d, "max_pool3d": max_pool3d,
    "max_pool1d_with_indices": max_pool1d_with_indices, "avg_pool1d": avg_pool1d,
    "adaptive_avg_pool1d": adaptive_avg_pool1d, "adaptive_max_pool1d": adaptive_max_pool1d_with_indices,
    "pixel_shuffle": pixel_shuffle, "pixel_unshuffle": pixel_unshuffle, "channel_shuffle": channel_shuffle,
    "native_channel_shuffle": native_channel_shuffle, "constant_pad_nd": constant_pad_nd,
    "grid_sampler": grid_sampler, "affine_grid_generator": affine_grid_generator,
}

__all__ = [
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "adaptive_max_pool3d_with_indices", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "pad", "unfold", "fold", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle",
    "grid_sample", "affine_grid", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
    "scaled_dot_product_attention",
]
