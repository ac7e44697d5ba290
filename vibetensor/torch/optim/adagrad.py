"""Adagrad with lr decay, weight decay, initial accumulator value, maximize."""
import vibetensor.torch as torch
from vibetensor.torch.optim.optimizer import Optimizer, _check, _grad, _step_value

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

    def _update_group(self, group, params):
        lr, lr_decay, eps, weight_decay = group["lr"], group["lr_decay"], group["eps"], group["weight_decay"]
        for p in params:
            state = self.state[p]
            if not state:  # a group added after construction
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
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
