"""PyTorch as the oracle: build the same inputs in both libraries, run the same code, compare.

A test case is a function `fn(lib, *tensors)` that is run once with lib=torch on torch tensors and
once with lib=vibetensor.torch on vibetensor tensors; `check` compares results (values, dtype,
shape) or, if torch raises, that we raise the same exception type.
"""
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import vibetensor.torch as vt

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
          "complex64", "complex128"]
FLOATS = ["float16", "bfloat16", "float32", "float64"]
INTS = ["uint8", "int8", "int16", "int32", "int64"]

# layouts: how an input of a given logical shape is laid out in memory (same in both libraries)
LAYOUTS = ["contiguous", "transposed", "strided", "expanded"]


def to_numpy(t):
    """numpy copy of a torch or vibetensor tensor (bfloat16 as ml_dtypes.bfloat16)."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        return t.resolve_conj().numpy().copy()
    return np.array(t.detach().cpu().numpy() if hasattr(t, "detach") else t.cpu().numpy(), copy=True)


def torch_from_numpy(a):
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def vt_from_numpy(a):
    return vt.from_numpy(a.copy())


def random_array(shape, dtype, rng, low=-3.0, high=3.0, special=False):
    """Random values of `dtype`; with special=True some NaN/inf/-inf/-0.0 for float types."""
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype in INTS:
        info = np.iinfo(dtype)
        lo, hi = max(info.min, int(low) if dtype != "uint8" else 0), min(info.max, max(int(high), 1) + 1)
        return np.asarray(rng.integers(lo, hi, size=shape)).astype(dtype)
    npd = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    if dtype.startswith("complex"):
        a = rng.uniform(low, high, shape) + 1j * rng.uniform(low, high, shape)
    else:
        a = rng.uniform(low, high, shape)
    a = np.asarray(a).astype(npd)
    if special and a.size and dtype in FLOATS:  # complex inf arithmetic is ill-defined even in torch
        flat = a.reshape(-1)
        picks = rng.integers(0, flat.size, size=max(1, flat.size // 4))
        flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0]), size=picks.size).astype(npd)
    return a


def make_pair(shape, dtype, layout="contiguous", seed=0, **kw):
    """(torch tensor, vibetensor tensor) with equal values and the same memory layout."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    if layout == "transposed" and len(shape) >= 2:
        base = random_array(shape[:-2] + (shape[-1], shape[-2]), dtype, rng, **kw)
        make = lambda lib, b: b.transpose(-1, -2)  # noqa: E731
    elif layout == "strided" and len(shape) >= 1:
        base = random_array(shape[:-1] + (shape[-1] * 2,), dtype, rng, **kw)
        make = lambda lib, b: b[..., ::2]  # noqa: E731
    elif layout == "expanded" and len(shape) >= 1 and shape[0] > 1:
        base = random_array((1,) + shape[1:], dtype, rng, **kw)
        make = lambda lib, b: b.expand(*shape)  # noqa: E731
    else:
        base = random_array(shape, dtype, rng, **kw)
        make = lambda lib, b: b  # noqa: E731
    return make(torch, torch_from_numpy(base)), make(vt, vt_from_numpy(base))


def _tol(dtype_name):
    return {"float16": (1e-3, 1e-3), "bfloat16": (1.6e-2, 1e-2), "float32": (1.3e-6, 1e-5),
            "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}.get(dtype_name, (0, 0))


def assert_same(ours, theirs, rtol=None, atol=None, check_stride=False, path="result"):
    """Values, dtype and shape equal (within the dtype's tolerance); recurses into tuples/lists."""
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(theirs), f"{path}: {ours!r} vs {theirs!r}"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            assert_same(o, t, rtol, atol, check_stride, f"{path}[{i}]")
        return
    if not isinstance(theirs, torch.Tensor):
        if isinstance(theirs, float) and np.isnan(theirs):
            assert np.isnan(ours), f"{path}: {ours} vs nan"
        else:
            assert ours == theirs or np.isclose(ours, theirs, rtol=rtol or 1e-6, atol=atol or 1e-6), \
                f"{path}: {ours!r} != {theirs!r}"
        return
    assert isinstance(ours, vt.Tensor), f"{path}: expected a tensor, got {type(ours).__name__}"
    assert repr(ours.dtype) == str(theirs.dtype), f"{path}: dtype {ours.dtype} != {theirs.dtype}"
    assert tuple(ours.shape) == tuple(theirs.shape), f"{path}: shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    if check_stride:
        assert tuple(ours.stride()) == tuple(theirs.stride()), f"{path}: stride {ours.stride()} != {theirs.stride()}"
    d_rtol, d_atol = _tol(str(theirs.dtype).replace("torch.", ""))
    expected = theirs.detach()
    got = torch_from_numpy(np.array(to_numpy(ours), order="C"))
    torch.testing.assert_close(got, expected.cpu(), rtol=d_rtol if rtol is None else rtol,
                               atol=d_atol if atol is None else atol, equal_nan=True, check_dtype=True,
                               msg=lambda m: f"{path}: {m}")


def check(fn, *pairs, rtol=None, atol=None, check_stride=False):
    """Run fn(torch, *torch_inputs) and fn(vt, *vt_inputs); compare results or exception types.
    Inputs are (torch, vt) pairs or plain Python values used by both."""
    t_args = [p[0] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], torch.Tensor) else p for p in pairs]
    v_args = [p[1] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], torch.Tensor) else p for p in pairs]
    try:
        expected = fn(torch, *t_args)
    except Exception as e:  # torch rejects the input: we must reject it with the same type
        exc_type = type(e)
        if exc_type.__module__.startswith("torch"):
            exc_type = RuntimeError
        try:
            fn(vt, *v_args)
        except Exception as ours:
            assert isinstance(ours, exc_type), f"torch raised {type(e).__name__}: {e}; we raised {type(ours).__name__}: {ours}"
            return None
        raise AssertionError(f"torch raised {type(e).__name__}: {e}; we returned a result")
    got = fn(vt, *v_args)
    assert_same(got, expected, rtol, atol, check_stride)
    return got


def check_out(fn, shapes):
    """fn(lib, out, *tensors) with out= tensors of every dtype and of the right, empty and wrong shape:
    the same result as torch's, or a RuntimeError where torch raises one; `out` is what is returned."""
    xs = [make_pair(s, "float32", seed=i) for i, s in enumerate(shapes)]
    expected_shape = tuple(fn(torch, None, *[x[0] for x in xs]).shape)
    for out_dtype in ("float32", "float64", "int64"):
        for out_shape in (expected_shape, (0,), (7,)):
            t_out = torch.zeros(out_shape, dtype=getattr(torch, out_dtype))
            v_out = vt.zeros(out_shape, dtype=getattr(vt, out_dtype))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fn(torch, t_out, *[x[0] for x in xs])
                except RuntimeError:
                    with pytest.raises(RuntimeError):
                        fn(vt, v_out, *[x[1] for x in xs])
                    continue
                got = fn(vt, v_out, *[x[1] for x in xs])
            assert got is v_out
            assert_same(v_out, t_out)
