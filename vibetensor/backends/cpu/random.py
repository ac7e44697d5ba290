"""CPU kernels of the random ops: the Philox word stream (runtime/generator.py) turned into values
with NumPy, vectorised over all elements. The stream layout per distribution is specified in
runtime/generator.py; the CUDA kernels follow the same layout, so both devices agree."""
import numpy as np

from vibetensor.dispatch import DispatchKey
from vibetensor.ops import random as r
from vibetensor.ops.meta import bump_version, output
from vibetensor.runtime.generator import counters_for, uint_to_uniform_float, words
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.device import canonical
from vibetensor.tensor.tensor import array

CPU = DispatchKey.CPU
_HALF_GRID = {dt.float16: np.float32(2.0 ** 11), dt.bfloat16: np.float32(2.0 ** 8)}
_TWO_PI = np.float32(6.283185307179586)


# -- the stream -> values -------------------------------------------------------------------------------

def draw(gen, n_words):
    """The next n_words words of `gen` (reserving ceil(n_words / 4) counters)."""
    seed, offset = gen.reserve(counters_for(n_words))
    return words(seed, offset, n_words)


def uniform01(gen, n, d):
    """n uniforms in [0, 1) for real dtype d: float64 for float64, float32 otherwise."""
    if d is dt.float64:
        w = draw(gen, 2 * n).astype(np.uint64)
        bits = ((w[1::2] << np.uint64(32)) | w[0::2]) >> np.uint64(11)  # top 53 bits
        return bits.astype(np.float64) * 2.0 ** -53
    u = uint_to_uniform_float(draw(gen, n))
    grid = _HALF_GRID.get(d)
    if grid is not None:  # onto the dtype's grid, so rounding can't reach 1.0
        u = np.floor(u * grid) / grid
    return u


def normal01(gen, n, d):
    """n standard normals by Box-Muller over pairs of uniforms (a trailing odd one uses a full pair)."""
    pairs = (n + 1) // 2
    if d is dt.float64:
        u = uniform01(gen, 2 * pairs, d)
        radius = np.sqrt(-2.0 * np.log(1.0 - u[0::2]))
        theta = 2 * np.pi * u[1::2]
    else:  # Triton's pair_uniform_to_normal, in float32
        u = uint_to_uniform_float(draw(gen, 2 * pairs))
        radius = np.sqrt(np.float32(-2.0) * np.log(np.maximum(np.float32(1e-7), u[0::2])))
        theta = _TWO_PI * u[1::2]
    z = np.empty(2 * pairs, radius.dtype)
    z[0::2] = radius * np.cos(theta)
    z[1::2] = radius * np.sin(theta)
    return z[:n]


def integers(gen, n, low, high):
    """n integers in [low, high) as int64 (uniform modulo the range, as torch's random_)."""
    span = high - low
    if span <= 2 ** 32:
        v = draw(gen, n).astype(np.uint64) % np.uint64(span)
    else:
        w = draw(gen, 2 * n).astype(np.uint64)
        v = (w[1::2] << np.uint64(32)) | w[0::2]
        if span < 2 ** 64:
            v = v % np.uint64(span)
    return (v + np.uint64(low % 2 ** 64)).view(np.int64)  # two's complement wrap = exact low + v


# -- writing into self ------------------------------------------------------------------------------------

def _compute(d):
    """Arithmetic dtype: half types compute in float32, as torch's CPU kernels do."""
    return np.float64 if d is dt.float64 else np.float32


def _write(t, flat):
    """Store n values (logical row-major order) into t, casting to t's dtype; complex t takes
    pairs (re, im) from a 2n-long real array."""
    if t._dtype.is_complex:
        flat = flat[0::2] + 1j * flat[1::2]
    np.copyto(array(t), flat.reshape(t._shape), casting="unsafe")
    bump_version(t)
    return t


def _components(t):
    return t.numel() * (2 if t._dtype.is_complex else 1)


def uniform_(self, low=0.0, high=1.0, generator=None):
    r.uniform_meta(self, low, high)
    gen = r.generator_of(self._device, generator)
    d = self._dtype.to_real()
    ct = _compute(d)
    u = uniform01(gen, _components(self), d)
    return _write(self, ct(low) + u.astype(ct) * ct(high - low))


def normal_(self, mean=0.0, std=1.0, generator=None):
    r.normal_meta(self, mean, std)
    gen = r.generator_of(self._device, generator)
    d = self._dtype.to_real()
    ct = _compute(d)
    if self._dtype.is_complex:  # each component carries half the variance
        std = std / np.sqrt(2.0)
    z = normal01(gen, _components(self), d)
    return _write(self, ct(mean) + ct(std) * z.astype(ct))


def random_(self, low=0, high=None, generator=None):
    low, high = r.random_bounds(self, low, high)
    gen = r.generator_of(self._device, generator)
    return _write(self, integers(gen, self.numel(), low, high))


def bernoulli_(self, p=0.5, generator=None):
    r.bernoulli_meta(self, p)
    gen = r.generator_of(self._device, generator)
    wide = self._dtype is dt.float64 or (hasattr(p, "_dtype") and p._dtype is dt.float64)
    if hasattr(p, "_dtype"):
        p = array(p)
        if not np.all((p >= 0) & (p <= 1)):
            raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this error "
                               "message be improved?  If so, please report an enhancement request to PyTorch.)")
        p = np.broadcast_to(p, self._shape).reshape(-1)
    u = uniform01(gen, self.numel(), dt.float64 if wide else dt.float32)
    return _write(self, u < p)


def exponential_(self, lambd=1.0, generator=None):
    r.exponential_meta(self, lambd)
    gen = r.generator_of(self._device, generator)
    ct = _compute(self._dtype)
    u = uniform01(gen, self.numel(), self._dtype).astype(ct)
    return _write(self, -np.log1p(-u) / ct(lambd))


def geometric_(self, p, generator=None):
    r.geometric_meta(self, p)
    gen = r.generator_of(self._device, generator)
    u = uniform01(gen, self.numel(), dt.float64 if self._dtype is dt.float64 else dt.float32).astype(np.float64)
    return _write(self, np.maximum(1.0, np.ceil(np.log1p(-u) / np.log1p(-p))))


def log_normal_(self, mean=1.0, std=2.0, generator=None):
    r.log_normal_meta(self, mean, std)
    gen = r.generator_of(self._device, generator)
    ct = _compute(self._dtype)
    z = normal01(gen, self.numel(), self._dtype).astype(ct)
    return _write(self, np.exp(ct(mean) + ct(std) * z))


def cauchy_(self, median=0.0, sigma=1.0, generator=None):
    r.cauchy_meta(self, median, sigma)
    gen = r.generator_of(self._device, generator)
    ct = _compute(self._dtype)
    u = uniform01(gen, self.numel(), self._dtype).astype(ct)
    return _write(self, ct(median) + ct(sigma) * np.tan(ct(np.pi) * (u - ct(0.5))))


def randperm(n, dtype=dt.int64, device=None, generator=None, out=None):
    r.randperm_meta(n, dtype)
    res = output("randperm", out, (n,), dtype, res_device(device, out))
    gen = r.generator_of(res._device, generator)
    w = draw(gen, 2 * n).astype(np.uint64)
    keys = (w[1::2] << np.uint64(32)) | w[0::2]
    np.copyto(array(res), np.argsort(keys, kind="stable"), casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


def res_device(device, out):
    return out._device if device is None and out is not None else canonical(device)


def multinomial(input, num_samples, replacement=False, generator=None, out=None):
    shape = r.multinomial_meta(input, num_samples, replacement)
    gen = r.generator_of(input._device, generator)
    probs = array(input).astype(np.float64).reshape(-1, input._shape[-1])  # (rows, k)
    if not np.all(np.isfinite(probs) & (probs >= 0)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if np.any(probs.sum(-1) <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    rows, k = probs.shape
    if replacement:  # inverse CDF: the first category whose cumulative share exceeds u
        u = uniform01(gen, rows * num_samples, dt.float64).reshape(rows, num_samples)
        cdf = np.cumsum(probs, axis=-1)
        cdf /= cdf[:, -1:]
        picks = np.stack([np.searchsorted(cdf[i], u[i], side="right") for i in range(rows)]) if rows else \
            np.empty((0, num_samples), np.int64)
        picks = np.minimum(picks, k - 1)
    else:  # exponential race: category j finishes at E_j / p_j; the first num_samples win
        u = uniform01(gen, rows * k, dt.float64).reshape(rows, k)
        with np.errstate(divide="ignore"):
            keys = np.where(probs > 0, -np.log1p(-u) / np.where(probs > 0, probs, 1.0), np.inf)
        picks = np.argsort(keys, axis=-1, kind="stable")[:, :num_samples]
    res = output("multinomial", out, shape, dt.int64, input._device)
    np.copyto(array(res), picks.reshape(shape), casting="unsafe")
    if out is not None:
        bump_version(res)
    return res


for _op, _kernel in ((r.uniform_, uniform_), (r.normal_, normal_), (r.random_, random_),
                     (r.bernoulli_, bernoulli_), (r.exponential_, exponential_), (r.geometric_, geometric_),
                     (r.log_normal_, log_normal_), (r.cauchy_, cauchy_), (r.randperm, randperm),
                     (r.multinomial, multinomial)):
    _op.register(CPU, _kernel)
