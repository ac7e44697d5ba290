"""Adam (and AdamW through decoupled_weight_decay), with amsgrad and maximize.

Three implementations, as torch's: the single-tensor loop (CPU default), the foreach path (lists
of tensors, one foreach op per formula step) and the fused path (one kernel updates param,
exp_avg, exp_avg_sq and max_exp_avg_sq). On CUDA the default is the fused multi-tensor kernel:
one step over N parameters costs two launches per dtype group (step counts, update), whatever N.
With fused (or capturable) the step counts live on the device, and `lr` may be a 0-d device
tensor, so a step captured in a CUDA graph follows a scheduler that writes into it."""
import vibetensor.torch as torch
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch.optim.optimizer import (
    Optimizer, _check, _check_fused_params, _check_tensor_lr, _grad, _host_value, _implementation, _step_value,
    with_grads)

__all__ = ["Adam"]


def _check_adam_args(lr, betas, eps, weight_decay):
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
    _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        _check_tensor_lr(lr, foreach, capturable)
        _check_adam_args(_host_value(lr) if isinstance(lr, Tensor) else lr, betas, eps, weight_decay)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "foreach": foreach, "capturable": capturable,
                    "differentiable": differentiable, "fused": fused, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)
        if fused:
            if differentiable:
                raise RuntimeError("`fused` does not support `differentiable`")
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def _init_state(self, p, amsgrad, device_step=False):
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device) if device_step else \
                torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        return state

    def _update_group(self, group, params):
        impl = _implementation(group, params, True)
        if impl == "fused":
            self._fused(group, params)
        elif impl == "foreach":
            self._foreach(group, params)
        else:
            self._single(group, params)

    def _lists_for(self, group, params, device_step):
        amsgrad = group["amsgrad"]
        roles = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step")
        lists = self._state_lists(params, roles, lambda p, st: self._init_state(p, amsgrad, device_step))
        if amsgrad and any(m is None for m in lists[2]):  # amsgrad switched on after state was made
            for p in params:
                self.state[p].setdefault("max_exp_avg_sq", torch.zeros_like(p))
            self._lists.clear()
            lists = self._state_lists(params, roles, None)
        return lists

    def _fused(self, group, params):
        if group.get("fused"):
            _check_fused_params(params)
        exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = self._lists_for(group, params, True)
        device = params[0]._device
        if any(s._device is not device for s in steps):  # a loaded CPU step moves to the parameters
            for p, s in zip(params, steps):
                self.state[p]["step"] = s.to(device)
            self._lists.clear()
            exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = self._lists_for(group, params, True)
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        fused = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        fused(params, with_grads(params)[1], exp_avgs, exp_avg_sqs,
              max_exp_avg_sqs if group["amsgrad"] else [], steps, lr=group["lr"], beta1=beta1, beta2=beta2,
              weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=group["amsgrad"],
              maximize=group["maximize"])

    def _foreach(self, group, params):
        """torch's _multi_tensor_adam (step counts on the host, unless capturable)."""
        exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = self._lists_for(group, params, False)
        lr, (beta1, beta2), eps = _host_value(group["lr"]), group["betas"], group["eps"]
        weight_decay = group["weight_decay"]
        grads = [p.grad for p in params]
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        torch._foreach_add_(steps, 1)
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * weight_decay)
            elif group["maximize"]:
                torch._foreach_add_(grads, params, alpha=weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        counts = [_step_value(s) for s in steps]
        bias_correction1 = [1 - beta1 ** c for c in counts]
        bias_correction2_sqrt = [(1 - beta2 ** c) ** 0.5 for c in counts]
        step_size = [-(lr / bc) for bc in bias_correction1]
        if group["amsgrad"]:
            torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
            denom = torch._foreach_sqrt(max_exp_avg_sqs)
        else:
            denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)

    def _single(self, group, params):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        for p in params:
            state = self._init_state(p, amsgrad, group["capturable"] and p.device.type != "cpu")
            g = _grad(p, group["maximize"])
            exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
            step_t.add_(1)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * weight_decay)
                else:
                    g = g.add(p, alpha=weight_decay)
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            step = _step_value(step_t)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            step_size = lr / bias_correction1
            if amsgrad:
                max_sq = state.setdefault("max_exp_avg_sq", torch.zeros_like(p))
                torch.maximum(max_sq, exp_avg_sq, out=max_sq)
                denom = (max_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            else:
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            if isinstance(step_size, Tensor):
                p.sub_(exp_avg / denom * step_size)
            else:
                p.addcdiv_(exp_avg, denom, value=-step_size)
