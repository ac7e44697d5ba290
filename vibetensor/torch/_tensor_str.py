"""repr(tensor) in PyTorch's exact format, and torch.set_printoptions.

Printing is a host operation (a sync for device tensors): the tensor is copied to a NumPy array
once and every decision is made on it, following torch's rules:

* one formatter per tensor (two for complex: real and imaginary parts) looks at the nonzero
  finite values (only the printed edges when summarised): all integral -> "1." style; a ratio
  max/min > 1000, max > 1e8 or min < 1e-4 -> scientific; else fixed with `precision` digits;
  every element is right-aligned to the widest;
* lines hold floor((linewidth - indent) / (width + 2)) elements; rows of higher dims are joined
  by ",\\n" plus one blank line per extra dim, indented under the opening bracket;
* more than `threshold` elements print `edgeitems` from each end of every dim with "...";
* suffixes: device (non-CPU), dtype (unless default float / default complex / int64 / bool),
  size (empty tensors that are not 1-d), grad_fn or requires_grad, wrapped at linewidth.
"""
import contextlib
import dataclasses
import math

import ml_dtypes
import numpy as np

from vibetensor.tensor import dtype as dt


@dataclasses.dataclass
class _PrinterOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool = None


PRINT_OPTS = _PrinterOptions()

_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """torch.set_printoptions; like torch, sci_mode is always set (None returns to automatic)."""
    if profile is not None:
        PRINT_OPTS.precision, PRINT_OPTS.threshold, PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = _PROFILES[profile]
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions():
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs):
    old = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old)


# -- formatting numbers -----------------------------------------------------------------------------------

class _Formatter:
    """Chooses integer / fixed / scientific style and the common width for a set of values."""

    def __init__(self, values, floating):
        self.floating_dtype = floating
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        values = values.reshape(-1)
        if not floating:
            if values.size:
                self.max_width = max(len(str(v)) for v in (values.min().item(), values.max().item()))
            return
        finite = values[np.isfinite(values) & (values != 0)].astype(np.float64)
        if finite.size == 0:
            return
        magnitude = np.abs(finite)
        lo, hi = magnitude.min(), magnitude.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        self.sci_mode = (hi > 1000.0 * lo or hi > 1.0e8 or lo < 1.0e-4) if PRINT_OPTS.sci_mode is None \
            else PRINT_OPTS.sci_mode
        p = PRINT_OPTS.precision
        if self.sci_mode:
            widths = (len(f"{v:.{p}e}") for v in finite.tolist())
        elif self.int_mode:
            widths = (len(f"{v:.0f}") + 1 for v in finite.tolist())  # +1 for the trailing "."
        else:
            widths = (len(f"{v:.{p}f}") for v in finite.tolist())
        self.max_width = max(self.max_width, max(widths))

    def width(self):
        return self.max_width

    def format(self, value):
        if self.floating_dtype:
            p = PRINT_OPTS.precision
            if self.sci_mode:
                ret = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{value:.{p}f}"
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _complex_str(value, real, imag):
    re = real.format(value.real)
    im = (imag.format(value.imag) + "j").lstrip()
    return re + im if im[0] in "+-" else re + "+" + im  # handles negatives, +0.0 and -0.0


def _scalar_str(a, f1, f2):
    v = a.item()
    return _complex_str(v, f1, f2) if f2 is not None else f1.format(v)


def _vector_str(a, indent, summarize, f1, f2):
    element_length = f1.width() + 2
    if f2 is not None:
        element_length += f2.width() + 1  # the imaginary part and its "j"
    per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))

    def fmt(v):
        return _complex_str(v, f1, f2) if f2 is not None else f1.format(v)

    edge = PRINT_OPTS.edgeitems
    if summarize and not edge:
        data = ["..."]
    elif summarize and a.shape[0] > 2 * edge:
        data = [fmt(v) for v in a[:edge].tolist()] + [" ..."] + [fmt(v) for v in a[-edge:].tolist()]
    else:
        data = [fmt(v) for v in a.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _str_with_formatter(a, indent, summarize, f1, f2=None):
    if a.ndim == 0:
        return _scalar_str(a, f1, f2)
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, f1, f2)
    edge = PRINT_OPTS.edgeitems
    if summarize and a.shape[0] > 2 * edge:
        rows = list(range(edge)) + [None] + list(range(a.shape[0] - edge, a.shape[0]))
    else:
        rows = range(a.shape[0])
    slices = ["..." if i is None else _str_with_formatter(a[i], indent + 1, summarize, f1, f2) for i in rows]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _summarized(a):
    """The elements a summarised print shows (edgeitems from each end of every dim)."""
    edge = PRINT_OPTS.edgeitems
    if a.ndim == 0:
        return a
    if a.ndim == 1:
        return np.concatenate((a[:edge], a[-edge:])) if a.shape[0] > 2 * edge else a
    if not edge:
        return a[(slice(0, 0),) * a.ndim]
    rows = list(range(edge)) + list(range(a.shape[0] - edge, a.shape[0])) if a.shape[0] > 2 * edge \
        else range(a.shape[0])
    return np.stack([_summarized(a[i]) for i in rows])


def _numeric(a):
    """Half types as float32 for arithmetic (every value is exact)."""
    return a.astype(np.float32) if a.dtype in (np.float16, np.dtype(ml_dtypes.bfloat16)) else a


def _tensor_str(a, dtype, indent):
    if a.size == 0:
        return "[]"
    summarize = a.size > PRINT_OPTS.threshold
    a = _numeric(a)
    pick = _summarized if summarize else (lambda x: x)
    if dtype.is_complex:
        real = _Formatter(pick(a.real), True)
        imag = _Formatter(pick(a.imag), True)
        return _str_with_formatter(a, indent, summarize, real, imag)
    return _str_with_formatter(a, indent, summarize, _Formatter(pick(a), dtype.category >= 2))


def _add_suffixes(tensor_str, suffixes, indent):
    parts = [tensor_str]
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line_len += len(suffix) + 2
    parts.append(")")
    return "".join(parts)


def _grad_fn_name(grad_fn):
    name = getattr(grad_fn, "name", None)
    if callable(name):
        name = name()
    return name if isinstance(name, str) else type(grad_fn).__name__


def tensor_repr(t, host_array):
    """repr(t); host_array(t) gives the values as a NumPy array on the host."""
    plain = type(t).__name__ in ("Tensor", "Parameter")
    prefix = "tensor(" if plain else f"{type(t).__name__}("
    indent = len(prefix)
    suffixes = []
    if t.device.type != "cpu":
        suffixes.append(f"device='{t.device}'")
    default = dt.get_default_dtype()
    has_default_dtype = t.dtype in (default, dt.default_complex_dtype(), dt.int64, dt.bool_)
    if t.device.type == "meta":
        suffixes.append(f"size={tuple(t.shape)}")
        if t.dtype is not default:
            suffixes.append(f"dtype={t.dtype!r}")
        tensor_str = "..."
    elif t.numel() == 0:
        if t.ndim != 1:
            suffixes.append(f"size={tuple(t.shape)}")  # as NumPy: only (0,) goes without saying
        if t.dtype is not default:
            suffixes.append(f"dtype={t.dtype!r}")
        tensor_str = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(t.shape)}")
        if not has_default_dtype:
            suffixes.append(f"dtype={t.dtype!r}")
        tensor_str = _tensor_str(host_array(t), t.dtype, indent)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{_grad_fn_name(t.grad_fn)}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + tensor_str, suffixes, indent)
