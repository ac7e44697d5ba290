"""torch._foreach_* and torch._fused_*: one elementwise op over lists of tensors.

Each name calls one op of ops/foreach.py; the in-place form (trailing underscore) passes out=self
and returns self, as torch 2.13 does. On CUDA an op costs one kernel launch per dtype group, not one
per tensor."""
from vibetensor.ops import foreach as fe

__all__ = []


def _export(fn):
    __all__.append(fn.__name__)
    return fn


def _pair(name, op):
    """The out-of-place and in-place front doors of a foreach op."""
    def f(self, *args, **kwargs):
        return op(self, *args, **kwargs)

    def f_(self, *args, **kwargs):
        op(self, *args, out=self, **kwargs)
        return self

    f.__name__, f_.__name__ = name, name + "_"
    f.__qualname__, f_.__qualname__ = name, name + "_"
    return f, f_


for _n in fe.BINARY:
    _op = fe.OPS["_foreach_" + _n]
    if _n in ("add", "sub"):
        def _make(op, n):
            def f(self, other, *, alpha=1):
                return op(self, other, alpha)

            def f_(self, other, *, alpha=1):
                op(self, other, alpha, out=self)
                return self
            return f, f_
        _f, _f_ = _make(_op, _n)
        _f.__name__, _f_.__name__ = "_foreach_" + _n, "_foreach_" + _n + "_"
    else:
        _f, _f_ = _pair("_foreach_" + _n, _op)
    globals()[_f.__name__], globals()[_f_.__name__] = _f, _f_
    __all__ += [_f.__name__, _f_.__name__]

for _n in fe.UNARY:
    _f, _f_ = _pair("_foreach_" + _n, fe.OPS["_foreach_" + _n])
    if _n != "zero":  # torch has only the in-place _foreach_zero_
        globals()[_f.__name__] = _f
        __all__.append(_f.__name__)
    globals()[_f_.__name__] = _f_
    __all__.append(_f_.__name__)


def _value(value, scalars):
    return scalars if scalars is not None else value


@_export
def _foreach_addcmul(self, tensor1, tensor2, value=1, *, scalars=None):
    return fe.OPS["_foreach_addcmul"](self, tensor1, tensor2, _value(value, scalars))


@_export
def _foreach_addcmul_(self, tensor1, tensor2, value=1, *, scalars=None):
    fe.OPS["_foreach_addcmul"](self, tensor1, tensor2, _value(value, scalars), out=self)
    return self


@_export
def _foreach_addcdiv(self, tensor1, tensor2, value=1, *, scalars=None):
    return fe.OPS["_foreach_addcdiv"](self, tensor1, tensor2, _value(value, scalars))


@_export
def _foreach_addcdiv_(self, tensor1, tensor2, value=1, *, scalars=None):
    fe.OPS["_foreach_addcdiv"](self, tensor1, tensor2, _value(value, scalars), out=self)
    return self


@_export
def _foreach_lerp(self, tensors1, weight):
    return fe.OPS["_foreach_lerp"](self, tensors1, weight)


@_export
def _foreach_lerp_(self, tensors1, weight):
    fe.OPS["_foreach_lerp"](self, tensors1, weight, out=self)
    return self


@_export
def _foreach_norm(self, ord=2, dtype=None):  # noqa: A002
    return fe.OPS["_foreach_norm"](self, ord, dtype)


@_export
def _foreach_copy_(self, src, non_blocking=False):
    fe.OPS["_foreach_copy"](self, src, non_blocking, out=self)
    return self


@_export
def _fused_adam_(self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, lr, beta1, beta2,
                 weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None):
    fe.OPS["_fused_adam_"](self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
                           weight_decay, eps, amsgrad, maximize, grad_scale, found_inf)


@_export
def _fused_adamw_(self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, lr, beta1, beta2,
                  weight_decay, eps, amsgrad, maximize, grad_scale=None, found_inf=None):
    fe.OPS["_fused_adamw_"](self, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
                            weight_decay, eps, amsgrad, maximize, grad_scale, found_inf)


@_export
def _fused_sgd_(self, grads, momentum_buffer_list, *, weight_decay, momentum, lr, dampening, nesterov, maximize,
                is_first_step, grad_scale=None, found_inf=None):
    fe.OPS["_fused_sgd_"](self, grads, momentum_buffer_list, weight_decay, momentum, lr, dampening, nesterov,
                          maximize, is_first_step, grad_scale, found_inf)


@_export
def _total_norm(tensors, norm_type=2.0):
    """vibetensor's own: the norm of the tensors' norms (clip_grad_norm_'s total), no host sync on CUDA."""
    return fe.OPS["_total_norm"](tensors, norm_type)
