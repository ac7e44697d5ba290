"""Indexing, scatter/gather, embedding, joining and range/shape ops on CUDA against torch's CUDA
results (marker `cuda`), forward and backward; device-side index errors raised at the next sync."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import check, make_pair

pytestmark = pytest.mark.cuda
F = {torch: torch.nn.functional, vt: vt.nn.functional}


def _cuda(pair):
    return pair[0].cuda(), pair[1].cuda()


def P(shape, dtype="float32", layout="contiguous", seed=0, **kw):
    return _cuda(make_pair(shape, dtype, layout, seed, **kw))


def I(values, dtype=np.int64):
    a = np.array(values, dtype=dtype)
    return torch.from_numpy(a.copy()).cuda(), vt.from_numpy(a.copy()).cuda()


def M(values):
    return I(values, bool)


IDX = [[0, 2, 1, 3, 3], [1, 1, 0, 2, 0]]  # (2, 5) into a (4, 5) tensor along dim 0, repeats included


def _put(lib, x, key, v, acc=False):
    x = x.clone()
    x.index_put_(key, v, accumulate=acc)
    return x


def _setitem(x, key, v):
    x = x.clone()
    x[key] = v
    return x


# (name, fn(lib, *tensors), inputs builder(dtype, layout)) — one line per case
CASES = [
    ("gather0", lambda lib, x, i: x.gather(0, i), lambda d, lay: (P((4, 5), d, lay, 1), I(IDX))),
    ("gather1", lambda lib, x, i: x.gather(1, i), lambda d, lay: (P((4, 5), d, lay, 1), I([[4, 0], [1, 1], [2, 3]]))),
    ("gather_int32_index", lambda lib, x, i: x.gather(0, i), lambda d, lay: (P((4, 5), d, lay, 1), I(IDX, np.int32))),
    ("gather_empty", lambda lib, x, i: x.gather(1, i), lambda d, lay: (P((4, 5), d, lay, 1), I(np.zeros((4, 0))))),
    ("scatter_src", lambda lib, x, i, s: x.scatter(0, i, s),
     lambda d, lay: (P((4, 5), d, lay, 1), I([[0, 1, 2, 3, 0], [1, 2, 3, 0, 1]]), P((2, 5), d, seed=2))),
    ("scatter_value", lambda lib, x, i: x.scatter(1, i, 2), lambda d, lay: (P((4, 5), d, lay, 1), I([[0, 4], [3, 2]]))),
    ("scatter_add", lambda lib, x, i, s: x.scatter_add(0, i, s), lambda d, lay: (P((4, 5), d, lay, 1), I(IDX), P((2, 5), d, seed=2))),
    ("scatter_add_", lambda lib, x, i, s: x.clone().scatter_add_(0, i, s), lambda d, lay: (P((4, 5), d, lay, 1), I(IDX), P((3, 5), d, seed=2))),
    ("index_select0", lambda lib, x, i: x.index_select(0, i), lambda d, lay: (P((4, 5), d, lay, 1), I([3, 0, 3]))),
    ("index_select_last", lambda lib, x, i: x.index_select(-1, i), lambda d, lay: (P((3, 4, 5), d, lay, 1), I([4, 0, 4, 1]))),
    ("index_select_empty", lambda lib, x, i: x.index_select(1, i), lambda d, lay: (P((4, 5), d, lay, 1), I([]))),
    ("index_add", lambda lib, x, i, s: x.index_add(1, i, s), lambda d, lay: (P((4, 5), d, lay, 1), I([2, 0, 2, 4]), P((4, 4), d, seed=3))),
    ("index_add_alpha", lambda lib, x, i, s: x.index_add(0, i, s, alpha=2), lambda d, lay: (P((4, 5), d, lay, 1), I([1, 1]), P((2, 5), d, seed=3))),
    ("index_copy", lambda lib, x, i, s: x.index_copy(1, i, s), lambda d, lay: (P((4, 5), d, lay, 1), I([4, 0, 2]), P((4, 3), d, seed=3))),
    ("index_fill_neg", lambda lib, x, i: x.index_fill(1, i, -2), lambda d, lay: (P((4, 5), d, lay, 1), I([-1, 0, 2]))),
    ("masked_fill", lambda lib, x, m: x.masked_fill(m, 3), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("masked_fill_bcast", lambda lib, x, m: x.masked_fill(m, -1), lambda d, lay: (P((4, 5), d, lay, 1), M([1, 0, 0, 1, 1]))),
    ("masked_fill_tensor", lambda lib, x, m, v: x.masked_fill(m, v), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4), P((), d, seed=5))),
    ("masked_fill_", lambda lib, x, m: x.clone().masked_fill_(m, 1), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("masked_select", lambda lib, x, m: x.masked_select(m), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("masked_select_bcast", lambda lib, x, m: x.masked_select(m), lambda d, lay: (P((4, 5), d, lay, 1), M([1, 0, 0, 1, 1]))),
    ("masked_scatter", lambda lib, x, m, s: x.masked_scatter(m, s), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4), P((25,), d, seed=6))),
    ("nonzero", lambda lib, x: x.nonzero(), lambda d, lay: (P((4, 5, 3), d, lay, 1, low=-1, high=1),)),
    ("nonzero_big", lambda lib, x: lib.nonzero(x), lambda d, lay: (P((5000,), d, lay, 1, low=-1, high=1),)),
    ("take", lambda lib, x, i: x.take(i), lambda d, lay: (P((4, 5), d, lay, 1), I([[0, -1], [19, 3]]))),
    ("put", lambda lib, x, i, s: x.put(i, s), lambda d, lay: (P((4, 5), d, lay, 1), I([0, -1, 7]), P((3,), d, seed=3))),
    ("put_accumulate", lambda lib, x, i, s: x.put(i, s, accumulate=True), lambda d, lay: (P((4, 5), d, lay, 1), I([0, -1, 0, 0]), P((4,), d, seed=3))),
    ("index_int", lambda lib, x, i: x[i], lambda d, lay: (P((3, 4, 5), d, lay, 1), I([2, 0, -1]))),
    ("index_mid", lambda lib, x, i: x[:, i], lambda d, lay: (P((3, 4, 5), d, lay, 1), I([[3, 0], [1, -2]]))),
    ("index_two", lambda lib, x, i, j: x[:, i, j], lambda d, lay: (P((3, 4, 5), d, lay, 1), I([3, 0]), I([[4], [1]]))),
    ("index_apart", lambda lib, x, i, j: x[i, :, j], lambda d, lay: (P((3, 4, 5), d, lay, 1), I([2, 0]), I([4, 1]))),
    ("index_mask", lambda lib, x, m: x[m], lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("index_mask_mid", lambda lib, x, m: x[:, m], lambda d, lay: (P((3, 4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("index_empty", lambda lib, x, i: x[i], lambda d, lay: (P((4, 5), d, lay, 1), I([]))),
    ("index_put", lambda lib, x, i, v: _put(lib, x, (i,), v), lambda d, lay: (P((5, 3), d, lay, 1), I([4, 0, -1]), P((3, 3), d, seed=2))),
    ("index_put_acc_dups", lambda lib, x, i, v: _put(lib, x, (i,), v, True), lambda d, lay: (P((5, 3), d, lay, 1), I([4, 0, 4, 4]), P((4, 3), d, seed=2))),
    ("index_put_acc_bcast", lambda lib, x, i, v: _put(lib, x, (i,), v, True), lambda d, lay: (P((5, 3), d, lay, 1), I([1, 1]), P((3,), d, seed=2))),
    ("setitem_mask_scalar", lambda lib, x, m: _setitem(x, m, 5), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), "bool", seed=4))),
    ("setitem_two", lambda lib, x, i, j, v: _setitem(x, (i, j), v), lambda d, lay: (P((4, 5), d, lay, 1), I([0, 3]), I([4, 4]), P((2,), d, seed=7))),
    ("cat", lambda lib, a, b: lib.cat([a, b, a], 1), lambda d, lay: (P((2, 4, 5), d, lay, 1), P((2, 3, 5), d, lay, 2))),
    ("cat_last_with_empty", lambda lib, a, b: lib.cat([b, a[..., :0], a, b], -1),
     lambda d, lay: (P((2, 3, 4), d, lay, 1), P((2, 3, 7), d, lay, 2))),
    ("cat_dim0_mixed", lambda lib, a, b: lib.cat([a, b], 0), lambda d, lay: (P((2, 5), d, lay, 1), P((3, 5), "float32", seed=2))),
    # contiguous inputs by the part kernel, a transposed one by the strided copy, in one result
    ("cat_mixed_layouts", lambda lib, a, b: lib.cat([a, b.transpose(1, 2), a], 1),
     lambda d, lay: (P((2, 4, 5), d, "contiguous", 1), P((2, 5, 3), d, lay, 2))),
    ("stack", lambda lib, a, b: lib.stack([a, b], 1), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), d, lay, 2))),
    ("stack_last", lambda lib, a, b: lib.stack([a, b], -1), lambda d, lay: (P((4, 5), d, lay, 1), P((4, 5), d, lay, 2))),
    ("flip", lambda lib, x: x.flip(0, 2), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("roll", lambda lib, x: x.roll((1, -2), (0, 2)), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("roll_flat", lambda lib, x: x.roll(3), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("repeat", lambda lib, x: x.repeat(2, 1, 3, 2), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("tril", lambda lib, x: x.tril(1), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("triu", lambda lib, x: x.triu(-1), lambda d, lay: (P((2, 4, 5), d, lay, 1),)),
    ("triu_", lambda lib, x: x.clone().triu_(), lambda d, lay: (P((4, 5), d, lay, 1),)),
    ("diag_embed", lambda lib, x: lib.diag_embed(x, 1), lambda d, lay: (P((2, 4), d, lay, 1),)),
    ("diag", lambda lib, x: lib.diag(x), lambda d, lay: (P((4, 5), d, lay, 1),)),
    ("fill_", lambda lib, x: x.clone().fill_(2), lambda d, lay: (P((4, 5), d, lay, 1),)),
    ("zero_strided", lambda lib, x: x.clone()[:, ::2].zero_(), lambda d, lay: (P((4, 5), d, lay, 1),)),
]
DTYPES = ["float32", "bfloat16", "int64"]


@pytest.mark.parametrize("name,fn,build", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward(name, fn, build, dtype):
    for layout in ("contiguous", "transposed"):
        check(fn, *build(dtype, layout))


REDUCE_CASES = [(r, inc) for r in ("sum", "mean", "amax", "amin") for inc in (True, False)]


@pytest.mark.parametrize("reduce,include_self", REDUCE_CASES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64"])
def test_scatter_reduce(reduce, include_self, dtype):
    if reduce == "mean" and dtype == "int64":
        pytest.skip("integer mean (floor division) is not on CUDA yet: raises NotImplementedError")
    check(lambda lib, x, i, s: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
          P((4, 5), dtype, "transposed", 1), I(IDX), P((2, 5), dtype, seed=2), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int64"])
def test_scatter_reduce_prod(include_self, dtype):  # compare-and-swap products (no atomic multiply)
    check(lambda lib, x, i, s: x.scatter_reduce(0, i, s, "prod", include_self=include_self),
          P((4, 5), dtype, "transposed", 1, low=-2, high=2), I(IDX), P((2, 5), dtype, seed=2, low=-2, high=2),
          rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_embedding(dtype):
    w, i = P((10, 6), dtype, seed=1), I([[1, 9, 1], [0, 1, 3]])
    check(lambda lib, w, i: F[lib].embedding(i, w), w, i)
    check(lambda lib, w, i: F[lib].embedding(i, w, padding_idx=1), w, i)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("padding_idx", [None, 1])
@pytest.mark.parametrize("scale", [False, True])
def test_embedding_backward(dtype, padding_idx, scale):
    w, i = P((10, 6), dtype, seed=1), I([[1, 9, 1], [0, 1, 3]])
    g = P((2, 3, 6), dtype, seed=2)

    def fn(lib, w, i, g):
        w = w.detach().clone().requires_grad_(True)
        F[lib].embedding(i, w, padding_idx=padding_idx, scale_grad_by_freq=scale).backward(g)
        return w.grad
    check(fn, w, i, g, rtol=2e-2, atol=2e-2)


def _grad(op):
    """fn(lib, x, *rest) -> d/dx of sum(op(x, ...)^2): a gradient that depends on the values."""
    def fn(lib, x, *rest):
        x = x.detach().clone().requires_grad_(True)
        y = op(lib, x, *rest)
        (y * y).sum().backward()
        return x.grad
    return fn


GRAD_CASES = [
    ("gather", lambda lib, x, i: x.gather(0, i), lambda: (P((4, 5), seed=1), I(IDX))),
    ("index_select", lambda lib, x, i: x.index_select(1, i), lambda: (P((4, 5), "float32", "transposed", 1), I([4, 0, 4]))),
    ("scatter_add_src", lambda lib, s, x, i: x.scatter_add(0, i, s), lambda: (P((2, 5), seed=2), P((4, 5), seed=1), I(IDX))),
    ("scatter_add_self", lambda lib, x, i, s: x.scatter_add(0, i, s), lambda: (P((4, 5), seed=1), I(IDX), P((2, 5), seed=2))),
    ("index_add_source", lambda lib, s, x, i: x.index_add(1, i, s, alpha=3), lambda: (P((4, 3), seed=2), P((4, 5), seed=1), I([2, 0, 2]))),
    ("masked_fill", lambda lib, x, m: x.masked_fill(m, 0.5), lambda: (P((4, 5), seed=1), P((4, 5), "bool", seed=4))),
    ("masked_select", lambda lib, x, m: x.masked_select(m), lambda: (P((4, 5), seed=1), P((4, 5), "bool", seed=4))),
    ("index_dups", lambda lib, x, i: x[i], lambda: (P((4, 5), seed=1), I([3, 0, 3, -1]))),
    ("index_two", lambda lib, x, i, j: x[i, j], lambda: (P((4, 5), seed=1), I([3, 0, 3]), I([1, 1, 1]))),
    ("index_put_values", lambda lib, v, x, i: _put(lib, x, (i,), v, True), lambda: (P((2, 5), seed=2), P((4, 5), seed=1), I([1, 1]))),
    ("take", lambda lib, x, i: x.take(i), lambda: (P((4, 5), seed=1), I([0, 0, -1]))),
    ("cat", lambda lib, x, y: lib.cat([x, y, x], 0), lambda: (P((2, 5), seed=1), P((3, 5), seed=2))),
    ("stack", lambda lib, x, y: lib.stack([x, y], 2), lambda: (P((2, 5), seed=1), P((2, 5), seed=2))),
    ("flip_roll_repeat", lambda lib, x: x.flip(1).roll(1, 0).repeat(2, 1), lambda: (P((3, 5), seed=1),)),
    ("tril", lambda lib, x: x.tril(), lambda: (P((4, 5), seed=1),)),
]


@pytest.mark.parametrize("name,op,build", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_backward(name, op, build):
    check(_grad(op), *build(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int64", "float32", "bfloat16", "float64"])
def test_ranges(dtype):
    d = {torch: getattr(torch, dtype), vt: getattr(vt, dtype)}
    check(lambda lib: lib.arange(-3, 40, 3, dtype=d[lib], device="cuda"))
    check(lambda lib: lib.linspace(-2, 10, 7, dtype=d[lib], device="cuda"), rtol=1e-6, atol=1e-5)
    check(lambda lib: lib.linspace(3, 10, 1, dtype=d[lib], device="cuda"))
    check(lambda lib: lib.eye(3, 5, dtype=d[lib], device="cuda"))
    if dtype != "int64":
        check(lambda lib: lib.arange(0.5, 9.7, 0.3, dtype=d[lib], device="cuda"), rtol=1e-6, atol=1e-5)


def test_repeat_interleave():
    check(lambda lib, r: lib.repeat_interleave(r), I([1, 0, 3]))


# -- device-side index errors: an IndexError at the next sync, and the context stays usable --------------------------

def _bad_and_good():
    x = vt.arange(10, dtype=vt.float32).cuda()
    return x, vt.tensor([0, 12], device="cuda"), vt.tensor([9, 0], device="cuda")


def test_out_of_range_index_raises_at_synchronize_and_runtime_stays_usable():
    x, bad, good = _bad_and_good()
    x.index_select(0, bad)  # asynchronous: nothing raised yet
    with pytest.raises(IndexError, match=r"index_select\(\): index 12 is out of bounds for dimension 0 with size 10"):
        vt.cuda.synchronize()
    vt.cuda.synchronize()  # the flag was cleared
    assert x.index_select(0, good).tolist() == [9.0, 0.0]
    assert x.sum().item() == 45.0


@pytest.mark.parametrize("op,run", [
    ("gather", lambda x, i: x.gather(0, i)),
    ("embedding", lambda x, i: vt.nn.functional.embedding(i, x.reshape(10, 1))),
    ("scatter_add", lambda x, i: x.clone().scatter_add_(0, i, vt.ones(2, device="cuda"))),
    ("index_add", lambda x, i: x.clone().index_add_(0, i, vt.ones(2, device="cuda"))),
    ("index", lambda x, i: x[i]),
    ("index_put_", lambda x, i: x.clone().index_put_((i,), vt.ones(2, device="cuda"), accumulate=True)),
    ("take", lambda x, i: x.take(i)),
])
def test_out_of_range_index_raises_at_item(op, run):
    x, bad, good = _bad_and_good()
    y = run(x, bad)
    with pytest.raises(IndexError, match=rf"{op}\(\): index 12 is out of bounds"):
        y.sum().item()
    assert run(x, good).cpu() is not None  # works again, no error left behind
    vt.cuda.synchronize()


def test_negative_index_out_of_range_reports_the_value():
    x, _, _ = _bad_and_good()
    x[vt.tensor([-11], device="cuda")]
    with pytest.raises(IndexError, match=r"index -11 is out of bounds for dimension 0 with size 10"):
        vt.cuda.synchronize()


def test_stream_and_event_synchronize_raise():
    x, bad, _ = _bad_and_good()
    s = vt.cuda.Stream()
    with vt.cuda.stream(s):
        x.gather(0, bad)
    with pytest.raises(IndexError):
        s.synchronize()
    x.gather(0, bad)
    e = vt.cuda.Event()
    e.record()
    with pytest.raises(IndexError):
        e.synchronize()


def test_no_error_no_raise_and_values_right_after_errors():
    x, bad, good = _bad_and_good()
    x.index_select(0, bad)
    with pytest.raises(IndexError):
        x.cpu()
    np.testing.assert_array_equal(x.index_select(0, good).cpu().numpy(), [9.0, 0.0])


def test_checks_under_graph_capture_do_not_sync_and_surface_after_replay():
    x = vt.arange(10, dtype=vt.float32).cuda()
    idx = vt.tensor([1, 2], device="cuda")
    s = vt.cuda.Stream()
    with vt.cuda.stream(s):
        out = x.index_select(0, idx)  # warm up: compile outside the capture
    s.synchronize()
    g = vt.cuda.CUDAGraph()
    with vt.cuda.graph(g, stream=s):
        out = x.index_select(0, idx)
    g.replay(s)
    s.synchronize()
    assert out.tolist() == [1.0, 2.0]
    idx.copy_(vt.tensor([3, 99]))
    g.replay(s)
    with pytest.raises(IndexError, match="index 99"):
        s.synchronize()
    idx.copy_(vt.tensor([3, 4]))
    g.replay(s)
    s.synchronize()
    assert out.tolist() == [3.0, 4.0]
