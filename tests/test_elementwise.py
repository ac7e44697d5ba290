"""Elementwise ops against torch: one table line per op; each line runs over every dtype (torch's
exception type where torch refuses one), layouts, broadcasting, 0-d and empty shapes, NaN/inf,
Python scalars in both positions, in-place and out= forms, and the errors of bad shapes and dtypes.

A line is Case(name, fn(lib, ...), dtypes, domain, op, kw):
  domain  - value range of the random inputs, one (low, high) per operand (None: -3..3)
  op      - torch's function name, for the in-place (`x.op_(...)`) and out= (`torch.op(..., out=)`)
            variants, called with the line's operands and **kw (None: the line has no such forms)
"""
import functools
import math
import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import DTYPES, LAYOUTS, _tol, assert_same, check, make_pair, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")

Case = namedtuple("Case", "name fn dtypes domain op kw", defaults=(DTYPES, None, None, {}))

POS = (0.1, 3.0)      # logarithms, roots
UNIT = (-1.0, 1.0)    # asin, acos, atanh
PROB = (0.0, 1.0)     # logit
NONZERO = (1.0, 4.0)  # integer divisors (zero raises; tested apart)


def _m(name, **kw):
    """A line calling torch.<name>(a, **kw), with in-place and out= forms."""
    return Case(name, lambda lib, a: getattr(lib, name)(a, **kw), op=name, kw=kw)


UNARY = [
    Case("neg", lambda lib, a: -a, op="neg"),
    Case("pos", lambda lib, a: +a),
    Case("positive", lambda lib, a: lib.positive(a)),
    Case("abs", lambda lib, a: abs(a), op="abs"),
    _m("reciprocal"),
    _m("square"),
    _m("sign"),
    _m("sgn"),
    _m("signbit"),
    _m("floor"),
    _m("ceil"),
    _m("round"),
    _m("round", decimals=2),
    _m("round", decimals=-1),
    _m("trunc"),
    _m("frac"),
    _m("exp"),
    _m("exp2"),
    _m("expm1"),
    _m("log")._replace(domain=(POS,)),
    _m("log2")._replace(domain=(POS,)),
    _m("log10")._replace(domain=(POS,)),
    _m("log1p")._replace(domain=(POS,)),
    _m("sqrt")._replace(domain=(POS,)),
    _m("rsqrt")._replace(domain=(POS,)),
    _m("sin"),
    _m("cos"),
    _m("tan"),
    _m("asin")._replace(domain=(UNIT,)),
    _m("acos")._replace(domain=(UNIT,)),
    _m("atan"),
    _m("sinh"),
    _m("cosh"),
    _m("tanh"),
    _m("asinh"),
    _m("acosh")._replace(domain=((1.0, 4.0),)),
    _m("atanh")._replace(domain=(UNIT,)),
    _m("sigmoid"),
    _m("logit")._replace(domain=(PROB,)),
    _m("logit", eps=0.2)._replace(domain=(PROB,)),
    _m("erf"),
    _m("erfc"),
    _m("relu"),
    _m("deg2rad"),
    _m("rad2deg"),
    _m("nan_to_num"),
    _m("nan_to_num", nan=1.5, posinf=100.0, neginf=-100.0),
    Case("isnan", lambda lib, a: lib.isnan(a)),
    Case("isinf", lambda lib, a: lib.isinf(a)),
    _m("isposinf"),
    _m("isneginf"),
    Case("isfinite", lambda lib, a: lib.isfinite(a)),
    Case("isreal", lambda lib, a: lib.isreal(a)),
    _m("logical_not"),
    Case("invert", lambda lib, a: ~a, op="bitwise_not"),
    _m("clamp", min=-1, max=1),
    _m("clamp", min=-0.5),
    _m("clamp", max=0.5),
    _m("clamp", min=True, max=True),
    _m("clamp_min", min=0),
    _m("clamp_max", max=1),
    Case("clamp_none", lambda lib, a: lib.clamp(a)),
    _m("pow", exponent=2),
    _m("pow", exponent=3),
    _m("pow", exponent=0.5),
    _m("pow", exponent=-0.5),
    _m("pow", exponent=-1),
    _m("pow", exponent=-2),
    _m("pow", exponent=0),
    _m("pow", exponent=1),
    _m("pow", exponent=True),
    _m("pow", exponent=1.7),
    _m("pow", exponent=1j),
    _m("erfinv")._replace(domain=(UNIT,)),
    _m("lgamma"),
    _m("digamma"),
    Case("polygamma0", lambda lib, a: lib.polygamma(0, a)),
    Case("polygamma1", lambda lib, a: lib.polygamma(1, a), domain=(POS,)),  # torch: finite junk at -1, -2, ...
    Case("polygamma2", lambda lib, a: lib.polygamma(2, a)),
    Case("polygamma3_method", lambda lib, a: a.polygamma(3)),
    _m("i0"),
    _m("sinc"),
    Case("special_i0e", lambda lib, a: lib.special.i0e(a)),
    Case("special_i1", lambda lib, a: lib.special.i1(a)),
    Case("special_i1e", lambda lib, a: lib.special.i1e(a)),
    Case("special_entr", lambda lib, a: lib.special.entr(a)),
    Case("special_ndtr", lambda lib, a: lib.special.ndtr(a)),
    Case("special_ndtri", lambda lib, a: lib.special.ndtri(a), domain=(PROB,)),
    Case("special_log_ndtr", lambda lib, a: lib.special.log_ndtr(a)),
    Case("special_erfcx", lambda lib, a: lib.special.erfcx(a)),
    Case("frexp", lambda lib, a: lib.frexp(a)),
    Case("rpow", lambda lib, a: 2 ** a),
    Case("rpow_float", lambda lib, a: 1.5 ** a),
    _m("float_power", exponent=2),
    Case("rtruediv", lambda lib, a: 2 / a),
    Case("rsub", lambda lib, a: lib.rsub(a, 2)),
]

BINARY = [
    Case("add", lambda lib, a, b: a + b, op="add"),
    Case("add_alpha", lambda lib, a, b: lib.add(a, b, alpha=2), op="add", kw={"alpha": 2}),
    Case("add_alpha_float", lambda lib, a, b: lib.add(a, b, alpha=0.5)),
    Case("add_alpha_bool", lambda lib, a, b: lib.add(a, b, alpha=True)),
    Case("sub", lambda lib, a, b: a - b, op="sub"),
    Case("sub_alpha", lambda lib, a, b: lib.sub(a, b, alpha=3), op="sub", kw={"alpha": 3}),
    Case("rsub", lambda lib, a, b: lib.rsub(a, b, alpha=2)),
    Case("mul", lambda lib, a, b: a * b, op="mul"),
    Case("div", lambda lib, a, b: a / b, op="div"),
    Case("div_floor", lambda lib, a, b: lib.div(a, b, rounding_mode="floor"), domain=(None, NONZERO), op="div",
         kw={"rounding_mode": "floor"}),
    Case("div_trunc", lambda lib, a, b: lib.div(a, b, rounding_mode="trunc"), domain=(None, NONZERO), op="div",
         kw={"rounding_mode": "trunc"}),
    Case("div_trunc_negative", lambda lib, a, b: lib.div(a, -b, rounding_mode="trunc"), domain=(None, NONZERO)),
    Case("floordiv", lambda lib, a, b: a // b, domain=(None, NONZERO), op="floor_divide"),
    Case("floordiv_negative", lambda lib, a, b: a // -b, domain=(None, NONZERO)),
    Case("remainder", lambda lib, a, b: a % b, domain=(None, NONZERO), op="remainder"),
    Case("remainder_negative", lambda lib, a, b: lib.remainder(a, -b), domain=(None, NONZERO)),
    Case("fmod", lambda lib, a, b: lib.fmod(a, b), domain=(None, NONZERO), op="fmod"),
    Case("fmod_negative", lambda lib, a, b: lib.fmod(a, -b), domain=(None, NONZERO)),
    Case("pow", lambda lib, a, b: a ** b, op="pow"),
    Case("float_power", lambda lib, a, b: lib.float_power(a, b), op="float_power"),
    Case("atan2", lambda lib, a, b: lib.atan2(a, b), op="atan2"),
    Case("hypot", lambda lib, a, b: lib.hypot(a, b), op="hypot"),
    Case("logaddexp", lambda lib, a, b: lib.logaddexp(a, b), op="logaddexp"),
    Case("logaddexp2", lambda lib, a, b: lib.logaddexp2(a, b), op="logaddexp2"),
    Case("maximum", lambda lib, a, b: lib.maximum(a, b), op="maximum"),
    Case("minimum", lambda lib, a, b: lib.minimum(a, b), op="minimum"),
    Case("fmax", lambda lib, a, b: lib.fmax(a, b), op="fmax"),
    Case("fmin", lambda lib, a, b: lib.fmin(a, b), op="fmin"),
    Case("xlogy", lambda lib, a, b: lib.xlogy(a, b), op="xlogy"),
    Case("copysign", lambda lib, a, b: lib.copysign(a, b), op="copysign"),
    Case("nextafter", lambda lib, a, b: lib.nextafter(a, b), op="nextafter"),
    Case("ldexp", lambda lib, a, b: lib.ldexp(a, b)),  # its out= forms: tests/test_special.py
    Case("special_xlog1py", lambda lib, a, b: lib.special.xlog1py(a, b)),
    Case("special_zeta", lambda lib, a, b: lib.special.zeta(a, b)),
    Case("heaviside", lambda lib, a, b: lib.heaviside(a, b), op="heaviside"),
    Case("eq", lambda lib, a, b: a == b, op="eq"),
    Case("ne", lambda lib, a, b: a != b, op="ne"),
    Case("lt", lambda lib, a, b: a < b, op="lt"),
    Case("le", lambda lib, a, b: a <= b, op="le"),
    Case("gt", lambda lib, a, b: a > b, op="gt"),
    Case("ge", lambda lib, a, b: a >= b, op="ge"),
    Case("logical_and", lambda lib, a, b: lib.logical_and(a, b), op="logical_and"),
    Case("logical_or", lambda lib, a, b: lib.logical_or(a, b), op="logical_or"),
    Case("logical_xor", lambda lib, a, b: lib.logical_xor(a, b), op="logical_xor"),
    Case("and", lambda lib, a, b: a & b, op="bitwise_and"),
    Case("or", lambda lib, a, b: a | b, op="bitwise_or"),
    Case("xor", lambda lib, a, b: a ^ b, op="bitwise_xor"),
    Case("lshift", lambda lib, a, b: a << b, domain=(None, (-3.0, 70.0)), op="bitwise_left_shift"),
    Case("rshift", lambda lib, a, b: a >> b, domain=(None, (-3.0, 70.0)), op="bitwise_right_shift"),
    Case("clamp", lambda lib, a, b: lib.clamp(a, b, b + 1)),
    Case("clamp_min", lambda lib, a, b: lib.clamp(a, min=b), op="clamp_min"),
    Case("clamp_max", lambda lib, a, b: lib.clamp(a, max=b), op="clamp_max"),
    Case("where", lambda lib, a, b: lib.where(a != 0, a, b)),
    Case("where_method", lambda lib, a, b: a.where(b != 0, b)),
    Case("lerp", lambda lib, a, b: lib.lerp(a, b, 0.3), op="lerp", kw={"weight": 0.3}),
    Case("lerp_large_weight", lambda lib, a, b: lib.lerp(a, b, 0.8)),
    Case("lerp_tensor", lambda lib, a, b: lib.lerp(a, b, b * 0 + 0.75)),
    Case("isclose", lambda lib, a, b: lib.isclose(a, b, rtol=0.5, atol=1.0)),
    Case("isclose_equal_nan", lambda lib, a, b: lib.isclose(a, b, equal_nan=True)),
    Case("isclose_self", lambda lib, a, b: lib.isclose(a, a.clone())),
    Case("equal", lambda lib, a, b: lib.equal(a, b)),
    Case("equal_self", lambda lib, a, b: lib.equal(a, a.clone())),
    Case("allclose", lambda lib, a, b: lib.allclose(a, b, rtol=2.0, atol=2.0)),
]

SCALARS = (2, -3, 0, 2.5, True, False, float("inf"), float("nan"), 1j)


def _pair(shape, dtype, layout, seed, domain):
    low, high = domain if domain is not None else (-3.0, 3.0)
    return make_pair(shape, dtype, layout, seed=seed, special=True, low=low, high=high)


_fresh_pair = _pair
_pair = functools.lru_cache(maxsize=None)(_pair)  # inputs are reused: only in-place tests (fresh) write


def _domains(case, n):
    return case.domain if case.domain is not None else (None,) * n


def _ids(cases):
    return [f"{c.name}{'_' + '_'.join(f'{k}{v}' for k, v in c.kw.items()) if c.kw and c.op == c.name else ''}"
            for c in cases]


def _torch_exc(e):
    return RuntimeError if type(e).__module__.startswith("torch") else type(e)


# -- values: dtypes x layouts x shapes -----------------------------------------------------------------------

@pytest.mark.parametrize("case", UNARY, ids=_ids(UNARY))
def test_unary(case):
    (dom,) = _domains(case, 1)
    for dtype in case.dtypes:
        for layout in LAYOUTS:
            check(case.fn, _pair((3, 4), dtype, layout, 3, dom))
        for shape in ((), (0,), (2, 0, 3), (2, 3, 4)):
            check(case.fn, _pair(shape, dtype, "contiguous", 4, dom))


SHAPES = [((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((3,), ()), ((0, 4), (4,)), ((), ())]


@pytest.mark.parametrize("case", BINARY, ids=_ids(BINARY))
def test_binary(case):
    da, db = _domains(case, 2)
    for dtype in case.dtypes:
        for layout in LAYOUTS:  # both operands in every layout
            check(case.fn, _pair((3, 4), dtype, layout, 1, da), _pair((3, 4), dtype, layout, 2, db))
        for sa, sb in SHAPES:
            check(case.fn, _pair(sa, dtype, "contiguous", 1, da), _pair(sb, dtype, "expanded", 2, db))


VARIANTS = {"add_alpha", "sub_alpha", "div_trunc_negative", "floordiv", "floordiv_negative", "remainder_negative",
            "fmod_negative", "lerp_large_weight", "isclose_equal_nan", "isclose_self", "equal_self", "where_method"}
PROMOTING = [c for c in BINARY if c.name not in VARIANTS]  # variants promote as their base line does


@pytest.mark.parametrize("case", PROMOTING, ids=_ids(PROMOTING))
def test_binary_mixed_dtypes(case):
    """Every pair of dtypes (promotion), with a dimensioned and a 0-d second operand."""
    da, db = _domains(case, 2)
    for i, ta in enumerate(DTYPES):
        for tb in DTYPES:
            check(case.fn, _pair((2, 3), ta, "contiguous", 5, da), _pair((2, 3), tb, "contiguous", 6, db))
            _check_complex32(case.fn, _pair((3,), ta, "contiguous", 7, da), _pair((), tb, "contiguous", 8, db))


def _check_complex32(fn, *pairs):
    """check(), except where torch computes in complex32 (a float16 tensor meets a complex 0-d tensor
    or number): we have no complex32 and must say so with NotImplementedError."""
    try:
        r = fn(torch, *(p[0] for p in pairs))
    except Exception:
        r = None
    if isinstance(r, torch.Tensor) and r.dtype == torch.complex32:
        with pytest.raises(NotImplementedError, match="complex32"):
            fn(vt, *(p[1] for p in pairs))
    else:
        check(fn, *pairs)


@pytest.mark.parametrize("case", BINARY, ids=_ids(BINARY))
def test_binary_scalar(case):
    """Python numbers in either position (torch refuses some positions with TypeError: so must we)."""
    da, _ = _domains(case, 2)
    for dtype in case.dtypes:
        for shape, scalars in (((3, 4), SCALARS), ((), (2.5, True, 1j))):
            x = _pair(shape, dtype, "contiguous", 1, da)
            for s in scalars:
                _check_complex32(lambda lib, t: case.fn(lib, t, s), x)
                _check_complex32(lambda lib, t: case.fn(lib, s, t), x)


# -- in-place and out= -----------------------------------------------------------------------------------------
INPLACE_UNARY = [c for c in UNARY if c.op is not None]
INPLACE_BINARY = [c for c in BINARY if c.op is not None]


def _check_inplace(method, kw, a, *others):
    """x.method(*others, **kw) in both libraries: the same values written into x and x returned, or
    the same exception type with x unchanged."""
    (ta, va) = a
    t_others = [o[0] for o in others]
    v_others = [o[1] for o in others]
    if not hasattr(ta, method):
        assert not hasattr(va, method), f"torch has no Tensor.{method}, we do"
        return
    before, version = to_numpy(va), va._version.value
    try:
        getattr(ta, method)(*t_others, **kw)
    except Exception as e:
        with pytest.raises(_torch_exc(e)):
            getattr(va, method)(*v_others, **kw)
        assert to_numpy(va).tobytes() == before.tobytes(), f"{method} failed but changed its input"
        return
    got = getattr(va, method)(*v_others, **kw)
    assert got is va, f"{method} must return self"
    assert va._version.value > version, f"{method} must bump the version counter"
    assert_same(va, ta)


@pytest.mark.parametrize("case", INPLACE_UNARY, ids=_ids(INPLACE_UNARY))
def test_unary_inplace(case):
    (dom,) = _domains(case, 1)
    for dtype in case.dtypes:
        for layout in ("contiguous", "transposed", "expanded"):  # expanded: torch refuses overlapping writes
            _check_inplace(case.op + "_", case.kw, _fresh_pair((3, 4), dtype, layout, 3, dom))


@pytest.mark.parametrize("case", INPLACE_BINARY, ids=_ids(INPLACE_BINARY))
def test_binary_inplace(case):
    da, db = _domains(case, 2)
    for dtype in case.dtypes:
        for other in ("bool", "uint8", "int64", "float16", "float32", "float64", "complex64"):  # castable to self?
            _check_inplace(case.op + "_", case.kw, _fresh_pair((3, 4), dtype, "transposed", 1, da),
                           _fresh_pair((4,), other, "contiguous", 2, db))
        # broadcasting may not grow self; overlapping self is refused; both leave self unchanged
        _check_inplace(case.op + "_", case.kw, _fresh_pair((4,), dtype, "contiguous", 1, da),
                       _fresh_pair((3, 4), dtype, "contiguous", 2, db))
        _check_inplace(case.op + "_", case.kw, _fresh_pair((3, 4), dtype, "expanded", 1, da),
                       _fresh_pair((3, 4), dtype, "contiguous", 2, db))


OUT_DTYPES = ("bool", "int32", "float16", "float64", "complex128")


def _natural_tol(fn, *pairs):
    """Tolerance of the op's own result dtype: an out= of a wider dtype holds no more precision."""
    try:
        r = fn(torch, *(p[0] for p in pairs))
    except Exception:
        return {}
    rtol, atol = _tol(str(r.dtype).replace("torch.", ""))
    return {"rtol": rtol, "atol": atol} if rtol else {}


def _out_call(op, kw, out_dtype, out_shape):
    def fn(lib, *xs):
        out = lib.empty(out_shape, dtype=getattr(lib, out_dtype))
        got = getattr(lib, op)(*xs, out=out, **kw)
        assert got is out
        return out
    return fn


@pytest.mark.parametrize("case", INPLACE_UNARY, ids=_ids(INPLACE_UNARY))
def test_unary_out(case):
    (dom,) = _domains(case, 1)
    for dtype in case.dtypes:
        x = _pair((3, 4), dtype, "transposed", 3, dom)
        tol = _natural_tol(case.fn, x)
        for out_dtype in OUT_DTYPES:
            check(_out_call(case.op, case.kw, out_dtype, (0,)), x, **tol)  # empty out: resized silently
        check(_out_call(case.op, case.kw, dtype, (3, 4)), x)


@pytest.mark.parametrize("case", INPLACE_BINARY, ids=_ids(INPLACE_BINARY))
def test_binary_out(case):
    da, db = _domains(case, 2)
    for dtype in case.dtypes:
        a, b = _pair((3, 4), dtype, "contiguous", 1, da), _pair((4,), dtype, "strided", 2, db)
        tol = _natural_tol(case.fn, a, b)
        for out_dtype in OUT_DTYPES:
            check(_out_call(case.op, case.kw, out_dtype, (0,)), a, b, **tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # both warn that a non-empty out is resized
            check(_out_call(case.op, case.kw, dtype, (5,)), a, b)


def test_out_resize_warns():
    a = vt.ones(3, 4)
    out = vt.empty(5)
    with pytest.warns(UserWarning, match="resized"):
        vt.add(a, a, out=out)
    assert tuple(out.shape) == (3, 4) and out.tolist() == [[2.0] * 4] * 3


# -- errors ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", BINARY, ids=_ids(BINARY))
def test_binary_shape_mismatch(case):
    """Operands that don't broadcast: torch's RuntimeError, whose message names the mismatching sizes."""
    a, b = _pair((2, 3), "float32", "contiguous", 1, None), _pair((4,), "float32", "contiguous", 2, None)
    check(case.fn, a, b)  # the same exception type (or, for equal/allclose, the same answer)
    try:
        case.fn(torch, a[0], b[0])
    except RuntimeError as e:
        with pytest.raises(RuntimeError) as ours:
            case.fn(vt, a[1], b[1])
        assert str(ours.value) == str(e)


@pytest.mark.parametrize("op,args,kw", [
    ("div", (2,), {"rounding_mode": "floor"}), ("div", (2,), {"rounding_mode": "trunc"}),
    ("floor_divide", (2,), {}), ("remainder", (2,), {}), ("fmod", (2,), {}),
])
def test_integer_division_by_zero(op, args, kw):
    for dtype in ("uint8", "int8", "int32", "int64"):
        a = vt.tensor([5, 6], dtype=getattr(vt, dtype))
        zero = vt.tensor([1, 0], dtype=getattr(vt, dtype))
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(vt, op)(a, zero, **kw)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(vt, op)(a, 0, **kw)
        before = a.tolist()
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(a, op + "_")(zero, **kw)
        assert a.tolist() == before


@pytest.mark.parametrize("fn,exc,match", [
    (lambda lib: lib.pow(lib.tensor([2, 3]), -1), RuntimeError, "Integers to negative integer powers"),
    (lambda lib: lib.tensor([True]) - lib.tensor([True]), RuntimeError, "two bool tensors"),
    (lambda lib: lib.tensor([True]) - 1, RuntimeError, "with a bool tensor"),
    (lambda lib: 1 - lib.tensor([True]), RuntimeError, "with a bool tensor"),
    (lambda lib: -lib.tensor([True]), RuntimeError, "Negation"),
    (lambda lib: lib.div(lib.tensor([True]), lib.tensor([True]), rounding_mode="floor"), NotImplementedError,
     "div_floor_cpu"),
    (lambda lib: lib.div(lib.ones(2), 2, rounding_mode="round"), RuntimeError, "rounding_mode"),
    (lambda lib: lib.add(lib.tensor([1]), 1, alpha=0.5), RuntimeError, "alpha must not be a floating"),
    (lambda lib: lib.add(lib.ones(1), 1, alpha=1j), RuntimeError, "alpha must not be a complex"),
    (lambda lib: lib.add(lib.ones(1), 1, alpha=True), RuntimeError, "Boolean alpha"),
    (lambda lib: lib.add(lib.tensor([1], dtype=lib.int8), 1, alpha=1000), RuntimeError, "int8_t without overflow"),
    (lambda lib: lib.clamp(lib.ones(2)), RuntimeError, "At least one of 'min' or 'max'"),
    (lambda lib: lib.clamp(lib.tensor([1], dtype=lib.int8), 0, 300), RuntimeError, "without overflow"),
    (lambda lib: lib.where(lib.ones(2), lib.ones(2), lib.ones(2)), RuntimeError, "boolean tensor"),
    (lambda lib: lib.where(1, lib.ones(2), lib.ones(2)), TypeError, ""),
    (lambda lib: lib.lerp(lib.ones(2), lib.ones(2, dtype=lib.float64), 0.5), RuntimeError, "expected dtype float"),
    (lambda lib: lib.heaviside(lib.ones(2), lib.ones(2, dtype=lib.float64)), RuntimeError, "different dtypes"),
    (lambda lib: lib.isclose(lib.ones(2), lib.ones(2, dtype=lib.float64)), RuntimeError, "Float did not match"),
    (lambda lib: lib.isclose(lib.ones(2), lib.ones(2), rtol=-1), RuntimeError, "rtol must be greater"),
    (lambda lib: lib.float_power(lib.ones(2), 2, out=lib.empty(2)), RuntimeError, "requires dtype Double"),
    (lambda lib: lib.ones(2).float_power_(2), RuntimeError, "requires dtype Double"),
    (lambda lib: lib.ones(2, dtype=lib.complex64).abs_(), RuntimeError, "In-place abs"),
    (lambda lib: lib.exp(3), TypeError, "must be Tensor"),
    (lambda lib: lib.maximum(lib.ones(2), 1), TypeError, "must be Tensor"),
    (lambda lib: lib.add(lib.ones(2), "a"), TypeError, "must be Tensor"),
    (lambda lib: lib.tensor([1, 2]).exp_(), RuntimeError, "can't be cast to the desired output type Long"),
    (lambda lib: lib.ones(2) + "a", TypeError, "unsupported operand"),
    (lambda lib: bool(lib.ones(2)), RuntimeError, "more than one value is ambiguous"),
    (lambda lib: bool(lib.ones(0)), RuntimeError, "no values is ambiguous"),
    (lambda lib: lib.sign(lib.ones(2, dtype=lib.complex64)), NotImplementedError, "torch.sgn"),
    (lambda lib: lib.lt(lib.ones(2, dtype=lib.complex64), 1), NotImplementedError, "lt_cpu"),
    (lambda lib: lib.bitwise_and(lib.ones(2), 1), NotImplementedError, "bitwise_and_cpu"),
    (lambda lib: lib.ones(2).expand(3, 2).add_(1), RuntimeError, "more than one element of the written-to tensor"),
    (lambda lib: lib.lerp(lib.ones(2), lib.ones(2), 1e50), RuntimeError, "without overflow"),
    (lambda lib: lib.lerp(lib.ones(2), lib.ones(2), 1j), RuntimeError, "without overflow"),
    (lambda lib: lib.logit(lib.ones(2), eps=1e50), RuntimeError, "without overflow"),
    (lambda lib: lib.where(lib.ones(2) > 0, lib.ones(2, dtype=lib.int8), 1000), RuntimeError, "without overflow"),
])
def test_errors(fn, exc, match):
    """Exception type and message text match torch's."""
    with pytest.raises(exc, match=match) as theirs:
        fn(torch)
    with pytest.raises(exc) as ours:
        fn(vt)
    assert str(ours.value) == str(theirs.value) or exc is TypeError


SCALAR_RANGE_OPS = {
    "add": lambda lib, t, s: t + s, "rsub": lambda lib, t, s: s - t, "mul": lambda lib, t, s: t * s,
    "eq": lambda lib, t, s: t == s, "lt": lambda lib, t, s: t < s, "and": lambda lib, t, s: t & s,
    "mod": lambda lib, t, s: t % s, "fmod": lambda lib, t, s: lib.fmod(t, s), "rshift": lambda lib, t, s: t >> s,
    "floordiv": lambda lib, t, s: lib.div(t, s, rounding_mode="floor"), "rtruediv": lambda lib, t, s: s / t,
    "pow": lambda lib, t, s: t ** s, "rpow": lambda lib, t, s: s ** t,
    "alpha": lambda lib, t, s: lib.add(t, t, alpha=s),
    "clamp": lambda lib, t, s: lib.clamp(t, max=s), "where": lambda lib, t, s: lib.where(t != 0, t, s),
}


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int64", "float16", "float32"])
def test_scalar_range(dtype):
    """Numbers that don't fit the tensor's dtype: integer ops wrap them, checked conversions (alpha,
    exponents, clamp bounds, where's values) raise, ints beyond int64/uint64 are OverflowError."""
    x = make_pair((5,), dtype, seed=3)
    # (bool with 2 ** 63: torch refuses to promote Bool and UInt64; we compute in int64, a known gap)
    big = (2 ** 63,) if dtype != "bool" else ()
    for s in (1000, -300, -255, 2 ** 40, 2 ** 64, -2 ** 63 - 1, 1e50, float("nan")) + big:
        for fn in SCALAR_RANGE_OPS.values():
            check(lambda lib, t: fn(lib, t, s), x)


def test_bool_of_single_element():
    for v in (0, 1, 2.5, True):
        assert bool(vt.tensor([v])) == bool(torch.tensor([v]))
        assert bool(vt.tensor(v)) == bool(torch.tensor(v))


def test_operators_return_notimplemented():
    class Other:
        def __radd__(self, t):
            return "radd"

        def __rmul__(self, t):
            return "rmul"

        def __eq__(self, t):
            return "eq"
    x = vt.ones(2)
    assert x + Other() == "radd" and x * Other() == "rmul"
    assert (x == None) is False  # noqa: E711  (torch: identity comparison)
    assert (x != "abc") is True
    for op in ("__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__and__",
               "__or__", "__xor__", "__lshift__", "__rshift__", "__lt__", "__radd__", "__rsub__", "__iadd__"):
        assert getattr(x, op)(object()) is NotImplemented, op


def test_numpy_scalars_are_numbers():
    check(lambda lib, t: t * np.float32(2.5), make_pair((3,), "float16"))
    check(lambda lib, t: t + np.int64(3), make_pair((3,), "int8"))
    check(lambda lib, t: lib.add(t, np.float64(0.5)), make_pair((3,), "int32"))


def test_positive_is_identity():
    x = vt.ones(2)
    assert vt.positive(x) is x


def test_where_uint8_condition_warns():
    cond = vt.tensor([1, 0], dtype=vt.uint8)
    with pytest.warns(UserWarning, match="uint8 condition"):
        got = vt.where(cond, vt.ones(2), vt.zeros(2))
    assert got.tolist() == [1.0, 0.0]


def test_add_of_numbers_only():
    for fn in (lambda lib: lib.add(1, 2), lambda lib: lib.add(1, 2.5), lambda lib: lib.mul(True, 1.5),
               lambda lib: lib.div(1, 2), lambda lib: lib.floor_divide(5, 2), lambda lib: lib.sub(1, 2, alpha=2)):
        check(fn)


def test_aliases():
    x = make_pair((3, 4), "float32", seed=1, low=-0.9, high=0.9)
    y = make_pair((3, 4), "float32", seed=2, low=0.5, high=2.0)
    for alias, target in (("subtract", "sub"), ("multiply", "mul"), ("divide", "div"), ("true_divide", "div"),
                          ("negative", "neg"), ("absolute", "abs"), ("fix", "trunc"), ("clip", "clamp"),
                          ("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"), ("arcsinh", "asinh"),
                          ("arccosh", "acosh"), ("arctanh", "atanh"), ("arctan2", "atan2"), ("greater", "gt"),
                          ("greater_equal", "ge"), ("less", "lt"), ("less_equal", "le"),
                          ("not_equal", "ne")):
        arity = 2 if alias in ("subtract", "multiply", "divide", "true_divide", "arctan2", "greater",
                               "greater_equal", "less", "less_equal", "not_equal") else 1
        ins = (x, y)[:arity] if alias != "arccosh" else (y,)
        kw = {"min": -0.5, "max": 0.5} if alias == "clip" else {}
        check(lambda lib, *a: getattr(lib, alias)(*a, **kw), *ins)
        check(lambda lib, *a: getattr(a[0], alias)(*a[1:], **kw), *ins)
        check(lambda lib, *a: getattr(a[0].clone(), alias + "_")(*a[1:], **kw), *ins)
        assert getattr(vt, alias) is getattr(vt, target) or alias == "true_divide"


def test_method_sets_match_torch():
    """Every function here exists in torch and as a Tensor method and in-place method exactly where torch has them."""
    names = ([c.op for c in UNARY + BINARY if c.op] + [c.name for c in UNARY + BINARY]
             + ["isnan", "isinf", "isfinite", "isreal", "positive", "equal", "allclose", "isclose", "where"]
             + "subtract multiply divide true_divide floor_divide negative absolute fix clip arcsin arccos arctan "
               "arcsinh arccosh arctanh arctan2 greater greater_equal less less_equal not_equal".split())
    for name in sorted(set(names)):
        if not hasattr(torch, name):
            continue
        assert hasattr(vt, name), name
        for attr in (name, name + "_"):
            assert hasattr(torch.Tensor, attr) == hasattr(vt.Tensor, attr), attr
        assert hasattr(torch, name + "_") == hasattr(vt, name + "_"), "torch." + name + "_"


def test_module_inplace_functions():
    check(lambda lib, x: (lib.relu_(x), x)[1], make_pair((3, 4), "float32", seed=1))
    check(lambda lib, x: (lib.sigmoid_(x), x)[1], make_pair((3, 4), "float32", seed=1))
    check(lambda lib, x: (lib.clamp_(x, -1, 1), x)[1], make_pair((3, 4), "float32", seed=1))


def test_erf_accuracy():
    x = np.linspace(-6, 6, 101)
    got = vt.erf(vt.tensor(x)).tolist()
    assert max(abs(g - math.erf(v)) for g, v in zip(got, x)) < 1e-15
    got = vt.erfc(vt.tensor(x)).tolist()
    assert max(abs(g - math.erfc(v)) / max(math.erfc(v), 1e-300) for g, v in zip(got, x)) < 1e-13


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_sgn_complex_gradient(dtype):
    """torch's sgn_backward for complex x: (g - sgn(x)^2 conj(g)) / 2|x|, and 0 where x == 0."""
    values = np.array([1 + 2j, -3 + 0.5j, 0j, 2 - 1j, -0.25 - 4j])
    grads = np.array([0.5 - 1j, 2 + 0j, 1 + 1j, -1 + 3j, 0.25j])
    results = []
    for lib in (torch, vt):
        x = lib.tensor(values, dtype=getattr(lib, dtype), requires_grad=True)
        lib.sgn(x).backward(lib.tensor(grads, dtype=getattr(lib, dtype)))
        results.append(np.asarray(x.grad.tolist()))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
