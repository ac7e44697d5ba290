"""More of torch.nn.functional, composed from the functions and ops beside it (as torch composes them):
bilinear, linear_cross_entropy, multi_margin_loss, multilabel_margin_loss,
triplet_margin_with_distance_loss, local_response_norm, max_unpool1d/2d/3d.
"""
import math

from vibetensor.tensor.tensor import Tensor

__all__ = ["bilinear", "linear_cross_entropy", "multi_margin_loss", "multilabel_margin_loss",
           "triplet_margin_with_distance_loss", "local_response_norm", "max_unpool1d", "max_unpool2d", "max_unpool3d",
           "embedding_bag", "pdist"]


def _no_half(kernel, x):
    """torch's CPU kernels of these have no half types."""
    import vibetensor.torch as torch
    if x.dtype in (torch.bfloat16, torch.float16):
        from vibetensor.ops.meta import TYPE_NAMES
        raise NotImplementedError(f'"{kernel}" not implemented for \'{TYPE_NAMES[x.dtype]}\'')


def _libs():
    """(the front door, nn.functional): imported at call time, this module is part of both."""
    import vibetensor.torch as torch
    from vibetensor.torch.nn import functional as F
    return torch, F


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = input1[..., i] weight[o, i, j] input2[..., j] + bias[o]."""
    torch, _ = _libs()
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {tuple(input1.shape[:-1])} and "
                           f"{tuple(input2.shape[:-1])}")
    if weight.ndim != 3 or weight.shape[1] != input1.shape[-1] or weight.shape[2] != input2.shape[-1]:
        raise RuntimeError(f"bilinear(): weight of shape {tuple(weight.shape)} does not match inputs with "
                           f"{input1.shape[-1]} and {input2.shape[-1]} features")
    y = torch.einsum("...i,oij,...j->...o", input1, weight, input2)
    return y if bias is None else y + bias


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None, reduction="mean",
                         ignore_index=None, label_smoothing=0.0, options=None):
    """cross_entropy(linear(input, linear_weight, linear_bias), target, ...); a linear_weight
    (C, *out, in) gives K-dimensional logits (*batch, C, *out)."""
    torch, F = _libs()
    if input.ndim not in (1, 2):
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {input.ndim}")
    if linear_weight.ndim < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {linear_weight.ndim}")
    if input.shape[-1] != linear_weight.shape[-1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions (in_features), got "
                           f"{input.shape[-1]} and {linear_weight.shape[-1]}, respectively")
    classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != (classes, *out_features):
        raise RuntimeError(f"expected linear_bias shape {(classes, *out_features)}, got {tuple(linear_bias.shape)}")
    if out_features and input.ndim == 1:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape {tuple(linear_weight.shape)} requires "
                           f"batched input, (N, {input.shape[-1]}), got unbatched input with shape "
                           f"{tuple(input.shape)}")
    if out_features:  # (*batch, in) @ (in, C * out) -> (*batch, C, *out)
        flat = torch.matmul(input, linear_weight.reshape(-1, linear_weight.shape[-1]).mT)
        logits = flat.reshape(tuple(input.shape[:-1]) + (classes,) + out_features)
        logits = logits if linear_bias is None else logits + linear_bias
    else:
        logits = F.linear(input, linear_weight, linear_bias)
    return F.cross_entropy(logits, target, weight=weight, reduction=reduction,
                           ignore_index=-100 if ignore_index is None else ignore_index, label_smoothing=label_smoothing)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean"):
    """sum over j != y of max(0, margin - x[y] + x[j])^p (times weight[y]), divided by the classes."""
    torch, F = _libs()
    reduction = F._reduction(size_average, reduce, reduction)
    _no_half("multi_margin_loss_cpu_kernel", input)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if input.ndim > 2 or input.ndim == 2 and target.ndim != 1 or input.ndim < 2 and target.ndim > 1:
        raise RuntimeError(f"inconsistent target size, expected {input.shape[0] if input.ndim == 2 else 1} but got "
                           f"{list(target.shape)}")
    x = input.reshape(1, -1) if input.ndim < 2 else input    # (N, C)
    y = target.reshape(-1, 1)                                 # (N, 1)
    classes = x.shape[1]
    picked = x.gather(1, y)                                   # (N, 1)
    hinge = (margin - picked + x).clamp(min=0)
    hinge = hinge if p == 1 else hinge * hinge
    if weight is not None:
        hinge = hinge * weight[y]
    not_target = torch.arange(classes, device=x.device).reshape(1, -1) != y
    loss = (hinge * not_target).sum(1) / classes              # (N,)
    loss = loss.reshape(target.shape) if input.ndim == 2 else loss.reshape(())
    return F._reduce(loss, reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """sum over target classes j (the indices before the first -1) and non-target classes i of
    max(0, 1 - (x[j] - x[i])), divided by the classes."""
    torch, F = _libs()
    reduction = F._reduction(size_average, reduce, reduction)
    _no_half("multilabel_margin_loss_forward_out_frame", input)
    if input.shape != target.shape:
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size: {list(input.shape)}")
    x = input.reshape(1, -1) if input.ndim < 2 else input    # (N, C)
    t = target.reshape(x.shape)
    classes = x.shape[1]
    valid = torch.cumprod((t >= 0).to(torch.int64), 1)       # the entries before the first -1
    idx = (t * valid).clamp(min=0)
    is_target = torch.zeros(x.shape, dtype=torch.int64, device=x.device).scatter_add(1, idx, valid) > 0
    picked = x.gather(1, idx)                                 # (N, T)
    hinge = (1 - picked.unsqueeze(2) + x.unsqueeze(1)).clamp(min=0)  # (N, T, C)
    mask = valid.unsqueeze(2).to(x.dtype) * (~is_target).unsqueeze(1).to(x.dtype)
    loss = (hinge * mask).sum((1, 2)) / classes
    loss = loss.reshape(()) if input.ndim < 2 else loss
    return F._reduce(loss, reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0), d = distance_function or pairwise_distance; with swap the
    negative distance is min(d(a, n), d(p, n))."""
    torch, F = _libs()
    if margin <= 0:
        raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater than 0, got {margin} instead")
    dist = distance_function if distance_function is not None else F.pairwise_distance
    d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
    if swap:
        d_neg = torch.minimum(d_neg, dist(positive, negative))
    loss = (margin + d_pos - d_neg).clamp(min=0)
    return F._reduce(loss, F._reduction(None, None, reduction))


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """input / (k + alpha * mean of squares over `size` neighbouring channels)^beta (torch's composite)."""
    _, F = _libs()
    dim = input.ndim
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    div = input * input
    if dim == 3:
        div = F.pad(div.unsqueeze(1), (0, 0, size // 2, (size - 1) // 2))
        div = F.avg_pool2d(div, (size, 1), stride=1).squeeze(1)
    else:
        sizes = tuple(input.shape)
        div = div.reshape(sizes[0], 1, sizes[1], sizes[2], -1)
        div = F.pad(div, (0, 0, 0, 0, size // 2, (size - 1) // 2))
        div = F.avg_pool3d(div, (size, 1, 1), stride=1).squeeze(1).reshape(sizes)
    return input / (div * alpha + k) ** beta


def _tuple(x, n):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,) * n


def _max_unpool(n, name):
    def unpool(input, indices, kernel_size, stride=None, padding=0, output_size=None):
        """Each value of input written at its flat index (from max_pool with return_indices) of a zero
        output whose spatial size is (in - 1) * stride - 2 * padding + kernel, or output_size."""
        torch, _ = _libs()
        if not isinstance(input, Tensor) or not isinstance(indices, Tensor):
            raise TypeError(f"{name}(): expected Tensor arguments")
        if indices.dtype is not torch.int64:
            raise RuntimeError(f"elements in indices should be type int64 but got: {indices.dtype}")
        kernel = _tuple(kernel_size, n)
        stride_ = _tuple(stride if stride is not None else kernel_size, n)
        pad = _tuple(padding, n)
        spatial_in = tuple(input.shape[-n:])
        if output_size is None:
            spatial = tuple((i - 1) * s - 2 * p + k for i, s, p, k in zip(spatial_in, stride_, pad, kernel))
        else:
            spatial = tuple(output_size)[-n:]
        lead = tuple(input.shape[:-n])                         # (N, C) or (C,)
        flat_in = input.reshape(lead + (-1,))
        flat_idx = indices.reshape(lead + (-1,))
        size = math.prod(spatial)
        if flat_idx.numel() and (flat_idx.min().item() < 0 or flat_idx.max().item() >= size):
            raise RuntimeError(f"Found an invalid max index: {flat_idx.max().item()} (output volumes are of size "
                               f"{'x'.join(map(str, spatial))}")
        out = torch.zeros(lead + (size,), dtype=input.dtype, device=input.device)
        return out.scatter(-1, flat_idx, flat_in).reshape(lead + spatial)
    unpool.__name__ = name
    return unpool


max_unpool1d = _max_unpool(1, "max_unpool1d")
max_unpool2d = _max_unpool(2, "max_unpool2d")
max_unpool3d = _max_unpool(3, "max_unpool3d")


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxima of bags of embedding rows: the rows of a 2-D input, or the runs of a 1-D
    input starting at `offsets`. Entries equal to padding_idx (and, with include_last_offset, those past
    the last offset) are left out: they go to an extra bag that is dropped. Empty bags give zeros."""
    torch, F = _libs()
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, but got {mode}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences.")
        bags, length = input.shape
        seg = torch.arange(bags, device=input.device).repeat_interleave(length)
        flat = input.reshape(-1)
        psw = per_sample_weights.reshape(-1) if per_sample_weights is not None else None
    elif input.ndim == 1:
        if offsets is None or offsets.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor but got None" if offsets is None else
                             "offsets has to be a 1D Tensor")
        flat, psw = input, per_sample_weights
        bags = offsets.shape[0] - (1 if include_last_offset else 0)
        positions = torch.arange(flat.shape[0], device=input.device)
        seg = torch.searchsorted(offsets, positions, right=True) - 1   # the bag each entry falls in
        # past the last offset: dropped (torch's max mode keeps them in the last bag: so do we)
        seg = torch.where(seg >= bags, bags - 1 if mode == "max" and bags > 0 else bags, seg)
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    if padding_idx is not None:
        pad = padding_idx + weight.shape[0] if padding_idx < 0 else padding_idx
        seg = torch.where(flat == pad, bags, seg)
    rows = F.embedding(flat, weight, None, max_norm, norm_type, scale_grad_by_freq)  # (n, D)
    if psw is not None:
        rows = rows * psw.unsqueeze(1)
    width = weight.shape[1]
    zeros = torch.zeros(bags + 1, width, dtype=rows.dtype, device=rows.device)
    if mode == "max":
        out = zeros.scatter_reduce(0, seg.unsqueeze(1).expand(-1, width), rows, "amax", include_self=False)
        return out[:bags]
    out = zeros.index_add(0, seg, rows)[:bags]
    if mode == "mean":
        counts = torch.zeros(bags + 1, dtype=rows.dtype, device=rows.device).index_add(
            0, seg, torch.ones(seg.shape[0], dtype=rows.dtype, device=rows.device))[:bags]
        out = out / counts.clamp(min=1).unsqueeze(1)
    return out


def pdist(input, p=2.0):
    """The p-norm distance between every pair of rows i < j of input (N, M), in row-major pair order: (N(N-1)/2,)."""
    torch, _ = _libs()
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    _no_half("pdist", input)
    n = input.shape[0]
    i, j = torch.triu_indices(n, n, 1, device=input.device)
    return torch.linalg.vector_norm(input[i] - input[j], p, -1)
