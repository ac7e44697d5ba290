"""The dispatcher: ops by qualified name, each with an immutable table of kernels per dispatch key.

Registering a kernel builds a new table and swaps it in (a single reference assignment), so the
call path reads `op.table` without any lock. A call picks the highest active key:

    Profiler / Autocast (when switched on)  >  Autograd (grad mode on, an input requires grad)  >  device

Wrapper keys do their work and call `op.redispatch(below_key, ...)`. A boxed fallback is one
kernel that serves every op at a key, taking (op, args, kwargs); the profiler is one.
"""
import enum
import threading
import types

from vibetensor.tensor.tensor import Tensor


class DispatchKey(enum.IntEnum):
    # device keys
    CPU = 0
    CUDA = 1
    Meta = 2
    # wrapper keys, lowest priority first
    Autograd = 10
    Autocast = 20
    Fabric = 30
    Profiler = 40


DEVICE_KEYS = (DispatchKey.CPU, DispatchKey.CUDA, DispatchKey.Meta)
_KEY_OF_DEVICE = {"cpu": DispatchKey.CPU, "cuda": DispatchKey.CUDA, "meta": DispatchKey.Meta}
_EMPTY = types.MappingProxyType({})
_SEQUENCES = frozenset((list, tuple))  # the argument types the dispatcher looks into (`type(a) in`: one test)


class _LocalState(threading.local):
    """Per-thread dispatch state: grad mode is thread-local, as in torch."""
    grad_enabled = True
    inference_mode = False


local = _LocalState()

# Wrapper keys switched on process-wide (profiler, autocast); empty on the fast path.
_active_wrappers = []
_fallbacks = {}  # key -> boxed kernel fn(op, args, kwargs)
_lazy_backends = {}  # device key -> loader() that imports (and so registers) that backend's kernels


class Op:
    """One operator. `table` maps DispatchKey -> kernel and is never mutated, only replaced."""
    __slots__ = ("name", "table", "meta", "derivative", "family", "doc", "_autograd", "_by_type", "__weakref__")

    def __init__(self, name, meta=None, derivative=None, family=None, doc=None):
        self.name, self.meta, self.derivative, self.family, self.doc = name, meta, derivative, family, doc
        self.table = _EMPTY
        self._autograd, self._by_type = None, {}

    def register(self, key, kernel):
        table = dict(self.table)
        table[DispatchKey(key)] = kernel
        self.table = types.MappingProxyType(table)  # copy-on-write: readers never see a half-built table
        # the call path's view of the table, precomputed: device type string -> kernel, and the
        # Autograd kernel (each a fresh object swapped in whole, like the table)
        self._by_type = {typ: table[k] for typ, k in _KEY_OF_DEVICE.items() if k in table}
        if _device_guard is not None and "cuda" in self._by_type:
            self._by_type["cuda"] = _device_guard(self._by_type["cuda"])
        self._autograd = table.get(DispatchKey.Autograd)
        return kernel

    # -- unboxed path: a direct call with the op's own signature -----------------------------------
    # __call__ and call_on are these two Python functions, or their C twins (fastdispatch.py, installed
    # at the bottom of this file where the C builds): the Python is the specification.
    def call_python(self, *args, **kwargs):
        # _scan inlined for the top level (the hot path: one pass, no call): device type of the
        # tensors (a CPU one yields to a GPU one) and whether any requires grad (a view: its base)
        device_type, grad = None, False
        for a in args:
            if isinstance(a, Tensor):
                if device_type is None or device_type == "cpu":
                    device_type = a._device.type
                if a._requires_grad or (a._base is not None and a._base._requires_grad):
                    grad = True
            elif type(a) in _SEQUENCES:
                for b in a:  # most are shapes or dims: ints only, nothing to scan
                    if b.__class__ is not int:
                        if local.grad_enabled:
                            device_type, grad = _scan(a, device_type, grad)
                        elif device_type is None or device_type == "cpu":  # grad mode off: only the device counts,
                            device_type = _device_type(a) or device_type      # settled at the first GPU tensor
                        break
        if _active_wrappers:
            return self._call_wrapped(args, kwargs, device_type, grad)
        if grad and local.grad_enabled:
            kernel = self._autograd
            if kernel is not None:
                return kernel(*args, **kwargs)
        if device_type is None:
            device_type = _device_type_of(kwargs.get("device"))
        kernel = self._by_type.get(device_type)
        if kernel is None:
            kernel = self._load_backend(_KEY_OF_DEVICE[device_type])
        return kernel(*args, **kwargs)

    def kernel_on(self, t):
        """The kernel of a call whose only tensor argument is the tensor t, as __call__ picks it
        without scanning the arguments; None while a wrapper key is on (then call the op)."""
        if _active_wrappers:
            return None
        if (t._requires_grad or (t._base is not None and t._base._requires_grad)) and local.grad_enabled:
            kernel = self._autograd
            if kernel is not None:
                return kernel
        return self._by_type.get(t._device.type)

    __call__ = call_python

    def call_on_python(self, t, *args):
        """self(t, *args) where t is the call's only tensor argument (args hold none) and there are
        no keywords: for composites calling their primitives (reshape -> view), and Tensor methods."""
        if not _active_wrappers:  # (kernel_on, inlined: every view a composite or a method makes comes here)
            if (t._requires_grad or (t._base is not None and t._base._requires_grad)) and local.grad_enabled:
                kernel = self._autograd
                if kernel is not None:
                    return kernel(t, *args)
            kernel = self._by_type.get(t._device.type)
            if kernel is not None:
                return kernel(t, *args)
        return self(t, *args)

    call_on = call_on_python

    def _call_wrapped(self, args, kwargs, device_type, grad):
        for key in _active_wrappers:
            kernel = self.table.get(key)
            if kernel is not None:
                return kernel(*args, **kwargs)
            if key in _fallbacks:
                return _fallbacks[key](self, args, kwargs)
        return self.redispatch(DispatchKey.Autograd if grad and local.grad_enabled else None, *args, **kwargs)

    def redispatch(self, key, *args, **kwargs):
        """Call the kernel at `key`, or, with key None, the device kernel the arguments select.
        Wrapper kernels use this to pass the call on below themselves."""
        if key is not None:
            kernel = self.table.get(key)
            if kernel is not None:
                return kernel(*args, **kwargs)
        device_type = _device_type(args) or _device_type_of(kwargs.get("device"))
        kernel = self._by_type.get(device_type)
        if kernel is None:
            kernel = self._load_backend(_KEY_OF_DEVICE[device_type])
        return kernel(*args, **kwargs)

    # -- boxed path: a generic argument list, for code that handles every op alike --------------------
    def call_boxed(self, args, kwargs=None):
        return self(*args, **(kwargs or {}))

    def _load_backend(self, key):
        """Cold path: a backend registered lazily (CUDA imports Triton) loads on its first call."""
        loader = _lazy_backends.get(key)  # idempotent (an import), so concurrent first calls are safe
        if loader is not None:
            loader()
            kernel = self.table.get(key)
            if kernel is not None:
                return kernel
        raise self._missing(key)

    def _missing(self, key):
        return NotImplementedError(
            f"Could not run '{self.name}' with arguments from the '{key.name}' backend: "
            f"the op has kernels for {[k.name for k in self.table]} only")

    def __repr__(self):
        return f"<op {self.name} keys={[k.name for k in self.table]}>"


def _device_type_of(d):
    if d is None:
        return "cpu"
    return d.type if not isinstance(d, str) else d.partition(":")[0]


def _scan(args, device_type=None, grad=False):
    """(device type of the tensors, whether any tensor requires grad), looking one level into
    lists and tuples (cat, stack, index take tensor lists). The one pass every call makes.
    A CPU tensor yields to a GPU one: CPU 0-d tensors may join ops on other devices, as in torch."""
    for a in args:
        if isinstance(a, Tensor):
            if device_type is None or device_type == "cpu":
                device_type = a._device.type
            if a._requires_grad or (a._base is not None and a._base._requires_grad):  # a view requires grad
                grad = True                                                             # when its base does
        elif type(a) in _SEQUENCES:
            device_type, grad = _scan(a, device_type, grad)
    return device_type, grad


def _device_type(args):
    """_scan's device type alone: it is settled at the first non-CPU tensor, so the scan stops
    there (redispatch's usual call: its first argument is that tensor)."""
    found = None
    for a in args:
        if isinstance(a, Tensor):
            found = a._device.type
            if found != "cpu":
                return found
        elif type(a) is list or type(a) is tuple:
            inner = _device_type(a)
            if inner is not None:
                found = inner
                if inner != "cpu":
                    return inner
    return found


def device_key(args, kwargs=None):
    """The device key of a call: the first tensor argument's device, else `device=`, else CPU."""
    device_type = _device_type(args) or _device_type_of((kwargs or {}).get("device"))
    return _KEY_OF_DEVICE[device_type]


# -- the registry -------------------------------------------------------------------------------------
_registry = {}


def declare(name, meta=None, derivative=None, family=None, doc=None, composite=None):
    """Declare op `vt::<name>`. A `composite` kernel works on every device (views, ops written with
    other ops) and is registered under every device key."""
    qualified = name if "::" in name else "vt::" + name
    if qualified in _registry:
        raise RuntimeError(f"operator {qualified} is declared twice")
    op = Op(qualified, meta=meta, derivative=derivative, family=family, doc=doc)
    _registry[qualified] = op
    if composite is not None:
        for key in DEVICE_KEYS:
            op.register(key, composite)
    return op


def get(name):
    qualified = name if "::" in name else "vt::" + name
    try:
        return _registry[qualified]
    except KeyError:
        raise KeyError(f"no operator named {qualified}") from None


def register(name, key):
    """Decorator: `@register("add", DispatchKey.CPU)` installs a kernel for one op at one key."""
    def wrap(kernel):
        get(name).register(key, kernel)
        return kernel
    return wrap


def register_lazy_backend(key, loader):
    """`loader()` registers a backend's kernels; it runs the first time an op needs that key."""
    _lazy_backends[DispatchKey(key)] = loader


def register_fallback(key, kernel):
    """A boxed kernel fn(op, args, kwargs) serving every op at `key` that has no kernel of its own."""
    _fallbacks[DispatchKey(key)] = kernel


_device_guard = None  # on a machine with several GPUs: kernel -> kernel run on its tensors' GPU


def enable_device_guards(guard):
    """Run every CUDA kernel under `guard(kernel)` (which makes the GPU of the call's tensors, or
    of its device= argument, current around it), as torch's device guard. Called once by the CUDA
    backend when the machine has more than one GPU, so a single-GPU process pays nothing."""
    global _device_guard
    if _device_guard is not None:
        return
    _device_guard = guard
    for op in list(_registry.values()):
        if "cuda" in op._by_type:
            by_type = dict(op._by_type)
            by_type["cuda"] = guard(by_type["cuda"])
            op._by_type = by_type


def device_index(args, kwargs):
    """The index of the first CUDA tensor among the arguments (one level into lists and tuples),
    else of the device= argument; None if neither names one."""
    for a in args:
        if isinstance(a, Tensor):
            if a._device.type == "cuda":
                return a._device.index
        elif type(a) is list or type(a) is tuple:
            i = device_index(a, None)
            if i is not None:
                return i
    d = kwargs.get("device") if kwargs else None
    if d is None:
        return None
    if isinstance(d, str):
        name, _, n = d.partition(":")
        return int(n) if name == "cuda" and n else None
    return d.index if getattr(d, "type", None) == "cuda" else None


def set_wrapper_active(key, on):
    """Switch a wrapper key (Profiler, Autocast, Fabric) on or off for the whole process."""
    global _active_wrappers
    keys = set(_active_wrappers)
    (keys.add if on else keys.discard)(DispatchKey(key))
    _active_wrappers = sorted(keys, reverse=True)


def ops():
    """All declared ops, by qualified name."""
    return dict(_registry)


def keys_of(name):
    return [k.name for k in get(name).table]


def install_native(on=True):
    """Op.__call__ and Op.call_on in C (fastdispatch), where it builds and VIBETENSOR_FASTDISPATCH is
    not 0 (on=False: the Python). The same work over the same objects, a tenth of a training step's
    host time in Python. Returns whether the C is installed."""
    mod = None
    if on:
        from vibetensor.dispatch import fastdispatch
        from vibetensor.tensor.device import device
        mod = fastdispatch.module()
    if mod is None:
        Op.__call__, Op.call_on = Op.call_python, Op.call_on_python
        return False
    Op.__call__, Op.call_on = mod.install(Op, Tensor, device, globals(), Op.call_python, Op.call_on_python)
    return True


try:
    install_native()
except Exception:  # noqa: BLE001  (install refused these classes: the Python stays)
    Op.__call__, Op.call_on = Op.call_python, Op.call_on_python
