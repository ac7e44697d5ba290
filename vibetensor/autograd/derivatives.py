"""Declaring an op's derivative, beside the op (the op contract of DESIGN.md section 3).

    from vibetensor.autograd import derivative

    @derivative(ew.mul, save=(0, 1))
    def _(ctx, grad, a, b):
        return grad * conj(b), grad * conj(a)

`derivative(op, save=(), name=None)` registers an Autograd-key kernel for `op`. When grad mode is on
and a positional tensor argument requires grad, that kernel runs the op below autograd (the device
kernel, with grad mode off), makes one graph node, saves only what `save` names, and marks the
outputs (grad_fn, requires_grad). Backward calls the formula:

    formula(ctx, grad, *args, **kwargs) -> one gradient per positional argument of the op

  grad    the gradient of the output (a tuple of them for an op returning several tensors;
          a missing one is zeros; integer/bool outputs get None)
  args    the op's positional arguments as it was called: saved tensors come back as tensors
          (version-checked), unsaved tensors as TensorMeta (shape/dtype/device only), numbers and
          shapes as they were; kwargs (except out=) are passed as given. Only positional tensors
          are differentiated (the dispatcher looks at positional arguments only).
  ctx     ctx.result (the saved output(s)), ctx.needs_input_grad (per positional argument),
          ctx.name().
  returns a tuple with one entry per positional argument (None where no gradient; a list for a
          list-of-tensors argument); anything that is not a tuple is the gradient of argument 0.
          A gradient may have the broadcast (output) shape or another float dtype: the engine sums
          it down to the input's shape and casts it to the input's dtype.

Formulas are written with vibetensor ops, so they are differentiable themselves (create_graph).
save: positions of arguments the formula reads (ints) and/or "result" for the op's output(s); or
      fn(*args, **kwargs) -> such a tuple, to decide per call (pow saves its result only when the
      exponent is a tensor).
name: the node's name (default: 'MulBackward0' from 'mul'), or fn(*args, **kwargs) -> name.
inplace: the op writes its first argument and returns it (copy_, index_put_), like an out=self call.
geometry: positions of unsaved tensors whose strides and storage offset the formula reads (they come
      back as a TensorGeometry: TensorMeta plus .stride() and .storage_offset()).

In-place (the op called with out=<its first argument>) is handled here for every op: torch's
leaf and view checks, history rebased onto the new node (for a view: its base's history goes
through CopySlices, see view_history.py), and an argument 0 the formula saves is snapshotted
before it is overwritten. Other out= calls refuse inputs that require grad. An output that shares
memory with an input is recorded as a view of it.

`nondifferentiable(op)`: outputs never require grad (random sampling from a tensor's shape...).
`install_fallbacks()`: every op with neither gets a kernel that, when an input requires grad,
lets the op run (composites are traced through their parts) and marks float outputs that came
out untracked with a node whose backward raises NotImplementedError, so a missing derivative is
an error at backward time, never a silently wrong gradient.
"""
from math import prod

from vibetensor import dispatch
from vibetensor.autograd import anomaly, engine, graph
from vibetensor.autograd.graph import (
    RAW_GRAD_FN, GraphError, Node, SavedVariable, TensorGeometry, TensorMeta, alias_of, grad_accumulator, gradient_edge,
    record_creation, remembered, requires_grad)
from vibetensor.autograd.view_history import (
    MULTI_OUTPUT_NODE, DEFAULT, check_inplace, note_untracked_view, rebase_history, record_view)
from vibetensor.dispatch import DispatchKey, dispatcher, local
from vibetensor.tensor.shape import view_strides
from vibetensor.tensor.tensor import Tensor, alias

_NO_EDGE = (None, 0)
_new_meta = TensorMeta.__new__
_new_node = object.__new__
_new_saved = SavedVariable.__new__
_next_seq = graph._seq.__next__  # (Node.__init__'s creation order)
_raw_grad_fn = RAW_GRAD_FN.__get__
_set_grad_fn = RAW_GRAD_FN.__set__
RESULT = "result"


class OpNode(Node):
    """The node of an op with a derivative formula. One subclass per node name (MulBackward0...)."""
    __slots__ = ("_spec", "_args", "_kwargs", "_result", "_layout", "_k", "_out_meta", "_needs", "_saves")

    def apply(self, grads):
        spec = self._spec
        if self._n_grads == 1:
            grad = grads[0]
            fast = spec.view_grad  # (a view op's gradient, when no graph is wanted: see _VIEW_GRADS)
            if (fast is not None and self._kwargs is None and not local.grad_enabled
                    and not dispatcher._active_wrappers and isinstance(grad, Tensor)):
                g = fast(self, grad)
                if g is not None:
                    return (g,)
        else:
            grad = tuple(g if g is not None or m is None or m._dtype.category < 2 else engine.zeros(m)
                         for g, m in zip(grads, self._out_meta))
        args = self._args
        if self._saves:  # only positions in save= hold SavedVariables (kwargs are kept as given)
            args = args[:]
            i = 0
            for a in self._args:  # (a loop, not a list comprehension: that is a function call in 3.11)
                if a.__class__ is SavedVariable:
                    args[i] = a.unpack(self)
                elif a.__class__ is list:
                    args[i] = _unpack(a, self)
                i += 1
        kwargs = self._kwargs
        res = spec.formula(self, grad, *args, **kwargs) if kwargs else spec.formula(self, grad, *args)
        k = self._k  # (_flatten's usual case, inlined: the tensors are the first k arguments)
        if k > 0:
            if res.__class__ is tuple:
                if len(res) >= k:
                    return res[:k]
            elif k == 1:
                return (res,)
        return _flatten(self._layout, res)

    @property
    def result(self):
        r = self._result
        if r is None:
            return None
        if type(r) is tuple:
            return tuple(s.unpack(self) if s is not None else None for s in r)
        return r.unpack(self)

    @property
    def needs_input_grad(self):
        needs = self._needs
        if needs is None:
            needs = self._needs = self._compute_needs()
        return needs

    def _compute_needs(self):
        edges = self.next_functions
        layout = self._layout
        k = self._k
        if k > 0:  # tensors first, then plain arguments (see _flatten)
            needs = [False] * len(layout)
            for i in range(k):
                needs[i] = edges[i][0] is not None
            return tuple(needs)
        out = []
        k = 0  # the edge of the next tensor argument
        for lay in layout:
            if lay is None:
                out.append(False)
            elif lay is True:
                out.append(edges[k][0] is not None)
                k += 1
            else:
                flags = []
                for is_t in lay:
                    flags.append(is_t and edges[k][0] is not None)
                    k += is_t
                out.append(tuple(flags))
        return tuple(out)

    def release(self):
        if self._saves:
            for a in self._args:
                if a.__class__ is SavedVariable:
                    a.data = None  # (SavedVariable.release, inlined: once per saved tensor per step)
                elif a.__class__ is list:
                    _release(a)
        r = self._result
        if r is not None:
            if r.__class__ is SavedVariable:
                r.data = None
            else:
                _release(r)

    @property
    def saved_tensors(self):
        """The tensors this node saved (for inspection, like torch's _saved_* attributes)."""
        found = [a for a in self._args if isinstance(a, SavedVariable)]
        return tuple(s.unpack(self) for s in found)


def _unpack(a, node):
    if type(a) is SavedVariable:
        return a.unpack(node)
    if type(a) is list and a and any(type(b) is SavedVariable for b in a):
        return [b.unpack(node) if type(b) is SavedVariable else b for b in a]
    return a


def _release(a):
    if type(a) is SavedVariable:
        a.release()
    elif type(a) in (list, tuple):
        for b in a:
            if type(b) is SavedVariable:
                b.release()


def _flatten(layout, res):
    """The formula's per-argument gradients -> one per edge."""
    if type(res) is not tuple:
        res = (res,)
    k = _EDGE_PREFIX.get(layout)
    if k is None:
        k = _edge_prefix(layout)
    if k >= 0 and len(res) >= k:  # the usual layout: tensors first, then plain arguments
        return res[:k]
    return _flatten_each(layout, res)


def _flatten_each(layout, res):
    """_flatten, argument by argument (any layout: lists of tensors, tensors after plain arguments)."""
    outs = []
    n = len(res)
    for i, lay in enumerate(layout):
        if lay is None:
            continue
        r = res[i] if i < n else None
        if lay is True:
            outs.append(r)
        else:
            for j, is_t in enumerate(lay):
                if is_t:
                    outs.append(r[j] if r is not None else None)
    return outs


_EDGE_PREFIX = {}  # layout -> k where its tensor arguments are exactly its first k, else -1
_SEQUENCES = frozenset((list, tuple))  # (`a.__class__ in`: one test)


def _edge_prefix(layout):
    k = 0
    while k < len(layout) and layout[k] is True:
        k += 1
    plain = all(lay is None for lay in layout[k:])
    if plain or all(lay is None or lay is True for lay in layout):  # (no lists: the key space stays small)
        _EDGE_PREFIX[layout] = k if plain else -1
    return k if plain else -1


class Derivative:
    """What `derivative(...)` registered for one op."""

    def __init__(self, op, formula, save, name, inplace=False, geometry=()):
        self.op, self.formula = op, formula
        self.short = op.name.split("::")[-1]
        self.name = name or default_name(self.short)
        self.inplace = inplace                # the op writes its first argument and returns it (copy_)
        self.geometry = frozenset(geometry)   # positions whose strides/offset the formula reads
        self._classes = {}
        self._save_fn = save if callable(save) else None
        self._static = None if callable(save) else self._parse(save)
        self._cls = self._make_class(self.name) if self.name.__class__ is str else None  # the usual case
        # the gradient as a direct alias, for view ops whose node keeps only TensorMetas and numbers
        self.view_grad = _VIEW_GRADS.get(op.name) if self._static == _SAVES_NOTHING and not geometry else None

    def _parse(self, save):
        save = (save,) if isinstance(save, (int, str)) else tuple(save)
        bad = [i for i in save if i != RESULT and not isinstance(i, int)]
        if bad:
            raise TypeError(f"derivative({self.op.name}): save= takes argument positions and 'result', got {bad}")
        return frozenset(i for i in save if i != RESULT), RESULT in save

    def saves(self, args, kwargs):
        """(positions of arguments to save, whether to save the result) for this call."""
        if self._static is not None:
            return self._static
        return self._parse(self._save_fn(*args, **kwargs))

    def node_class(self, args, kwargs):
        cls = self._cls
        if cls is not None:
            return cls
        return self._make_class(self.name(*args, **kwargs))

    def _make_class(self, name):
        cls = self._classes.get(name)
        if cls is None:
            cls = self._classes[name] = type(name, (OpNode,), {"__slots__": (), "__module__": "torch.autograd"})
        return cls

    def __repr__(self):
        return f"<derivative of {self.op.name}: {getattr(self.formula, '__name__', self.formula)}>"


def default_name(short):
    return "".join(part.capitalize() for part in short.strip("_").split("_")) + "Backward0"


def derivative(op, save=(), name=None, inplace=False, geometry=()):
    """Decorator: `formula` is op's derivative (see the module docstring)."""
    def register(formula):
        spec = Derivative(op, formula, save, name, inplace, geometry)
        op.derivative = spec
        op.register(DispatchKey.Autograd, _autograd_kernel(spec))
        return formula
    return register


# -- view gradients without the dispatcher -------------------------------------------------------------------
# Half the nodes of a transformer step are views (ViewBackward0, TransposeBackward0). Their formulas
# (ops/views.py) call reshape/transpose on the gradient: dispatcher round trips and geometry checks.
# When no graph is being built (grad mode off: backward without create_graph) and no wrapper key
# (profiler, autocast) watches op calls, the outcome is known: the alias the view op would make,
# noted as a no-grad view. These make it directly, or return None where the formula must run (it
# would copy, or the gradient does not fit and the formula raises its error). OpNode.apply uses them.

_SAVES_NOTHING = (frozenset(), False)


def _grad_alias(grad, shape, stride):
    """What a view op returns for grad with grad mode off (ops/views.py `_alias`)."""
    v = alias(grad, shape, stride, grad._offset)
    note_untracked_view(grad, v)
    return v


_RESHAPES, _TRANSPOSES = {}, {}  # (grad shape, grad strides, the op's arguments) -> geometry | None


def _reshape_grad(node, grad):
    """reshape(grad, input shape) (view, _unsafe_view), when it is a view."""
    shape = node._args[0]._shape
    stride = remembered(_RESHAPES, (grad._shape, grad._stride, shape), _reshape_strides, grad, shape)
    return None if stride is None else _grad_alias(grad, shape, stride)


def _reshape_strides(grad, shape):
    return view_strides(grad._shape, grad._stride, shape) if prod(grad._shape) == prod(shape) else None


def _transpose_grad(node, grad):
    """transpose(grad, dim0, dim1)."""
    _, d0, d1 = node._args
    if type(d0) is not int or type(d1) is not int:
        return None
    geometry = remembered(_TRANSPOSES, (grad._shape, grad._stride, d0, d1), _transposed, grad, d0, d1)
    return None if geometry is None else _grad_alias(grad, *geometry)


def _transposed(grad, d0, d1):
    nd = len(grad._shape)
    if not (-nd <= d0 < nd and -nd <= d1 < nd):
        return None
    shape, stride = list(grad._shape), list(grad._stride)
    shape[d0], shape[d1] = shape[d1], shape[d0]
    stride[d0], stride[d1] = stride[d1], stride[d0]
    return tuple(shape), tuple(stride)


def _permute_grad(node, grad):
    """permute(grad, the inverse of dims)."""
    dims = node._args[1]
    nd = len(grad._shape)
    if len(dims) != nd:
        return None
    inverse = [0] * nd
    for i, d in enumerate(dims):
        if type(d) is not int or not -nd <= d < nd:
            return None
        inverse[d] = i  # (a negative d indexes from the end, as wrapping it would)
    shape, stride = grad._shape, grad._stride
    return _grad_alias(grad, tuple([shape[d] for d in inverse]), tuple([stride[d] for d in inverse]))


def _t_grad(node, grad):
    """t(grad): a matrix transposed; a vector or a scalar as it is."""
    shape, stride = grad._shape, grad._stride
    if len(shape) > 2:
        return None
    if len(shape) == 2:
        shape, stride = shape[::-1], stride[::-1]
    return _grad_alias(grad, shape, stride)


_VIEW_GRADS = {"vt::view": _reshape_grad, "vt::_unsafe_view": _reshape_grad, "vt::transpose": _transpose_grad,
               "vt::permute": _permute_grad, "vt::t": _t_grad}


# -- the Autograd-key kernel ---------------------------------------------------------------------------

def _record(t, metas, edges):
    """Append tensor t's TensorMeta and gradient edge; return (meta, whether t requires grad)."""
    meta = TensorMeta(t)
    metas.append(meta)
    if requires_grad(t):
        edges.append(gradient_edge(t))
        return meta, True
    edges.append(_NO_EDGE)
    return meta, False


def _node(spec, args, kwargs, save, snapshot_self=False, geometry=()):
    """The op's graph node, made before the op runs (as torch does), or None when no tensor argument
    requires grad. One pass over the positional arguments records each tensor's TensorMeta (the
    gradient's expected shape/dtype/device) and gradient edge, and what the node keeps of each
    argument: a SavedVariable where the formula reads the tensor (positions in `save`), its TensorMeta
    otherwise (TensorGeometry for positions in `geometry`), non-tensors as they are."""
    edges, metas = [], []
    kept = list(args)
    wanted = False
    k = 0  # tensors seen; while they are exactly args[:k] (the usual case) no layout list is built
    layout = None  # per argument, once that stops: True (a tensor), a tuple of flags (a list), None
    i = -1
    for a in args:
        i += 1
        if isinstance(a, Tensor):  # _record and gradient_edge, inlined (the hot path)
            meta = _new_meta(TensorMeta)
            meta._shape, meta._dtype, meta._device = a._shape, a._dtype, a._device
            metas.append(meta)
            if a._base is not None:
                if a._requires_grad or a._base._requires_grad:
                    fn, info = _raw_grad_fn(a), a._view_info
                    if fn is not None and (info is None or info.attr_version == a._version.value):
                        edges.append((fn, a._output_nr))  # its history is current (view_grad_fn's first answer)
                    else:
                        edges.append(gradient_edge(a))
                    wanted = True
                else:
                    edges.append(_NO_EDGE)
            elif a._requires_grad:
                fn = _raw_grad_fn(a)
                edges.append((fn, a._output_nr) if fn is not None else (grad_accumulator(a), 0))
                wanted = True
            else:
                edges.append(_NO_EDGE)
            if i == k:
                k += 1
            else:  # a tensor after a plain argument
                if layout is None:
                    layout = _prefix_list(k, len(args))
                layout[i] = True
            if i in save:
                if i == 0 and snapshot_self:
                    a = _snapshot(a)
                saved = _new_saved(SavedVariable)  # (SavedVariable(a) without its __init__ call)
                saved.data, saved.version, saved.is_output = a, a._version.value, False
                kept[i] = saved
            else:
                kept[i] = TensorGeometry(a) if i in geometry else meta
        elif a.__class__ in _SEQUENCES:
            for b in a:  # (_has_tensor, inlined: most are shapes)
                if isinstance(b, Tensor):
                    break
            else:
                continue  # no tensor in it: a plain argument
            flags, items = [], []
            for b in a:
                is_t = isinstance(b, Tensor)
                flags.append(is_t)
                if is_t:
                    meta, grad = _record(b, metas, edges)
                    wanted |= grad
                    items.append(SavedVariable(b) if i in save else meta)
                else:
                    items.append(b)
            if layout is None:
                layout = _prefix_list(k, len(args))
            layout[i] = tuple(flags)
            kept[i] = items
    if not wanted:
        return None
    # Every slot of Node and OpNode is set here: Node.__init__ is skipped on this path, which runs
    # once per recorded op (test_autograd_fastpaths checks that no slot is left unset).
    node = _new_node(spec._cls or spec.node_class(args, kwargs))
    node.next_functions, node._in_meta, node._seq = tuple(edges), metas, _next_seq()
    current = engine.current_stream
    node.stream = None if current is None else current(metas[0]._device)
    node._n_grads, node._extras = 1, None
    if layout is None:  # tensors first, then plain arguments: _edge_prefix's answer is k
        n = len(args)
        node._layout, node._k = _PREFIX_LAYOUTS[n][k] if n < _SHARED else _prefix_layout(k, n), k
    else:
        node._layout, node._k = tuple(layout), -1
    node._spec, node._args, node._kwargs = spec, kept, kwargs or None
    node._result = node._out_meta = node._needs = None
    node._saves = save  # (truthy: some argument may be a SavedVariable: apply unpacks, release frees)
    if anomaly._enabled:
        record_creation(node)
    return node


def _prefix_layout(k, n):
    """The layout of n arguments whose tensors are the first k."""
    return (True,) * k + (None,) * (n - k)


_SHARED = 12
_PREFIX_LAYOUTS = [[_prefix_layout(k, n) for k in range(n + 1)] for n in range(_SHARED)]  # (shared tuples)


def _prefix_list(k, n):
    return [True] * k + [None] * (n - k)


def _edges(args):
    """(edges, TensorMetas) of an op's positional tensor arguments, for nodes made elsewhere than
    in _node (which inlines this)."""
    edges, metas = [], []
    for a in args:
        if isinstance(a, Tensor):
            _record(a, metas, edges)
        elif type(a) is list or type(a) is tuple:
            for b in a:
                if isinstance(b, Tensor):
                    _record(b, metas, edges)
    return tuple(edges), tuple(metas)


def _has_tensor(items):
    for b in items:  # (a loop, not any(genexpr): shapes are tuples too, and this runs per call)
        if isinstance(b, Tensor):
            return True
    return False


def _snapshot(t):
    """The value of t before an in-place op overwrites it, carrying t's history (so a second
    derivative still reaches whatever t came from)."""
    prev = local.grad_enabled
    local.grad_enabled = False
    try:
        c = engine._op("clone")(t)
    finally:
        local.grad_enabled = prev
    c.grad_fn, c._output_nr, c._requires_grad = t.grad_fn, t._output_nr, t._requires_grad
    return c


def _mark_outputs(save_result, node, result, args, inplace_self=None):
    """Point the op's outputs at node; returns the result (an output that is an input object is
    replaced by a view of it first, so the input's own history is left alone)."""
    if inplace_self is None and result.__class__ is Tensor and result._dtype.category >= 2:
        for a in args:
            if a is result:
                break
        else:  # the usual case: one new floating-point tensor, without the lists below
            _set_grad_fn(result, node)
            result._output_nr, result._requires_grad = 0, True
            if result._base is not None:
                _record_view(node, result, 0, True, args)
            if save_result:
                node._result = SavedVariable(result, True)
            return result
    single = isinstance(result, Tensor)
    outs = [result] if single else list(result)
    node._n_grads = len(outs)
    if not single:
        node._out_meta = tuple(TensorMeta(o) if isinstance(o, Tensor) else None for o in outs)
    replaced = False
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor) or o._dtype.category < 2:
            continue
        if o is inplace_self:
            rebase_history(o, node)
            continue
        if any(o is a for a in args):
            o = outs[k] = _view_of(o)
            replaced = True
        o.grad_fn, o._output_nr, o._requires_grad = node, k, True
        if o._base is not None:
            _record_view(node, o, k, single, args)
    if save_result:
        saved = tuple(SavedVariable(o, True) if isinstance(o, Tensor) else None for o in outs)
        node._result = saved[0] if single else saved
    if replaced:
        return outs[0] if single else type(result)(outs)
    return result


def _view_of(t):
    v = alias_of(t)
    v._base = t if t._base is None else t._base
    return v


def _record_view(node, view, k, single, args):
    """An output sharing memory with an input is a view of it (several from one op may not be
    modified in place); one of a temporary the op made is not (torch's `_base` is None there)."""
    root = view._base
    parent = args[0] if args else None
    if not isinstance(parent, Tensor) or (parent._base if parent._base is not None else parent) is not root:
        for a in args:  # (a loop, not next(genexpr): a view of a temporary comes here on every call)
            if isinstance(a, Tensor) and (a._base if a._base is not None else a) is root:
                parent = a
                break
        else:
            view._base = None
            return
    info = view._view_info
    if single and view._dtype is root._dtype and info is not None and info.attr_version == view._version.value:
        # the usual case: the view op's kernel noted an untracked view (grad mode is off below autograd);
        # it is a tracked one, made as record_view would (DEFAULT, or what its parent's views are)
        parent_info = parent._view_info
        info.creation_meta = DEFAULT if parent_info is None else parent_info.creation_meta
        return
    replay = None
    if view._dtype is not root._dtype:  # as_strided can't rebuild it from the base: keep a replay
        replay = _replay(node._spec.op, args[1:], node._kwargs or {}, None if single else k)
    record_view(view, parent, DEFAULT if single else MULTI_OUTPUT_NODE, replay)


def _replay(op, rest, kwargs, k):
    """x -> the op redone on x (the step of a view chain's replay)."""
    if k is None:
        return lambda x: op(x, *rest, **kwargs)
    return lambda x: op(x, *rest, **kwargs)[k]


def _autograd_kernel(spec):
    op, static, geometry = spec.op, spec._static, spec.geometry
    save_static, save_result_static = static if static is not None else (None, None)

    def autograd_kernel(*args, out=None, **kwargs):
        if out is not None:
            return _call_with_out(spec, args, kwargs, out)
        if not local.grad_enabled:
            return op.redispatch(None, *args, **kwargs)
        if spec.inplace:
            return _call_inplace(spec, args, kwargs, args[0], None)
        if save_static is not None:
            save, save_result = save_static, save_result_static
        else:
            save, save_result = spec.saves(args, kwargs)
        node = _node(spec, args, kwargs, save, False, geometry)
        if node is None:
            return op.redispatch(None, *args, **kwargs)
        metas = node._in_meta
        device = metas[0]._device.type  # (_device_kernel's answer without a call when it is not CPU)
        kernel = op._by_type.get(device) if device != "cpu" else _device_kernel(op, metas)
        local.grad_enabled = False
        try:
            result = kernel(*args, **kwargs) if kernel is not None else op.redispatch(None, *args, **kwargs)
        finally:
            local.grad_enabled = True
        return _mark_outputs(save_result, node, result, args)
    autograd_kernel.__name__ = f"autograd_{spec.short}"
    return _native_kernel(spec, autograd_kernel) if _fast is not None else autograd_kernel


def _mask(positions):
    """Argument positions -> the bits of an int (positions C can hold; others make the C defer)."""
    bits = 0
    for i in positions:
        bits |= 1 << i if 0 <= i < 64 else 0
    return bits


def _native_kernel(spec, python):
    """autograd_kernel as a C callable (fastgrad.Kernel): the usual call in C, any other by `python`.
    Where C may not take a call at all (an in-place op, a save= decided per call, a saved or geometry
    position beyond the masks), every call goes to `python`. A node class of None: spec.node_class
    names it per call."""
    static = spec._static
    usual = (static is not None and not spec.inplace
             and all(0 <= i < 64 for i in static[0]) and all(0 <= i < 64 for i in spec.geometry))
    save, save_result = static if usual else (None, False)
    return _fast.Kernel(spec, python, spec.op, save, save_result, _mask(save or ()), _mask(spec.geometry),
                        spec._cls, python.__name__)


def _install_native():
    """fastgrad's C, told where the slots it reads live and what it calls back; None where it does not build."""
    from vibetensor.autograd import fastgrad, view_history
    from vibetensor.tensor import dtype as dtypes
    from vibetensor.tensor.tensor import VersionCounter
    mod = fastgrad.module()
    if mod is None:
        return None
    classes = {"Tensor": Tensor, "VersionCounter": VersionCounter, "ViewInfo": view_history.ViewInfo,
               "DType": dtypes.dtype, "TensorMeta": TensorMeta, "SavedVariable": SavedVariable, "Node": Node,
               "OpNode": OpNode, "Op": dispatch.Op}
    slots = {}
    for cname, cls in classes.items():
        for klass in cls.__mro__:
            for name, member in vars(klass).items():
                if type(member).__name__ == "member_descriptor":
                    slots.setdefault(f"{cname}.{name}", member)
    slots["Tensor.grad_fn"] = RAW_GRAD_FN  # (the front door and view_history wrap grad_fn in properties)
    mod.install({
        "slots": slots, "OpNode": OpNode, "Tensor": Tensor, "TensorMeta": TensorMeta, "SavedVariable": SavedVariable,
        "local": local, "engine": vars(engine), "anomaly": vars(anomaly), "layouts": _PREFIX_LAYOUTS,
        "no_edge": _NO_EDGE, "DEFAULT": DEFAULT, "gradient_edge": gradient_edge,
        "grad_accumulator": grad_accumulator, "mark_outputs": _mark_outputs, "record_view": _record_view,
        "device_kernel": _device_kernel, "next_seq": _next_seq})
    return mod



def _device_kernel(op, metas):
    """The kernel op.redispatch(None, ...) would pick for tensors with these metas (the first
    non-CPU device type, else CPU: the dispatcher's rule), without scanning the arguments again;
    None where that backend is not loaded yet (then redispatch loads it)."""
    device_type = metas[0]._device.type
    if device_type == "cpu":
        for m in metas:
            if m._device.type != "cpu":
                device_type = m._device.type
                break
    return op._by_type.get(device_type)


def _out_error(short):
    return RuntimeError(f"{short}(): functions with out=... arguments don't support automatic differentiation, "
                        "but one of the arguments requires grad.")


def _any_requires_grad(args):
    for a in args:
        if isinstance(a, Tensor) and requires_grad(a):
            return True
        if type(a) is list or type(a) is tuple:
            if any(isinstance(b, Tensor) and requires_grad(b) for b in a):
                return True
    return False


def _call_with_out(spec, args, kwargs, out):
    op = spec.op
    grad_on = local.grad_enabled
    if not args or out is not args[0]:  # a true out= call
        if grad_on and (_any_requires_grad(args) or requires_grad(out)):
            raise _out_error(spec.short)
        return op.redispatch(None, *args, out=out, **kwargs)
    if not grad_on:
        return op.redispatch(None, *args, out=out, **kwargs)
    return _call_inplace(spec, args, kwargs, out, out)


def _call_inplace(spec, args, kwargs, target, out):
    """An op writing args[0] (`target`) in place, with grad mode on: torch's checks, then the node,
    which becomes target's history (through CopySlices into its base when target is a view)."""
    op = spec.op
    node_kwargs = kwargs  # the formula's kwargs: out= is not one
    if out is not None:
        kwargs = dict(kwargs, out=out)
    if not _any_requires_grad(args):
        return op.redispatch(None, *args, **kwargs)
    check_inplace(target)
    save, save_result = spec.saves(args, kwargs)
    node = _node(spec, args, node_kwargs, save, True, spec.geometry)
    local.grad_enabled = False
    try:
        result = op.redispatch(None, *args, **kwargs)
    finally:
        local.grad_enabled = True
    return _mark_outputs(save_result, node, result, args, inplace_self=target)


# -- ops without a derivative -----------------------------------------------------------------------------

def nondifferentiable(op):
    """op's outputs never require grad (torch's non-differentiable ops: sampling, argmax-like...)."""
    def kernel(*args, **kwargs):
        prev = local.grad_enabled
        local.grad_enabled = False
        try:
            return op.redispatch(None, *args, **kwargs)
        finally:
            local.grad_enabled = prev
    op.derivative = None
    op.register(DispatchKey.Autograd, kernel)
    return op


def _not_implemented_kernel(op):
    short = op.name.split("::")[-1]
    message = f"the derivative for '{short}' is not implemented."
    writes_arg0 = short.endswith("_")

    def kernel(*args, out=None, **kwargs):
        if out is not None and (not args or out is not args[0]):
            if local.grad_enabled and (_any_requires_grad(args) or requires_grad(out)):
                raise _out_error(short)
            return op.redispatch(None, *args, out=out, **kwargs)
        if out is not None:
            kwargs["out"] = out
        target = out if out is not None else (args[0] if writes_arg0 and args else None)
        if not _any_requires_grad(args):
            return op.redispatch(None, *args, **kwargs)
        edges = None
        if target is not None:
            check_inplace(target)
            before = RAW_GRAD_FN.__get__(target)
            edges, metas = _edges(args)  # before the write changes target's history
        result = op.redispatch(None, *args, **kwargs)  # grad mode stays on: composites are traced
        if isinstance(result, Tensor) and result is not target and requires_grad(result):
            return result  # the usual composite: its parts recorded the history
        outs = [result] if isinstance(result, Tensor) else \
            [o for o in result if isinstance(o, Tensor)] if isinstance(result, (tuple, list)) else []
        for k, o in enumerate(outs):
            if o._dtype.category < 2:
                continue
            if o is target:
                if RAW_GRAD_FN.__get__(o) is before:  # the write was not traced: its derivative is unknown
                    rebase_history(o, GraphError(message, edges, metas, NotImplementedError,
                                                 "NotImplemented"))
            elif not requires_grad(o) and not any(o is a for a in args):
                if edges is None:  # inputs the op did not write: their edges are as they were before it
                    edges, metas = _edges(args)
                o.grad_fn = GraphError(message, edges, metas, NotImplementedError, "NotImplemented")
                o._output_nr, o._requires_grad = 0, True
        return result
    kernel.__name__ = f"autograd_not_implemented_{short}"
    return kernel


def install_fallbacks():
    """Give every declared op without an Autograd kernel the not-implemented kernel."""
    for op in dispatch.ops().values():
        if DispatchKey.Autograd not in op.table:
            op.register(DispatchKey.Autograd, _not_implemented_kernel(op))


# -- helpers formulas use -----------------------------------------------------------------------------------

def zeros_like(t):
    """Zeros shaped like a tensor or TensorMeta (the gradient of piecewise-constant ops)."""
    return engine.zeros(t)


def conj(x):
    """Complex conjugate for formulas (torch's convention: gradients are conjugate Wirtinger)."""
    if isinstance(x, Tensor):
        if x._dtype.is_complex:
            try:
                return dispatch.get("conj")(x)
            except KeyError:
                raise NotImplementedError("autograd of complex tensors needs the vt::conj op") from None
        return x
    if isinstance(x, complex):
        return x.conjugate()
    return x


_fast = _install_native()  # (here: after every function it hands the C)

__all__ = ["derivative", "nondifferentiable", "install_fallbacks", "conj", "zeros_like", "OpNode", "Derivative"]
