"""CUDA kernels of the random ops: Philox4x32-10 in Triton, drawing the SAME word stream as the CPU
kernels (runtime/generator.py documents the stream and each distribution's use of it). A CUDA
generator in state (seed, offset) and a CPU generator in the same state give the same integers and
uniforms bit for bit; values that pass through log/sin/cos/exp agree to a few ulps.

One kernel, specialised by the distribution (`DIST`): each program turns BLOCK Philox counters
into 4 words each, and the words into 4 elements (1 word per element) or 2 (2 words per element:
float64 uniforms, integer ranges over 2**32). Seeds, offsets and 64-bit parameters travel as pairs
of int32 halves, so every launch has the same argument types and no value is specialised on:
a kernel compiled by an eager call is the one a later CUDA-graph capture launches.

CUDA graphs: a kernel captured into a graph must not bake its offset in, or every replay would
draw the same numbers. Under capture the kernel reads (seed, base offset) from a 2-word device
buffer owned by the graph (one per generator it drew from) and adds its own increment, fixed at
capture; before each replay the graph runs a one-thread kernel that writes the generator's seed
and its next offset into that buffer, and the host offset advances by all the capture drew, as
torch's graph-safe Philox state does. So replays draw fresh numbers, the first replay draws what
an eager run from the same generator state would, and eager draws after replays never repeat.

torch names the ops' sampling checks for tensor p (bernoulli) as device-side asserts; checking
here would synchronise, so an out-of-range p simply acts as clamped to [0, 1].
"""
import math
import struct

import triton
import triton.language as tl
from triton.language.extra import libdevice

from vibetensor.backends.cuda.creation import empty_outside_graph_pool
from vibetensor.dispatch import DispatchKey, get
from vibetensor.ops import random as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.cuda import graphs, launcher
from vibetensor.runtime.cuda import stream as streams
from vibetensor.runtime.generator import counters_for
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor, empty

CUDA = DispatchKey.CUDA
BLOCK = 256  # counters per program: 1024 elements at 4 per counter

# Philox4x32 constants (Random123), as constexprs the kernels can read
_ROUND_A: tl.constexpr = tl.constexpr(0xD2511F53)
_ROUND_B: tl.constexpr = tl.constexpr(0xCD9E8D57)
_KEY_A: tl.constexpr = tl.constexpr(0x9E3779B9)
_KEY_B: tl.constexpr = tl.constexpr(0xBB67AE85)

# distributions (the kernel's DIST)
UNIFORM, NORMAL, LOG_NORMAL, EXPONENTIAL, GEOMETRIC, CAUCHY, BERNOULLI, INTEGERS, INTEGERS_FULL, KEYS = range(10)
_U32, _U64 = 0xFFFFFFFF, (1 << 64) - 1
_GRID = {dt.float16: 2048.0, dt.bfloat16: 256.0}  # half types: uniforms floored onto 2**-11 / 2**-8 grids
_INT_ARGS = ["n", "seed_lo", "seed_hi", "off_lo", "off_hi", "use_state", "a_lo", "a_hi", "b_lo", "b_hi"]


# -- Triton helpers ---------------------------------------------------------------------------------------

@triton.jit
def _u64(lo, hi):
    """Two int32 halves (bit patterns) -> the uint64 they spell."""
    return (hi.to(tl.uint32, bitcast=True).to(tl.uint64) << 32) | lo.to(tl.uint32, bitcast=True).to(tl.uint64)


@triton.jit
def _key_and_base(seed_lo, seed_hi, off_lo, off_hi, state_ptr, use_state):
    """Philox key (k0, k1) and the first counter: from the arguments, or, under graph capture, from
    the graph's device buffer (seed, base offset) plus the argument offset (this kernel's increment)."""
    k0 = seed_lo.to(tl.uint32, bitcast=True)
    k1 = seed_hi.to(tl.uint32, bitcast=True)
    base = _u64(off_lo, off_hi)
    if use_state != 0:
        s = tl.load(state_ptr).to(tl.uint64, bitcast=True)
        o = tl.load(state_ptr + 1).to(tl.uint64, bitcast=True)
        k0 = s.to(tl.uint32)
        k1 = (s >> 32).to(tl.uint32)
        base = base + o
    return k0, k1, base


@triton.jit
def _philox(c0, c1, k0, k1):
    """Philox4x32-10 of counters (c0, c1, 0, 0) under key (k0, k1): four uint32 blocks."""
    c2 = tl.zeros_like(c0)
    c3 = tl.zeros_like(c0)
    for _ in tl.static_range(10):
        p0 = c0.to(tl.uint64) * _ROUND_A  # a 32x32 -> 64-bit product (mul.wide)
        p1 = c2.to(tl.uint64) * _ROUND_B
        c0 = (p1 >> 32).to(tl.uint32) ^ c1 ^ k0
        c1 = p1.to(tl.uint32)
        c2 = (p0 >> 32).to(tl.uint32) ^ c3 ^ k1
        c3 = p0.to(tl.uint32)
        k0 = (k0 + _KEY_A).to(tl.uint32)  # wraps mod 2**32 whatever type the constant takes
        k1 = (k1 + _KEY_B).to(tl.uint32)
    return c0, c1, c2, c3


@triton.jit
def _uniform32(w, GRID: tl.constexpr):
    """uint32 word -> float32 in [0, 1) (Triton's uint_to_uniform_float), floored onto a half
    type's grid of 1/GRID when GRID > 0 (so rounding to the half type can't reach 1.0)."""
    x = w.to(tl.int32, bitcast=True)
    x = x ^ (x >> 31)  # -x - 1 for negatives, without overflow
    u = x.to(tl.float32) * 4.6566127342e-10
    if GRID > 0:
        u = tl.floor(u * GRID) / GRID
    return u


@triton.jit
def _uniform64(lo, hi):
    """Two words -> float64 in [0, 1): the top 53 bits of (hi << 32 | lo)."""
    bits = ((hi.to(tl.uint64) << 32) | lo.to(tl.uint64)) >> 11
    return bits.to(tl.float64) * 1.1102230246251565e-16


@triton.jit
def _from_uniform(u, a, b, DIST: tl.constexpr, COMPUTE: tl.constexpr):
    """The distributions that are one function of one uniform u. a, b: float64 parameters."""
    if DIST == 0:  # uniform: a = low, b = high - low
        v = a.to(COMPUTE) + u.to(COMPUTE) * b.to(COMPUTE)
    elif DIST == 3:  # exponential: a = lambda
        v = -libdevice.log1p(-u.to(COMPUTE)) / a.to(COMPUTE)
    elif DIST == 4:  # geometric: b = log1p(-p), in float64
        v = tl.maximum(tl.ceil(libdevice.log1p(-u.to(tl.float64)) / b), 1.0)
    elif DIST == 5:  # cauchy: a = median, b = sigma
        pi = tl.full(u.shape, 3.141592653589793, COMPUTE)  # materialised in COMPUTE, not via float32
        v = a.to(COMPUTE) + b.to(COMPUTE) * libdevice.tan(pi * (u.to(COMPUTE) - 0.5))
    else:  # bernoulli with a float p = a
        v = u < a.to(u.dtype)
    return v


@triton.jit
def _box_muller(u1, u2, WIDE: tl.constexpr):
    """Two uniforms -> two standard normals (float32: Triton's pair_uniform_to_normal; float64:
    log(1 - u), so u = 0 is fine)."""
    if WIDE:
        radius = tl.sqrt(-2.0 * libdevice.log(1.0 - u1))  # float64 sqrt is IEEE-rounded (sqrt_rn is float32-only)
        theta = tl.full(u2.shape, 6.283185307179586, tl.float64) * u2  # exact float64 2 pi
    else:
        radius = tl.sqrt_rn(-2.0 * libdevice.log(tl.maximum(u1, 1.0e-7)))
        theta = 6.2831854820251465 * u2  # float32(2 pi), exact in float32
    return radius * libdevice.cos(theta), radius * libdevice.sin(theta)


@triton.jit
def _normal_out(z, a, b, DIST: tl.constexpr, COMPUTE: tl.constexpr):
    v = a.to(COMPUTE) + b.to(COMPUTE) * z.to(COMPUTE)
    if DIST == 2:  # log-normal
        v = libdevice.exp(v)
    return v


@triton.jit
def _int_out(w, span, low, DIST: tl.constexpr):
    """An integer in [low, low + span) from a uint64 word: low + w % span (two's complement wrap)."""
    if DIST == 7:
        w = w % span
    return (w + low).to(tl.int64, bitcast=True)


@triton.jit
def _store(out_ptr, idx, v, n):
    tl.store(out_ptr + idx, v.to(out_ptr.dtype.element_ty), mask=idx < n)


@triton.jit
def _value1(w, idx, p_ptr, n, a, b, span, low, DIST: tl.constexpr, COMPUTE: tl.constexpr, GRID: tl.constexpr,
            P_TENSOR: tl.constexpr):
    """Element idx from its one word (the 1-word distributions other than normals)."""
    if DIST == 7:
        v = _int_out(w.to(tl.uint64), span, low, DIST)
    elif P_TENSOR:  # bernoulli with a tensor p (only bernoulli passes one)
        p = tl.load(p_ptr + idx, mask=idx < n, other=0).to(tl.float32)
        v = _uniform32(w, 0.0) < p
    else:
        v = _from_uniform(_uniform32(w, GRID), a, b, DIST, COMPUTE)
    return v


@triton.jit
def _value2(lo, hi, idx, p_ptr, n, a, b, span, low, DIST: tl.constexpr, COMPUTE: tl.constexpr,
            P_TENSOR: tl.constexpr):
    """Element idx from its two words (float64 uniforms, wide integers, randperm keys)."""
    if DIST == 7 or DIST == 8:
        v = _int_out((hi.to(tl.uint64) << 32) | lo.to(tl.uint64), span, low, DIST)
    elif DIST == 9:  # randperm key: unsigned order as signed order (flip the top bit)
        v = (((hi.to(tl.uint64) << 32) | lo.to(tl.uint64)) ^ 0x8000000000000000).to(tl.int64, bitcast=True)
    elif P_TENSOR:
        p = tl.load(p_ptr + idx, mask=idx < n, other=0).to(tl.float64)
        v = _uniform64(lo, hi) < p
    else:
        v = _from_uniform(_uniform64(lo, hi), a, b, DIST, COMPUTE)
    return v


@triton.jit(do_not_specialize=_INT_ARGS, do_not_specialize_on_alignment=["state_ptr"])
def _random_kernel(out_ptr, p_ptr, state_ptr, n, seed_lo, seed_hi, off_lo, off_hi, use_state, a_lo, a_hi, b_lo, b_hi,
                   DIST: tl.constexpr, TWO_WORDS: tl.constexpr, COMPUTE: tl.constexpr, GRID: tl.constexpr,
                   P_TENSOR: tl.constexpr, BLOCK: tl.constexpr):
    """out[i] for i < n: counter c = base + pid * BLOCK + j gives words 4c..4c+3 of the stream."""
    c = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    k0, k1, base = _key_and_base(seed_lo, seed_hi, off_lo, off_hi, state_ptr, use_state)
    ctr = base + c.to(tl.uint64)
    r0, r1, r2, r3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)
    a_bits = _u64(a_lo, a_hi)
    b_bits = _u64(b_lo, b_hi)
    a = a_bits.to(tl.float64, bitcast=True)  # float parameters; integer ones use the bits
    b = b_bits.to(tl.float64, bitcast=True)
    if TWO_WORDS:
        i0 = 2 * c
        i1 = i0 + 1
        if DIST == 1 or DIST == 2:  # float64 normals: one pair of uniforms per counter
            z0, z1 = _box_muller(_uniform64(r0, r1), _uniform64(r2, r3), True)
            v0 = _normal_out(z0, a, b, DIST, COMPUTE)
            v1 = _normal_out(z1, a, b, DIST, COMPUTE)
        else:
            v0 = _value2(r0, r1, i0, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, P_TENSOR)
            v1 = _value2(r2, r3, i1, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, P_TENSOR)
        _store(out_ptr, i0, v0, n)
        _store(out_ptr, i1, v1, n)
    else:
        i0 = 4 * c
        if DIST == 1 or DIST == 2:  # float32 normals: tl.randn4x's pairing
            z0, z1 = _box_muller(_uniform32(r0, 0.0), _uniform32(r1, 0.0), False)
            z2, z3 = _box_muller(_uniform32(r2, 0.0), _uniform32(r3, 0.0), False)
            _store(out_ptr, i0, _normal_out(z0, a, b, DIST, COMPUTE), n)
            _store(out_ptr, i0 + 1, _normal_out(z1, a, b, DIST, COMPUTE), n)
            _store(out_ptr, i0 + 2, _normal_out(z2, a, b, DIST, COMPUTE), n)
            _store(out_ptr, i0 + 3, _normal_out(z3, a, b, DIST, COMPUTE), n)
        else:
            _store(out_ptr, i0, _value1(r0, i0, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, GRID,
                                        P_TENSOR), n)
            _store(out_ptr, i0 + 1, _value1(r1, i0 + 1, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, GRID,
                                            P_TENSOR), n)
            _store(out_ptr, i0 + 2, _value1(r2, i0 + 2, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, GRID,
                                            P_TENSOR), n)
            _store(out_ptr, i0 + 3, _value1(r3, i0 + 3, p_ptr, n, a, b, b_bits, a_bits, DIST, COMPUTE, GRID,
                                            P_TENSOR), n)


@triton.jit(do_not_specialize=["seed_lo", "seed_hi", "off_lo", "off_hi"])
def _set_state_kernel(state_ptr, seed_lo, seed_hi, off_lo, off_hi):
    """Before a graph replay: the generator's seed and the offset this replay starts at."""
    tl.store(state_ptr, _u64(seed_lo, seed_hi).to(tl.int64, bitcast=True))
    tl.store(state_ptr + 1, _u64(off_lo, off_hi).to(tl.int64, bitcast=True))


_set_state = launcher.Kernel(_set_state_kernel)
_kernels = {}


def _kernel(dist, two_words, compute, grid, p_tensor):
    key = (dist, two_words, compute, grid, p_tensor)
    k = _kernels.get(key)
    if k is None:
        k = _kernels[key] = launcher.Kernel(_random_kernel, DIST=dist, TWO_WORDS=two_words, COMPUTE=compute,
                                            GRID=grid, P_TENSOR=p_tensor, BLOCK=BLOCK)
    return k


# -- host side: generator state, capture records ----------------------------------------------------------

def halves(v):
    """A 64-bit pattern as two signed int32 (lo, hi): the kernels' argument form."""
    v &= _U64
    lo, hi = v & _U32, v >> 32
    return (lo - (1 << 32) if lo >> 31 else lo), (hi - (1 << 32) if hi >> 31 else hi)


def float_bits(x):
    """A Python float's float64 bit pattern."""
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


class CaptureRng:
    """One generator's draws inside one graph: the device buffer its kernels read (seed, base
    offset) from, and the counters the capture used (the replay's increment)."""
    __slots__ = ("gen", "state", "counters")

    def __init__(self, gen, device):
        self.gen, self.counters = gen, 0
        self.state = empty_outside_graph_pool((2,), dt.int64, device)  # written before each replay

    def before_replay(self, stream):
        seed, offset = self.gen.reserve(self.counters)
        args = (self.state, *halves(seed), *halves(offset))
        if streams.current_stream_handle(stream.device_index) == stream.cuda_stream:
            _set_state((1,), *args)  # queued on the replay stream, before the graph
        else:
            with streams.stream(stream):  # (a first, compiling launch goes to the current stream)
                _set_state((1,), *args)


def philox_args(gen, counters, res):
    """(state pointer, seed_lo, seed_hi, off_lo, off_hi, use_state) for a kernel drawing `counters`
    into res. Eager launches pass res's address as the (unread) state pointer: an int64 pointer
    either way, so eager and captured launches share one compiled kernel."""
    device = res._device
    g = graphs.current_graph()
    if g is not None and g.device_index == device.index:
        rec = g.extras.get(("philox", id(gen)))
        if rec is None:
            rec = g.extras[("philox", id(gen))] = CaptureRng(gen, device)
            g.add_replay_hook(rec.before_replay)
        increment, rec.counters = rec.counters, rec.counters + counters
        return (rec.state, 0, 0, *halves(increment), 1)
    seed, offset = gen.reserve(counters)
    return (launcher.PointerArg(res.data_ptr(), dt.int64), *halves(seed), *halves(offset), 0)


def launch(res, gen, dist, n_words, two_words, compute=tl.float32, grid=0.0, a=0, b=0, p=None):
    """Fill the contiguous tensor res with n_words' worth of the generator's stream."""
    n = res.numel()
    counters = counters_for(n_words)
    state, *rng = philox_args(gen, counters, res)
    programs = (launcher.cdiv(counters, BLOCK),)
    _kernel(dist, two_words, compute, grid, p is not None)(
        programs, res, res if p is None else p, state, n, *rng, *halves(a), *halves(b))
    return res


def _into(self, fill):
    """Run fill(contiguous target) and land the values in self (a copy when self is strided)."""
    if self.numel() == 0:
        return self
    if self.is_contiguous():
        fill(self)
    else:
        tmp = empty(tuple(self._shape), self._dtype, self._device)
        fill(tmp)
        _copy(self, tmp)
    bump_version(self)
    return self


def _copy(dst, src):
    """dst <- src (broadcasting, casting, across devices) below autograd: these are the op's insides."""
    return get("copy_").redispatch(CUDA, dst, src)


def _as_real(t):
    """A complex tensor's (re, im) pairs as a real view (torch draws both parts as real numbers)."""
    from vibetensor.backends.cuda.complex import pairs
    return pairs(t)


def _compute(d):
    return tl.float64 if d is dt.float64 else tl.float32


# -- the ops -------------------------------------------------------------------------------------------------

def uniform_(self, low=0.0, high=1.0, generator=None):
    r.uniform_meta(self, low, high)
    if self._dtype.is_complex:
        uniform_(_as_real(self), low, high, generator)
        return self
    gen = r.generator_of(self._device, generator)
    wide = self._dtype is dt.float64
    return _into(self, lambda t: launch(t, gen, UNIFORM, t.numel() * (2 if wide else 1), wide, _compute(self._dtype),
                                        _GRID.get(self._dtype, 0.0), float_bits(low), float_bits(high - low)))


def _normal(self, dist, mean, std, gen):
    wide = self._dtype is dt.float64
    pairs = (self.numel() + 1) // 2
    n_words = 4 * pairs if wide else 2 * pairs
    return _into(self, lambda t: launch(t, gen, dist, n_words, wide, _compute(self._dtype), 0.0, float_bits(mean),
                                        float_bits(std)))


def normal_(self, mean=0.0, std=1.0, generator=None):
    r.normal_meta(self, mean, std)
    if self._dtype.is_complex:  # each part carries half the variance
        normal_(_as_real(self), mean, std / math.sqrt(2.0), generator)
        return self
    return _normal(self, NORMAL, mean, std, r.generator_of(self._device, generator))


def log_normal_(self, mean=1.0, std=2.0, generator=None):
    r.log_normal_meta(self, mean, std)
    return _normal(self, LOG_NORMAL, mean, std, r.generator_of(self._device, generator))


def random_(self, low=0, high=None, generator=None):
    low, high = r.random_bounds(self, low, high)
    gen = r.generator_of(self._device, generator)
    span = high - low
    wide = span > 2 ** 32
    dist = INTEGERS_FULL if span == 2 ** 64 else INTEGERS
    return _into(self, lambda t: launch(t, gen, dist, t.numel() * (2 if wide else 1), wide, tl.float32, 0.0,
                                        low & _U64, span & _U64))


def bernoulli_(self, p=0.5, generator=None):
    r.bernoulli_meta(self, p)
    gen = r.generator_of(self._device, generator)
    p_tensor = isinstance(p, Tensor)
    wide = self._dtype is dt.float64 or (p_tensor and p._dtype is dt.float64)
    if p_tensor:  # p broadcast to self's shape, dense, on self's device (from the host too)
        dense = empty(tuple(self._shape), p._dtype, self._device)
        p = _copy(dense, p)
    a = 0 if p_tensor else float_bits(p)
    return _into(self, lambda t: launch(t, gen, BERNOULLI, t.numel() * (2 if wide else 1), wide, tl.float32, 0.0, a,
                                        0, p if p_tensor else None))


def exponential_(self, lambd=1.0, generator=None):
    r.exponential_meta(self, lambd)
    gen = r.generator_of(self._device, generator)
    wide = self._dtype is dt.float64
    return _into(self, lambda t: launch(t, gen, EXPONENTIAL, t.numel() * (2 if wide else 1), wide,
                                        _compute(self._dtype), _GRID.get(self._dtype, 0.0), float_bits(lambd)))


def geometric_(self, p, generator=None):
    r.geometric_meta(self, p)
    gen = r.generator_of(self._device, generator)
    wide = self._dtype is dt.float64
    return _into(self, lambda t: launch(t, gen, GEOMETRIC, t.numel() * (2 if wide else 1), wide, tl.float64, 0.0, 0,
                                        float_bits(math.log1p(-p))))


def cauchy_(self, median=0.0, sigma=1.0, generator=None):
    r.cauchy_meta(self, median, sigma)
    gen = r.generator_of(self._device, generator)
    wide = self._dtype is dt.float64
    return _into(self, lambda t: launch(t, gen, CAUCHY, t.numel() * (2 if wide else 1), wide, _compute(self._dtype),
                                        _GRID.get(self._dtype, 0.0), float_bits(median), float_bits(sigma)))


def _sort_indices(keys, dim):
    """Stable ascending sort's indices on CUDA (vt::sort), or a clear error while it has no kernel."""
    sort = get("sort")
    if CUDA not in sort.table:
        raise NotImplementedError("randperm/multinomial on CUDA need a CUDA sort kernel (vt::sort), which is not "
                                  "available yet")
    return sort(keys, dim, False, True)[1]


def randperm(n, dtype=dt.int64, device=None, generator=None, out=None):
    from vibetensor.backends.cpu.random import res_device
    r.randperm_meta(n, dtype)
    res = output("randperm", out, (n,), dtype, res_device(device, out))
    gen = r.generator_of(res._device, generator)
    if n:
        keys = empty((n,), dt.int64, res._device)
        launch(keys, gen, KEYS, 2 * n, True)
        _copy(res, _sort_indices(keys, 0))
    if out is not None:
        bump_version(res)
    return res


def multinomial(input, num_samples, replacement=False, generator=None, out=None):
    """The CPU kernel's method with device ops: inverse CDF (with replacement) or the exponential
    race (without). torch's checks of the probabilities need the values on the host, which would
    synchronise: they are skipped here (invalid rows give arbitrary indices)."""
    shape = r.multinomial_meta(input, num_samples, replacement)
    gen = r.generator_of(input._device, generator)
    probs = get("reshape")(_as_float64(input), (-1, input._shape[-1]))  # (rows, k)
    rows, k = probs._shape
    if replacement:
        u = empty((rows, num_samples), dt.float64, input._device)
        if u.numel():
            launch(u, gen, UNIFORM, 2 * u.numel(), True, tl.float64, 0.0, float_bits(0.0), float_bits(1.0))
        cdf = get("cumsum")(probs, 1, None)
        last = get("narrow")(cdf, 1, k - 1, 1)
        cdf = get("div")(cdf, last)
        picks = get("searchsorted")(cdf, u, False, True, None)
        picks = get("minimum")(picks, get("full")((), k - 1, dt.int64, device=input._device))
    else:
        u = empty((rows, k), dt.float64, input._device)
        if u.numel():
            launch(u, gen, UNIFORM, 2 * u.numel(), True, tl.float64, 0.0, float_bits(0.0), float_bits(1.0))
        keys = get("div")(get("neg")(get("log1p")(get("neg")(u))), probs)  # E / p; p = 0 -> inf: never picked
        picks = get("narrow")(_sort_indices(keys, 1), 1, 0, num_samples)
    res = output("multinomial", out, shape, dt.int64, input._device)
    _copy(res, get("reshape")(picks, shape))
    if out is not None:
        bump_version(res)
    return res


def _as_float64(t):
    if t._dtype is dt.float64:
        return t
    return _copy(empty(tuple(t._shape), dt.float64, t._device), t)


for _op, _fn in ((r.uniform_, uniform_), (r.normal_, normal_), (r.random_, random_), (r.bernoulli_, bernoulli_),
                 (r.exponential_, exponential_), (r.geometric_, geometric_), (r.log_normal_, log_normal_),
                 (r.cauchy_, cauchy_), (r.randperm, randperm), (r.multinomial, multinomial)):
    _op.register(CUDA, _fn)
