"""The multi-tensor tables of the CUDA foreach kernels (backends/cuda/foreach.py), on CPU: their
contents against a row-by-row reference, and their two-level cache (geometry -> grouping, data
pointers -> uploaded tables). Fake tensors stand in for CUDA ones and uploads are recorded, so
no GPU is needed; clip_grad_norm_'s one-op form is checked against torch on CPU."""
import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="backends/cuda imports Triton")

import vibetensor.torch as vt  # noqa: E402
from vibetensor.backends.cuda import foreach as F  # noqa: E402
from vibetensor.ops import foreach as fe  # noqa: E402
from vibetensor.runtime.cuda import graphs  # noqa: E402
from vibetensor.tensor import dtype as dt  # noqa: E402
from vibetensor.tensor.device import device  # noqa: E402
from vibetensor.tensor.shape import contiguous_strides  # noqa: E402

CUDA0, CUDA1 = device("cuda:0"), device("cuda:1")


class _Data:
    def __init__(self, ptr):
        self.ptr = ptr


class _Storage:
    def __init__(self, ptr):
        self.data = _Data(ptr)


class Fake:
    """What the tables read of a CUDA tensor."""

    def __init__(self, ptr, shape, dtype=dt.float32, offset=0, stride=None, dev=CUDA0):
        self._storage, self._offset, self._shape, self._dtype, self._device = _Storage(ptr), offset, shape, dtype, dev
        self._stride = contiguous_strides(shape) if stride is None else stride


class Recorded:
    """Table without the device: keeps what would have been uploaded."""
    made = []

    def __init__(self, device, dtype, flat, rows, n_chunks):
        self.device, self.dtype, self.flat, self.rows, self.n_chunks = device, dtype, flat.copy(), rows, n_chunks
        self.base, self.grid, self.pending = rows * F.COLS, (n_chunks,), None
        Recorded.made.append(self)


@pytest.fixture(autouse=True)
def recorded_tables(monkeypatch):
    monkeypatch.setattr(F, "Table", Recorded)
    monkeypatch.setattr(F, "_cache", type(F._cache)())
    monkeypatch.setattr(F, "_groupings", {})
    monkeypatch.setattr(F, "_kept", [])
    Recorded.made = []


def reference(columns, spare=None):
    """{dtype: flat table} built row by row, the meaning of a table."""
    n = len(next(c for c in columns if c is not None))
    by_dtype = {}
    for i in range(n):
        first = next(c[i] for c in columns if c is not None)
        by_dtype.setdefault(first._dtype, []).append(i)
    out = {}
    for dtype, members in by_dtype.items():
        rows, pairs, chunk0 = [], [], 0
        for r, i in enumerate(members):
            first = next(c[i] for c in columns if c is not None)
            numel = int(np.prod(first._shape, dtype=np.int64))
            row = [0] * F.COLS
            for j, c in enumerate(columns):
                if c is not None:
                    row[j] = c[i]._storage.data.ptr + c[i]._offset * c[i]._dtype.itemsize
            row[F.NUMEL] = numel
            chunks = -(-numel // F.CHUNK)
            row[F.SPARE] = chunk0 if spare is F.FIRST_CHUNKS else (spare[i] if spare is not None else 0)
            rows += row
            pairs += [x for c in range(chunks) for x in (r, c)]
            chunk0 += chunks
        out[dtype] = np.array(rows + pairs, np.int64)
    return out


def check_groups(groups, columns, spare=None):
    expected = reference(columns, spare)
    assert {t.dtype for t, _ in groups} == set(expected)
    for table, positions in groups:
        np.testing.assert_array_equal(table.flat, expected[table.dtype])
        assert positions == [i for i in range(len(columns[1] or columns[0]))
                             if next(c[i] for c in columns if c is not None)._dtype is table.dtype]


def params_and_grads(base=0x10000):
    shapes = [(64, 33), (4097,), (), (3, 5, 7), (2049,), (0,), (2, 0)]
    dtypes = [dt.float32, dt.bfloat16, dt.float32, dt.float64, dt.bfloat16, dt.float32, dt.float64]
    params = [Fake(base + 0x100000 * i, s, d, offset=3 * i) for i, (s, d) in enumerate(zip(shapes, dtypes))]
    grads = [Fake(base + 0x8000000 + 0x100000 * i, s, d) for i, (s, d) in enumerate(zip(shapes, dtypes))]
    return params, grads


COLUMN_CASES = [  # (tag, columns(params, grads, other), spare)
    ("sgd", lambda p, g, o: (p, g, None), None),
    ("norm", lambda p, g, o: (None, g), F.FIRST_CHUNKS),
    ("norm", lambda p, g, o: (g, g), F.FIRST_CHUNKS),         # the same list twice (clip: in place)
    ("ew", lambda p, g, o: (p, p, o), None),
    ("ew", lambda p, g, o: (p, g, None), [F._bits(0.5 * i) for i in range(7)]),  # a list of scalars
]


@pytest.mark.parametrize("tag,cols,spare", COLUMN_CASES)
def test_table_contents_match_row_by_row_reference(tag, cols, spare):
    params, grads = params_and_grads()
    other = params_and_grads(base=0x70000000)[1]
    columns = cols(params, grads, other)
    groups = F.tables(tag, columns, spare)
    check_groups(groups, columns, spare)
    assert len(Recorded.made) == 3  # one table per dtype group


def test_same_addresses_hit_new_addresses_reuse_grouping():
    params, grads = params_and_grads()
    rows_checked = []

    def check(row):  # same_dense, counted: grouping a call checks each row once
        rows_checked.append(1)
        return F.same_dense(row)
    first = F.tables("sgd", (params, grads, None), check=check)
    grouped, made = len(rows_checked), len(Recorded.made)
    assert F.tables("sgd", (list(params), list(grads), None), check=check) is first  # new lists, same tensors
    assert len(Recorded.made) == made
    # a new gradient at a new address (zero_grad(set_to_none) then backward): the grouping stays,
    # the tables are new and hold the new pointer; the old ones are never rewritten
    old_flats = [t.flat.copy() for t, _ in first]
    grads2 = list(grads)
    grads2[3] = Fake(0x5550000, grads[3]._shape, grads[3]._dtype)
    second = F.tables("sgd", (params, grads2, None), check=check)
    assert len(rows_checked) == grouped and len(Recorded.made) == made + 3
    check_groups(second, (params, grads2, None))
    assert all(np.array_equal(t.flat, f) for (t, _), f in zip(first, old_flats))
    # back to the first addresses: the first tables again, nothing uploaded
    assert F.tables("sgd", (params, grads, None), check=check) is first
    assert len(Recorded.made) == made + 3 and len(rows_checked) == grouped


def test_offset_or_shape_change_regroups():
    params, grads = params_and_grads()
    a = F.tables("norm", (None, grads), F.FIRST_CHUNKS)
    moved = list(grads)
    moved[0] = Fake(grads[0]._storage.data.ptr, grads[0]._shape, grads[0]._dtype, offset=5)
    b = F.tables("norm", (None, moved), F.FIRST_CHUNKS)
    assert b is not a
    check_groups(b, (None, moved), F.FIRST_CHUNKS)
    reshaped = list(grads)
    reshaped[1] = Fake(grads[1]._storage.data.ptr, (4097 * 2,), grads[1]._dtype)
    c = F.tables("norm", (None, reshaped), F.FIRST_CHUNKS)
    check_groups(c, (None, reshaped), F.FIRST_CHUNKS)
    assert len(F._groupings) == 3


@pytest.mark.parametrize("bad", [
    lambda g: Fake(0x999000, (4, 6), stride=(1, 4)),          # not contiguous
    lambda g: Fake(0x999000, (3,), dt.int64),                  # not a float dtype
    lambda g: Fake(0x999000, (3,), dev=CUDA1),                 # another device
])
def test_fast_path_refused_and_remembered(bad):
    params, grads = params_and_grads()
    grads = grads + [bad(grads)]
    params = params + [Fake(0x998000, grads[-1]._shape, grads[-1]._dtype, dev=grads[-1]._device)]
    assert F.tables("sgd", (params, grads, None)) is None
    assert list(F._groupings.values()) == [None] and not Recorded.made
    assert F.tables("sgd", (params, grads, None)) is None


def test_cpu_tensor_refused():
    params, grads = params_and_grads()
    assert F.tables("sgd", (params, grads[:-1] + [vt.zeros(2, 0, dtype=vt.float64)], None)) is None


def test_tables_used_while_capturing_are_kept(monkeypatch):
    params, grads = params_and_grads()
    F.tables("sgd", (params, grads, None))
    monkeypatch.setattr(graphs._capturing, "graph", object(), raising=False)
    F.tables("sgd", (params, grads, None))
    monkeypatch.setattr(graphs._capturing, "graph", None)
    assert len(F._kept) == 1 and F._kept[0].keep
    for i in range(F._MAX_TABLES + 10):  # evicting never drops a kept entry
        g = list(grads)
        g[0] = Fake(0x40000000 + 0x1000 * i, grads[0]._shape, grads[0]._dtype)
        F.tables("sgd", (params, g, None))
    assert len(F._cache) <= F._MAX_TABLES and F._kept[0].groups


def test_bits_remembered_but_zero_signs_kept():
    for v in [0.0, -0.0, 1, True, 0.1, -2.5, float("inf"), float("nan"), 1e300, 0, 3]:
        for _ in range(2):
            assert F._bits(v) == int(np.float64(v).view(np.int64)), v


# -- clip_grad_norm_ as one op (its CPU kernel is the loop; CUDA runs the kernels on the GPU) ----------

CLIP_CASES = [(2.0, 1.0, "float32"), (1.0, 5.0, "float32"), (float("inf"), 0.5, "float64"), (3.0, 2.0, "float64"),
              (2.0, 1e6, "float32")]


@pytest.mark.parametrize("norm_type,max_norm,dtype", CLIP_CASES)
def test_clip_by_total_norm_op_matches_torch(norm_type, max_norm, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) * 3 for s in ((7, 3), (11,), (), (2, 2, 2))]
    tg = [torch.tensor(a, dtype=getattr(torch, dtype)) for a in arrays]
    vg = [vt.tensor(a, dtype=getattr(vt, dtype)) for a in arrays]
    tps = [torch.zeros(g.shape, dtype=g.dtype, requires_grad=True) for g in tg]
    for p, g in zip(tps, tg):
        p.grad = g
    expected = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    versions = [g._version.value for g in vg]
    got = fe.OPS["_clip_by_total_norm_"](vg, max_norm, norm_type)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
    for g, e in zip(vg, tg):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6, atol=1e-12)
    assert [g._version.value for g in vg] == [v + 1 for v in versions]  # written in place


def test_clip_grad_norm_front_door_reads_grads_like_torch():
    """Parameters without a grad are skipped; a non-leaf's .grad read warns, as in torch."""
    x = vt.ones(3, requires_grad=True)
    y = x * 2  # non-leaf, no grad
    p = vt.ones(2, requires_grad=True)
    p.grad = vt.tensor([3.0, 4.0])
    with pytest.warns(UserWarning, match="non-leaf"):
        total = vt.nn.utils.clip_grad_norm_([y, x, p], 1.0)
    assert abs(float(total) - 5.0) < 1e-6
    np.testing.assert_allclose(p.grad.numpy(), np.array([3.0, 4.0]) / (5.0 + 1e-6), rtol=1e-6)


def test_zero_grad_set_to_none_and_step_skips_missing_grads():
    ps = [vt.ones(2, requires_grad=True), vt.ones(3, requires_grad=True)]
    opt = vt.optim.SGD(ps, lr=0.5)
    ps[0].grad = vt.ones(2)
    opt.step()  # ps[1] has no grad: untouched
    np.testing.assert_allclose(ps[0].detach().numpy(), [0.5, 0.5])
    np.testing.assert_allclose(ps[1].detach().numpy(), [1, 1, 1])
    opt.zero_grad()
    assert ps[0].grad is None and ps[1].grad is None
    ps[1].grad = vt.ones(3)
    opt.zero_grad(set_to_none=False)
    assert ps[0].grad is None
    np.testing.assert_allclose(ps[1].grad.numpy(), [0, 0, 0])
