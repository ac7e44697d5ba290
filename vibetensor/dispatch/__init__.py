"""Op registry and dispatch keys. See dispatcher.py."""
from vibetensor.dispatch.dispatcher import (  # noqa: F401
    DEVICE_KEYS, DispatchKey, Op, declare, device_index, device_key, get, keys_of, local, ops, register,
    register_fallback, register_lazy_backend, set_wrapper_active)
