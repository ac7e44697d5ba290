"""From torch's world to ours: tensors, dtypes, devices and callables.

`Converter` turns an OpInfo sample (torch tensors nested in lists, tuples and dicts) into the same
sample over vibetensor tensors, keeping every tensor's dtype, shape, strides, storage offset,
aliasing between inputs, and requires_grad. `resolve` finds the vibetensor callable that plays the
role of an OpInfo entry's `op`.
"""
import re
import sys
import types

import ml_dtypes
import numpy as np
import torch

import vibetensor.torch as vt


class Unsupported(Exception):
    """The sample or the op uses something vibetensor does not have: reported, not failed."""


# -- values ------------------------------------------------------------------------------------------------

def vt_dtype(d):
    try:
        return getattr(vt, str(d).replace("torch.", ""))
    except AttributeError:
        raise Unsupported(f"dtype {d}") from None


def torch_dtype(d):
    return getattr(torch, d.name)


def to_numpy(t):
    """A NumPy copy of a torch tensor's values (bfloat16 as ml_dtypes.bfloat16)."""
    t = t.detach().resolve_conj().resolve_neg().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def vt_to_numpy(t):
    return np.array(t.detach().cpu().numpy(), copy=True)


def torch_from_numpy(a):
    a = np.array(a, order="C", copy=True)  # (not ascontiguousarray: it turns 0-d into 1-d)
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


class Converter:
    """Converts one sample's torch values to ours. Tensors sharing torch storage share ours too
    (in-place ops on aliased inputs must see each other's writes), and `leaves` pairs every
    converted tensor that requires grad with its torch original (for the gradient check)."""

    def __init__(self, device="cpu", requires_grad=True):
        self.device = device
        self.requires_grad = requires_grad
        self.storages = {}  # (torch storage address, dtype) -> our flat tensor over the same bytes
        self.seen = {}      # id(torch tensor) -> ours: a tensor passed twice is one tensor (one leaf) for us
        self.leaves = []    # [(torch tensor, our tensor)] that require grad

    def __call__(self, x):
        if isinstance(x, torch.Tensor):
            return self.tensor(x)
        if isinstance(x, torch.Size):
            return vt.Size(tuple(x))
        if isinstance(x, torch.dtype):
            return vt_dtype(x)
        if isinstance(x, torch.device):
            return vt.device(self.device if x.type in ("cpu", "cuda") else x.type)
        if isinstance(x, torch.memory_format):
            return self.memory_format(x)
        if isinstance(x, torch.layout):
            if x != torch.strided:
                raise Unsupported(f"layout {x}")
            return getattr(vt, "strided", None)
        if isinstance(x, torch.Generator):
            raise Unsupported("torch.Generator argument")
        if isinstance(x, torch.nn.Module):  # e.g. distance_function=torch.nn.PairwiseDistance()
            raise Unsupported(f"a torch module as an argument ({type(x).__name__})")
        if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
            return type(x)(*(self(v) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(self(v) for v in x)
        if isinstance(x, dict):
            return {k: self(v) for k, v in x.items()}
        return x

    @staticmethod
    def memory_format(f):
        name = str(f).replace("torch.", "")
        if not isinstance(getattr(vt, name, None), vt.memory_format):
            raise Unsupported(f"memory_format {f}")
        return getattr(vt, name)

    def tensor(self, t):
        ours = self.seen.get(id(t))
        if ours is None:
            ours = self.seen[id(t)] = self._tensor(t)
        return ours

    def _tensor(self, t):
        if t.layout != torch.strided:
            raise Unsupported(f"layout {t.layout}")
        if t.is_quantized or t.is_nested:
            raise Unsupported("quantized or nested tensor")
        dtype = vt_dtype(t.dtype)  # Unsupported for dtypes we lack (complex32, float8, uint16...)
        if t.is_conj() or t.is_neg():  # lazy conj/neg bits: materialise (values are what count)
            t0 = t.detach().resolve_conj().resolve_neg().contiguous()
            shape, stride, offset, flat = tuple(t0.shape), t0.stride(), 0, self._flat(t0, dtype, key=False)
        else:
            shape, stride, offset = tuple(t.shape), t.stride(), t.storage_offset()
            flat = self._flat(t, dtype)
        with vt.no_grad():
            ours = vt.as_strided(flat, shape, stride, offset)
        if t.requires_grad and self.requires_grad:
            ours = ours.detach().requires_grad_(True)  # a leaf, as torch's sample tensor is
            self.leaves.append((t, ours))
        return ours

    def _flat(self, t, dtype, key=True):
        """Our 1-D tensor over a copy of the whole torch storage t views (shared per storage)."""
        storage = t.untyped_storage()
        k = (storage.data_ptr(), t.dtype)
        if key and k in self.storages:
            return self.storages[k]
        n = storage.nbytes() // t.element_size()
        raw = torch.empty(0, dtype=t.dtype, device=t.device).set_(storage, 0, (n,), (1,)) if key else t.reshape(-1)
        flat = vt.from_numpy(to_numpy(raw))
        if self.device != "cpu":
            flat = flat.to(self.device)
        if key:
            self.storages[k] = flat
        return flat


# -- callables ---------------------------------------------------------------------------------------------

class Missing(Exception):
    """A name the op needs does not exist in vibetensor.torch."""


class Namespace:
    """Stands in for `torch` (or a submodule) inside OpInfo's lambdas: attributes come from
    vibetensor.torch; a missing one raises Missing("torch.path.name")."""

    def __init__(self, obj, path):
        self._obj, self._path = obj, path

    def __getattr__(self, name):
        try:
            value = getattr(self._obj, name)
        except AttributeError:
            raise Missing(f"{self._path}.{name}") from None
        if isinstance(value, types.ModuleType):
            return Namespace(value, f"{self._path}.{name}")
        return value


def _call(op, *args, **kwargs):
    """Stands in for OpInfo's wrapper_set_seed, which reseeds torch with 42 on every call: the runner
    seeds both libraries itself, so that repeated draws of a random op differ."""
    return op(*args, **kwargs)


_lambda_globals = {}


def rebind(fn, ours=True):
    """fn (a function from torch's OpInfo files) with `torch` meaning vibetensor.torch (ours=True)
    or still torch (ours=False), and wrapper_set_seed not reseeding."""
    if not isinstance(fn, types.FunctionType) or not (fn.__module__ or "").startswith("torch.testing"):
        return fn
    key = (id(fn.__globals__), ours)
    g = _lambda_globals.get(key)
    if g is None:
        g = dict(fn.__globals__)
        g["wrapper_set_seed"] = _call
        if ours:
            g["torch"] = Namespace(vt, "torch")
        _lambda_globals[key] = g
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    return new


def lookup(path):
    """vibetensor.torch's object at a dotted path ("nn.functional.relu"); Missing if absent."""
    obj = vt
    parts = path.split(".")
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = "" if i == len(parts) - 1 else f" (no torch.{'.'.join(parts[:i + 1])})"
            raise Missing(f"torch.{path}{where}") from None
    return obj


def method_caller(name):
    """Calls Tensor.<name> on the first argument (method-only entries such as __radd__)."""
    def call(self, *args, **kwargs):
        try:
            fn = getattr(type(self), name)
        except AttributeError:
            raise Missing(f"torch.Tensor.{name}") from None
        return fn(self, *args, **kwargs)
    return call


def op_path(op):
    """Where an OpInfo entry's op lives, as ("function" | "method" | "lambda", dotted path)."""
    f = op.op
    mod = getattr(f, "__module__", None) or ""
    qual = getattr(f, "__qualname__", "") or ""
    if isinstance(f, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return "function", "ops." + str(f)
    if qual.startswith(("Tensor.", "TensorBase.")):
        return "method", qual.split(".", 1)[1]
    if mod.startswith("torch.testing"):
        return "lambda", op.name
    return "function", op.name[len("torch."):] if op.name.startswith("torch.") else op.name


def resolve(op):
    """(our callable, how it was found). The callable raises Missing when a name is absent,
    so an op with no twin is reported per sample, with the name that is missing."""
    kind, path = op_path(op)
    if kind == "method":
        return method_caller(path), f"torch.Tensor.{path}"
    if kind == "lambda":
        return rebind(op.op), f"torch.{path} (OpInfo lambda)"
    try:
        fn = lookup(path)
    except Missing as e:
        missing = str(e)

        def absent(*args, **kwargs):
            raise Missing(missing)
        absent.missing = missing  # the runner need not convert samples for it, nor run torch
        return absent, f"torch.{path}"
    return fn, f"torch.{path}"


# -- why a call failed -------------------------------------------------------------------------------------

_TENSOR_ATTR = re.compile(r"(?:type object 'Tensor'|'Tensor' object) has no attribute '(\w+)'")
_ATEN_ATTR = re.compile(r"'_OpNamespace' 'aten' object has no attribute '(\w+)'")
_PACKAGE = "vibetensor" + ("\\" if sys.platform == "win32" else "/")


def raised_inside_vibetensor(exc):
    """True when the innermost frame of exc's traceback is vibetensor code (a bug of ours), not the
    runner or an OpInfo lambda looking up a name."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and _PACKAGE in last.tb_frame.f_code.co_filename \
        and "vibetensor_conformance" not in last.tb_frame.f_code.co_filename


def classify(exc):
    """("unsupported" | "failed", reason) for an exception we raised on a sample torch accepts."""
    if isinstance(exc, Missing):
        return "unsupported", f"missing: {exc}"
    if isinstance(exc, Unsupported):
        return "unsupported", f"unsupported input: {exc}"
    if isinstance(exc, NotImplementedError):
        return "unsupported", f"NotImplementedError: {first_line(exc)}"
    if isinstance(exc, AttributeError):
        m = _ATEN_ATTR.search(str(exc))
        if m:  # torch.ops.aten.<name> that vibetensor does not expose
            return "unsupported", f"missing: torch.ops.aten.{m.group(1)}"
    if isinstance(exc, AttributeError) and not raised_inside_vibetensor(exc):
        m = _TENSOR_ATTR.search(str(exc))
        if m:
            return "unsupported", f"missing: torch.Tensor.{m.group(1)}"
    return "failed", f"{type(exc).__name__}: {first_line(exc)}"


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
