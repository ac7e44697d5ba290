"""The CUDA driver, through NVIDIA's cuda-bindings: checked calls, lazy init, devices, contexts.

Every driver call goes through `call(fn, *args)`, which turns a failing CUresult into a
`CudaError` naming the call and the error, and unwraps the result tuple. Nothing touches the
driver until the first CUDA use; `is_available()` answers False (never raises) on a machine
without the packages, the driver or a GPU.
"""
import threading

_lock = threading.Lock()  # guards one-time initialisation only, never a hot path
_state = {"init": False, "error": None, "contexts": {}, "props": {}}


class CudaError(RuntimeError):
    """A CUDA driver call failed; `.code` is the CUresult's integer value."""

    def __init__(self, call, code, name, text=""):
        self.call, self.code, self.name = call, code, name
        super().__init__(f"CUDA error: {name} ({code}) in {call}" + (f": {text}" if text else ""))


def _driver():
    from cuda.bindings import driver as cu  # imported on first CUDA use: the CPU path never needs it
    return cu


def call(fn, *args):
    """Run a driver function, raise CudaError on failure, return its results (None, one, or a tuple)."""
    result = fn(*args)
    err = result[0]
    if int(err) != 0:
        raise _error(fn.__name__, err)
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else result[1:]


def _error(call_name, err):
    cu = _driver()
    _, name = cu.cuGetErrorName(err)
    _, text = cu.cuGetErrorString(err)
    decode = lambda b: b.decode() if isinstance(b, bytes) else str(b)  # noqa: E731
    return CudaError(call_name, int(err), decode(name), decode(text))


def init():
    """cuInit once per process; remembers a failure so later calls fail fast and the same way."""
    if _state["init"]:
        return
    with _lock:
        if _state["init"]:
            return
        if _state["error"] is not None:
            raise _state["error"]
        try:
            cu = _driver()
            call(cu.cuInit, 0)
        except Exception as e:  # no package, no driver, no device: remember why
            _state["error"] = RuntimeError(f"CUDA is not available: {e}")
            raise _state["error"] from e
        _state["init"] = True


def is_available():
    try:
        init()
        return device_count() > 0
    except Exception:
        return False


def device_count():
    init()
    return call(_driver().cuDeviceGetCount)


def check_device(index):
    n = device_count()
    if not isinstance(index, int) or not 0 <= index < n:
        raise RuntimeError(f"CUDA error: invalid device ordinal (device {index} requested, {n} available)")
    return index


def context(index):
    """The device's primary context (retained once, as the runtime API does), made current."""
    ctx = _state["contexts"].get(index)
    if ctx is None:
        with _lock:
            ctx = _state["contexts"].get(index)
            if ctx is None:
                cu = _driver()
                dev = call(cu.cuDeviceGet, check_device(index))
                ctx = call(cu.cuDevicePrimaryCtxRetain, dev)
                _state["contexts"][index] = ctx
    return ctx


class _Current(threading.local):
    """Per-thread current device, as cudaSetDevice. Class defaults, so readers use plain attribute
    access: a getattr(..., default) that misses raises internally (~1 us), and hot paths read these
    every op."""
    index = 0
    ctx_index = None


_current = _Current()


def current_device():
    return _current.index


def set_device(index):
    index = check_device(int(index))
    call(_driver().cuCtxSetCurrent, context(index))
    _current.index = _current.ctx_index = index  # ensure_context must see the switch


def ensure_context(index=None):
    """Make the (current) device's context current on this thread; cheap after the first time."""
    index = current_device() if index is None else index
    if _current.ctx_index != index:
        call(_driver().cuCtxSetCurrent, context(index))
        _current.ctx_index = index
        _current.index = index


class device_guard:
    """`with device_guard(i):` runs on device i and restores the previous device afterwards."""

    def __init__(self, index):
        self.index, self.prev = index, None

    def __enter__(self):
        self.prev = current_device()
        if self.index is not None and self.index != self.prev:
            set_device(self.index)
        return self

    def __exit__(self, *exc):
        if self.index is not None and self.index != self.prev:
            set_device(self.prev)


class on_device(device_guard):
    """`with on_device(i):` device i and its context current (also on a thread new to CUDA), the
    caller's device again afterwards: for driver calls that act on the current context (cuMemAlloc,
    cuMemGetInfo, cuCtxSynchronize, stream/event creation, and any use of the NULL stream, handle 0,
    which names the current context's own)."""

    def __enter__(self):
        super().__enter__()
        ensure_context(self.index)
        return self


def in_context(index):
    """True when device `index`'s context is this thread's current one (the cheap test before
    reaching for on_device)."""
    return _current.ctx_index == index


def properties(index):
    """A dict of the device's name, capability, memory and multiprocessor count (cached)."""
    props = _state["props"].get(index)
    if props is None:
        cu = _driver()
        dev = call(cu.cuDeviceGet, check_device(index))
        attr = lambda a: call(cu.cuDeviceGetAttribute, a, dev)  # noqa: E731
        A = cu.CUdevice_attribute
        name = call(cu.cuDeviceGetName, 256, dev)
        props = {
            "name": name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name),
            "major": attr(A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            "minor": attr(A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            "multi_processor_count": attr(A.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            "total_memory": call(cu.cuDeviceTotalMem, dev),
            "L2_cache_size": attr(A.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
            "max_shared_memory_per_block_optin": attr(A.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
            "warp_size": attr(A.CU_DEVICE_ATTRIBUTE_WARP_SIZE),
        }
        _state["props"][index] = props
    return props


def mem_get_info(index=None):
    with on_device(current_device() if index is None else index):
        return call(_driver().cuMemGetInfo)
