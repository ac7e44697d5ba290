"""Gradient clipping. The total norm stays a tensor (no host sync) unless error_if_nonfinite asks."""
import vibetensor.torch as torch
from vibetensor.autograd.grad_mode import no_grad
from vibetensor.ops import foreach as fe
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.optim.optimizer import with_grads

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _tensor_list(tensors):
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _check_foreach(foreach, tensors):
    """foreach=True is honoured (as a plain loop) on the devices torch has foreach kernels for."""
    if foreach:
        bad = [t._device.type for t in tensors if t._device.type not in ("cpu", "cuda")]
        if bad:
            raise RuntimeError(f"foreach=True was passed, but can't use the foreach API on {bad[0]} tensors")


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
    if foreach is not False and all(t._device.type == "cuda" for t in tensors):
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


@no_grad()
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    _scale(with_grads(_tensor_list(parameters))[1], max_norm, total_norm, foreach)


def _scale(grads, max_norm, total_norm, foreach):
    """grads *= min(1, max_norm / (total_norm + eps)), without reading the norm on the host."""
    if grads:
        _check_foreach(foreach, grads)
        fe.mul_by_(grads, fe.clip_coef(total_norm, max_norm), foreach is not False)


@no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    grads = with_grads(_tensor_list(parameters))[1]
    if grads and grads[0]._device.type == "cuda" and foreach is not False and not error_if_nonfinite:
        # one op: the total norm, the coefficient and the scaling from one multi-tensor table
        return fe.OPS["_clip_by_total_norm_"](grads, float(max_norm), float(norm_type))
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    _scale(grads, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    import warnings
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


@no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    clip_value = float(clip_value)
    grads = with_grads(_tensor_list(parameters))[1]
    _check_foreach(foreach, grads)
    if not grads:
        return
    if foreach is False:
        for g in grads:
            g.clamp_(min=-clip_value, max=clip_value)
    else:  # one launch per dtype group on CUDA
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
