"""The caching allocator's fast paths against its slow path, and its peaks against an oracle.

malloc's fast path (a cached block taken inline), the frees that wait for the allocator's next
call (Allocation.__del__), and the guards that let the hot paths skip peak updates must leave
exactly what the slow path leaves: the same pointers, statistics and snapshots. Randomized
sequences of mixed sizes on two streams, with record_stream, graph-pool captures, peak resets and
empty_cache, run on two simulated devices, one allocator taking the fast paths and one forced
onto the slow path; the oracle test recomputes every current value from the snapshot after each
operation and tracks the peaks itself.
"""
import random

import pytest

from vibetensor.runtime.cuda.allocator import AllocatorConfig, CachingAllocator, OutOfMemoryError
from vibetensor.runtime.cuda.simulated import SimulatedDevice

MiB = 1 << 20
STATS = ("allocation", "active", "allocated_bytes", "active_bytes", "requested_bytes",
         "inactive_split", "inactive_split_bytes", "segment", "reserved_bytes")
POOLS = ("all", "small_pool", "large_pool")


class SlowAllocator(CachingAllocator):
    """The reference: every malloc through _malloc and _take_block (the fast path is off); the
    tests free its handles explicitly, so its frees are done at once rather than deferred."""
    __slots__ = ()

    def _update_fast(self):
        self._fast = False


class PythonAllocator(CachingAllocator):
    """The Python fast paths, the specification of fastalloc's C (which CachingAllocator takes where it builds)."""
    __slots__ = ()
    malloc = CachingAllocator.malloc_python
    _free_block_of = CachingAllocator._free_block


FAST = [pytest.param(CachingAllocator, id="c"), pytest.param(PythonAllocator, id="python")]


def make(cls, conf, capacity):
    dev = SimulatedDevice(capacity)
    dev.new_stream()
    return dev, cls(dev, AllocatorConfig.parse(conf))


def random_size(rng, repeated):
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(repeated)  # the same sizes freed and allocated again: exact-fit reuse
    if kind < 0.6:
        return rng.randrange(1, 8192)
    if kind < 0.8:
        return rng.randrange(8192, 2 * MiB)
    if kind < 0.97:
        return rng.randrange(MiB, 24 * MiB)
    return rng.randrange(60 * MiB, 90 * MiB)  # oversize when max_split_size_mb:64


class Twin:
    """One allocator per device, fed the same operations; `fast` frees by dropping handles."""

    def __init__(self, conf, capacity=2 << 30, record_streams=True, fast=CachingAllocator):
        self.devs, self.allocs = zip(make(fast, conf, capacity),
                                     make(SlowAllocator, conf, capacity))
        self.live = []          # [(fast handle, slow handle)]
        self.capturing = None   # pool id while allocating to a graph pool
        self.pools = []         # pool ids captured and not yet released
        self.next_pool = 1
        self.resets = 0         # reset_peak_memory_stats calls
        self.record_streams = record_streams
        self.taken_back = 0     # retakes where the fast allocator took the dropped block straight back

    def both(self, fn):
        return [fn(d, a) for d, a in zip(self.devs, self.allocs)]

    def malloc(self, n, k):
        out = []
        for d, a in zip(self.devs, self.allocs):
            try:
                out.append(a.malloc(n, d.streams[k]))
            except OutOfMemoryError:
                out.append(None)
        fast, slow = out
        assert (fast is None) == (slow is None)
        if fast is not None:
            assert (fast.ptr, fast.allocated_size) == (slow.ptr, slow.allocated_size)
            self.live.append((fast, slow))

    def free(self, j, explicit):
        fast, slow = self.live.pop(j)
        slow.free()
        if explicit:
            fast.free()  # at once, after any frees still waiting
        del fast  # the last reference: __del__ defers the free to the allocator's next call

    def retake(self, j):
        """Drop handle j, then malloc its size on its stream again: a loop's temporary (the
        fast allocator may take the dropped block straight back, _take_back)."""
        fast, slow = self.live[j]
        n, k = slow.size, self.devs[1].streams.index(slow.stream)
        del fast, slow
        self.free(j, False)
        self.malloc(n, k)
        a = self.allocs[0]  # a take-back keeps its plan, under the block it returned
        self.taken_back += a._taken is not None and self.live[-1][0]._block in a._taken

    def step(self, rng, retake=0.0):
        r = rng.random()
        k = rng.randrange(2)
        if self.live and rng.random() < retake:
            self.retake(rng.randrange(max(0, len(self.live) - 3), len(self.live)))  # (mostly the newest)
        elif r < 0.5 or not self.live:
            self.malloc(random_size(rng, (512, 4096, 40000, 3 * MiB)), k)
        elif r < 0.58 and self.record_streams:
            j = rng.randrange(len(self.live))
            self.both(lambda d, a: d.streams[k].launch())
            for h in self.live[j]:
                h.record_stream(h._allocator.device.streams[k])
        elif r < 0.63:
            self.both(lambda d, a: d.streams[k].finish())
        elif r < 0.9:
            self.free(rng.randrange(len(self.live)), rng.random() < 0.1)
        elif r < 0.92:
            self.both(lambda d, a: a.reset_peak_memory_stats())
            self.resets += 1
        elif r < 0.93 and self.capturing is None:
            self.both(lambda d, a: a.empty_cache())
        elif r < 0.96:
            self.toggle_capture(rng)

    def toggle_capture(self, rng):
        if self.capturing is not None:  # capture ends; its pool is released some time later
            pid = self.capturing
            self.both(lambda d, a: a.end_allocate_to_pool(pid))
            self.capturing = None
        elif self.pools and rng.random() < 0.5:
            pid = self.pools.pop(0)
            self.both(lambda d, a: a.release_pool(pid))
        else:  # allocations on stream 1 go to a private pool
            pid = self.capturing = (0, self.next_pool)
            self.next_pool += 1
            self.pools.append(pid)
            self.both(lambda d, a: a.begin_allocate_to_pool(pid, lambda s, s1=d.streams[1]: s is s1))

    def check(self):
        fast, slow = self.allocs
        assert fast.memory_stats() == slow.memory_stats()
        assert fast.snapshot()[0] == slow.snapshot()[0]
        assert fast.memory_allocated() == slow.memory_allocated()

    def finish(self):
        if self.capturing is not None:
            pid = self.capturing
            self.both(lambda d, a: a.end_allocate_to_pool(pid))
        while self.live:
            self.free(len(self.live) - 1, False)
        for pid in self.pools:
            self.both(lambda d, a: a.release_pool(pid))
        self.both(lambda d, a: d.synchronize())
        self.both(lambda d, a: a.empty_cache())
        self.check()


@pytest.mark.parametrize("seed, conf", [
    (0, ""),
    (1, ""),
    (2, "max_split_size_mb:64"),
    (3, "max_split_size_mb:64"),
])
@pytest.mark.parametrize("fast", FAST)
def test_fast_paths_match_the_slow_path(seed, conf, fast):
    rng = random.Random(seed)
    twin = Twin(conf, fast=fast)
    for _ in range(1500):
        twin.step(rng)
        if rng.random() < 0.15:  # now and then, so that several frees wait and complete together
            twin.check()
    twin.finish()
    stats = twin.allocs[0].memory_stats()
    assert all(v == 0 for k, v in stats.items() if k.endswith(".current")), stats


@pytest.mark.parametrize("seed, conf", [(4, ""), (5, "max_split_size_mb:64"), (6, "")])
@pytest.mark.parametrize("fast", FAST)
def test_taking_a_dropped_block_back_matches_the_slow_path(seed, conf, fast, monkeypatch):
    # a training loop's pattern: temporaries dropped and the same sizes allocated again at once,
    # where freeing and taking the block back may leave the pools as they were (_take_back)
    rng = random.Random(seed)
    twin = Twin(conf, fast=fast)
    plans = []
    plan = CachingAllocator._take_back_plan
    monkeypatch.setattr(CachingAllocator, "_take_back_plan",
                        lambda self, *args: plans.append(plan(self, *args)) or plans[-1])
    for _ in range(2000):
        twin.step(rng, retake=0.5)
        if rng.random() < 0.1:
            twin.check()
    twin.finish()
    assert twin.taken_back > 100  # the shortcut was taken, often
    assert twin.taken_back - sum(p is not None for p in plans) > 20  # now and then on the plan kept from the last take-back


def observed(a):
    """Every current value of STATS, per pool, recomputed from the snapshot."""
    out = {(s, p): 0 for s in STATS for p in POOLS}
    for seg in a.snapshot()[0]:
        pools = ("all", "small_pool" if seg["segment_type"] == "small" else "large_pool")
        split = len(seg["blocks"]) > 1
        values = {"segment": 1, "reserved_bytes": seg["total_size"]}
        for b in seg["blocks"]:
            active = b["state"] != "inactive"
            allocated = b["state"] == "active_allocated"
            for name, v in (("allocation", allocated), ("allocated_bytes", allocated * b["size"]),
                            ("active", active), ("active_bytes", active * b["size"]),
                            ("requested_bytes", active * b["requested_size"]),
                            ("inactive_split", split and not active),
                            ("inactive_split_bytes", (split and not active) * b["size"])):
                values[name] = values.get(name, 0) + v
        for name, v in values.items():
            for p in pools:
                out[name, p] += v
    return out


@pytest.mark.parametrize("fast", FAST)
@pytest.mark.parametrize("seed", [0, 1])
def test_peaks_match_an_oracle(seed, fast):
    # the guards skip peak updates only where no peak can rise: recompute each current value
    # from the snapshot after every operation and keep the peaks here. (Without record_stream:
    # a malloc that first completes event-gated frees has a peak inside it, seen by no snapshot.)
    rng = random.Random(seed)
    twin = Twin("", record_streams=False, fast=fast)
    peaks, resets = observed(twin.allocs[0]), 0
    for _ in range(700):
        twin.step(rng)
        stats = twin.allocs[0].memory_stats()
        now = observed(twin.allocs[0])
        if twin.resets != resets:  # the peaks restart from the current values
            peaks, resets = dict(now), twin.resets
        for key, v in now.items():
            peaks[key] = max(peaks[key], v)
            name, pool = key
            assert stats[f"{name}.{pool}.current"] == v, key
            assert stats[f"{name}.{pool}.peak"] == peaks[key], key


@pytest.mark.parametrize("order, split_peak", [
    ("xy", 2),  # x alone becomes a second inactive split block; y then merges everything
    ("yx", 1),  # y merges with the rest of the segment first; x then merges with that
])
def test_dropped_handles_free_at_the_next_call_in_order(order, split_peak):
    _, a = make(CachingAllocator, "", 1 << 30)
    handles = {"x": a.malloc(1000), "y": a.malloc(1000)}  # [x][y][rest of the 2 MiB segment]
    for name in order:
        del handles[name]
    assert len(a._deferred) == 2  # dropped, waiting: the allocator has not been called since
    stats = a.memory_stats()
    assert not a._deferred
    assert stats["inactive_split.all.peak"] == split_peak
    assert stats["allocation.all.current"] == stats["inactive_split.all.current"] == 0


@pytest.mark.parametrize("peak, peak_c, peak_o, cur_c, cur_o", [
    (72, 69, 21, 52, 14),   # the small pool climbs to its peak while the large one empties
    (72, 21, 69, 11, 60),   # and back
    (10, 10, 0, 3, 0),      # one pool only
    (10, 6, 6, 5, 5),       # at all pools' peak: no headroom
    (10, 8, 5, 5, 2),       # c's own peak binds
    (7, 4, 4, 0, 0),        # empty pools
    (1 << 40, 1 << 39, 3 << 38, 1 << 38, 1 << 37),  # byte counts beyond one int digit
])
def test_guards_keep_every_peak(peak, peak_c, peak_o, cur_c, cur_o):
    # while each pool's value stays within its guard, neither its own peak nor all pools' can rise
    from vibetensor.runtime.cuda.allocator import _guards
    g_c, g_o = _guards(peak, peak_c, peak_o, cur_c, cur_o)
    assert cur_c <= g_c <= peak_c and cur_o <= g_o <= peak_o
    assert g_c + g_o <= peak


def test_guards_keep_every_peak_randomized():
    from vibetensor.runtime.cuda.allocator import _guards
    rng = random.Random(0)
    for _ in range(2000):
        peak_c, peak_o = rng.randrange(0, 100), rng.randrange(0, 100)
        peak = rng.randrange(max(peak_c, peak_o), peak_c + peak_o + 1)
        cur_c = rng.randrange(0, peak_c + 1)
        cur_o = rng.randrange(0, min(peak_o, peak - cur_c) + 1)
        g_c, g_o = _guards(peak, peak_c, peak_o, cur_c, cur_o)
        assert cur_c <= g_c <= peak_c and cur_o <= g_o <= peak_o and g_c + g_o <= peak


def _trade(small, large, rounds=3):
    """A training loop's memory shape, as operations: each new block of one pool replaces the
    oldest block (of the other pool, once the first pile is in), so the sum stays at all pools'
    peak while the pools trade places, and all pools' peak is below the sum of the pools' own."""
    for n in small:
        yield "malloc", n
    for _ in range(rounds):
        for group in (large, small):
            for n in group:
                yield "malloc", n
                yield "free", 0


@pytest.mark.parametrize("small, large", [
    ((1000,) * 12, (3 * MiB,) * 4),                  # counts trade at the peak
    ((700, 5000, 90000, 512), (2 * MiB, 12 * MiB)),  # bytes trade, different sizes
    ((4096,) * 6, (4096,) * 6),                      # one pool only
])
@pytest.mark.parametrize("fast", FAST)
def test_pools_trading_at_the_peak_match_slow_path_and_oracle(small, large, fast):
    # each pool's values rise past their guards while the other's fall: the guards move (retune)
    # and every peak must still be exact
    twin = Twin("", record_streams=False, fast=fast)
    peaks = observed(twin.allocs[0])
    for op, n in _trade(small, large):
        if op == "malloc":
            twin.malloc(n, 0)
        else:
            twin.free(n, False)
        stats = twin.allocs[0].memory_stats()
        for key, v in observed(twin.allocs[0]).items():
            peaks[key] = max(peaks[key], v)
            name, pool = key
            assert stats[f"{name}.{pool}.current"] == v, key
            assert stats[f"{name}.{pool}.peak"] == peaks[key], key
    twin.check()
    twin.finish()


def test_the_c_fast_paths_are_built_where_they_can_be():
    # the "c" cases above run fastalloc's C only where it builds: with a C compiler and Triton
    # (CI and the GPU machine have both), it must have
    import shutil
    pytest.importorskip("triton")
    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler: the Python allocator runs")
    make(CachingAllocator, "", 1 << 30)
    assert CachingAllocator.malloc is not CachingAllocator.malloc_python
    assert type(CachingAllocator.malloc).__name__ == "method_descriptor"
