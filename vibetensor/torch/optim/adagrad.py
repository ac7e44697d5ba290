"""Adagrad with lr decay, weight decay, initial accumulator value, maximize."""
import vibetensor.torch as torch
from vibetensor.torch.optim.optimizer import Optimizer, _check, _grad, _host_value, _implementation, _step_value

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check(0.0 <= lr, f"Invalid learning rate: {lr}")
        _check(0.0 <= lr_decay, f"Invalid lr_decay value: {lr_decay}")
        _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
        _check(0.0 <= initial_accumulator_value,
               f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
        if fused:
            raise NotImplementedError("Adagrad(fused=True) is not supported by vibetensor")
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "foreach": foreach, "maximize": maximize,
                    "differentiable": differentiable, "fused": fused}
        super().__init__(params, defaults)
        # the accumulators exist from construction, as in torch
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["sum"] = torch.full_like(p, group["initial_accumulator_value"])

    def _init_state(self, p, state, group):
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"])

    def _update_group(self, group, params):
        if _implementation(group, params, False) == "foreach":
            self._foreach(group, params)
        else:
            self._single(group, params)

    def _foreach(self, group, params):
        """torch's _multi_tensor_adagrad."""
        lr, lr_decay, eps, weight_decay = _host_value(group["lr"]), group["lr_decay"], group["eps"], \
            group["weight_decay"]
        sums, steps = self._state_lists(params, ("sum", "step"), lambda p, st: self._init_state(p, st, group))
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        torch._foreach_add_(steps, 1)
        if weight_decay != 0:
            if group["maximize"]:
                torch._foreach_add_(grads, params, alpha=weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        minus_clr = [-lr / (1 + (_step_value(s) - 1) * lr_decay) for s in steps]
        torch._foreach_addcmul_(sums, grads, grads, 1)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, eps)
        if weight_decay != 0 or group["maximize"]:
            torch._foreach_mul_(grads, minus_clr)
            numerator = grads
        else:
            numerator = torch._foreach_mul(grads, minus_clr)
        torch._foreach_addcdiv_(params, numerator, std)

    def _single(self, group, params):
        lr, lr_decay, eps, weight_decay = group["lr"], group["lr_decay"], group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            if not state:  # a group added after construction
                self._init_state(p, state, group)
            g = _grad(p, group["maximize"])
            state["step"].add_(1)
            step = _step_value(state["step"])
            if weight_decay != 0:
                g = g.add(p, alpha=weight_decay)
            clr = lr / (1 + (step - 1) * lr_decay)
            state["sum"].addcmul_(g, g, value=1)
            std = state["sum"].sqrt().add_(eps)
            if isinstance(clr, torch.Tensor):
                p.sub_(g / std * clr)
            else:
                p.addcdiv_(g, std, value=-clr)
