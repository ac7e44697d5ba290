"""The tensor core: Storage, and Tensor as (storage, sizes, strides, offset, dtype).

This file holds data and geometry only. Operators live in ops/ and backends/; the user-facing
methods (`x.add(y)`, `x + y`, `x[0]`) are installed onto this class by the front door
(vibetensor/torch/tensor_methods.py), so every floor below the front door sees one plain class.
"""
import numpy as np

from vibetensor.tensor import shape as _shape
from vibetensor.tensor.device import CPU
from vibetensor.runtime import device_alloc as _device_alloc  # (the ground floor: CUDA-free to import)
from vibetensor.runtime import _mallocs  # device -> its allocator's malloc (device_alloc's fast path)

_contiguous_strides = _shape.contiguous_strides
_strides_cache = _shape._strides_cache  # shape tuple -> its row-major strides
_numel = _shape.numel


class Storage:
    """Bytes on a device. CPU: a contiguous NumPy array (any dtype: its bytes are what counts);
    CUDA: an allocator block with `.ptr`, returned to the allocator when the storage dies."""
    __slots__ = ("data", "nbytes", "device", "__weakref__")

    def __init__(self, data, nbytes, device):
        self.data, self.nbytes, self.device = data, nbytes, device

    def data_ptr(self):
        if self.device.type == "cpu":
            return self.data.ctypes.data
        return self.data.ptr

    def bytes(self):
        """The CPU bytes as a flat uint8 array (a view, no copy)."""
        return self.data.reshape(-1).view(np.uint8)

    def __repr__(self):
        return f"Storage(nbytes={self.nbytes}, device={self.device})"


class VersionCounter:
    """Shared by a tensor and all its views; every in-place write bumps it, so autograd can tell
    that a tensor it saved was modified afterwards."""
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


class Tensor:
    __slots__ = ("_storage", "_shape", "_stride", "_offset", "_dtype", "_device", "_version",
                 "_base", "_np", "_requires_grad", "grad", "grad_fn", "_output_nr", "_view_info",
                 "__dict__", "__weakref__")
    # Rarely set state lives in the instance __dict__ (made only when one is set) with these class
    # defaults, so making a tensor (every op's output) stores four attributes fewer. (A view's
    # autograd record, _view_info, is a slot: most views get one, and a dict per view costs more.)
    _retains_grad = False
    _is_param = False
    _hooks = None           # tensor hooks (register_hook)
    _post_acc_hooks = None  # register_post_accumulate_grad_hook

    # -- metadata, read by every floor ---------------------------------------------------------------
    @property
    def dtype(self):
        return self._dtype

    @property
    def device(self):
        return self._device

    @property
    def shape(self):
        return _shape.Size(self._shape)

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    @property
    def is_cpu(self):
        return self._device.type == "cpu"

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        set_requires_grad(self, flag)

    @property
    def itemsize(self):
        return self._dtype.itemsize

    @property
    def _is_view(self):
        return self._base is not None

    def numel(self):
        return _shape.numel(self._shape)

    def dim(self):
        return len(self._shape)

    def size(self, dim=None):
        if dim is None:
            return _shape.Size(self._shape)
        return self._shape[_shape.wrap_dim(dim, len(self._shape), "size")]

    def stride(self, dim=None):
        if dim is None:
            return self._stride
        return self._stride[_shape.wrap_dim(dim, len(self._shape), "stride")]

    def storage_offset(self):
        return self._offset

    def element_size(self):
        return self._dtype.itemsize

    def nbytes_(self):
        return self.numel() * self._dtype.itemsize

    def is_contiguous(self, memory_format=None):
        if memory_format is None:
            return _shape.is_contiguous(self._shape, self._stride)
        from vibetensor.tensor import memory_format as mf  # (a leaf module; imported late to keep this file's imports plain)
        return mf.is_contiguous(self._shape, self._stride, memory_format)

    def data_ptr(self):
        s = self._storage  # (Storage.data_ptr, inlined: cuBLAS calls read several per op)
        return (s.data.ctypes.data if s.device.type == "cpu" else s.data.ptr) + self._offset * self._dtype.itemsize

    def untyped_storage(self):
        return self._storage

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    __hash__ = object.__hash__  # by identity, in C (sets and dicts of parameters hash tensors often)

    def __reduce_ex__(self, proto):
        """Pickling (DataLoader workers send batches this way): a CPU tensor as its bytes, dtype and
        shape; the copy is a fresh contiguous leaf, requires_grad kept (a non-leaf too), as torch."""
        if self._device.type != "cpu":
            raise NotImplementedError(f"pickling a {self._device.type} tensor: copy it to the CPU (tensor.cpu()) "
                                      "first; only CPU tensors pickle in vibetensor")
        data = np.ascontiguousarray(array(self)).tobytes()
        return (_rebuild_tensor, (data, self._dtype, self._shape, self._requires_grad))


def _rebuild_tensor(data, dtype, shape, requires_grad):
    t = from_array(np.frombuffer(bytearray(data), dtype.np).reshape(shape))
    t._requires_grad = requires_grad
    return t


def set_requires_grad(t, flag):
    if flag and not (t._dtype.is_floating_point or t._dtype.is_complex):
        raise RuntimeError("only Tensors of floating point dtype can require gradients")
    if t.grad_fn is not None and not flag:
        raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                           "a computed variable in a subgraph that doesn't require differentiation use "
                           "var_no_grad = var.detach().")
    t._requires_grad = bool(flag)


_new_counter = VersionCounter.__new__
_new_storage = Storage.__new__


def make_tensor_python(storage, shape, stride, offset, dtype, version=None, base=None):
    # (every op's result is made here: one store per line is cheaper than a tuple assignment;
    # Tensor() costs less than Tensor.__new__(Tensor), which slices its argument tuple; it runs no
    # code of ours as long as Tensor defines no __new__/__init__, which tests/test_dispatch_fastpaths.py checks)
    t = Tensor()
    t._storage = storage
    t._shape = shape
    t._stride = stride
    t._offset = offset
    t._dtype = dtype
    t._device = storage.device
    if version is None:  # (VersionCounter() without the Python-level __init__ call)
        version = _new_counter(VersionCounter)
        version.value = 0
    t._version = version
    t._base = base
    t._np = None
    t._requires_grad = False
    t.grad_fn = None  # grad: an unset slot reads as None (autograd)
    t._output_nr = 0
    t._view_info = None  # (autograd/view_history.py: what a view remembers)
    return t


def alias(t, shape, stride, offset):
    """A view of `t`: same storage and version counter, new geometry; `_base` is the root."""
    return make_tensor(t._storage, shape, stride, offset, t._dtype, t._version, t._base if t._base is not None else t)


def set_geometry(t, shape, stride, offset, storage=None):
    """Change a tensor's metadata in place (resize_, as_strided_, squeeze_, out= resizing)."""
    if storage is not None:
        t._storage = storage
    t._shape, t._stride, t._offset, t._np = tuple(shape), tuple(stride), offset, None


def check_in_bounds(storage_nbytes, shape, stride, offset, itemsize, op="as_strided"):
    """The last element a geometry reaches must lie inside the storage (as torch's setStrided)."""
    if offset < 0:
        raise RuntimeError(f"{op}: Negative storage offset {offset} is not allowed")
    for n, st in zip(shape, stride):
        if st < 0:
            raise RuntimeError(f"{op}: Negative strides are not supported at the moment, got strides: {list(stride)}")
    if _shape.numel(shape) == 0:
        return
    last = offset + sum((n - 1) * st for n, st in zip(shape, stride))
    needed = (last + 1) * itemsize
    if needed > storage_nbytes:
        raise RuntimeError(
            f"{op}: setStorage: sizes {list(shape)}, strides {list(stride)}, storage offset {offset}, "
            f"and itemsize {itemsize} requiring a storage size of {needed} are out of bounds for "
            f"storage of size {storage_nbytes}")


# -- the CPU bridge: a NumPy view of the same bytes -------------------------------------------------

def array(t):
    """A NumPy ndarray aliasing the tensor's bytes (CPU only). Cached: geometry changes reset it."""
    a = t._np
    if a is None:
        if t._device is not CPU and t._device.type != "cpu":
            raise TypeError(f"can't convert {t._device} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        item = t._dtype.itemsize
        # an empty view may sit past the end of its storage (torch allows it): it reads no bytes
        offset = t._offset * item if 0 not in t._shape else 0
        a = np.ndarray(t._shape, t._dtype.np, buffer=t._storage.data, offset=offset,
                       strides=tuple(s * item for s in t._stride))
        t._np = a
    return a


def empty_cpu(shape, dtype):
    """A new contiguous CPU tensor. NumPy allocates the typed array directly, and it doubles as
    the tensor's cached NumPy view, so a kernel's output costs one allocation."""
    return own_array(np.empty(shape, dtype.np), shape, dtype)


def own_array(a, shape, dtype):
    """A new CPU tensor whose storage is the fresh C-contiguous ndarray `a` of that shape (nothing
    else may hold `a`); it doubles as the tensor's cached NumPy view."""
    t = make_tensor(Storage(a, a.nbytes, CPU), shape, _contiguous_strides(shape), 0, dtype)
    t._np = a
    return t


def from_array(a):
    """Wrap a NumPy array as a tensor sharing its memory (torch.from_numpy); arrays whose memory
    can't be described as (storage, strides, offset) in elements are copied first."""
    from vibetensor.tensor import dtype as _dt
    d = _dt.from_numpy(a.dtype)
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    item = a.itemsize
    shareable = (a.flags.writeable and root.flags.c_contiguous and a.size > 0
                 and all(s >= 0 and s % item == 0 for s in a.strides))
    if not shareable:
        a = root = np.array(a, order="C", copy=True)
    raw = root.reshape(-1).view(np.uint8) if root.size else np.empty(0, np.uint8)
    offset = (a.__array_interface__["data"][0] - raw.__array_interface__["data"][0]) if a.size else 0
    strides = tuple(s // item for s in a.strides) if a.size else _shape.contiguous_strides(a.shape)
    return make_tensor(Storage(raw, raw.nbytes, CPU), tuple(a.shape), strides, offset // item, d)


def empty(shape, dtype, device=CPU):
    """Uninitialised contiguous tensor; memory comes from the runtime for that device."""
    if device.type == "cpu":
        return empty_cpu(shape, dtype)
    shape = tuple(shape)
    stride = _strides_cache.get(shape)  # (contiguous_strides, inlined for its cache hit)
    if stride is None:
        stride = _contiguous_strides(shape)
    nbytes = _numel(shape) * dtype.itemsize
    malloc = _mallocs.get(device)  # (runtime.device_alloc, inlined: every CUDA op's result comes here)
    return new_tensor(malloc(nbytes) if malloc is not None else _device_alloc(nbytes, device), nbytes, device,
                      shape, stride, 0, dtype)


def new_tensor_python(data, nbytes, device, shape, stride, offset, dtype):
    """make_tensor(Storage(data, nbytes, device), shape, stride, offset, dtype): a device allocation
    wrapped as a tensor. The replay plans and empty() make every CUDA op's result with it."""
    storage = _new_storage(Storage)  # (Storage(block, nbytes, device) without the Python-level __init__ call)
    storage.data, storage.nbytes, storage.device = data, nbytes, device
    return make_tensor(storage, shape, stride, offset, dtype)


def _native():
    """(make_tensor, new_tensor): fasttensor's C where it builds, else the Python above."""
    from vibetensor.tensor import fasttensor
    mod = fasttensor.module()
    if mod is None:
        return make_tensor_python, new_tensor_python
    mod.install(Storage, VersionCounter, Tensor, Tensor.__dict__["grad_fn"])  # (grad_fn: still the raw slot here)
    return mod.make_tensor, mod.new_tensor


make_tensor, new_tensor = _native()
