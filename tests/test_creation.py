"""Creation ops and conversions against torch: one table line per call, comparing values, dtype
and shape (or that both libraries raise the same exception type); error messages compared where
we copy torch's text; memory sharing (from_numpy, as_tensor, numpy()) checked directly."""
import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same, check, make_pair

NP_I32 = np.array([[1, 2], [3, 4]], dtype=np.int32)

TENSOR = [
    lambda lib: lib.tensor(3), lambda lib: lib.tensor(3.5), lambda lib: lib.tensor(True), lambda lib: lib.tensor(1 + 2j),
    lambda lib: lib.tensor([1, 2.0]), lambda lib: lib.tensor([True, 2]), lambda lib: lib.tensor([1, 2j]),
    lambda lib: lib.tensor([True, False]), lambda lib: lib.tensor([[1, 2], [3, 4]]), lambda lib: lib.tensor(((1, 2), (3, 4))),
    lambda lib: lib.tensor([]), lambda lib: lib.tensor([[]]), lambda lib: lib.tensor([[], []]),
    lambda lib: lib.tensor([[], [1]]), lambda lib: lib.tensor(range(5)), lambda lib: lib.tensor([range(3), range(3)]),
    lambda lib: lib.tensor([[[1.5], [2]], [[3], [4]]]), lambda lib: lib.tensor([float("nan"), float("inf")]),
    lambda lib: lib.tensor([lib.tensor(1), lib.tensor(2)]), lambda lib: lib.tensor([lib.tensor([1]), lib.tensor([2])]),
    lambda lib: lib.tensor([lib.tensor(1.5, dtype=lib.float64), 2]), lambda lib: lib.tensor([[lib.tensor(1)], [2]]),
    lambda lib: lib.tensor(NP_I32), lambda lib: lib.tensor(NP_I32.T), lambda lib: lib.tensor(NP_I32[:, ::2]),
    lambda lib: lib.tensor(np.array(5)), lambda lib: lib.tensor(np.float64(1.5)), lambda lib: lib.tensor(np.int16(3)),
    lambda lib: lib.tensor([np.float32(1.5), 2]), lambda lib: lib.tensor([np.float64(1.5), 2]),
    lambda lib: lib.tensor([1, np.int16(3)]), lambda lib: lib.tensor([np.int64(5), 2.5]),
    lambda lib: lib.tensor([NP_I32[0], NP_I32[1]]), lambda lib: lib.tensor([np.array([1, 2], np.float32), [3, 4]]),
    lambda lib: lib.tensor(np.array([1.5, 2.5], np.float16)), lambda lib: lib.tensor(np.array([1 + 2j]), dtype=lib.complex64),
    lambda lib: lib.tensor([1, 2], dtype=lib.float64), lambda lib: lib.tensor([1.7, -1.7], dtype=lib.int32),
    lambda lib: lib.tensor(1.5, dtype=lib.int64), lambda lib: lib.tensor([-1], dtype=lib.uint8),
    lambda lib: lib.tensor(-1, dtype=lib.uint8), lambda lib: lib.tensor([2, 0], dtype=lib.bool),
    lambda lib: lib.tensor(2.5, dtype=lib.bool), lambda lib: lib.tensor([1, 2], dtype=lib.bfloat16),
    lambda lib: lib.tensor([1, 2], dtype=lib.complex64), lambda lib: lib.tensor([1e10], dtype=lib.float16),
    lambda lib: lib.tensor([1e40], dtype=lib.float32), lambda lib: lib.tensor([1.0, 2 ** 70]),
    lambda lib: lib.tensor([2 ** 70], dtype=lib.float32), lambda lib: lib.tensor([-2 ** 63]),
    lambda lib: lib.tensor([[], []], dtype=lib.int64), lambda lib: lib.tensor([1.5, 2.5], requires_grad=True),
    # errors
    lambda lib: lib.tensor([[1, 2], [3]]), lambda lib: lib.tensor([[1, 2], 3]), lambda lib: lib.tensor([1, [2, 3]]),
    lambda lib: lib.tensor([[[1], [2]], [[3], [4, 5]]]), lambda lib: lib.tensor("abc"), lambda lib: lib.tensor(["abc"]),
    lambda lib: lib.tensor([None]), lambda lib: lib.tensor(None), lambda lib: lib.tensor({1: 2}),
    lambda lib: lib.tensor(2 ** 63), lambda lib: lib.tensor([300], dtype=lib.uint8),
    lambda lib: lib.tensor(-129, dtype=lib.int8), lambda lib: lib.tensor([float("nan")], dtype=lib.int64),
    lambda lib: lib.tensor([1e30], dtype=lib.int64), lambda lib: lib.tensor(1 + 2j, dtype=lib.float32),
    lambda lib: lib.tensor([1.5 + 2j, 2], dtype=lib.int64), lambda lib: lib.tensor([1, 2], requires_grad=True),
    lambda lib: lib.tensor([1, 2], dtype="float32"), lambda lib: lib.tensor(NP_I32[:, ::-1]),
    lambda lib: lib.tensor(np.array(["a"])), lambda lib: lib.tensor(iter([1, 2])),
    lambda lib: lib.tensor([lib.tensor([1, 2]), lib.tensor([3, 4])]),
]

FACTORIES = [
    lambda lib: lib.zeros(2, 3), lambda lib: lib.zeros((2, 3)), lambda lib: lib.zeros([2, 3]),
    lambda lib: lib.zeros(lib.Size([2, 3])), lambda lib: lib.zeros(size=(2, 3)), lambda lib: lib.zeros(()),
    lambda lib: lib.zeros(lib.tensor(3)), lambda lib: lib.zeros(np.int64(3)), lambda lib: lib.zeros(0, 4),
    lambda lib: lib.ones(2, 3, dtype=lib.int32), lambda lib: lib.ones(3, dtype=lib.bool),
    lambda lib: lib.ones(2, dtype=lib.complex64), lambda lib: lib.ones(size=[2]),
    lambda lib: lib.zeros(2, requires_grad=True), lambda lib: lib.empty(2, 3).shape,
    lambda lib: repr(lib.empty(0, dtype=lib.int16).dtype), lambda lib: lib.empty(size=(4,)).shape,
    lambda lib: lib.full((2,), 1), lambda lib: lib.full((2,), True), lambda lib: lib.full((2,), 1.5),
    lambda lib: lib.full((2,), 1 + 1j), lambda lib: lib.full([2, 2], 1.5, dtype=lib.int64),
    lambda lib: lib.full((2,), -255, dtype=lib.uint8), lambda lib: lib.full((2,), 2 ** 40, dtype=lib.bfloat16),
    lambda lib: lib.full((2,), float("inf"), dtype=lib.float16), lambda lib: lib.full((2,), float("nan"), dtype=lib.bool),
    lambda lib: lib.full((2,), 1 + 0j, dtype=lib.float64), lambda lib: lib.full((2,), 5, dtype=lib.complex64),
    lambda lib: lib.full((2,), lib.tensor(3)), lambda lib: lib.full((2,), lib.tensor(3.5, dtype=lib.float64)),
    lambda lib: lib.full((), 1), lambda lib: lib.full((2,), np.float64(2.5)),
    lambda lib: lib.scalar_tensor(3), lambda lib: lib.scalar_tensor(True),
    lambda lib: lib.empty_strided((2, 3), (1, 2)).stride(), lambda lib: lib.empty_strided((2, 3), (1, 2)).shape,
    # out=
    lambda lib: lib.zeros(2, 3, out=lib.empty(6, dtype=lib.int64)),
    lambda lib: lib.ones(2, 3, out=lib.empty(0, dtype=lib.float64)),
    lambda lib: lib.full((2,), 1.5, out=lib.empty(2, dtype=lib.int64)),
    lambda lib: lib.full((2,), 7, out=lib.empty(2, dtype=lib.float64)),
    lambda lib: lib.empty(2, 3, out=lib.empty(1)).shape,
    lambda lib: lib.zeros(2, out=lib.empty(2, dtype=lib.int64), dtype=lib.float32),
    # errors
    lambda lib: lib.zeros(2, -1), lambda lib: lib.empty(-1), lambda lib: lib.ones(2, -3), lambda lib: lib.full((-1,), 2),
    lambda lib: lib.zeros(2.5), lambda lib: lib.zeros((2, 2.5)), lambda lib: lib.zeros((2,), (3,)), lambda lib: lib.zeros(),
    lambda lib: lib.zeros(2, dtype=lib.int64, requires_grad=True), lambda lib: lib.full(2, 1),
    lambda lib: lib.full((2,), "a"), lambda lib: lib.full((2,), None), lambda lib: lib.full((2,), lib.tensor([3])),
    lambda lib: lib.full((2,), 300, dtype=lib.uint8), lambda lib: lib.full((2,), -256, dtype=lib.uint8),
    lambda lib: lib.full((2,), float("nan"), dtype=lib.int64), lambda lib: lib.full((2,), 1 + 1j, dtype=lib.float32),
    lambda lib: lib.full((2,), 2 ** 40, dtype=lib.int32), lambda lib: lib.full((2,), 1e40, dtype=lib.float32),
    lambda lib: lib.full((2,), 70000, dtype=lib.float16), lambda lib: lib.full((2,), 2 ** 63),
    lambda lib: lib.full((2,), 2 ** 64),
]

RANGES = [
    lambda lib: lib.arange(5), lambda lib: lib.arange(5.), lambda lib: lib.arange(1, 4), lambda lib: lib.arange(1, 4, 0.5),
    lambda lib: lib.arange(0, 1, 0.1), lambda lib: lib.arange(0, 1, 0.3), lambda lib: lib.arange(10, 0, -3),
    lambda lib: lib.arange(5, 5), lambda lib: lib.arange(True), lambda lib: lib.arange(lib.tensor(3)),
    lambda lib: lib.arange(lib.tensor(3.)), lambda lib: lib.arange(5, dtype=lib.float64),
    lambda lib: lib.arange(0.5, 3, dtype=lib.int64), lambda lib: lib.arange(-1.5, 3, dtype=lib.int64),
    lambda lib: lib.arange(0, 300, 1, dtype=lib.uint8), lambda lib: lib.arange(5, dtype=lib.float16),
    lambda lib: lib.arange(7, dtype=lib.bfloat16), lambda lib: lib.arange(0, 1, 1 / 3),
    lambda lib: lib.arange(1, 2.5, 0.5, dtype=lib.int32), lambda lib: lib.arange(0., 10, 3, requires_grad=True),
    lambda lib: lib.arange(np.int64(3)), lambda lib: lib.arange(np.float32(3)), lambda lib: lib.arange(end=5),
    lambda lib: lib.arange(start=1, end=5), lambda lib: lib.arange(-5, 5, 0.013), lambda lib: lib.arange(2 ** 40, 2 ** 40 + 5),
    lambda lib: lib.arange(0, 5, out=lib.empty(0, dtype=lib.float64)),
    lambda lib: lib.linspace(0, 1, 5), lambda lib: lib.linspace(0, 1, 1), lambda lib: lib.linspace(0, 1, 0),
    lambda lib: lib.linspace(0, 10, 5, dtype=lib.int64), lambda lib: lib.linspace(0, 10, 4, dtype=lib.int64),
    lambda lib: lib.linspace(10, 0, 4, dtype=lib.int64), lambda lib: lib.linspace(-5, 5, 1001, dtype=lib.int64),
    lambda lib: lib.linspace(0, 1, 7), lambda lib: lib.linspace(-1e-3, 1e-3, 7), lambda lib: lib.linspace(0, 3, 100),
    lambda lib: lib.linspace(0, 1, 7, dtype=lib.float64), lambda lib: lib.linspace(0.1, 0.7, 13, dtype=lib.float16),
    lambda lib: lib.linspace(0.1, 0.7, 13, dtype=lib.bfloat16), lambda lib: lib.linspace(1 + 1j, 2 + 2j, 3),
    lambda lib: lib.linspace(0, 1, 3, dtype=lib.complex64), lambda lib: lib.linspace(lib.tensor(0), lib.tensor(1), 3),
    lambda lib: lib.linspace(0, 1, lib.tensor(3)), lambda lib: lib.linspace(0, 10, 3, out=lib.empty(0, dtype=lib.int32)),
    lambda lib: lib.logspace(0, 2, 3), lambda lib: lib.logspace(0, 2, 3, base=2), lambda lib: lib.logspace(0, 2, 3, 2),
    lambda lib: lib.logspace(0, 2, 3, dtype=lib.int64), lambda lib: lib.logspace(-1, 2, 4, dtype=lib.int64),
    lambda lib: lib.logspace(-5, 5, 101, dtype=lib.int64), lambda lib: lib.logspace(0, 3, 100, base=2.5),
    lambda lib: lib.logspace(0.1, 0.7, 13, dtype=lib.float16), lambda lib: lib.logspace(0, 1, 1),
    lambda lib: lib.logspace(0.5, 2, 1, dtype=lib.int64), lambda lib: lib.logspace(0, 1, 0),
    lambda lib: lib.logspace(-3, 3, 77, dtype=lib.float64), lambda lib: lib.logspace(0, 2, 3, dtype=lib.complex64),
    lambda lib: lib.eye(3), lambda lib: lib.eye(2, 3), lambda lib: lib.eye(0), lambda lib: lib.eye(3, dtype=lib.int64),
    lambda lib: lib.eye(3, dtype=lib.bool), lambda lib: lib.eye(n=2, m=3), lambda lib: lib.eye(2, 3, out=lib.empty(1)),
    # errors
    lambda lib: lib.arange(0, 10, -1), lambda lib: lib.arange(0, 10, 0), lambda lib: lib.arange(5, 0),
    lambda lib: lib.arange(5, dtype=lib.bool), lambda lib: lib.arange(5, dtype=lib.complex64), lambda lib: lib.arange(1e20),
    lambda lib: lib.arange(float("nan")), lambda lib: lib.arange(float("inf")), lambda lib: lib.arange(3, "a"),
    lambda lib: lib.arange(0, 10, 3, requires_grad=True), lambda lib: lib.linspace(0, 1, -1),
    lambda lib: lib.linspace(0, 1, 2.5), lambda lib: lib.linspace(0, 1), lambda lib: lib.eye(-1), lambda lib: lib.eye(2, -1),
    lambda lib: lib.eye(3.0),
]

_T = np.arange(6.0).reshape(2, 3)


def _like_inputs(lib):
    base = lib.tensor(_T, dtype=lib.float32)
    return [base, base.T, base[:, ::2], base[:1].expand(4, 3), lib.tensor(_T.astype(np.int64)), lib.zeros(0, 3)]


LIKES = [
    lambda lib, x: lib.zeros_like(x), lambda lib, x: lib.ones_like(x), lambda lib, x: lib.full_like(x, 2.7),
    lambda lib, x: lib.full_like(x, 7, dtype=lib.int32), lambda lib, x: lib.empty_like(x).shape,
    lambda lib, x: lib.zeros_like(x, dtype=lib.float64), lambda lib, x: lib.ones_like(x, requires_grad=True),
    lambda lib, x: x.new_zeros(3), lambda lib, x: x.new_zeros((3, 2)), lambda lib, x: x.new_ones(2, 3),
    lambda lib, x: x.new_ones(size=(2, 3)), lambda lib, x: x.new_full((3,), 2.5), lambda lib, x: repr(x.new_empty(3).dtype),
    lambda lib, x: repr(x.new_empty(3, dtype=lib.int16).dtype), lambda lib, x: x.new_tensor([1.5, 2]),
    lambda lib, x: x.new_tensor([1.5, 2], dtype=lib.float64), lambda lib, x: x.new_tensor(np.array([1.5])),
    lambda lib, x: x.new_empty_strided((2, 3), (1, 2)).stride(), lambda lib, x: x.new_zeros(3, dtype=lib.int64),
    lambda lib, x: x.new_full((-1,), 2), lambda lib, x: x.new_empty((-1,)),
]

CONVERSIONS = [
    lambda lib, x: x.to(lib.int64), lambda lib, x: x.to("cpu", lib.int64), lambda lib, x: x.to("cpu", dtype=lib.int64),
    lambda lib, x: x.to(dtype=lib.float64), lambda lib, x: x.to(lib.tensor([1])), lambda lib, x: x.to(),
    lambda lib, x: x.to(None), lambda lib, x: x.to(lib.device("cpu")), lambda lib, x: x.to(lib.float32, copy=True),
    lambda lib, x: x.to(lib.float32, False, True), lambda lib, x: x.to("cpu", lib.float32, False, True),
    lambda lib, x: x.to(device="cpu", copy=True, non_blocking=True), lambda lib, x: x.cpu(),
    lambda lib, x: x.float(), lambda lib, x: x.double(), lambda lib, x: x.half(), lambda lib, x: x.bfloat16(),
    lambda lib, x: x.int(), lambda lib, x: x.long(), lambda lib, x: x.short(), lambda lib, x: x.char(),
    lambda lib, x: x.byte(), lambda lib, x: x.bool(), lambda lib, x: x.cfloat(), lambda lib, x: x.cdouble(),
    lambda lib, x: x.type(), lambda lib, x: x.type(lib.float64), lambda lib, x: x.type("torch.DoubleTensor"),
    lambda lib, x: x.type("torch.IntTensor"), lambda lib, x: x.type_as(lib.tensor([1])), lambda lib, x: x.tolist(),
    lambda lib, x: x.clone(), lambda lib, x: x.contiguous(),
    # errors
    lambda lib, x: x.to(lib.tensor([1]), lib.float64), lambda lib, x: x.to(lib.float64, lib.int64),
    lambda lib, x: x.to("foo"), lambda lib, x: x.to(lib.float64, requires_grad=True), lambda lib, x: x.type("float"),
    lambda lib, x: x.type(np.float32), lambda lib, x: x.item(), lambda lib, x: float(x), lambda lib, x: int(x),
    lambda lib, x: complex(x), lambda lib, x: [1, 2][x],
]

TO_NUMPY = [  # torch refuses bfloat16 here; we give an ml_dtypes.bfloat16 array (tested below)
    lambda lib, x: x.numpy().tolist(), lambda lib, x: np.asarray(x).tolist(), lambda lib, x: x.__array__().shape,
    lambda lib, x: np.asarray(x, dtype=np.float64).dtype == np.float64, lambda lib, x: x.numpy(force=True).tolist(),
]

SCALAR_CONVERSIONS = [  # (data, dtype name): item(), tolist(), float(), int(), complex(), index
    ([[3]], "int64"), (2.7, "float32"), (-2.7, "float64"), (True, "bool"), (3, "uint8"), (1 + 2j, "complex64"),
    (2.5, "bfloat16"), (2.5, "float16"), ([1.5], "float32"), (float("nan"), "float32"), (float("inf"), "float32"),
    (7, "int32"),
]


@pytest.mark.parametrize("fn", TENSOR)
def test_tensor(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(fn)


@pytest.mark.parametrize("fn", FACTORIES)
def test_factories(fn):
    check(fn)


@pytest.mark.parametrize("fn", RANGES)
def test_ranges(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(fn)


@pytest.mark.parametrize("fn", LIKES)
def test_like_and_new(fn):
    for t_in, v_in in zip(_like_inputs(torch), _like_inputs(vt)):
        check(fn, (t_in, v_in), check_stride=True)


@pytest.mark.parametrize("fn", CONVERSIONS)
def test_conversions(fn):
    for dtype in ("float32", "int64", "bfloat16", "complex64", "bool"):
        for layout in ("contiguous", "transposed", "strided"):
            check(fn, make_pair((2, 3), dtype, layout, seed=4), check_stride=True)
    check(fn, make_pair((), "float32", seed=5))


@pytest.mark.parametrize("fn", TO_NUMPY)
def test_to_numpy(fn):
    for dtype in ("float32", "int64", "complex64", "bool", "float16"):
        for layout in ("contiguous", "transposed", "strided"):
            check(fn, make_pair((2, 3), dtype, layout, seed=4))


def _outcome(fn):
    try:
        v = fn()
        return type(v).__name__, repr(v)
    except Exception as e:  # noqa: BLE001  (the exception type is the outcome)
        return "raises", "RuntimeError" if type(e).__module__.startswith("torch") else type(e).__name__


@pytest.mark.parametrize("data,dtype", SCALAR_CONVERSIONS)
def test_scalar_conversions(data, dtype):
    """Same Python type and repr (so the same value, nan included), or the same exception type."""
    import operator
    for conv in (lambda t: t.item(), lambda t: t.tolist(), float, int, complex, operator.index, bool):
        theirs = _outcome(lambda: conv(torch.tensor(data, dtype=getattr(torch, dtype))))
        ours = _outcome(lambda: conv(vt.tensor(data, dtype=getattr(vt, dtype))))
        assert ours == theirs, (data, dtype)


def test_to_returns_self_without_change():
    x = vt.ones(2, 3)
    assert x.to(vt.float32) is x and x.to("cpu") is x and x.cpu() is x and x.float() is x
    assert x.to(vt.float32, copy=True) is not x
    assert vt.as_tensor(x) is x


def test_copies_keep_dense_strides():
    x = vt.ones(3, 4).T  # (4, 3) with strides (1, 4)
    for y in (x.clone(), x.double(), x.to(vt.int32), vt.zeros_like(x), vt.empty_like(x), vt.rand_like(x)):
        assert y.stride() == (1, 4)
    assert x.to(vt.float64, memory_format=vt.contiguous_format).stride() == (3, 1)


def test_from_numpy_shares_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = vt.from_numpy(a)
    a[0, 0] = 42.0
    t[1, 2] = -1.0
    assert t.tolist() == a.tolist() and a[1, 2] == -1.0 and t[0, 0].item() == 42.0
    view = vt.from_numpy(a.T)  # a strided view shares too
    a[1, 0] = 7.0
    assert view[0, 1].item() == 7.0 and view.stride() == (1, 3)
    b = np.zeros(3, dtype=ml_dtypes.bfloat16)
    tb = vt.from_numpy(b)
    b[0] = 1.5
    assert tb.dtype is vt.bfloat16 and tb[0].item() == 1.5


def test_from_numpy_errors():
    with pytest.raises(TypeError):
        vt.from_numpy([1, 2])
    with pytest.raises(ValueError):
        vt.from_numpy(np.arange(3)[::-1])
    with pytest.raises(TypeError):
        vt.from_numpy(np.array([1, 2], dtype=np.longdouble))
    with pytest.raises(TypeError):
        vt.from_numpy(np.array(["a"]))


def test_as_tensor_and_asarray_share():
    a = np.arange(4.0)
    t = vt.as_tensor(a)
    a[0] = 9.0
    assert t[0].item() == 9.0
    assert vt.as_tensor(a, dtype=vt.float32)[0].item() == 9.0  # a converting copy
    u = vt.asarray(a)
    a[1] = 8.0
    assert u[1].item() == 8.0
    c = vt.asarray(a, copy=True)
    a[2] = 7.0
    assert c[2].item() == 2.0
    x = vt.ones(2)
    assert vt.asarray(x) is x or vt.asarray(x).data_ptr() == x.data_ptr()
    with pytest.raises(ValueError):
        vt.asarray(x, dtype=vt.float64, copy=False)
    assert_same(vt.asarray([1, 2.5]), torch.asarray([1, 2.5]))


def test_tensor_copies_its_data():
    a = np.arange(3.0)
    t = vt.tensor(a)
    a[0] = 5.0
    assert t[0].item() == 0.0
    src = vt.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="To copy construct from a tensor"):
        c = vt.tensor(src)
    assert not c.requires_grad and c.data_ptr() != src.data_ptr()


def test_numpy_shares_and_refuses_grad():
    t = vt.zeros(3)
    a = t.numpy()
    a[1] = 5.0
    assert t[1].item() == 5.0
    g = vt.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="Can't call numpy\\(\\) on Tensor that requires grad"):
        g.numpy()
    with pytest.raises(RuntimeError):
        np.asarray(g)
    assert g.numpy(force=True).tolist() == [1.0, 1.0]
    assert vt.ones(2, dtype=vt.bfloat16).numpy().dtype == ml_dtypes.bfloat16  # torch raises here instead


MESSAGES = [  # errors whose text we copy from torch
    lambda lib: lib.tensor([[1, 2], [3]]), lambda lib: lib.tensor([300], dtype=lib.uint8), lambda lib: lib.tensor("abc"),
    lambda lib: lib.tensor([None]), lambda lib: lib.zeros(2, -1), lambda lib: lib.ones(2, -3),
    lambda lib: lib.full((2,), 300, dtype=lib.uint8), lambda lib: lib.full((2,), 1e40, dtype=lib.float32),
    lambda lib: lib.full((2,), 70000, dtype=lib.float16), lambda lib: lib.arange(0, 10, -1),
    lambda lib: lib.arange(0, 10, 0), lambda lib: lib.arange(float("nan")), lambda lib: lib.arange(1e20),
    lambda lib: lib.linspace(0, 1, -1), lambda lib: lib.eye(-1), lambda lib: lib.eye(2, -1),
    lambda lib: lib.zeros(2, out=lib.empty(2, dtype=lib.int64), dtype=lib.float32), lambda lib: lib.tensor([1, 2]).item(),
    lambda lib: float(lib.tensor([1, 2])), lambda lib: bool(lib.tensor([1, 2])),
    lambda lib: [1][lib.tensor(0.0)], lambda lib: lib.tensor([1.0]).type("float"),
    lambda lib: lib.zeros(3).copy_(lib.zeros(2)), lambda lib: lib.zeros(2, 3).copy_(lib.zeros(3, 2)),
    lambda lib: lib.zeros(1, 3).copy_(lib.zeros(2, 3)), lambda lib: lib.zeros(()).copy_(lib.zeros(2)),
]


@pytest.mark.parametrize("fn", MESSAGES)
def test_error_messages(fn):
    with pytest.raises(Exception) as theirs:
        fn(torch)
    with pytest.raises(Exception) as ours:
        fn(vt)
    assert str(ours.value) == str(theirs.value)
    assert isinstance(ours.value, RuntimeError if type(theirs.value).__module__.startswith("torch")
                      else type(theirs.value))
