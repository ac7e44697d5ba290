"""Copies between host and device, and pinned (page-locked) host memory, cached.

A copy from pinned memory with non_blocking=True is truly asynchronous: the call returns at once
and the copy runs in stream order. From pageable memory the driver stages through a pinned buffer
and the call returns once the host side is read (safe to reuse the source).

Pinned blocks are cached like device blocks: freed blocks wait for an event recorded on the
stream of their last copy, so a block is never rewritten while a copy still reads it.
"""
import bisect
import ctypes
import threading

import numpy as np

from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import graphs
from vibetensor.runtime.cuda import stream as streams


def _cu():
    return drv._driver()


def copy_h2d(dst_ptr, src_host_ptr, nbytes, stream, blocking):
    if nbytes:
        drv.call(_cu().cuMemcpyHtoDAsync, dst_ptr, src_host_ptr, nbytes, stream.handle)
        if blocking:
            stream.synchronize()


def copy_d2h(dst_host_ptr, src_ptr, nbytes, stream, blocking):
    """Device -> host. Blocking unless asked otherwise: the host is about to read the bytes."""
    if nbytes:
        drv.call(_cu().cuMemcpyDtoHAsync, dst_host_ptr, src_ptr, nbytes, stream.handle)
        if blocking:
            stream.synchronize()


def copy_d2d(dst_ptr, src_ptr, nbytes, stream):
    """Device -> device (also between devices: unified addressing routes peer copies)."""
    if nbytes:
        drv.call(_cu().cuMemcpyAsync, dst_ptr, src_ptr, nbytes, stream.handle)


def copy_peer(dst_ptr, dst_index, src_ptr, src_index, nbytes, stream):
    """Device `src_index` -> device `dst_index` (cuMemcpyPeerAsync, between the two primary
    contexts; the driver routes it over NVLink/PCIe, staging through the host without peer access)."""
    if nbytes:
        drv.call(_cu().cuMemcpyPeerAsync, dst_ptr, drv.context(dst_index), src_ptr, drv.context(src_index), nbytes,
                 stream.handle)


class PinnedBlock:
    """Page-locked host memory, returned to the cache when the last array over it dies.
    Ownership runs one way (array -> ctypes buffer -> block), so refcounting frees it."""
    __slots__ = ("ptr", "size", "events", "__weakref__")

    def __init__(self, ptr, size):
        self.ptr, self.size, self.events = ptr, size, []

    def record_stream(self, stream):
        """A copy on `stream` reads/writes this block: reuse must wait for it. A copy captured into a
        CUDA graph runs at every replay, so the graph keeps the block instead: an event recorded in
        a capture is never recorded for real (a later cuEventQuery of it fails with INVALID_VALUE)."""
        graph = graphs.current_graph()
        if graph is not None and graphs.is_stream_capturing(stream):
            graph.extras.setdefault("pinned blocks", []).append(self)  # freed once the graph is reset
        else:
            self.events.append(stream.record_event())

    def __del__(self):
        try:
            _pinned.free(self)
        except Exception:  # interpreter shutdown
            pass


class PinnedCache:
    """Freed pinned blocks by size; a block is reused once its recorded copies are done."""

    def __init__(self):
        self.lock = threading.Lock()
        self.free_blocks = []  # sorted (size, ptr, events)
        self.stats = {"allocated": 0, "reserved": 0}

    def alloc(self, nbytes):
        size = max(512, 1 << (max(nbytes, 1) - 1).bit_length())  # powers of two, as torch's host cache
        with self.lock:
            i = bisect.bisect_left(self.free_blocks, (size, 0))
            while i < len(self.free_blocks) and self.free_blocks[i][0] == size:
                _, ptr, events = self.free_blocks[i]
                if all(e.query() for e in events):
                    del self.free_blocks[i]
                    self.stats["allocated"] += size
                    return PinnedBlock(ptr, size)
                i += 1
        drv.ensure_context()
        ptr = int(drv.call(_cu().cuMemHostAlloc, size, 0))
        with self.lock:
            self.stats["allocated"] += size
            self.stats["reserved"] += size
        return PinnedBlock(ptr, size)

    def free(self, block):
        with self.lock:
            bisect.insort(self.free_blocks, (block.size, block.ptr, block.events))
            self.stats["allocated"] -= block.size

    def empty_cache(self):
        with self.lock:
            keep = []
            for size, ptr, events in self.free_blocks:
                if all(e.query() for e in events):
                    drv.call(_cu().cuMemFreeHost, ptr)
                    self.stats["reserved"] -= size
                else:
                    keep.append((size, ptr, events))
            self.free_blocks = keep


_pinned = PinnedCache()


def pinned_empty(nbytes):
    """A uint8 NumPy array of `nbytes` in pinned memory (its storage for a pinned CPU tensor)."""
    block = _pinned.alloc(nbytes)
    buf = (ctypes.c_uint8 * block.size).from_address(block.ptr)
    buf.block = block  # the buffer owns the block; the array below owns the buffer
    return np.ctypeslib.as_array(buf)[:nbytes]


def block_of(a):
    """The PinnedBlock under a NumPy array from pinned_empty (or a view of one), else None."""
    while a is not None:
        block = getattr(a, "block", None)
        if block is not None:
            return block
        a = getattr(a, "base", None) if not isinstance(a, memoryview) else a.obj
    return None


def host_memory_stats():
    return dict(_pinned.stats)


def is_pinned_array(a):
    """True when a NumPy array's memory is page-locked (registered with the driver)."""
    try:
        cu = _cu()
        err, _ = cu.cuPointerGetAttribute(cu.CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                          a.ctypes.data)
        return int(err) == 0
    except Exception:
        return False


def current_stream(index):
    return streams.current_stream(index)
