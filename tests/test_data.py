"""torch.utils.data against torch: collation of nested structures, samplers, DataLoader batching
(drop_last, shuffle determinism, identical order with num_workers 0 and 2, iterable datasets split
per worker), worker errors and timeouts surfacing in the main process, persistent workers,
random_split, pin_memory without CUDA, Tensor pickling. Datasets are tiny: worker start-up dominates."""
import collections
import os
import pickle
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import vibetensor.torch as vt
import vibetensor.torch.utils.data as vdata
from vibetensor.torch.utils.data import worker as vworker
from oracle import assert_same

Point = collections.namedtuple("Point", "x y")


def same_structure(ours, theirs, path="batch"):
    """Equal nested structure (types of containers), tensors equal in dtype/shape/values."""
    if isinstance(theirs, torch.Tensor):
        assert_same(ours, theirs, path=path)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), path
        for k in theirs:
            same_structure(ours[k], theirs[k], f"{path}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours).__name__ == type(theirs).__name__ and len(ours) == len(theirs), \
            f"{path}: {type(ours).__name__} vs {type(theirs).__name__}"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            same_structure(o, t, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def samples(lib):
    """Nested samples built the same way in both libraries."""
    arr = lambda *v: np.array(v, dtype=np.float32)  # noqa: E731
    return [
        [(lib.tensor([1.0, 2.0]), 3, 0.5, "a", True), (lib.tensor([3.0, 4.0]), 4, 1.5, "b", False)],
        [{"img": arr(1, 2), "label": 1, "meta": {"id": 7, "name": "x"}},
         {"img": arr(3, 4), "label": 0, "meta": {"id": 8, "name": "y"}}],
        [Point(lib.tensor(1), [1, 2]), Point(lib.tensor(2), [3, 4])],
        [[np.int64(1), np.float64(2.0)], [np.int64(3), np.float64(4.0)]],
        [np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((2, 3), dtype=np.int32)],
        [lib.ones(2, 2, dtype=lib.bfloat16), lib.zeros(2, 2, dtype=lib.bfloat16)],
    ]


@pytest.mark.parametrize("case", range(6))
def test_default_collate_nested(case):
    same_structure(vdata.default_collate(samples(vt)[case]), tdata.default_collate(samples(torch)[case]))


@pytest.mark.parametrize("batch", [
    [(1, 2), (3,)],                        # unequal sequences
    [object(), object()],                  # not collatable
    [np.array(["a"]), np.array(["b"])],    # string arrays
], ids=["unequal", "object", "str_array"])
def test_default_collate_errors(batch):
    with pytest.raises(Exception) as t_err:
        tdata.default_collate(batch)
    with pytest.raises(type(t_err.value)) as v_err:
        vdata.default_collate(batch)
    assert str(v_err.value) == str(t_err.value).replace("torch.", "").replace("<class 'numpy", "<class 'numpy")


def test_default_convert():
    data = {"a": np.ones(2), "b": (np.int64(3), [np.zeros(1)]), "s": "text"}
    same_structure(vdata.default_convert(data), tdata.default_convert(data))


# -- datasets and samplers ----------------------------------------------------------------------------------

def test_tensor_subset_concat_datasets():
    x, y = vt.arange(10).float(), vt.arange(10) * 2
    ds = vdata.TensorDataset(x, y)
    assert len(ds) == 10 and ds[3][1].item() == 6
    with pytest.raises(AssertionError, match="Size mismatch"):
        vdata.TensorDataset(x, vt.arange(3))
    sub = vdata.Subset(ds, [9, 0, 4])
    assert len(sub) == 3 and [s[1].item() for s in sub] == [18, 0, 8]
    cat = ds + sub
    assert isinstance(cat, vdata.ConcatDataset) and len(cat) == 13
    assert [cat[i][1].item() for i in (0, 9, 10, 12, -1, -13)] == [0, 18, 18, 8, 8, 0]
    with pytest.raises(ValueError):
        cat[-14]
    stacked = vdata.StackDataset(a=x, b=y)
    assert stacked[2]["b"].item() == 4


def test_samplers_lengths_and_contents_match_torch():
    data = list(range(7))
    for lib, mod in ((torch, tdata), (vt, vdata)):
        g = lib.Generator().manual_seed(0)
        seq = list(mod.SequentialSampler(data))
        rs = list(mod.RandomSampler(data, generator=g))
        rs_n = list(mod.RandomSampler(data, num_samples=17, generator=g))
        rs_rep = list(mod.RandomSampler(data, replacement=True, num_samples=40, generator=g))
        sub = list(mod.SubsetRandomSampler([5, 1, 3], generator=g))
        wr = list(mod.WeightedRandomSampler([0.0, 1.0, 0.0], 5, generator=g))
        batches = [list(mod.BatchSampler(range(7), 3, d)) for d in (False, True)]
        lens = (len(mod.BatchSampler(range(7), 3, False)), len(mod.BatchSampler(range(7), 3, True)),
                len(mod.RandomSampler(data, num_samples=17)))
        result = (seq, sorted(rs), len(rs_n), sorted(set(rs_n)), len(rs_rep), all(0 <= i < 7 for i in rs_rep),
                  sorted(sub), wr, batches, lens)
        if lib is torch:
            expected = result
    assert result == expected
    for bad in (dict(batch_size=0, drop_last=False), dict(batch_size=2, drop_last=1)):
        with pytest.raises(ValueError):
            vdata.BatchSampler(range(3), **bad)


def test_random_sampler_deterministic_for_a_seed():
    data = list(range(20))
    orders = []
    for seed in (5, 5, 6):
        vt.manual_seed(seed)
        orders.append(list(vdata.RandomSampler(data)))
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == data


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.5, 0.25, 0.25], [0.33, 0.33, 0.34], [0.1] * 10])
def test_random_split_lengths_match_torch(lengths):
    data = list(range(10))
    t_parts = tdata.random_split(data, lengths, generator=torch.Generator().manual_seed(0))
    v_parts = vdata.random_split(data, lengths, generator=vt.Generator().manual_seed(0))
    assert [len(p) for p in v_parts] == [len(p) for p in t_parts]
    flat = [x for p in v_parts for x in p]
    assert sorted(flat) == data  # a partition


def test_random_split_fixed_expectations():
    """Determinism for a seed (the permutation is vibetensor's, not torch's: fixed values here)."""
    parts = vdata.random_split(range(10), [0.3, 0.7], generator=vt.Generator().manual_seed(42))
    again = vdata.random_split(range(10), [0.3, 0.7], generator=vt.Generator().manual_seed(42))
    assert [list(p) for p in parts] == [list(p) for p in again]
    assert [list(p) for p in parts] == EXPECTED_SPLIT_42
    other = vdata.random_split(range(10), [0.3, 0.7], generator=vt.Generator().manual_seed(43))
    assert [list(p) for p in other] != EXPECTED_SPLIT_42
    with pytest.raises(ValueError, match="Sum of input lengths"):
        vdata.random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="not between 0 and 1"):
        vdata.random_split(range(10), [1.5, -0.5])


EXPECTED_SPLIT_42 = [[9, 2, 1], [7, 3, 0, 4, 6, 5, 8]]  # vibetensor's randperm(10) for Generator seed 42


# -- DataLoader ---------------------------------------------------------------------------------------------

class Squares(vdata.Dataset):
    """Sample i: (i as a float tensor, i*i, a dict)."""

    def __init__(self, n, lib=vt):
        self.n, self.lib = n, lib

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.lib.tensor([float(i)]), i * i, {"pid": os.getpid(), "i": i}


def _ids(loader):
    return [b[1].tolist() for b in loader]


@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (1, False), (10, True), (4, True)])
def test_batching_and_drop_last_match_torch(batch_size, drop_last):
    t = [b[1].tolist() for b in tdata.DataLoader(Squares(10, torch), batch_size=batch_size, drop_last=drop_last)]
    v = vdata.DataLoader(Squares(10), batch_size=batch_size, drop_last=drop_last)
    assert len(v) == len(t)
    assert _ids(v) == t


def test_batch_size_none_and_batch_sampler():
    loader = vdata.DataLoader(vdata.TensorDataset(vt.arange(4)), batch_size=None)
    assert [b[0].item() for b in loader] == [0, 1, 2, 3]
    bs = vdata.BatchSampler(vdata.SequentialSampler(range(5)), 2, True)
    assert [b[0].tolist() for b in vdata.DataLoader(vdata.TensorDataset(vt.arange(5)), batch_sampler=bs)] == \
        [[0, 1], [2, 3]]


def test_collate_fn_and_nested_batches():
    loader = vdata.DataLoader(Squares(5), batch_size=2, collate_fn=lambda b: [s[1] for s in b])
    assert list(loader) == [[0, 1], [4, 9], [16]]
    batch = next(iter(vdata.DataLoader(Squares(4), batch_size=4)))
    assert batch[0].shape == (4, 1) and batch[1].dtype == vt.int64 and batch[2]["i"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("kw", [
    dict(num_workers=-1), dict(timeout=-1), dict(prefetch_factor=2), dict(persistent_workers=True),
    dict(shuffle=True, sampler=[0, 1]), dict(batch_sampler=[[0]], batch_size=2), dict(batch_size=None, drop_last=True),
    dict(multiprocessing_context="fork"),
], ids=lambda kw: ",".join(kw))
def test_loader_argument_errors_match_torch(kw):
    with pytest.raises(ValueError) as t_err:
        tdata.DataLoader(list(range(4)), **kw)
    with pytest.raises(ValueError) as v_err:
        vdata.DataLoader(list(range(4)), **kw)
    assert str(v_err.value) == str(t_err.value)


def test_shuffle_deterministic_and_same_with_workers():
    """One seed, one order: with a generator or the global seed, for num_workers 0 and 2, two epochs."""
    def epochs(workers, use_generator):
        if use_generator:
            loader = vdata.DataLoader(Squares(12), batch_size=4, shuffle=True, num_workers=workers,
                                      generator=vt.Generator().manual_seed(7))
        else:
            vt.manual_seed(7)
            loader = vdata.DataLoader(Squares(12), batch_size=4, shuffle=True, num_workers=workers)
        return [_ids(loader) for _ in range(2)]
    for use_generator in (True, False):
        single = epochs(0, use_generator)
        assert single == epochs(0, use_generator)
        assert single == epochs(2, use_generator)
        assert single[0] != single[1]  # a new permutation each epoch
        assert sorted(i for b in single[0] for i in b) == [i * i for i in range(12)]


def test_workers_preserve_order_and_use_processes():
    loader = vdata.DataLoader(Squares(9), batch_size=2, num_workers=2)
    batches = list(loader)
    assert [b[1].tolist() for b in batches] == [[0, 1], [4, 9], [16, 25], [36, 49], [64]]
    pids = {p for b in batches for p in b[2]["pid"].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids


class Stream(vdata.IterableDataset):
    """range(start, end), split between workers by get_worker_info() (torch's documented pattern)."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        info = vdata.get_worker_info() if not hasattr(self, "torch") else tdata.get_worker_info()
        lo, hi = self.start, self.end
        if info is not None:
            per = -(-(hi - lo) // info.num_workers)
            lo = lo + info.id * per
            hi = min(lo + per, self.end)
        return iter(range(lo, hi))


class TorchStream(tdata.IterableDataset):
    torch = True
    __init__ = Stream.__init__
    __iter__ = Stream.__iter__


@pytest.mark.parametrize("workers,batch_size,drop_last", [(0, 2, False), (2, 2, False), (2, 3, True), (2, None, False)])
def test_iterable_dataset_split_per_worker_matches_torch(workers, batch_size, drop_last):
    def run(mod, ds):
        loader = mod.DataLoader(ds, batch_size=batch_size, num_workers=workers, drop_last=drop_last)
        return [b.tolist() if hasattr(b, "tolist") else b for b in loader]  # batch_size=None: plain ints
    assert run(vdata, Stream(3, 10)) == run(tdata, TorchStream(3, 10))


def test_iterable_dataset_rejects_shuffle():
    with pytest.raises(ValueError, match="expected unspecified shuffle"):
        vdata.DataLoader(Stream(0, 3), shuffle=True)


class Failing(vdata.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"bad sample {i}")
        return i


def test_worker_error_surfaces_naming_the_worker():
    loader = vdata.DataLoader(Failing(), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).tolist() == [0, 1] and next(it).tolist() == [2, 3]
    with pytest.raises(KeyError) as err:
        next(it)
    assert "Caught KeyError in DataLoader worker process 0" in str(err.value)
    assert "bad sample 5" in str(err.value)
    deadline = time.time() + 10
    while any(w.is_alive() for w in it._workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(w.is_alive() for w in it._workers)  # shut down, no hang


def test_worker_init_fn_error_and_single_process_error():
    def init(worker_id):
        raise ValueError("init failed")
    with pytest.raises(ValueError, match="in DataLoader worker process"):
        list(vdata.DataLoader(Squares(4), num_workers=2, worker_init_fn=init))
    with pytest.raises(KeyError, match="bad sample 5"):
        list(vdata.DataLoader(Failing(), batch_size=2))


class Slow(vdata.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        time.sleep(1)
        return i


def test_timeout_raises():
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.3 seconds"):
        list(vdata.DataLoader(Slow(), num_workers=1, timeout=0.3))


class Dies(vdata.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        os._exit(3)


def test_dead_worker_detected(monkeypatch):
    monkeypatch.setattr(vworker, "MP_STATUS_CHECK_INTERVAL", 0.3)
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(vdata.DataLoader(Dies(), num_workers=1))


def test_persistent_workers_keep_processes_across_epochs():
    def pids(loader):
        out = []
        for epoch in range(2):
            batches = list(loader)
            assert [b[1].tolist() for b in batches] == [[0, 1, 4], [9, 16, 25], [36]]
            out.append({p for b in batches for p in b[2]["pid"].tolist()})
        return out
    persistent = vdata.DataLoader(Squares(7), batch_size=3, num_workers=2, persistent_workers=True)
    first, second = pids(persistent)
    assert first == second and len(first) == 2
    workers = persistent._iterator._workers
    assert all(w.is_alive() for w in workers)
    fresh = pids(vdata.DataLoader(Squares(7), batch_size=3, num_workers=2))
    assert fresh[0].isdisjoint(fresh[1])  # new workers each epoch
    persistent._iterator._shutdown_workers()
    assert not any(w.is_alive() for w in workers)


def test_persistent_workers_iterable_restart():
    loader = vdata.DataLoader(Stream(0, 6), batch_size=2, num_workers=2, persistent_workers=True)
    first = [b.tolist() for b in loader]
    assert first == [b.tolist() for b in loader] == [[0, 1], [3, 4], [2], [5]]


class Info(vdata.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        info = vdata.get_worker_info()
        return vt.tensor([info.id, info.num_workers, info.seed % 1000, int(vt.randint(0, 10 ** 6, (1,)).item())])


def test_worker_info_and_seeds():
    assert vdata.get_worker_info() is None
    seen = []
    rows = vt.cat(list(vdata.DataLoader(Info(), batch_size=1, num_workers=2,
                                        worker_init_fn=lambda wid: seen.append(wid)))).tolist()
    assert [r[0] for r in rows] == [0, 1, 0, 1] and all(r[1] == 2 for r in rows)
    assert rows[0][2] != rows[1][2]  # seeds differ per worker
    assert rows[0][3] != rows[1][3]  # and so do the workers' random streams
    with pytest.raises(RuntimeError, match="Cannot assign"):
        vworker.WorkerInfo(id=0).id = 1


def test_pin_memory_without_cuda_warns_and_is_noop():
    if vt.cuda.is_available():
        pytest.skip("this machine has CUDA: pinning is real")
    for mod, lib in ((tdata, torch), (vdata, vt)):
        with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found"):
            batches = list(mod.DataLoader(mod.TensorDataset(lib.arange(4)), batch_size=2, pin_memory=True))
        assert [b[0].tolist() for b in batches] == [[0, 1], [2, 3]]


@pytest.mark.cuda
def test_pin_memory_with_cuda():
    batch = next(iter(vdata.DataLoader(vdata.TensorDataset(vt.arange(4)), batch_size=2, pin_memory=True)))
    assert batch[0].is_pinned()


def test_len_of_iterable_loader_and_warning():
    class Sized(Stream):
        def __len__(self):
            return 3
    loader = vdata.DataLoader(Sized(0, 5), batch_size=None)
    assert len(loader) == 3
    with pytest.warns(UserWarning, match="was reported to be 3"):
        list(loader)


# -- Tensor pickling (how workers return batches) ------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: vt.arange(12).reshape(3, 4)[:, 1::2],
    lambda: vt.randn(2, 3, dtype=vt.bfloat16),
    lambda: vt.tensor(2.5),
    lambda: vt.zeros(0, 3),
    lambda: vt.ones(2, dtype=vt.bool),
    lambda: vt.randn(3, requires_grad=True),
], ids=["strided_view", "bfloat16", "0d", "empty", "bool", "leaf_requires_grad"])
def test_tensor_pickle_round_trip(make):
    t = make()
    u = pickle.loads(pickle.dumps(t))
    assert u.dtype == t.dtype and tuple(u.shape) == tuple(t.shape) and u.requires_grad == t.requires_grad
    assert u.is_contiguous() and u._base is None
    np.testing.assert_array_equal(np.asarray(u.detach().float().numpy()), np.asarray(t.detach().float().numpy()))


def test_pickle_non_leaf_like_torch():
    """A non-leaf comes back as a leaf that requires grad (torch's plain pickling)."""
    got = []
    for lib in (torch, vt):
        y = lib.ones(2, requires_grad=True) * 2
        u = pickle.loads(pickle.dumps(y))
        got.append((u.tolist(), u.requires_grad, u.is_leaf))
    assert got[0] == got[1]
