"""torch.cuda: devices, streams, events, memory, graphs — over vibetensor's own CUDA runtime.

Importing this module needs no CUDA packages; `is_available()` is False (never raises) on a
machine without a driver or GPU. The CUDA backend's kernels load on first CUDA use.
"""
from vibetensor.runtime import cuda as _rt
from vibetensor.runtime.cuda import driver as _drv
from vibetensor.runtime.cuda.allocator import OutOfMemoryError  # noqa: F401
from vibetensor.runtime.cuda import graphs as _graphs
from vibetensor.runtime.cuda.graphs import CUDAGraph, is_capturing, is_current_stream_capturing  # noqa: F401
from vibetensor.runtime.cuda.graphs import graph as _graph_ctx
from vibetensor.runtime.cuda import device_errors as _device_errors
from vibetensor.runtime.cuda import stream as _streams
from vibetensor.runtime.cuda.stream import Stream  # noqa: F401
from vibetensor.runtime.cuda.stream import current_stream as _current_stream
from vibetensor.runtime.cuda.stream import stream  # noqa: F401
from vibetensor.tensor.tensor import Tensor, array, from_array
from vibetensor.torch.tensor_methods import method

# memory statistics and control, as torch.cuda has them
from vibetensor.runtime.cuda import (  # noqa: F401,E402
    empty_cache, graph_pool_handle, max_memory_allocated, max_memory_reserved, mem_get_info,
    memory_allocated, memory_reserved, memory_snapshot, memory_stats, memory_summary,
    reset_peak_memory_stats, set_per_process_memory_fraction)

# The user-facing synchronisations also raise kernels' device-side errors (an out-of-range index) as
# IndexError; the runtime's own (the allocator's) stay plain waits. Stream.synchronize raises itself.
def synchronize(device=None):
    _graphs.check_not_capturing("torch.cuda.synchronize()")  # a wait inside a capture would break it
    _streams.synchronize(device)
    _device_errors.check(None if device is None else _streams._index(device))


class Event(_streams.Event):
    __slots__ = ()

    def synchronize(self):
        super().synchronize()
        _device_errors.check()


is_available = _drv.is_available
device_count = _drv.device_count


def current_device():
    return _drv.current_device()


def set_device(device):
    index = device if isinstance(device, int) else getattr(device, "index", None)
    _drv.set_device(0 if index is None else index)


class device:
    """`with torch.cuda.device(i):` makes device i current inside the block."""

    def __init__(self, device):
        self.guard = _drv.device_guard(device if isinstance(device, int) else getattr(device, "index", None))

    def __enter__(self):
        self.guard.__enter__()

    def __exit__(self, *exc):
        self.guard.__exit__(*exc)


def get_device_properties(device=None):
    return _drv.properties(_index(device))


def get_device_name(device=None):
    return get_device_properties(device)["name"]


def get_device_capability(device=None):
    p = get_device_properties(device)
    return p["major"], p["minor"]


def current_stream(device=None):
    return _current_stream(device)


def default_stream(device=None):
    return Stream.default(_index(device))


def _index(device):
    if device is None:
        return _drv.current_device()
    if isinstance(device, int):
        return device
    index = getattr(device, "index", None)
    if index is None and isinstance(device, str):
        _, _, n = device.partition(":")
        index = int(n) if n else None
    return _drv.current_device() if index is None else index


graph = _graph_ctx  # `with torch.cuda.graph(g, pool=None, stream=None, capture_error_mode=...):`


# -- random numbers: one Philox generator per device (runtime/generator.py) ---------------------------------

def _generator(device=None):
    """The default generator of a CUDA device: None (current), an ordinal, 'cuda', 'cuda:1', a device."""
    from vibetensor.runtime import generator as _gen
    from vibetensor.tensor.device import canonical
    from vibetensor.tensor.device import device as _device
    import vibetensor.torch.random  # noqa: F401  (installs the Generator class with tensor states)
    dev = _device("cuda", _index(device)) if device is None or isinstance(device, int) else canonical(device)
    if dev.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {device}")
    return _gen.default_generator(dev)


def _all_generators():
    """Every device's default generator; none (silently, as torch) without CUDA."""
    return [_generator(i) for i in range(device_count())] if is_available() else []


def manual_seed(seed):
    """Seed the current GPU's default generator."""
    _generator().manual_seed(int(seed))


def manual_seed_all(seed):
    for g in _all_generators():
        g.manual_seed(int(seed))


def seed():
    """Seed the current GPU's generator from OS entropy."""
    _generator().seed()


def seed_all():
    s = _generator().seed()
    for g in _all_generators():
        g.manual_seed(s)


def initial_seed():
    return _generator().initial_seed()


def get_rng_state(device="cuda"):
    """The generator state as a 16-byte CPU uint8 tensor (seed, offset: torch's CUDA layout)."""
    return _generator(device).get_state()


def set_rng_state(new_state, device="cuda"):
    _generator(device).set_state(new_state)


def get_rng_state_all():
    return [g.get_state() for g in _all_generators()]


def set_rng_state_all(new_states):
    for g, s in zip(_all_generators(), new_states):
        g.set_state(s)


def __getattr__(name):
    if name == "default_generators":  # a tuple, built on first use (it needs the device count)
        return tuple(_all_generators())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- make_graphed_callables ------------------------------------------------------------------------------------

def make_graphed_callables(callables, sample_args, num_warmup_iters=3, allow_unused_input=False, pool=None):
    """torch.cuda.make_graphed_callables: each callable's forward and backward captured into CUDA
    graphs (one private pool for all), returned as a callable whose autograd Function replays them.

    sample_args: a tuple of CUDA tensors per callable (they become the static inputs: later calls
    copy their arguments in). A Module gets its forward replaced and is returned; its parameters
    are inputs of the backward graph, so their .grad accumulates as usual. In eval mode (training
    differing from capture time) the module runs its original forward. Outputs are the graphs'
    static buffers (detached views of them): the next call overwrites them."""
    from vibetensor.torch.nn.modules.module import Module
    just_one = not isinstance(callables, tuple)
    if just_one:
        callables, sample_args = (callables,), (sample_args,)
    if len(callables) != len(sample_args):
        raise ValueError("make_graphed_callables: one tuple of sample args is needed per callable")
    surfaces = []
    for c, args in zip(callables, sample_args):
        _check_graphable(c, args, Module)
        params = tuple(c.parameters()) if isinstance(c, Module) else ()
        surfaces.append(tuple(args) + params)
    mempool = graph_pool_handle() if pool is None else pool
    side = _graphs.default_capture_stream()
    side.wait_stream(current_stream())
    with stream(side):  # warm up outside capture: kernels compile, lazy state gets allocated
        for c, args, surface in zip(callables, sample_args, surfaces):
            for _ in range(num_warmup_iters):
                _forward_backward(c, args, surface, allow_unused_input)
    current_stream().wait_stream(side)
    fwd_graphs = [CUDAGraph() for _ in callables]
    bwd_graphs = [CUDAGraph() for _ in callables]
    captured = []
    for c, args, g in zip(callables, sample_args, fwd_graphs):
        with graph(g, pool=mempool):
            outputs = c(*args)
        flat, single = _flatten_outputs(outputs)
        captured.append((flat, single))
    results = [None] * len(callables)
    for i in reversed(range(len(callables))):  # backward graphs in reverse order, as autograd would run them
        flat, single = captured[i]
        grad_outs = tuple(_empty_like(o) if o.requires_grad else None for o in flat)
        with graph(bwd_graphs[i], pool=mempool):
            grads = _grads(flat, surfaces[i], grad_outs, allow_unused_input)
        results[i] = _graphed_function(fwd_graphs[i], bwd_graphs[i], surfaces[i], flat, single, grad_outs, grads)
    out = []
    for c, fn in zip(callables, results):
        if isinstance(c, Module):
            c.forward = _module_forward(c, fn, c.training)
            out.append(c)
        else:
            out.append(fn)
    return out[0] if just_one else tuple(out)


def _check_graphable(c, args, Module):
    if isinstance(c, Module) and any(len(getattr(c, h, ())) for h in ("_forward_hooks", "_forward_pre_hooks",
                                                                       "_backward_hooks")):
        raise RuntimeError("Modules must not have hooks registered at the time they are passed. However, registering "
                           "hooks on modules after passing them through make_graphed_callables is allowed.")
    for a in args:
        if not isinstance(a, Tensor):
            raise TypeError("In the beta API, sample_args for each callable must contain only Tensors. Other types "
                            "are not allowed.")
        if not a.is_cuda:
            raise ValueError(f"make_graphed_callables: sample args must be CUDA tensors, got one on {a.device}")


def _flatten_outputs(outputs):
    if isinstance(outputs, Tensor):
        return (outputs,), True
    if isinstance(outputs, (tuple, list)) and all(isinstance(o, Tensor) for o in outputs):
        return tuple(outputs), False
    raise TypeError("make_graphed_callables: the callable must return a Tensor or a tuple/list of Tensors")


def _empty_like(t):
    from vibetensor.tensor.tensor import empty
    return empty(tuple(t.shape), t.dtype, t.device)


def _grads(flat, surface, grad_outs, allow_unused):
    """Gradients of the outputs that require grad w.r.t. the surface tensors that do (None elsewhere)."""
    from vibetensor.autograd.engine import grad as _autograd_grad
    outs = [o for o in flat if o.requires_grad]
    wrt = [t for t in surface if t.requires_grad]
    if not outs or not wrt:
        return tuple(None for _ in surface)
    gs = _autograd_grad(outs, wrt, grad_outputs=[g for g in grad_outs if g is not None], only_inputs=True,
                        allow_unused=allow_unused)
    it = iter(gs)
    return tuple(next(it) if t.requires_grad else None for t in surface)


def _forward_backward(c, args, surface, allow_unused):
    from vibetensor.torch.creation import ones_like
    flat, _single = _flatten_outputs(c(*args))
    _grads(flat, surface, tuple(ones_like(o) if o.requires_grad else None for o in flat), allow_unused)


def _graphed_function(fwd, bwd, surface, static_outputs, single, static_grad_outs, static_grads):
    from vibetensor.autograd.function import Function, once_differentiable

    class Graphed(Function):
        @staticmethod
        def forward(ctx, *inputs):
            for static, x in zip(surface, inputs):
                if static.data_ptr() != x.data_ptr():
                    static.copy_(x)
            fwd.replay()
            return tuple(o.detach() for o in static_outputs)

        @staticmethod
        @once_differentiable
        def backward(ctx, *grads):
            for static, g in zip(static_grad_outs, grads):
                if static is None:
                    continue
                if g is None:
                    static.zero_()
                elif static.data_ptr() != g.data_ptr():
                    static.copy_(g)
            bwd.replay()
            # copies: the engine may keep a returned gradient as a parameter's .grad, which the next
            # replay would overwrite in place
            return tuple(g.clone() if g is not None else None for g in static_grads)

    def graphed(*args):  # args: the callable's arguments, then (for a module) its parameters
        if len(args) != len(surface):
            raise TypeError(f"graphed callable: expected {len(surface)} tensor arguments, got {len(args)}")
        outs = Graphed.apply(*args)
        return outs[0] if single else outs

    graphed.graphs = (fwd, bwd)  # keep the graphs (and their pools) alive with the callable
    return graphed


def _module_forward(module, graphed, training):
    import weakref
    params = tuple(module.parameters())
    module_ref = weakref.ref(module)  # the module holds this forward: no reference cycle back to it
    original = type(module).forward

    def forward(*args):
        m = module_ref()
        if m.training != training:  # eval after capturing in training mode: run eagerly
            return original(m, *args)
        return graphed(*args, *params)
    return forward


# -- tensor methods that belong to the CUDA runtime ----------------------------------------------------

@method
def pin_memory(self, device=None):
    """A copy of this CPU tensor in page-locked memory: copies from it to a GPU can be asynchronous."""
    from vibetensor.runtime.cuda import memory
    if self.is_cuda:
        raise RuntimeError("cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors can be pinned")
    raw = memory.pinned_empty(self.numel() * self.itemsize)
    out = from_array(raw.view(self._dtype.np).reshape(self._shape))
    array(out)[...] = array(self)
    return out


@method
def is_pinned(self, device=None):
    if self.is_cuda:
        return False
    from vibetensor.runtime.cuda import memory
    return memory.block_of(self._storage.data) is not None


@method
def record_stream(self, stream):
    """The memory of this CUDA tensor is in use on `stream`: its reuse waits for that stream's work."""
    if not self.is_cuda:
        raise RuntimeError("record_stream: expected a CUDA tensor")
    _rt.record_stream(self._storage.data, stream)
