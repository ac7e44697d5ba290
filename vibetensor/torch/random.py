"""Front door of randomness: torch.Generator, seeding and RNG state, the random factories (rand,
randn, randint, randperm, normal, bernoulli, multinomial, *_like) and the in-place samplers.

Every generator is Philox (seed, offset) on every device (runtime/generator.py): values differ
from torch's (its CPU uses mt19937) but are reproducible from the seed and identical across devices.
"""
import contextlib
import operator

from vibetensor.ops import creation as c
from vibetensor.ops import elementwise as ew
from vibetensor.ops import random as r
from vibetensor.runtime import generator as _rt
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.device import CPU, canonical
from vibetensor.tensor.tensor import Tensor, array, from_array
from vibetensor.tensor.shape import broadcast_shapes
from vibetensor.torch.creation import _finish, _like_empty, new_output, parse_size
from vibetensor.torch.tensor_methods import method


class Generator(_rt.Generator):
    """torch.Generator: manual_seed, seed, initial_seed, get_state/set_state (a 16-byte uint8
    tensor: seed and offset, little-endian), get_offset/set_offset, device."""
    __slots__ = ()

    def __init__(self, device="cpu"):
        super().__init__(canonical(device))

    @property
    def device(self):
        return self._device

    def get_state(self):
        return from_array(self.state_bytes())

    def set_state(self, new_state):
        if not isinstance(new_state, Tensor):
            raise TypeError(f"expected a torch.ByteTensor, but got {type(new_state).__name__}")
        if new_state.dtype is not dt.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        self.set_state_bytes(array(c.contiguous(new_state.cpu())))
        return self


_rt.set_generator_class(Generator)
default_generator = _rt.default_generator(CPU)


def manual_seed(seed):
    """Seed every device's default generator (and those created later); returns the CPU one."""
    _rt.manual_seed_all(int(seed))
    return default_generator


def seed():
    """Seed every default generator from OS entropy; returns that seed."""
    s = default_generator.seed()
    _rt.manual_seed_all(s)
    return s


def initial_seed():
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(new_state):
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices", device_type="cuda"):
    """Restore the CPU generator (and the default generators of `devices`) on exit."""
    if not enabled:
        yield
        return
    devices = [f"{device_type}:{d}" if isinstance(d, int) else d for d in (devices or ())]
    gens = [default_generator] + [_rt.default_generator(canonical(d)) for d in devices]
    states = [g.state_bytes() for g in gens]
    try:
        yield
    finally:
        for g, s in zip(gens, states):
            g.set_state_bytes(s)


# -- argument helpers -------------------------------------------------------------------------------------

def _float(x):
    return x.item() if isinstance(x, Tensor) else x


def _int(op, x, name):
    """An int argument (0-d tensors unwrap); torch's ValueError beyond int64."""
    if isinstance(x, Tensor):
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, int):
        try:
            x = operator.index(x)
        except TypeError:
            raise TypeError(f"{op}(): argument '{name}' must be int, not {type(x).__name__}") from None
    if not -2 ** 63 <= x < 2 ** 63:
        raise ValueError("Overflow when unpacking long long")
    return x


def _device_of(device, out):
    return out._device if device is None and out is not None else canonical(device)


# -- factories ----------------------------------------------------------------------------------------------

def rand(*args, size=None, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False):
    """Uniform on [0, 1)."""
    t = new_output("rand", parse_size(args, size, "rand"), dtype, device, out)
    return _finish(r.uniform_(t, 0.0, 1.0, generator), requires_grad)


def randn(*args, size=None, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False):
    """Standard normal (complex dtypes: each component has variance 1/2)."""
    t = new_output("randn", parse_size(args, size, "randn"), dtype, device, out)
    return _finish(r.normal_(t, 0.0, 1.0, generator), requires_grad)


def randint(*args, size=None, low=None, high=None, generator=None, out=None, dtype=None, layout=None,
            device=None, requires_grad=False, pin_memory=False):
    """randint(high, size) or randint(low, high, size): integers in [low, high), int64 by default."""
    args = list(args)
    if size is None and args and isinstance(args[-1], (tuple, list)):
        size = args.pop()
    if size is None:
        if len(args) >= 2 and not isinstance(args[-1], (tuple, list)):
            raise TypeError(f"randint(): argument 'size' (position {len(args)}) must be tuple of ints, "
                            f"not {type(args[-1]).__name__}")
        raise TypeError("randint() missing required argument 'size'")
    if isinstance(size, int):
        raise TypeError("randint(): argument 'size' must be tuple of ints, not int")
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        else:
            low = args[0]
    elif args:
        raise TypeError(f"randint() takes at most 3 positional arguments ({len(args) + 1} given)")
    if high is None:
        raise TypeError("randint() missing required argument 'high'")
    low, high = _int("randint", 0 if low is None else low, "low"), _int("randint", high, "high")
    if dtype is None and out is None:
        dtype = dt.int64
    t = new_output("randint", parse_size((size,), None, "randint"), dtype, device, out)
    return _finish(r.random_(t, low, high, generator), requires_grad)


def randperm(n, *, generator=None, out=None, dtype=dt.int64, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    """A random permutation of 0..n-1."""
    n = _int("randperm", n, "n")
    dtype = out._dtype if out is not None and dtype is dt.int64 else dtype
    t = r.randperm(n, dtype, device=_device_of(device, out), generator=generator, out=out)
    return _finish(t, requires_grad)


def normal(mean, std=None, size=None, *, generator=None, out=None, dtype=None, layout=None, device=None,
           requires_grad=False, pin_memory=False):
    """normal(Tensor mean, Tensor/float std), normal(float mean, Tensor std), or
    normal(float mean, float std, size): mean + std * N(0, 1), broadcasting mean and std."""
    if isinstance(mean, Tensor) or isinstance(std, Tensor):
        std = 1.0 if std is None else std
        like = mean if isinstance(mean, Tensor) else std
        shape = tuple(like._shape)
        if isinstance(mean, Tensor) and isinstance(std, Tensor):
            shape = broadcast_shapes(mean._shape, std._shape)
        if isinstance(std, Tensor):
            if std.numel() and not bool((array(std.cpu()) >= 0).all()):
                raise RuntimeError("normal expects all elements of std >= 0.0")
        else:
            r.normal_meta(like, 0.0, std)
        t = new_output("normal", shape, None if out is not None else like._dtype, like._device, out)
        r.normal_(t, 0.0, 1.0, generator)
        ew.mul(t, _float(std) if not isinstance(std, Tensor) else std, out=t)
        ew.add(t, _float(mean) if not isinstance(mean, Tensor) else mean, 1, out=t)
        return _finish(t, requires_grad)
    if size is None:
        raise TypeError("normal() received an invalid combination of arguments - got (float, float), but "
                        "expected (float mean, float std, tuple of ints size)")
    t = new_output("normal", parse_size((size,), None, "normal"), dtype, device, out)
    return _finish(r.normal_(t, float(mean), float(std), generator), requires_grad)


def bernoulli(input, p=None, *, generator=None, out=None):
    """Each element 1 with probability input (or p), as input's dtype."""
    t = c.empty_like(input) if out is None else new_output("bernoulli", tuple(input._shape), None, None, out)
    return r.bernoulli_(t, input if p is None else _float(p), generator)


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None):
    """Indices drawn from the rows of input (unnormalised probabilities)."""
    return r.multinomial(input, _int("multinomial", num_samples, "num_samples"), bool(replacement), generator,
                         out=out)


def rand_like(input, *, generator=None, dtype=None, layout=None, device=None, requires_grad=False,
              memory_format=None):
    return _finish(r.uniform_(_like_empty(input, dtype, device, memory_format), 0.0, 1.0, generator), requires_grad)


def randn_like(input, *, generator=None, dtype=None, layout=None, device=None, requires_grad=False,
               memory_format=None):
    return _finish(r.normal_(_like_empty(input, dtype, device, memory_format), 0.0, 1.0, generator), requires_grad)


def randint_like(input, *args, low=None, high=None, generator=None, dtype=None, layout=None, device=None,
                 requires_grad=False, memory_format=None):
    """randint_like(input, high) or randint_like(input, low, high)."""
    if len(args) == 2:
        low, high = args
    elif len(args) == 1:
        if high is None:
            high = args[0]
        else:
            low = args[0]
    if high is None:
        raise TypeError("randint_like() missing required argument 'high'")
    low, high = _int("randint_like", 0 if low is None else low, "low"), _int("randint_like", high, "high")
    t = _like_empty(input, dtype, device, memory_format)
    return _finish(r.random_(t, low, high, generator), requires_grad)


# -- in-place samplers (Tensor methods) ----------------------------------------------------------------------

@method
def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kw):
    return r.uniform_(self, float(_float(kw.get("from", from_))), float(_float(to)), generator)


@method
def normal_(self, mean=0.0, std=1.0, *, generator=None):
    return r.normal_(self, float(_float(mean)), float(_float(std)), generator)


@method
def random_(self, *args, generator=None, **kw):
    """random_(), random_(to), random_(from, to): integers in [from, to) (to None: dtype max)."""
    if "from" in kw or "to" in kw:
        args = (kw.pop("from", 0), kw.pop("to", None))
    if len(args) > 2:
        raise TypeError(f"random_() takes at most 2 arguments ({len(args)} given)")
    low, high = (0, None) if not args else (0, args[0]) if len(args) == 1 else args
    if len(args) == 1 and high is None:
        raise TypeError("random_(): argument 'to' must be int, not NoneType")
    low = _int("random_", low, "from")
    high = None if high is None else _int("random_", high, "to")
    return r.random_(self, low, high, generator)


@method
def bernoulli_(self, p=0.5, *, generator=None):
    return r.bernoulli_(self, p if isinstance(p, Tensor) else float(p), generator)


@method
def exponential_(self, lambd=1.0, *, generator=None):
    return r.exponential_(self, float(_float(lambd)), generator)


@method
def geometric_(self, p, *, generator=None):
    return r.geometric_(self, float(_float(p)), generator)


@method
def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    return r.log_normal_(self, float(_float(mean)), float(_float(std)), generator)


@method
def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    return r.cauchy_(self, float(_float(median)), float(_float(sigma)), generator)


method(bernoulli)
method(multinomial)

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state", "fork_rng", "rand", "randn", "randint", "randperm", "normal", "bernoulli",
           "multinomial", "rand_like", "randn_like", "randint_like"]
