"""Reverse-mode automatic differentiation: graph nodes and edges (graph.py), the engine
(engine.py), derivative declarations beside each op (derivatives.py), custom Functions
(function.py), views and in-place writes through them (view_history.py: CopySlices, regenerated
view histories, Tensor.grad_fn/requires_grad), grad modes (grad_mode.py), gradcheck (gradcheck.py),
anomaly detection (anomaly.py).

This package sits below ops/ (ops import `derivative` from here) and never imports ops at import
time; the engine looks up the few ops it needs (add, full, clone, sum, to) when it first runs.
"""
from vibetensor.autograd.grad_mode import (  # noqa: F401
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled)
from vibetensor.autograd.derivatives import conj, derivative, install_fallbacks, nondifferentiable  # noqa: F401
