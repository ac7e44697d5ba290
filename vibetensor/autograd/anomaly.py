"""Anomaly detection: nodes record their forward traceback; backward checks for NaN and, when a
node's backward fails, warns with the traceback of the forward call that created it.

As in torch the switch is process-wide, not per thread (it is a debugging aid).
"""
import warnings

from vibetensor.autograd.grad_mode import _DecoratorContextManager

_enabled = False
_check_nan = True


def is_anomaly_enabled():
    return _enabled


def is_anomaly_check_nan_enabled():
    return _check_nan


def _set(mode, check_nan):
    global _enabled, _check_nan
    _enabled, _check_nan = bool(mode), bool(check_nan)


class detect_anomaly(_DecoratorContextManager):
    """Context manager / decorator turning anomaly detection on."""

    def __init__(self, check_nan=True):
        self.prev, self.prev_check_nan = _enabled, _check_nan
        self.check_nan = check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime and should only "
                      "be enabled for debugging.", stacklevel=2)

    def __enter__(self):
        _set(True, self.check_nan)

    def __exit__(self, *exc):
        _set(self.prev, self.prev_check_nan)

    def clone(self):
        return self.__class__(self.check_nan)


class set_detect_anomaly(_DecoratorContextManager):
    """set_detect_anomaly(mode, check_nan=True): takes effect at once; restores when used with `with`."""

    def __init__(self, mode, check_nan=True):
        self.prev, self.prev_check_nan = _enabled, _check_nan
        self.mode, self.check_nan = mode, check_nan
        _set(mode, check_nan)

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _set(self.prev, self.prev_check_nan)

    def clone(self):
        return self.__class__(self.mode, self.check_nan)


def warn_forward_trace(node):
    """Called when node's backward raised, in anomaly mode: point at the forward op."""
    tb = (node._metadata or {}).get("traceback_")
    if tb is None:
        warnings.warn(f"Error detected in {node.name()}. No forward pass information available. Enable "
                      "detect anomaly during forward pass for more information.", stacklevel=2)
        return
    warnings.warn(f"Error detected in {node.name()}. Traceback of forward call that caused the error:\n"
                  + "".join(tb), stacklevel=2)
