"""repr(tensor) against torch's, character for character: one table line per tensor, each also
printed under several print options (precision, threshold/edgeitems summarisation, line width,
scientific mode, profiles)."""
import pytest
import torch

import vibetensor.torch as vt

# code run with lib = torch and lib = vibetensor.torch; the two reprs must be equal
CASES = [
    # 0-d
    "lib.tensor(3)", "lib.tensor(3.5)", "lib.tensor(-0.0)", "lib.tensor(True)", "lib.tensor(1e-5)", "lib.tensor(1e10)",
    "lib.tensor(float('nan'))", "lib.tensor(float('-inf'))", "lib.tensor(2.0)", "lib.tensor(1+2j)",
    "lib.tensor(-1-0.5j)", "lib.tensor(7, dtype=lib.uint8)", "lib.tensor(2.5, dtype=lib.float64)",
    "lib.tensor(2.5, dtype=lib.bfloat16)", "lib.zeros((), dtype=lib.float64)",
    # integer / fixed / scientific choice
    "lib.tensor([1, 2, 3])", "lib.tensor([1., 2., 3.])", "lib.tensor([1.5, 2, 3])", "lib.tensor([True, False])",
    "lib.tensor([0., 0.])", "lib.tensor([0., -0.])", "lib.tensor([1e-5, 1.])", "lib.tensor([1e-4, 1.])",
    "lib.tensor([1.0, 1000.0])", "lib.tensor([1.0, 1001.0])", "lib.tensor([1.5, 1001.0])", "lib.tensor([1e8, 1.])",
    "lib.tensor([1e9, 1.])", "lib.tensor([123456789., 1.])", "lib.tensor([-1.5, 2.25, -3.125])",
    "lib.tensor([0.1, 0.01, 0.001])", "lib.tensor([0.1, 0.01, 0.0001])", "lib.tensor([12345.678, 0.5])",
    "lib.tensor([99999.5, 0.5])", "lib.tensor([9.99995, 1.5])", "lib.tensor([9.99996, 1.5])", "lib.tensor([0.00015, 0.5])",
    "lib.tensor([[0.001, 123.4]])", "lib.tensor([1e300, 1e-300], dtype=lib.float64)", "lib.tensor([3.4e38, -3.4e38])",
    # nan / inf
    "lib.tensor([float('nan'), 1.])", "lib.tensor([float('nan'), 1.5])", "lib.tensor([float('inf'), -float('inf'), 2.])",
    "lib.tensor([float('nan'), float('inf')])", "lib.tensor([float('nan'), 1e-6])",
    # dtypes and the dtype= suffix
    "lib.tensor([1, 2], dtype=lib.int32)", "lib.tensor([1, 2], dtype=lib.uint8)", "lib.tensor([1, -2], dtype=lib.int8)",
    "lib.tensor([1, 2], dtype=lib.int16)", "lib.tensor([1.5, 2], dtype=lib.float64)", "lib.tensor([1.5, 2], dtype=lib.float16)",
    "lib.tensor([1.5, 2], dtype=lib.bfloat16)", "lib.tensor([0.1, 0.2], dtype=lib.bfloat16)",
    "lib.tensor([0.1, 0.2], dtype=lib.float16)", "lib.tensor([65504.], dtype=lib.float16)", "lib.tensor([2**62, -2**62])",
    "lib.tensor([[2**40], [1]])", "lib.tensor([255, 0], dtype=lib.uint8)", "lib.zeros(3, dtype=lib.bool)",
    # complex
    "lib.tensor([1+2j, 3-4j])", "lib.tensor([1.5+2j, 3-4.25j])", "lib.tensor([1e-5+2j, 3-4j])", "lib.tensor([0j, 1j])",
    "lib.tensor([1+2j], dtype=lib.complex128)", "lib.tensor([[1+2j, 3], [0, -1j]])",
    "lib.tensor([complex(float('nan'), 1), 2])", "lib.tensor([-0.0+0j, 1-0j])", "lib.tensor([1e10+1j, 1])",
    "lib.ones(2, 3, dtype=lib.complex64)", "lib.arange(40.).reshape(20, 2) @ lib.tensor([[1.], [0.]]) * (1 + 0.5j)",
    # empty
    "lib.tensor([])", "lib.tensor([], dtype=lib.int64)", "lib.zeros(0, 3)", "lib.zeros(2, 0, dtype=lib.int32)",
    "lib.zeros(0, dtype=lib.float64)", "lib.zeros(0, 2, 0, dtype=lib.bool)",
    # shapes, line wrapping, summarisation
    "lib.tensor([[1, 2], [3, 4]])", "lib.tensor([[1., 2.], [3., 4.]])", "lib.tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])",
    "lib.tensor([[[[1.5]]]])", "lib.tensor([[-1, 200], [3, -4000]])", "lib.arange(100)", "lib.arange(1000)",
    "lib.arange(1001)", "lib.arange(2000).reshape(40, 50)", "lib.arange(3000.).reshape(10, 10, 30)", "lib.arange(30.) / 7",
    "lib.arange(30) * 1000", "lib.arange(40) - 20", "lib.arange(1, 30) * 1e6", "lib.arange(200.).reshape(2, 100) / 3",
    "lib.arange(24).reshape(2, 3, 4)", "lib.arange(24.).reshape(2, 3, 4) - 11.5", "lib.arange(1000000)",
    "lib.arange(1100.).reshape(1100, 1)", "lib.arange(50, dtype=lib.int16)", "lib.arange(60, dtype=lib.float64) * 1.25",
    "lib.arange(1050).reshape(1050, 1).to(lib.float16)", "lib.arange(12).reshape(3, 4).T",
    "lib.arange(12.).reshape(3, 4)[:, ::2]", "lib.arange(100) % 2 == 0", "lib.tensor([0.5, 0.25]).expand(3, 2)",
    "lib.tensor([1/3] * 25)", "lib.tensor([1/3] * 25, dtype=lib.float64)", "lib.tensor([[1/3] * 20] * 3)",
    "lib.tensor([[[1/3] * 8] * 2] * 2) * 1e-7", "lib.linspace(0, 1, 31)", "lib.linspace(-1e-3, 1e-3, 7)",
    "lib.linspace(1e5, 1e9, 7)", "lib.linspace(0, 100, 9, dtype=lib.float64)", "lib.eye(4, 6, dtype=lib.int64)",
    # autograd suffixes, wrapped at the line width
    "lib.zeros(2, 3, requires_grad=True)", "lib.tensor([1.5], requires_grad=True)",
    "lib.tensor(1.5, dtype=lib.float64, requires_grad=True)", "lib.tensor([1.5, 2.5], dtype=lib.float64, requires_grad=True)",
    "lib.ones(1, 70, dtype=lib.float64, requires_grad=True)", "lib.ones(17, dtype=lib.float64, requires_grad=True)",
    "lib.ones(0, 2, requires_grad=True)", "lib.ones(3, requires_grad=True) * 2",
]

OPTIONS = [
    {},
    {"precision": 2},
    {"precision": 8},
    {"threshold": 5},
    {"threshold": 5, "edgeitems": 1},
    {"threshold": 5, "edgeitems": 0},
    {"linewidth": 40},
    {"linewidth": 200},
    {"sci_mode": True},
    {"sci_mode": False},
    {"profile": "short"},
    {"profile": "full", "linewidth": 120},
]


@pytest.fixture(autouse=True)
def _default_options():
    yield
    torch.set_printoptions(profile="default")
    vt.set_printoptions(profile="default")


def _reprs(code):
    out = []
    for lib in (torch, vt):
        try:
            out.append(repr(eval(code, {"lib": lib})))  # noqa: S307  (our own table)
        except Exception as e:  # an unsupported case must fail loudly, not compare equal
            out.append(f"raised {type(e).__name__}: {e}")
    return out


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) or "default" for o in OPTIONS])
def test_repr_matches_torch(opts):
    torch.set_printoptions(**opts)
    vt.set_printoptions(**opts)
    for code in CASES:
        if code == "lib.arange(1000000)" and (opts.get("profile") == "full" or opts.get("edgeitems") == 0):
            continue  # torch formats all million numbers here (slow), and the case adds nothing new
        theirs, ours = _reprs(code)
        assert ours == theirs, f"{code} with {opts}:\ntorch:\n{theirs}\nours:\n{ours}"


def test_str_is_repr():
    t = vt.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert str(t) == repr(t) == str(torch.tensor([[1.5, 2.0], [3.0, 4.0]]))


def test_printoptions_api():
    assert vt.get_printoptions() == torch._tensor_str.get_printoptions()
    vt.set_printoptions(precision=2, sci_mode=True)
    assert vt.get_printoptions()["precision"] == 2 and vt.get_printoptions()["sci_mode"] is True
    vt.set_printoptions(precision=3)  # like torch, sci_mode goes back to automatic when not given
    assert vt.get_printoptions()["sci_mode"] is None
    with vt.printoptions(precision=1):
        assert repr(vt.tensor([1.25])) == "tensor([1.2])"
    assert vt.get_printoptions()["precision"] == 3


def test_default_dtype_changes_suffix():
    old = vt.get_default_dtype()
    try:
        for lib in (torch, vt):
            lib.set_default_dtype(lib.float64)
        for code in ("lib.tensor([1.5, 2.0])", "lib.tensor([1.5], dtype=lib.float32)", "lib.tensor([1j])",
                     "lib.tensor([1j], dtype=lib.complex64)", "lib.zeros(0, dtype=lib.float64)",
                     "lib.zeros(0, dtype=lib.float32)"):
            theirs, ours = _reprs(code)
            assert ours == theirs, code
    finally:
        torch.set_default_dtype(torch.float32)
        vt.set_default_dtype(old)


def test_format_of_0d():
    assert f"{vt.tensor(2.5):.3f}" == f"{torch.tensor(2.5):.3f}" == "2.500"
    assert f"{vt.tensor(7)}" == "7"


class Tensor:
    """A stand-in that reports another device (no GPU here): repr's suffix logic sees only these
    attributes, and the class is named Tensor so the prefix is the plain "tensor("."""

    def __init__(self, t, device, requires_grad=False):
        self._t, self.device, self.requires_grad, self.grad_fn = t, vt.device(device), requires_grad, None
        self.dtype, self.shape, self.ndim = t.dtype, t.shape, t.ndim

    def numel(self):
        return self._t.numel()


@pytest.mark.parametrize("make,device,grad,expected", [
    (lambda: vt.tensor([1.0, 2.0]), "cuda:0", False, "tensor([1., 2.], device='cuda:0')"),
    (lambda: vt.tensor([1, 2], dtype=vt.int32), "cuda:1", False, "tensor([1, 2], device='cuda:1', dtype=torch.int32)"),
    (lambda: vt.tensor([1.5]), "cuda:0", True, "tensor([1.5000], device='cuda:0', requires_grad=True)"),
    (lambda: vt.zeros(0, 2), "cuda:0", False, "tensor([], device='cuda:0', size=(0, 2))"),
    (lambda: vt.ones(12, dtype=vt.float64), "cuda:0", True,
     "tensor([1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.], device='cuda:0',\n"
     "       dtype=torch.float64, requires_grad=True)"),
])
def test_device_suffix(make, device, grad, expected):
    """torch prints device= for every non-CPU tensor, before dtype=, wrapping at the line width."""
    from vibetensor.torch._tensor_str import tensor_repr
    t = make()
    assert tensor_repr(Tensor(t, device, grad), lambda s: s._t.numpy()) == expected
