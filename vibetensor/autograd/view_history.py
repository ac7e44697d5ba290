"""Views and in-place ops, as torch does them (its NOTE [ View + Inplace detection ]).

A view shares memory with its base (`t._base`, always the root), so an in-place write through one
changes the other, and autograd must follow:

  - in-place on a view `v` of `base`: the op's node `fn` is wrapped in a CopySlices node that becomes
    the base's grad_fn. Backward takes the base's gradient, runs fn on the part v covers, writes fn's
    gradient back into that part and passes the whole on to the base's old history;
  - any in-place write (to the base or to one of its views) bumps the shared version counter, which
    makes every view's grad_fn stale: it is regenerated from the base when next read (an
    AsStridedBackward0 node, or a replay of the view chain for views that changed dtype).

Each view made by a differentiable view op (or in no_grad mode) carries a ViewInfo: the version its
grad_fn was made at, how it was made (torch's CreationMeta: views made in no_grad or inference mode,
the outputs of an op returning several views, and views made by custom Functions may not be
modified in place), and the replay function when one is needed.

Tensor.grad_fn and Tensor.requires_grad become properties here that apply these rules (torch's
VariableHooks::grad_fn and DifferentiableViewMeta::requires_grad). Ops that make views call
`note_untracked_view` when autograd does not see them, so no_grad views are known.
"""
from vibetensor import dispatch
from vibetensor.autograd import graph
from vibetensor.autograd.graph import (
    ERR_BACKWARD_TWICE, RAW_GRAD_FN, Node, TensorGeometry, gradient_edge, requires_grad, short_name)
from vibetensor.dispatch import local
from vibetensor.tensor.tensor import Tensor, set_requires_grad

# torch's CreationMeta
DEFAULT, NO_GRAD_MODE, INFERENCE_MODE, MULTI_OUTPUT_NODE, IN_CUSTOM_FUNCTION = range(5)

_raw_fn = RAW_GRAD_FN.__get__
_set_raw_fn = RAW_GRAD_FN.__set__

LEAF_MSG = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF_MSG = "a view of a leaf Variable that requires grad is being used in an in-place operation."


class ViewInfo:
    """What a view remembers for autograd (torch's DifferentiableViewMeta), in Tensor._view_info
    (None for a tensor that is no view, or a view made before anyone needed to know).
    No __init__: ViewInfo() is a C call, and note_untracked_view (every view made below autograd)
    sets the fields itself; elsewhere view_info(...) makes one."""
    __slots__ = ("attr_version", "creation_meta", "view_fn")
    # attr_version: the version counter's value when grad_fn was last made
    # view_fn: root base -> this view, when as_strided can't rebuild it


def view_info(attr_version, creation_meta=DEFAULT, view_fn=None):
    info = ViewInfo()
    info.attr_version, info.creation_meta, info.view_fn = attr_version, creation_meta, view_fn
    return info


def propagate(previous, new):
    """torch's propagate_creation_meta: a view of a restricted view stays restricted."""
    if new == DEFAULT:
        return previous
    return previous if previous == INFERENCE_MODE else new


def _unknown_replay(base):
    raise NotImplementedError("vibetensor cannot replay this view of a dtype-changing view (view_as_real, "
                              "view_as_complex) from its base, so it cannot be written in place while autograd "
                              "records; write through a view taken with grad mode on")


# -- recording views ------------------------------------------------------------------------------------------

def note_untracked_view(parent, view, replay=None, grad_enabled=None):
    """A view op ran below autograd (grad mode off, or no input requires grad): remember how.
    replay(x) redoes the op on x (default: x.as_strided to the view's geometry, for ops that keep
    the dtype). grad_enabled: local.grad_enabled when the caller has read it already (a read of
    the thread-local state costs as much as this whole function otherwise does)."""
    info = parent._view_info
    if grad_enabled is None:
        grad_enabled = local.grad_enabled
    if grad_enabled:
        meta = DEFAULT
    else:
        meta = INFERENCE_MODE if local.inference_mode else NO_GRAD_MODE
    if info is not None:
        previous = info.creation_meta
        if meta == DEFAULT or previous == INFERENCE_MODE:  # propagate(previous, meta), inlined
            meta = previous
    mine = view._view_info = ViewInfo()  # (view_info(...), inlined: every view made below autograd comes here)
    mine.attr_version = view._version.value
    mine.creation_meta = meta
    mine.view_fn = None
    if view._dtype is not view._base._dtype:
        mine.view_fn = _view_fn(view, parent, info, replay if replay is not None else _as_strided_fn(view))


def note_untracked_multi_output(parent, views):
    """Views from one op returning several (split, unbind), made in grad mode below autograd: torch
    forbids writing them in place all the same."""
    info = parent._view_info
    meta = MULTI_OUTPUT_NODE if info is None else propagate(info.creation_meta, MULTI_OUTPUT_NODE)
    for v in views:
        v._view_info = view_info(v._version.value, meta, None)


def record_view(view, parent, meta=DEFAULT, replay=None):
    """`view` (an output of a differentiable op) is a view of `parent`'s memory; replay(x) redoes
    the op on x, needed only when the view's dtype differs from its base's."""
    info = parent._view_info
    if info is not None:
        meta = info.creation_meta if meta == DEFAULT else propagate(info.creation_meta, meta)
    if view._dtype is not view._base._dtype:
        view._view_info = view_info(view._version.value, meta, _view_fn(view, parent, info, replay))
        return
    mine = view._view_info
    if mine is not None and mine.attr_version == view._version.value:
        mine.creation_meta, mine.view_fn = meta, None  # the view op's kernel noted it (below autograd): reuse
    else:
        view._view_info = view_info(view._version.value, meta, None)


def _view_fn(view, parent, info, replay):
    """root base -> view, for a view whose dtype differs from its base's (view_as_real,
    view_as_complex): as_strided can't rebuild it, so it replays the chain of view ops instead."""
    root = view._base
    if parent is root:
        start = None
    elif info is not None and info.view_fn is not None:
        start = info.view_fn
    elif parent._dtype is root._dtype:
        start = _as_strided_fn(parent)
    else:
        return _unknown_replay
    if replay is None:
        return _unknown_replay
    return replay if start is None else _chain(start, replay)


def _chain(first, then):
    return lambda root: then(first(root))


def _as_strided_fn(t):
    """x -> x.as_strided to t's geometry."""
    shape, stride, offset = t._shape, t._stride, t._offset
    return lambda x: dispatch.get("as_strided")(x, shape, stride, offset)


def mark_custom_function_view(view):
    """An output of a custom Function that is a view (torch forbids modifying it in place)."""
    view._view_info = view_info(view._version.value, IN_CUSTOM_FUNCTION, None)


# -- Tensor.grad_fn: regenerated for stale views -------------------------------------------------------------

def _grad_fn(t):
    fn = _raw_fn(t)
    base = t._base
    if base is None:
        return fn
    return view_grad_fn(t, fn, base)


def view_grad_fn(t, fn, base):
    info = t._view_info
    if info is None:
        # a view taken without autograd: stale only if its base has gained a history since
        if fn is not None or _raw_fn(base) is None:
            return fn
        info = t._view_info = view_info(-1)
    elif fn is None and not base._requires_grad:
        return None
    if info.attr_version == t._version.value:
        return fn
    if info.creation_meta != DEFAULT:
        raise RuntimeError(rebase_error(t, fn, info.creation_meta, indirect=True))
    return regenerate(t, base, info)


def regenerate(t, base, info):
    """A new grad_fn for view t, from its base's current history."""
    prev = local.grad_enabled
    local.grad_enabled = True
    try:
        if info.view_fn is not None:
            fresh = info.view_fn(base)
        else:
            fresh = dispatch.get("as_strided")(base, t._shape, t._stride, t._offset)
    finally:
        local.grad_enabled = prev
    fn = _raw_fn(fresh)
    if fn is not None:
        graph.rebase_history(t, fn)  # new hooks go to the new node; retain_grad moves along
    else:
        _set_raw_fn(t, None)
    info.attr_version = t._version.value
    return fn


Tensor.grad_fn = property(_grad_fn, _set_raw_fn, doc="The node that made this tensor (None for leaves).")
Tensor.requires_grad = property(requires_grad, set_requires_grad)


# -- in-place writes --------------------------------------------------------------------------------------

_HINTS = {
    MULTI_OUTPUT_NODE: " This view is the output of a function that returns multiple views. Such functions do not "
                       "allow the output views to be modified inplace. You should replace the inplace operation by an "
                       "out-of-place one.",
    NO_GRAD_MODE: " Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify your code "
                  "by moving both the view and the inplace either both inside the no_grad block (if you don't want the "
                  "inplace to be tracked) or both outside (if you want the inplace to be tracked).",
    INFERENCE_MODE: " Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify your "
                    "code by moving both the view and the inplace either both inside the inference_mode block (if you "
                    "don't want the inplace to be tracked) or both outside (if you want the inplace to be tracked).",
    IN_CUSTOM_FUNCTION: " This view was created inside a custom Function (or because an input was returned as-is) and "
                        "the autograd logic to handle view+inplace would override the custom backward associated with "
                        "the custom Function, leading to incorrect gradients. This behavior is forbidden. You can fix "
                        "this by cloning the output of the custom Function.",
}


def rebase_error(t, fn, meta, indirect):
    """torch's handle_view_on_rebase message."""
    modified = "its base or another view of its base has been" if indirect else "is being"
    if meta in (NO_GRAD_MODE, INFERENCE_MODE) or fn is None:
        prefix = (f"Output {t._output_nr} of {short_name(fn)} is a view of a view which was created in"
                  if fn is not None else "A view was created in")
        if meta == INFERENCE_MODE:
            msg = f"{prefix} inference mode and {modified} modified inplace in normal mode."
        else:
            msg = f"{prefix} no_grad mode and {modified} modified inplace with grad mode enabled."
    else:
        msg = f"Output {t._output_nr} of {short_name(fn)} is a view and {modified} modified inplace."
    return msg + _HINTS[meta]


def check_inplace(t, leaf_msg=LEAF_MSG):
    """torch's check_inplace, before an in-place write that autograd records (grad mode on, an input
    requires grad)."""
    base = t._base
    if base is not None:
        info = t._view_info
        if info is not None and info.creation_meta != DEFAULT:
            raise RuntimeError(rebase_error(t, _raw_fn(t), info.creation_meta, indirect=False))
        if info is not None and info.view_fn is _unknown_replay:
            _unknown_replay(base)  # refuse before writing
        if requires_grad(t) and _raw_fn(base) is None:
            raise RuntimeError(VIEW_OF_LEAF_MSG)
    if requires_grad(t) and t.grad_fn is None:
        raise RuntimeError(leaf_msg)


def rebase_history(t, node):
    """t was written in place by the op `node` differentiates. A plain tensor's gradient now flows
    into node; for a view, the base's history goes through CopySlices(node) and the view's grad_fn
    is regenerated from the base."""
    base = t._base
    if base is None:
        graph.rebase_history(t, node)
        return
    info = t._view_info
    if info is None:
        info = t._view_info = view_info(-1)
    graph.rebase_history(base, CopySlices(base, t, info.view_fn, node))
    regenerate(t, base, info)


def rebase_inplace_view(t, node):
    """t took the geometry of a view of itself (t_(), squeeze_(), as_strided_()...) made by the op
    `node` differentiates: that node is t's history now (no CopySlices: t's memory is unchanged)."""
    graph.rebase_history(t, node)
    if t._base is not None:
        info = t._view_info
        if info is None:
            info = t._view_info = view_info(-1)
        info.attr_version = t._version.value


class CopySlices(Node):
    """The base's node after an in-place op `fn` on one of its views (torch's CopySlices): the base's
    gradient outside the view passes through; inside, it is replaced by fn's gradient for the view's
    old value. fn's other inputs get fn's other gradients."""
    __slots__ = ("_base_geometry", "_view_geometry", "_view_fn", "_fn")

    def __init__(self, base, view, view_fn, fn):
        base_edge = gradient_edge(base) if base._requires_grad else (None, 0)
        super().__init__((base_edge,) + tuple(fn.next_functions[1:]),
                         (TensorGeometry(base),) + tuple(fn._in_meta[1:]))
        self._base_geometry, self._view_geometry = TensorGeometry(base), TensorGeometry(view)
        self._view_fn, self._fn = view_fn, fn

    def name(self):
        return "torch::autograd::CopySlices"

    def apply(self, grads):
        fn = self._fn
        if fn is None:
            raise RuntimeError(ERR_BACKWARD_TWICE)
        grad = grads[0]
        n = len(self.next_functions)
        if grad is None:
            return [None] * n
        from vibetensor.ops import creation
        from vibetensor.autograd.engine import validate_outputs
        base, view = self._base_geometry, self._view_geometry
        result = creation.empty_strided(base._shape, base._stride, grad._dtype, grad._device)
        creation.copy_(result, grad)
        if self._view_fn is not None:
            grad_slice = self._view_fn(result)
        else:
            grad_slice = dispatch.get("as_strided")(result, view._shape, view._stride, view._offset - base._offset)
        # fn gets a copy: its gradient for another input may be its own argument, which the write
        # into grad_slice below would change
        piece = creation.copy_(creation.empty(grad_slice._shape, grad_slice._dtype, grad_slice._device), grad_slice)
        res = validate_outputs(fn, fn.apply([piece]))
        outs = [None] * n
        if res and res[0] is not None:
            creation.copy_(grad_slice, res[0])
            outs[0] = result
        outs[1:] = res[1:]
        return outs

    def release(self):
        fn = self._fn
        if fn is not None:
            fn.release()
        self._fn = None


__all__ = ["ViewInfo", "view_info", "CopySlices", "check_inplace", "rebase_history", "rebase_inplace_view", "record_view",
           "note_untracked_view", "note_untracked_multi_output",
           "mark_custom_function_view", "requires_grad"]
