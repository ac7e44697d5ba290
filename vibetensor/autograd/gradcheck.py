"""gradcheck / gradgradcheck: analytical gradients (the engine's) against central finite
differences, with torch's defaults (eps=1e-6, atol=1e-5, rtol=1e-3) and messages.

Jacobians are laid out as torch prints them: one row per input element, one column per output
element. Inputs are perturbed in place through their NumPy view (CPU tensors).
"""
import warnings

import numpy as np

from vibetensor.autograd import engine
from vibetensor.tensor.tensor import Tensor, array, from_array, set_requires_grad


class GradcheckError(RuntimeError):
    """Raised by gradcheck and gradgradcheck when a check fails."""


def _as_tuple(x):
    return (x,) if isinstance(x, Tensor) else tuple(x)


def _tensor_outputs(out):
    return tuple(o for o in _as_tuple(out) if isinstance(o, Tensor))


def _numpy(t):
    return np.array(array(t), dtype=np.complex128 if t._dtype.is_complex else np.float64)


def _numerical_jacobians(func, inputs, diff_idx, eps):
    """[output][input] -> (input numel, output numel) central differences."""
    outputs = _tensor_outputs(func(*inputs))
    jac = [[np.zeros((inputs[i].numel(), o.numel())) for i in diff_idx] for o in outputs]
    for col, i in enumerate(diff_idx):
        a = array(inputs[i])
        for row, idx in enumerate(np.ndindex(*a.shape)):
            orig = a[idx].copy()
            a[idx] = orig - eps  # (grad mode stays on: func may itself differentiate, as gradgradcheck's does)
            minus = [_numpy(o).reshape(-1) for o in _tensor_outputs(func(*inputs))]
            a[idx] = orig + eps
            plus = [_numpy(o).reshape(-1) for o in _tensor_outputs(func(*inputs))]
            a[idx] = orig
            for k in range(len(outputs)):
                jac[k][col][row] = (plus[k] - minus[k]) / (2 * eps)
    return jac


def _analytical_jacobian(output, diff_inputs, nondet_tol):
    """(input numel, output numel) per input, from one vector-Jacobian product per output element;
    computed twice to check the backward gives the same answer again (reentrancy)."""
    def once():
        cols = [np.zeros((t.numel(), output.numel())) for t in diff_inputs]
        for j in range(output.numel()):
            onehot = np.zeros(output.numel(), dtype=output._dtype.np)
            onehot[j] = 1
            g_out = from_array(onehot.reshape(output._shape))
            grads = engine.grad(output, diff_inputs, g_out, retain_graph=True, allow_unused=True)
            for c, (g, t) in enumerate(zip(grads, diff_inputs)):
                if g is None:
                    continue
                if tuple(g._shape) != tuple(t._shape):
                    raise GradcheckError("Gradient has shape mismatch")
                cols[c][:, j] = _numpy(g).reshape(-1)
        return cols
    first, second = once(), once()
    for a, b in zip(first, second):
        if a.size and np.max(np.abs(a - b)) > nondet_tol:
            raise GradcheckError(
                "Backward is not reentrant, i.e., running backward with same input and grad_output multiple "
                "times gives different values, although analytical gradient matches numerical gradient.The "
                f"tolerance for nondeterminism was {nondet_tol}.")
    return first


def _mismatch(k, i, numerical, analytical):
    return GradcheckError(f"Jacobian mismatch for output {k} with respect to input {i},\n"
                          f"numerical:{numerical!r}\nanalytical:{analytical!r}\n")


def _unsupported(**flags):
    for name, value in flags.items():
        if value:
            raise NotImplementedError(f"gradcheck({name}=True) is not supported by vibetensor")


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_batched_forward_grad=False, check_forward_ad=False, check_backward_ad=True,
              fast_mode=False, masked=None):
    """True if func's analytical gradients match finite differences; else GradcheckError (or False
    with raise_exception=False)."""
    _unsupported(check_batched_grad=check_batched_grad, check_batched_forward_grad=check_batched_forward_grad,
                 check_forward_ad=check_forward_ad, fast_mode=fast_mode)
    inputs = _as_tuple(inputs)
    diff_idx = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t._requires_grad]
    if not diff_idx:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of them "
                         "have requires_grad=True.")
    for i in diff_idx:
        if inputs[i]._dtype.name not in ("float64", "complex128"):
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point or complex. "
                          "This check will likely fail if all the inputs are not of double precision floating "
                          "point or complex. ", stacklevel=2)
        if inputs[i]._dtype.is_complex:
            raise NotImplementedError("gradcheck of complex inputs is not supported by vibetensor yet")
    try:
        _check(func, inputs, diff_idx, eps, atol, rtol, nondet_tol, check_backward_ad)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _check(func, inputs, diff_idx, eps, atol, rtol, nondet_tol, check_backward_ad):
    # (gradient dtypes always match: the engine casts each gradient to its input's dtype)
    outputs = _tensor_outputs(func(*inputs))
    numerical = _numerical_jacobians(func, inputs, diff_idx, eps)
    if not check_backward_ad:
        return
    diff_inputs = [inputs[i] for i in diff_idx]
    for k, out in enumerate(outputs):
        if not out._requires_grad:
            for num in numerical[k]:
                if not np.allclose(num, 0, rtol=rtol, atol=atol):
                    raise GradcheckError("Numerical gradient for function expected to be zero")
            continue
        analytical = _analytical_jacobian(out, diff_inputs, nondet_tol)
        for i, (a, n) in enumerate(zip(analytical, numerical[k])):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                raise _mismatch(k, i, n, a)


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
                  check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False, masked=False):
    """gradcheck of func's first derivatives (computed with create_graph=True) w.r.t. the inputs and
    the grad_outputs (random in [-1, 1) when not given)."""
    _unsupported(check_batched_grad=check_batched_grad, check_fwd_over_rev=check_fwd_over_rev, fast_mode=fast_mode)
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = []
        for o in _tensor_outputs(func(*inputs)):
            if o._requires_grad:
                g = from_array(rng.uniform(-1, 1, o._shape).astype(o._dtype.np))
                set_requires_grad(g, True)
                grad_outputs.append(g)
    grad_outputs = _as_tuple(grad_outputs)
    n_out = len(grad_outputs)
    diff_idx = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t._requires_grad]

    def first_derivatives(*args):
        ins, g_outs = args[:len(args) - n_out], args[len(args) - n_out:]
        outs = tuple(o for o in _tensor_outputs(func(*ins)) if o._requires_grad)
        grads = engine.grad(outs, [ins[i] for i in diff_idx], g_outs, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivatives, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, nondet_tol=nondet_tol, check_grad_dtypes=check_grad_dtypes)


__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]
