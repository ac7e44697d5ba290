"""torch.nn.utils: gradient clipping and parameter/vector conversion."""
from vibetensor.torch.nn.utils.clip_grad import (  # noqa: F401
    clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm)


def parameters_to_vector(parameters):
    import vibetensor.torch as torch
    return torch.cat([p.view(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    import vibetensor.torch as torch
    if not isinstance(vec, torch.Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {torch.typename(vec) if hasattr(torch, 'typename') else type(vec).__name__}")
    pointer = 0
    for param in parameters:
        n = param.numel()
        param.data = vec[pointer:pointer + n].view_as(param).data
        pointer += n
