"""What must hold of our result: equal to torch's (within tolerance), or, for random ops, the same
shape and dtype, values in the distribution's support and moments close to torch's draws.

Every check returns None when it holds, else a one-line reason.
"""
import math

import numpy as np
import torch

import vibetensor.torch as vt
from vibetensor_conformance.convert import torch_from_numpy, vt_to_numpy

# torch.testing.assert_close's defaults, per dtype: (rtol, atol)
DEFAULT_TOL = {torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5), torch.float32: (1.3e-6, 1e-5),
               torch.float64: (1e-7, 1e-7), torch.complex64: (1.3e-6, 1e-5), torch.complex128: (1e-7, 1e-7)}


def tolerance(op, dtype):
    """(rtol, atol) for an OpInfo entry in a dtype: assert_close's defaults, widened by the largest
    toleranceOverride / precisionOverride the entry's own tests declare for that dtype on CPU."""
    from torch.testing._internal.common_device_type import precisionOverride, toleranceOverride
    rtol, atol = DEFAULT_TOL.get(dtype, (0.0, 0.0))
    for info in op.decorators:
        if getattr(info, "device_type", None) not in (None, "cpu"):
            continue
        for d in getattr(info, "decorators", [info]):
            if isinstance(d, toleranceOverride) and dtype in d.d:
                rtol, atol = max(rtol, d.d[dtype].rtol), max(atol, d.d[dtype].atol)
            elif isinstance(d, precisionOverride) and dtype in d.d:
                atol = max(atol, d.d[dtype])
    return rtol, atol


# -- values ------------------------------------------------------------------------------------------------

def compare(got, expected, tol, path="result"):
    """None if our result `got` matches torch's `expected`: same structure, tensor dtypes and shapes,
    values within tol = (rtol, atol) (NaN equals NaN); else the first difference."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, vt.Tensor):
            return f"{path}: expected a tensor, got {type(got).__name__}"
        if got.dtype.name != str(expected.dtype).replace("torch.", ""):
            return f"{path}: dtype {got.dtype} != {expected.dtype}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"{path}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
        return compare_values(torch_from_numpy(vt_to_numpy(got)), expected.detach().resolve_conj().resolve_neg(),
                              tol, path)
    if isinstance(expected, torch.Size):
        return None if isinstance(got, tuple) and tuple(got) == tuple(expected) else f"{path}: {got!r} != {expected!r}"
    if isinstance(expected, torch.dtype):
        ok = getattr(got, "name", None) == str(expected).replace("torch.", "")
        return None if ok else f"{path}: {got!r} != {expected!r}"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)):
            return f"{path}: expected a {type(expected).__name__}, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{path}: {len(got)} items != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            reason = compare(g, e, tol, f"{path}[{i}]")
            if reason:
                return reason
        return None
    if isinstance(expected, (bool, int, float, complex)):
        return compare_number(got, expected, tol, path)
    if expected is None:
        return None if got is None else f"{path}: expected None, got {type(got).__name__}"
    try:
        return None if got == expected else f"{path}: {got!r} != {expected!r}"
    except Exception as e:  # an object torch returned that ours can't be compared with
        return f"{path}: can't compare {type(got).__name__} with {type(expected).__name__}: {e}"


def compare_number(got, expected, tol, path):
    if isinstance(got, vt.Tensor) or not isinstance(got, (bool, int, float, complex)):
        return f"{path}: expected a Python {type(expected).__name__}, got {type(got).__name__}"
    if isinstance(expected, bool) != isinstance(got, bool):
        return f"{path}: {got!r} ({type(got).__name__}) != {expected!r} ({type(expected).__name__})"
    if isinstance(expected, int) and not isinstance(got, int):
        return f"{path}: {got!r} ({type(got).__name__}) != {expected!r} (int)"
    if got == expected or (cmath_isnan(got) and cmath_isnan(expected)):
        return None
    rtol, atol = tol
    if abs(got - expected) <= atol + rtol * abs(expected):
        return None
    return f"{path}: {got!r} != {expected!r}"


def cmath_isnan(x):
    return isinstance(x, (float, complex)) and (x != x)


def compare_values(got, expected, tol, path):
    """Floating and complex values within tol; integers and bools (indices, counts, hashes) exactly."""
    rtol, atol = tol if expected.is_floating_point() or expected.is_complex() else (0, 0)
    try:
        torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, equal_nan=True, check_dtype=False,
                                   check_stride=False, check_device=False)
    except AssertionError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:4] or lines[:1])  # "Mismatched elements: ...; Greatest absolute difference ..."
        return f"{path}: values differ ({detail})"
    return None


def no_worse(got, expected, reference, tol, path="result"):
    """None if our result is at least as accurate as torch's: each floating value within tol of the
    float64 `reference`, or no farther from it than torch's own value is. (Where we differ from torch
    we may be the more accurate one: we compute half types in float32 and round once, while some
    torch CPU kernels accumulate in the low precision; matrix functions differ in their algorithms.)"""
    if isinstance(expected, torch.Tensor) and expected.is_floating_point() and isinstance(reference, torch.Tensor):
        reason = compare_structure(got, expected)
        if reason:
            return reason
        o = as_float64(got)
        t = expected.detach().double().numpy()
        r = reference.detach().double().numpy()
        rtol, atol = tol
        with np.errstate(all="ignore"):
            torch_error = np.abs(t - r)
            torch_error = np.where(np.isnan(torch_error), np.inf, torch_error)  # torch's NaN: no bound on ours
            ok = (np.abs(o - r) <= torch_error + atol + rtol * np.abs(r)) | (o == t) | \
                (np.isnan(o) & (np.isnan(t) | np.isnan(r)))
        if ok.all():
            return None
        return f"{path}: values differ from torch's and are farther from the float64 result " \
               f"({(~ok).sum()} of {ok.size})"
    if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)) and \
            isinstance(reference, (tuple, list)) and len(got) == len(expected) == len(reference):
        for i, (g, e, r) in enumerate(zip(got, expected, reference)):
            reason = no_worse(g, e, r, tol, f"{path}[{i}]")
            if reason:
                return reason
        return None
    return compare(got, expected, tol, path)


# Decompositions whose outputs are unique only up to signs or phases (singular and eigen vectors):
# compared through the sample's output_process_fn_grad, which OpInfo writes to be gauge-invariant
# (U @ Vh and S; |eigenvectors|) when the raw outputs differ.
GAUGE_INVARIANT = {"svd", "linalg.svd", "linalg.eig", "linalg.eigh", "pca_lowrank", "svd_lowrank"}


# Ops that return the indices of equal elements in an order torch leaves unspecified (an unstable sort,
# topk, mode): where the indices differ from torch's, they pass when they are a valid answer (the
# values equal torch's, and our indices point at them, each element at most once). sort(stable=True)
# stays exact.
TIE_ORDER = {"sort": (0, -1), "argsort": (0, -1), "topk": (1, -1), "mode": (0, -1)}  # name: (dim position, default)


def ties(name, sample, got, expected, tol):
    """None if our (values, indices) (or argsort's indices) are a valid answer where torch's order of
    ties is unspecified; else the reason of the exact comparison."""
    exact = compare(got, expected, tol)
    if exact is None or sample.kwargs.get("stable"):
        return exact
    pos, default = TIE_ORDER[name]
    x = sample.input.detach().cpu()  # (our indices come back to the host: compare there)
    dim = sample.kwargs.get("dim", sample.args[pos] if len(sample.args) > pos else default)
    if name == "argsort":
        values, got_idx = x.gather(dim, expected) if x.ndim else x, got
    else:
        if compare(got[0], expected[0], tol) is not None or not isinstance(got[1], vt.Tensor):
            return exact
        values, got_idx = expected[0], got[1]
    idx = torch_from_numpy(vt_to_numpy(got_idx))
    if tuple(idx.shape) != tuple(expected[1].shape if name != "argsort" else expected.shape) or idx.dtype != torch.int64:
        return exact
    if x.ndim == 0:
        return None if (idx == 0).all() else exact
    d = dim % x.ndim
    keep = idx if idx.ndim == x.ndim else idx.unsqueeze(d)
    if keep.numel() and (keep.min() < 0 or keep.max() >= x.shape[d]):
        return exact
    picked = x.gather(d, keep).reshape(values.shape)
    if compare_values(picked, values.detach(), (0.0, 0.0), "indices") is not None:
        return exact
    if name != "mode" and keep.shape[d] > 1 and (keep.sort(d).values.diff(dim=d) == 0).any():
        return exact  # an element picked twice
    return None


def tie_grad(name, sample, got, seed, grad, tol):
    """None if `grad` (ours, of the input) is the gradient of the values at OUR indices: the output
    gradient `seed` scattered to where our indices point (torch's own differs where it chose other ties)."""
    x = sample.input.detach().cpu()  # (our indices come back to the host: compare there)
    pos, default = TIE_ORDER[name]
    dim = sample.kwargs.get("dim", sample.args[pos] if len(sample.args) > pos else default)
    idx = torch_from_numpy(vt_to_numpy(got[1]))
    g = torch_from_numpy(seed).to(x.dtype)
    if x.ndim == 0:
        expected = g.reshape(())
    else:
        d = dim % x.ndim
        keep = idx if idx.ndim == x.ndim else idx.unsqueeze(d)
        expected = torch.zeros_like(x).scatter_add(d, keep, g.reshape(keep.shape))
    return compare(grad, expected, tol, "grad of input 0 (at our tie order)")


def torch_grad_known_wrong(op, dtype):
    """Does the entry mark torch's own backward as wrong (TestBwdGradients.test_fn_grad an expectedFailure
    on CPU for this dtype)? Its gradients are then checked against finite differences instead."""
    import unittest
    for info in op.decorators:
        if getattr(info, "test_name", None) != "test_fn_grad" or getattr(info, "device_type", None) not in (None, "cpu"):
            continue
        dtypes = getattr(info, "dtypes", None)
        if (dtypes is None or dtype in dtypes) and unittest.expectedFailure in getattr(info, "decorators", ()):
            return True
    return False


# -- random results: properties, not values -----------------------------------------------------------------

# Entries whose values are undefined (only shape and dtype can be checked).
UNDEFINED_VALUES = {"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"}

# Entries that draw random numbers (OpInfo runs most of them through wrapper_set_seed as well).
RANDOM = {"bernoulli", "multinomial", "normal", "uniform", "cauchy", "exponential", "geometric", "log_normal",
          "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "nn.functional.dropout",
          "nn.functional.dropout1d", "nn.functional.dropout2d", "nn.functional.dropout3d",
          "nn.functional.alpha_dropout", "nn.functional.feature_alpha_dropout", "nn.functional.rrelu",
          "nn.functional.fractional_max_pool2d", "nn.functional.fractional_max_pool3d", "svd_lowrank",
          "pca_lowrank", "nn.functional.scaled_dot_product_attention",
          "nn.functional.multi_head_attention_forward"}


def is_random(op):
    code = getattr(op.op, "__code__", None)
    return op.name in RANDOM or op.name in UNDEFINED_VALUES or \
        (code is not None and "wrapper_set_seed" in code.co_names)


def tensors_of(x):
    """The tensors in a result, in order (a tensor, or a tuple/list of them)."""
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in tensors_of(v)]
    return [x] if isinstance(x, (torch.Tensor, vt.Tensor)) else []


def check_random(name, sample, got_draws, expected_draws):
    """Properties of our draws (results of K calls) against torch's K draws of the same sample."""
    got, expected = got_draws[0], expected_draws[0]
    reason = compare_structure(got, expected)
    if reason or name in UNDEFINED_VALUES:
        return reason
    ours = np.concatenate([as_float64(tensors_of(g)[0]).reshape(-1) for g in got_draws]) \
        if tensors_of(got) else np.zeros(0)
    theirs = np.concatenate([as_float64(tensors_of(e)[0]).reshape(-1) for e in expected_draws]) \
        if tensors_of(expected) else np.zeros(0)
    if ours.size == 0:
        return None
    support = SUPPORT.get(name)
    if support is not None:
        reason = support(ours, sample, got_draws)
        if reason:
            return reason
    if np.all(np.isfinite(theirs)) and not np.all(np.isfinite(ours)):
        return "non-finite values where torch's draws are all finite"
    if np.all(theirs == np.round(theirs)) and not np.all(ours == np.round(ours)):
        return "non-integer values where torch's draws are all integers"
    if name != "cauchy":  # no finite moments
        return compare_moments(ours, theirs)
    return None


def compare_structure(got, expected):
    """Shapes and dtypes of every tensor in the result equal torch's."""
    g, e = tensors_of(got), tensors_of(expected)
    if len(g) != len(e):
        return f"{len(g)} tensors in the result != {len(e)}"
    for i, (a, b) in enumerate(zip(g, e)):
        if not isinstance(a, vt.Tensor):
            return f"result[{i}]: expected a tensor, got {type(a).__name__}"
        if a.dtype.name != str(b.dtype).replace("torch.", ""):
            return f"result[{i}]: dtype {a.dtype} != {b.dtype}"
        if tuple(a.shape) != tuple(b.shape):
            return f"result[{i}]: shape {tuple(a.shape)} != {tuple(b.shape)}"
    return None


def as_float64(t):
    if isinstance(t, torch.Tensor):
        return t.detach().to(torch.float64 if not t.is_complex() else torch.complex128).numpy().real
    a = vt_to_numpy(t)
    return a.real.astype(np.float64) if np.iscomplexobj(a) else a.astype(np.float64)


def compare_moments(ours, theirs, z=6.0):
    """Two-sample test of means and a loose ratio of standard deviations (draws >= 100)."""
    n, m = ours.size, theirs.size
    if min(n, m) < 100 or not (np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs))):
        return None
    mo, mt, so, st = ours.mean(), theirs.mean(), ours.std(), theirs.std()
    spread = math.sqrt(so ** 2 / n + st ** 2 / m)
    if abs(mo - mt) > z * spread + 1e-6 * (1 + abs(mt)):
        return f"mean {mo:.4g} vs torch's {mt:.4g} (std of the difference {spread:.3g}, {n} draws)"
    if st > 1e-6 and not (0.7 < so / st < 1.4):
        return f"std {so:.4g} vs torch's {st:.4g} ({n} draws)"
    if st <= 1e-6 and so > 1e-6 + 1e-6 * abs(mt):
        return f"std {so:.4g} vs torch's {st:.4g} ({n} draws)"
    return None


def _arg(sample, i, name, default):
    if len(sample.args) > i:
        return sample.args[i]
    return sample.kwargs.get(name, default)


def _inside(lo, hi, what):
    def check(x, sample, draws):
        a, b = lo(sample), hi(sample)
        if np.any(x < a) or np.any(x > b):
            return f"values outside [{a}, {b}] ({what}): min {x.min():.4g}, max {x.max():.4g}"
        return None
    return check


def _in_set(values):
    def check(x, sample, draws):
        bad = ~np.isin(x, values)
        return f"values outside {values}: {np.unique(x[bad])[:5]}" if bad.any() else None
    return check


def _dropout(x, sample, draws):
    """Each element is 0 or input / (1 - p)."""
    p = float(_arg(sample, 0, "p", 0.5))
    inp = as_float64(sample.input).reshape(-1)
    if p >= 1:
        return None if np.all(x == 0) else "p=1 but some values are non-zero"
    scaled = np.tile(inp / (1 - p), x.size // max(inp.size, 1))
    ok = (x == 0) | np.isclose(x, scaled, rtol=1e-2, atol=1e-5)
    return None if ok.all() else f"{(~ok).sum()} values are neither 0 nor input/(1-p)"


def _rrelu(x, sample, draws):
    """Non-negative inputs pass through; negative ones are scaled by a slope in [lower, upper]."""
    lower, upper = float(sample.kwargs.get("lower", 1 / 8)), float(sample.kwargs.get("upper", 1 / 3))
    inp = np.tile(as_float64(sample.input).reshape(-1), x.size // max(sample.input.numel(), 1))
    pos = inp >= 0
    lo, hi = np.minimum(inp * lower, inp * upper), np.maximum(inp * lower, inp * upper)
    ok = np.where(pos, np.isclose(x, inp, rtol=1e-2, atol=1e-5),
                  (x >= lo - 1e-5 - 1e-2 * abs(lo)) & (x <= hi + 1e-5 + 1e-2 * abs(hi)))
    return None if ok.all() else f"{(~ok).sum()} values outside [lower*x, upper*x] for x < 0 or != x for x >= 0"


def _multinomial(x, sample, draws):
    n = sample.input.shape[-1]
    if np.any(x < 0) or np.any(x >= n):
        return f"indices outside [0, {n})"
    replacement = bool(_arg(sample, 1, "replacement", False))
    if not replacement:
        for d in draws:
            rows = vt_to_numpy(d).reshape(-1, d.shape[-1])
            if any(len(set(r.tolist())) != len(r) for r in rows):
                return "repeated indices without replacement"
    return None


def _randint_bounds(sample):
    """(low, high) of randint(high, size) / randint(low, high, size) / randint_like(inp, [low,] high)."""
    if isinstance(sample.input, torch.Tensor):  # randint_like
        args = sample.args
        return (0, args[0]) if len(args) == 1 else (args[0], args[1])
    if len(sample.args) >= 2:
        return sample.input, sample.args[0]
    return 0, sample.input


SUPPORT = {
    "bernoulli": _in_set([0.0, 1.0]),
    "uniform": _inside(lambda s: float(_arg(s, 0, "from", 0.0)), lambda s: float(_arg(s, 1, "to", 1.0)), "from, to"),
    "exponential": _inside(lambda s: 0.0, lambda s: math.inf, "exponential"),
    "geometric": _inside(lambda s: 1.0, lambda s: math.inf, "geometric"),
    "log_normal": _inside(lambda s: 0.0, lambda s: math.inf, "log-normal"),
    "randint": _inside(lambda s: _randint_bounds(s)[0], lambda s: _randint_bounds(s)[1] - 1, "low, high - 1"),
    "randint_like": _inside(lambda s: _randint_bounds(s)[0], lambda s: _randint_bounds(s)[1] - 1, "low, high - 1"),
    "multinomial": _multinomial,
    "nn.functional.dropout": _dropout,
    "nn.functional.rrelu": _rrelu,
}
