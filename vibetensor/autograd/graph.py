"""The autograd graph: Nodes, their edges, and saved tensors.

A Node is one differentiable op application, seen backwards: it receives the gradients of the
op's outputs and returns the gradients of its inputs. `next_functions[i] = (node, input_nr)` is
the edge to whatever produced input i (None where input i needs no gradient). Leaf tensors that
require grad end in an AccumulateGrad node, cached on the leaf through a weakref only, so a leaf
never keeps its own graph alive.

Ownership, so memory is freed by reference counting alone:
    tensor --grad_fn--> node --next_functions--> nodes of its inputs --> ... --> AccumulateGrad --> leaf
A node never holds its own outputs: an output it must save is kept as a SavedVariable holding a
plain alias (same storage and version counter, no grad_fn), re-linked to the node on unpack.
"""
import itertools
import re
import threading
import traceback
import weakref

from vibetensor.dispatch import local
from vibetensor.tensor.shape import Size
from vibetensor.tensor.tensor import Tensor, make_tensor

GRAD = Tensor.__dict__["grad"]  # the raw slot; the front door wraps Tensor.grad in a checking property
RAW_GRAD_FN = Tensor.__dict__["grad_fn"]  # the raw slot; view_history.py wraps Tensor.grad_fn for views


def raw_grad(t):
    """t.grad without the front door's checks (an unset slot reads as None)."""
    try:
        return GRAD.__get__(t)
    except AttributeError:
        return None

_seq = itertools.count()  # creation order; the engine runs later-created nodes first
_LAST = float("inf")      # AccumulateGrad runs as soon as it is ready, as in torch
_MISSING = object()


def remembered(cache, key, compute, *args):
    """cache[key], else compute(*args) remembered there: for answers that depend only on geometry,
    which a training step asks about over and over (a few shapes and strides). Bounded."""
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        value = compute(*args)
        if len(cache) > 4096:
            cache.clear()
        cache[key] = value
    return value


class TensorMeta:
    """What a node remembers about a tensor it does not save: enough to shape a gradient.
    Reads like a tensor's metadata: .shape, .dtype, .device, .ndim, .dim(), .size(), .numel()."""
    __slots__ = ("_shape", "_dtype", "_device")

    def __init__(self, t):
        self._shape, self._dtype, self._device = t._shape, t._dtype, t._device

    shape = property(lambda self: Size(self._shape))
    dtype = property(lambda self: self._dtype)
    device = property(lambda self: self._device)
    ndim = property(lambda self: len(self._shape))

    def dim(self):
        return len(self._shape)

    def size(self, dim=None):
        return Size(self._shape) if dim is None else self._shape[dim]

    def numel(self):
        n = 1
        for s in self._shape:
            n *= s
        return n

    def __repr__(self):
        return f"TensorMeta(shape={list(self._shape)}, dtype={self._dtype})"


_new_meta = TensorMeta.__new__


class TensorGeometry(TensorMeta):
    """TensorMeta plus strides and storage offset, for formulas that rebuild a tensor's memory layout
    (as_strided's backward, CopySlices)."""
    __slots__ = ("_stride", "_offset")

    def __init__(self, t):
        super().__init__(t)
        self._stride, self._offset = t._stride, t._offset

    def stride(self, dim=None):
        return self._stride if dim is None else self._stride[dim]

    def storage_offset(self):
        return self._offset


class RemovableHandle:
    """torch.utils.hooks.RemovableHandle, returned by every register_*hook (tensors, nodes, modules,
    optimizers): .remove() takes the hook out of its id -> hook dict (and its id out of the
    extra dicts); a context manager. The dicts are held weakly: a handle never keeps them alive."""
    _ids = itertools.count()

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = next(RemovableHandle._ids)
        extras = extra_dict if isinstance(extra_dict, list) else [extra_dict] if extra_dict is not None else []
        self.extra_dict_ref = tuple(weakref.ref(d) for d in extras)

    def remove(self):
        for ref in (self.hooks_dict_ref,) + self.extra_dict_ref:
            d = ref()
            if d is not None:
                d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Hooks(dict):
    """An ordered id -> hook dict that a handle can point at weakly."""
    __slots__ = ("__weakref__",)

    def add(self, fn):
        handle = RemovableHandle(self)
        self[handle.id] = fn
        return handle


# -- saved tensors ----------------------------------------------------------------------------------

ERR_BACKWARD_TWICE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the "
    "graph a second time or if you need to access saved tensors after calling backward.")


def short_name(node):
    """torch names the producer in version errors without the Backward suffix: 'Exp', 'Add'."""
    return re.sub(r"Backward\d*$", "", node.name())


class SavedVariable:
    """A tensor a node keeps for its backward, with the version it had when saved.

    Inputs are held as they are. Outputs of the saving node are held as a plain alias (no grad_fn)
    and re-linked to the node on unpack, so the node does not keep its own output alive."""
    __slots__ = ("data", "version", "is_output", "output_nr", "requires_grad")

    def __init__(self, t, is_output=False):
        self.version = t._version.value
        self.is_output = is_output
        if is_output:
            self.data = make_tensor(t._storage, t._shape, t._stride, t._offset, t._dtype, t._version, t._base)
            self.output_nr, self.requires_grad = t._output_nr, t._requires_grad
        else:
            self.data = t

    def unpack(self, node=None):
        data = self.data
        if data is None:
            raise RuntimeError(ERR_BACKWARD_TWICE)
        if data._version.value != self.version:
            raise RuntimeError(self._version_error(node))
        if self.is_output and node is not None and self.requires_grad:
            if local.grad_enabled:  # create_graph: the unpacked output must lead back to its node
                t = make_tensor(data._storage, data._shape, data._stride, data._offset, data._dtype,
                                data._version, data._base)
                t.grad_fn, t._output_nr, t._requires_grad = node, self.output_nr, True
                return t
        return data

    def _version_error(self, node):
        from vibetensor.autograd import anomaly
        from vibetensor.ops.meta import legacy_type_name
        data = self.data
        what = f"[{legacy_type_name(data)} [{', '.join(map(str, data._shape))}]]"
        producer = node if self.is_output else data.grad_fn
        if producer is not None:
            nr = self.output_nr if self.is_output else data._output_nr
            what += f", which is output {nr} of {short_name(producer)},"
        hint = ("Hint: the backtrace further above shows the operation that failed to compute its gradient. "
                "The variable in question was changed in there or anywhere later. Good luck!"
                if anomaly.is_anomaly_enabled() else
                "Hint: enable anomaly detection to find the operation that failed to compute its gradient, "
                "with torch.autograd.set_detect_anomaly(True, check_nan=False).")
        return (f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: {what} is at version {data._version.value}; expected version {self.version} "
                f"instead. {hint}")

    def release(self):
        self.data = None


# -- nodes -------------------------------------------------------------------------------------------

class NodeExtras:
    """What few nodes have: hooks, retain_grad, metadata. Kept out of Node itself so a plain node
    carries one None for all of them, and the engine tells plain nodes apart with one test."""
    __slots__ = ("pre_hooks", "post_hooks", "tensor_pre_hooks", "retains_grad_hooks", "metadata")

    def __init__(self):
        self.pre_hooks = self.post_hooks = self.tensor_pre_hooks = None
        self.retains_grad_hooks = self.metadata = None


def _extra(field):
    """Node._<field>: the NodeExtras field (None while the node has no extras); setting it makes them."""
    slot = NodeExtras.__dict__[field]

    def get(node):
        extras = node._extras
        return None if extras is None else slot.__get__(extras)

    def set(node, value):
        extras = node._extras
        if extras is None:
            extras = node._extras = NodeExtras()
        slot.__set__(extras, value)
    return property(get, set)


class Node:
    """One op application, backwards. Subclasses implement apply(grads) -> one grad per edge."""
    __slots__ = ("next_functions", "_in_meta", "_seq", "stream", "_n_grads", "_extras", "__weakref__")

    def __init__(self, next_functions=(), in_meta=(), seq=None):
        self.next_functions = next_functions  # ((node | None, input_nr), ...)
        self._in_meta = in_meta              # TensorMeta per edge: the gradient's expected shape/dtype
        self._seq = next(_seq) if seq is None else seq
        self.stream = None                   # the stream current at creation (None on CPU)
        self._n_grads = 1                    # gradients it takes: one per output of the forward op
        self._extras = None                  # NodeExtras, once a hook or metadata is added

    _pre_hooks = _extra("pre_hooks")                    # Hooks: fn(grad_outputs), before apply
    _post_hooks = _extra("post_hooks")                  # Hooks: fn(grad_inputs, grad_outputs), after
    _tensor_pre_hooks = _extra("tensor_pre_hooks")      # [(output_nr, Hooks)] of the outputs' tensor hooks
    _retains_grad_hooks = _extra("retains_grad_hooks")  # {output_nr: fn(grad)} of retain_grad
    _metadata = _extra("metadata")

    def name(self):
        return type(self).__name__

    def apply(self, grads):
        raise NotImplementedError(f"{self.name()}.apply")

    def release(self):
        """Free saved tensors (backward without retain_graph)."""

    def __call__(self, *grads):
        return tuple(self.apply(list(grads)))

    @property
    def metadata(self):
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def _sequence_nr(self):
        return self._seq

    # -- hooks: tensor pre-hooks (per output), retains_grad, node pre-hooks, node post-hooks --------
    def register_prehook(self, fn):
        """fn(grad_outputs) -> None or replacement grad_outputs, before the node runs."""
        if self._pre_hooks is None:
            self._pre_hooks = Hooks()
        return self._pre_hooks.add(fn)

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) -> None or replacement grad_inputs, after the node runs."""
        if self._post_hooks is None:
            self._post_hooks = Hooks()
        return self._post_hooks.add(fn)

    def _add_tensor_pre_hooks(self, output_nr, hooks):
        if self._tensor_pre_hooks is None:
            self._tensor_pre_hooks = []
        self._tensor_pre_hooks.append((output_nr, hooks))

    def tensor_pre_hooks(self):
        """[(output_nr, Hooks)], the hooks tensors registered on this node's outputs."""
        return self._tensor_pre_hooks or ()

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"


def record_creation(node):
    """Anomaly mode: keep the forward traceback so a failing backward can name where it came from."""
    node.metadata["traceback_"] = traceback.format_stack()[:-3]


_NO_PARTS = (None, None)


class AccumulateGrad(Node):
    """The sink of a leaf: adds the incoming gradient into leaf.grad. Tensor hooks registered on the
    leaf run first (they may replace the gradient), post-accumulate-grad hooks after."""
    __slots__ = ("variable", "_lock")

    def __init__(self, variable):
        # Node's slots, set here without a Node.__init__ call. One is made per leaf per graph (so
        # per training step): it takes the (TensorMeta,) and lock of the leaf's last one, kept in
        # the leaf's __dict__, while the leaf's shape, dtype and device are unchanged.
        d = variable.__dict__
        in_meta, lock = d.get("_acc_parts", _NO_PARTS)
        meta = in_meta[0] if in_meta is not None else None
        if (meta is None or meta._shape != variable._shape or meta._dtype is not variable._dtype
                or meta._device is not variable._device):
            meta = _new_meta(TensorMeta)  # (TensorMeta(variable) without its __init__ call)
            meta._shape, meta._dtype, meta._device = variable._shape, variable._dtype, variable._device
            in_meta = (meta,)
            if lock is None:
                lock = threading.Lock()  # two threads may backward into the same parameter
            d["_acc_parts"] = in_meta, lock
        self.next_functions, self._in_meta, self._seq = (), in_meta, _LAST
        self.stream = self._extras = None
        self._n_grads = 1
        self.variable = variable
        self._lock = lock

    def name(self):
        return "torch::autograd::AccumulateGrad"  # torch's name() for it (its type is AccumulateGrad)

    def tensor_pre_hooks(self):
        hooks = self.variable._hooks
        return ((0, hooks),) if hooks else ()

    def apply(self, grads):
        g = grads[0]
        grads[0] = None  # drop our reference so accumulate_into_grad can tell when it is the only owner
        if g is not None:
            extras = self._extras  # (post hooks: the engine holds the gradient for them too)
            lock = self._lock
            lock.acquire()  # (not `with`: it costs twice as much, once per leaf per step)
            try:
                accumulate_into_grad(self.variable, g, 1 if extras is not None and extras.post_hooks else 0)
            finally:
                lock.release()
            hooks = self.variable._post_acc_hooks
            if hooks:
                for fn in tuple(hooks.values()):
                    fn(self.variable)
        return []


# engine.accumulate_into_grad, set by the engine when it loads (it imports this module, so this
# module cannot import it; a per-call import would cost more than the rest of a leaf's step)
accumulate_into_grad = None

_acc_lock = threading.Lock()  # taken only when a leaf's accumulator is first made


def grad_accumulator(leaf):
    """The leaf's AccumulateGrad node, made once and cached weakly on the leaf."""
    ref = leaf.__dict__.get("_grad_acc")
    node = ref() if ref is not None else None
    if node is None:  # (made anew each step: the graph holding the last one is gone)
        _acc_lock.acquire()  # (not `with`: it costs twice as much)
        try:
            ref = leaf.__dict__.get("_grad_acc")
            node = ref() if ref is not None else None
            if node is None:
                node = AccumulateGrad(leaf)
                leaf.__dict__["_grad_acc"] = weakref.ref(node)
        finally:
            _acc_lock.release()
    return node


def existing_grad_accumulator(leaf):
    ref = leaf.__dict__.get("_grad_acc")
    return ref() if ref is not None else None


def gradient_edge(t):
    """The edge a gradient for tensor t flows along: its grad_fn (for a view: regenerated when stale,
    see view_history.py), or its leaf accumulator. A view made in no_grad mode of a base that requires
    grad has neither: torch's invalid edge, (None, 0)."""
    fn = RAW_GRAD_FN.__get__(t) if t._base is None else t.grad_fn  # only a view's grad_fn may be stale
    if fn is not None:
        return (fn, t._output_nr)
    base = t._base
    if base is not None and base._requires_grad:
        return (None, 0)
    return (grad_accumulator(t), 0)


def requires_grad(t):
    """torch's requires_grad(): a view also requires grad when its base does (even one taken in
    no_grad mode, or before the base was given a history by an in-place op)."""
    if t._requires_grad:
        return True
    base = t._base
    return base is not None and base._requires_grad


def is_differentiable(t):
    return t._dtype.category >= 2


class GraphError(Node):
    """A node whose backward raises: ops without a derivative, and the second differentiation of a
    once_differentiable Function."""
    __slots__ = ("_message", "_exc", "_name")

    def __init__(self, message, edges, in_meta, exc=RuntimeError, name="Error"):
        super().__init__(edges, in_meta)
        self._message, self._exc, self._name = message, exc, name

    def name(self):
        return self._name

    def apply(self, grads):
        raise self._exc(self._message)


def set_history(t, node, output_nr):
    t.grad_fn, t._output_nr, t._requires_grad = node, output_nr, True


def rebase_history(t, node):
    """t was modified in place by the op `node` differentiates: t's gradient now flows into node.
    Hooks registered before stay with the old node (they see the pre-modification gradient);
    retain_grad moves to the new one, as in torch."""
    old, old_nr = RAW_GRAD_FN.__get__(t), t._output_nr
    RAW_GRAD_FN.__set__(t, node)
    t._output_nr, t._requires_grad = 0, True
    t._hooks = None
    if t._retains_grad and old is not None and old._retains_grad_hooks:
        fn = old._retains_grad_hooks.pop(old_nr, None)
        if fn is not None:
            if node._retains_grad_hooks is None:
                node._retains_grad_hooks = {}
            node._retains_grad_hooks[0] = fn


def alias_of(t):
    """A new tensor object over t's memory (same version counter) with no history."""
    return make_tensor(t._storage, t._shape, t._stride, t._offset, t._dtype, t._version, t._base)


__all__ = ["Node", "AccumulateGrad", "SavedVariable", "TensorMeta", "RemovableHandle", "gradient_edge",
           "grad_accumulator", "requires_grad"]
