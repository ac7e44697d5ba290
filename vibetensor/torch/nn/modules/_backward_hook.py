"""Module full backward hooks: identity autograd Functions around a module's inputs and outputs.

The output identity sees grad_output (and runs the backward pre-hooks); the input identity sees
grad_input and calls hook(module, grad_input, grad_output), whose result may replace grad_input.
"""
from vibetensor.autograd.function import Function
from vibetensor.tensor.tensor import Tensor


class _Identity(Function):
    @staticmethod
    def forward(ctx, on_grads, *tensors):
        ctx.on_grads = on_grads
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx, *grads):
        return (None,) + tuple(ctx.on_grads(grads))


def _wrap(values, on_grads):
    """Send the grad-requiring tensors of `values` (a tensor or a tuple) through one _Identity."""
    single = isinstance(values, Tensor)
    items = [values] if single else list(values) if isinstance(values, (tuple, list)) else None
    if items is None:
        return values, 0
    picks = [i for i, v in enumerate(items) if isinstance(v, Tensor) and v.requires_grad]
    if not picks:
        return values, len([v for v in items if isinstance(v, Tensor)])
    outs = _Identity.apply(on_grads, *[items[i] for i in picks])
    outs = outs if isinstance(outs, tuple) else (outs,)
    for i, o in zip(picks, outs):
        items[i] = o
    if single:
        return items[0], 1
    return type(values)(items), len([v for v in items if isinstance(v, Tensor)])


class BackwardHook:
    def __init__(self, module, hooks, pre_hooks):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = 0
        self.inputs_require_grad = False

    def _call_hooks(self, grad_inputs):
        for hook in list(self.hooks.values()):
            res = hook(self.module, grad_inputs, self.grad_outputs)
            if res is None:
                continue
            res = res if isinstance(res, tuple) else (res,)
            if len(res) != len(grad_inputs):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got {len(res)}, but "
                                   f"expected {len(grad_inputs)}")
            grad_inputs = res
        return grad_inputs

    def setup_input_hook(self, args):
        def on_input_grads(grads):
            return self._call_hooks(tuple(grads)) if self.hooks else grads
        wrapped, self.n_inputs = _wrap(args, on_input_grads)
        self.inputs_require_grad = wrapped is not args
        return wrapped

    def setup_output_hook(self, result):
        def on_output_grads(grads):
            grads = tuple(grads)
            for hook in list(self.pre_hooks.values()):
                res = hook(self.module, grads)
                if res is not None:
                    grads = res if isinstance(res, tuple) else (res,)
            self.grad_outputs = grads
            if not self.inputs_require_grad and self.hooks:
                self._call_hooks((None,) * self.n_inputs)
            return grads
        return _wrap(result, on_output_grads)[0]
