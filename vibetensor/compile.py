"""vibetensor.compile: a whole step (forward, backward, clipping, optimiser step) captured into one
CUDA graph and replayed, so the Python and launch overhead of hundreds of kernels becomes one
graph launch.

    step = vibetensor.compile(step)      # or @vibetensor.compile
    for x, y in batches:
        loss = step(x, y)                # call 1: eager; call 2: capture + replay; then replay

Not torch.compile (which traces and generates kernels; it keeps Python semantics): this is the
`torch.cuda.graphs` whole-network recipe, automated, in the spirit of tinygrad's TinyJit.

How a call runs, per guard key (the arguments' structure, each tensor's shape/dtype/device/
requires_grad, and every non-tensor argument's value, or identity when unhashable):
1. the first call runs fn eagerly: kernels compile, optimiser state and gradients get allocated;
2. the second copies the tensor arguments into static buffers, captures fn on a side stream into
   a CUDAGraph with a private memory pool, and replays it once (capturing runs nothing);
3. later calls copy the arguments into the static buffers and replay.
A call whose key was not seen re-captures (recapture="auto") or raises (recapture="error").
Computations whose tensors are all on the CPU simply call fn: there are no graphs on the CPU.

What replay means (tinygrad's "JIT footguns", each handled or documented):
- Outputs are static buffers: every call returns the SAME tensors, overwritten by the next call.
  Clone an output you want to keep. Outputs must be tensors (or None): a Python number computed
  by fn would be frozen at its capture-time value, so it raises.
- Python code in fn runs only in calls 1 and 2: side effects (prints, counters, appending to a
  list), Python branches and Python numbers read from outside (closures, globals, attributes)
  are frozen at capture. Pass such values as arguments (they join the guard key and re-capture)
  or keep them in device tensors that you update in place.
- Tensors read from outside fn (parameters, closure tensors) are read at their addresses on each
  replay: update them in place (copy_, optimiser steps), never rebind them to new tensors.
- Host synchronisation inside fn (`.item()`, `.tolist()`, `.cpu()`, printing a CUDA tensor,
  `torch.cuda.synchronize()`) raises a clear error during capture: the value could not change on
  replay. Compute on the device and read results outside fn.
- Random ops (dropout, rand, randn...) draw fresh numbers on every replay (Philox offsets advance
  per replay; see backends/cuda/random.py), and the first replay draws what an eager call from
  the same generator state would.
- In-place updates of arguments are copied back into the caller's tensors after each replay.
  The same tensor passed twice is one static buffer.
- Learning rates: an optimiser whose lr is a Python float bakes it into the graph. A schedule must
  change a device tensor in place (an optimiser built with a tensor lr, updated outside fn, e.g.
  `lr.fill_(new)`); a scheduler.step() inside fn runs only twice (Python side effect).
- Nested compiled functions called inside fn run inline (they become part of the outer graph).
"""
import functools
import inspect
import threading

from vibetensor.autograd.grad_mode import no_grad
from vibetensor.tensor.tensor import Tensor

_local = threading.local()  # .inside: a compiled function is running (eager or capture) on this thread


def compile(fn=None, *, mode="graph", recapture="auto"):
    """Capture fn into a CUDA graph on its second call and replay it after (see the module doc)."""
    if mode != "graph":
        raise ValueError(f"vibetensor.compile: unknown mode {mode!r} (only 'graph' exists)")
    if recapture not in ("auto", "error"):
        raise ValueError(f"vibetensor.compile: recapture must be 'auto' or 'error', got {recapture!r}")
    if fn is None:
        return lambda f: Compiled(f, recapture)
    return Compiled(fn, recapture)


class Compiled:
    """fn with one captured graph per guard key."""

    def __init__(self, fn, recapture):
        functools.update_wrapper(self, fn)
        self.fn, self.recapture = fn, recapture
        self.entries = {}  # guard key -> _Entry
        try:
            self.signature = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None

    def __get__(self, obj, objtype=None):  # as a method decorator: self joins the arguments (and the key)
        return self if obj is None else functools.partial(self.__call__, obj)

    def __call__(self, *args, **kwargs):
        if getattr(_local, "inside", False):  # nested: part of the outer function's run / graph
            return self.fn(*args, **kwargs)
        args, kwargs = self._normalise(args, kwargs)
        leaves, rebuild = flatten((args, kwargs))
        if not any(isinstance(x, Tensor) and x.is_cuda for x in leaves):
            return self.fn(*args, **kwargs)  # the CPU: no graphs
        key = guard_key(rebuild, leaves)
        entry = self.entries.get(key)
        if entry is None:
            if self.entries and self.recapture == "error":
                raise RuntimeError(f"vibetensor.compile({self.__name__}): the arguments changed since capture "
                                   f"and recapture='error'.\n  captured: {_describe(next(iter(self.entries)))}\n"
                                   f"  now:      {_describe(key)}")
            entry = self.entries[key] = _Entry(self.fn, self.__name__)
        return entry(leaves, rebuild)

    def _normalise(self, args, kwargs):
        """Bind keywords to positions where the signature allows, so f(a, b) and f(a=a, b=b) share a key."""
        if self.signature is None or not kwargs:
            return args, kwargs
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return args, kwargs  # fn will raise the real error
        return bound.args, bound.kwargs

    def reset(self):
        """Forget every capture (their graphs and pools are released)."""
        self.entries.clear()


class _Entry:
    """One guard key's life: eager, then capture, then replays."""

    def __init__(self, fn, name):
        self.fn, self.name = fn, name
        self.calls = 0
        self.graph = self.outputs = self.pinned_done = None
        self.buffers, self.slots, self.mutated = [], [], ()  # static buffers; leaf -> buffer index (or None)
        self.keep = None

    def __call__(self, leaves, rebuild):
        self.calls += 1
        if self.calls == 1:
            self.keep = [x for x in leaves if not _hashable(x)]  # ids in the key stay valid
            args, kwargs = rebuild(leaves)
            return _inside(self.fn, args, kwargs)
        if self.graph is None:
            self._capture(leaves, rebuild)
        else:
            self._load(leaves)
        self._replay(leaves)
        return self.outputs

    # -- capture ---------------------------------------------------------------------------------------
    def _capture(self, leaves, rebuild):
        from vibetensor.runtime import cuda as rt
        from vibetensor.runtime.cuda import graphs
        self.buffers, self.slots = _static_buffers(leaves)
        static_leaves = [x if j is None else self.buffers[j] for x, j in zip(leaves, self.slots)]
        versions = [b._version.value for b in self.buffers]
        args, kwargs = rebuild(static_leaves)
        g = graphs.CUDAGraph()
        try:
            with graphs.graph(g, pool=rt.graph_pool_handle()):
                out = _inside(self.fn, args, kwargs)
        except RuntimeError as e:
            if "capturing a CUDA graph" in str(e):
                raise RuntimeError(f"vibetensor.compile({self.name}): the function synchronises with the host while "
                                   f"being captured: {e}. A value read on the host would be frozen at its capture-time "
                                   "value on replay; compute on the device and read results outside the compiled "
                                   "function.") from e
            raise
        self.mutated = tuple(j for j, b in enumerate(self.buffers) if b._version.value != versions[j])
        self.outputs = _static_outputs(out, self.name)
        self.graph = g

    def _first_leaves(self, leaves):
        """buffer index -> the call's tensor for it (the first leaf that maps there)."""
        firsts = {}
        for x, j in zip(leaves, self.slots):
            if j is not None:
                firsts.setdefault(j, x)
        return firsts

    def _load(self, leaves):
        """Copy this call's tensor arguments into the static buffers."""
        if self.pinned_done is not None:  # the last replay may still read pinned host inputs
            self.pinned_done.synchronize()
        with no_grad():
            for j, x in self._first_leaves(leaves).items():
                b = self.buffers[j]
                if not _same_memory(b, x):
                    b.copy_(x)

    def _replay(self, leaves):
        from vibetensor.runtime.cuda import stream as streams
        self.graph.replay()
        if self.mutated:  # in-place updates of arguments reach the caller's tensors
            firsts = self._first_leaves(leaves)
            with no_grad():
                for j in self.mutated:
                    if not _same_memory(self.buffers[j], firsts[j]):
                        firsts[j].copy_(self.buffers[j])
        if any(not b.is_cuda for b in self.buffers):
            self.pinned_done = streams.current_stream(self.graph.device_index).record_event()


def _inside(fn, args, kwargs):
    """Run fn with nested compiled functions inlined."""
    outer = getattr(_local, "inside", False)
    _local.inside = True
    try:
        return fn(*args, **kwargs)
    finally:
        _local.inside = outer


def _static_buffers(leaves):
    """(buffers, slots): one dense static buffer per distinct tensor argument, filled with this call's
    values (CPU ones pinned, so the graph's host-to-device copies re-read them on each replay), and
    for each leaf the index of its buffer (None for non-tensors)."""
    buffers, slots, index_of = [], [], {}
    for x in leaves:
        if not isinstance(x, Tensor):
            slots.append(None)
            continue
        j = index_of.get(id(x))
        if j is None:
            b = _empty(x)
            with no_grad():
                b.copy_(x)
            if x.requires_grad:
                b.requires_grad_(True)
            j = index_of[id(x)] = len(buffers)
            buffers.append(b)
        slots.append(j)
    return buffers, slots


def _empty(x):
    from vibetensor.tensor.tensor import empty
    if x.is_cuda:
        return empty(tuple(x._shape), x._dtype, x._device)
    return empty(tuple(x._shape), x._dtype, x._device).pin_memory()


def _same_memory(a, b):
    return a.data_ptr() == b.data_ptr() and a._stride == b._stride


def _static_outputs(out, name):
    """fn's outputs with every tensor detached (they are the graph's buffers); non-tensors raise."""
    leaves, rebuild = flatten(out)
    for x in leaves:
        if x is not None and not isinstance(x, Tensor):
            raise TypeError(f"vibetensor.compile({name}): the function returned a {type(x).__name__}; only tensors "
                            "(and None) can be outputs of a captured step, since a Python value would be frozen at "
                            "capture. Return a tensor and convert it outside the compiled function.")
    return rebuild([x.detach() if isinstance(x, Tensor) else x for x in leaves])


# -- arguments: flattening and the guard key --------------------------------------------------------------

def flatten(tree):
    """(leaves, rebuild): the leaves of nested tuples/lists/dicts, and a function that builds the
    same structure from new leaves. rebuild is hashable (its structure), for the guard key."""
    leaves = []
    spec = _spec(tree, leaves)
    return leaves, _Rebuild(spec)


def _spec(tree, leaves):
    if isinstance(tree, (tuple, list)) and type(tree) in (tuple, list):
        return (type(tree).__name__, tuple(_spec(t, leaves) for t in tree))
    if type(tree) is dict:
        keys = tuple(tree)
        return ("dict", keys, tuple(_spec(tree[k], leaves) for k in keys))
    leaves.append(tree)
    return "*"


class _Rebuild:
    __slots__ = ("spec",)

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, leaves):
        it = iter(leaves)
        return _build(self.spec, it)

    def __hash__(self):
        return hash(self.spec)

    def __eq__(self, other):
        return isinstance(other, _Rebuild) and self.spec == other.spec


def _build(spec, it):
    if spec == "*":
        return next(it)
    if spec[0] == "dict":
        return {k: _build(s, it) for k, s in zip(spec[1], spec[2])}
    items = [_build(s, it) for s in spec[1]]
    return tuple(items) if spec[0] == "tuple" else items


def _hashable(x):
    if isinstance(x, Tensor):
        return True
    try:
        hash(x)
        return True
    except TypeError:
        return False


def guard_key(rebuild, leaves):
    """Structure + per-leaf facts: tensors by shape/dtype/device/requires_grad (and which earlier
    argument they repeat), other values by value (identity when unhashable)."""
    seen, parts = {}, []
    for i, x in enumerate(leaves):
        if isinstance(x, Tensor):
            first = seen.setdefault(id(x), i)
            parts.append(("tensor", tuple(x._shape), str(x._dtype), str(x._device), x._requires_grad, first))
        elif _hashable(x):
            parts.append(("value", type(x).__name__, x))
        else:
            parts.append(("object", type(x).__name__, id(x)))
    return (rebuild, tuple(parts))


def _describe(key):
    return ", ".join(f"Tensor{list(p[1])} {p[2]} on {p[3]}" if p[0] == "tensor" else f"{p[1]}={p[2]!r}"
                     if p[0] == "value" else f"<{p[1]} object>" for p in key[1])
