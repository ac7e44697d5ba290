"""The CUDA caching allocator's logic, on CPU, against a simulated device.

PyTorch cannot run its CUDA allocator on CPU, so expected numbers are derived by hand from
PyTorch's rules (c10/cuda/CUDACachingAllocator.cpp); each scripted test says why in comments.
Snapshots are checked against torch.cuda._memory_viz, the reader PyTorch's tools use.
"""
import gc
import pickle

import pytest

from vibetensor.runtime import cuda
from vibetensor.runtime.cuda.allocator import (
    ALL_CONTEXT, AllocatorConfig, CachingAllocator, MallocAsyncAllocator, OutOfMemoryError,
    allocation_size, config_from_env, format_size, make_allocator, round_size,
    _roundup_power2_next_division)
from vibetensor.runtime.cuda.simulated import SimulatedDevice

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
DEFAULT = AllocatorConfig()


def make(capacity=GiB, conf=""):
    dev = SimulatedDevice(capacity)
    return dev, CachingAllocator(dev, AllocatorConfig.parse(conf))


def check_stats(a, expected):
    stats = a.memory_stats()
    got = {k: stats[k] for k in expected}
    assert got == expected


# -- size rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize("request_size, rounded, segment", [
    (1, 512, 2 * MiB),
    (512, 512, 2 * MiB),
    (513, 1024, 2 * MiB),
    (1000, 1024, 2 * MiB),
    (MiB, MiB, 2 * MiB),                       # 1 MiB is still small
    (MiB + 1, MiB + 512, 20 * MiB),            # large, < 10 MiB: a 20 MiB segment
    (10 * MiB - 512, 10 * MiB - 512, 20 * MiB),
    (10 * MiB, 10 * MiB, 10 * MiB),            # >= 10 MiB: rounded up to 2 MiB
    (10 * MiB + 1, 10 * MiB + 512, 12 * MiB),
    (21 * MiB, 21 * MiB, 22 * MiB),
])
def test_rounding(request_size, rounded, segment):
    assert round_size(request_size, DEFAULT) == rounded
    assert allocation_size(rounded) == segment


@pytest.mark.parametrize("size, divisions, expected", [
    (1200, 4, 1280),          # PyTorch's own example: steps 1024, 1280, 1536, 1792
    (1024, 4, 1024),          # powers of two stay
    (3 * MiB + 1, 4, 3 * MiB + 512 * KiB),
    (3 * MiB + 1, 2, 4 * MiB),
])
def test_roundup_power2_divisions(size, divisions, expected):
    assert _roundup_power2_next_division(size, divisions) == expected


def test_roundup_power2_config_applies_above_minimum():
    cfg = AllocatorConfig.parse("roundup_power2_divisions:4")
    assert round_size(3 * MiB + 1, cfg) == 3 * MiB + 512 * KiB
    assert round_size(1200, cfg) == 1536  # below 512 * divisions: plain 512 rounding


@pytest.mark.parametrize("size, text", [
    (0, "0 bytes"), (1024, "1024 bytes"), (1025, "1.00 KiB"), (MiB, "1024.00 KiB"),
    (20 * MiB, "20.00 MiB"), (GiB, "1024.00 MiB"), (3 * GiB // 2, "1.50 GiB"),
])
def test_format_size(size, text):
    assert format_size(size) == text


# -- pools, splitting, merging --------------------------------------------------------------------
def test_small_allocation_stats():
    # 1000 B -> 1024 B block split off a new 2 MiB small segment; the rest is an inactive split block
    _, a = make()
    h = a.malloc(1000)
    assert (h.size, h.allocated_size) == (1000, 1024)
    check_stats(a, {
        "allocation.all.current": 1, "allocation.small_pool.current": 1,
        "allocation.large_pool.current": 0, "segment.small_pool.current": 1,
        "reserved_bytes.small_pool.current": 2 * MiB, "allocated_bytes.all.current": 1024,
        "active.all.current": 1, "active_bytes.all.current": 1024,
        "requested_bytes.all.current": 1000, "inactive_split.small_pool.current": 1,
        "inactive_split_bytes.small_pool.current": 2 * MiB - 1024, "num_device_alloc": 1})
    del h  # the block merges back with the remainder: no split block is left
    check_stats(a, {
        "allocation.all.current": 0, "allocation.all.freed": 1, "allocated_bytes.all.current": 0,
        "allocated_bytes.all.peak": 1024, "active.all.current": 0, "requested_bytes.all.current": 0,
        "inactive_split.all.current": 0, "inactive_split.all.freed": 1,
        "inactive_split_bytes.all.current": 0, "inactive_split_bytes.all.freed": 2 * MiB - 1024,
        "reserved_bytes.all.current": 2 * MiB, "segment.all.current": 1})


def test_split_and_coalesce_large():
    _, a = make()
    x = a.malloc(3 * MiB)  # new 20 MiB segment, 17 MiB split off (> 1 MiB remains)
    check_stats(a, {"segment.large_pool.current": 1, "reserved_bytes.large_pool.current": 20 * MiB,
                    "inactive_split.large_pool.current": 1,
                    "inactive_split_bytes.large_pool.current": 17 * MiB})
    y = a.malloc(5 * MiB)  # best fit: the 17 MiB remainder, split again (12 MiB remain)
    assert y.ptr == x.ptr + 3 * MiB
    check_stats(a, {"segment.large_pool.current": 1, "inactive_split.large_pool.current": 1,
                    "inactive_split_bytes.large_pool.current": 12 * MiB})
    del x  # a free block between the segment start and y: one more inactive split block
    check_stats(a, {"inactive_split.large_pool.current": 2,
                    "inactive_split_bytes.large_pool.current": 15 * MiB})
    del y  # merges with both neighbours: the whole segment is one free block again
    check_stats(a, {
        "inactive_split.large_pool.current": 0, "inactive_split.large_pool.peak": 2,
        "inactive_split.large_pool.allocated": 2, "inactive_split.large_pool.freed": 2,
        "inactive_split_bytes.large_pool.current": 0,
        "inactive_split_bytes.large_pool.peak": 17 * MiB,
        "inactive_split_bytes.large_pool.allocated": 20 * MiB,  # 17 (first split) + 3 (free x)
        "inactive_split_bytes.large_pool.freed": 20 * MiB,      # 5 (second split) + 15 (merge)
        "allocation.large_pool.allocated": 2, "allocated_bytes.large_pool.allocated": 8 * MiB,
        "allocated_bytes.large_pool.peak": 8 * MiB, "requested_bytes.all.allocated": 8 * MiB,
        "segment.all.current": 1, "allocation.small_pool.allocated": 0})
    z = a.malloc(19 * MiB)  # fits the merged 20 MiB block; 1 MiB left is not > 1 MiB: no split
    assert z.allocated_size == 20 * MiB


@pytest.mark.parametrize("first, second, second_size, inactive_split", [
    (1000, 1000, 1024, 1),                      # small pool: the rest of the 2 MiB stays split
    (MiB, MiB - 512, MiB - 512, 1),             # small: 512 B remain (>= 512): split
    (MiB, MiB - 511, MiB, 0),                   # rounds to 1 MiB: nothing remains
    (5 * MiB, 14 * MiB, 15 * MiB, 0),           # large: 1 MiB would remain, not > 1 MiB: no split
    (5 * MiB, 14 * MiB - 512, 14 * MiB - 512, 1),  # 1 MiB + 512 B remain: split
    (5 * MiB, 13 * MiB, 13 * MiB, 1),
])
def test_split_thresholds(first, second, second_size, inactive_split):
    _, a = make()
    h1 = a.malloc(first)
    h2 = a.malloc(second)
    assert h2.ptr == h1.ptr + h1.allocated_size  # carved from the first segment's remainder
    assert h2.allocated_size == second_size
    assert a.memory_stats()["inactive_split.all.current"] == inactive_split
    assert a.memory_stats()["segment.all.current"] == 1


def test_reuse_same_stream_not_other_stream():
    dev, a = make()
    s0, s1 = dev.default_stream, dev.new_stream()
    h = a.malloc(1000, s0)
    p = h.ptr
    del h
    h = a.malloc(1000, s0)
    assert h.ptr == p  # the cached block comes back
    del h
    h1 = a.malloc(1000, s1)
    assert h1.ptr != p and dev.num_malloc == 2  # another stream gets its own segment
    snap = {s["address"]: s for s in a.snapshot()[0]}
    assert snap[h1.ptr]["stream"] == s1.cuda_stream and snap[p]["stream"] == 0


def test_free_by_refcount_without_gc():
    gc.disable()
    try:
        _, a = make()
        h = a.malloc(4096)
        alias = h
        del h
        assert a.memory_allocated() == 4096  # a reference remains
        del alias
        assert a.memory_allocated() == 0 and a.memory_reserved() == 2 * MiB
        h = a.malloc(0)  # empty allocations have no block (null pointer), like PyTorch
        assert h.ptr == 0 and a.memory_allocated() == 0
        del h
    finally:
        gc.enable()


def test_explicit_free_is_idempotent_and_raw_pointers():
    _, a = make()
    h = a.malloc(100)
    h.free()
    h.free()
    assert h.freed and a.memory_allocated() == 0
    ptr = a.raw_alloc(3000)
    assert a.memory_allocated() == 3072
    a.raw_delete(ptr)
    assert a.memory_allocated() == 0
    with pytest.raises(RuntimeError, match="invalid device pointer"):
        a.raw_delete(ptr)


def test_deferred_free_when_reentrant():
    # a handle collected (by the cyclic GC) while the allocator is busy frees after the outer call
    _, a = make()
    h = a.malloc(1000)
    a._enter()
    try:
        a.free(h, from_gc=True)
        assert a.memory_allocated() == 1024  # not yet: deferred
    finally:
        a._exit()
    assert a.memory_allocated() == 0


# -- record_stream --------------------------------------------------------------------------------
def test_record_stream_delays_reuse_until_event_completes():
    dev, a = make()
    s0, s1 = dev.default_stream, dev.new_stream()
    h = a.malloc(1000, s0)
    p = h.ptr
    s1.launch()              # a kernel on s1 is still using the memory
    h.record_stream(s1)
    del h                    # free requested: an event is recorded on s1; the block waits
    check_stats(a, {"allocation.all.current": 0, "allocated_bytes.all.current": 0,
                    "active.all.current": 1, "active_bytes.all.current": 1024})
    seg = a.snapshot()[0][0]
    assert [b["state"] for b in seg["blocks"]] == ["active_pending_free", "inactive"]
    h2 = a.malloc(1000, s0)
    assert h2.ptr == p + 1024  # the pending block is skipped
    s1.finish()              # the kernel is done; the next malloc notices (lazily)
    del h2
    h3 = a.malloc(1000, s0)
    assert h3.ptr == p
    check_stats(a, {"active.all.current": 1, "num_sync_all_streams": 0, "segment.all.current": 1})


def test_blocks_recycled_by_merges_and_segment_heads():
    # merges hand their absorbed Block objects to later splits, and the segment list follows
    # the block heading each segment: neither may leak state (streams, events, stacks)
    dev, a = make()
    s1 = dev.new_stream()
    a.record_memory_history(enabled="all", context="all")
    x, y = a.malloc(1000), a.malloc(1000)          # [x][y][rest]
    s1.launch()
    y.record_stream(s1)
    del y                                          # waits on s1's event
    s1.finish()
    z = a.malloc(1000)  # y's block, now free, absorbed rest; z takes y's place from a recycled Block
    assert z.ptr == x.ptr + 1024 and z.stream is dev.default_stream
    w = a.malloc(12 * MiB)                         # a whole segment: no free block points at it
    segments = a.snapshot()[0]
    assert [[b["state"] for b in s["blocks"]] for s in segments] == \
        [["active_allocated", "active_allocated", "inactive"], ["active_allocated"]]
    here = "test_blocks_recycled_by_merges_and_segment_heads"
    assert segments[0]["blocks"][1]["frames"][0]["name"] == here
    del x, z            # z absorbs x (the head) and the rest: the segment's stack moves with it
    small, large = a.snapshot()[0]
    assert [b["state"] for b in small["blocks"]] == ["inactive"]
    assert small["address"] == small["blocks"][0]["address"]
    assert small["frames"][0]["name"] == here
    check_stats(a, {"inactive_split.all.current": 0, "inactive_split.all.peak": 2,
                    "active.all.current": 1, "active_bytes.all.current": 12 * MiB})
    del w
    a.empty_cache()
    assert a.snapshot()[0] == [] and dev.live == {}
    _check_consistent(a)


def test_record_stream_on_allocation_stream_is_ignored():
    dev, a = make()
    s0 = dev.default_stream
    h = a.malloc(1000, s0)
    p = h.ptr
    s0.launch()
    h.record_stream(s0)
    del h
    assert a.malloc(1000, s0).ptr == p  # no event was needed


def test_empty_cache_waits_for_events_and_frees_whole_segments_only():
    dev, a = make()
    s1 = dev.new_stream()
    keep = a.malloc(1000)            # its 2 MiB small segment stays (partly used)
    big = a.malloc(3 * MiB)          # 20 MiB large segment
    s1.launch()
    big.record_stream(s1)
    del big                          # pending on s1
    assert a.memory_reserved() == 22 * MiB
    a.empty_cache()                  # synchronises the event, then frees the now-free segment
    assert s1.query()
    check_stats(a, {"reserved_bytes.all.current": 2 * MiB, "segment.all.current": 1,
                    "num_device_free": 1, "num_sync_all_streams": 1,
                    "active.all.current": 1})
    assert len(dev.live) == 1
    del keep
    a.empty_cache()
    assert a.memory_reserved() == 0 and dev.live == {}


# -- statistics -------------------------------------------------------------------------------------
STAT_NAMES = ["allocation", "segment", "active", "inactive_split", "allocated_bytes",
              "reserved_bytes", "active_bytes", "inactive_split_bytes", "requested_bytes"]


def test_stat_keys_match_pytorch():
    _, a = make()
    keys = set(a.memory_stats())
    expected = {f"{s}.{p}.{m}" for s in STAT_NAMES for p in ("all", "small_pool", "large_pool")
                for m in ("current", "peak", "allocated", "freed")}
    expected |= {f"{s}.{m}" for s in ("oversize_allocations", "oversize_segments")
                 for m in ("current", "peak", "allocated", "freed")}
    expected |= {"num_alloc_retries", "num_ooms", "num_sync_all_streams", "num_device_alloc",
                 "num_device_free", "max_split_size"}
    assert keys == expected
    assert list(a.memory_stats()) == sorted(keys)  # torch returns them sorted
    assert a.memory_stats()["max_split_size"] == -1  # SIZE_MAX in an int64: unlimited


def test_peak_and_reset():
    _, a = make()
    x, y = a.malloc(3 * MiB), a.malloc(5 * MiB)
    del x, y
    assert (a.memory_allocated(), a.max_memory_allocated()) == (0, 8 * MiB)
    assert (a.memory_reserved(), a.max_memory_reserved()) == (20 * MiB, 20 * MiB)
    a.reset_peak_memory_stats()
    assert a.max_memory_allocated() == 0 and a.max_memory_reserved() == 20 * MiB
    z = a.malloc(MiB)
    assert a.max_memory_allocated() == MiB
    a.reset_accumulated_memory_stats()
    check_stats(a, {"allocation.all.allocated": 0, "allocation.all.freed": 0,
                    "allocation.all.current": 1, "num_device_alloc": 0})
    del z


def test_active_peak_rises_while_a_free_waits_on_an_event():
    # a freed block pending on another stream stays active: the next malloc raises the active
    # peaks (2 blocks, 2 KiB) though allocated ones stay at 1 block, 1 KiB
    dev, a = make()
    s0, s1 = dev.default_stream, dev.new_stream()
    h = a.malloc(1000, s0)
    s1.launch()
    h.record_stream(s1)
    del h
    h2 = a.malloc(1000, s0)
    check_stats(a, {"allocation.all.peak": 1, "allocated_bytes.all.peak": 1024,
                    "active.all.peak": 2, "active_bytes.all.peak": 2048,
                    "active.small_pool.peak": 2, "requested_bytes.all.peak": 2000,
                    "allocation.all.allocated": 2, "active.all.freed": 0, "allocation.all.freed": 1})
    s1.finish()
    del h2
    h3 = a.malloc(100)  # processes the event: both freed blocks complete
    check_stats(a, {"active.all.freed": 2, "active.all.current": 1, "active.all.peak": 2})
    del h3


def test_storage_memory_follows_the_current_allocators():
    # runtime.device_alloc remembers each device's malloc; replacing the allocators forgets it
    from vibetensor import runtime
    from vibetensor.tensor.device import device
    cuda0 = device("cuda", 0)
    try:
        for capacity in (GiB, 2 * GiB):
            cuda._reset(factory=lambda i, c=capacity: SimulatedDevice(c, index=i), config=AllocatorConfig())
            h = runtime.device_alloc(4096, cuda0)
            assert cuda.get_allocator(0).device.capacity == capacity
            assert cuda.memory_allocated(0) == 4096
            del h
            assert cuda.memory_allocated(0) == 0
    finally:
        cuda._reset()


def test_summary_table():
    _, a = make()
    h = a.malloc(3 * MiB)
    text = a.memory_summary()
    lines = text.splitlines()
    assert all(len(line) == 77 for line in lines)  # '|' + 75 + '|', as torch prints
    assert "vibetensor CUDA memory summary, device ID 0" in lines[1]
    row = next(line for line in lines if line.startswith("| Allocated memory"))
    assert row == "| Allocated memory      |   3072 KiB |   3072 KiB |   3072 KiB |      0 B   |"
    assert len(a.memory_summary(abbreviated=True).splitlines()) < len(lines)
    del h


# -- out of memory -------------------------------------------------------------------------------------
def test_oom_frees_cache_retries_then_raises():
    dev, a = make(capacity=64 * MiB)
    x = a.malloc(30 * MiB)
    y = a.malloc(20 * MiB)
    del x                                   # 30 MiB cached
    z = a.malloc(40 * MiB)                  # 50 + 40 > 64: free the cache, retry: 20 + 40 fits
    check_stats(a, {"num_alloc_retries": 1, "num_ooms": 0, "num_sync_all_streams": 1,
                    "num_device_free": 1, "reserved_bytes.all.current": 60 * MiB})
    with pytest.raises(OutOfMemoryError) as info:
        a.malloc(30 * MiB)                  # nothing left to free
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    assert msg.startswith("CUDA out of memory. Tried to allocate 30.00 MiB. GPU 0 has a total "
                          "capacity of 64.00 MiB of which 4.00 MiB is free. Of the allocated "
                          "memory 60.00 MiB is allocated by vibetensor, and 0 bytes is reserved "
                          "by vibetensor but unallocated.")
    check_stats(a, {"num_alloc_retries": 2, "num_ooms": 1, "allocation.all.current": 2,
                    "reserved_bytes.all.current": 60 * MiB})
    del y                                   # still usable afterwards
    w = a.malloc(24 * MiB)                  # 60 + 24 > 64: y's cached segment is freed first
    assert a.memory_reserved() == 64 * MiB and a.memory_allocated() == 64 * MiB
    del z, w


def test_oom_message_reports_reserved_unallocated_and_fraction():
    dev, a = make(capacity=64 * MiB)
    small = a.malloc(1000)  # 2 MiB reserved, 1024 B allocated: the rest is split, can't be freed
    a.set_memory_fraction(0.5)
    # 31 MiB needs a 32 MiB segment (rounded to 2 MiB); 2 + 32 > 32 allowed
    with pytest.raises(OutOfMemoryError, match=r"Tried to allocate 32\.00 MiB\. GPU 0 has a total "
                       r"capacity of 64\.00 MiB of which 62\.00 MiB is free\. 32\.00 MiB allowed; "
                       r"Of the allocated memory 1024 bytes is allocated by vibetensor, and 2\.00 "
                       r"MiB is reserved by vibetensor but unallocated\."):
        a.malloc(31 * MiB)
    del small


def test_oom_history_entry():
    dev, a = make(capacity=8 * MiB)
    a.record_memory_history()
    with pytest.raises(OutOfMemoryError):
        a.malloc(9 * MiB)
    oom = a.snapshot()[1][-1]
    assert oom["action"] == "oom" and oom["size"] == 9 * MiB and oom["device_free"] == 8 * MiB


def test_one_exabyte_request():
    _, a = make()
    with pytest.raises(OutOfMemoryError, match="more than 1EB"):
        a.malloc(1 << 60)


# -- configuration -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, attr, value", [
    ("max_split_size_mb:128,garbage_collection_threshold:0.8", "max_split_size", 128 * MiB),
    ("max_split_size_mb:128,garbage_collection_threshold:0.8", "garbage_collection_threshold", 0.8),
    (" max_split_size_mb : 20 ", "max_split_size", 20 * MiB),
    ("backend:cudaMallocAsync", "backend", "cudaMallocAsync"),
    ("backend:native", "backend", "native"),
    ("roundup_power2_divisions:4", "roundup_power2_divisions", [4] * 16),
    ("roundup_power2_divisions:[256:1,512:2,>:4]", "roundup_power2_divisions",
     [1] * 9 + [2] + [4] * 6),
    ("max_non_split_rounding_mb:64", "max_non_split_rounding_size", 64 * MiB),
    ("per_process_memory_fraction:0.25", "per_process_memory_fraction", 0.25),
    ("", "max_split_size", (1 << 64) - 1),
])
def test_config_parse(text, attr, value):
    assert getattr(AllocatorConfig.parse(text), attr) == value


@pytest.mark.parametrize("text, message", [
    ("max_split_size_mb:19", "max_split_size_mb too small, must be >= 20"),
    ("garbage_collection_threshold:1.0", r"garbage_collect_threshold is invalid, set it in \(0.0, 1.0\)"),
    ("garbage_collection_threshold:0", "garbage_collect_threshold is invalid"),
    ("roundup_power2_divisions:3", "the divisions has to be power of 2"),
    ("foo:1", "Unrecognized key 'foo' in CUDA allocator config."),
    ("backend:bogus", "Unknown allocator backend, options are native and cudaMallocAsync"),
    ("max_split_size_mb", "Error parsing Allocator settings, expected :"),
    ("max_split_size_mb:64;gc:1", "Expected an unsigned integer"),
    ("max_split_size_mb:64 garbage_collection_threshold:0.5", "Expected an unsigned integer"),
])
def test_config_errors(text, message):
    with pytest.raises(ValueError, match=message):
        AllocatorConfig.parse(text)


def test_config_warnings():
    with pytest.warns(UserWarning, match="expandable_segments not supported"):
        AllocatorConfig.parse("expandable_segments:True")
    with pytest.warns(UserWarning, match="backend:cudaMallocAsync ignores"):
        AllocatorConfig.parse("backend:cudaMallocAsync,max_split_size_mb:64")


@pytest.mark.parametrize("env, max_split_mb", [
    ({"VIBETENSOR_CUDA_ALLOC_CONF": "max_split_size_mb:64",
      "PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}, 64),
    ({"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}, 128),
    ({"PYTORCH_ALLOC_CONF": "max_split_size_mb:96", "PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}, 96),
    ({}, None),
])
def test_config_from_env(env, max_split_mb):
    cfg = config_from_env(env)
    assert cfg.max_split_size == (max_split_mb * MiB if max_split_mb else (1 << 64) - 1)


def test_max_split_size():
    # blocks >= 40 MiB are never split; a cached one serves only requests >= 40 MiB that are
    # within 20 MiB (max_non_split_rounding) of its size
    _, a = make(conf="max_split_size_mb:40")
    assert a.memory_stats()["max_split_size"] == 40 * MiB
    x = a.malloc(50 * MiB)
    check_stats(a, {"oversize_allocations.current": 1, "oversize_segments.current": 1})
    del x
    y = a.malloc(30 * MiB)              # < max_split: the 50 MiB block is not for it
    assert a.memory_reserved() == 80 * MiB
    z = a.malloc(45 * MiB)              # 50 < 45 + 20: takes the whole oversize block, unsplit
    assert z.allocated_size == 50 * MiB and a.memory_reserved() == 80 * MiB
    del z
    v = a.malloc(70 * MiB)
    del v                               # cached: 50 and 70 MiB
    w = a.malloc(40 * MiB)              # best fit 50 MiB (50 < 60)
    assert w.allocated_size == 50 * MiB
    u = a.malloc(48 * MiB)              # only 70 MiB is cached, and 70 >= 48 + 20: new segment
    assert u.allocated_size == 48 * MiB
    check_stats(a, {"oversize_allocations.current": 2, "oversize_segments.current": 3,
                    "inactive_split.all.current": 0})
    del y, w, u


def test_max_split_releases_oversize_blocks_before_flushing():
    # out of memory with an unusable cached oversize block: it alone is released (no sync, no retry)
    _, a = make(capacity=128 * MiB, conf="max_split_size_mb:40")
    x = a.malloc(70 * MiB)
    y = a.malloc(40 * MiB)
    del x
    z = a.malloc(44 * MiB)              # 70 >= 44 + 20: can't use it; 110 + 44 > 128
    check_stats(a, {"num_device_free": 1, "num_alloc_retries": 0, "num_sync_all_streams": 0,
                    "reserved_bytes.all.current": 84 * MiB})
    del y, z


def test_garbage_collection_threshold():
    # GC runs only with a memory fraction set (PyTorch's rule); threshold 0.5 of 100 MiB = 50 MiB
    dev, a = make(capacity=100 * MiB, conf="garbage_collection_threshold:0.5")
    a.set_memory_fraction(1.0)
    x = a.malloc(30 * MiB)              # large-pool lookups so far: 1
    del x                               # cached at age base 1
    y = a.malloc(32 * MiB)              # lookup 2, no fit; 30 <= 50: no GC; new segment
    del y                               # cached at age base 2
    z = a.malloc(34 * MiB)              # lookup 3, no fit; 62 > 50: GC frees blocks of age >= avg
    # ages: x's block 2, y's block 1, average 1.5: only the older (x's, 30 MiB) goes, enough
    assert a.memory_reserved() == 66 * MiB
    check_stats(a, {"num_device_free": 1, "num_sync_all_streams": 0})
    del z


def test_garbage_collection_needs_fraction():
    _, a = make(capacity=100 * MiB, conf="garbage_collection_threshold:0.5")
    x = a.malloc(30 * MiB)
    del x
    y = a.malloc(32 * MiB)
    del y
    z = a.malloc(34 * MiB)
    assert a.memory_reserved() == 96 * MiB
    del z


def test_per_process_memory_fraction_limits_reserved():
    _, a = make(capacity=100 * MiB, conf="per_process_memory_fraction:0.5")
    h = a.malloc(40 * MiB)
    with pytest.raises(OutOfMemoryError, match="50.00 MiB allowed"):
        a.malloc(12 * MiB)
    assert a.get_memory_fraction() == 0.5
    del h


# -- CUDA graph private pools --------------------------------------------------------------------------
def test_graph_private_pool():
    dev, a = make()
    capture = dev.new_stream()
    pool = cuda.graph_pool_handle()
    outside = a.malloc(1000)
    a.begin_allocate_to_pool(pool, lambda s: s is capture)
    x = a.malloc(1000, capture)                   # from the private pool: its own segment
    other = a.malloc(1000)                        # other streams are unaffected
    assert other.ptr == outside.ptr + 1024
    del x
    x2 = a.malloc(1000, capture)                  # frees stay in the pool and are reused there
    assert a.memory_reserved() == 4 * MiB
    a.end_allocate_to_pool(pool)
    seg_pools = {s["address"]: s["segment_pool_id"] for s in a.snapshot()[0]}
    assert seg_pools[x2.ptr] == pool and seg_pools[outside.ptr] == (0, 0)
    del x2
    y = a.malloc(1000, capture)                   # capture over: default pool, new segment
    assert a.snapshot()[0][-1]["segment_pool_id"] == (0, 0) and a.memory_reserved() == 6 * MiB
    del y
    a.empty_cache()                               # y's segment goes; the pool's is held by its graph
    assert a.memory_reserved() == 4 * MiB and len(dev.live) == 2
    a.release_pool(pool)                          # graph destroyed...
    assert a.memory_reserved() == 4 * MiB
    a.empty_cache()                               # ...now its free segments go
    assert a.memory_reserved() == 2 * MiB and pool not in a.graph_pools
    del outside, other


def test_graph_pool_shared_and_errors():
    dev, a = make()
    pool = cuda.graph_pool_handle()
    a.begin_allocate_to_pool(pool)
    with pytest.raises(RuntimeError, match="already recording"):
        a.begin_allocate_to_pool(pool)
    h = a.malloc(1000)
    a.end_allocate_to_pool(pool)
    a.begin_allocate_to_pool(pool)                # a second capture shares the pool
    assert a.graph_pools[pool].use_count == 2
    with pytest.raises(RuntimeError, match="while a CUDA graph capture"):
        a.empty_cache()
    a.end_allocate_to_pool(pool)
    with pytest.raises(RuntimeError, match="not currently recording"):
        a.end_allocate_to_pool(pool)
    a.release_pool(pool)
    a.release_pool(pool)
    a.empty_cache()                               # h (a live output) keeps its segment alive
    assert a.memory_reserved() == 2 * MiB
    del h
    a.empty_cache()
    assert a.memory_reserved() == 0 and a.graph_pools == {}


def test_record_stream_during_capture_is_deferred():
    dev, a = make()
    side = dev.new_stream()
    pool = cuda.graph_pool_handle()
    h = a.malloc(1000)
    p = h.ptr
    side.launch()
    h.record_stream(side)
    a.begin_allocate_to_pool(pool, lambda s: s is side)
    del h                                         # no events during capture: decided later
    assert a.needs_events_deferred and a.memory_stats()["active.all.current"] == 1
    a.end_allocate_to_pool(pool)
    side.finish()
    h2 = a.malloc(1000)                           # next malloc inserts and processes the events
    assert h2.ptr == p                            # ...so the block is free again and reused
    assert not a.needs_events_deferred and a.memory_stats()["active.all.current"] == 1


# -- snapshots and history --------------------------------------------------------------------------
def test_snapshot_structure():
    dev, a = make()
    a.record_memory_history(enabled="all", context="all")
    x = a.malloc(1000)
    y = a.malloc(3 * MiB)
    del y
    segments, trace = a.snapshot()
    assert [s["segment_type"] for s in segments] == ["small", "large"]
    small = segments[0]
    assert set(small) == {"device", "address", "total_size", "allocated_size", "active_size",
                          "requested_size", "stream", "segment_type", "segment_pool_id",
                          "is_expandable", "frames", "blocks"}
    assert (small["total_size"], small["allocated_size"], small["active_size"],
            small["requested_size"]) == (2 * MiB, 1024, 1024, 1000)
    b0, b1 = small["blocks"]
    assert (b0["address"], b0["size"], b0["requested_size"], b0["state"]) == \
        (x.ptr, 1024, 1000, "active_allocated")
    assert (b1["address"], b1["size"], b1["state"]) == (x.ptr + 1024, 2 * MiB - 1024, "inactive")
    here = b0["frames"][0]
    assert here["name"] == "test_snapshot_structure" and here["filename"] == __file__
    assert small["frames"][0]["name"] == "test_snapshot_structure"  # where cudaMalloc happened
    assert b1["frames"] == [] and segments[1]["blocks"][0]["state"] == "inactive"
    actions = [(e["action"], e["size"]) for e in trace]
    assert actions == [("segment_alloc", 2 * MiB), ("alloc", 1000), ("segment_alloc", 20 * MiB),
                       ("alloc", 3 * MiB), ("free_requested", 3 * MiB),
                       ("free_completed", 3 * MiB)]
    assert all(e["frames"][0]["name"] == "test_snapshot_structure" for e in trace)
    assert a.snapshot()[1][-1]["action"] == "snapshot"  # taking one is recorded
    del x


def test_snapshot_opens_in_torch_memory_viz():
    torch = pytest.importorskip("torch")
    from torch.cuda import _memory_viz
    cuda._reset(factory=lambda i: SimulatedDevice(GiB, index=i), config=AllocatorConfig())
    try:
        cuda._record_memory_history(max_entries=100)
        keep = [cuda.alloc(n, 0) for n in (1000, 3 * MiB, 25 * MiB)]
        drop = cuda.alloc(5 * MiB, 0)
        del drop
        snap = pickle.loads(pickle.dumps(cuda._snapshot()))  # plain data, as memory_viz reads it
        assert "Summary of segments" in _memory_viz.segsum(snap)
        text = _memory_viz.trace(snap)
        assert "cudaMalloc" in text and "del " in text
        html = _memory_viz.trace_plot(snap)
        assert "snapshot.pickle" in html
        assert _memory_viz.segment_plot(snap)
        assert cuda.memory_snapshot() == snap["segments"]
        assert cuda.memory_snapshot(mempool_id=(0, 0)) == snap["segments"]
        assert cuda.memory_snapshot(mempool_id=cuda.graph_pool_handle()) == []
        del keep
    finally:
        cuda._reset()


def test_history_levels_and_ring_buffer():
    _, a = make()
    a.record_memory_history(enabled="all", context=None, max_entries=3)
    for _ in range(3):
        h = a.malloc(1000)
        del h
    trace = a.snapshot()[1]  # the newest three of ten entries, oldest first, without stacks
    assert [e["action"] for e in trace] == ["alloc", "free_requested", "free_completed"]
    assert all(e["frames"] == [] for e in trace)
    a.record_memory_history(enabled="state", context="state")  # no trace, stacks for live blocks
    h = a.malloc(1000)
    segments, trace = a.snapshot()
    assert segments[0]["blocks"][0]["frames"][0]["name"] == "test_history_levels_and_ring_buffer"
    assert [(e["action"], e["frames"]) for e in trace] == [("alloc", [])]  # a one-entry buffer
    a.record_memory_history(enabled=None)
    assert a.snapshot()[1] == [] and a.history.context == 0
    del h
    for context, same in (("alloc", True), ("all", False)):
        a.record_memory_history(enabled="all", context=context)
        h = a.malloc(1000)
        del h  # context "alloc": frees carry the allocation's stack; "all": their own
        alloc, requested, completed = a.snapshot()[1][-3:]
        assert [alloc["action"], requested["action"]] == ["alloc", "free_requested"]
        assert alloc["frames"][0]["name"] == "test_history_levels_and_ring_buffer"
        assert (requested["frames"] == alloc["frames"]) == same
        assert completed["frames"] == requested["frames"]
    assert a.history.context == ALL_CONTEXT
    with pytest.raises(RuntimeError, match="expected state to be"):
        a.record_memory_history(enabled="sometimes")


# -- the cudaMallocAsync backend ----------------------------------------------------------------
def test_malloc_async_backend():
    dev = SimulatedDevice(64 * MiB)
    a = make_allocator(dev, AllocatorConfig.parse("backend:cudaMallocAsync"))
    assert isinstance(a, MallocAsyncAllocator) and a.backend == "cudaMallocAsync"
    s1 = dev.new_stream()
    x = a.malloc(1000)
    p = x.ptr
    assert (a.memory_allocated(), a.memory_reserved()) == (1024, 1024)
    del x                                   # stream-ordered free: reusable on its stream
    assert a.memory_allocated() == 0 and a.memory_reserved() == 1024
    assert a.malloc(1000).ptr == p
    y = a.malloc(4 * MiB)
    s1.launch()
    y.record_stream(s1)
    q = y.ptr
    del y                                   # the free waits for s1's work
    z = a.malloc(4 * MiB, s1)
    assert z.ptr != q                       # not reusable by s1 before the free completes
    stats = a.memory_stats()
    assert stats["allocated_bytes.all.peak"] == 4 * MiB and stats["allocation.all.current"] == 0
    a.reset_peak_memory_stats()
    assert a.max_memory_allocated() == a.memory_allocated()
    a.empty_cache()                         # synchronises, trims the pool
    assert a.memory_reserved() == 4 * MiB
    with pytest.raises(RuntimeError, match="not meaningful"):
        a.snapshot()
    with pytest.warns(UserWarning, match="no effect"):
        a.reset_accumulated_memory_stats()
    assert "memory summary" in a.memory_summary()
    del z


def test_malloc_async_oom_trims_and_retries():
    dev = SimulatedDevice(64 * MiB)
    a = MallocAsyncAllocator(dev)
    x = a.malloc(40 * MiB)
    del x                                   # 40 MiB stays reserved in the driver's pool
    y = a.malloc(50 * MiB)                  # fails, trims the pool, succeeds
    assert a.memory_reserved() == 50 * MiB
    with pytest.raises(OutOfMemoryError, match=r"Allocation on device 0 would exceed allowed "
                       r"memory. \(out of memory\)\nCurrently allocated     : 50.00 MiB"):
        a.malloc(20 * MiB)
    z = a.malloc(10 * MiB)                  # still usable
    del y, z


def test_malloc_async_graph_pool():
    dev = SimulatedDevice(64 * MiB)
    a = MallocAsyncAllocator(dev)
    pool = cuda.graph_pool_handle()
    a.begin_allocate_to_pool(pool)
    x = a.malloc(MiB)
    p = x.ptr
    del x                                   # kept for the graph, not given back to the driver
    a.end_allocate_to_pool(pool)
    assert (a.memory_allocated(), a.memory_reserved()) == (MiB, MiB)
    y = a.malloc(MiB)
    assert y.ptr != p and a.memory_reserved() == 2 * MiB
    a.release_pool(pool)                    # graph gone: the memory returns to the driver's pool
    assert a.memory_allocated() == MiB
    a.empty_cache()
    assert a.memory_reserved() == MiB
    del y


# -- the module front ------------------------------------------------------------------------------
def test_module_api_with_simulated_devices():
    cuda._reset(factory=lambda i: SimulatedDevice(GiB, index=i), config=AllocatorConfig())
    try:
        assert cuda.memory_stats(0) == {} and cuda.memory_allocated(0) == 0
        h0 = cuda.alloc(1000, "cuda:0")
        h1 = cuda.alloc(3 * MiB, 1)
        assert cuda.memory_allocated(0) == 1024 and cuda.memory_allocated(1) == 3 * MiB
        assert h1.device_index == 1 and cuda.get_allocator_backend() == "native"
        cuda.record_stream(h0, cuda.get_allocator(0).device.new_stream())
        with pytest.raises(ValueError, match="Expected a cuda device"):
            cuda.memory_allocated("cpu")
        ptr = cuda.caching_allocator_alloc(100, 0)
        cuda.caching_allocator_delete(ptr)
        del h0, h1
        assert cuda.max_memory_allocated(1) == 3 * MiB
        cuda.reset_peak_memory_stats(1)
        assert cuda.max_memory_allocated(1) == 0
        cuda.empty_cache()
        assert cuda.memory_reserved(0) == 0 and cuda.memory_reserved(1) == 0
        assert "device ID 1" in cuda.memory_summary(1)
        assert "device ID 3" in cuda.memory_summary(3)  # never used: all zeros
        with pytest.raises(ValueError, match="Invalid fraction value"):
            cuda.set_per_process_memory_fraction(1.5)
        assert cuda.mem_get_info(0) == (GiB, GiB)
        cuda._set_allocator_settings("max_split_size_mb:64")
        assert cuda.memory_stats(0)["max_split_size"] == 64 * MiB
        with pytest.raises(RuntimeError, match="backend parsed at runtime"):
            cuda._set_allocator_settings("backend:cudaMallocAsync")
    finally:
        cuda._reset()


def test_module_default_device_is_the_gpu():
    """With no simulated device registered, memory comes from the real GPU; without one, a clear
    RuntimeError (never a crash)."""
    from vibetensor.runtime.cuda import driver
    cuda._reset()
    if driver.is_available():
        a = cuda.alloc(10, 0)
        assert a.ptr and a.size >= 10
    else:
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            cuda.alloc(10, 0)


def test_package_import_is_cuda_free():
    import subprocess
    import sys
    code = ("import sys; import vibetensor.runtime.cuda as c; "
            "assert not any(m.startswith('cuda') for m in sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_threads_share_an_allocator():
    import threading
    _, a = make(capacity=8 << 30)  # 4 threads hold ~1.2 GB at peak: room enough that only races could fail
    errors = []

    def work(seed):
        try:
            held = []
            for i in range(300):
                held.append(a.malloc((seed * 7919 + i * 104729) % (3 * MiB) + 1))
                if i % 3 == 0:
                    held.pop(0)
        except Exception as e:  # reported below: an assert in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _check_consistent(a)
    assert a.memory_allocated() == 0 and a.memory_stats()["allocation.all.allocated"] == 1200


def test_many_random_operations_keep_invariants():
    # a random mix of sizes, streams, record_stream and frees; after everything is freed and
    # the cache emptied, every statistic's current value returns to zero
    import random
    rng = random.Random(0)
    dev, a = make(capacity=512 * MiB, conf="max_split_size_mb:64")
    streams = [dev.default_stream, dev.new_stream(), dev.new_stream()]
    live = []
    for step in range(600):
        r = rng.random()
        if r < 0.55 or not live:
            n = rng.choice([rng.randrange(1, 4096), rng.randrange(1, 2 * MiB),
                            rng.randrange(MiB, 30 * MiB), rng.randrange(60 * MiB, 90 * MiB)])
            try:
                live.append(a.malloc(n, rng.choice(streams)))
            except OutOfMemoryError:
                pass
        elif r < 0.65:
            s = rng.choice(streams)
            s.launch()
            live[rng.randrange(len(live))].record_stream(s)
        elif r < 0.7:
            rng.choice(streams).finish()
        else:
            live.pop(rng.randrange(len(live)))
        if step % 50 == 0:
            _check_consistent(a)
    live.clear()
    dev.synchronize()
    a.empty_cache()
    stats = a.memory_stats()
    assert all(v == 0 for k, v in stats.items() if k.endswith(".current")), stats
    assert dev.live == {}


def _check_consistent(a):
    """Segments tile exactly; stats agree with the blocks; no two free neighbours."""
    segments, _ = a.snapshot()
    stats = a.memory_stats()
    assert sum(s["total_size"] for s in segments) == stats["reserved_bytes.all.current"]
    assert sum(s["allocated_size"] for s in segments) == stats["allocated_bytes.all.current"]
    assert sum(s["active_size"] for s in segments) == stats["active_bytes.all.current"]
    split_free = 0
    for s in segments:
        addr = s["address"]
        states = [b["state"] for b in s["blocks"]]
        for b in s["blocks"]:
            assert b["address"] == addr
            addr += b["size"]
        assert addr == s["address"] + s["total_size"]
        assert ("inactive", "inactive") not in zip(states, states[1:])
        if len(states) > 1:
            split_free += states.count("inactive")
    assert split_free == stats["inactive_split.all.current"]
