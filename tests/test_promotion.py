"""Type promotion against torch, for every pair of the 15 dtypes (the 12 and torch's barebones unsigned
uint16/uint32/uint64, which promote only with floating types): promote_types, can_cast,
result_type and the dtypes ops actually return, with dimensioned tensors, 0-d tensors and Python
numbers (bool, int, float, complex) in either position, under both default float dtypes.

The one known gap: torch promotes float16 with a complex 0-d tensor or number to complex32
(ComplexHalf), a dtype vibetensor does not have; there we raise NotImplementedError naming it.
"""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES as _DTYPES, check

DTYPES = _DTYPES + ["uint16", "uint32", "uint64"]

pytestmark = pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")

SCALARS = (True, 3, 2.5, 1j)
# ops whose result dtype follows a different rule each: plain promotion, to-float, comparison,
# integral-only, float_power's double, where's two operands
OPS = {
    "add": lambda lib, a, b: lib.add(a, b),
    "mul": lambda lib, a, b: a * b,
    "div": lambda lib, a, b: a / b,
    "floor_divide": lambda lib, a, b: a // b,
    "pow": lambda lib, a, b: a ** b,
    "eq": lambda lib, a, b: a == b,
    "lt": lambda lib, a, b: a < b,
    "bitwise_and": lambda lib, a, b: a & b,
    "atan2": lambda lib, a, b: lib.atan2(a, b),
    "float_power": lambda lib, a, b: lib.float_power(a, b),
    "where": lambda lib, a, b: lib.where(lib.ones((), dtype=lib.bool), a, b),
    "maximum": lambda lib, a, b: lib.maximum(a, b),
}


def _dtype(lib, name):
    return getattr(lib, name)


def _tensor(lib, name, dim):
    return lib.ones((2,) * dim, dtype=_dtype(lib, name))


def _same(ours, theirs):
    return repr(ours) == str(theirs)


@pytest.fixture(params=["float32", "float64"])
def default_dtype(request):
    """Run under each default float dtype (Python floats and integer-to-float ops follow it)."""
    vt.set_default_dtype(_dtype(vt, request.param))
    torch.set_default_dtype(_dtype(torch, request.param))
    yield request.param
    vt.set_default_dtype(vt.float32)
    torch.set_default_dtype(torch.float32)


def _outcome(fn, lib, *args):
    """fn's result dtype, or the exception type it raised (torch's own types count as RuntimeError)."""
    try:
        r = fn(lib, *args)
    except Exception as e:
        return RuntimeError if type(e).__module__.startswith("torch") else type(e)
    if isinstance(r, (torch.dtype, vt.dtype)):  # result_type
        return r
    return r.dtype


def _agree(fn, t_args, v_args, what):
    theirs = _outcome(fn, torch, *t_args)
    ours = _outcome(fn, vt, *v_args)
    if theirs is torch.complex32:  # no complex32 here: we must refuse, clearly
        assert ours is NotImplementedError, f"{what}: torch gives complex32, we gave {ours}"
    elif isinstance(theirs, type):
        assert isinstance(ours, type) and issubclass(ours, theirs), f"{what}: torch raised {theirs}, we {ours}"
    else:
        assert _same(ours, theirs), f"{what}: torch {theirs}, we {ours}"


def test_promote_types():
    for a in DTYPES:
        for b in DTYPES:
            _agree(lambda lib, x, y: lib.promote_types(x, y), (_dtype(torch, a), _dtype(torch, b)),
                   (_dtype(vt, a), _dtype(vt, b)), f"promote_types({a}, {b})")


def test_can_cast():
    for a in DTYPES:
        for b in DTYPES:
            ours = vt.can_cast(_dtype(vt, a), _dtype(vt, b))
            assert ours == torch.can_cast(_dtype(torch, a), _dtype(torch, b)), (a, b)


def test_result_type_tensors(default_dtype):
    """Dimensioned and 0-d tensors in all four combinations."""
    for a in DTYPES:
        for b in DTYPES:
            for da in (0, 1):
                for db in (0, 1):
                    _agree(lambda lib, x, y: lib.result_type(x, y),
                           (_tensor(torch, a, da), _tensor(torch, b, db)), (_tensor(vt, a, da), _tensor(vt, b, db)),
                           f"result_type({a}{'[2]' * da}, {b}{'[2]' * db})")


def test_result_type_scalars(default_dtype):
    """A tensor (dimensioned or 0-d) with a Python number, in either order; and two numbers."""
    for a in DTYPES:
        for s in SCALARS:
            for da in (0, 1):
                t, v = _tensor(torch, a, da), _tensor(vt, a, da)
                _agree(lambda lib, x, y: lib.result_type(x, y), (t, s), (v, s), f"result_type({a}[{da}], {s!r})")
                _agree(lambda lib, x, y: lib.result_type(x, y), (s, t), (s, v), f"result_type({s!r}, {a}[{da}])")
    for s in SCALARS:
        for r in SCALARS:
            _agree(lambda lib, x, y: lib.result_type(x, y), (s, r), (s, r), f"result_type({s!r}, {r!r})")


@pytest.mark.parametrize("op", OPS, ids=list(OPS))
def test_op_result_dtypes(op, default_dtype):
    """The dtype an op returns (or the exception type it raises) for every operand pairing."""
    fn = OPS[op]
    for a in DTYPES:
        for b in DTYPES:
            for da, db in ((1, 1), (1, 0), (0, 1), (0, 0)):
                _agree(fn, (_tensor(torch, a, da), _tensor(torch, b, db)), (_tensor(vt, a, da), _tensor(vt, b, db)),
                       f"{op}({a}{'[2]' * da}, {b}{'[2]' * db})")
        for s in SCALARS:
            for da in (0, 1):
                t, v = _tensor(torch, a, da), _tensor(vt, a, da)
                _agree(fn, (t, s), (v, s), f"{op}({a}[{da}], {s!r})")
                _agree(fn, (s, t), (s, v), f"{op}({s!r}, {a}[{da}])")


def test_inplace_keeps_self_dtype():
    """x.op_(y) keeps x's dtype when the result casts to it, and refuses otherwise (torch's message)."""
    for a in DTYPES:
        for b in DTYPES + [2, 2.5, 1j]:
            y_t = b if not isinstance(b, str) else _tensor(torch, b, 1)
            y_v = b if not isinstance(b, str) else _tensor(vt, b, 1)
            _agree(lambda lib, x, y: x.mul_(y), (_tensor(torch, a, 1), y_t), (_tensor(vt, a, 1), y_v),
                   f"{a}.mul_({b})")


def test_complex32_is_refused_clearly():
    with pytest.raises(NotImplementedError, match="complex32"):
        vt.ones(2, dtype=vt.float16) + 1j
    with pytest.raises(NotImplementedError, match="complex32"):
        vt.result_type(vt.ones(2, dtype=vt.float16), vt.ones((), dtype=vt.complex64))
    # comparisons don't show the computation dtype: those work (in complex64)
    assert (vt.ones(2, dtype=vt.float16) == 1j).dtype is vt.bool


# torch's barebones unsigned types: what torch 2.13 does with them on CPU (values, or its exception type)
def _u(lib, name="uint32", values=(1, 2, 3)):
    return lib.tensor(values, dtype=getattr(lib, name))


BAREBONES = [
    ("tensor_uint64_max", lambda lib: lib.tensor([2 ** 64 - 1, 2 ** 63], dtype=lib.uint64)),
    ("tensor_uint64_negative", lambda lib: lib.tensor([-1], dtype=lib.uint64)),
    ("tensor_uint64_too_big", lambda lib: lib.tensor([2 ** 64], dtype=lib.uint64)),
    ("tensor_uint64_float", lambda lib: lib.tensor([1.5], dtype=lib.uint64)),
    ("tensor_uint32_wraps", lambda lib: lib.tensor([-1, 7], dtype=lib.uint32)),
    ("tensor_uint16_overflow", lambda lib: lib.tensor([2 ** 32], dtype=lib.uint16)),
    ("full_uint32_wraps", lambda lib: lib.full((2,), -1, dtype=lib.uint32)),
    ("full_uint32_overflow", lambda lib: lib.full((2,), 2 ** 32, dtype=lib.uint32)),
    ("zeros_ones", lambda lib: (lib.zeros(2, dtype=lib.uint64), lib.ones(2, dtype=lib.uint16))),
    ("to_float_and_back", lambda lib: (_u(lib).float(), lib.tensor([1.5, 2.0]).to(lib.uint32))),
    ("to_int64", lambda lib: _u(lib, "uint64").long()),
    ("from_numpy", lambda lib: lib.from_numpy(np.array([1, 2 ** 63], dtype=np.uint64))),
    ("tolist_item", lambda lib: (_u(lib, "uint64", (2 ** 64 - 1,)).tolist(), _u(lib)[0].item())),
    ("cat_stack_index", lambda lib: (lib.cat([_u(lib), _u(lib)]), lib.stack([_u(lib)] * 2), _u(lib)[[0, 2]])),
    ("view_as_int32", lambda lib: _u(lib).view(lib.int32)),
    ("setitem", lambda lib: _setitem(_u(lib))),
    ("mul", lambda lib: (_u(lib) * _u(lib), _u(lib) * 2, _u(lib) * 1.5)),
    ("eq_ne", lambda lib: (_u(lib) == _u(lib, values=(3, 2, 1)), _u(lib) != 2)),
    ("bitwise", lambda lib: (_u(lib) & _u(lib), _u(lib) | 4, _u(lib) ^ 1)),
    ("div_true", lambda lib: _u(lib) / _u(lib)),
    ("sqrt_to_float", lambda lib: _u(lib).sqrt()),
    ("sum_to_int64", lambda lib: (_u(lib).sum(), _u(lib, "uint64").prod(), _u(lib).cumsum(0))),
    ("where", lambda lib: lib.where(lib.tensor([True, False, True]), _u(lib), _u(lib, values=(0, 0, 0)))),
    ("pow_one_copies", lambda lib: _u(lib, "uint16") ** 1),
    ("float_power", lambda lib: lib.float_power(lib.tensor([True, False, True]), _u(lib, "uint16"))),
    ("isclose_isfinite", lambda lib: (lib.isclose(_u(lib), _u(lib)), _u(lib).isfinite())),
    ("add_refused", lambda lib: _u(lib) + 1),
    ("sub_refused", lambda lib: _u(lib) - _u(lib)),
    ("lt_refused", lambda lib: _u(lib) < 2),
    ("neg_refused", lambda lib: -_u(lib, "uint64")),
    ("shift_refused", lambda lib: _u(lib) << 1),
    ("bitwise_not_refused", lambda lib: ~_u(lib, "uint16")),
    ("floor_divide_refused", lambda lib: _u(lib) // 2),
    ("pow_refused", lambda lib: _u(lib) ** 2),
    ("lerp_refused", lambda lib: lib.lerp(_u(lib), _u(lib), 0.5)),
    ("clamp_refused", lambda lib: _u(lib).clamp(0, 2)),
    ("promote_with_int64", lambda lib: _u(lib, "uint64") * lib.tensor([1, 2, 3])),
    ("promote_with_bool", lambda lib: _u(lib, "uint64") * lib.tensor([True, False, True])),
    ("zero_dim_int_joins", lambda lib: _u(lib, "uint64") * lib.tensor(2)),
    ("randint", lambda lib: lib.randint(0, 1, (3,), dtype=lib.uint32)),
    ("randint_out_of_range", lambda lib: lib.randint(0, 2 ** 33, (3,), dtype=lib.uint32)),
    ("random_unbounded_refused", lambda lib: lib.empty(3, dtype=lib.uint64).random_()),
    ("randperm_refused", lambda lib: lib.randperm(3, dtype=lib.uint16)),
    ("max_refused", lambda lib: _u(lib).max()),
    ("max_dim_refused", lambda lib: _u(lib).max(0)),
    ("amax_refused", lambda lib: _u(lib, "uint64").amax(0)),
    ("amax_empty_result", lambda lib: lib.ones(2, 0, dtype=lib.uint64).amax(0)),
    ("argmax_refused", lambda lib: _u(lib).argmax()),
    ("aminmax_refused", lambda lib: lib.aminmax(_u(lib, "uint16"))),
    ("mm_refused", lambda lib: _u(lib).reshape(3, 1) @ _u(lib).reshape(1, 3)),
    ("dot_refused", lambda lib: lib.dot(_u(lib), _u(lib))),
    ("arange_refused", lambda lib: lib.arange(3, dtype=lib.uint64)),
    ("linspace_refused", lambda lib: lib.linspace(0, 3, 4, dtype=lib.uint32)),
    ("eye_refused", lambda lib: lib.eye(2, dtype=lib.uint16)),
]


def _setitem(t):
    t[0] = 5
    return t


@pytest.mark.parametrize("name,fn", BAREBONES, ids=[b[0] for b in BAREBONES])
def test_barebones_unsigned_types(name, fn):
    check(fn)
