"""SGD with momentum, dampening, Nesterov, weight decay, maximize: torch's single-tensor, foreach
and fused algorithms (the fused one is the CUDA default: one launch per dtype group)."""
import vibetensor.torch as torch
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.optim.optimizer import (
    Optimizer, _check, _check_fused_params, _check_tensor_lr, _grad, _host_value, _implementation, with_grads)

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
                 foreach=None, differentiable=False, fused=None):
        _check_tensor_lr(lr, False, True)
        _check(_host_value(lr) >= 0.0 if isinstance(lr, Tensor) else lr >= 0.0, f"Invalid learning rate: {lr}")
        _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
        _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize, "foreach": foreach, "differentiable": differentiable,
                    "fused": fused}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)
        if fused:
            if differentiable:
                raise RuntimeError("`fused` does not support `differentiable`")
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def _update_group(self, group, params):
        impl = _implementation(group, params, True)
        if impl == "fused":
            self._fused(group, params)
        elif impl == "foreach":
            self._foreach(group, params)
        else:
            self._single(group, params)

    def _buffers(self, params):
        return self._state_lists(params, ("momentum_buffer",), lambda p, st: None)[0]

    def _store_buffers(self, params, bufs):
        for p, b in zip(params, bufs):
            self.state[p]["momentum_buffer"] = b
        self._lists.clear()  # the cached lists held None for these buffers

    def _fused(self, group, params):
        if group.get("fused"):
            _check_fused_params(params)
        momentum = group["momentum"]
        bufs = self._buffers(params) if momentum != 0 else []
        first = momentum != 0 and bufs[0] is None
        if first:
            bufs = [b if b is not None else torch.empty_like(p) for p, b in zip(params, bufs)]
            self._store_buffers(params, bufs)
        torch._fused_sgd_(params, with_grads(params)[1], bufs, weight_decay=group["weight_decay"],
                          momentum=momentum, lr=group["lr"], dampening=group["dampening"],
                          nesterov=group["nesterov"], maximize=group["maximize"], is_first_step=first)

    def _foreach(self, group, params):
        """torch's _multi_tensor_sgd."""
        lr, momentum, dampening = _host_value(group["lr"]), group["momentum"], group["dampening"]
        weight_decay = group["weight_decay"]
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        if weight_decay != 0:
            if group["maximize"]:
                torch._foreach_add_(grads, params, alpha=weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum != 0:
            bufs = self._buffers(params)
            if all(b is not None for b in bufs):
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1 - dampening)
            else:
                bufs = [g.clone().detach() if b is None else b.mul_(momentum).add_(g, alpha=1 - dampening)
                        for g, b in zip(grads, bufs)]
                self._store_buffers(params, bufs)
            if group["nesterov"]:
                torch._foreach_add_(grads, bufs, alpha=momentum)
            else:
                grads = bufs
        torch._foreach_add_(params, grads, alpha=-lr)

    def _single(self, group, params):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for p in params:
            g = _grad(p, group["maximize"])
            if weight_decay != 0:
                g = g.add(p, alpha=weight_decay)
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.clone().detach()
                else:
                    buf.mul_(momentum).add_(g, alpha=1 - dampening)
                g = g.add(buf, alpha=momentum) if nesterov else buf
            if isinstance(lr, Tensor):
                p.sub_(g * lr)
            else:
                p.add_(g, alpha=-lr)
