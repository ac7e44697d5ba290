"""Autocast: mixed precision as a dispatch key.

Each op on one of PyTorch's autocast lists gets a kernel at DispatchKey.Autocast that casts its
floating inputs by the list's policy and passes the call on below itself (Autograd, then the device):

    lower    matmul-like ops run in the autocast dtype (float16 / bfloat16)
    fp32     ops that need range or precision (exp, softmax, norms, losses, sums) run in float32
    fp32_dt  fp32 unless the call names an output dtype (softmax(x, dim, dtype=...), sum(..., dtype=...))
    promote  ops mixing inputs run in the widest floating input type (cat, addcmul, ...)
    banned   ops unsafe to autocast raise (binary_cross_entropy under CUDA autocast)

Cost when autocast is off: none. The dispatcher consults wrapper keys only while one is switched on,
and the Autocast key is switched on process-wide only while some thread has autocast enabled; ops off
the lists have no Autocast kernel. Inside the wrapper the first test is the thread-local flag.

The state is thread-local, per device type (enabled, dtype), as in torch. Inside a listed op autocast
is excluded (the op's own building blocks are not cast again, as torch's wrapper does). Casts go
through the differentiable `to` op, so gradients reach the inputs in their own dtype. Casts of leaf
tensors that require grad (weights) are cached until the outermost autocast region exits.

A few listed torch ops are Python functions here (most losses); they get the same wrapper as a
function (`wrap_function`), installed on their namespaces by `install_python_functions()`.
"""
import functools
import threading
import warnings

from vibetensor import dispatch
from vibetensor.dispatch import DispatchKey, local
from vibetensor.dispatch.dispatcher import _scan
from vibetensor.ops import creation
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor

_DEFAULT_DTYPE = {"cpu": dt.bfloat16, "cuda": dt.float16}
_SUPPORTED = (dt.bfloat16, dt.float16)
_DEVICE_TYPES = ("cpu", "cuda")


class _State(threading.local):
    def __init__(self):
        self.enabled = {d: False for d in _DEVICE_TYPES}
        self.dtype = dict(_DEFAULT_DTYPE)
        self.excluded = 0     # > 0 inside an autocast op: its building blocks are not cast again
        self.on = False       # some device enabled and not excluded: the wrappers' one test
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}       # (id(leaf), dtype) -> (leaf, its cast)
        self.counted = False  # this thread holds one count in _threads_on


_tls = _State()
_lock = threading.Lock()
_threads_on = 0  # threads with autocast enabled on some device: the Autocast key is active while > 0


def _refresh(st):
    """Recompute the thread's flag and keep the process-wide key switched on while any thread needs it."""
    global _threads_on
    any_on = any(st.enabled.values())
    st.on = any_on and not st.excluded
    if any_on != st.counted:
        with _lock:
            _threads_on += 1 if any_on else -1
            st.counted = any_on
            dispatch.set_wrapper_active(DispatchKey.Autocast, _threads_on > 0)


def _device_type(device_type):
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if device_type not in _DEVICE_TYPES:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")
    return device_type


# -- torch.* state functions -----------------------------------------------------------------------------

def is_autocast_available(device_type):
    return device_type in _DEVICE_TYPES


def is_autocast_enabled(device_type=None):
    """torch.is_autocast_enabled(device_type); with no argument, CUDA's (torch's deprecated form)."""
    return _tls.enabled[_device_type("cuda" if device_type is None else device_type)]


def set_autocast_enabled(device_type, enabled=None):
    if enabled is None:  # torch's deprecated set_autocast_enabled(enabled): CUDA
        device_type, enabled = "cuda", device_type
    st = _tls
    st.enabled[_device_type(device_type)] = bool(enabled)
    _refresh(st)


def get_autocast_dtype(device_type):
    return _tls.dtype[_device_type(device_type)]


def set_autocast_dtype(device_type, dtype):
    _tls.dtype[_device_type(device_type)] = dtype


def is_autocast_cpu_enabled():
    return _tls.enabled["cpu"]


def get_autocast_cpu_dtype():
    return _tls.dtype["cpu"]


def get_autocast_gpu_dtype():
    return _tls.dtype["cuda"]


def is_autocast_cache_enabled():
    return _tls.cache_enabled


def set_autocast_cache_enabled(enabled):
    _tls.cache_enabled = bool(enabled)


def clear_autocast_cache():
    _tls.cache.clear()


def autocast_increment_nesting():
    _tls.nesting += 1
    return _tls.nesting


def autocast_decrement_nesting():
    _tls.nesting -= 1
    return _tls.nesting


# -- the context manager ------------------------------------------------------------------------------------

def _cuda_available():
    from vibetensor.torch import cuda
    return cuda.is_available()


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context manager
    or decorator; ops inside run in the dtype their autocast list chooses."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.device = _device_type(device_type)
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None else cache_enabled
        if enabled:
            enabled = self._check_dtype()
        self._enabled = bool(enabled)

    def _check_dtype(self):
        name = self.device.upper()
        if self.device == "cuda" and not _cuda_available():
            warnings.warn("CUDA is not available or torch_xla is imported. Disabling autocast.", stacklevel=3)
            return False
        if self.fast_dtype not in _SUPPORTED:
            warnings.warn(f"In {name} autocast, but the target dtype is not supported. Disabling autocast.\n"
                          f"{name} Autocast only supports dtypes of torch.bfloat16, torch.float16 currently.",
                          stacklevel=3)
            return False
        return True

    def __enter__(self):
        self.prev_cache_enabled = is_autocast_cache_enabled()
        self.prev = is_autocast_enabled(self.device)
        self.prev_fastdtype = get_autocast_dtype(self.device)
        set_autocast_dtype(self.device, self.fast_dtype)
        set_autocast_enabled(self.device, self._enabled)
        autocast_increment_nesting()
        set_autocast_cache_enabled(self._cache_enabled)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        if autocast_decrement_nesting() == 0:
            clear_autocast_cache()
        set_autocast_enabled(self.device, self.prev)
        set_autocast_dtype(self.device, self.prev_fastdtype)
        set_autocast_cache_enabled(self.prev_cache_enabled)
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(f"autocast()(func) requires a callable, but got {type(func).__name__}. "
                            f"Did you mean to use autocast as a context manager? For example:\n"
                            f"    with torch.autocast(device_type=...):\n"
                            f"        output = model(input)")

        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return decorate_autocast


# -- casting ---------------------------------------------------------------------------------------------------

def _eligible(x, device_type):
    """A tensor autocast may cast: floating (not float64) and on the autocast device."""
    return isinstance(x, Tensor) and x._dtype.category == 2 and x._dtype is not dt.float64 \
        and x._device.type == device_type


def _cast_tensor(st, x, dtype):
    if x._dtype is dtype:
        return x
    cacheable = st.cache_enabled and dtype is not dt.float32 and x._requires_grad and x.grad_fn is None \
        and x._base is None and local.grad_enabled
    if cacheable:
        hit = st.cache.get((id(x), dtype))
        if hit is not None and hit[0] is x:
            return hit[1]
    y = creation.to(x, dtype, x._device)
    if cacheable:
        st.cache[(id(x), dtype)] = (x, y)
    return y


def _cast(st, value, dtype, device_type):
    if isinstance(value, Tensor):
        return _cast_tensor(st, value, dtype) if _eligible(value, device_type) else value
    if type(value) is list or type(value) is tuple:
        return type(value)(_cast(st, v, dtype, device_type) for v in value)
    return value


def _cast_all(st, args, kwargs, dtype, device_type):
    args = tuple(_cast(st, a, dtype, device_type) for a in args)
    if kwargs:
        kwargs = {k: _cast(st, v, dtype, device_type) for k, v in kwargs.items()}
    return args, kwargs


def _tensors(values):
    for v in values:
        if isinstance(v, Tensor):
            yield v
        elif type(v) is list or type(v) is tuple:
            yield from _tensors(v)


def _promote_dtype(st, args, kwargs, device_type):
    """torch's autocast::prioritize: float32 wins over the autocast dtype; float64 is left alone."""
    lower = st.dtype[device_type]
    to_type = lower
    for t in _tensors(list(args) + list(kwargs.values())):
        if not _eligible(t, device_type):
            continue
        if to_type is dt.float32 or t._dtype is dt.float32:
            to_type = dt.float32
        elif t._dtype is not lower:
            raise RuntimeError("Unexpected floating ScalarType in at::autocast::prioritize")
    return to_type


# policies: fn(st, device_type, args, kwargs) -> (args, kwargs) to call the op with

def _lower(st, device_type, args, kwargs):
    return _cast_all(st, args, kwargs, st.dtype[device_type], device_type)


def _fp32(st, device_type, args, kwargs):
    return _cast_all(st, args, kwargs, dt.float32, device_type)


def _fp32_unless_dtype(position):
    def policy(st, device_type, args, kwargs):
        named = args[position] if len(args) > position else kwargs.get("dtype")
        return (args, kwargs) if named is not None else _fp32(st, device_type, args, kwargs)
    return policy


def _promote(st, device_type, args, kwargs):
    return _cast_all(st, args, kwargs, _promote_dtype(st, args, kwargs, device_type), device_type)


def _banned(message):
    def policy(st, device_type, args, kwargs):
        raise RuntimeError(message)
    return policy


_BCE_BANNED = _banned(
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast.")


# -- the lists (vibetensor op names; PyTorch's lists in aten/src/ATen/autocast_mode.cpp) --------------------

_FP32_DTYPE_POSITION = {"softmax": 2, "log_softmax": 2, "sum": 3, "prod": 3, "cumsum": 2, "cumprod": 2,
                        "vector_norm": 4, "matrix_norm": 4}

CUDA_LOWER = ("convolution", "prelu", "addmm", "addmv", "addr", "matmul", "mm", "mv", "linear", "addbmm",
              "baddbmm", "bmm", "sdpa_math")
CUDA_FP32 = ("acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
             "rsqrt", "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm", "rms_norm", "nll_loss",
             "cross_entropy", "dist", "renorm", "logsumexp")
CUDA_FP32_DTYPE = ("prod", "softmax", "log_softmax", "cumprod", "cumsum", "vector_norm", "matrix_norm", "sum")
CUDA_PROMOTE = ("addcdiv", "addcmul", "atan2", "linalg_cross", "dot", "vdot", "grid_sampler", "scatter_add")
CUDA_BANNED = {"binary_cross_entropy": _BCE_BANNED}

CPU_LOWER = ("convolution", "bmm", "mm", "baddbmm", "addmm", "addbmm", "linear", "matmul", "prelu", "sdpa_math")
CPU_FP32 = ("prod", "nll_loss", "cross_entropy", "binary_cross_entropy", "grid_sampler", "trace", "quantile",
            "linalg_svd", "linalg_svdvals", "view_as_complex")
CPU_PROMOTE = ("cat", "stack", "index_copy")

# Python functions of torch.nn.functional (torch's ops of these names are on the fp32 lists)
PY_FP32_BOTH = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits",
                "soft_margin_loss", "margin_ranking_loss", "hinge_embedding_loss", "poisson_nll_loss",
                "cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss", "multi_margin_loss")
PY_FP32_CUDA = ("cosine_similarity", "pdist", "cdist")
PY_FP32_CPU = ("avg_pool3d", "max_pool3d", "adaptive_avg_pool3d", "cdist")
PY_LOWER_CUDA = ("einsum", "chain_matmul")
PY_PROMOTE_CUDA = ("index_put", "tensordot", "bilinear")  # torch.index_put / Tensor.index_put (out of place)


def _policies():
    """op name -> {device type: policy}."""
    table = {}

    def put(device_type, names, policy):
        for name in names:
            table.setdefault(name, {})[device_type] = policy(name) if policy is _fp32_by_name else policy
    put("cuda", CUDA_LOWER, _lower)
    put("cuda", CUDA_FP32, _fp32)
    put("cuda", CUDA_FP32_DTYPE, _fp32_by_name)
    put("cuda", CUDA_PROMOTE, _promote)
    for name, policy in CUDA_BANNED.items():
        table.setdefault(name, {})["cuda"] = policy
    put("cpu", CPU_LOWER, _lower)
    put("cpu", CPU_FP32, _fp32)
    put("cpu", CPU_PROMOTE, _promote)
    return table


def _fp32_by_name(name):
    return _fp32_unless_dtype(_FP32_DTYPE_POSITION[name])


def _python_policies():
    table = {}
    for names, devices in ((PY_FP32_BOTH, _DEVICE_TYPES), (PY_FP32_CUDA, ("cuda",)), (PY_FP32_CPU, ("cpu",))):
        for name in names:
            for d in devices:
                table.setdefault(name, {})[d] = _fp32
    for name in PY_LOWER_CUDA:
        table.setdefault(name, {})["cuda"] = _lower
    for name in PY_PROMOTE_CUDA:
        table.setdefault(name, {})["cuda"] = _promote
    return table


# -- the wrapper --------------------------------------------------------------------------------------------------

def _below(op, args, kwargs):
    """Pass the call on below the Autocast key: Autograd when it applies, else the device kernel."""
    grad = _scan(args)[1]
    return op.redispatch(DispatchKey.Autograd if grad and local.grad_enabled else None, *args, **kwargs)


def _run(st, policies, call, args, kwargs):
    """Cast by the policy of the call's device type and call with autocast excluded inside."""
    device_type = _scan(args)[0] or _scan(tuple(kwargs.values()))[0] or "cpu"
    policy = policies.get(device_type)
    if policy is None or not st.enabled.get(device_type, False):
        return call(args, kwargs)
    args, kwargs = policy(st, device_type, args, kwargs)
    st.excluded += 1
    st.on = False
    try:
        return call(args, kwargs)
    finally:
        st.excluded -= 1
        _refresh(st)


def autocast_kernel(op, policies):
    """The Autocast-key kernel of one op."""
    def below(args, kwargs):
        return _below(op, args, kwargs)

    def kernel(*args, **kwargs):
        st = _tls
        if not st.on or kwargs.get("out") is not None:  # off in this thread, or an out=/in-place call
            return below(args, kwargs)
        return _run(st, policies, below, args, kwargs)
    kernel.__name__ = f"autocast_{op.name.split('::')[-1]}"
    kernel.policies = policies
    return kernel


def wrap_function(fn, policies):
    """The same wrapper around a Python function that torch has as a listed op."""
    if getattr(fn, "_autocast_policies", None) is not None:
        return fn

    def call(args, kwargs):
        return fn(*args, **kwargs)

    @functools.wraps(fn)
    def autocast_function(*args, **kwargs):
        st = _tls
        if not st.on or kwargs.get("out") is not None:
            return fn(*args, **kwargs)
        return _run(st, policies, call, args, kwargs)
    autocast_function._autocast_policies = policies
    return autocast_function


POLICIES = _policies()
PYTHON_POLICIES = _python_policies()


def register_kernels():
    """Give every declared op on a list its Autocast-key kernel (ops vibetensor lacks are skipped)."""
    ops = dispatch.ops()
    for name, policies in POLICIES.items():
        op = ops.get("vt::" + name)
        if op is not None:
            op.register(DispatchKey.Autocast, autocast_kernel(op, policies))


def install_python_functions(*namespaces):
    """Replace the listed Python functions in each namespace (a module or dict) by their wrappers; one
    function object bound under several names or namespaces gets one wrapper."""
    wrapped = {}
    for ns in namespaces:
        get = ns.get if isinstance(ns, dict) else (lambda n, ns=ns: getattr(ns, n, None))
        for name, policies in PYTHON_POLICIES.items():
            fn = get(name)
            if fn is None or not callable(fn):
                continue
            w = wrapped.get(id(fn)) or wrap_function(fn, policies)
            wrapped[id(fn)] = w
            if isinstance(ns, dict):
                ns[name] = w
            else:
                setattr(ns, name, w)


# -- custom autograd Functions ------------------------------------------------------------------------------------

def _cast_value(value, device_type, dtype):
    if isinstance(value, Tensor):
        return value.to(dtype) if _eligible(value, device_type) else value
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, dict):
        return {_cast_value(k, device_type, dtype): _cast_value(v, device_type, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_value(v, device_type, dtype) for v in value)
    return value


def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """Decorator for a custom Function's forward (torch.amp.custom_fwd)."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        args[0]._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            args[0]._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        args[0]._fwd_used_autocast = False
        if not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        with autocast(device_type=device_type, enabled=False):
            return fwd(*_cast_value(args, device_type, cast_inputs), **_cast_value(kwargs, device_type, cast_inputs))
    return decorate_fwd


def custom_bwd(bwd=None, *, device_type):
    """Decorator for a custom Function's backward: runs with the autocast state forward had."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        with autocast(device_type=device_type, enabled=args[0]._fwd_used_autocast, dtype=args[0]._dtype):
            return bwd(*args, **kwargs)
    return decorate_bwd


__all__ = ["autocast", "is_autocast_available", "custom_fwd", "custom_bwd"]
