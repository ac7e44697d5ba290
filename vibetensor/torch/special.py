"""torch.special: special functions under torch's names and signatures, each one op call (or, where
torch composes one from others, the same composition: ndtr).

Not here yet (AttributeError, as for any missing name): the Bessel functions J/Y/K, airy_ai,
spherical_bessel_j0, gammainc/gammaincc.
"""
import math

from vibetensor.ops import elementwise as ew
from vibetensor.torch import pointwise as _pw

__all__ = []
_export = _pw._exporter(globals())


def _unary(op, name):
    return _pw._unary_fn(op, name, _export)


def _binary(op, name):
    return _pw._binary_fn(op, name, _export)


for _name, _op in (("erf", ew.erf), ("erfc", ew.erfc), ("erfinv", ew.erfinv), ("erfcx", ew.special_erfcx),
                   ("expit", ew.sigmoid), ("exp2", ew.exp2), ("expm1", ew.expm1), ("log1p", ew.log1p),
                   ("gammaln", ew.lgamma), ("digamma", ew.digamma), ("psi", ew.digamma), ("i0", ew.i0),
                   ("i0e", ew.special_i0e), ("i1", ew.special_i1), ("i1e", ew.special_i1e), ("sinc", ew.sinc),
                   ("entr", ew.special_entr), ("ndtri", ew.special_ndtri), ("log_ndtr", ew.special_log_ndtr)):
    _unary(_op, _name)
for _name, _op in (("xlogy", ew.xlogy), ("xlog1py", ew.special_xlog1py), ("zeta", ew.special_zeta)):
    _binary(_op, _name)
for _name in ew.POLYNOMIALS:
    _binary(getattr(ew, "special_" + _name), _name)


@_export
def ndtr(input, *, out=None):
    """The standard normal CDF, as torch computes it: (1 + erf(x / sqrt(2))) / 2."""
    return ew.mul(ew.add(ew.erf(ew.mul(input, math.sqrt(0.5))), 1), 0.5, out=out)


@_export
def polygamma(n, input, *, out=None):
    return _pw.polygamma(n, input, out=out)


@_export
def multigammaln(input, p, *, out=None):
    from vibetensor import torch as _torch
    return _torch.mvlgamma(input, p, out=out)


@_export
def round(input, *, decimals=0, out=None):                                  # noqa: A001
    return _pw.round(input, decimals=decimals, out=out)


@_export
def logit(input, eps=None, *, out=None):
    return ew.logit(input, eps, out=out)


@_export
def logsumexp(input, dim, keepdim=False, *, out=None):
    from vibetensor.torch import reduction
    return reduction.logsumexp(input, dim, keepdim, out=out)


@_export
def softmax(input, dim, *, dtype=None):
    from vibetensor.torch.nn import functional
    return functional.softmax(input, dim, dtype=dtype)


@_export
def log_softmax(input, dim, *, dtype=None):
    from vibetensor.torch.nn import functional
    return functional.log_softmax(input, dim, dtype=dtype)
