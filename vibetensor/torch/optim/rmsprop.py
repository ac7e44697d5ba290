"""RMSprop with centering, momentum, weight decay, maximize."""
import vibetensor.torch as torch
from vibetensor.torch.optim.optimizer import Optimizer, _check, _grad, _host_value, _implementation

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
        defaults = {"lr": lr, "momentum": momentum, "alpha": alpha, "eps": eps, "centered": centered,
                    "weight_decay": weight_decay, "capturable": capturable, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable}
        super().__init__(params, defaults)

    def _init_state(self, p, group):
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["square_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        return state

    def _update_group(self, group, params):
        if _implementation(group, params, False) == "foreach":
            self._foreach(group, params)
        else:
            self._single(group, params)

    def _foreach(self, group, params):
        """torch's _multi_tensor_rmsprop: each formula step one launch per dtype group on CUDA."""
        lr, alpha, eps, momentum = _host_value(group["lr"]), group["alpha"], group["eps"], group["momentum"]
        square_avgs, grad_avgs, bufs, steps = self._state_lists(
            params, ("square_avg", "grad_avg", "momentum_buffer", "step"), lambda p, st: self._init_state(p, group))
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        torch._foreach_add_(steps, 1)
        if group["weight_decay"] != 0:
            if group["maximize"]:
                torch._foreach_add_(grads, params, alpha=group["weight_decay"])
            else:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, 1 - alpha)
        if group["centered"]:
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            avg = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, -1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, eps)
        if momentum > 0:
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_addcdiv_(bufs, grads, avg)
            torch._foreach_add_(params, bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, avg, -lr)

    def _single(self, group, params):
        lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
        for p in params:
            state = self._init_state(p, group)
            g = _grad(p, group["maximize"])
            state["step"].add_(1)
            if group["weight_decay"] != 0:
                g = g.add(p, alpha=group["weight_decay"])
            square_avg = state["square_avg"]
            square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
            if group["centered"]:
                grad_avg = state["grad_avg"]
                grad_avg.lerp_(g, 1 - alpha)
                avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(eps)
            if momentum > 0:
                buf = state["momentum_buffer"]
                buf.mul_(momentum).addcdiv_(g, avg)
                p.add_(buf, alpha=-lr)
            else:
                p.addcdiv_(g, avg, value=-lr)
