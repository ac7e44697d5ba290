"""The CUDA caching allocator: PyTorch's CUDACachingAllocator logic, in Python, knowing nothing of Tensor.

Why a cache: cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so freed
memory is kept in pools and handed out again. The rules below are PyTorch's (c10/cuda/
CUDACachingAllocator.cpp), so sizes, statistics and snapshots match what PyTorch users expect:

- Requests round up to 512 bytes. Requests <= 1 MiB come from the small pool, packed into 2 MiB
  segments; larger ones from the large pool: requests < 10 MiB get a 20 MiB segment, larger ones a
  segment rounded up to 2 MiB.
- A request takes the smallest cached block of the same stream that fits (best fit), splitting off
  the rest (small pool: if >= 512 bytes remain; large pool: if > 1 MiB remains). Freed blocks merge
  with free neighbours of their segment.
- Blocks are per stream: memory freed on stream A is reused only by A. `record_stream(block, B)`
  marks a use on B; on free, an event is recorded on B and the block stays out of the pool until
  the event completes (checked lazily at the next malloc).
- max_split_size: blocks that large are never split; a cached oversize block serves a request only
  if it is within max_non_split_rounding (20 MiB) of it.
- Out of memory: release cached oversize blocks and retry, then release every unsplit cached block
  (after waiting for pending events) and retry once more, then raise OutOfMemoryError.
- CUDA graphs: while a pool is being allocated to (capture), allocations come from that private
  pool; its memory stays reserved until the pool is released and the cache is emptied.

The device is any object with this interface (the real one wraps the driver; simulated.py fakes it):

    device.index                       CUDA ordinal, for messages and snapshots
    device.raw_malloc(nbytes) -> ptr   raise DeviceOutOfMemory when the device is full
    device.raw_free(ptr)
    device.mem_get_info() -> (free, total)
    device.create_event() -> event     event.record(stream), event.query() -> bool, event.synchronize()
    device.current_stream() -> stream  any hashable; `stream.cuda_stream` (an int) names it in snapshots
  and, for backend:cudaMallocAsync only:
    device.malloc_async(nbytes, stream) -> ptr, device.free_async(ptr, stream),
    device.stream_wait_event(stream, event), device.synchronize(), device.pool_trim_to(nbytes),
    device.pool_usage() -> (reserved, reserved_high, used, used_high), device.pool_reset_peaks()
"""
import os
import sys
import threading
import time
import warnings
from bisect import bisect_left, insort
from collections import deque

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
K_MIN_BLOCK_SIZE = 512          # all sizes are rounded to at least 512 bytes
K_SMALL_SIZE = 1 * MiB          # largest "small" allocation
K_SMALL_BUFFER = 2 * MiB        # small allocations are packed in 2 MiB segments
K_LARGE_BUFFER = 20 * MiB       # allocations between 1 and 10 MiB may use a 20 MiB segment
K_MIN_LARGE_ALLOC = 10 * MiB
K_ROUND_LARGE = 2 * MiB         # larger allocations round up to 2 MiB
K_ROUNDUP_POWER2_INTERVALS = 16
SIZE_MAX = (1 << 64) - 1
ONE_EXA_BYTE = 1 << 60

ALL, SMALL, LARGE = 0, 1, 2     # StatType: aggregate, small pool, large pool
POOL_NAMES = ("all", "small_pool", "large_pool")
ARRAY_STATS = ("allocation", "segment", "active", "inactive_split", "allocated_bytes",
               "reserved_bytes", "active_bytes", "inactive_split_bytes", "requested_bytes")
COUNTERS = ("num_alloc_retries", "num_ooms", "num_sync_all_streams", "num_device_alloc",
            "num_device_free")

# when to gather Python stacks (PyTorch's RecordContext)
NEVER, STATE, ALLOC, ALL_CONTEXT = 0, 1, 2, 3
DEFAULT_POOL_ID = (0, 0)


class OutOfMemoryError(RuntimeError):
    """torch.cuda.OutOfMemoryError: the allocator could not satisfy a request."""


class DeviceOutOfMemory(Exception):
    """Raised by a device's raw_malloc/malloc_async when the driver reports out of memory."""


def format_size(size):
    """PyTorch's format_size: '512 bytes', '2.00 MiB', ..."""
    if size <= 1024:
        return f"{size} bytes"
    if size <= MiB:
        return f"{size / 1024:.2f} KiB"
    if size <= GiB:
        return f"{size / MiB:.2f} MiB"
    return f"{size / GiB:.2f} GiB"


def stream_id(stream):
    """The int PyTorch puts in snapshots for a stream (its cudaStream_t)."""
    s = getattr(stream, "cuda_stream", stream)
    return s if isinstance(s, int) else hash(s)


# ---------------------------------------------------------------------------------------------
# configuration: PYTORCH_ALLOC_CONF's grammar and PyTorch 2.13's error messages

class AllocatorConfig:
    __slots__ = ("max_split_size", "max_non_split_rounding_size", "garbage_collection_threshold",
                 "roundup_power2_divisions", "backend", "per_process_memory_fraction", "host",
                 "text")

    def __init__(self):
        self.max_split_size = SIZE_MAX
        self.max_non_split_rounding_size = K_LARGE_BUFFER
        self.garbage_collection_threshold = 0.0
        self.roundup_power2_divisions = [0] * K_ROUNDUP_POWER2_INTERVALS
        self.backend = "native"
        self.per_process_memory_fraction = None
        self.host = {}  # pinned-host-memory settings: parsed here, used by the host allocator
        self.text = ""

    def divisions(self, size):
        index = (size.bit_length() - 1) - 20  # intervals start at 1 MiB
        return self.roundup_power2_divisions[min(max(index, 0), K_ROUNDUP_POWER2_INTERVALS - 1)]

    @classmethod
    def parse(cls, text):
        cfg = cls()
        cfg.text = text or ""
        toks = _Tokens(cfg.text)
        native_option = False
        i = 0
        while i < len(toks):
            key = toks[i]
            if key in _PARSERS:
                i = _PARSERS[key](cfg, toks, i)
                native_option |= key != "backend"
            elif key in _HOST_KEYS:
                toks.expect(i + 1, ":")
                cfg.host[key] = toks[i + 2]
                i += 2
            else:
                raise ValueError(f"Unrecognized key '{key}' in CUDA allocator config.")
            if i + 1 < len(toks):
                i += 1
                toks.expect(i, ",")
            i += 1
        if cfg.backend == "cudaMallocAsync" and native_option:
            warnings.warn("backend:cudaMallocAsync ignores max_split_size_mb,"
                          "roundup_power2_divisions, and garbage_collect_threshold.")
        return cfg


class _Tokens(list):
    """The lexer of PyTorch's ConfigTokenizer: ',', ':', '[' and ']' are tokens, spaces vanish."""

    def __init__(self, text):
        super().__init__()
        buf = []
        for ch in text:
            if ch in ",:[]":
                if buf:
                    self.append("".join(buf))
                    buf = []
                self.append(ch)
            elif ch != " ":
                buf.append(ch)
        if buf:
            self.append("".join(buf))

    def expect(self, i, token):
        if i >= len(self) or self[i] != token:
            raise ValueError(f"Error parsing Allocator settings, expected {token}")

    def get(self, i):
        if i >= len(self):
            raise ValueError("Index out of bounds in ConfigTokenizer")
        return self[i]

    def size_t(self, i):
        tok = self.get(i)
        if not tok.isdigit():
            raise ValueError(f"Expected an unsigned integer in allocator config, got '{tok}'")
        return int(tok)

    def value(self, i):
        """The token after `key :` at i; returns (token, its index)."""
        self.expect(i + 1, ":")
        return self.get(i + 2), i + 2


def _parse_mb(cfg, toks, i, attr, name):
    tok, i = toks.value(i)
    mb = toks.size_t(i)
    if mb < K_LARGE_BUFFER // MiB:
        raise ValueError(f"CachingAllocator option {name} too small, must be >= {K_LARGE_BUFFER // MiB}")
    setattr(cfg, attr, min(mb, SIZE_MAX // MiB) * MiB)
    return i


def _parse_max_split(cfg, toks, i):
    return _parse_mb(cfg, toks, i, "max_split_size", "max_split_size_mb")


def _parse_max_non_split_rounding(cfg, toks, i):
    return _parse_mb(cfg, toks, i, "max_non_split_rounding_size", "max_non_split_rounding_mb")


def _fraction(tok):
    try:
        return float(tok)
    except ValueError:
        raise ValueError(f"Expected a number in allocator config, got '{tok}'") from None


def _parse_gc_threshold(cfg, toks, i):
    tok, i = toks.value(i)
    v = _fraction(tok)
    if not 0.0 < v < 1.0:
        raise ValueError("garbage_collect_threshold is invalid, set it in (0.0, 1.0)")
    cfg.garbage_collection_threshold = v
    return i


def _parse_fraction(cfg, toks, i):
    tok, i = toks.value(i)
    v = _fraction(tok)
    if not 0.0 <= v <= 1.0:
        raise ValueError("per_process_memory_fraction is invalid, set it in [0.0, 1.0]")
    cfg.per_process_memory_fraction = v
    return i


def _is_pow2(n):
    return n > 0 and n & (n - 1) == 0


def _parse_roundup(cfg, toks, i):
    tok, i = toks.value(i)
    divs = cfg.roundup_power2_divisions
    if tok != "[":  # one value for every interval
        v = toks.size_t(i)
        if not _is_pow2(v):
            raise ValueError("For roundups, the divisions has to be power of 2 ")
        divs[:] = [v] * K_ROUNDUP_POWER2_INTERVALS
        return i
    first, last = True, 0  # "[256:1,512:2,>:4]": divisions per size interval (in MB)
    i += 1
    while toks.get(i) != "]":
        key = toks[i]
        toks.expect(i + 1, ":")
        v = toks.size_t(i + 2)
        if v != 0 and not _is_pow2(v):
            raise ValueError("For roundups, the divisions has to be power of 2 or 0 to disable roundup ")
        if key == ">":
            divs[last + 1:] = [v] * (len(divs) - last - 1)
        else:
            boundary = toks.size_t(i)
            if not _is_pow2(boundary):
                raise ValueError("For roundups, the intervals have to be power of 2 ")
            idx = min(boundary.bit_length() - 1, len(divs) - 1)
            if first:
                divs[:idx] = [v] * idx
                first = False
            divs[idx] = v
            last = idx
        i += 3
        if toks.get(i) != "]":
            toks.expect(i, ",")
            i += 1
    return i


def _parse_backend(cfg, toks, i):
    tok, i = toks.value(i)
    if tok not in ("native", "cudaMallocAsync"):
        raise ValueError("Unknown allocator backend, options are native and cudaMallocAsync")
    cfg.backend = tok
    return i


def _parse_expandable(cfg, toks, i):
    tok, i = toks.value(i)
    if tok not in ("True", "False"):
        raise ValueError("Expected a single True/False argument for expandable_segments")
    if tok == "True":  # what PyTorch does where the driver API is missing: warn, then ignore
        warnings.warn("expandable_segments not supported on this platform")
    return i


_PARSERS = {"max_split_size_mb": _parse_max_split, "garbage_collection_threshold": _parse_gc_threshold,
            "roundup_power2_divisions": _parse_roundup, "backend": _parse_backend,
            "expandable_segments": _parse_expandable,
            "max_non_split_rounding_mb": _parse_max_non_split_rounding,
            "per_process_memory_fraction": _parse_fraction}
_HOST_KEYS = ("pinned_use_cuda_host_register", "pinned_num_register_threads",
              "pinned_use_background_threads", "pinned_reserve_segment_size_mb")
CONF_VARIABLES = ("VIBETENSOR_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")


def config_from_env(environ=None):
    """The allocator settings from the first of CONF_VARIABLES that is set."""
    env = os.environ if environ is None else environ
    for name in CONF_VARIABLES:
        if env.get(name):
            return AllocatorConfig.parse(env[name])
    return AllocatorConfig()


# ---------------------------------------------------------------------------------------------
# size rules

def round_size(size, config):
    if size < K_MIN_BLOCK_SIZE:
        return K_MIN_BLOCK_SIZE
    divisions = config.divisions(size)
    if divisions > 1 and size > K_MIN_BLOCK_SIZE * divisions:
        return _roundup_power2_next_division(size, divisions)
    return -(-size // K_MIN_BLOCK_SIZE) * K_MIN_BLOCK_SIZE


def _roundup_power2_next_division(size, divisions):
    """1200 with 4 divisions: between 1024 and 2048 the steps are 1024, 1280, 1536, 1792 -> 1280."""
    if _is_pow2(size):
        return size
    floor = 1 << (size.bit_length() - 1)
    step = floor >> (divisions.bit_length() - 1)
    if step == 0:
        return floor << 1
    low = size & ~(step - 1)
    return size if low == size else low + step


def allocation_size(size):
    """The segment size cudaMalloc'd for a (rounded) request that no cached block fits."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE


# ---------------------------------------------------------------------------------------------
# statistics, in PyTorch's DeviceStats structure

class Stat:
    __slots__ = ("current", "peak", "allocated", "freed")

    def __init__(self):
        self.current = self.peak = self.allocated = self.freed = 0

    def add(self, d):
        """A signed change: increases count as allocated (and may raise the peak), decreases as freed."""
        if d > 0:
            c = self.current = self.current + d
            self.allocated += d
            if c > self.peak:
                self.peak = c
        elif d < 0:
            self.current += d
            self.freed -= d

    def as_dict(self):
        return {"current": self.current, "peak": self.peak, "allocated": self.allocated,
                "freed": self.freed}


class DeviceStats:
    """PyTorch's DeviceStats structure, for reporting: each stat three times ([ALL], [SMALL] pool,
    [LARGE] pool) plus the counters. The caching allocator keeps running totals (Counters) and
    builds one of these when asked; the cudaMallocAsync backend fills one directly."""

    def __init__(self, max_split_size=SIZE_MAX):
        for name in ARRAY_STATS:
            setattr(self, name, (Stat(), Stat(), Stat()))
        for name in COUNTERS:
            setattr(self, name, 0)
        self.oversize_allocations, self.oversize_segments = Stat(), Stat()
        # PyTorch stores SIZE_MAX in an int64: "no limit" reads -1
        self.max_split_size = -1 if max_split_size == SIZE_MAX else max_split_size

    def as_nested_dict(self):
        d = {name: getattr(self, name) for name in COUNTERS}
        d["max_split_size"] = self.max_split_size
        for name in ARRAY_STATS:
            d[name] = {POOL_NAMES[i]: s.as_dict() for i, s in enumerate(getattr(self, name))}
        d["oversize_allocations"] = self.oversize_allocations.as_dict()
        d["oversize_segments"] = self.oversize_segments.as_dict()
        return d


class Counters:
    """One pool kind's statistics as a few ints that malloc and free add to, instead of nine
    Stats: each stat's current value is kept or is a difference of two of them, its `allocated`
    and `freed` are running totals (less their values at the last reset), and peaks are tracked
    as they go.

        n, b, r     active blocks, bytes and requested bytes (allocated, or freed but waiting
                    on events): malloc adds, a completed free subtracts
        nc, bc, rc  blocks, bytes, requested bytes whose free completed (so malloc handed out
                    n + nc blocks, b + bc bytes, r + rc requested bytes)
        pn, pb      blocks and bytes freed but waiting on events (allocation = n - pn): the
                    blocks and bytes whose free was requested are nc + pn and bc + pb
        s, sb       inactive split blocks and bytes; sp, sbp the totals of those appearing
        seg, segf   segments cudaMalloc'd / cudaFree'd; rsv, rsvf their bytes
        pk_*        peaks
        g_*         guards (AllPools.retune): while n, b, r, s and sb stay at or below them, no
                    peak can rise, this pool's nor all pools', so the hot paths compare each
                    with its guard and update peaks only past it
    """
    __slots__ = ("n", "nc", "pn", "b", "bc", "pb", "r", "rc", "s", "sp", "sb", "sbp",
                 "seg", "segf", "rsv", "rsvf", "pk_n", "pk_act", "pk_b", "pk_actb", "pk_r",
                 "pk_s", "pk_sb", "pk_seg", "pk_rsv", "base", "g_n", "g_b", "g_r", "g_s", "g_sb")

    # stat name -> (running total up, running total down, peak)
    LAYOUT = {"allocation": ("n_up", "nf", "pk_n"), "segment": ("seg", "segf", "pk_seg"),
              "active": ("n_up", "nc", "pk_act"), "inactive_split": ("sp", "sm", "pk_s"),
              "allocated_bytes": ("b_up", "bf", "pk_b"), "reserved_bytes": ("rsv", "rsvf", "pk_rsv"),
              "active_bytes": ("b_up", "bc", "pk_actb"), "inactive_split_bytes": ("sbp", "sbm", "pk_sb"),
              "requested_bytes": ("r_up", "rc", "pk_r")}
    TOTALS = ("n_up", "nf", "nc", "b_up", "bf", "bc", "r_up", "rc", "sp", "sm", "sbp", "sbm", "seg",
              "segf", "rsv", "rsvf")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)
        self.base = dict.fromkeys(self.TOTALS, 0)  # the totals at the last reset_accumulated

    # the totals the hot paths leave implicit
    n_up = property(lambda self: self.n + self.nc)
    b_up = property(lambda self: self.b + self.bc)
    r_up = property(lambda self: self.r + self.rc)
    nf = property(lambda self: self.nc + self.pn)
    bf = property(lambda self: self.bc + self.pb)
    sm = property(lambda self: self.sp - self.s)
    sbm = property(lambda self: self.sbp - self.sb)

    def current(self, name):
        up, down, _ = self.LAYOUT[name]
        return getattr(self, up) - getattr(self, down)

    def stat(self, name):
        up, down, peak = self.LAYOUT[name]
        s = Stat()
        u, dn = getattr(self, up), getattr(self, down)
        s.current, s.peak = u - dn, getattr(self, peak)
        s.allocated, s.freed = u - self.base[up], dn - self.base[down]
        return s

    def reset_peak(self):
        for name, (_, _, peak) in self.LAYOUT.items():
            setattr(self, peak, self.current(name))

    def reset_accumulated(self):
        self.base = {name: getattr(self, name) for name in self.TOTALS}


class AllPools:
    """All pools' statistics: the small and large pools' Counters summed, with peaks of its own
    (the peak of a sum is not the sum of the peaks). So malloc and free write the totals of one
    Counters, and here only a peak that the new sum exceeds."""
    __slots__ = ("parts", "pk_n", "pk_act", "pk_b", "pk_actb", "pk_r", "pk_s", "pk_sb", "pk_seg",
                 "pk_rsv")

    def __init__(self, small, large):
        self.parts = (small, large)
        self.reset_peak()

    def current(self, name):
        return sum(c.current(name) for c in self.parts)

    def stat(self, name):
        s = Stat()
        for c in self.parts:
            t = c.stat(name)
            s.current += t.current
            s.allocated += t.allocated
            s.freed += t.freed
        s.peak = getattr(self, Counters.LAYOUT[name][2])
        return s

    def reset_peak(self):
        for name, (_, _, peak) in Counters.LAYOUT.items():
            setattr(self, peak, self.current(name))

    def reset_accumulated(self):
        pass  # its totals are the pools'

    def retune(self):
        """The pools' guards: the most each pool's current value may reach with no peak rising,
        its own nor all pools'. Every value that grows is checked against its pool's guard, and
        a failed check lands in retune_alloc or retune_split (through _alloc_peaks or
        _split_peaks), which reset the guards of the values past theirs: a few a step, not one
        per malloc. (A guard stays valid while peaks rise: it only has to stay below them.)"""
        small, large = self.parts
        for name in ("n", "b", "r", "s", "sb"):
            g, pk = "g_" + name, "pk_" + name
            g_small, g_large = _guards(getattr(self, pk), getattr(small, pk), getattr(large, pk),
                                       getattr(small, name), getattr(large, name))
            setattr(small, g, g_small)
            setattr(large, g, g_large)

    def retune_alloc(self, c, o):
        """malloc's guards (blocks, bytes, requested bytes) where pool c's value passed its guard.
        (Blocks: allocated <= active, so the allocation peak bounds both.)"""
        if c.n > c.g_n:
            c.g_n, o.g_n = _guards(self.pk_n, c.pk_n, o.pk_n, c.n, o.n)
        if c.b > c.g_b:
            c.g_b, o.g_b = _guards(self.pk_b, c.pk_b, o.pk_b, c.b, o.b)
        if c.r > c.g_r:
            c.g_r, o.g_r = _guards(self.pk_r, c.pk_r, o.pk_r, c.r, o.r)

    def retune_split(self, c, o):
        """The inactive split blocks' and bytes' guards where pool c's value passed its guard."""
        if c.s > c.g_s:
            c.g_s, o.g_s = _guards(self.pk_s, c.pk_s, o.pk_s, c.s, o.s)
        if c.sb > c.g_sb:
            c.g_sb, o.g_sb = _guards(self.pk_sb, c.pk_sb, o.pk_sb, c.sb, o.sb)


def _guards(peak, peak_c, peak_o, cur_c, cur_o):
    """The guards (g_c, g_o) of one value in pools c and o, after c's value passed its guard:
    each within its pool's peak, and g_c + g_o within all pools' peak (so no peak rises while
    both values stay within their guards). c, rising, takes three quarters of all pools'
    headroom (in a training step one pool's values rise while the other's fall), or all that
    o's own peak leaves it; o gets the rest."""
    headroom = peak - cur_c - cur_o
    g_c = cur_c + headroom - (headroom >> 2)
    if g_c < peak - peak_o:
        g_c = peak - peak_o
    if g_c > peak_c:
        g_c = peak_c
    g_o = peak - g_c
    return g_c, (g_o if g_o < peak_o else peak_o)


def _split_delta(c, o, a, blocks, nbytes):
    """Inactive split blocks and bytes change by `blocks` and `nbytes` in pool Counters c (the
    other pool's o, all pools' a): the values, the totals, and the peaks they may raise."""
    c.s += blocks
    c.sb += nbytes
    if blocks > 0:
        c.sp += blocks
    if nbytes > 0:
        c.sbp += nbytes
    if blocks > 0 or nbytes > 0:
        _split_peaks(c, o, a)


def _split_peaks(c, o, a):
    """The inactive split peaks, after c's split blocks or bytes grew; then the guards."""
    s, sb = c.s, c.sb
    if s > c.pk_s:
        c.pk_s = s
    if sb > c.pk_sb:
        c.pk_sb = sb
    s += o.s
    sb += o.sb
    if s > a.pk_s:
        a.pk_s = s
    if sb > a.pk_sb:
        a.pk_sb = sb
    a.retune_split(c, o)


def _alloc_peaks(c, o, a):
    """malloc's peak update for pool Counters c (the other pool's o, all pools' a), exact:
    allocated = active - pending (frees waiting on events); then the guards."""
    _alloc_peaks_pending(c, c.n, c.b, c.pn, c.pb)
    _alloc_peaks_pending(a, c.n + o.n, c.b + o.b, c.pn + o.pn, c.pb + o.pb)
    r = c.r
    if r > c.pk_r:
        c.pk_r = r
    r += o.r
    if r > a.pk_r:
        a.pk_r = r
    a.retune_alloc(c, o)


def _alloc_peaks_pending(c, act_n, act_b, pending_n, pending_b):
    """malloc's peak update while frees wait on events: allocated = active - pending."""
    if act_n - pending_n > c.pk_n:
        c.pk_n = act_n - pending_n
    if act_n > c.pk_act:
        c.pk_act = act_n
    if act_b - pending_b > c.pk_b:
        c.pk_b = act_b - pending_b
    if act_b > c.pk_actb:
        c.pk_actb = act_b


class AllocatorStats:
    """The caching allocator's statistics: AllPools and the small and large pools' Counters
    (indexed ALL, SMALL, LARGE), the event counters and the oversize stats."""

    def __init__(self, max_split_size=SIZE_MAX):
        small, large = Counters(), Counters()
        self.pools = (AllPools(small, large), small, large)
        for name in COUNTERS:
            setattr(self, name, 0)
        self.oversize_allocations, self.oversize_segments = Stat(), Stat()
        self.max_split_size = -1 if max_split_size == SIZE_MAX else max_split_size
        self.pools[ALL].retune()

    def on_free(self, k, size):
        """free() was called and waits for events: the block is no longer allocated, still active."""
        c = self.pools[k]
        c.pn += 1
        c.pb += size

    def on_segment(self, k, size, sign):
        """A segment of `size` bytes was cudaMalloc'd (sign 1) or cudaFree'd (sign -1)."""
        c, a = self.pools[k], self.pools[ALL]
        if sign < 0:
            c.segf += 1
            c.rsvf += size
            return
        c.seg += 1
        c.rsv += size
        for p in (c, a):
            seg, rsv = p.current("segment"), p.current("reserved_bytes")
            if seg > p.pk_seg:
                p.pk_seg = seg
            if rsv > p.pk_rsv:
                p.pk_rsv = rsv

    def current(self, name, k=ALL):
        return self.pools[k].current(name)

    def peak(self, name, k=ALL):
        return getattr(self.pools[k], Counters.LAYOUT[name][2])

    def reset_peak(self):
        for c in self.pools:
            c.reset_peak()
        for s in (self.oversize_allocations, self.oversize_segments):
            s.peak = s.current
        self.pools[ALL].retune()

    def reset_accumulated(self):
        for c in self.pools:
            c.reset_accumulated()
        for s in (self.oversize_allocations, self.oversize_segments):
            s.allocated = s.freed = 0
        for name in COUNTERS:
            setattr(self, name, 0)

    def as_nested_dict(self):
        d = DeviceStats()
        for name in ARRAY_STATS:
            setattr(d, name, tuple(c.stat(name) for c in self.pools))
        for name in COUNTERS:
            setattr(d, name, getattr(self, name))
        d.oversize_allocations, d.oversize_segments = self.oversize_allocations, self.oversize_segments
        d.max_split_size = self.max_split_size
        return d.as_nested_dict()


def flatten_stats(nested):
    """torch.cuda.memory_stats's flat form: 'allocated_bytes.all.current', ..., sorted by key."""
    out = []

    def walk(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                key = k if isinstance(k, str) else "_".join(map(str, k)) if isinstance(k, tuple) else str(k)
                walk(f"{prefix}.{key}" if prefix else key, v)
        else:
            out.append((prefix, obj))
    walk("", nested)
    return dict(sorted(out))


def _fmt_size(sz, pref):
    prefix = "B  "
    for new in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if pref < 768 * 1024:
            break
        prefix, sz, pref = new, sz // 1024, pref / 1024
    return f"{sz:6d} {prefix}"


def _fmt_count(cnt, pref):
    prefix = " "
    for new in ("K", "M"):
        if pref < 750 * 1000:
            break
        prefix, cnt, pref = new, cnt // 1000, pref / 1000
    return f"{cnt:7d} {prefix} "


_SUMMARY_ROWS = (("allocated_bytes", "Allocated memory", _fmt_size),
                 ("active_bytes", "Active memory", _fmt_size),
                 ("requested_bytes", "Requested memory", _fmt_size),
                 ("reserved_bytes", "GPU reserved memory", _fmt_size),
                 ("inactive_split_bytes", "Non-releasable memory", _fmt_size),
                 ("allocation", "Allocations", _fmt_count),
                 ("active", "Active allocs", _fmt_count),
                 ("segment", "GPU reserved segments", _fmt_count),
                 ("inactive_split", "Non-releasable allocs", _fmt_count))


def format_summary(stats, device_index, abbreviated=False):
    """torch.cuda.memory_summary's table, from flat stats."""
    rule, thin = "=" * 75, "-" * 75
    lines = [rule, f" {'':14} vibetensor CUDA memory summary, device ID {device_index:<16d} ", thin,
             f"  {'':9} CUDA OOMs: {stats['num_ooms']:<12d} | {'':6} cudaMalloc retries: "
             f"{stats['num_alloc_retries']:<8d}  ", rule,
             "        Metric         | Cur Usage  | Peak Usage | Tot Alloc  | Tot Freed  "]
    metrics = ("current", "peak", "allocated", "freed")
    for key, name, fmt in _SUMMARY_ROWS:
        lines.append(thin)
        subs = [("all", name)]
        if not abbreviated:
            subs += [("large_pool", "      from large pool"), ("small_pool", "      from small pool")]
        pref = [stats[f"{key}.all.{m}"] for m in metrics]  # units follow the "all" row
        for sub, label in subs:
            vals = [stats[f"{key}.{sub}.{m}"] for m in metrics]
            cells = " | ".join(fmt(v, p) for v, p in zip(vals, pref))
            lines.append(f" {label:<21} | {cells} ")
    for key, name in (("oversize_allocations", "Oversize allocations"),
                      ("oversize_segments", "Oversize GPU segments")):
        lines.append(thin)
        vals = [stats[f"{key}.{m}"] for m in metrics]
        lines.append(f" {name:<21} | {' | '.join(_fmt_count(v, v) for v in vals)} ")
    lines.append(rule)
    return "|" + "|\n|".join(lines) + "|\n"


# ---------------------------------------------------------------------------------------------
# blocks and pools

class Block:
    """A piece of a segment. Free blocks live in a BlockPool; allocated ones are reached through
    their Allocation handle. prev/next link the blocks of one segment, in address order."""
    __slots__ = ("stream", "size", "requested_size", "ptr", "pool", "allocated", "prev", "next",
                 "stream_uses", "event_count", "gc_count_base", "frames", "segment_frames")

    def __init__(self, stream, size, pool, ptr, prev=None, next=None, allocated=False, requested_size=0):
        self.stream, self.size, self.pool, self.ptr = stream, size, pool, ptr
        self.prev, self.next, self.allocated, self.requested_size = prev, next, allocated, requested_size
        self.stream_uses = None  # set of streams recorded by record_stream, or None
        self.event_count = self.gc_count_base = 0
        self.frames = self.segment_frames = None

    def is_split(self):
        return self.prev is not None or self.next is not None


def _slot(sizes, blocks, size, ptr):
    """Where a free block of (size, ptr) goes in a free list: after the entries sorting before it."""
    i = bisect_left(sizes, size)
    n = len(sizes)
    while i < n and sizes[i] == size and blocks[i].ptr < ptr:
        i += 1
    return i


class BlockPool:
    """Cached free blocks, per stream, in (size, ptr) order: bisect finds the best fit (PyTorch's
    std::set ordered by (stream, size, ptr)). A stream's free list is a pair of parallel lists
    (sizes, blocks), sizes[i] = blocks[i].size: bisect compares sizes (ints, cheap), and blocks
    of one size sit in address order."""
    __slots__ = ("is_small", "min_rest", "owner", "counters", "by_stream", "get_free_blocks_call_count")

    def __init__(self, is_small, owner=None, counters=None):
        self.is_small = is_small
        # a block is split if at least this much remains (large pool: also only below max_split_size)
        self.min_rest = K_MIN_BLOCK_SIZE if is_small else K_SMALL_SIZE + 1
        self.owner = owner  # the PrivatePool, for graph pools
        self.counters = counters  # the statistics it counts in: (its kind's Counters, the other's, AllPools)
        self.by_stream = {}  # stream -> (sizes, blocks)
        self.get_free_blocks_call_count = 0

    def free_list(self, stream):
        fl = self.by_stream.get(stream)
        if fl is None:  # (an emptied list stays: the stream will likely cache blocks again)
            fl = self.by_stream[stream] = ([], [])
        return fl

    def insert(self, block):
        block.gc_count_base = self.get_free_blocks_call_count
        sizes, blocks = self.free_list(block.stream)
        i = _slot(sizes, blocks, block.size, block.ptr)
        sizes.insert(i, block.size)
        blocks.insert(i, block)

    def index(self, block):
        """Where the block sits in its stream's free list."""
        sizes, blocks = self.by_stream[block.stream]
        i, n = bisect_left(sizes, block.size), len(sizes)
        while i < n and blocks[i] is not block:
            i += 1
        assert i < n, "allocator: block missing from its pool"
        return i

    def remove(self, block):
        sizes, blocks = self.by_stream[block.stream]
        i = self.index(block)
        del sizes[i], blocks[i]

    def best_fit(self, stream, size):
        """The index of the smallest block of at least `size` bytes in the stream's free list
        (lowest address first), and the list; index None if there is none."""
        sizes, blocks = fl = self.free_list(stream)
        i = bisect_left(sizes, size)
        return (i if i < len(sizes) else None), fl

    def blocks(self):
        return [b for _, blocks in self.by_stream.values() for b in blocks]

    def total(self):
        return sum(b.size for b in self.blocks())


class PrivatePool:
    """A CUDA graph's pool: its own small and large BlockPools."""

    def __init__(self, pool_id, small_counters=None, large_counters=None):
        self.id = pool_id
        self.use_count = 1      # graphs (or contexts) using it
        self.malloc_count = 0   # its segments not yet returned with cudaFree
        self.small = BlockPool(True, self, small_counters)
        self.large = BlockPool(False, self, large_counters)


class Allocation:
    """What malloc returns: device memory at `.ptr` of `.size` requested bytes (`.allocated_size`
    after rounding). Dropping the last reference frees it, gated by any recorded streams' events.
    The native backend's handle holds its Block; rounding and stream are read from it. Made by
    CachingAllocator.malloc, which sets the four slots itself."""
    __slots__ = ("ptr", "size", "_block", "_allocator", "__weakref__")

    @property
    def allocated_size(self):
        b = self._block
        return b.size if b is not None else 0

    @property
    def stream(self):
        """The stream the memory was allocated on (None once freed)."""
        b = self._block
        return b.stream if b is not None else None

    @property
    def device_index(self):
        return self._allocator.index

    def free(self):
        """Return the memory now (idempotent); normally the garbage of the last reference does it."""
        block = self._block
        if block is not None:
            self._block = None
            self._allocator._release(block)

    def record_stream(self, stream):
        self._allocator.record_stream(self, stream)

    @property
    def freed(self):
        return self._block is None

    def del_python(self):  # every tensor's memory comes back through here (fastalloc: in C, as __del__)
        block = self._block
        if block is not None:
            self._block = None
            a = self._allocator
            if block.stream_uses is None and not a._recording:
                # a plain free waits, without the lock, for the allocator's next call (_Locked);
                # frees recording events or history entries are done at once
                a._deferred.append(block)
                return
            try:
                a._release(block)
            except Exception:  # interpreter shutdown: the device may already be gone
                pass

    __del__ = del_python

    def __repr__(self):
        state = "freed" if self._block is None else f"stream={stream_id(self.stream)}"
        return f"<Allocation ptr={self.ptr:#x} size={self.size} device={self.device_index} {state}>"


class PlainAllocation(Allocation):
    """A handle that stores its rounding and stream: 0-byte allocations (no block) and the
    cudaMallocAsync backend's (whose `_block` is the pointer)."""
    __slots__ = ("allocated_size", "stream", "_index")

    def __init__(self, allocator, block, nbytes, stream, ptr, allocated_size):
        self._allocator, self._block, self.ptr, self.size = allocator, block, ptr, nbytes
        self.allocated_size, self.stream, self._index = allocated_size, stream, allocator.index

    @property
    def device_index(self):
        return self._index

    def free(self):
        block = self._block
        if block is not None:
            self._block = None
            if block is not _NO_BLOCK:
                self._allocator._release(block)

    def __del__(self):
        if self._block is not None:
            try:
                self.free()
            except Exception:
                pass


_NO_BLOCK = object()  # the block of a 0-byte allocation: no memory, nothing to free
_EMPTY = ((), ())     # the free list of a stream that has none


# ---------------------------------------------------------------------------------------------
# history recording (memory_snapshot's traces and stacks)

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def gather_frames():
    """The Python stack, innermost first, as snapshot frames, without the allocator's own frames."""
    frames, f = [], sys._getframe(1)
    while f is not None:
        code = f.f_code
        if not code.co_filename.startswith(_OWN_DIR):
            frames.append({"filename": code.co_filename, "line": f.f_lineno, "name": code.co_name})
        f = f.f_back
    return frames


class History:
    """record_memory_history's state and ring buffer of trace entries."""
    def __init__(self):
        self.enabled = False
        self.context = NEVER
        self.max_entries = 1
        self.entries = []
        self.next = 0

    def configure(self, enabled="all", context="all", stacks="all", max_entries=sys.maxsize,
                  clear_history=False):
        if enabled is True:
            enabled = "all"
        if enabled is False:
            enabled = None
        if enabled not in (None, "state", "all"):
            raise RuntimeError("expected state to be 'state', 'all', or None")
        if context not in (None, "state", "alloc", "all"):
            raise RuntimeError("expected context to be 'state', 'alloc', 'all', or None")
        if stacks not in ("python", "all"):  # we have no C++ frames: 'all' gives the Python ones
            raise RuntimeError("expected stacks to be 'python', or 'all'")
        self.enabled = enabled is not None
        self.context = {None: NEVER, "state": STATE, "alloc": ALLOC, "all": ALL_CONTEXT}[context] \
            if self.enabled else NEVER
        self.max_entries = max(1, max_entries if enabled == "all" else 1)
        if not self.enabled or clear_history:
            self.entries, self.next = [], 0
        else:  # keep the newest entries that fit, oldest first
            self.entries, self.next = self.trace()[-self.max_entries:], 0

    def gather(self, level):
        return gather_frames() if self.context >= level else None

    def record(self, action, addr, size, stream, frames, pool_id=DEFAULT_POOL_ID):
        te = {"action": action, ("device_free" if action == "oom" else "addr"): addr, "size": size,
              "stream": stream_id(stream) if stream is not None else 0,
              "time_us": time.time_ns() // 1000,
              "frames": frames if (frames is not None and self.context >= ALLOC) else []}
        if pool_id != DEFAULT_POOL_ID:
            te["pool_id"] = pool_id
        if len(self.entries) < self.max_entries:
            self.entries.append(te)
        else:
            self.entries[self.next] = te
            self.next = (self.next + 1) % self.max_entries

    def trace(self):
        return self.entries[self.next:] + self.entries[:self.next]


# ---------------------------------------------------------------------------------------------
# the native caching allocator

class _Params:
    __slots__ = ("size", "stream", "pool", "alloc_size", "block", "kind")

    def __init__(self, size, stream, pool, alloc_size):
        self.size, self.stream, self.pool, self.alloc_size = size, stream, pool, alloc_size
        self.block = None
        self.kind = SMALL if pool.is_small else LARGE


class _Locked:
    """Per-device lock plus frees that wait in `_deferred` (FIFO) for the allocator's next call:
    the native handles' plain frees (Allocation.__del__: no lock taken, nothing done but an
    append), and frees arriving re-entrantly (a handle's __del__ run by refcount or the cyclic GC
    while this thread is inside the allocator) instead of mutating pools mid-operation. Every
    call that reads or changes the allocator's state completes the waiting frees first, in the
    order they came, so what it sees is what freeing at once would have left."""
    __slots__ = ("_lock", "_deferred")

    def __init__(self):
        self._lock = threading.RLock()
        self._deferred = deque()  # (append and popleft are atomic: other threads append freely)

    def _enter(self):
        lock = self._lock
        nested = lock._is_owned()
        lock.acquire()
        if self._deferred and not nested:
            self._drain()

    def _exit(self):
        self._lock.release()
        if self._deferred:
            self._drain_deferred()

    def _drain(self):
        """Complete the waiting frees (the lock held, by a call not nested in another)."""
        deferred = self._deferred
        while deferred:
            self._free_block_of(deferred.popleft())

    def _drain_deferred(self):
        if self._lock._is_owned():  # a call nested in the allocator's own: the outer one drains
            return
        with self._lock:
            self._drain()

    def free(self, handle, from_gc=False):
        """Give the handle's memory back (PyTorch: the DataPtr deleter): handle.free(). (`from_gc`
        is accepted for callers of the old signature: every free inside the allocator's own call
        is deferred.)"""
        handle.free()

    def _release(self, block):
        """Free what a handle held (a Block, or a pointer: each backend's `_free_block_of` says)."""
        lock = self._lock
        if lock._is_owned():  # this thread is inside the allocator: free after it leaves
            self._deferred.append(block)
            return
        lock.acquire()
        try:
            if self._deferred:  # the frees that came first go first
                self._drain()
            self._free_block_of(block)
        finally:
            lock.release()
        if self._deferred:
            self._drain_deferred()

    def _reentrant(self):
        return self._lock._is_owned()


class CachingAllocator(_Locked):
    """One device's caching allocator (PyTorch's DeviceCachingAllocator).

    Host time matters here: every tensor's malloc and free runs through it. The common case (a
    small request on a stream that has a cached block big enough, no CUDA graph capture, no
    cross-stream frees pending, no history recording) takes `malloc`'s fast path: one bisect in
    the stream's free list, the split, and a few integer adds to the running-total statistics.
    The split's remainder, and on free the merged block, usually take over the list entry of the
    block they replace (no removal and re-insertion), and the Block objects that merges drop are
    reused by later splits."""
    backend = "native"
    # slots: attribute loads and method lookups on self specialise (an instance dict of this
    # many keys is not shared, and the interpreter would look methods up generically)
    __slots__ = ("device", "index", "_current_stream", "config", "stats",
                 "large_blocks", "small_blocks", "_small_free", "_large_free", "_segments",
                 "_spare", "cuda_events", "needs_events_deferred", "captures_underway",
                 "graph_pools", "graph_pools_freeable", "total_allocated_memory", "set_fraction",
                 "allowed_memory_maximum", "history", "_event_pool", "_raw", "_plain_rounding",
                 "_max_split", "_fast_limit", "_recording", "_fast_settings", "_fast", "_taken")

    def __init__(self, device, config=None):
        if not _native:
            _install_native()
        super().__init__()
        self.device = device
        self.index = getattr(device, "index", 0)
        self._current_stream = device.current_stream
        self.config = config if config is not None else AllocatorConfig()
        self.stats = AllocatorStats(self.config.max_split_size)
        all_pools, small, large = self.stats.pools
        self.large_blocks = BlockPool(False, None, (large, small, all_pools))
        self.small_blocks = BlockPool(True, None, (small, large, all_pools))
        self._small_free = self.small_blocks.by_stream  # stream -> (sizes, blocks), see BlockPool
        self._large_free = self.large_blocks.by_stream
        self._segments = {}                 # segment address -> the Block heading it
        self._spare = None                  # Blocks dropped by merges, reused by splits, chained by .next
        self.cuda_events = {}               # stream -> deque[(event, block)]
        self.needs_events_deferred = []     # blocks freed with stream uses during capture
        self.captures_underway = []         # [(pool_id, filter(stream) -> bool)]
        self.graph_pools = {}               # pool_id -> PrivatePool
        self.graph_pools_freeable = {}      # pool_id -> PrivatePool whose use_count reached 0
        self.total_allocated_memory = 0
        self.set_fraction = False
        self.allowed_memory_maximum = 0
        self.history = History()
        self._event_pool = []
        self._raw = {}                      # ptr -> Allocation handed out by raw_alloc
        self._taken = None                  # block -> _take_back's plan, while it holds (or None)
        self._settings_changed()
        if self.config.per_process_memory_fraction is not None:
            self.set_memory_fraction(self.config.per_process_memory_fraction)

    def _settings_changed(self):
        """Cache what the hot paths would otherwise look up per call."""
        cfg = self.config
        self._plain_rounding = not any(cfg.roundup_power2_divisions)
        self._max_split = cfg.max_split_size
        # blocks below this take the fast path: below max_split_size, and below 2**30 so that
        # comparisons with it stay on the interpreter's one-digit int path
        self._fast_limit = min(cfg.max_split_size, (1 << 30) - 1)
        self._recording = self.history.enabled
        # malloc's fast path needs plain 512-byte rounding, no history, no garbage-collection ageing
        self._fast_settings = (self._plain_rounding and not self._recording
                               and not (self.set_fraction and cfg.garbage_collection_threshold > 0.0))
        self._update_fast()

    def _enter(self):
        _Locked._enter(self)
        self._taken = None  # a call that may change what _take_back's kept plans rest on

    def _update_fast(self):
        """_fast: malloc may take its fast path: the settings allow it, and no capture is under
        way and no free waits on events (called wherever those states may change)."""
        self._fast = self._fast_settings and not (self.captures_underway or self.cuda_events
                                                  or self.needs_events_deferred)

    # -- public API ------------------------------------------------------------------------------
    def malloc(self, nbytes, stream=None):
        """Memory for `nbytes` usable on `stream` (default: the device's current stream)."""
        if stream is None:
            current_stream = self._current_stream  # (a bound method: called, not looked up as one)
            stream = current_stream()
        if nbytes <= 0:
            return self._malloc_unusual(nbytes, stream)
        lock = self._lock
        lock.acquire()
        try:
            deferred = self._deferred
            block = None
            while deferred:  # frees first, as if they had been done at once (_Locked._drain)
                freed = deferred.popleft()
                if not deferred and self._fast:  # the last: maybe this malloc takes it straight back
                    block = self._take_back(freed, nbytes, stream)
                    if block is not None:
                        break
                self._free_block(freed)
            if block is not None:
                pass
            elif self._fast:  # the fast path: the smallest cached block of the stream's pool that fits
                self._taken = None  # (it changes the pools: _take_back's kept plans may no longer hold)
                sizes, blocks = (self._small_free if nbytes <= K_SMALL_SIZE else self._large_free).get(stream, _EMPTY)
                size = (nbytes + 511) & -512
                i = bisect_left(sizes, size)
                if i < len(sizes) and sizes[i] < self._fast_limit:  # (oversize: _fits' rules)
                    # take blocks[i]: _take_block's work without what the fast path excludes
                    # (pending frees, history, oversize blocks); the tests compare the two
                    block = blocks[i]
                    pool = block.pool
                    c, o, a = pool.counters  # this pool's Counters, the other pool's, AllPools
                    prev = block.prev
                    remaining = block.size - size
                    if remaining >= pool.min_rest:  # split: the front `size` bytes go out
                        rest = block  # keeps its identity, and its place in the list if it can
                        ptr = rest.ptr
                        block = self._spare
                        if block is not None:  # a Block a merge left: cheaper than a new one
                            self._spare = block.next
                            block.stream = stream
                            block.size = size
                            block.pool = pool
                            block.ptr = ptr
                            block.prev = prev
                            block.next = rest
                        else:
                            block = Block(stream, size, pool, ptr, prev, rest)
                        if prev is not None:
                            prev.next = block
                        else:  # the new block heads the segment: it carries the segment's stack
                            block.segment_frames, rest.segment_frames = rest.segment_frames, None
                            self._segments[ptr] = block
                        rest.prev = block
                        rest.ptr = ptr = ptr + size
                        rest.size = remaining
                        rest.gc_count_base = pool.get_free_blocks_call_count
                        if i == 0 or sizes[i - 1] < remaining or (
                                sizes[i - 1] == remaining and blocks[i - 1].ptr < ptr):
                            # the remainder sorts below the block it was, so if it also sorts
                            # above the entry before, it takes the block's place in the list
                            sizes[i] = remaining
                        else:
                            del sizes[i], blocks[i]
                            pool.insert(rest)
                        if prev is not None or rest.next is not None:  # a split block shrinks
                            c.sb -= size
                        else:  # a new inactive split block appears (_split_delta, inline)
                            c.sp += 1
                            c.sbp += remaining
                            s = c.s = c.s + 1
                            sb = c.sb = c.sb + remaining
                            if s > c.g_s or sb > c.g_sb:  # a peak may rise (Counters' guards)
                                _split_peaks(c, o, a)
                    else:
                        del sizes[i], blocks[i]
                        size = block.size
                        if prev is not None or block.next is not None:  # a split block turns active
                            c.s -= 1
                            c.sb -= size
                    block.allocated = True  # (a cached block's frames are None already)
                    block.requested_size = nbytes
                    n = c.n = c.n + 1
                    b = c.b = c.b + size
                    r = c.r = c.r + nbytes
                    if n > c.g_n or b > c.g_b or r > c.g_r:  # a peak may rise (Counters' guards)
                        _alloc_peaks(c, o, a)
                else:
                    block = self._malloc(nbytes, stream, None)
            else:
                block = self._malloc(nbytes, stream, gather_frames() if self.history.context else None)
        finally:
            lock.release()
        if self._deferred:
            self._drain_deferred()
        h = Allocation()  # no __init__: four slot writes cost half a Python __init__ call
        h._allocator = self
        h._block = block
        h.ptr = block.ptr
        h.size = nbytes
        return h

    malloc_python = malloc  # the specification of fastalloc's C malloc, which replaces it where it builds

    def _malloc_unusual(self, nbytes, stream):
        if nbytes == 0:  # no memory: a null pointer, as PyTorch
            return PlainAllocation(self, _NO_BLOCK, 0, stream, 0, 0)
        self._enter()
        try:
            block = self._malloc(nbytes, stream, None)
        finally:
            self._exit()
        h = Allocation()
        h._allocator, h._block, h.ptr, h.size = self, block, block.ptr, nbytes
        return h

    def record_stream(self, handle, stream):
        """Mark the allocation as used on `stream`: its reuse after free waits for that stream."""
        block = handle._block
        if block is None:
            raise RuntimeError("record_stream: the allocation has already been freed")
        if block is _NO_BLOCK:
            return
        self._enter()
        try:
            if stream == block.stream:
                return  # uses on the allocation stream need no synchronisation
            if block.stream_uses is None:
                block.stream_uses = set()
            block.stream_uses.add(stream)
        finally:
            self._exit()

    def raw_alloc(self, nbytes, stream=None):
        """caching_allocator_alloc: a bare pointer, freed by raw_delete."""
        h = self.malloc(nbytes, stream)
        if h.ptr:
            self._raw[h.ptr] = h
        return h.ptr

    def raw_delete(self, ptr):
        if not ptr:
            return
        h = self._raw.pop(ptr, None)
        if h is None:
            raise RuntimeError(f"invalid device pointer: {ptr:#x}")
        h.free()

    def empty_cache(self):
        """Return every fully free cached segment to the device."""
        frames = self.history.gather(ALL_CONTEXT)
        self._enter()
        try:
            if self.captures_underway:  # releasing waits on events: illegal while capturing
                raise RuntimeError("empty_cache: cannot release cached memory while a CUDA graph "
                                   "capture is allocating from a private pool")
            self._release_cached_blocks(frames)
        finally:
            self._exit()

    def configure(self, config):
        """New settings (torch.cuda.memory._set_allocator_settings)."""
        self._enter()
        try:
            self.config = config
            self._settings_changed()
            self.stats.max_split_size = -1 if config.max_split_size == SIZE_MAX else config.max_split_size
        finally:
            self._exit()

    def set_memory_fraction(self, fraction):
        _, total = self.device.mem_get_info()
        self.allowed_memory_maximum = int(fraction * total)
        self.set_fraction = True
        self._settings_changed()

    def get_memory_fraction(self):
        if not self.set_fraction:
            return 1.0
        return self.allowed_memory_maximum / self.device.mem_get_info()[1]

    def memory_stats_as_nested_dict(self):
        self._enter()
        try:
            return self.stats.as_nested_dict()
        finally:
            self._exit()

    def memory_stats(self):
        return flatten_stats(self.memory_stats_as_nested_dict())

    def _stat(self, read, name):
        self._enter()  # (completes waiting frees)
        try:
            return read(name)
        finally:
            self._exit()

    def memory_allocated(self):
        return self._stat(self.stats.current, "allocated_bytes")

    def max_memory_allocated(self):
        return self._stat(self.stats.peak, "allocated_bytes")

    def memory_reserved(self):
        return self._stat(self.stats.current, "reserved_bytes")

    def max_memory_reserved(self):
        return self._stat(self.stats.peak, "reserved_bytes")

    def reset_peak_memory_stats(self):
        self._enter()
        try:
            self.stats.reset_peak()
        finally:
            self._exit()

    def reset_accumulated_memory_stats(self):
        self._enter()
        try:
            self.stats.reset_accumulated()
        finally:
            self._exit()

    def memory_summary(self, abbreviated=False):
        return format_summary(self.memory_stats(), self.index, abbreviated)

    def record_memory_history(self, enabled="all", context="all", stacks="all",
                              max_entries=sys.maxsize, clear_history=False):
        self._enter()
        try:
            self.history.configure(enabled, context, stacks, max_entries, clear_history)
            self._settings_changed()
        finally:
            self._exit()

    def cache_info(self):
        """Size of the largest cached free block (PyTorch's cacheInfo), 0 if none."""
        self._enter()
        try:
            pools = [self.large_blocks, self.small_blocks]
            for pp in self.graph_pools.values():
                pools += [pp.large, pp.small]
            return max([b.size for p in pools for b in p.blocks()], default=0)
        finally:
            self._exit()

    # -- CUDA graph pools ------------------------------------------------------------------------
    def begin_allocate_to_pool(self, pool_id, filter=None):
        """From now on, allocations on streams where filter(stream) is true come from the private
        pool `pool_id` (created on first use; a second capture into it shares it)."""
        self._enter()
        try:
            if any(pid == pool_id for pid, _ in self.captures_underway):
                raise RuntimeError("beginAllocateToPool: already recording to mempool_id")
            pp = self.graph_pools.get(pool_id)
            if pp is None:
                self.graph_pools[pool_id] = PrivatePool(pool_id, self.small_blocks.counters,
                                                        self.large_blocks.counters)
            else:
                if pp.use_count <= 0:
                    raise RuntimeError(f"beginAllocateToPool: pool {pool_id} was already released")
                pp.use_count += 1
            self.captures_underway.append((pool_id, filter or (lambda stream: True)))
            self._update_fast()
        finally:
            self._exit()

    def end_allocate_to_pool(self, pool_id):
        self._enter()
        try:
            for i, (pid, _) in enumerate(self.captures_underway):
                if pid == pool_id:
                    del self.captures_underway[i]
                    self._update_fast()
                    return
            raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
        finally:
            self._exit()

    def release_pool(self, pool_id):
        """The pool's graph is gone: once its blocks are free, empty_cache (or an OOM) frees them."""
        self._enter()
        try:
            pp = self.graph_pools.get(pool_id)
            if pp is None:
                raise RuntimeError(f"releasePool: no private pool {pool_id}")
            pp.use_count -= 1
            if pp.use_count == 0:
                self.graph_pools_freeable[pool_id] = pp
        finally:
            self._exit()

    # -- snapshot ----------------------------------------------------------------------------------
    def snapshot(self):
        """PyTorch's snapshot: (segments, trace). Segments list their blocks in address order."""
        self._enter()
        try:
            trace = self.history.trace()
            segments = [self._segment_info(b) for b in self._segments.values()]
            segments.sort(key=lambda s: s["address"])
            if self.history.enabled:
                active = sum(s["active_size"] for s in segments)
                self.history.record("snapshot", 0, active, None, None)
            return segments, trace
        finally:
            self._exit()

    def _segment_info(self, head):
        owner = head.pool.owner
        seg = {"device": self.index, "address": head.ptr, "total_size": 0, "allocated_size": 0,
               "active_size": 0, "requested_size": 0, "stream": stream_id(head.stream),
               "segment_type": "small" if head.pool.is_small else "large",
               "segment_pool_id": owner.id if owner is not None else DEFAULT_POOL_ID,
               "is_expandable": False, "frames": head.segment_frames or [], "blocks": []}
        b = head
        while b is not None:
            active = b.allocated or b.event_count > 0 or bool(b.stream_uses)
            state = "active_allocated" if b.allocated else "active_pending_free" if active else "inactive"
            seg["blocks"].append({"address": b.ptr, "size": b.size, "requested_size": b.requested_size,
                                  "state": state, "frames": b.frames or []})
            seg["total_size"] += b.size
            if b.allocated:
                seg["allocated_size"] += b.size
            if active:
                seg["active_size"] += b.size
                seg["requested_size"] += b.requested_size
            b = b.next
        return seg

    # -- malloc ------------------------------------------------------------------------------------
    def _malloc(self, orig_size, stream, frames):
        self._taken = None  # (it changes the pools: _take_back's kept plans may no longer hold)
        if orig_size >= ONE_EXA_BYTE:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate more than 1EB memory.")
        if (self.cuda_events or self.needs_events_deferred) and not self.captures_underway:
            # event queries are illegal during capture: reclaim cross-stream frees afterwards
            self._process_events(frames)
        cfg = self.config
        if orig_size >= K_MIN_BLOCK_SIZE and self._plain_rounding:
            size = (orig_size + K_MIN_BLOCK_SIZE - 1) & -K_MIN_BLOCK_SIZE
        else:
            size = round_size(orig_size, cfg)
        p = _Params(size, stream, self._get_pool(size, stream), allocation_size(size))
        found = self._get_free_block(p)
        if not found:
            if self.set_fraction and cfg.garbage_collection_threshold > 0.0:
                self._garbage_collect_cached_blocks(frames)
            found = (self._alloc_block(p, False, frames)
                     or (self._release_available_cached_blocks(p, frames)
                         and self._alloc_block(p, False, frames))
                     or (not self.captures_underway and self._release_cached_blocks(frames)
                         and self._alloc_block(p, True, frames)))
        if not found:
            self._raise_oom(p, frames)
        return self._take_block(p.block, size, orig_size, frames)

    def _get_pool(self, size, stream):
        for pool_id, wants in self.captures_underway:
            if wants(stream):
                pp = self.graph_pools[pool_id]
                return pp.small if size <= K_SMALL_SIZE else pp.large
        return self.small_blocks if size <= K_SMALL_SIZE else self.large_blocks

    def _fits(self, block_size, size):
        """Whether a cached block may serve a request (PyTorch's oversize rules): an oversize block
        (>= max_split_size) never serves a splittable request, and serves an oversize one only if
        that rounds it up by less than max_non_split_rounding_size."""
        cfg = self.config
        if size < cfg.max_split_size:
            return block_size < cfg.max_split_size
        return block_size < size + cfg.max_non_split_rounding_size

    def _get_free_block(self, p):
        pool, cfg = p.pool, self.config
        if self.set_fraction and cfg.garbage_collection_threshold > 0.0:
            pool.get_free_blocks_call_count += 1  # ages cached blocks for garbage collection
        i, (sizes, blocks) = pool.best_fit(p.stream, p.size)
        if i is None:
            return False
        block = blocks[i]
        if not self._fits(block.size, p.size):
            return False
        del sizes[i], blocks[i]
        p.block = block
        return True

    def _alloc_block(self, p, is_retry, frames):
        size = p.alloc_size
        if is_retry:
            self.stats.num_alloc_retries += 1
        if self.set_fraction and self.total_allocated_memory + size > self.allowed_memory_maximum:
            return False
        try:
            ptr = self.device.raw_malloc(size)
        except DeviceOutOfMemory:
            return False
        if p.pool.owner is not None:
            p.pool.owner.malloc_count += 1
        self.total_allocated_memory += size
        block = Block(p.stream, size, p.pool, ptr)
        st = self.stats
        st.on_segment(p.kind, size, 1)
        if size >= self.config.max_split_size:
            st.oversize_segments.add(1)
        st.num_device_alloc += 1
        if self.history.enabled:
            self.history.record("segment_alloc", ptr, size, p.stream, frames, self._pool_id(p.pool))
        block.segment_frames = frames
        self._segments[ptr] = block
        p.block = block
        return True

    def _take_block(self, block, size, orig_size, frames):
        """Hand out `block` (just taken from its pool, or a new segment) for a request of `size`
        rounded bytes, splitting the rest off into the pool when that is worth it (small pool: if
        >= 512 bytes remain; large: if more than 1 MiB remains and the request may be split)."""
        pool = block.pool
        c, o, a = pool.counters  # this pool's Counters, the other pool's, AllPools
        remaining = block.size - size
        already_split = block.is_split()
        if remaining >= pool.min_rest and (pool.is_small or size < self._max_split):
            rest = block
            prev = rest.prev
            block = self._spare
            if block is not None:
                self._spare = block.next
                block.stream, block.size, block.pool, block.ptr = rest.stream, size, pool, rest.ptr
                block.prev, block.next = prev, rest
            else:
                block = Block(rest.stream, size, pool, rest.ptr, prev, rest)
            if prev is not None:
                prev.next = block
            else:  # the new block heads the segment now: it carries the segment's stack
                block.segment_frames, rest.segment_frames = rest.segment_frames, None
                self._segments[block.ptr] = block
            rest.prev = block
            rest.ptr += size
            rest.size = remaining
            pool.insert(rest)
            if already_split:  # an inactive split block shrinks by `size`
                c.sb -= size
            else:  # a new inactive split block appears
                _split_delta(c, o, a, 1, remaining)
        elif already_split:  # an inactive split block becomes active
            c.s -= 1
            c.sb -= block.size
        block.allocated = True
        block.requested_size = orig_size
        block.frames = frames
        if self._recording:
            self.history.record("alloc", block.ptr, orig_size, block.stream, frames, self._pool_id(pool))
        size = block.size
        c.n += 1
        c.b += size
        c.r += orig_size
        _alloc_peaks(c, o, a)
        if size >= self._max_split:
            self.stats.oversize_allocations.add(1)
        return block

    def _raise_oom(self, p, frames):
        free, total = self.device.mem_get_info()
        if self.history.enabled:
            self.history.record("oom", free, p.size, p.stream, frames, self._pool_id(p.pool))
        st = self.stats
        st.num_ooms += 1
        allocated, reserved = st.current("allocated_bytes"), st.current("reserved_bytes")
        in_private = sum(pp.large.total() + pp.small.total() for pp in self.graph_pools.values())
        allowed = f"{format_size(self.allowed_memory_maximum)} allowed; " if self.set_fraction else ""
        private = (f"with {format_size(in_private)} allocated in private pools (e.g., CUDA Graphs), "
                   if in_private else "")
        raise OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate {format_size(p.alloc_size)}. GPU {self.index} "
            f"has a total capacity of {format_size(total)} of which {format_size(free)} is free. "
            f"{allowed}Of the allocated memory {format_size(allocated + in_private)} is allocated "
            f"by vibetensor, {private}and {format_size(reserved - allocated - in_private)} is "
            "reserved by vibetensor but unallocated. If reserved but unallocated memory is large "
            "try setting VIBETENSOR_CUDA_ALLOC_CONF=max_split_size_mb:<MB> to avoid fragmentation.")

    # -- free --------------------------------------------------------------------------------------
    def _free(self, block, frames):
        block.allocated = False
        st = self.stats
        st.on_free(SMALL if block.pool.is_small else LARGE, block.size)
        if self.history.enabled:
            self.history.record("free_requested", block.ptr, block.requested_size, block.stream,
                                frames or block.frames, self._pool_id(block.pool))
        if block.size >= self._max_split:
            st.oversize_allocations.add(-1)
        if block.stream_uses:
            if self.captures_underway:  # no event queries during capture: decide later
                self.needs_events_deferred.append(block)
            else:
                self._insert_events(block)
            self._update_fast()
        else:
            self._free_block(block, frames, False)

    def _take_back(self, block, nbytes, stream):
        """malloc(nbytes) right after the free of `block`, where freeing it and taking it again
        leave the pools as they were (_take_back_plan says when). Then the pair reduces to its
        statistics and the block is the result; None where it does not (the caller frees the
        block and mallocs as usual). A loop whose temporaries alternate between two blocks hits
        every time. The plans of the blocks taken back are kept until anything else changes the
        pools or the statistics they rest on (_enter, _free_block, _malloc and malloc's fast path
        drop them: a take-back changes neither), so such a loop makes each plan once."""
        size = block.size
        if block.stream is not stream or size != (nbytes + 511) & -512:
            return None
        plans = self._taken
        plan = plans.get(block) if plans is not None else None
        if plan is None:
            plan = self._take_back_plan(block, nbytes, size)
            if plan is None:
                return None
            if plans is None:
                plans = self._taken = {}
            plans[block] = plan
        c, o, a, sp, sbp, merged = plan
        requested = block.requested_size
        c.nc += 1  # what the free adds to the totals; active blocks and bytes come back unchanged
        c.bc += size
        c.rc += requested
        c.sp += sp  # the inactive split blocks and bytes that appear for a moment
        c.sbp += sbp
        if merged is not None:  # the split's free remainder is the merged Block, with the freed block's request (stale, as torch's)
            merged.requested_size = requested
        block.requested_size = nbytes
        r = c.r = c.r - requested + nbytes
        if r > c.g_r:  # a peak may rise (Counters' guards)
            _alloc_peaks(c, o, a)
        return block

    def _take_back_plan(self, block, nbytes, size):
        """(Counters c, o, a, inactive split blocks and bytes the free adds to the totals, the free
        neighbour that merges or None) where freeing `block` and malloc(nbytes) on its stream
        leave the pools as they were, else None. It must have exactly the rounded size, on this
        stream's pool, and no free block before it in the segment (a merge would move the block's
        start). A free block after it merges, and best fit then splits the merged block at the
        same place, if no other free block fits better; without one, best fit takes the block
        back if no free block of its size sits below it."""
        if size >= self._fast_limit or block.stream_uses:
            return None
        pool = block.pool
        if pool is not (self.small_blocks if nbytes <= K_SMALL_SIZE else self.large_blocks):  # (not a graph's)
            return None
        prev, nxt = block.prev, block.next
        if prev is not None and not (prev.allocated or prev.event_count or prev.stream_uses):
            return None
        merges = nxt is not None and not (nxt.allocated or nxt.event_count or nxt.stream_uses)
        if merges and nxt.size < pool.min_rest:  # (best fit would not split the merged block)
            return None
        fit = size + nxt.size if merges else size  # the block best fit must pick: the merged one or this
        sizes, blocks = pool.by_stream.get(block.stream, _EMPTY)
        k = bisect_left(sizes, size)
        if k < len(sizes) and blocks[k] is nxt:
            k += 1
        if k < len(sizes) and (sizes[k] < fit or sizes[k] == fit and blocks[k].ptr < block.ptr):
            return None  # another free block fits better
        c, o, a = pool.counters
        if not (prev is not None or nxt is not None):  # a whole segment: freed, it is no split block
            return c, o, a, 0, 0, None
        if c.s + (not merges) > c.g_s or c.sb + size > c.g_sb:  # for a moment: a split peak may rise
            return None
        if merges and prev is None and nxt.next is None:  # the whole segment frees, then splits again
            return c, o, a, 1, nxt.size, nxt
        # (merging, the free grows an inactive split block; the split shrinks it back)
        return c, o, a, int(not merges), size, nxt if merges else None

    def _free_block(self, block, frames=None, just_freed=True):
        """Move a block whose uses are over into its pool, merging with free neighbours.
        just_freed: free() is calling (as _free_block_of): a block that other streams used, or
        any block while history is recorded, goes through _free, which counts the free as
        requested and calls back here (just_freed False) once the block's uses are over."""
        self._taken = None  # (the pools change: _take_back's kept plans may no longer hold)
        size = block.size
        pool = block.pool
        c, o, a = pool.counters
        if just_freed:
            if block.stream_uses or self._recording:
                return self._free(block, gather_frames() if self.history.context >= ALL_CONTEXT else None)
            if size >= self._fast_limit and size >= self._max_split:
                self.stats.oversize_allocations.add(-1)
        else:  # no longer pending: _free counted it
            if self._recording:
                self.history.record("free_completed", block.ptr, block.requested_size, block.stream,
                                    frames or block.frames, self._pool_id(pool))
            c.pn -= 1
            c.pb -= size
        block.allocated = False
        block.frames = None
        requested = block.requested_size
        c.n -= 1  # the free completed: the block is no longer active
        c.b -= size
        c.r -= requested
        c.nc += 1
        c.bc += size
        c.rc += requested
        prev, nxt = block.prev, block.next
        if prev is None and nxt is None:  # a whole segment: nothing to merge, no split blocks
            pool.insert(block)
            return
        block.gc_count_base = pool.get_free_blocks_call_count  # pool.insert, inline
        sizes, blocks = pool.by_stream[block.stream]  # the stream's free list, see BlockPool
        # absorb free neighbours (inactive split blocks): their Blocks go to the spare chain, and
        # `slot` is where the last one absorbed still sits in the free list
        merged = 0
        if prev is not None and not (prev.allocated or prev.event_count or prev.stream_uses):
            slot = bisect_left(sizes, prev.size)
            while blocks[slot] is not prev:  # (blocks of one size: in address order)
                slot += 1
            block.ptr = prev.ptr
            block.size += prev.size
            pp = block.prev = prev.prev
            if pp is not None:
                pp.next = block
            else:  # the block heads the segment now
                block.segment_frames, prev.segment_frames = prev.segment_frames, None
                self._segments[block.ptr] = block
            prev.next = self._spare
            self._spare = prev
            merged = 1
        if nxt is not None and not (nxt.allocated or nxt.event_count or nxt.stream_uses):
            if merged:
                del sizes[slot], blocks[slot]
            slot = bisect_left(sizes, nxt.size)
            while blocks[slot] is not nxt:
                slot += 1
            block.size += nxt.size
            nn = block.next = nxt.next
            if nn is not None:
                nn.prev = block
            nxt.next = self._spare
            self._spare = nxt
            merged += 1
        if merged:
            merged_size = block.size
            j = slot + 1
            if j == len(sizes) or merged_size < sizes[j] or (merged_size == sizes[j] and block.ptr < blocks[j].ptr):
                # the merged block sorts above the neighbour it absorbed, so if it also sorts
                # below the entry after, it takes the neighbour's place in the list
                sizes[slot] = merged_size
                blocks[slot] = block
            else:
                del sizes[slot], blocks[slot]
                pool.insert(block)
            if block.prev is None and block.next is None:
                # the whole segment is free: the absorbed neighbours are no inactive split blocks now
                c.s -= merged
                c.sb -= block.size - size
                return
            if merged == 2:  # two inactive split blocks became one
                c.s -= 1
            c.sbp += size  # the inactive split bytes grow by the freed block's
            sb = c.sb = c.sb + size
            if sb > c.g_sb:  # a peak may rise (Counters' guards)
                _split_peaks(c, o, a)
        else:  # a new inactive split block
            i = bisect_left(sizes, size)
            if i < len(sizes) and sizes[i] == size:  # blocks of one size: in address order
                i = _slot(sizes, blocks, size, block.ptr)
            sizes.insert(i, size)
            blocks.insert(i, block)
            c.sp += 1  # (_split_delta, inline)
            c.sbp += size
            s = c.s = c.s + 1
            sb = c.sb = c.sb + size
            if s > c.g_s or sb > c.g_sb:  # a peak may rise (Counters' guards)
                _split_peaks(c, o, a)

    _free_block_of = _free_block  # _release's hook (fastalloc's C version of the common case, where it builds)

    # -- events ------------------------------------------------------------------------------------
    def _get_event(self):
        return self._event_pool.pop() if self._event_pool else self.device.create_event()

    def _insert_events(self, block):
        streams, block.stream_uses = block.stream_uses, None
        for s in streams:
            ev = self._get_event()
            ev.record(s)
            block.event_count += 1
            q = self.cuda_events.get(s)
            if q is None:
                q = self.cuda_events[s] = deque()
            q.append((ev, block))

    def _insert_events_deferred_until_no_capture(self, frames):
        pending, self.needs_events_deferred = self.needs_events_deferred, []
        for block in pending:
            self._insert_events(block)
            if block.event_count == 0:
                self._free_block(block, frames, False)
        self._update_fast()

    def _process_events(self, frames):
        """Free the blocks whose recorded streams have finished with them (no waiting)."""
        if self.needs_events_deferred:
            self._insert_events_deferred_until_no_capture(frames)
        if not self.cuda_events:
            return
        for s in list(self.cuda_events):
            q = self.cuda_events[s]
            while q:
                ev, block = q[0]
                if not ev.query():
                    break  # later events on this stream can't be done either
                q.popleft()
                self._event_pool.append(ev)
                block.event_count -= 1
                if block.event_count == 0:
                    self._free_block(block, frames, False)
            if not q:
                del self.cuda_events[s]
        self._update_fast()

    def _synchronize_and_free_events(self, frames):
        self.stats.num_sync_all_streams += 1
        self._insert_events_deferred_until_no_capture(frames)
        events, self.cuda_events = self.cuda_events, {}
        for q in events.values():
            for ev, block in q:
                ev.synchronize()
                self._event_pool.append(ev)
                block.event_count -= 1
                if block.event_count == 0:
                    self._free_block(block, frames, False)
        self._update_fast()

    # -- releasing segments ------------------------------------------------------------------------
    def _release_block(self, block, frames):
        st = self.stats
        st.num_device_free += 1
        if self.history.enabled:
            self.history.record("segment_free", block.ptr, block.size, block.stream,
                                frames or block.segment_frames, self._pool_id(block.pool))
        pool = block.pool
        pool.remove(block)
        del self._segments[block.ptr]
        self.device.raw_free(block.ptr)
        self.total_allocated_memory -= block.size
        if pool.owner is not None:
            pool.owner.malloc_count -= 1
        st.on_segment(SMALL if pool.is_small else LARGE, block.size, -1)
        if block.size >= self.config.max_split_size:
            st.oversize_segments.add(-1)

    def _release_blocks(self, pool, frames):
        for b in pool.blocks():
            if b.prev is None and b.next is None:
                self._release_block(b, frames)

    def _release_cached_blocks(self, frames):
        self._synchronize_and_free_events(frames)
        self._spare = None
        self._release_blocks(self.large_blocks, frames)
        self._release_blocks(self.small_blocks, frames)
        for pool_id, pp in list(self.graph_pools_freeable.items()):
            self._release_blocks(pp.small, frames)
            self._release_blocks(pp.large, frames)
            if pp.malloc_count == 0:
                del self.graph_pools[pool_id]
                del self.graph_pools_freeable[pool_id]
        return True

    def _release_available_cached_blocks(self, p, frames):
        """Free oversize cached blocks of this stream, only enough for the request."""
        max_split = self.config.max_split_size
        if max_split == SIZE_MAX:
            return False
        key = max(p.size, max_split)
        i, (sizes, blocks) = p.pool.best_fit(p.stream, key)
        if i is not None:
            self._release_block(blocks[i], frames)
            return True
        released, j = 0, len(sizes) - 1  # no single block is big enough: free the largest oversize ones
        while released < key and j >= 0 and blocks[j].size >= max_split:
            block = blocks[j]
            released += block.size
            self._release_block(block, frames)
            j -= 1
        return released >= key

    def _garbage_collect_cached_blocks(self, frames):
        """Free old unsplit cached large blocks while usage exceeds threshold * allowed memory."""
        threshold = int(self.config.garbage_collection_threshold * self.allowed_memory_maximum)
        if self.total_allocated_memory <= threshold:
            return
        target = self.total_allocated_memory - threshold
        pool = self.large_blocks
        age = lambda b: pool.get_free_blocks_call_count - b.gc_count_base
        freeable = [b for b in pool.blocks() if not b.is_split()]
        total_age, count = sum(age(b) for b in freeable), len(freeable)
        reclaimed, freed_any = 0, True
        while reclaimed < target and freed_any and count > 0:
            threshold_age = total_age / count
            freed_any = False
            for b in pool.blocks():
                if not b.is_split() and age(b) >= threshold_age:
                    freed_any = True
                    reclaimed += b.size
                    total_age -= age(b)
                    count -= 1
                    self._release_block(b, frames)

    @staticmethod
    def _pool_id(pool):
        return pool.owner.id if pool.owner is not None else DEFAULT_POOL_ID


Allocator = CachingAllocator


# ---------------------------------------------------------------------------------------------
# backend:cudaMallocAsync

_native = []  # [whether C replaced malloc and _free_block_of] once tried


def _install_native():
    """CachingAllocator.malloc, _free_block_of and Allocation.__del__ in C (fastalloc), where it builds
    (and VIBETENSOR_FASTALLOC is not 0): the same work over the same objects, a fifth of a small op's
    host time."""
    from vibetensor.runtime.cuda import fastalloc
    mod = fastalloc.module()
    if mod is not None:
        cls = CachingAllocator
        cls.malloc, cls._free_block_of, Allocation.__del__ = mod.install(
            cls, Block, BlockPool, Counters, Allocation, cls.malloc_python, _split_peaks, _alloc_peaks, gather_frames)
    _native.append(mod is not None)


class MallocAsyncAllocator(_Locked):
    """The driver's stream-ordered pool behind the same interface (PyTorch's CudaMallocAsync
    backend). The driver does the caching; we keep per-pointer usage for record_stream and stats."""
    backend = "cudaMallocAsync"

    def __init__(self, device, config=None):
        if not _native:
            _install_native()
        super().__init__()
        self.device = device
        self.index = getattr(device, "index", 0)
        self.config = config if config is not None else AllocatorConfig()
        self.usage = {}                    # ptr -> [size, stream, recorded streams, pool_id]
        self.used_bytes = 0
        self.limit = None                  # set_memory_fraction's byte limit
        self.captures_underway = []
        self.graph_pools = {}              # pool_id -> [use_count, ptrs freed while held]
        self.deferred_until_no_capture = []
        self._raw = {}
        self._warned = False
        if self.config.per_process_memory_fraction is not None:
            self.set_memory_fraction(self.config.per_process_memory_fraction)

    def malloc(self, nbytes, stream=None):
        if stream is None:
            stream = self.device.current_stream()
        if nbytes == 0:
            return PlainAllocation(self, _NO_BLOCK, 0, stream, 0, 0)
        if nbytes >= ONE_EXA_BYTE:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate more than 1EB memory.")
        self._enter()
        try:
            ptr = self._malloc(nbytes, stream)
            pool_id = next((pid for pid, wants in self.captures_underway if wants(stream)), None)
            self.usage[ptr] = [nbytes, stream, None, pool_id]
            self.used_bytes += nbytes
        finally:
            self._exit()
        return PlainAllocation(self, ptr, nbytes, stream, ptr, nbytes)

    def _malloc(self, nbytes, stream):
        if self.limit is not None and self.used_bytes + nbytes > self.limit:
            self._raise_oom(nbytes)
        try:
            return self.device.malloc_async(nbytes, stream)
        except DeviceOutOfMemory:
            pass
        # what PyTorch does: wait for pending frees, give idle pool memory back, retry once
        self.device.synchronize()
        self.device.pool_trim_to(0)
        try:
            return self.device.malloc_async(nbytes, stream)
        except DeviceOutOfMemory:
            self._raise_oom(nbytes)

    def _raise_oom(self, nbytes):
        free, total = self.device.mem_get_info()
        limit = self.limit if self.limit is not None else total
        raise OutOfMemoryError(
            f"Allocation on device {self.index} would exceed allowed memory. (out of memory)"
            f"\nCurrently allocated     : {format_size(self.used_bytes)}"
            f"\nRequested               : {format_size(nbytes)}"
            f"\nDevice limit            : {format_size(total)}"
            f"\nFree (according to CUDA): {format_size(free)}"
            f"\nPyTorch limit (set by user-supplied memory fraction)"
            f"\n                        : {format_size(limit)}")

    def _free_block_of(self, ptr):
        size, stream, recorded, pool_id = self.usage.pop(ptr)
        self.used_bytes -= size
        if pool_id is not None and pool_id in self.graph_pools:
            self.graph_pools[pool_id][1].append((ptr, stream, recorded))  # kept for the graph
        elif self.captures_underway:
            self.deferred_until_no_capture.append((ptr, stream, recorded))
        else:
            self._free_async(ptr, stream, recorded)

    def _free_async(self, ptr, stream, recorded):
        for s in recorded or ():  # the free waits, in stream order, for every recorded use
            ev = self.device.create_event()
            ev.record(s)
            self.device.stream_wait_event(stream, ev)
        self.device.free_async(ptr, stream)

    def record_stream(self, handle, stream):
        ptr = handle._block
        if ptr is None:
            raise RuntimeError("record_stream: the allocation has already been freed")
        if ptr is _NO_BLOCK:
            return
        self._enter()
        try:
            u = self.usage[ptr]
            if stream != u[1]:
                if u[2] is None:
                    u[2] = set()
                u[2].add(stream)
        finally:
            self._exit()

    raw_alloc, raw_delete = CachingAllocator.raw_alloc, CachingAllocator.raw_delete

    def empty_cache(self):
        self._enter()
        try:
            self.device.synchronize()
            self.device.pool_trim_to(0)
        finally:
            self._exit()

    def configure(self, config):
        self.config = config

    def set_memory_fraction(self, fraction):
        self.limit = int(fraction * self.device.mem_get_info()[1])

    def get_memory_fraction(self):
        return 1.0 if self.limit is None else self.limit / self.device.mem_get_info()[1]

    def memory_stats_as_nested_dict(self):
        """Only the driver's view is meaningful here: used and reserved bytes, current and peak;
        the rest of PyTorch's keys are present and zero, as with PyTorch's cudaMallocAsync."""
        reserved, reserved_high, used, used_high = self.device.pool_usage()
        st = DeviceStats()
        st.max_split_size = 0
        for s, cur, peak in ((st.allocated_bytes[ALL], used, used_high),
                             (st.active_bytes[ALL], used, used_high),
                             (st.reserved_bytes[ALL], reserved, reserved_high)):
            s.current, s.peak = cur, peak
        return st.as_nested_dict()

    def memory_stats(self):
        return flatten_stats(self.memory_stats_as_nested_dict())

    def memory_allocated(self):
        return self.device.pool_usage()[2]

    def max_memory_allocated(self):
        return self.device.pool_usage()[3]

    def memory_reserved(self):
        return self.device.pool_usage()[0]

    def max_memory_reserved(self):
        return self.device.pool_usage()[1]

    def reset_peak_memory_stats(self):
        self.device.pool_reset_peaks()

    def reset_accumulated_memory_stats(self):
        if not self._warned:
            self._warned = True
            warnings.warn("For backend:cudaMallocAsync, resetAccumulatedStats has no effect.")

    def memory_summary(self, abbreviated=False):
        return format_summary(self.memory_stats(), self.index, abbreviated)

    def record_memory_history(self, *args, **kwargs):
        raise RuntimeError("cudaMallocAsync does not yet support recordHistory. If you need it, "
                           "please file an issue describing your use case.")

    def snapshot(self):
        raise RuntimeError("Calling snapshot with backend:cudaMallocAsync is not meaningful. "
                           "(For backend:native, snapshot returns a detailed summary of all "
                           "blocks and their stream usage.)")

    def cache_info(self):
        reserved, _, used, _ = self.device.pool_usage()
        return reserved - used

    def begin_allocate_to_pool(self, pool_id, filter=None):
        self._enter()
        try:
            if any(pid == pool_id for pid, _ in self.captures_underway):
                raise RuntimeError("beginAllocateToPool: already recording to mempool_id")
            entry = self.graph_pools.setdefault(pool_id, [0, []])
            entry[0] += 1
            self.captures_underway.append((pool_id, filter or (lambda stream: True)))
        finally:
            self._exit()

    def end_allocate_to_pool(self, pool_id):
        self._enter()
        try:
            for i, (pid, _) in enumerate(self.captures_underway):
                if pid == pool_id:
                    del self.captures_underway[i]
                    break
            else:
                raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
            if not self.captures_underway:
                pending, self.deferred_until_no_capture = self.deferred_until_no_capture, []
                for args in pending:
                    self._free_async(*args)
        finally:
            self._exit()

    def release_pool(self, pool_id):
        """The graph is gone: the pool's freed pointers go back to the driver's pool."""
        self._enter()
        try:
            entry = self.graph_pools.get(pool_id)
            if entry is None:
                raise RuntimeError(f"releasePool: no private pool {pool_id}")
            entry[0] -= 1
            if entry[0] == 0:
                del self.graph_pools[pool_id]
                for args in entry[1]:
                    self._free_async(*args)
                for u in self.usage.values():  # still-live outputs now free normally
                    if u[3] == pool_id:
                        u[3] = None
        finally:
            self._exit()


def make_allocator(device, config=None):
    """The allocator the config's backend names, for one device."""
    config = config if config is not None else config_from_env()
    cls = MallocAsyncAllocator if config.backend == "cudaMallocAsync" else CachingAllocator
    return cls(device, config)
