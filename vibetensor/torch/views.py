"""View functions and methods of the front door (torch.permute, x.view, x.transpose, ...)."""
import operator

from vibetensor import ops
from vibetensor.ops import views
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor
from vibetensor.torch import indexing
from vibetensor.torch.tensor_methods import method

Tensor.__getitem__ = indexing.getitem
Tensor.__setitem__ = indexing.setitem

# -- view methods -----------------------------------------------------------------------------------------------

@method
def view(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], dt.dtype):
        return ops.views.view_dtype(self, shape[0])
    return views.view(self, sh.as_shape(shape, "view"))


@method
def permute(self, *dims):
    return views.permute(self, sh.as_shape(dims, "permute"))


@method
def transpose(self, dim0, dim1):
    return views.transpose(self, dim0, dim1)


@method
def expand(self, *sizes):
    return views.expand(self, sh.as_shape(sizes, "expand"))


@method
def squeeze(self, dim=None):
    return views.squeeze(self, dim)


@method
def unsqueeze(self, dim):
    return views.unsqueeze(self, dim)


@method
def select(self, dim, index):
    return views.select(self, dim, operator.index(index))


@method
def narrow(self, dim, start, length):
    return views.narrow(self, dim, operator.index(start), operator.index(length))


@method
def as_strided(self, size, stride, storage_offset=None):
    return views.as_strided(self, sh.as_shape((size,), "as_strided"), sh.as_shape((stride,), "as_strided"),
                            storage_offset)



__all__ = []
