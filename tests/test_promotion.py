"""Type promotion against torch, for every pair of the 12 dtypes: promote_types, can_cast,
result_type and the dtypes ops actually return, with dimensioned tensors, 0-d tensors and Python
numbers (bool, int, float, complex) in either position, under both default float dtypes.

The one known gap: torch promotes float16 with a complex 0-d tensor or number to complex32
(ComplexHalf), a dtype vibetensor does not have; there we raise NotImplementedError naming it.
"""
import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES

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
            ours = vt.promote_types(_dtype(vt, a), _dtype(vt, b))
            assert _same(ours, torch.promote_types(_dtype(torch, a), _dtype(torch, b))), (a, b)


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
