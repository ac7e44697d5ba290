"""nn.Parameter and nn.Buffer: tensors that a Module registers when they are assigned to it."""
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, empty


def _adopt(cls, data, requires_grad):
    """An instance of `cls` sharing `data`'s memory and version counter, with no history (as
    torch's Tensor._make_subclass on data.detach())."""
    t = Tensor.__new__(cls)
    t._storage, t._shape, t._stride, t._offset = data._storage, data._shape, data._stride, data._offset
    t._dtype, t._device, t._version, t._base, t._np = data._dtype, data._device, data._version, data._base, None
    t._view_info = None
    t._requires_grad = False
    t.grad_fn = t._hooks = t._post_acc_hooks = None
    t._output_nr = 0
    t._retains_grad, t._is_param = False, cls is Parameter
    if requires_grad:
        t.requires_grad_(True)
    return t


class Parameter(Tensor):
    """A Tensor that is a module parameter: requires grad by default, registered on assignment."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = empty((0,), dt.get_default_dtype())
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter: expected a Tensor as data, but got {type(data).__name__}")
        return _adopt(cls, data, requires_grad)

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.data.clone(memory_format=None), self.requires_grad)
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, proto):
        return (type(self), (self.data.clone(), self.requires_grad))


class Buffer(Tensor):
    """torch.nn.Buffer: a marker that makes Module.__setattr__ register a (persistent) buffer."""

    def __new__(cls, data=None, *, persistent=True):
        if data is None:
            data = empty((0,), dt.get_default_dtype())
        t = _adopt(cls, data, data.requires_grad)
        t.persistent = persistent
        return t

    def __init__(self, data=None, *, persistent=True):
        pass


def is_lazy(param):
    return False
