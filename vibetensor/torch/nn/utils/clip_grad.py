"""Gradient clipping. The total norm stays a tensor (no host sync) unless error_if_nonfinite asks."""
import vibetensor.torch as torch
from vibetensor.autograd.grad_mode import no_grad
from vibetensor.tensor.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _tensor_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _check_foreach(foreach, tensors):
    """foreach=True is honoured (as a plain loop) on the devices torch has foreach kernels for."""
    bad = [t.device.type for t in tensors if t.device.type not in ("cpu", "cuda")]
    if foreach and bad:
        bad = bad[0]
        raise RuntimeError(f"foreach=True was passed, but can't use the foreach API on {bad} tensors")


@no_grad()
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """The norm of the tensors' norms. On CUDA (foreach None or True) it is computed by the
    multi-tensor kernels, a constant number of launches and no host read; error_if_nonfinite
    reads the result on the host, the one sync it asks for."""
    tensors = [t for t in _tensor_list(tensors) if t is not None]
    if not tensors:
        return torch.tensor(0.0)
    _check_foreach(foreach, tensors)
    norm_type = float(norm_type)
    if foreach is not False and all(t.device.type == "cuda" for t in tensors):
        total_norm = torch._total_norm(tensors, norm_type)
    else:
        device = tensors[0].device
        norms = [torch.linalg.vector_norm(t, norm_type).to(device) for t in tensors]
        total_norm = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and not bool(torch.isfinite(total_norm)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
                           "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
                           "anyway, set `error_if_nonfinite=False`")
    return total_norm


def _clamp_max_one(coef):
    """min(coef, 1) on coef's device (clamp where the device has it, else minimum with a 0-d one)."""
    try:
        return torch.clamp(coef, max=1.0)
    except NotImplementedError:
        return torch.minimum(coef, torch.ones((), dtype=coef.dtype, device=coef.device))


@no_grad()
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    grads = [p.grad for p in _tensor_list(parameters) if p.grad is not None]
    if not grads:
        return
    _check_foreach(foreach, grads)
    # scale by min(1, max_norm / (norm + eps)) without reading the norm on the host
    clip_coef_clamped = _clamp_max_one(float(max_norm) / (total_norm + 1e-6))
    by_device = {}
    for g in grads:
        by_device.setdefault((g.device, g.dtype), []).append(g)
    for (device, dtype), gs in by_device.items():
        coef = clip_coef_clamped.to(device, dtype)
        if foreach is False:
            for g in gs:
                g.mul_(coef)
        else:
            torch._foreach_mul_(gs, coef)


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    parameters = _tensor_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    import warnings
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    clip_value = float(clip_value)
    grads = [p.grad for p in _tensor_list(parameters) if p.grad is not None]
    _check_foreach(foreach, grads)
    if not grads:
        return
    if foreach is False:
        for g in grads:
            g.clamp_(min=-clip_value, max=clip_value)
    else:  # one launch per dtype group on CUDA
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
