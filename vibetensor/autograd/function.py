"""torch.autograd.Function: user-defined ops with a hand-written backward.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp(); ctx.save_for_backward(y); return y
        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors; return g * y

    y = Exp.apply(x)

As in torch the ctx object is the graph node itself (an instance of `ExpBackward`), so
`y.grad_fn` is the ctx forward saw. forward runs with grad mode off. The new style, a forward
without ctx plus `setup_context(ctx, inputs, output)`, works too.
"""
import functools

from vibetensor.autograd import anomaly, engine
from vibetensor.autograd.grad_mode import no_grad
from vibetensor.autograd.graph import (
    ERR_BACKWARD_TWICE, GraphError, Node, SavedVariable, TensorMeta, alias_of, gradient_edge, record_creation,
    requires_grad)
from vibetensor.autograd.view_history import check_inplace, mark_custom_function_view, rebase_history
from vibetensor.dispatch import local
from vibetensor.tensor.tensor import Tensor

_NO_EDGE = (None, 0)


class FunctionCtx:
    """The methods forward uses on ctx."""

    def save_for_backward(self, *tensors):
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} is of type "
                                f"{type(t).__name__}")
        self._to_save = tensors

    def mark_dirty(self, *tensors):
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable = tensors

    def set_materialize_grads(self, value):
        self._materialize = bool(value)

    def save_for_forward(self, *tensors):
        raise NotImplementedError("forward-mode AD (save_for_forward) is not supported by vibetensor")


class BackwardCFunction(Node, FunctionCtx):
    """The node (and ctx) of one Function application. Subclassed per Function: `<Name>Backward`."""
    _forward_cls = None

    def __init__(self):
        Node.__init__(self)
        self._to_save = ()
        self._saved = None
        self._dirty = self._non_differentiable = ()
        self._materialize = True
        self._out_meta = ()
        self._arg_is_tensor = ()
        self.needs_input_grad = ()

    def name(self):
        return type(self).__name__

    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is None:
            return tuple(self._to_save)  # inside forward, before the outputs exist
        if saved is _RELEASED:
            raise RuntimeError(ERR_BACKWARD_TWICE)
        return tuple(s.unpack(self) if s is not None else None for s in saved)

    saved_variables = saved_tensors

    def release(self):
        if self._saved is not None:
            self._saved = _RELEASED

    def apply(self, grads):
        if self._materialize:
            grads = [g if g is not None or m is None else engine.zeros(m) for g, m in zip(grads, self._out_meta)]
        cls = self._forward_cls
        result = cls.backward(self, *grads)
        if type(result) is not tuple:
            result = (result,)
        n = len(self._arg_is_tensor)
        if len(result) != n:
            if len(result) > n and all(r is None for r in result[n:]):
                result = result[:n]
            else:
                raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                                   f"(expected {n}, got {len(result)})")
        outs = []
        for i, (g, is_tensor) in enumerate(zip(result, self._arg_is_tensor)):
            if is_tensor:
                outs.append(g)
            elif g is not None:
                raise RuntimeError(f"function {self.name()} returned a gradient different than None at position "
                                   f"{i + 1}, but the corresponding forward input was not a Variable")
        return outs


_RELEASED = object()


class FunctionMeta(type):
    """Gives every Function subclass its node class, `<Name>Backward`."""

    def __init__(cls, name, bases, attrs):
        backward_cls = type(name + "Backward", (BackwardCFunction,), {"_forward_cls": cls,
                                                                         "__module__": "torch.autograd.function"})
        cls._backward_cls = backward_cls
        super().__init__(name, bases, attrs)


class Function(metaclass=FunctionMeta):
    """Base class of custom autograd ops: define static forward and backward, call `apply`."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is deprecated. Please use "
                           "new-style autograd function with static forward method. (Example: "
                           "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls._backward_cls()
        grad_on = local.grad_enabled
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and grad_on and requires_grad(a) for a in args)
        ctx._arg_is_tensor = tuple(isinstance(a, Tensor) for a in args)
        with no_grad():
            if cls.setup_context is not Function.setup_context:
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args, **kwargs)
        if not any(ctx.needs_input_grad):
            return output
        return _connect(ctx, args, output)


def _connect(ctx, args, output):
    """Wire ctx into the graph: edges to the inputs, outputs pointing at ctx, saved tensors."""
    edges, metas = [], []
    for a in args:
        if isinstance(a, Tensor):
            edges.append(gradient_edge(a) if requires_grad(a) else _NO_EDGE)
            metas.append(TensorMeta(a))
    ctx.next_functions, ctx._in_meta = tuple(edges), tuple(metas)
    if anomaly._enabled:
        record_creation(ctx)
    single = not isinstance(output, tuple)
    outs = [output] if single else list(output)
    ctx._n_grads = len(outs)
    ctx._out_meta = tuple(TensorMeta(o) if isinstance(o, Tensor) else None for o in outs)
    dirty = ctx._dirty
    non_diff = ctx._non_differentiable
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            continue
        if any(o is t for t in non_diff):
            o._requires_grad = False
            continue
        if any(o is t for t in dirty):
            check_inplace(o, "a leaf Variable that requires grad has been used in an in-place operation.")
            if o._base is not None and len(outs) > 1:
                raise RuntimeError(_DIRTY_VIEW_MSG)
            rebase_history(o, ctx)
            if o._base is None:
                o._output_nr = k
            continue
        if any(o is a for a in args):  # an input returned as is: the output is a new view of it
            o = outs[k] = _view_of(o)
        if o._dtype.category >= 2:
            o.grad_fn, o._output_nr, o._requires_grad = ctx, k, True
            if o._base is not None:
                mark_custom_function_view(o)
    ctx._saved = tuple(_save(t, ctx, outs) for t in ctx._to_save)
    ctx._to_save = ()
    return outs[0] if single else tuple(outs)


_DIRTY_VIEW_MSG = (
    "If your Function modifies inplace an input that is a view of another Tensor, your Function cannot return "
    "more than one Tensor. This is not supported by the current autograd engine. You should either make sure the "
    "input is not a view (using .clone() for example) or make your Function only return one Tensor (potentially "
    "splitting it into two Functions: one doing the inplace that returns a single Tensor and a second one that does "
    "the other operations). You can ask on the forum https://discuss.pytorch.org/ if you need help to do this "
    "change.")


def _view_of(t):
    v = alias_of(t)
    v._base = t if t._base is None else t._base
    return v


def _save(t, ctx, outs):
    if t is None:
        return None
    is_output = t.grad_fn is ctx and any(t is o for o in outs)
    return SavedVariable(t, is_output)


def once_differentiable(fn):
    """Decorates a backward that is not itself differentiable: it runs with grad mode off, and a
    second differentiation through it raises instead of silently returning zeros."""
    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        with no_grad():
            outputs = fn(ctx, *grads)
        if not local.grad_enabled:
            return outputs
        requires = [g for g in grads if isinstance(g, Tensor) and g._requires_grad]
        if not requires:
            return outputs
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        err = GraphError("trying to differentiate twice a function that was marked with @once_differentiable",
                         tuple(gradient_edge(g) for g in requires), tuple(TensorMeta(g) for g in requires),
                         RuntimeError, "DelayedError")
        wrapped = []
        for o in outs:
            if isinstance(o, Tensor):
                o = alias_of(o)
                o.grad_fn, o._output_nr, o._requires_grad = err, 0, True
            wrapped.append(o)
        return wrapped[0] if single else tuple(wrapped)
    return wrapper


class InplaceFunction(Function):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace


FunctionCtx.__module__ = "torch.autograd.function"
__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable", "InplaceFunction"]
