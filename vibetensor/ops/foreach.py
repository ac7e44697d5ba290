"""Foreach ops (torch._foreach_*) and the fused optimizer steps (torch._fused_adam_, ...).

A foreach op applies one elementwise op to every tensor of a list (with a second list, a number,
a list of numbers, or a 0-d tensor as the other operand). Its meaning is the loop of per-tensor
ops written here (`LOOPS`): the CPU kernel is that loop, so is the Autograd kernel (each per-tensor
op records its own node), and the CUDA kernel replaces it by one multi-tensor launch per dtype
group where it can (backends/cuda/foreach.py), falling back to the loop where it cannot.

Calling convention, as every op here: in-place = the op called with out=<first list>, and then
it returns None (torch's in-place foreach ops return nothing); out-of-place returns a list.

    _foreach_add(tensors, other, alpha=1, out=None)     other: list | number | numbers | 0-d tensor
    _foreach_sqrt(tensors, out=None)                     (and the other unary ops)
    _foreach_addcmul(tensors, t1, t2, value=1, out=None) value: number | numbers
    _foreach_lerp(tensors, ends, weight, out=None)       weight: number | list
    _foreach_norm(tensors, ord=2, dtype=None) -> list of 0-d tensors
    _fused_adam_ / _fused_adamw_ / _fused_sgd_ : torch's signatures, positional
    _total_norm(tensors, ord) -> 0-d tensor: the norm of the per-tensor norms (clip_grad_norm_)
    _clip_by_total_norm_(tensors, max_norm, ord) -> 0-d tensor: clip_grad_norm_ itself: the total
        norm, and every tensor scaled in place by clip_coef(total, max_norm)
"""
import math
from itertools import repeat

from vibetensor.dispatch import DispatchKey, declare
from vibetensor.ops import creation as cr
from vibetensor.ops import elementwise as ew
from vibetensor.ops import joining as jn
from vibetensor.ops import linalg as la
from vibetensor.ops import reduction as red
from vibetensor.ops import shape_ops as so
from vibetensor.tensor.tensor import Tensor

_NUMBERS = (bool, int, float)

# the kind of a foreach op's "other" operand
LIST, SCALAR, SCALARLIST, TENSOR = "list", "scalar", "scalarlist", "tensor"


# -- validation (torch's check_foreach_api_restrictions) ------------------------------------------------

def tensor_list(op, x, arg="self", pos=1):
    if not isinstance(x, (list, tuple)) or not all(map(isinstance, x, repeat(Tensor))):  # (C loop: no generator)
        raise TypeError(f"{op}(): argument '{arg}' (position {pos}) must be tuple of Tensors, not "
                        f"{type(x).__name__}")
    if not x:
        raise RuntimeError(f"{op}: Tensor list must have at least one tensor.")
    return x


def same_length(op, a, b):
    if len(a) != len(b):
        raise RuntimeError(f"{op}: Tensor lists must have the same number of tensors, got {len(a)} and {len(b)}")


def other_kind(op, tensors, other, arg="other"):
    """LIST, SCALAR, SCALARLIST or TENSOR, checking lengths against `tensors`."""
    if isinstance(other, Tensor):
        if other.ndim != 0:
            raise RuntimeError(f"{op}: scalar tensor expected to be 0 dim but it has {other.ndim} dimensions and "
                               f"{other.numel()} elements.")
        return TENSOR
    if isinstance(other, _NUMBERS):
        return SCALAR
    if isinstance(other, (list, tuple)) and other and all(isinstance(x, Tensor) for x in other):
        same_length(op, tensors, other)
        return LIST
    if isinstance(other, (list, tuple)) and all(isinstance(x, _NUMBERS) for x in other):
        if len(other) != len(tensors):
            raise RuntimeError(f"{op}: Tensor list must have same number of elements as scalar list, got "
                               f"{len(tensors)} and {len(other)}")
        return SCALARLIST
    raise TypeError(f"{op}(): argument '{arg}' must be a Tensor list, a number, a list of numbers or a 0-d "
                    f"Tensor, not {type(other).__name__}")


def check_out(op, tensors, out):
    """out= is the first list itself (in-place) or a list of the same length."""
    if out is not None and out is not tensors:
        tensor_list(op, out, "out")
        same_length(op, tensors, out)


def item(other, kind, i):
    return other[i] if kind in (LIST, SCALARLIST) else other


# -- the loops: each op's meaning, one per-tensor op per element ------------------------------------

def _finish(out, results):
    return None if out is not None else results


def _outs(tensors, out):
    return out if out is not None else [None] * len(tensors)


def _binary_loop(name, per_tensor):
    def loop(tensors, other, *rest, out=None):
        tensor_list(name, tensors)
        kind = other_kind(name, tensors, other)
        check_out(name, tensors, out)
        return _finish(out, [per_tensor(t, item(other, kind, i), *rest, out=o)
                             for i, (t, o) in enumerate(zip(tensors, _outs(tensors, out)))])
    return loop


def _unary_loop(name, per_tensor):
    def loop(tensors, out=None):
        tensor_list(name, tensors)
        check_out(name, tensors, out)
        return _finish(out, [per_tensor(t, out=o) for t, o in zip(tensors, _outs(tensors, out))])
    return loop


def _pointwise_loop(name, per_tensor):
    """addcmul / addcdiv: tensors + value * f(t1, t2), value a number or a list of numbers."""
    def loop(tensors, tensors1, tensors2, value=1, out=None):
        tensor_list(name, tensors)
        tensor_list(name, tensors1, "tensor1", 2)
        tensor_list(name, tensors2, "tensor2", 3)
        same_length(name, tensors, tensors1)
        same_length(name, tensors, tensors2)
        kind = other_kind(name, tensors, value, "scalars")
        if kind not in (SCALAR, SCALARLIST):
            raise NotImplementedError(f"{name}: value must be a number or a list of numbers")
        check_out(name, tensors, out)
        return _finish(out, [per_tensor(t, a, b, item(value, kind, i), out=o) for i, (t, a, b, o) in
                             enumerate(zip(tensors, tensors1, tensors2, _outs(tensors, out)))])
    return loop


def _lerp_loop(tensors, ends, weight, out=None):
    name = "_foreach_lerp"
    tensor_list(name, tensors)
    tensor_list(name, ends, "tensors1", 2)
    same_length(name, tensors, ends)
    kind = other_kind(name, tensors, weight, "weight")
    check_out(name, tensors, out)
    return _finish(out, [ew.lerp(t, e, item(weight, kind, i), out=o)
                         for i, (t, e, o) in enumerate(zip(tensors, ends, _outs(tensors, out)))])


def _maximum(t, other, out=None):
    # with a number, torch's foreach maximum is clamp_min (NaN propagates either way)
    return ew.maximum(t, other, out=out) if isinstance(other, Tensor) else ew.clamp(t, other, None, out=out)


def _minimum(t, other, out=None):
    return ew.minimum(t, other, out=out) if isinstance(other, Tensor) else ew.clamp(t, None, other, out=out)


def _zero(t, out=None):
    return so.fill(t, 0, out=t)


def _norm_loop(tensors, ord=2, dtype=None):  # noqa: A002
    tensor_list("_foreach_norm", tensors)
    return [red.vector_norm(t, ord, None, False, dtype) for t in tensors]


def _copy_loop(tensors, src, non_blocking=False, out=None):
    tensor_list("_foreach_copy_", tensors)
    tensor_list("_foreach_copy_", src, "src", 2)
    same_length("_foreach_copy_", tensors, src)
    for t, s in zip(tensors, src):
        cr.copy_(t, s)


def _total_norm_loop(tensors, ord):  # noqa: A002
    """torch's get_total_norm: the norm of the stacked per-tensor norms (on the first tensor's device)."""
    tensor_list("_total_norm", tensors)
    device = tensors[0]._device
    norms = [red.vector_norm(t, ord, None, False, None) for t in tensors]
    norms = [cr.to(n, n._dtype, device) for n in norms]
    return red.vector_norm(jn.stack(norms, 0), ord, None, False, None)


def clip_coef(total_norm, max_norm):
    """min(1, max_norm / (total_norm + 1e-6)) as torch's clip_grads_with_norm_ computes it (torch's
    number / tensor is tensor.reciprocal() * number), on the norm's device: no host read."""
    return ew.clamp(ew.mul(ew.reciprocal(ew.add(total_norm, 1e-6, 1)), float(max_norm)), None, 1.0)


def mul_by_(tensors, coef, foreach=True):
    """Every tensor *= coef (a 0-d tensor) cast to the tensor's device and dtype: one foreach op
    per (device, dtype) group, or with foreach False one mul per tensor."""
    groups = {}
    for t in tensors:
        groups.setdefault((t._device, t._dtype), []).append(t)
    for (device, dtype), ts in groups.items():
        c = cr.to(coef, dtype, device)
        if foreach:
            OPS["_foreach_mul"](ts, c, out=ts)
        else:
            for t in ts:
                ew.mul(t, c, out=t)


def _clip_loop(tensors, max_norm, ord):  # noqa: A002
    tensor_list("_clip_by_total_norm_", tensors)
    total = OPS["_total_norm"](tensors, ord)
    mul_by_(tensors, clip_coef(total, max_norm))
    return total


BINARY = {  # name -> per-tensor op(t, other, [alpha,] out=)
    "add": ew.add, "sub": ew.sub, "mul": ew.mul, "div": lambda t, o, out=None: ew.div(t, o, None, out=out),
    "maximum": _maximum, "minimum": _minimum, "clamp_min": _maximum, "clamp_max": _minimum, "pow": ew.pow,
}
UNARY = {
    "sqrt": ew.sqrt, "neg": ew.neg, "abs": ew.abs, "exp": ew.exp, "log": ew.log, "reciprocal": ew.reciprocal,
    "sign": ew.sign, "sigmoid": ew.sigmoid, "zero": _zero,
}

LOOPS = {}
for _n, _f in BINARY.items():
    LOOPS["_foreach_" + _n] = _binary_loop("_foreach_" + _n, _f)
for _n, _f in UNARY.items():
    LOOPS["_foreach_" + _n] = _unary_loop("_foreach_" + _n, _f)
LOOPS["_foreach_addcmul"] = _pointwise_loop("_foreach_addcmul", la.addcmul)
LOOPS["_foreach_addcdiv"] = _pointwise_loop("_foreach_addcdiv", la.addcdiv)
LOOPS["_foreach_lerp"] = _lerp_loop
LOOPS["_foreach_norm"] = _norm_loop
LOOPS["_foreach_copy"] = _copy_loop
LOOPS["_total_norm"] = _total_norm_loop
LOOPS["_clip_by_total_norm_"] = _clip_loop


# -- fused optimizer steps: the per-tensor reference math (torch's fused kernels' formulas) -------------

def _scalar_of(x):
    """A host number for CPU math: Python numbers as given, CPU 0-d tensors read (free on CPU)."""
    return x.item() if isinstance(x, Tensor) and x._device.type == "cpu" else x


def check_fused(op, lists, grad_scale, found_inf):
    first = tensor_list(op, lists[0], "self")
    for lst in lists[1:]:
        if lst is not None and len(lst):
            same_length(op, first, tensor_list(op, lst, "tensors"))
    if grad_scale is not None or found_inf is not None:
        raise NotImplementedError(f"{op}: grad_scale / found_inf are not supported by vibetensor yet (unscale "
                                  "the gradients with GradScaler.unscale_ before the step)")


def _adam_loop(decoupled):
    name = "_fused_adamw_" if decoupled else "_fused_adam_"

    def loop(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
             weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None):
        check_fused(name, (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps), grad_scale,
                    found_inf)
        for i, p in enumerate(params):
            g = ew.neg(grads[i]) if maximize else grads[i]
            step = _scalar_of(state_steps[i])
            lr_i = _scalar_of(lr)
            if weight_decay != 0:
                if decoupled:
                    ew.mul(p, 1 - lr_i * weight_decay, out=p)
                else:
                    g = ew.add(g, p, weight_decay)
            ew.lerp(exp_avgs[i], g, 1 - beta1, out=exp_avgs[i])
            v = exp_avg_sqs[i]
            la.addcmul(ew.mul(v, beta2, out=v), g, g, 1 - beta2, out=v)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
            if amsgrad:
                ew.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
                v = max_exp_avg_sqs[i]
            denom = ew.add(ew.div(ew.sqrt(v), bias_correction2_sqrt, None), eps)
            la.addcdiv(p, exp_avgs[i], denom, -lr_i / bias_correction1, out=p)
    return name, loop


def _sgd_loop(params, grads, momentum_buffer_list, weight_decay, momentum, lr, dampening, nesterov, maximize,
              is_first_step, grad_scale=None, found_inf=None):
    check_fused("_fused_sgd_", (params, grads, momentum_buffer_list), grad_scale, found_inf)
    lr = _scalar_of(lr)
    for i, p in enumerate(params):
        g = ew.neg(grads[i]) if maximize else grads[i]
        if weight_decay != 0:
            g = ew.add(g, p, weight_decay)
        if momentum != 0:
            buf = momentum_buffer_list[i]
            if is_first_step:
                cr.copy_(buf, g)
            else:
                ew.add(ew.mul(buf, momentum, out=buf), g, 1 - dampening, out=buf)
            g = ew.add(g, buf, momentum) if nesterov else buf
        ew.add(p, g, -lr, out=p)


for _name, _loop in (_adam_loop(False), _adam_loop(True)):
    LOOPS[_name] = _loop
LOOPS["_fused_sgd_"] = _sgd_loop


# -- declarations -----------------------------------------------------------------------------------

def _declare(name):
    """The op; its Autograd kernel is the loop (each per-tensor op differentiates itself)."""
    op = declare(name, family="foreach")
    op.register(DispatchKey.Autograd, LOOPS[name])
    return op


OPS = {name: _declare(name) for name in LOOPS}
globals().update(OPS)
