"""torch.autograd and the autograd methods of Tensor (backward, detach, register_hook, ...).

The machinery lives in vibetensor/autograd/; this module is its front door: torch's names and
signatures, and the Tensor methods installed with tensor_methods.method.
"""
import sys
import warnings

from vibetensor.autograd import anomaly, engine, function, grad_mode, graph
from vibetensor.autograd import gradcheck as _gradcheck
from vibetensor.autograd.anomaly import detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, \
    set_detect_anomaly
from vibetensor.autograd.derivatives import install_fallbacks
from vibetensor.autograd.engine import backward, grad
from vibetensor.autograd.function import Function, FunctionCtx, InplaceFunction, once_differentiable
from vibetensor.autograd.grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled)
from vibetensor.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from vibetensor.autograd.graph import GRAD, Hooks, Node, grad_accumulator, raw_grad
from vibetensor.ops.meta import TYPE_NAMES
from vibetensor.tensor.tensor import Tensor, VersionCounter, make_tensor, set_requires_grad
from vibetensor.torch.tensor_methods import method

# `from torch.autograd.function import once_differentiable`, `torch.autograd.graph.Node` ...
for _name, _mod in (("function", function), ("graph", graph), ("anomaly_mode", anomaly), ("grad_mode", grad_mode),
                    ("gradcheck", _gradcheck)):
    sys.modules.setdefault(f"{__name__}.{_name}", _mod)

# Every op declared so far that has no derivative and is not marked nondifferentiable gets a kernel
# that makes a missing derivative an error at backward time (see derivatives.install_fallbacks).
install_fallbacks()


# -- Tensor methods ----------------------------------------------------------------------------------------

@method
def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    engine.backward(self, gradient, retain_graph, create_graph, inputs=inputs)


@method
def detach(self):
    """Same memory and version counter, no history, does not require grad."""
    return make_tensor(self._storage, self._shape, self._stride, self._offset, self._dtype, self._version, None)


@method
def detach_(self):
    if self._base is not None:
        raise RuntimeError(
            "Can't detach views in-place. Use detach() instead. If you are using DistributedDataParallel (DDP) for "
            "training, and gradient_as_bucket_view is set as True, gradients are views of DDP buckets, and hence "
            "detach_() cannot be called on these gradients. To fix this error, please refer to the "
            "Optimizer.zero_grad() function in torch/optim/optimizer.py as the solution.")
    self.grad_fn, self._output_nr, self._requires_grad = None, 0, False
    return self


@method
def requires_grad_(self, requires_grad=True):
    set_requires_grad(self, requires_grad)
    return self


@method
def retain_grad(self):
    """Keep the gradient of a non-leaf in .grad after backward (a no-op on leaves)."""
    if not self._requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if self.grad_fn is None or self._retains_grad:
        return
    import weakref
    ref = weakref.ref(self)  # weak: the node must not keep its own output alive

    def retain(g):
        t = ref()
        if t is None:
            return
        old = raw_grad(t)
        GRAD.__set__(t, engine._op("clone")(g) if old is None else engine.add(old, g))
    node = self.grad_fn
    if node._retains_grad_hooks is None:
        node._retains_grad_hooks = {}
    node._retains_grad_hooks[self._output_nr] = retain
    self._retains_grad = True


Tensor.retains_grad = property(lambda self: self._retains_grad)


@method
def register_hook(self, hook):
    """hook(grad) -> None or a replacement gradient, called when this tensor's gradient is computed."""
    if not self._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if self._hooks is None:
        self._hooks = Hooks()
        if self.grad_fn is not None:
            self.grad_fn._add_tensor_pre_hooks(self._output_nr, self._hooks)
    return self._hooks.add(hook)


@method
def register_post_accumulate_grad_hook(self, hook):
    """hook(tensor), called after the gradient was accumulated into a leaf's .grad."""
    if not self._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if self.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if self._post_acc_hooks is None:
        self._post_acc_hooks = Hooks()
    return self._post_acc_hooks.add(hook)


_NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad attribute won't be "
    "populated during autograd.backward(). If you indeed want the .grad field to be populated for a non-leaf "
    "Tensor, use .retain_grad() on the non-leaf Tensor. If you access the non-leaf Tensor by mistake, make sure "
    "you access the leaf Tensor instead. See github.com/pytorch/pytorch/pull/30531 for more information.")
_C_TYPE = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
           "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char", "uint8": "unsigned char",
           "bool": "bool", "complex64": "c10::complex<float>", "complex128": "c10::complex<double>"}


def _get_grad(self):
    g = raw_grad(self)
    if g is None and self.grad_fn is not None and not self._retains_grad:
        warnings.warn(_NON_LEAF_GRAD, UserWarning, stacklevel=2)
    return g


def _set_grad(self, g):
    if g is not None:
        if not isinstance(g, Tensor):
            raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(g).__name__}")
        if g._shape != self._shape:
            raise RuntimeError(f"attempting to assign a gradient of size '{list(g._shape)}' to a tensor of size "
                               f"'{list(self._shape)}'. Please ensure that the gradient and the tensor are the "
                               "same size")
        if g._dtype is not self._dtype:
            raise RuntimeError(
                f"attempting to assign a gradient with dtype '{_C_TYPE[g._dtype.name]}' to a tensor with grad_dtype "
                f"'{TYPE_NAMES[self._dtype]}'. The gradient must match the tensor's grad_dtype (defaults to the "
                "tensor's dtype). You can set the tensor's grad_dtype attribute with a specific dtype, or None to "
                "allow any dtype. Set grad_dtype with caution. Diverging the dtypes of a tensor and its gradient may "
                "break downstream systems that assume they match.")
        if g._device != self._device:
            raise RuntimeError("assigned grad has data located on a different device")
    GRAD.__set__(self, g)


Tensor.grad = property(_get_grad, _set_grad, lambda self: GRAD.__set__(self, None),
                       doc="The gradient accumulated by backward (None until one arrives).")


def _get_data(self):
    """x.data: the same memory with no history and a version counter of its own (changes made
    through it are invisible to autograd, as in torch)."""
    return make_tensor(self._storage, self._shape, self._stride, self._offset, self._dtype, VersionCounter(), None)


def _set_data(self, new):
    if not isinstance(new, Tensor):
        raise TypeError(f"Variable data has to be a tensor, but got {type(new).__name__}")
    self._storage, self._shape, self._stride, self._offset = new._storage, new._shape, new._stride, new._offset
    self._dtype, self._device, self._np = new._dtype, new._device, None


Tensor.data = property(_get_data, _set_data)


def _grad_accumulator(self):
    return grad_accumulator(self) if self._requires_grad and self.grad_fn is None else None


Tensor._grad_accumulator = _grad_accumulator

__all__ = ["backward", "grad", "Function", "FunctionCtx", "InplaceFunction", "once_differentiable", "gradcheck",
           "gradgradcheck", "GradcheckError", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
           "is_anomaly_check_nan_enabled", "no_grad", "enable_grad", "set_grad_enabled", "inference_mode",
           "is_grad_enabled", "is_inference_mode_enabled", "Node"]
