"""Run PyTorch's OpInfo samples through vibetensor.torch and compare with torch.

For each OpInfo entry and dtype: every sample input is converted to our tensors, the op runs through
our front door, and the result is compared with torch's (values, or properties for random ops).
When the entry supports autograd, the same sample also runs backward on both sides with one random
output gradient, and the input gradients are compared.
"""
import contextlib
import math
import re
import signal
import threading
import time
import types
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

import vibetensor.torch as vt
from vibetensor_conformance import properties
from vibetensor_conformance.convert import (Converter, Missing, Unsupported, classify, first_line, rebind, resolve,
                                            torch_from_numpy, vt_dtype)

_RANDOM_DRAWS = 2000  # elements drawn per random sample (over repeated calls) for the moment checks
_DETERMINISM_DRAWS = 8  # torch draws that must all be equal for a random op's sample to count as deterministic


@dataclass
class EntryResult:
    """Counts for one OpInfo entry in one dtype."""
    name: str
    variant: str
    dtype: str
    target: str = ""               # what it resolved to in vibetensor.torch
    random: bool = False
    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    skipped: int = 0               # torch itself rejected the sample
    grad_passed: int = 0
    grad_failed: int = 0
    grad_unsupported: int = 0
    first_failure: str = None
    first_unsupported: str = None
    first_grad_failure: str = None
    reasons: Counter = field(default_factory=Counter)  # category -> samples (forward and grad)
    seconds: float = 0.0

    @property
    def full_name(self):
        return f"{self.name}.{self.variant}" if self.variant else self.name

    @property
    def samples(self):
        return self.passed + self.failed + self.unsupported

    @property
    def forward_ok(self):
        return self.samples > 0 and self.passed == self.samples

    @property
    def fully_passing(self):
        return self.forward_ok and self.grad_failed == 0 and self.grad_unsupported == 0

    def record(self, outcome, index, reason=None, grad=False):
        """Count one sample's forward (or gradient) outcome: passed, failed or unsupported."""
        prefix = "grad_" if grad else ""
        setattr(self, prefix + outcome, getattr(self, prefix + outcome) + 1)
        if outcome == "passed":
            return
        text = f"sample {index}: {reason}"
        if grad:
            self.first_grad_failure = self.first_grad_failure or f"{'grad ' + outcome}: {text}"
        elif outcome == "failed":
            self.first_failure = self.first_failure or text
        else:
            self.first_unsupported = self.first_unsupported or text
        self.reasons[("grad " if grad else "") + category(outcome, reason)] += 1

    def raised(self, index, exc, grad=False):
        """Count a sample on which we raised: not supported, or failed (see convert.classify)."""
        outcome, reason = classify(exc)
        self.record(outcome, index, reason, grad)

    def as_dict(self):
        d = {k: getattr(self, k) for k in ("name", "variant", "dtype", "target", "random", "samples", "passed",
                                           "failed", "unsupported", "skipped", "grad_passed", "grad_failed",
                                           "grad_unsupported", "first_failure", "first_unsupported",
                                           "first_grad_failure", "forward_ok", "fully_passing")}
        d["seconds"] = round(self.seconds, 3)
        d["reasons"] = dict(self.reasons)
        return d


def category(outcome, reason):
    """A short bucket for a failure reason, to count what breaks most ("missing: torch.X" stays whole,
    since each missing name is one thing to add)."""
    r = reason or ""
    if r.startswith("missing:"):
        m = re.search(r"\(no (torch\.[\w.]+)\)", r)  # a whole missing module counts as one thing
        return f"missing: {m.group(1)}.*" if m else r
    if r.startswith("NotImplementedError"):
        return "NotImplementedError"
    if "values differ" in r:
        return "wrong values"
    if ": dtype " in r:
        return "wrong dtype"
    if ": shape " in r:
        return "wrong shape"
    if r.startswith("timeout"):
        return "timeout"
    if r.startswith("random:"):
        return "random: wrong properties"
    if r.startswith("sample generation"):
        return "sample generation (torch)"
    m = re.match(r"(\w+Error|\w+Exception|unsupported input|conversion)", r)
    return f"{outcome}: {m.group(1)}" if m else f"{outcome}: other"


class EntryTimeout(BaseException):
    """Raised by the alarm when one entry runs too long (a BaseException so `except Exception`
    inside the op can't swallow it)."""


# -- one sample --------------------------------------------------------------------------------------------

@dataclass
class Context:
    op: object
    ours: object
    theirs: object
    tol: tuple
    grad_tol: tuple
    want_grad: bool
    device: str
    random: bool
    dtype: object = None  # the torch dtype under test
    torch_grad_wrong: bool = False  # OpInfo marks torch's backward as wrong: compare with finite differences


# dtypes where a result that differs from torch's also passes when it is no less accurate than torch's,
# measured against torch's float64 computation on the same inputs (see properties.no_worse)
_REFINABLE = (torch.bfloat16, torch.float16, torch.float32)


def call(fn, sample_args, seed, lib):
    lib.manual_seed(seed)
    inp, args, kwargs = sample_args
    return fn(inp, *args, **kwargs)


def run_sample(entry, ctx, s, index):
    sample = (s.input, s.args, s.kwargs)
    if hasattr(ctx.ours, "missing"):
        return entry.record("unsupported", index, f"missing: {ctx.ours.missing}")
    if ctx.random:
        pristine = clone_tree(sample)
        draws = torch_draws(entry, ctx, pristine)
        if draws is None:
            entry.skipped += 1
            return
        if len(draws) > 1:
            return run_random_sample(entry, ctx, pristine, draws, index)
    conv = Converter(ctx.device, requires_grad=ctx.want_grad)
    try:
        ours_args = conv(sample)
    except Unsupported as e:
        return entry.record("unsupported", index, f"unsupported input: {e}")
    except Exception as e:
        return entry.record("failed", index, f"conversion: {type(e).__name__}: {first_line(e)}")
    got, grad_error = call_ours(ctx, conv, ours_args, sample)
    if isinstance(got, (Missing, Unsupported)):  # no need for torch's result
        return entry.raised(index, got)
    try:
        with torch.enable_grad():
            expected = call(ctx.theirs, sample, 0, torch)
    except Exception:
        entry.skipped += 1
        return
    if isinstance(got, BaseException):
        return entry.raised(index, got)
    reason = properties.compare(got, host(expected), ctx.tol)
    if reason and entry.name in properties.GAUGE_INVARIANT:
        invariant = _try(lambda: properties.compare(rebind(s.output_process_fn_grad)(got),
                                                    host(s.output_process_fn_grad(expected)), ctx.tol))
        reason = reason if isinstance(invariant, Exception) else invariant
    if reason and entry.name in properties.TIE_ORDER:
        reason = _try(properties.ties, entry.name, s, got, expected, ctx.tol)
        reason = f"conformance harness: {type(reason).__name__}: {reason}" if isinstance(reason, Exception) else reason
    if reason and ctx.dtype in _REFINABLE:
        reference = _try(call, ctx.theirs, upcast(sample, ctx.dtype), 0, torch)
        if not isinstance(reference, Exception) and \
                properties.no_worse(got, host(expected), host(reference), ctx.tol) is None:
            reason = None
    if reason:
        return entry.record("failed", index, reason)
    entry.record("passed", index)
    if ctx.want_grad and conv.leaves:
        check_grad(entry, ctx, s, expected, got, conv, grad_error, index)


def torch_draws(entry, ctx, pristine):
    """torch's results on fresh copies of a random op's sample, seeds 0, 1, ...: one result when every
    draw is the same (the sample is deterministic, e.g. dropout with p=0: compare values), several
    when they differ (compare properties); None when torch rejects the sample."""
    draws = [_try(call, ctx.theirs, clone_tree(pristine), 0, torch)]
    if isinstance(draws[0], Exception):
        return None
    if entry.name in properties.UNDEFINED_VALUES:
        return draws * 2  # values undefined: never compared
    for seed in range(1, _DETERMINISM_DRAWS):
        draws.append(_try(call, ctx.theirs, clone_tree(pristine), seed, torch))
        if isinstance(draws[-1], Exception):
            return None
        if not same(draws[0], draws[-1]):
            return draws
    return draws[:1]


def call_ours(ctx, conv, ours_args, sample):
    """(our result or the exception, the exception of a first try with grad-requiring inputs that
    failed where a retry without them worked: the op works, its autograd does not)."""
    try:
        return call(ctx.ours, ours_args, 0, vt), None
    except Exception as e:
        if not conv.leaves or isinstance(e, (Missing, Unsupported)):
            return e, None
        first = e
    plain = Converter(ctx.device, requires_grad=False)
    try:
        got = call(ctx.ours, plain(sample), 0, vt)
    except Exception as e:
        return e, None
    return got, first


def check_grad(entry, ctx, s, expected, got, conv, grad_error, index):
    """Backward on both sides with the same random output gradient; compare the input gradients."""
    process = s.output_process_fn_grad
    theirs_out = properties.tensors_of(process(expected))
    diff = [i for i, t in enumerate(theirs_out) if t.requires_grad]
    if not diff:
        return  # nothing differentiable in torch's result for this sample: no gradient to compare
    if grad_error is not None:
        return entry.raised(index, grad_error, grad=True)
    try:
        ours_out = properties.tensors_of(rebind(process)(got))
    except Exception as e:
        return entry.raised(index, e, grad=True)
    if len(ours_out) != len(theirs_out):
        return entry.record("failed", index, f"{len(ours_out)} outputs != {len(theirs_out)}", grad=True)
    not_tracked = [i for i in diff if not ours_out[i].requires_grad]
    if not_tracked:
        return entry.record("failed", index, f"output {not_tracked[0]} does not require grad", grad=True)
    rng = np.random.default_rng(index)
    seeds = [random_like(theirs_out[i], rng) for i in diff]
    inputs_t = [t for t, _ in conv.leaves]
    inputs_o = [o for _, o in conv.leaves]
    try:
        grads_t = host(torch.autograd.grad([theirs_out[i] for i in diff], inputs_t,
                                           [torch_from_numpy(a).to(theirs_out[i].device) for a, i in zip(seeds, diff)],
                                           allow_unused=True))

    except Exception:
        return  # torch can't differentiate this sample either
    try:
        grads_o = vt.autograd.grad([ours_out[i] for i in diff], inputs_o, [to_ours(a, ctx.device) for a in seeds],
                                   allow_unused=True)
    except Exception as e:
        return entry.raised(index, e, grad=True)
    inputs_h = host(inputs_t)
    reason = compare_grads(grads_o, grads_t, inputs_h, ctx.grad_tol)
    if reason and ctx.torch_grad_wrong:  # torch's backward is a known failure: finite differences decide
        fd = _try(finite_difference_grads, ctx, s, inputs_t, diff, seeds)
        if not isinstance(fd, Exception):
            reason = compare_grads(grads_o, [g.to(t.dtype) for g, t in zip(fd, inputs_h)], inputs_h, ctx.grad_tol)
            reason = reason and f"{reason} (against finite differences: torch's own gradient is an OpInfo expectedFailure)"
    if reason and entry.name in properties.TIE_ORDER and entry.name != "argsort" and diff == [0] and \
            len(inputs_t) == 1 and inputs_t[0] is s.input:
        reason = _try(properties.tie_grad, entry.name, s, got, seeds[0], grads_o[0], ctx.grad_tol)
        reason = f"conformance harness: {type(reason).__name__}: {reason}" if isinstance(reason, Exception) else reason
    if reason and ctx.dtype in _REFINABLE:
        reference = _try(upcast_grads, ctx, s, inputs_t, diff, seeds)
        if not isinstance(reference, Exception) and no_worse_grads(grads_o, grads_t, reference, inputs_h,
                                                                   ctx.grad_tol) is None:
            reason = None
    entry.record("failed" if reason else "passed", index, reason, grad=True)


def compare_grads(grads_o, grads_t, inputs_t, tol):
    for k, (gt, go) in enumerate(zip(grads_t, grads_o)):
        reason = compare_grad(go, gt, inputs_t[k], tol, f"grad of input {k}")
        if reason:
            return reason
    return None


def no_worse_grads(grads_o, grads_t, reference, inputs_t, tol):
    for k, (go, gt, gr, inp) in enumerate(zip(grads_o, grads_t, reference, inputs_t)):
        if go is None and gt is None:
            continue
        zeros = torch.zeros_like(inp)
        go = go if go is not None else vt.zeros(tuple(inp.shape), dtype=vt_dtype(inp.dtype))
        reason = properties.no_worse(go, zeros if gt is None else gt, zeros.double() if gr is None else gr, tol,
                                     f"grad of input {k}")
        if reason:
            return reason
    return None


def upcast_grads(ctx, s, inputs_t, diff, seeds):
    """torch's input gradients computed in float64 from the same inputs and output gradients (the
    reference for properties.no_worse)."""
    leaves = {id(t): t.detach().double().requires_grad_(True) for t in inputs_t}
    sample = upcast((s.input, s.args, s.kwargs), ctx.dtype, leaves)
    with torch.enable_grad():
        out = properties.tensors_of(s.output_process_fn_grad(call(ctx.theirs, sample, 0, torch)))
    return host(torch.autograd.grad([out[i] for i in diff], [leaves[id(t)] for t in inputs_t],
                                    [torch_from_numpy(a).double().to(out[i].device) for a, i in zip(seeds, diff)],
                                    allow_unused=True))


def finite_difference_grads(ctx, s, inputs_t, diff, seeds, eps=1e-6):
    """The input gradients d<outputs, seeds>/d input by central differences of torch's forward in
    float64 (for entries whose torch backward OpInfo marks as wrong)."""
    leaves = {id(t): t.detach().cpu().double().clone() for t in inputs_t}
    sample = upcast((s.input, s.args, s.kwargs), ctx.dtype, leaves)
    weights = [torch_from_numpy(a).double() for a in seeds]

    def f():
        out = properties.tensors_of(s.output_process_fn_grad(call(ctx.theirs, sample, 0, torch)))
        return builtin_sum(float((out[i].detach().cpu().double() * w).sum()) for i, w in zip(diff, weights))
    grads = []
    for t in inputs_t:
        x = leaves[id(t)]
        flat, g = x.view(-1), torch.zeros(x.numel(), dtype=torch.float64)
        for j in range(x.numel()):
            v = float(flat[j])
            flat[j] = v + eps
            hi = f()
            flat[j] = v - eps
            lo = f()
            flat[j] = v
            g[j] = (hi - lo) / (2 * eps)
        grads.append(g.view(x.shape))
    return grads


builtin_sum = sum


def upcast(x, dtype, leaves=None):
    """A sample with its `dtype` tensors in float64 (grad-requiring ones replaced by `leaves[id]`)."""
    if isinstance(x, torch.Tensor):
        if leaves is not None and id(x) in leaves:
            return leaves[id(x)]
        return x.detach().double() if x.dtype == dtype else x.detach()
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(upcast(v, dtype, leaves) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(upcast(v, dtype, leaves) for v in x)
    if isinstance(x, dict):
        return {k: upcast(v, dtype, leaves) for k, v in x.items()}
    return x


def compare_grad(go, gt, inp, tol, path):
    """A missing gradient (None) equals zeros."""
    if gt is None and go is None:
        return None
    if gt is None:
        gt = torch.zeros_like(inp)
    if go is None:
        return None if not gt.any() else f"{path}: None, torch's is non-zero"
    return properties.compare(go, gt, tol, path)


def random_like(t, rng):
    """A standard-normal array shaped and typed like torch tensor t (the output gradient)."""
    a = rng.standard_normal(tuple(t.shape))
    if t.is_complex():
        a = a + 1j * rng.standard_normal(tuple(t.shape))
    return np.asarray(a).astype(vt_dtype(t.dtype).np)


def to_ours(a, device):
    x = vt.from_numpy(np.array(a, order="C", copy=True))
    return x if device == "cpu" else x.to(device)


def run_random_sample(entry, ctx, pristine, expected_draws, index):
    """Draw K times from both libraries (fresh inputs each time) and check properties."""
    first = properties.tensors_of(expected_draws[0])
    numel = first[0].numel() if first else 0
    k = 1 if entry.name in properties.UNDEFINED_VALUES or numel == 0 else \
        max(len(expected_draws), min(30, math.ceil(_RANDOM_DRAWS / numel)))
    got_draws = []
    for seed in range(k):  # ours first: when we can't run it, torch's extra draws are wasted
        try:
            ours_args = Converter(ctx.device, requires_grad=False)(pristine)
        except Unsupported as e:
            return entry.record("unsupported", index, f"unsupported input: {e}")
        try:
            got_draws.append(call(ctx.ours, ours_args, seed, vt))
        except Exception as e:
            return entry.raised(index, e)
    for seed in range(len(expected_draws), k):
        expected_draws.append(call(ctx.theirs, clone_tree(pristine), seed, torch))
    view = types.SimpleNamespace(input=host(pristine[0]), args=host(pristine[1]), kwargs=host(pristine[2]))
    reason = properties.check_random(entry.name, view, got_draws, host(expected_draws[:k]))
    entry.record("failed" if reason else "passed", index, reason and f"random: {reason}")


def torch_device(device):
    """Where torch, the oracle, runs: on the GPU when ours does and torch has CUDA (else on the CPU)."""
    return "cuda" if device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def host(x):
    """torch values moved to the CPU (comparisons read them through NumPy); grad-free."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu() if x.is_cuda else x
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(host(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(host(v) for v in x)
    if isinstance(x, dict):
        return {k: host(v) for k, v in x.items()}
    return x


def full_float32(tdev):
    """torch's CUDA oracle without TF32 (its cuDNN convolutions default to it; torch's test framework
    freezes the cuDNN flags, so they change through its context manager)."""
    if tdev != "cuda":
        return contextlib.nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)


def clear_device_errors(entry, index, device):
    """Surface a device-side error of this entry (raised at a synchronisation) as its failure, so the
    next entry starts clean."""
    if device == "cpu":
        return
    try:
        vt.cuda.synchronize()
    except Exception as e:
        entry.record("failed", index, f"device error: {type(e).__name__}: {first_line(e)}")


def clone_tree(x):
    """A copy of a sample's values with fresh, grad-free tensors (random ops may write their input)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(clone_tree(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(clone_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: clone_tree(v) for k, v in x.items()}
    return x


def same(a, b):
    """Bit-for-bit equal results (NaN equals NaN): is torch's op deterministic on this sample?"""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        try:
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
            return True
        except AssertionError:
            return False
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def _try(fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        return e


# -- one entry ---------------------------------------------------------------------------------------------

def run_entry(op, dtype, device="cpu", grad=True, max_samples=None, timeout=None):
    """An EntryResult for OpInfo entry `op` in torch dtype `dtype`."""
    entry = EntryResult(op.name, op.variant_test_name, str(dtype).replace("torch.", ""))
    t0 = time.perf_counter()
    ours, entry.target = resolve(op)
    entry.random = properties.is_random(op)
    tol = properties.tolerance(op, dtype)
    tdev = torch_device(device)
    want_grad = bool(grad and op.supports_autograd and dtype in op.supported_backward_dtypes(tdev)
                     and (dtype.is_floating_point or dtype.is_complex))
    # gradients accumulate in a different order than torch's: allow 10x the forward tolerance
    grad_tol = (tol[0] * 10, tol[1] * 10)
    ctx = Context(op, ours, rebind(op.op, ours=False), tol, grad_tol, want_grad, device, entry.random, dtype,
                  properties.torch_grad_known_wrong(op, dtype))
    index = 0
    with alarm(timeout):
        try:
            for index, s in enumerate(op.sample_inputs(tdev, dtype, requires_grad=want_grad)):
                if max_samples is not None and index >= max_samples:
                    break
                try:
                    run_sample(entry, ctx, s, index)
                except Exception as e:  # a bug of this harness: shown as such, and the run goes on
                    entry.record("failed", index, f"conformance harness: {type(e).__name__}: {first_line(e)}")
        except EntryTimeout:
            entry.record("failed", index, f"timeout: the entry ran past {timeout} s")
        except Exception as e:  # sample generation itself failed (torch's side)
            entry.record("failed", index, f"sample generation: {type(e).__name__}: {first_line(e)}")
        clear_device_errors(entry, index, device)
    entry.seconds = time.perf_counter() - t0
    return entry


class alarm:
    """Raise EntryTimeout in the main thread after `seconds` (no-op without SIGALRM or off the main thread)."""

    def __init__(self, seconds):
        self.on = bool(seconds) and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
        self.seconds = seconds

    def __enter__(self):
        if self.on:
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    @staticmethod
    def _fire(signum, frame):
        raise EntryTimeout()

    def __exit__(self, *exc):
        if self.on:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


# -- the whole run -----------------------------------------------------------------------------------------

def load_op_db():
    """torch's OpInfo list. Its module imports torch's test framework, which imports `expecttest`;
    OpInfo itself never uses it, so where that package is absent a stand-in lets the list load."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        import sys
        import unittest
        stand_in = types.ModuleType("expecttest")
        stand_in.TestCase = unittest.TestCase
        sys.modules["expecttest"] = stand_in
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_methods_invocations import op_db
    return op_db


def entry_name(op):
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def select(op_db, op_filter=None, names=None):
    """Entries whose name (or name.variant) fully matches the regex, and whose name.variant is in `names`."""
    pattern = re.compile(op_filter) if op_filter else None
    chosen = []
    for op in op_db:
        if names is not None and entry_name(op) not in names:
            continue
        if pattern and not (pattern.fullmatch(op.name) or pattern.fullmatch(entry_name(op))):
            continue
        chosen.append(op)
    return chosen


def run(dtypes=("float32",), device="cpu", op_filter=None, names=None, grad=True, max_samples=None,
        timeout=600.0, progress=None, op_db=None):
    """EntryResults for every selected entry that supports each dtype on CPU (in torch)."""
    op_db = load_op_db() if op_db is None else op_db
    chosen = select(op_db, op_filter, names)
    tdev = torch_device(device)
    results = []
    with warnings.catch_warnings(), np.errstate(all="ignore"), full_float32(tdev):
        warnings.simplefilter("ignore")
        for name in dtypes:
            dtype = getattr(torch, name)
            for op in chosen:
                if not op.supports_dtype(dtype, tdev):
                    continue
                entry = run_entry(op, dtype, device, grad, max_samples, timeout)
                results.append(entry)
                if progress:
                    progress(entry)
    return results
