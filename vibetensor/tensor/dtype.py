"""Data types and PyTorch's type-promotion rules.

A dtype knows its NumPy twin (bfloat16 comes from ml_dtypes) so the CPU backend can view storage
bytes directly. Promotion follows torch exactly: `promote_types` is the pairwise lattice and
`result_type` ranks operands as dimensioned tensors > 0-d tensors > Python scalars, where a lower
rank only wins when it is of a higher category (bool < integer < float < complex).
"""
import ml_dtypes
import numpy as np

# kinds: b bool, u unsigned, i signed integer, f floating, c complex
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


class dtype:
    __slots__ = ("name", "itemsize", "kind", "np", "category", "__weakref__")

    def __init__(self, name, np_dtype, kind):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.kind = kind
        self.category = _CATEGORY[kind]

    @property
    def is_floating_point(self):
        return self.kind == "f"

    @property
    def is_complex(self):
        return self.kind == "c"

    @property
    def is_signed(self):
        return self.kind in "ifc"

    def to_complex(self):
        return {float32: complex64, float64: complex128}.get(self, self) if self.kind != "c" else self

    def to_real(self):
        return {complex64: float32, complex128: float64}.get(self, self)

    def __repr__(self):
        return "torch." + self.name

    def __reduce__(self):  # dtypes are singletons, also across pickling (DataLoader workers)
        return (_by_name, (self.name,))


bool_ = dtype("bool", np.bool_, "b")
uint8 = dtype("uint8", np.uint8, "u")
int8 = dtype("int8", np.int8, "i")
int16 = dtype("int16", np.int16, "i")
int32 = dtype("int32", np.int32, "i")
int64 = dtype("int64", np.int64, "i")
float16 = dtype("float16", np.float16, "f")
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, "f")
float32 = dtype("float32", np.float32, "f")
float64 = dtype("float64", np.float64, "f")
complex64 = dtype("complex64", np.complex64, "c")
complex128 = dtype("complex128", np.complex128, "c")
# torch's "barebones" unsigned types: tensors can be made, copied, viewed, converted, compared for
# equality and combined bitwise, but they promote only with floating types (and their own type)
uint16 = dtype("uint16", np.uint16, "u")
uint32 = dtype("uint32", np.uint32, "u")
uint64 = dtype("uint64", np.uint64, "u")
BAREBONES = (uint16, uint32, uint64)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64, complex64, complex128,
       uint16, uint32, uint64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL}


def _by_name(name):
    return _BY_NAME[name]


def from_numpy(np_dtype):
    """The dtype whose NumPy twin is `np_dtype`; TypeError for ones torch has no twin of."""
    try:
        return _BY_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"can't convert np.ndarray of type {np.dtype(np_dtype)}. The only supported types are: "
            "float64, float32, float16, bfloat16, complex64, complex128, int64, int32, int16, int8, "
            "uint64, uint32, uint16, uint8, and bool.") from None


def _promote_pair(a, b):
    """torch's lattice; None where torch refuses (a barebones unsigned type meets a non-float)."""
    if a is b:
        return a
    if a in BAREBONES or b in BAREBONES:
        other = b if a in BAREBONES else a
        return other if other.kind == "f" else None
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    if a.kind == "c" or b.kind == "c":
        c, o = (a, b) if a.kind == "c" else (b, a)
        if o.kind == "c":
            return a if a.itemsize >= b.itemsize else b
        return complex128 if o is float64 else c
    if a.kind == "f" or b.kind == "f":
        if a.kind == "f" and b.kind == "f":
            if {a, b} == {float16, bfloat16}:
                return float32
            return a if a.itemsize >= b.itemsize else b
        return a if a.kind == "f" else b
    if a.kind == "u" or b.kind == "u":  # uint8 meets a signed integer
        s = b if a.kind == "u" else a
        return int16 if s is int8 else s
    return a if a.itemsize >= b.itemsize else b


# refused pairs are absent: a KeyError on the hot paths, turned into torch's error by _refuse_pair
_PROMOTE = {(a, b): c for a in ALL for b in ALL if (c := _promote_pair(a, b)) is not None}


def _refuse_pair(a, b):
    from vibetensor.ops.meta import TYPE_NAMES  # it imports us: late
    return RuntimeError(f"Promotion for uint16, uint32, uint64 types is not supported, attempted to promote "
                        f"{TYPE_NAMES[a]} and {TYPE_NAMES[b]}")


def promote_types(a, b):
    try:
        return _PROMOTE[a, b]
    except KeyError:
        raise _refuse_pair(a, b) from None


# -- default dtype ---------------------------------------------------------------------------------
_default = [None]  # process-wide, as in torch (set below, once float32 exists)
on_default_dtype_change = []  # callbacks: caches keyed on dtypes of Python floats must be dropped


def get_default_dtype():
    return _default[0] or float32


def set_default_dtype(d):
    if d not in (float32, float64, float16, bfloat16):
        raise TypeError(f"only floating-point types are supported as the default type, got {d}")
    _default[0] = d
    for callback in on_default_dtype_change:
        callback()


def default_complex_dtype():
    return complex128 if get_default_dtype() is float64 else complex64


def scalar_dtype(x):
    """The dtype a Python number takes as a tensor of its own (torch.tensor(x).dtype)."""
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return get_default_dtype()
    if isinstance(x, complex):
        return default_complex_dtype()
    raise TypeError(f"expected a Python number, got {type(x).__name__}")


def _combine(higher, lower):
    """torch's combine_categories: a lower-priority operand only wins by being of a higher category."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.kind == "c":
        return higher
    if lower.kind == "c":
        if higher.kind == "f":
            if higher is float16:  # torch gives complex32 (ComplexHalf), a dtype we don't have
                raise NotImplementedError("float16 and complex operands promote to complex32 (ComplexHalf), "
                                          "which vibetensor does not support")
            return complex128 if higher is float64 else complex64  # bfloat16 -> complex64, as torch
        return lower
    if higher.kind == "f":
        return higher
    if higher is bool_ or lower.kind == "f":
        return promote_types(higher, lower)
    return higher


def result_type(*operands):
    """torch.result_type over tensors (anything with .dtype and .ndim) and Python numbers."""
    dim = zero = wrapped = None
    for x in operands:
        if x is None:
            continue
        d = getattr(x, "dtype", None)
        if isinstance(d, dtype):
            if x.ndim:
                dim = d if dim is None else promote_types(dim, d)
            else:
                zero = d if zero is None else promote_types(zero, d)
        else:
            if isinstance(x, bool):
                s = bool_
            elif isinstance(x, int):
                s = int64
            elif isinstance(x, float):
                s = float64  # category only: a wrapped float becomes the default dtype below
            elif isinstance(x, complex):
                s = complex128
            else:
                raise TypeError(f"result_type: unsupported operand type {type(x).__name__}")
            wrapped = s if wrapped is None else promote_types(wrapped, s)
    if wrapped is not None and wrapped.kind == "f":
        wrapped = get_default_dtype()
    elif wrapped is not None and wrapped.kind == "c":
        wrapped = default_complex_dtype()
    return _combine(dim, _combine(zero, wrapped))


def can_cast(src, dst):
    """torch.can_cast: no float -> integral, no complex -> non-complex, no non-bool -> bool."""
    return src.category <= dst.category


def finfo_eps(d):
    return float(ml_dtypes.finfo(d.np).eps) if d is bfloat16 else float(np.finfo(d.np).eps)
