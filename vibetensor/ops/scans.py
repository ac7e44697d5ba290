"""Scan operators (cumulative along one dim): declarations, torch's dtype rules, derivatives.

    cumsum(a, dim, dtype=None, reverse=False)        integers and bool sum to int64
    cumprod(a, dim, dtype=None)
    cummax(a, dim) / cummin(a, dim) -> (values, indices)
    logcumsumexp(a, dim, reverse=False)              floating/complex only

`reverse=True` scans from the end (torch's `x.flip(dim).cumsum(dim).flip(dim)`): the derivative of
a forward scan is a reverse one, so the pair is closed under differentiation (create_graph).
Each meta validates everything and returns a Spec:
  shape, dtype, device   the result (what out= is checked against)
  dim                    the wrapped scan dim
  compute                the dtype the input is converted to before scanning (dtype= or out's dtype)
Kernels (backends/<device>/scans.py) have the op's signature plus out=None.
"""
import collections

from vibetensor.dispatch import declare
from vibetensor.ops import meta as m
from vibetensor.ops.reduction import CPP_NAMES
from vibetensor.tensor import dtype as dt
from vibetensor.tensor import shape as sh
from vibetensor.tensor.tensor import Tensor

Spec = collections.namedtuple("Spec", "shape dtype device dim compute")
_NAMES = m.TYPE_NAMES


def check_input(op, a):
    if not isinstance(a, Tensor):
        raise TypeError(f"{op}(): argument 'input' (position 1) must be Tensor, not {type(a).__name__}")


def scan_dim(op, a, dim):
    """The wrapped dim of a one-dim op (0-d tensors accept -1 and 0)."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{op}(): argument 'dim' (position 2) must be int, not {type(dim).__name__}")
    return sh.wrap_dim(dim, a.ndim, op)


def check_out_exact(out, dtype):
    """out= of kernels that write their own dtype only (cummax, logcumsumexp, sort...)."""
    if out is not None and isinstance(out, Tensor) and out._dtype is not dtype:
        raise RuntimeError(f"expected scalar_type {_NAMES[dtype]} but found {_NAMES[out._dtype]}")


def out_pair(op, out):
    """out=(values, indices) of the ops returning both."""
    if out is None:
        return None, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(o, Tensor) for o in out)):
        raise TypeError(f"{op}(): argument 'out' must be tuple of Tensors")
    return out


def _cumulative_meta(op):
    """cumsum/cumprod: dtype= casts the input; else out='s dtype; else integers widen to int64."""
    def meta(a, dim, dtype=None, reverse=False, out=None):
        check_input(op, a)
        d = scan_dim(op, a, dim)
        if out is not None and not isinstance(out, Tensor):
            raise TypeError(f"{op}(): argument 'out' must be Tensor, not {type(out).__name__}")
        if out is a and dtype is not None and dtype is not a._dtype:
            raise RuntimeError(f"Bad in-place call: input tensor dtype {CPP_NAMES[a._dtype]} and output tensor "
                               f"dtype {CPP_NAMES[dtype]} should match")
        if dtype is not None:
            if out is not None and out._dtype is not dtype:
                raise RuntimeError(f"Expected out tensor to have dtype {CPP_NAMES[dtype]}, but got "
                                   f"{CPP_NAMES[out._dtype]} instead")
            result = dtype
        elif out is not None:
            result = out._dtype  # torch converts the input to out's dtype first
        else:
            result = dt.int64 if a._dtype.category < 2 else a._dtype
        if result is dt.bool_ and a.numel():
            raise NotImplementedError(f'"{op}_out_cpu" not implemented for \'Bool\'')
        return Spec(tuple(a._shape), result, a._device, d, result)
    return meta


def _cummaxmin_meta(op):
    def meta(a, dim, out=None):
        check_input(op, a)
        values, indices = out_pair(op, out)
        if a.numel() == 0:  # torch returns empty results before checking dim or dtype
            return Spec(tuple(a._shape), a._dtype, a._device, 0, a._dtype)
        d = scan_dim(op, a, dim)
        if a._dtype.is_complex and a.ndim:  # a 0-d input is copied without a kernel
            raise NotImplementedError(f'"{op}_cpu" not implemented for \'{_NAMES[a._dtype]}\'')
        check_out_exact(values, a._dtype)
        check_out_exact(indices, dt.int64)
        return Spec(tuple(a._shape), a._dtype, a._device, d, a._dtype)
    return meta


def _logcumsumexp_meta(a, dim, reverse=False, out=None):
    check_input("logcumsumexp", a)
    d = scan_dim("logcumsumexp", a, dim)
    if a._dtype.category < 2:
        raise NotImplementedError(f'"logcumsumexp_out_cpu" not implemented for \'{_NAMES[a._dtype]}\'')
    if out is not None and not isinstance(out, Tensor):
        raise TypeError(f"logcumsumexp(): argument 'out' must be Tensor, not {type(out).__name__}")
    check_out_exact(out, a._dtype)
    return Spec(tuple(a._shape), a._dtype, a._device, d, a._dtype)


def _declare(name, meta):
    return declare(name, meta=meta, family="scans")


cumsum = _declare("cumsum", _cumulative_meta("cumsum"))           # cumsum(a, dim, dtype, reverse)
cumprod = _declare("cumprod", _cumulative_meta("cumprod"))        # cumprod(a, dim, dtype)
cummax = _declare("cummax", _cummaxmin_meta("cummax"))            # cummax(a, dim) -> (values, indices)
cummin = _declare("cummin", _cummaxmin_meta("cummin"))
logcumsumexp = _declare("logcumsumexp", _logcumsumexp_meta)       # logcumsumexp(a, dim, reverse)


# -- derivatives (autograd) -----------------------------------------------------------------------------------
# torch's formulas (derivatives.yaml / FunctionsManual.cpp), written with ops so they differentiate again.
from vibetensor.autograd import grad_mode as _grad_mode  # noqa: E402
from vibetensor.autograd.derivatives import conj as _conj, derivative as _derivative  # noqa: E402
from vibetensor.ops import creation as _creation  # noqa: E402
from vibetensor.ops import elementwise as _ew  # noqa: E402
from vibetensor.ops import reduction as _reduction  # noqa: E402
from vibetensor.ops import views as _views  # noqa: E402


@_derivative(cumsum)
def _cumsum_backward(ctx, grad, a, dim, dtype=None, reverse=False):
    # the sum of the gradients of every output an input element feeds: a scan the other way round
    if grad.ndim == 0 or grad.numel() <= 1:
        return grad
    return cumsum(grad, dim, None, not reverse)


@_derivative(cumprod, save=(0, "result"))
def _cumprod_backward(ctx, grad, a, dim, dtype=None):
    """d out_j / d a_k = prod_{i<=j, i!=k} a_i. Before the first zero z of a slice that is out_j / a_k;
    at z it is the scan of a with a_z set to 1; past z every product holds a_z = 0."""
    y = ctx.result
    if a.ndim == 0 or a.numel() <= 1:
        return grad
    d = sh.wrap_dim(dim, a.ndim)
    if _grad_mode.is_grad_enabled() and bool(_reduction.any(_ew.eq(a, 0)).item()):
        return _cumprod_backward_leave_one_out(grad, a, d)
    w = _ew.mul(grad, _conj(y))
    zeros_seen = cumsum(_ew.eq(a, 0), d)                               # zeros up to and including k
    before = _ew.eq(zeros_seen, 0)                                     # k < z
    first = _ew.logical_and(_ew.eq(zeros_seen, 1), _ew.eq(a, 0))       # k == z
    safe = _ew.where(before, a, 1)                                     # no 0/0 here, even in double backward
    g_before = _ew.div(cumsum(w, d, None, True), _conj(safe))
    y_skip = cumprod(_ew.where(first, 1, a), d)                        # the products with a_z left out
    g_first = cumsum(_ew.mul(grad, _conj(y_skip)), d, None, True)
    return _ew.where(before, g_before, _ew.where(first, g_first, 0))


def _cumprod_backward_leave_one_out(grad, a, d):
    """The same gradient, O(n^2), for create_graph=True: past the first zero the gradient is 0 but its
    derivative is not, so each k gets its own scan with a_k replaced by 1 (torch does the same)."""
    n = a.shape[d]
    mask_shape = (n,) + tuple(n if i == d else 1 for i in range(a.ndim))
    leave_out = _views.reshape(_creation.eye(n, n, dt.bool_, a.device), mask_shape)   # (n, 1.., n, ..1)
    skipped = cumprod(_ew.where(leave_out, 1, a), d + 1)       # [k, ..j..] = prod_{i<=j, i!=k} a_i
    per_k = cumsum(_ew.mul(grad, _conj(skipped)), d + 1, None, True)
    return _reduction.sum(_ew.where(leave_out, per_k, 0), 0)


@_derivative(logcumsumexp, save=(0, "result"))
def _logcumsumexp_backward(ctx, grad, a, dim, reverse=False):
    """torch's logcumsumexp_backward: the positive and negative parts of grad go through a reverse
    log-scan separately, so no log of a negative number is taken."""
    if grad.ndim == 0 or grad.numel() == 0:
        return grad
    y = ctx.result
    if grad._dtype.is_complex:  # torch: no split by sign needed, conj(exp(rev_lcse(log(conj(grad)) - y) + a))
        term = _ew.exp(_ew.add(logcumsumexp(_ew.sub(_ew.log(_conj(grad)), y), dim, not reverse), a))
        return _conj(term)
    lowest = _LOWEST.get(grad._dtype, -1.7976931348623157e308)  # the finite minimum: exp() of it is 0
    log_abs = _ew.log(_ew.abs(grad))
    out = None
    for sign in (_ew.gt, _ew.lt):
        part = _ew.where(sign(grad, 0), log_abs, lowest)
        term = _ew.exp(_ew.add(logcumsumexp(_ew.sub(part, y), dim, not reverse), a))
        out = term if out is None else _ew.sub(out, term)
    return out


_LOWEST = {dt.float16: -65504.0, dt.bfloat16: -3.3895313892515355e38, dt.float32: -3.4028234663852886e38}
