"""Counter-based random numbers: Philox4x32-10 keyed by (seed, offset), the same on every device.

A generator is two 64-bit integers, `seed` and `offset`. A random op asks its generator for
`n` Philox counters (`reserve(n)`), which returns the current (seed, offset) and advances the
offset by n. The op's values are then a pure function of (seed, offset, element index), so the
CPU kernels here (NumPy) and the CUDA kernels (Triton) compute the SAME numbers, and a CUDA graph
can replay a captured op with a fresh offset.

The algorithm (bit-exact with Triton's 32-bit `tl.philox(seed, lo, hi, 0, 0)`, uint32 halves)
---------------------------------------------------------------------------------------------
Philox4x32 with 10 rounds. All arithmetic is on uint32 words, wrapping modulo 2**32.

    key     = (k0, k1) = (seed & 0xFFFFFFFF, seed >> 32)
    counter = (c0, c1, c2, c3) = (offset & 0xFFFFFFFF, offset >> 32, 0, 0)
    repeat 10 times:
        (hi0, lo0) = high and low 32 bits of the 64-bit product 0xD2511F53 * c0
        (hi1, lo1) = high and low 32 bits of the 64-bit product 0xCD9E8D57 * c2
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        (k0, k1) = (k0 + 0x9E3779B9, k1 + 0xBB67AE85)
    output = (c0, c1, c2, c3): four random uint32 words

(This is Random123's philox4x32_R(10, ctr, key); its known-answer vectors hold, see the tests.)

The word stream of one op: a draw that reserved counters starting at `offset` sees the words

    word[j] = philox(seed, counter = offset + j // 4)[j % 4]        j = 0, 1, 2, ...

and element i of the op's output uses the words listed below (k words per element, in order).

uint32 -> float32 in [0, 1) (Triton's `uint_to_uniform_float` for 32-bit words):

    x = word reinterpreted as int32;  x = (x < 0) ? -x - 1 : x          (i.e. ~x for x < 0)
    u = float32(x) * float32(4.6566127342e-10)                          (round-to-nearest both)

Distributions (element i of an op with n elements):

* uniform, float32 / complex components: 1 word, u above. float16 / bfloat16: the float32 u
  floored onto the dtype's grid, floor(u * 2**m) * 2**-m with m = 11 / 8 (so never rounds up to
  1.0). float64: 2 words (lo = word[2i], hi = word[2i+1]): ((hi << 32 | lo) >> 11) * 2**-53.
  Then `low + u * (high - low)`.
* normal, float32 / float16 / bfloat16: 1 word per element; elements pair up (2p, 2p+1) and use
  Triton's Box-Muller (`pair_uniform_to_normal`): u1 = max(1e-7, u[2p]), th = 2*pi * u[2p+1],
  r = sqrt(-2 * log(u1)), z[2p] = r * cos(th), z[2p+1] = r * sin(th); for float32 this is
  `tl.randn4x` (4 normals per counter). float64: 2 words per uniform as above, and
  r = sqrt(-2 * log(1 - u[2p])). A trailing odd element still uses a full pair. Then
  `mean + std * z`. Complex: each component is normal with std / sqrt(2).
* integers in [low, high) with range r = high - low: r <= 2**32: 1 word, low + word % r;
  r > 2**32: 2 words, low + ((hi << 32) | lo) % r (uint64 arithmetic).
* bernoulli(p): u (float64 rule when p or the result is float64, else float32) < p.
* exponential(lambda): -log(1 - u) / lambda. geometric(p): max(1, ceil(log(1 - u) / log(1 - p))).
  log_normal: exp(normal). cauchy: median + sigma * tan(pi * (u - 0.5)).
* randperm(n): 2 words per element form uint64 keys; the permutation is the stable argsort.
* multinomial: float64 uniforms; with replacement by inverse CDF per sample, without by the
  exponential race (keys -log(1 - u) / p, the smallest num_samples win).

Counters used = ceil(words / 4), words = n * k (rounded up to a whole pair for normals). Integer
words and uniforms are bit-exact across devices; results that pass through log/sin/cos/exp agree
to the last few ulps (libm vs CUDA math).

On CUDA, our kernel (backends/cuda/random.py) runs these 4x32 rounds itself on the uint32 halves
of the 64-bit counter. Triton's `tl.philox(seed, c & 0xFFFFFFFF, c >> 32, 0, 0)` with uint32
counters is the same function; `tl.randint4x`/`tl.rand`/`tl.randn4x` agree only with uint32
offsets (offset < 2**32): given int64 offsets, Triton 3.x runs Philox4x64, a different stream.
(tests/test_random.py::test_philox_matches_triton checks this on a GPU.)

CUDA graphs: a captured kernel must not bake the offset in as a constant. Capture should read
(seed, offset) from a small device buffer that the graph's owner advances before each replay by the
counters the captured ops reserved (torch's "philox_cuda_state" design); `reserve` is the single
place a generator's offset moves, so that logic lives next to it when the CUDA side needs it.
"""
import functools
import secrets
import threading

import numpy as np

DEFAULT_SEED = 67280421310721  # torch's default seed, so initial_seed() matches a fresh torch
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_ROUND_A, _ROUND_B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85
_SHIFT = np.uint64(32)
UNIFORM_SCALE = np.float32(4.6566127342e-10)


# -- the bijection ------------------------------------------------------------------------------------

def philox4x32(c0, c1, c2, c3, k0, k1, rounds=10):
    """Philox4x32-R on uint32 arrays (c0..c3, broadcastable) with key words k0, k1 (Python ints).
    Returns four uint32 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))
    for _ in range(rounds):
        p0 = c0.astype(np.uint64) * _ROUND_A  # exact: a 32x32 -> 64-bit product
        p1 = c2.astype(np.uint64) * _ROUND_B
        c0, c1, c2, c3 = ((p1 >> _SHIFT).astype(np.uint32) ^ c1 ^ np.uint32(k0), p1.astype(np.uint32),
                          (p0 >> _SHIFT).astype(np.uint32) ^ c3 ^ np.uint32(k1), p0.astype(np.uint32))
        k0, k1 = (k0 + _KEY_A) & _U32, (k1 + _KEY_B) & _U32
    return c0, c1, c2, c3


def randint4x(seed, offsets):
    """Four uint32 words per 64-bit offset: Philox4x32-10 of counter (lo, hi, 0, 0), as Triton's
    tl.philox(seed, lo, hi, 0, 0) with uint32 halves (tl.randint4x only for offsets < 2**32)."""
    offsets = np.asarray(offsets, dtype=np.uint64)
    lo = (offsets & np.uint64(_U32)).astype(np.uint32)
    hi = (offsets >> _SHIFT).astype(np.uint32)
    zero = np.zeros_like(lo)
    seed &= _U64
    return philox4x32(lo, hi, zero, zero, seed & _U32, seed >> 32)


@functools.lru_cache(maxsize=64)
def _round_keys(seed):
    seed &= _U64
    k0, k1, keys = seed & _U32, seed >> 32, []
    for _ in range(10):
        keys.append((k0, k1))
        k0, k1 = (k0 + _KEY_A) & _U32, (k1 + _KEY_B) & _U32
    return keys


def _words_scalar(seed, offset, counters):
    """The same stream with Python ints: faster than NumPy below a few dozen counters."""
    keys, out = _round_keys(seed), []
    for c in range(offset, offset + counters):
        c &= _U64
        c0, c1, c2, c3 = c & _U32, c >> 32, 0, 0
        for k0, k1 in keys:
            p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
            c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _U32, (p0 >> 32) ^ c3 ^ k1, p0 & _U32
        out += (c0, c1, c2, c3)
    return np.array(out, dtype=np.uint32)


def words(seed, offset, n):
    """The first n words of the stream starting at counter `offset`: (n,) uint32."""
    counters = counters_for(n)
    if counters <= 16:
        return _words_scalar(seed, offset, counters)[:n]
    idx = np.arange(counters, dtype=np.uint64) + np.uint64(offset & _U64)  # wraps like uint64
    return np.stack(randint4x(seed, idx), axis=1).reshape(-1)[:n]


def counters_for(n_words):
    return -(-n_words // 4)


def uint_to_uniform_float(w):
    """uint32 words -> float32 in [0, 1), as Triton's uint_to_uniform_float."""
    x = w.view(np.int32)
    x = x ^ (x >> 31)  # -x - 1 for negatives, without int32 overflow
    return x.astype(np.float32) * UNIFORM_SCALE


# -- generators ----------------------------------------------------------------------------------------

def _check_seed(seed):
    """torch accepts seeds in [-2**63, 2**64) and stores them as uint64."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            seed = seed.__index__()
        except (AttributeError, TypeError):
            raise RuntimeError(f"manual_seed expected a long, but got {type(seed).__name__}") from None
    if not -(1 << 63) <= seed < (1 << 64):
        raise ValueError("Overflow when unpacking long long")
    return seed & _U64


class Generator:
    """(seed, offset) behind a lock: reserving counters is the only state change on the hot path.

    `device` is whatever the caller passed (the front door passes a torch.device); the runtime only
    uses it as a key. The front door subclasses this to add tensor-valued get_state/set_state."""
    __slots__ = ("_seed", "_offset", "_lock", "_device", "__weakref__")

    def __init__(self, device="cpu"):
        self._device = device
        self._seed, self._offset = DEFAULT_SEED, 0
        self._lock = threading.Lock()

    def manual_seed(self, seed):
        seed = _check_seed(seed)
        with self._lock:
            self._seed, self._offset = seed, 0
        return self

    def seed(self):
        """Seed from the OS's entropy and return that seed."""
        s = secrets.randbits(64)
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return self._seed

    def get_offset(self):
        return self._offset

    def set_offset(self, offset):
        with self._lock:
            self._offset = int(offset) & _U64
        return self

    def reserve(self, n_counters):
        """(seed, offset) for an op that uses n_counters counters; advances the offset past them."""
        with self._lock:
            seed, offset = self._seed, self._offset
            self._offset = (offset + n_counters) & _U64
        return seed, offset

    def state_bytes(self):
        """16 bytes: seed and offset as little-endian uint64 (the layout torch's CUDA state uses)."""
        with self._lock:
            return np.array([self._seed, self._offset], dtype="<u8").view(np.uint8).copy()

    def set_state_bytes(self, b):
        b = np.ascontiguousarray(b, dtype=np.uint8)
        if b.size != 16:
            raise RuntimeError(f"Expected a Philox generator state of size 16 but found the input RNG "
                               f"state size to be {b.size}")
        seed, offset = (int(v) for v in b.view("<u8"))
        with self._lock:
            self._seed, self._offset = seed, offset
        return self


# -- default generators, one per device -------------------------------------------------------------------
_default_seed = [DEFAULT_SEED]
_defaults = {}
_defaults_lock = threading.Lock()
_generator_class = [Generator]


def set_generator_class(cls):
    """The front door's Generator subclass (tensor states); existing defaults take it too."""
    _generator_class[0] = cls
    for g in _defaults.values():
        g.__class__ = cls


def default_generator(device):
    """The default generator of `device` (keyed by str(device)), created on first use."""
    key = str(device)
    g = _defaults.get(key)
    if g is None:
        with _defaults_lock:
            g = _defaults.get(key)
            if g is None:
                g = _generator_class[0](device)
                g.manual_seed(_default_seed[0])
                _defaults[key] = g
    return g


def manual_seed_all(seed):
    """Seed every default generator, and the ones created later (torch.manual_seed)."""
    seed = _check_seed(seed)
    _default_seed[0] = seed
    for g in list(_defaults.values()):
        g.manual_seed(seed)
    return seed
