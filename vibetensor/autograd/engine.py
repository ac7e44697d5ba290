"""The backward engine: run the graph from root gradients down to the leaves.

One call of `execute` owns all its state in local variables (dependency counts, input buffers, the
ready queue), so there is no process-wide lock: a backward started inside a node's backward (a
custom Function calling autograd.grad) simply runs to completion as a nested call, and threads
backpropagating independent graphs never wait on each other. Grad mode is thread-local (it lives
in vibetensor.dispatch.local); the engine sets it to create_graph while nodes run.

Order: a node runs once every node that delivers gradients to it has run (dependency counting);
among ready nodes the latest created runs first, AccumulateGrad before everything, as in torch.

Streams: each node records the stream current when it was made (None on CPU). Two hook points,
`set_stream_hooks(enter, sync)`, let the CUDA runtime run a node's backward on its stream and
make a gradient produced on one stream safe to consume on another; on CPU both are unset.
"""
import heapq
import itertools
import sys
import warnings
from contextlib import nullcontext

from vibetensor import dispatch
from vibetensor.autograd import anomaly, graph
from vibetensor.autograd.graph import (
    GRAD, RAW_GRAD_FN, AccumulateGrad, Node, TensorMeta, existing_grad_accumulator, grad_accumulator, gradient_edge,
    raw_grad, remembered)
from vibetensor.dispatch import local
from vibetensor.tensor import memory_format as mf
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor, array, empty, make_tensor

_heappush, _heappop, _heappushpop = heapq.heappush, heapq.heappop, heapq.heappushpop
_count = itertools.count
_get_grad = GRAD.__get__
_raw_grad_fn = RAW_GRAD_FN.__get__

# -- stream hook points (set by the CUDA runtime; None on CPU) ------------------------------------------
_stream_enter = None  # fn(stream) -> context manager making `stream` current while a node runs
_stream_sync = None   # fn(grad, producer_node, consumer_node) -> grad safe to use on consumer's stream
current_stream = None  # fn(device) -> the stream a node made now on `device` records
_current_at = None    # fn(device_index) -> the caller's current stream there (optional)


def set_stream_hooks(enter, sync, current, current_at=None):
    """The engine calls sync only for a gradient whose producer recorded a stream and whose
    consumer did not record that same stream (a consumer on the producer's stream needs nothing).
    current_at, if given, lets the engine skip enter for a node on the caller's current stream."""
    global _stream_enter, _stream_sync, current_stream, _current_at
    _stream_enter, _stream_sync, current_stream, _current_at = enter, sync, current, current_at


# -- the few ops the engine itself needs, looked up lazily (ops are declared on a higher floor) ---------
_ops = {}


def _op(name):
    op = _ops.get(name)
    if op is None:
        op = _ops[name] = dispatch.get(name)
    return op


def zeros(meta):
    return _op("full")(meta._shape, 0, meta._dtype, device=meta._device)


def ones_like(t):
    return _op("full")(t._shape, 1, t._dtype, device=t._device)


def add(a, b):
    return _op("add")(a, b)


def cast(g, dtype):
    return _op("to")(g, dtype, g._device)


def sum_to(g, shape):
    """Sum a broadcast gradient back to `shape` (torch's sum_to_size)."""
    shape = tuple(shape)
    if g._shape == shape:
        return g
    lead = len(g._shape) - len(shape)
    kept = tuple(lead + i for i, s in enumerate(shape) if s == 1 and g._shape[lead + i] != 1)
    try:
        sum_op = _op("sum")
    except KeyError:
        return _sum_to_numpy(g, shape, lead, kept)
    if g._requires_grad and local.grad_enabled and getattr(sum_op, "derivative", None) is None:
        return _sum_to_recorded(sum_op, g, shape, lead, kept)
    if lead:
        g = sum_op(g, tuple(range(lead)), False)
    if kept:
        g = sum_op(g, tuple(d - lead for d in kept), True)
    return g


class _SumToBackward(Node):
    """Until vt::sum declares its derivative: the backward of sum_to (an expand), so gradients that
    were summed over broadcast dims stay differentiable under create_graph."""
    __slots__ = ("_from_shape",)

    def name(self):
        return "SumBackward1"

    def apply(self, grads):
        return [_op("expand")(grads[0], self._from_shape)]


def _sum_to_recorded(sum_op, g, shape, lead, kept):
    prev = local.grad_enabled
    local.grad_enabled = False
    try:
        r = sum_op(g, tuple(range(lead)), False) if lead else g
        r = sum_op(r, tuple(d - lead for d in kept), True) if kept else r
    finally:
        local.grad_enabled = prev
    node = _SumToBackward((gradient_edge(g),), (TensorMeta(g),))
    node._from_shape = g._shape
    r.grad_fn, r._output_nr, r._requires_grad = node, 0, True
    return r


def _sum_to_numpy(g, shape, lead, kept):
    """Until vt::sum exists: a non-differentiable CPU reduction (first-order gradients only)."""
    from vibetensor.tensor.tensor import from_array
    if g._requires_grad and local.grad_enabled:
        raise NotImplementedError("double backward through a broadcast needs the vt::sum op, which is not "
                                  "declared yet")
    a = array(g).sum(axis=tuple(range(lead)) + kept, keepdims=True)
    return from_array(a.reshape(shape).copy())


def expandable(shape, target):
    """Can a gradient of `shape` be summed down to `target` (i.e. target broadcasts to shape)?"""
    if len(target) > len(shape):
        return False
    lead = len(shape) - len(target)
    return all(t == s or t == 1 for t, s in zip(target, shape[lead:]))


def _has_nan(t):
    if t._dtype.category < 2:
        return False
    if t._device.type != "cpu":  # anomaly mode only: a host sync is accepted here
        t = _op("to")(t, t._dtype, _cpu())
    import numpy as np
    a = array(t)
    return bool(np.isnan(a).any()) if a.dtype.kind in "fc" else bool(np.isnan(a.astype(np.float32)).any())


def _cpu():
    from vibetensor.tensor.device import CPU
    return CPU


# -- leaf accumulation ---------------------------------------------------------------------------------

# references to a gradient nobody else holds: AccumulateGrad.apply's local, our argument, getrefcount's
_OWNED_REFS = 3


def accumulate_into_grad(leaf, g, held=0):
    """leaf.grad += g, as torch's AccumulateGrad: the first gradient is stolen when no one else can
    see it and it obeys the layout contract (else copied into the leaf's layout), later ones are
    added in place (or out of place under create_graph). held: references the engine keeps for the
    node's post hooks (torch's `1 + !post_hooks().empty()`)."""
    try:  # (raw_grad, inlined)
        grad = _get_grad(leaf)
    except AttributeError:
        grad = None
    if grad is None:
        # Steal g when nothing else can see it (torch's use_count test). Under create_graph torch
        # clones instead; we keep g itself then too, so .grad stays differentiable through ops
        # that have derivatives (only its grad_fn's name differs from torch's CloneBackward0).
        if sys.getrefcount(g) <= _OWNED_REFS + held and g._offset == 0 and obeys_layout_contract(g, leaf):
            if g._base is None:  # (not a view: its grad_fn is the raw slot, read without the property)
                if _raw_grad_fn(g) is None or local.grad_enabled:
                    return GRAD.__set__(leaf, g)
            elif (g.grad_fn is None or local.grad_enabled) and _whole_dead_base(g):
                # mm's weight gradient arrives as a transposed view of its result
                return GRAD.__set__(leaf, make_tensor(g._storage, g._shape, g._stride, 0, g._dtype))
        GRAD.__set__(leaf, clone_obey_contract(g, leaf))
    elif not local.grad_enabled:
        _op("add")(grad, g, out=grad)
    else:
        GRAD.__set__(leaf, add(grad, g))


graph.accumulate_into_grad = accumulate_into_grad  # what AccumulateGrad.apply calls


_BASE_REFS = 3  # a base seen only by its view's _base slot (+ the local and getrefcount's argument)


def _whole_dead_base(g):
    """g is a view that spans its base's whole storage, and nothing but g holds the base: then g's
    memory can become the leaf's .grad (as a plain tensor) without a copy, as torch steals it."""
    base = g._base
    return (g.grad_fn is None and sys.getrefcount(base) <= _BASE_REFS and base._storage is g._storage
            and g._storage.nbytes == sh.numel(g._shape) * g._dtype.itemsize)


def obeys_layout_contract(g, leaf):
    """torch's Gradient Layout Contract: a dense leaf's .grad has the leaf's strides (size-1 dims
    aside), any other leaf's .grad is contiguous. So a contiguous weight gets a contiguous grad even
    when its gradient arrives transposed (mm's backward), and fused optimisers never copy."""
    dense = _DENSE.get((leaf._shape, leaf._stride))  # (_dense, inlined: once per leaf per step)
    if dense is None:
        dense = _dense(leaf)
    if not dense:
        return g.is_contiguous()
    if g._stride == leaf._stride and 0 not in g._stride:  # the usual case, without the loop below
        return True
    for n, gs, ls in zip(g._shape, g._stride, leaf._stride):
        if gs != ls if n != 1 else gs == 0:  # a 0 stride on a size-1 dim marks a view (cat's)
            return False
    return True


def _dense(leaf):
    key = (leaf._shape, leaf._stride)
    dense = _DENSE.get(key)  # (remembered, inlined: once per leaf per step)
    if dense is None:
        dense = remembered(_DENSE, key, mf.is_non_overlapping_and_dense, *key)
    return dense


_DENSE = {}  # (shape, strides) of leaves -> is_non_overlapping_and_dense


def clone_obey_contract(g, leaf):
    """A copy of g laid out as the contract asks (torch's clone_obey_contract): in the leaf's
    strides when the leaf is dense, else contiguous. Differentiable under create_graph."""
    if _dense(leaf):
        shape, stride = leaf._shape, leaf._stride
        n = 1 + sum((s - 1) * st for s, st in zip(shape, stride)) if sh.numel(shape) else 0
        dst = make_tensor(empty((n,), leaf._dtype, leaf._device)._storage, shape, stride, 0, leaf._dtype)
        return _op("copy_")(dst, g)
    return _op("clone")(g, memory_format=mf.contiguous_format)


# -- running nodes -----------------------------------------------------------------------------------

def _call_tensor_pre_hooks(node, grads):
    for nr, hooks in node.tensor_pre_hooks():
        g = grads[nr]
        if g is None:
            continue
        for fn in tuple(hooks.values()):
            r = fn(g)
            if r is not None:
                g = r
        grads[nr] = g
    retains = node._retains_grad_hooks
    if retains:
        for nr, fn in tuple(retains.items()):
            if grads[nr] is not None:
                fn(grads[nr])


def _call_node(node, grads):
    """Pre-hooks, apply, validation, post-hooks: the gradients for node's next_functions."""
    if node._pre_hooks:
        for fn in tuple(node._pre_hooks.values()):
            r = fn(tuple(grads))
            if r is not None:
                grads = list(r)
    post = node._post_hooks
    inputs = tuple(grads) if post else None  # (before apply, which may empty grads: post hooks see them)
    outs = validate_outputs(node, _apply(node, grads))
    if post:
        for fn in tuple(post.values()):
            r = fn(tuple(outs), inputs)
            if r is not None:
                outs = list(r)
    return outs


def _apply(node, grads):
    """node.apply on the node's stream; a node that received no gradient at all gives none."""
    for g in grads:  # (a loop: cheaper than any(genexpr) on this per-node path)
        if g is not None:
            break
    else:
        return [None] * len(node.next_functions)
    del g  # hold no gradient while apply runs: AccumulateGrad steals one only when nobody else does
    stream = node.stream
    if stream is not None and _stream_enter is not None:
        # (already on the node's stream, the usual case: nothing to enter)
        if _current_at is None or _current_at(stream.device_index) is not stream:
            context = _stream_enter(stream)
            if context.__class__ is not nullcontext:
                with context:
                    return node.apply(grads)
    return node.apply(grads)


def validate_outputs(node, outs):
    """Each gradient must fit the input it is for: broadcast ones are summed down, dtype is cast, one
    for an input that takes none is dropped. Returns outs itself when all fit (the usual case), else a
    corrected copy: outs is never changed (it may be a hook's or a Function's own list)."""
    edges = node.next_functions
    if len(outs) != len(edges):
        raise _count_error(node, outs)
    metas = node._in_meta
    fixed = None
    i = 0
    for g in outs:
        if g is not None:
            m = metas[i]
            # fits as it is: a plain Tensor with the input's shape, dtype and device, for an input with an edge
            if (g.__class__ is not Tensor or g._shape != m._shape or g._dtype is not m._dtype
                    or g._device is not m._device or edges[i][0] is None):
                if fixed is None:
                    fixed = list(outs)
                fixed[i] = _validate_output(node, i, g, m, edges[i][0])
        i += 1
    if fixed is not None:
        outs = fixed
    if anomaly._enabled and anomaly._check_nan:
        for i, g in enumerate(outs):
            if g is not None and _has_nan(g):
                raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th output.")
    return outs


def _count_error(node, outs):
    n = len(node.next_functions)
    return RuntimeError(f"function {node.name()} returned an incorrect number of gradients (expected {n}, got "
                        f"{len(outs)})")


def _validate_output(node, i, g, meta, nxt):
    """validate_outputs for a gradient that does not fit as it is: the fitted gradient, or the error."""
    if nxt is None:
        return None
    if not isinstance(g, Tensor):
        raise TypeError(f"function {node.name()} returned a gradient at index {i} of type "
                        f"{type(g).__name__}, expected a Tensor or None")
    if g._shape != meta._shape:
        if not expandable(g._shape, meta._shape):
            raise RuntimeError(f"Function {node.name()} returned an invalid gradient at index {i} - got "
                               f"{list(g._shape)} but expected shape compatible with {list(meta._shape)}")
        g = sum_to(g, meta._shape)
    if g._dtype is not meta._dtype:
        g = cast(g, meta._dtype)
    if g._device is not meta._device and g._device != meta._device:
        raise RuntimeError(f"Function {node.name()} returned an invalid gradient at index {i} - expected "
                           f"device {meta._device} but got {g._device}")
    return g


# -- the graph walk ------------------------------------------------------------------------------------

def _dependencies(roots):
    """How many edges of the reachable graph point at each node."""
    deps = {}
    stack = list(roots)
    roots = set(roots)
    while stack:
        for nxt, _ in stack.pop().next_functions:
            if nxt is not None:
                if nxt in deps:
                    deps[nxt] += 1
                else:  # first seen: walk on from it (a leaf's AccumulateGrad has nowhere to go)
                    deps[nxt] = 1
                    if nxt.next_functions and nxt not in roots:
                        stack.append(nxt)
    return deps


def _needed(roots, deps, targets):
    """Nodes that lie on a path to a target (only those run when inputs= restricts the backward)."""
    remaining = dict(deps)
    order, stack = [], [r for r in roots if remaining.get(r, 0) == 0]
    while stack:
        node = stack.pop()
        order.append(node)
        for nxt, _ in node.next_functions:
            if nxt is not None:
                remaining[nxt] -= 1
                if remaining[nxt] == 0:
                    stack.append(nxt)
    needed = set()
    for node in reversed(order):  # children before parents
        for nxt, _ in node.next_functions:
            if nxt is not None and (nxt in needed or nxt in targets):
                needed.add(node)
                break
    return needed


def execute(root_edges, root_grads, keep_graph, create_graph, captures=None, run_targets=None):
    """Backpropagate root_grads from root_edges [(node, input_nr)].

    captures: {node: [(input_nr, fn(grad))]} -- gradients arriving at a node are handed to fn
        (autograd.grad's results, backward(inputs=) of non-leaves);
    run_targets: nodes that must run (backward(inputs=) of leaves).
    With either given, only nodes on a path to them run; otherwise the whole graph runs."""
    roots = list(dict.fromkeys(node for node, _ in root_edges))
    deps = _dependencies(roots)
    needed = None  # with captures or run_targets: the nodes that run
    if captures is not None or run_targets is not None:
        targets = set(captures or ()) | set(run_targets or ())
        needed = _needed(roots, deps, targets) | set(run_targets or ())
    buffers = {}  # node -> the gradients it has received so far, while it waits for more
    for (node, nr), g in zip(root_edges, root_grads):
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * _num_grads(node)
        buf[nr] = g if buf[nr] is None else add(buf[nr], g)
    # the ready queue: (-seq, tie, node, its gradients); the latest made runs first, ties in arrival order
    tie = itertools.count()
    ready = [(-node._seq, next(tie), node, buffers.pop(node)) for node in roots if node not in deps]
    heapq.heapify(ready)
    prev_mode = local.grad_enabled
    local.grad_enabled = create_graph
    try:
        walk(ready, deps, buffers, tie, keep_graph, captures, needed)
    finally:
        local.grad_enabled = prev_mode


def _walk(ready, deps, buffers, tie, keep_graph, captures, needed):
    """Run nodes off the ready queue until it is empty (execute's loop; fastgrad.walk is its C twin)."""
    pending = None  # the entry _deliver made ready last, not yet pushed (see below)
    while True:
        if pending is not None:  # push it and pop the first: heappushpop hands it straight back
            entry, pending = pending, None  # when it comes first (a chain of nodes, the usual case)
            _, _, node, grads = _heappushpop(ready, entry) if ready else entry
            del entry
        elif ready:
            _, _, node, grads = _heappop(ready)
        else:
            break
        if node._extras is None and needed is None and not anomaly._enabled:
            if node.__class__ is AccumulateGrad:  # a leaf: into leaf.grad (no edges: nothing to deliver)
                if not node.variable._hooks:
                    node.apply(grads)
                    continue
                outs = _run_special(node, grads, captures, needed)
                continue
            outs = _apply(node, grads)  # the usual node
        else:
            outs = _run_special(node, grads, captures, needed)
            if outs is None:
                continue
        pending = _deliver(node, outs, deps, buffers, ready, tie)  # (validates them first)
        del outs  # hold no gradient here: AccumulateGrad steals one only when nobody else does
        if not keep_graph:
            node.release()


def _run_special(node, grads, captures, needed):
    """A node with hooks, a leaf's AccumulateGrad, one under backward(inputs=)/grad() (`needed`:
    the nodes that run), or any node in anomaly mode: its gradients, or None when nothing is left
    to deliver (it did not need to run, or it was an AccumulateGrad)."""
    if node._extras is not None or (node.__class__ is AccumulateGrad and node.variable._hooks):
        _call_tensor_pre_hooks(node, grads)
    if needed is not None:
        for nr, fn in (captures.get(node, ()) if captures else ()):
            fn(grads[nr])
        if node not in needed:
            return None
    if anomaly._enabled:
        return _run(node, grads)
    if node._extras is not None:
        return _call_node(node, grads)
    if node.__class__ is AccumulateGrad:
        node.apply(grads)  # into leaf.grad (it has no edges: nothing to validate or deliver)
        return None
    return validate_outputs(node, _apply(node, grads))


def _run(node, grads):
    """_call_node in anomaly mode: a failing node names the forward call that made it."""
    try:
        return _call_node(node, grads)
    except Exception:
        anomaly.warn_forward_trace(node)
        raise


def _deliver(node, outs, deps, buffers, ready, tie):
    """Hand node's gradients to the nodes they are for, each validated on the way (validate_outputs,
    fused: one pass). A node whose last awaited gradient arrives is ready: it moves to the ready
    queue with its buffer (one that waits on a single edge, most nodes, never enters `buffers`);
    the last one made ready is returned instead of pushed (None if none), for execute to push.
    A gradient that fails validation raises before node is released, as in torch."""
    edges = node.next_functions
    if len(outs) != len(edges):
        raise _count_error(node, outs)
    stream = node.stream
    sync = _stream_sync if stream is not None else None
    pending = None
    # (one TensorMeta per edge: zip walks outs, edges and metas together without indexing)
    for i, g, (nxt, nr), m in zip(_count(), outs, edges, node._in_meta):
        if nxt is None:
            continue  # (a gradient for an input that takes none is dropped)
        if g is not None:
            if (g.__class__ is not Tensor or g._shape != m._shape or g._dtype is not m._dtype
                    or g._device is not m._device):  # (validate_outputs' test, then its slow path)
                g = _validate_output(node, i, g, m, nxt)
            if sync is not None and nxt.stream is not stream:
                g = sync(g, node, nxt)
        left = deps[nxt] - 1
        if left:  # nxt waits for more
            deps[nxt] = left
            buf = buffers.get(nxt)
            if buf is None:
                buf = buffers[nxt] = [None] * nxt._n_grads
        else:
            buf = buffers.pop(nxt, None)
            if buf is None:  # nxt waited for this gradient alone (most nodes)
                n = nxt._n_grads
                if n == 1:
                    buf = [g]
                else:
                    buf = [None] * n
                    buf[nr] = g
                if pending is not None:
                    _heappush(ready, pending)
                pending = (-nxt._seq, next(tie), nxt, buf)
                continue
            if pending is not None:
                _heappush(ready, pending)
            pending = (-nxt._seq, next(tie), nxt, buf)
        if g is not None:
            old = buf[nr]
            buf[nr] = g if old is None else _accumulate(old, g)
    return pending


# references to a buffered gradient nobody else holds: the buffer's slot, _deliver's local, our
# argument, getrefcount's; to its storage: the tensor's slot and getrefcount's argument
_BUFFER_REFS, _STORAGE_REFS = 4, 2
_OUT_OF_PLACE = frozenset(("cpu",))  # device types whose buffered gradients are never added into


def _accumulate(old, g):
    """old + g in a node's input buffer, as torch's InputBuffer::accumulate: when no graph is being
    built and the buffer holds the last reference to old and to its memory (a dense tensor, not a
    view), g is added into old's memory, saving an allocation; else into a new tensor. (CPU ones
    always into a new one: a NumPy array may share their memory unseen.)"""
    if (old.__class__ is Tensor and old._base is None and old._device.type not in _OUT_OF_PLACE
            and sys.getrefcount(old) <= _BUFFER_REFS and sys.getrefcount(old._storage) <= _STORAGE_REFS
            and not local.grad_enabled and _dense(old)):
        return _op("add")(old, g, out=old)
    return add(old, g)


def _num_grads(node):
    """How many gradients a node takes (one per output of its forward op)."""
    return node._n_grads


# -- the user-facing entry points: backward and grad ---------------------------------------------------

def _as_tuple(x):
    if x is None:
        return None
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _make_grads(outputs, grads):
    new = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if out._requires_grad:
                if out.numel() != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                if out._dtype.is_complex:
                    raise RuntimeError("grad can be implicitly created only for real scalar outputs but got "
                                       f"{out._dtype}")
                g = ones_like(out)
        elif isinstance(g, Tensor):
            if g._shape != out._shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {sh.Size(g._shape)!r} and "
                                   f"output[{i}] has a shape of {sh.Size(out._shape)!r}.")
            if g._dtype.is_complex != out._dtype.is_complex:
                raise RuntimeError(f"For complex Tensors, both grad_output and output are required to have the "
                                   f"same dtype. Mismatch in dtype: grad_output[{i}] has a dtype of {g._dtype} "
                                   f"and output[{i}] has a dtype of {out._dtype}.")
            if g._dtype is not out._dtype:
                g = cast(g, out._dtype)
        else:
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
        new.append(g)
    return new


def _roots(outputs, grads):
    edges, kept = [], []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if not out._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            continue
        edges.append((out.grad_fn, out._output_nr) if out.grad_fn is not None else (grad_accumulator(out), 0))
        kept.append(g)
    return edges, kept


def _check_lengths(outputs, grads):
    if len(grads) != len(outputs):
        raise RuntimeError(f"got {len(outputs)} tensors and {len(grads)} gradients")


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None,
             inputs=None):
    """torch.autograd.backward: accumulate d(sum of tensors * grad_tensors)/d(leaf) into leaf.grad."""
    if grad_variables is not None:
        grad_tensors = grad_variables
    inputs = _as_tuple(inputs)
    if inputs is not None and len(inputs) == 0:
        raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    outputs = _as_tuple(tensors)
    grads = (None,) * len(outputs) if grad_tensors is None else _as_tuple(grad_tensors)
    _check_lengths(outputs, grads)
    grads = _make_grads(outputs, grads)
    if retain_graph is None:
        retain_graph = create_graph
    edges, grads = _roots(outputs, grads)
    if create_graph:
        warnings.warn("Using backward() with create_graph=True will create a reference cycle between the parameter "
                      "and its gradient which can cause a memory leak. We recommend using autograd.grad when creating "
                      "the graph to avoid this. If you have to use this function, make sure to reset the .grad fields "
                      "of your parameters to None after use to break the cycle and avoid the leak.", stacklevel=3)
    captures = run_targets = None
    if inputs is not None:
        captures, run_targets = {}, set()
        for t in inputs:
            if t.grad_fn is None:
                run_targets.add(grad_accumulator(t))
            else:
                captures.setdefault(t.grad_fn, []).append((t._output_nr, _accumulate_non_leaf(t)))
    execute(edges, grads, retain_graph, create_graph, captures, run_targets)


def _accumulate_non_leaf(t):
    def capture(g):
        if g is not None:
            old = raw_grad(t)
            GRAD.__set__(t, g if old is None else add(old, g))
    return capture


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """torch.autograd.grad: the gradients of outputs w.r.t. inputs, returned (no .grad is touched)."""
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) needs vmap, which vibetensor lacks")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    if allow_unused is None:
        allow_unused = materialize_grads
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    grads = (None,) * len(outputs) if grad_outputs is None else _as_tuple(grad_outputs)
    _check_lengths(outputs, grads)
    grads = _make_grads(outputs, grads)
    if retain_graph is None:
        retain_graph = create_graph
    edges, grads = _roots(outputs, grads)
    results = [None] * len(inputs)
    captures = {}
    for i, t in enumerate(inputs):
        if not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        node, nr = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (existing_grad_accumulator(t), 0)
        if node is not None:
            captures.setdefault(node, []).append((nr, _capture_into(results, i)))
    execute(edges, grads, retain_graph, create_graph, captures, None)
    for i, g in enumerate(results):
        if g is None:
            if not allow_unused:
                raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have been used in the "
                                   "graph. Set allow_unused=True if this is the desired behavior.")
            if materialize_grads:
                results[i] = _op("full")(inputs[i]._shape, 0, inputs[i]._dtype, device=inputs[i]._device)
    return tuple(results)


def _capture_into(results, i):
    def capture(g):
        if g is not None:
            results[i] = g if results[i] is None else add(results[i], g)
    return capture


__all__ = ["backward", "grad", "execute", "set_stream_hooks"]


def _install_native():
    """fastgrad.walk, told what it calls back; _walk where the C does not build."""
    from vibetensor.autograd import fastgrad
    mod = fastgrad.module()
    if mod is None:
        return _walk
    mod.install_engine({"AccumulateGrad": AccumulateGrad, "heappush": _heappush, "heappop": _heappop,
                        "heappushpop": _heappushpop, "walk": _walk, "run_special": _run_special, "apply": _apply,
                        "validate_output": _validate_output, "accumulate": _accumulate, "count_error": _count_error})
    return mod.walk


walk = _install_native()
