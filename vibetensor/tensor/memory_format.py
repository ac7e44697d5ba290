"""Memory formats: torch.contiguous_format, channels_last, channels_last_3d, preserve_format, and the
stride rules torch applies with them (c10's get_channels_last_strides, is_channels_last_strides,
suggest_memory_format, compute_channels_last_contiguous).
"""
from vibetensor.tensor import shape as sh


class memory_format:
    """One of torch's four memory formats (compare with `is`)."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"

    def __reduce__(self):
        return self.name


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
preserve_format = memory_format("preserve_format")

# channels-last dim order, fastest first: C, then W, H, (D,) N
_ORDER = {channels_last: (1, 3, 2, 0), channels_last_3d: (1, 4, 3, 2, 0)}
_RANK = {channels_last: 4, channels_last_3d: 5}


def check(fmt, name="memory_format"):
    """fmt if it is a memory format or None, else torch's TypeError."""
    if fmt is not None and not isinstance(fmt, memory_format):
        raise TypeError(f"{name} must be torch.memory_format, not {type(fmt).__name__}")
    return fmt


def channels_last_strides(shape, fmt=channels_last):
    """Strides of a new channels-last tensor (raw sizes, so a size-0 dim gives zero strides, as c10)."""
    rank = _RANK[fmt]
    if len(shape) != rank:
        raise RuntimeError(f"required rank {rank} tensor to use {fmt.name} format")
    stride, acc = [0] * rank, 1
    for d in _ORDER[fmt]:
        stride[d] = acc
        acc *= shape[d]
    return tuple(stride)


def is_channels_last_contiguous(shape, stride, fmt=channels_last):
    """x.is_contiguous(memory_format=fmt): the channels-last strides, size-1 dims free."""
    order = _ORDER[fmt]
    if len(shape) != len(order):
        return False
    expected = 1
    for d in order:
        if shape[d] != 1:
            if stride[d] != expected:
                return False
            expected *= shape[d]
    return True


def is_contiguous(shape, stride, fmt=None):
    if fmt in _ORDER:
        return is_channels_last_contiguous(shape, stride, fmt)
    return sh.is_contiguous(shape, stride)


def is_channels_last_strides(shape, stride, fmt=channels_last):
    """Do the strides look channels-last (c10's is_channels_last_strides_2d/3d; ambiguous cases say no)?"""
    order = _ORDER[fmt]
    if len(shape) != len(order) or stride[1] == 0:
        return False
    least = 0
    for d in order:
        if shape[d] == 0 or stride[d] < least or (d == 0 and least == stride[1]):
            return False
        least = stride[d] * (shape[d] if shape[d] > 1 else 1)
    return True


def suggest(shape, stride):
    """torch's suggest_memory_format: the channels-last format whose strides these look like, else contiguous."""
    for fmt in (channels_last, channels_last_3d):
        if is_channels_last_strides(shape, stride, fmt):
            return fmt
    return contiguous_format


def is_non_overlapping_and_dense(shape, stride):
    """torch's test: some permutation of the dims is contiguous (size-0/1 dims don't count)."""
    dims = sorted((i for i in range(len(shape)) if shape[i] >= 2), key=lambda i: stride[i])
    expected = 1
    for i in dims:
        if stride[i] != expected:
            return False
        expected *= shape[i]
    return True


def strides_for(shape, stride, fmt=None):
    """Strides of a new tensor shaped `shape` made like one with `stride` in format fmt (None means
    preserve: the old strides when dense, else the suggested format's)."""
    if fmt is None or fmt is preserve_format:
        if is_non_overlapping_and_dense(shape, stride):
            return tuple(stride)
        fmt = suggest(shape, stride)
    if fmt in _ORDER:
        return channels_last_strides(shape, fmt)
    return sh.contiguous_strides(shape)


def keeps_layout(shape, stride, fmt=None):
    """Would a copy in format fmt have these very strides' format (torch's to() aliasing test)?"""
    return fmt is None or fmt is preserve_format or suggest(shape, stride) is fmt
