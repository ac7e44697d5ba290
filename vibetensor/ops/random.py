"""Random operators: the in-place samplers, randperm and multinomial.

Every op draws Philox counters from a generator (runtime/generator.py documents the stream and how
each distribution turns words into values, so CPU and CUDA kernels agree). Meta functions here
validate with torch's messages and are device-generic; kernels take normalised arguments:

    uniform_(self, low, high, generator)        normal_(self, mean, std, generator)
    random_(self, low, high, generator)         (high None: the dtype's maximum + 1)
    bernoulli_(self, p, generator)              (p a float or a tensor broadcastable to self)
    exponential_(self, lambd, generator)        geometric_(self, p, generator)
    log_normal_(self, mean, std, generator)     cauchy_(self, median, sigma, generator)
    randperm(n, dtype, device=, generator=, out=)
    multinomial(input, num_samples, replacement, generator, out=None)
"""
import math
import warnings

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.runtime.generator import Generator, default_generator
from vibetensor.tensor import dtype as dt
from vibetensor.tensor.tensor import Tensor

# C++ type names torch prints in its range messages
CTYPE = {dt.bool_: "bool", dt.uint8: "unsigned char", dt.int8: "signed char", dt.int16: "short int",
         dt.int32: "int", dt.int64: "long int", dt.float16: "c10::Half", dt.bfloat16: "c10::BFloat16",
         dt.float32: "float", dt.float64: "double", dt.uint16: "short unsigned int", dt.uint32: "unsigned int",
         dt.uint64: "long unsigned int"}
# bits of integer precision a float type represents exactly (torch's "digits")
DIGITS = {dt.float16: 11, dt.bfloat16: 8, dt.float32: 24, dt.float64: 53}
_FLOAT_MAX = {dt.float16: 65504.0, dt.bfloat16: 3.3895313892515355e38, dt.float32: 3.4028234663852886e38,
              dt.float64: 1.7976931348623157e308}
_INT_RANGE = {dt.bool_: (0, 1), dt.uint8: (0, 255), dt.int8: (-128, 127), dt.int16: (-2 ** 15, 2 ** 15 - 1),
              dt.int32: (-2 ** 31, 2 ** 31 - 1), dt.int64: (-2 ** 63, 2 ** 63 - 1), dt.uint16: (0, 2 ** 16 - 1),
              dt.uint32: (0, 2 ** 32 - 1), dt.uint64: (0, 2 ** 64 - 1)}
_NAMES = m.TYPE_NAMES


def num(x):
    """A number as C++'s ostream prints it (torch's messages): 2, -1, 0.5, 3e+38."""
    return "%g" % x if isinstance(x, float) else str(x)


def generator_of(device, generator):
    """The generator an op on `device` draws from: the one given, or the device's default."""
    if generator is None:
        return default_generator(device)
    if not isinstance(generator, Generator):
        raise TypeError(f"expected a torch.Generator, but got {type(generator).__name__}")
    gen_type = str(generator._device).partition(":")[0]
    if gen_type != device.type:
        raise RuntimeError(f"Expected a '{device.type}' device type for generator but found '{gen_type}'")
    return generator


def _not_implemented(kernel, t):
    return NotImplementedError(f'"{kernel}" not implemented for \'{_NAMES[t._dtype]}\'')


def _check_float(t, what, names):
    if not t._dtype.is_floating_point:
        raise RuntimeError(f"{what} distribution is a continuous probability distribution. dtype must be a "
                           f"floating point but you specified {names.get(t._dtype, _NAMES[t._dtype])}")


# -- meta functions ----------------------------------------------------------------------------------------

def uniform_meta(self, low, high):
    d = self._dtype
    if d.category < 2:
        raise _not_implemented("check_uniform_bounds", self)
    real = d.to_real()
    for name, v in (("from", low), ("to", high)):
        if not math.isfinite(v) or abs(v) > _FLOAT_MAX[real]:
            raise RuntimeError(f"{name} is out of bounds for {CTYPE[real]}")
    if low > high:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={num(low)} > to={num(high)}")
    if high - low > _FLOAT_MAX[real]:
        raise RuntimeError(f"uniform_ expects to-from <= std::numeric_limits<{_NAMES[real]}>::max(), but found "
                           f"to={num(high)} and from={num(low)} which result in to-from to exceed the limit")


def normal_meta(self, mean, std):
    if self._dtype.category < 2:
        raise _not_implemented(f"normal_kernel_{self._device.type}", self)
    if not std >= 0.0:  # also rejects NaN
        raise RuntimeError(f"normal expects std >= 0.0, but found std {num(std)}")


def random_bounds(self, low, high):
    """random_'s [low, high): high None means the dtype's top (2**digits for floats, inclusive)."""
    d = self._dtype
    if d.is_complex:
        kernel = "random_kernel" if (low, high) == (0, None) else "random_from_to_kernel"
        raise _not_implemented(f"{kernel}_{self._device.type}", self)
    if high is None and d in dt.BAREBONES:  # torch draws them only between given bounds
        raise _not_implemented(f"random_kernel_{self._device.type}", self)
    if high is None:
        high = (2 ** DIGITS[d] if d.is_floating_point else _INT_RANGE[d][1]) + 1
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    if d.is_floating_point:
        for name, v in (("from", low), ("to - 1", high - 1)):
            if abs(v) > _FLOAT_MAX[d]:
                raise RuntimeError(f"{name} is out of bounds for {CTYPE[d]}")
            if abs(v) > 2 ** DIGITS[d]:
                warnings.warn(f"{name} is out of bounds [-(2^{DIGITS[d]}), 2^{DIGITS[d]}]. Due to precision "
                              f"limitations {CTYPE[d]} can support discrete uniform distribution only within this "
                              "range. This warning will become an error in version 1.7 release, please fix the "
                              "code in advance", UserWarning, stacklevel=4)
    else:
        lo, hi = _INT_RANGE[d]
        if low < lo:
            raise RuntimeError(f"from is out of bounds for {CTYPE[d]}")
        if high - 1 > hi:
            raise RuntimeError(f"to - 1 is out of bounds for {CTYPE[d]}")
    return low, high


def bernoulli_meta(self, p):
    if self._dtype.is_complex:
        raise _not_implemented("bernoulli_scalar_cpu_", self)
    if isinstance(p, Tensor):
        if not p._dtype.is_floating_point:
            raise _not_implemented(f"bernoulli_tensor_{self._device.type}_p_", p)
        expand_check(p._shape, self._shape, p)
        m.common_device("bernoulli_", (self, p))
    elif not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_ expects p to be in [0, 1], but got p={num(p)}")


def expand_check(shape, target, t):
    """torch's expand errors, for an operand that must broadcast to `target` without changing it."""
    if len(shape) > len(target):
        sizes, targets = ", ".join(map(str, shape)), ", ".join(map(str, target))
        raise RuntimeError(f"expand({m.legacy_type_name(t)}{{[{sizes}]}}, size=[{targets}]): the number of sizes "
                           f"provided ({len(target)}) must be greater or equal to the number of dimensions in the "
                           f"tensor ({len(shape)})")
    for i, (s, n) in enumerate(zip(reversed(shape), reversed(target))):
        if s != n and s != 1:
            d = len(target) - 1 - i
            raise RuntimeError(f"The expanded size of the tensor ({n}) must match the existing size ({s}) at "
                               f"non-singleton dimension {d}.  Target sizes: [{', '.join(map(str, target))}].  "
                               f"Tensor sizes: [{', '.join(map(str, shape))}]")


def exponential_meta(self, lambd):
    _check_float(self, "Exponential", _NAMES)
    if not lambd > 0.0:
        raise RuntimeError(f"exponential_ expects lambda > 0.0, but found lambda={num(lambd)}")


def geometric_meta(self, p):
    if self._dtype.is_complex or self._dtype is dt.bool_:
        raise _not_implemented(f"geometric_{self._device.type}", self)
    if not 0 < p < 1:
        raise RuntimeError(f"geometric_ expects p to be in (0, 1), but got p={num(p)}")


def log_normal_meta(self, mean, std):
    if not self._dtype.is_floating_point:
        raise _not_implemented(f"log_normal_{self._device.type}", self)
    if not std > 0.0:
        raise RuntimeError(f"log_normal_ expects std > 0.0, but found std={num(std)}")


def cauchy_meta(self, median, sigma):
    _check_float(self, "Cauchy", CTYPE)  # torch names the C type here
    if not sigma > 0.0:
        raise RuntimeError(f"cauchy_ expects sigma > 0.0, but found sigma={num(sigma)}")


_RANDPERM_FLOAT_LIMIT = {dt.float16: "2049", dt.float32: "2^24+1", dt.float64: "2^53+1"}  # torch skips bfloat16
_C_INT = {dt.uint8: "uint8_t", dt.int8: "int8_t", dt.int16: "int16_t", dt.int32: "int", dt.int64: "int64_t"}


def randperm_meta(n, dtype):
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    if dtype is dt.bool_ or dtype.is_complex or dtype in dt.BAREBONES:
        raise NotImplementedError(f'"randperm" not implemented for \'{_NAMES[dtype]}\'')
    if dtype in _RANDPERM_FLOAT_LIMIT:
        if n > 2 ** DIGITS[dtype] + 1:
            raise RuntimeError(f"n cannot be greater than {_RANDPERM_FLOAT_LIMIT[dtype]} for {_NAMES[dtype]} type.")
    elif dtype.category == 1 and n - 1 > _INT_RANGE[dtype][1]:
        raise RuntimeError(f"value cannot be converted to type {_C_INT[dtype]} without overflow")


def multinomial_meta(input, num_samples, replacement):
    if input.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if not input._dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {_NAMES[input._dtype]}")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    k = input._shape[-1]
    if not replacement and num_samples > k:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    if k > 2 ** 24:
        raise RuntimeError("number of categories cannot exceed 2^24")
    return input._shape[:-1] + (num_samples,)


def _inplace(name, meta):
    return declare(name, meta=meta, family="random")


uniform_ = _inplace("uniform_", uniform_meta)
normal_ = _inplace("normal_", normal_meta)
random_ = _inplace("random_", random_bounds)
bernoulli_ = _inplace("bernoulli_", bernoulli_meta)
exponential_ = _inplace("exponential_", exponential_meta)
geometric_ = _inplace("geometric_", geometric_meta)
log_normal_ = _inplace("log_normal_", log_normal_meta)
cauchy_ = _inplace("cauchy_", cauchy_meta)
randperm = declare("randperm", meta=randperm_meta, family="random")
multinomial = declare("multinomial", meta=multinomial_meta, family="random")


# -- derivatives (autograd) --
# A draw does not depend smoothly on its parameters: torch's derivatives are zero (bernoulli(p) with a
# p that requires grad gives zero gradients to p and to the overwritten self).

from vibetensor.autograd import derivative as _derivative  # noqa: E402


@_derivative(bernoulli_, inplace=True, name="BernoulliBackward0")
def _bernoulli_backward(ctx, grad, self, p, generator=None):
    from vibetensor.ops import creation
    zeros = lambda shape: creation.full(tuple(shape), 0, grad._dtype, device=grad._device)  # noqa: E731
    return zeros(grad._shape), (zeros(p.shape) if not isinstance(p, (int, float)) else None), None
