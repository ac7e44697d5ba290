"""The conformance command: conversion keeps layout, the runner counts pass/fail/unsupported (forward
and gradient) honestly, random ops are checked by properties, and the report/JSON have their shape."""
import copy
import json
import re

import pytest
import torch

import vibetensor.torch as vt
from vibetensor import cli
from vibetensor_conformance import convert, main, report, runner


@pytest.fixture(scope="module")
def op_db():
    return runner.load_op_db()


def entry(op_db, name, variant=""):
    return next(op for op in op_db if op.name == name and op.variant_test_name == variant)


def run_one(op, dtype=torch.float32, **kw):
    kw.setdefault("max_samples", 6)
    return runner.run_entry(op, dtype, **kw)


def renamed(op, name):
    """A copy of an OpInfo entry that resolves to vibetensor.torch.<name> (monkeypatched in by the test)."""
    fake = copy.copy(op)
    fake.name = name
    return fake


# -- conversion ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda b: b,                         # contiguous
    lambda b: b.t(),                     # transposed
    lambda b: b[1:, ::2],                # offset and strided
    lambda b: b[0].expand(3, 6),         # stride 0
])
def test_conversion_keeps_values_and_layout(make):
    t = make(torch.arange(24.0).reshape(4, 6))
    ours = convert.Converter()(t)
    assert (tuple(ours.shape), ours.stride(), ours.storage_offset()) == (tuple(t.shape), t.stride(), t.storage_offset())
    assert ours.dtype is vt.float32
    assert (convert.vt_to_numpy(ours) == t.numpy()).all()


def test_conversion_materialises_conj_views():
    t = torch.tensor([[1 + 2j, 3 - 1j], [0.5j, 2]], dtype=torch.complex64).t().conj()  # a lazy conj bit
    ours = convert.Converter()(t)
    assert ours.dtype is vt.complex64 and (convert.vt_to_numpy(ours) == t.resolve_conj().numpy()).all()


def test_conversion_shares_storage_and_leaves():
    base = torch.zeros(4, requires_grad=False)
    a, b = base[:2], base[1:]
    leaf = torch.ones(3, requires_grad=True)
    conv = convert.Converter()
    ours = conv({"x": [a, b], "w": leaf, "w again": leaf, "dtype": torch.float64, "size": torch.Size([2, 3]),
                 "memory_format": torch.contiguous_format})
    ours["x"][0][1] = 5.0  # one storage: the write shows through the other view, as in torch
    assert ours["x"][1][0].item() == 5.0
    assert ours["w"] is ours["w again"] and ours["w"].requires_grad and ours["w"].is_leaf
    assert conv.leaves == [(leaf, ours["w"])]
    assert ours["dtype"] is vt.float64 and tuple(ours["size"]) == (2, 3)
    assert ours["memory_format"] is vt.contiguous_format and conv(torch.channels_last) is vt.channels_last


def test_missing_names_are_unsupported_with_the_name():
    assert convert.classify(convert.Missing("torch.special.foo")) == ("unsupported", "missing: torch.special.foo")
    assert convert.classify(NotImplementedError("no kernel\nmore"))[0] == "unsupported"
    assert convert.classify(RuntimeError("boom\ndetail")) == ("failed", "RuntimeError: boom")


# -- the runner ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["add", "abs", "nn.functional.relu", "__radd__"])
def test_known_good_ops_pass_forward_and_grad(op_db, name):
    r = run_one(entry(op_db, name))
    assert r.samples > 0 and r.fully_passing, r.as_dict()
    assert r.grad_passed > 0


def test_broken_conversion_is_reported_as_failed(op_db, monkeypatch):
    good = convert.to_numpy
    monkeypatch.setattr(convert, "to_numpy", lambda t: good(t) + 1)  # our inputs are off by one
    r = run_one(entry(op_db, "abs"))
    assert r.failed == r.samples > 0 and not r.fully_passing
    assert "values differ" in r.first_failure
    assert r.reasons["wrong values"] == r.failed


def test_missing_op_and_not_implemented_are_unsupported(op_db, monkeypatch):
    r = run_one(renamed(entry(op_db, "abs"), "no_such_op"))
    assert r.unsupported == r.samples > 0 and r.failed == 0
    assert "missing: torch.no_such_op" in r.first_unsupported

    def not_implemented(x):
        raise NotImplementedError("abs_ni: not yet")
    monkeypatch.setattr(vt, "abs_ni", not_implemented, raising=False)
    r = run_one(renamed(entry(op_db, "abs"), "abs_ni"))
    assert r.unsupported == r.samples > 0 and "NotImplementedError: abs_ni: not yet" in r.first_unsupported


def test_our_exception_is_a_failure(op_db, monkeypatch):
    def broken(x):
        raise RuntimeError("abs_rt: broken kernel")
    monkeypatch.setattr(vt, "abs_rt", broken, raising=False)
    r = run_one(renamed(entry(op_db, "abs"), "abs_rt"))
    assert r.failed == r.samples > 0 and "RuntimeError: abs_rt: broken kernel" in r.first_failure


def test_wrong_gradient_is_a_grad_failure(op_db, monkeypatch):
    # right values, zero gradient: forward passes, the gradient column fails
    monkeypatch.setattr(vt, "abs_nograd", lambda x: x.detach().abs() + (x - x.detach()) * 0, raising=False)
    r = run_one(renamed(entry(op_db, "abs"), "abs_nograd"))
    assert r.forward_ok and r.grad_failed > 0 and not r.fully_passing
    assert "grad of input 0" in r.first_grad_failure
    r = run_one(renamed(entry(op_db, "abs"), "abs_nograd"), grad=False)
    assert r.fully_passing and r.grad_passed == r.grad_failed == 0


def test_known_wrong_torch_gradient_is_checked_by_finite_differences(op_db, monkeypatch):
    """as_strided_scatter: OpInfo marks torch's backward an expectedFailure (it leaks gradient into the
    overwritten elements); ours passes against finite differences, and one that lets all of input's
    gradient through (ignoring the overwrite) fails there."""
    op = entry(op_db, "as_strided_scatter")
    assert runner.properties.torch_grad_known_wrong(op, torch.float32)
    assert not runner.properties.torch_grad_known_wrong(entry(op_db, "abs"), torch.float32)
    r = run_one(op)
    assert r.fully_passing and r.grad_passed > 0, r.as_dict()

    def leaky(input, src, size, stride, storage_offset=None):
        out = vt.as_strided_scatter(input.detach(), src, size, stride, storage_offset)
        return out + (input - input.detach())
    monkeypatch.setattr(vt, "as_strided_scatter_leaky", leaky, raising=False)
    r = run_one(renamed(op, "as_strided_scatter_leaky"))
    assert r.forward_ok and r.grad_failed > 0 and "finite differences" in r.first_grad_failure


def test_integer_results_are_compared_exactly():
    from vibetensor_conformance.properties import compare
    tol = (1.6e-2, 1e-5)  # bfloat16's: would let 100 pass for 101
    assert compare(vt.tensor([101]), torch.tensor([100]), tol) is not None
    assert compare(vt.tensor([2 ** 64 - 1], dtype=vt.uint64), torch.tensor([2 ** 64 - 2], dtype=torch.uint64), tol)
    assert compare(vt.tensor([1.01]), torch.tensor([1.0]), tol) is None


def test_random_ops_are_checked_by_properties(op_db, monkeypatch):
    op = entry(op_db, "bernoulli")
    assert runner.run_entry(op, torch.float32, grad=False).forward_ok
    monkeypatch.setattr(vt, "bernoulli", lambda p, *a, **k: p * 0 + 0.5)  # right shape, impossible values
    r = runner.run_entry(op, torch.float32, grad=False)
    assert r.failed > 0 and "random: values outside" in r.first_failure


@pytest.mark.parametrize("draws, ok", [
    (lambda rng: rng.normal(0, 1, 4000), True),
    (lambda rng: rng.normal(0.5, 1, 4000), False),   # shifted mean
    (lambda rng: rng.normal(0, 3, 4000), False),     # wrong spread
])
def test_moment_check(draws, ok):
    import numpy as np
    from vibetensor_conformance.properties import compare_moments
    rng = np.random.default_rng(0)
    assert (compare_moments(draws(rng), rng.normal(0, 1, 4000)) is None) == ok


# -- the command and its report ------------------------------------------------------------------------------

def test_command_prints_table_totals_and_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert main(["--op", "abs|nn\\.functional\\.relu|no_match", "--max-samples", "3", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^op\s+dtype\s+samples\s+pass\s+fail\s+unsup\s+grad ok", out, re.M)
    assert re.search(r"^abs\s+float32\s+1\s+1\s+0\s+0", out, re.M)
    assert re.search(r"^2 ops fully passing of 2 \(float32, cpu\)", out, re.M)
    data = json.loads(path.read_text())
    assert data["totals"]["float32"]["entries"] == 2 and data["totals"]["float32"]["fully_passing"] == 2
    names = {e["name"] for e in data["entries"]}
    assert names == {"abs", "nn.functional.relu"}
    assert {"passed", "failed", "unsupported", "grad_passed", "grad_failed", "first_failure"} <= set(data["entries"][0])


def test_backendbench_list_and_summary(op_db):
    rows = report.backendbench_ops()
    assert len(rows) == 297 and ("abs.default", ["abs"]) in rows
    results = [run_one(entry(op_db, "abs")), run_one(renamed(entry(op_db, "abs"), "no_such_op"))]
    results[1].name = "acos"  # stands for an entry that fails
    s = report.backendbench_summary(results)["float32"]
    assert s["overloads"]["abs.default"] == "pass" and s["overloads"]["acos.default"] == "fail"
    assert (s["passing"], s["failing"], s["untested"], s["of"]) == (1, 1, 295, 297)


def test_cli_forwards_to_the_command(capsys):
    assert cli.main(["conformance", "--op", "abs", "--no-grad", "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 ops fully passing of 1 (float32, cpu)" in out and "op  " not in out
    with pytest.raises(SystemExit):
        cli.main(["ops", "--op", "abs"])  # other commands still reject unknown options


@pytest.mark.parametrize("outcome, reason, cat", [
    ("unsupported", "missing: torch.special.erfcx (no torch.special)", "missing: torch.special.*"),
    ("unsupported", "missing: torch.cdist", "missing: torch.cdist"),
    ("failed", "result: values differ (Mismatched elements: 1 / 4)", "wrong values"),
    ("failed", "result[1]: dtype torch.int32 != torch.int64", "wrong dtype"),
    ("failed", "RuntimeError: boom", "failed: RuntimeError"),
    ("failed", "random: mean 3 vs torch's 0", "random: wrong properties"),
])
def test_failure_categories(outcome, reason, cat):
    assert runner.category(outcome, reason) == cat


@pytest.mark.parametrize("ours, theirs, exact, ok", [
    ([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], True),
    ([1.0, 2.0], [1.0, 2.5], [1.0, 2.0], True),           # torch is off, we are exact
    ([1.0, 2.2], [1.0, 2.5], [1.0, 2.0], True),           # both off, we are closer
    ([1.0, 2.9], [1.0, 2.5], [1.0, 2.0], False),          # we are farther from the exact result
    ([1.0, 2.0], [1.0, float("nan")], [1.0, 2.0], True),  # torch overflowed to NaN, we did not
    ([1.0, float("nan")], [1.0, 2.0], [1.0, 2.0], False),
])
def test_no_worse_than_torch(ours, theirs, exact, ok):
    from vibetensor_conformance.properties import no_worse
    reason = no_worse(vt.tensor(ours), torch.tensor(theirs), torch.tensor(exact, dtype=torch.float64), (1.3e-6, 1e-5))
    assert (reason is None) == ok, reason


def _sort_sample(x, **kwargs):
    import types
    return types.SimpleNamespace(input=x, args=(), kwargs=kwargs)


@pytest.mark.parametrize("indices,ok", [
    ([1, 0, 2, 3], True),     # the tie (two 1.0) in the other order: a valid unstable sort
    ([0, 1, 2, 3], True),     # torch's own order
    ([0, 0, 2, 3], False),    # an element picked twice
    ([2, 0, 1, 3], False),    # indices that do not point at the sorted values
])
def test_tie_order_of_unstable_sort(indices, ok):
    x = torch.tensor([1.0, 1.0, 2.0, 3.0])
    expected = torch.sort(x)
    got = (vt.tensor([1.0, 1.0, 2.0, 3.0]), vt.tensor(indices))
    reason = runner.properties.ties("sort", _sort_sample(x), got, expected, (0.0, 0.0))
    assert (reason is None) == ok
    stable = runner.properties.ties("sort", _sort_sample(x, stable=True), got, expected, (0.0, 0.0))
    assert (stable is None) == (indices == [0, 1, 2, 3])  # stable=True: only torch's exact order


def test_tie_grad_follows_our_indices():
    x = torch.tensor([1.0, 1.0, 2.0])
    seed = torch.tensor([10.0, 20.0, 30.0]).numpy()
    got = (vt.tensor([1.0, 1.0, 2.0]), vt.tensor([1, 0, 2]))
    grad = vt.tensor([20.0, 10.0, 30.0])  # the output gradient lands where our indices point
    assert runner.properties.tie_grad("sort", _sort_sample(x), got, seed, grad, (0.0, 0.0)) is None
    assert runner.properties.tie_grad("sort", _sort_sample(x), got, seed, vt.tensor([10.0, 20.0, 30.0]),
                                      (0.0, 0.0)) is not None
