"""CUDA random ops (marker `cuda`): the same Philox stream as the CPU kernels, so a CUDA generator
and a CPU generator in the same (seed, offset) state draw the same numbers (integers and uniforms
bit for bit, values through log/sin/cos to a few ulps), and the offsets advance alike. The CPU
kernels are tested for their distributions in test_random.py; here CUDA is compared to them."""
import math

import numpy as np
import pytest

import vibetensor.torch as vt
from vibetensor.ops import random as r
from vibetensor.runtime import generator as rg

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True, scope="module")
def _release_memory():
    """Leave no cached blocks behind for later files' allocator-statistics tests."""
    yield
    import gc
    gc.collect()
    vt.cuda.empty_cache()

SEED = 0x0123456789ABCDEF


def np_of(t):
    t = t.detach().cpu()
    return t.float().numpy().astype(np.float64) if t.dtype is vt.bfloat16 else t.numpy().astype(np.float64)


def pair_gens(offset=0, seed=SEED):
    """A CPU and a CUDA generator in the same state."""
    cpu, gpu = vt.Generator(), vt.Generator("cuda")
    for g in (cpu, gpu):
        g.manual_seed(seed)
        g.set_offset(offset)
    return cpu, gpu


# op name -> (fn(tensor, generator), dtypes, exact): fn fills the tensor in place
OPS = [
    ("uniform", lambda t, g: t.uniform_(-2.0, 3.0, generator=g), ["float32", "float64", "float16", "bfloat16"], False),
    ("rand01", lambda t, g: t.uniform_(generator=g), ["float32", "float64", "float16", "bfloat16"], True),
    ("normal", lambda t, g: t.normal_(0.5, 2.0, generator=g), ["float32", "float64", "bfloat16"], False),
    ("log_normal", lambda t, g: t.log_normal_(0.1, 0.5, generator=g), ["float32", "float64"], False),
    ("exponential", lambda t, g: t.exponential_(1.5, generator=g), ["float32", "float64", "float16"], False),
    ("geometric", lambda t, g: t.geometric_(0.3, generator=g), ["float32", "int64", "float64"], True),
    ("cauchy", lambda t, g: t.cauchy_(1.0, 0.5, generator=g), ["float32", "float64"], False),
    ("bernoulli", lambda t, g: t.bernoulli_(0.3, generator=g), ["float32", "float64", "bool", "int64"], True),
    ("randint_small", lambda t, g: t.random_(-5, 17, generator=g), ["int64", "int32", "float32", "int8"], True),
    ("randint_2_32", lambda t, g: t.random_(0, 2 ** 32, generator=g), ["int64"], True),
    ("randint_wide", lambda t, g: t.random_(-2 ** 40, 2 ** 50, generator=g), ["int64"], True),
    ("random_default", lambda t, g: t.random_(generator=g), ["int64", "int32", "uint8", "bool", "float32"], True),
    ("random_full", lambda t, g: r.random_(t, -2 ** 63, 2 ** 63, g), ["int64"], True),  # the op: 2**64 values
]


@pytest.mark.parametrize("name,fn,dtypes,exact", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("n", [1, 7, 4099])
def test_cuda_matches_cpu_stream(name, fn, dtypes, exact, n):
    for dtype in dtypes:
        for offset in (0, 2 ** 32 - 3):  # counters crossing 2**32 use the high counter word
            cpu, gpu = pair_gens(offset)
            d = getattr(vt, dtype)
            want = fn(vt.empty(n, dtype=d), cpu)
            got = fn(vt.empty(n, dtype=d, device="cuda"), gpu)
            assert got.device.type == "cuda" and got.dtype is d
            assert gpu.get_offset() == cpu.get_offset(), (name, dtype)
            a, b = np_of(got), np_of(want)
            if exact:
                np.testing.assert_array_equal(a, b, err_msg=f"{name} {dtype}")
            else:
                tol = 1e-2 if dtype in ("float16", "bfloat16") else 1e-5 if dtype == "float32" else 1e-12
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{name} {dtype}")


def test_words_are_bit_exact():
    """random_(0, 2**32) stores the raw words: the kernel's Philox equals the documented stream."""
    for seed, offset in ((42, 0), (SEED, 2 ** 32 - 5), (2 ** 64 - 1, 2 ** 40 + 3)):
        g = vt.Generator("cuda").manual_seed(seed)
        g.set_offset(offset)
        got = vt.empty(4 * 1000 + 3, dtype=vt.int64, device="cuda").random_(0, 2 ** 32, generator=g)
        np.testing.assert_array_equal(got.cpu().numpy().astype(np.uint64), rg.words(seed, offset, 4003))


def test_factories_and_default_generator():
    vt.manual_seed(7)
    a = [vt.rand(5, device="cuda"), vt.randn(6, device="cuda"), vt.randint(3, 9, (7,), device="cuda")]
    vt.manual_seed(7)
    b = [vt.rand(5), vt.randn(6), vt.randint(3, 9, (7,))]
    vt.manual_seed(7)  # the CUDA default generator draws what the CPU one does from the same state
    for x, y in zip(a, b):
        np.testing.assert_allclose(np_of(x), np_of(y), rtol=1e-6, atol=1e-6)
    assert vt.rand(5, device="cuda").dtype is vt.float32 and vt.randint(3, (2,), device="cuda").dtype is vt.int64


def test_torch_cuda_seed_and_state_api():
    vt.cuda.manual_seed(123)
    assert vt.cuda.initial_seed() == 123
    state = vt.cuda.get_rng_state()
    assert state.dtype is vt.uint8 and tuple(state.shape) == (16,) and state.device.type == "cpu"
    x = vt.rand(100, device="cuda")
    y = vt.rand(100, device="cuda")
    assert not np.array_equal(np_of(x), np_of(y))  # the offset advanced
    vt.cuda.set_rng_state(state)
    np.testing.assert_array_equal(np_of(vt.rand(100, device="cuda")), np_of(x))
    vt.cuda.manual_seed_all(5)
    assert all(g.initial_seed() == 5 for g in vt.cuda.default_generators)
    assert len(vt.cuda.get_rng_state_all()) == vt.cuda.device_count()
    cpu_state = vt.get_rng_state()
    vt.cuda.manual_seed(99)
    np.testing.assert_array_equal(vt.get_rng_state().numpy(), cpu_state.numpy())  # the CPU one is untouched


def test_non_contiguous_in_place_fills_logical_order():
    cpu, gpu = pair_gens()
    base_c, base_g = vt.zeros(6, 8), vt.zeros(6, 8, device="cuda")
    base_c.t().uniform_(generator=cpu)
    base_g.t().uniform_(generator=gpu)
    np.testing.assert_array_equal(np_of(base_g), np_of(base_c))
    sl = vt.zeros(10, device="cuda")
    sl[::2].normal_(generator=gpu)
    assert np.all(np_of(sl)[1::2] == 0) and np.all(np_of(sl)[::2] != 0)


@pytest.mark.parametrize("p_dtype", ["float32", "float64", "float16"])
def test_bernoulli_tensor_p(p_dtype):
    cpu, gpu = pair_gens()
    p = vt.rand(3, 1, 50).to(getattr(vt, p_dtype))
    want = vt.empty(3, 4, 50).bernoulli_(p, generator=cpu)
    got = vt.empty(3, 4, 50, device="cuda").bernoulli_(p.cuda(), generator=gpu)
    np.testing.assert_array_equal(np_of(got), np_of(want))
    got2 = vt.bernoulli(vt.full((1000,), 0.25, device="cuda"))
    assert 0.18 < np_of(got2).mean() < 0.32


def test_moments_on_device():
    vt.manual_seed(3)
    n = 200_000
    for x, mean, var in ((vt.rand(n, device="cuda"), 0.5, 1 / 12), (vt.randn(n, device="cuda"), 0.0, 1.0),
                         (vt.empty(n, device="cuda").exponential_(2.0), 0.5, 0.25),
                         (vt.empty(n, dtype=vt.float64, device="cuda").normal_(1.0, 3.0), 1.0, 9.0)):
        v = np_of(x)
        assert abs(v.mean() - mean) < 0.02 * max(1.0, math.sqrt(var)) and abs(v.var() - var) < 0.05 * var


def test_errors_match_cpu():
    x = vt.empty(4, device="cuda")
    with pytest.raises(RuntimeError, match="normal expects std >= 0.0"):
        x.normal_(0, -1)
    with pytest.raises(RuntimeError, match="random_ expects 'from' to be less than 'to'"):
        x.random_(5, 5)
    with pytest.raises(RuntimeError, match="Expected a 'cuda' device type for generator but found 'cpu'"):
        x.uniform_(generator=vt.Generator())


def test_dropout_forward_and_backward_on_cuda():
    """dropout = bernoulli_ mask (drawn on the device) * x / (1 - p); its backward uses the same mask."""
    import vibetensor.torch.nn.functional as F
    x_c = vt.randn(64, 33)
    x_g = x_c.cuda().requires_grad_(True)
    vt.manual_seed(11)
    y_g = F.dropout(x_g, 0.25, training=True)
    vt.manual_seed(11)
    y_c = F.dropout(x_c, 0.25, training=True)
    np.testing.assert_allclose(np_of(y_g), np_of(y_c), rtol=1e-6)
    y_g.sum().backward()
    mask = np_of(y_g) != 0
    np.testing.assert_allclose(np_of(x_g.grad), mask / 0.75, rtol=1e-6)
    assert 0.65 < mask.mean() < 0.85


def _on_cuda(*names):
    import vibetensor.backends.cuda  # noqa: F401  (registers every CUDA kernel)
    from vibetensor.dispatch import DispatchKey, get
    return all(DispatchKey.CUDA in get(n).table for n in names)


def test_randperm_and_multinomial():
    """Equal to the CPU's when the CUDA kernels they build on exist (sort; cumsum, searchsorted); a
    clear NotImplementedError before."""
    cpu, gpu = pair_gens()
    if _on_cuda("sort"):
        np.testing.assert_array_equal(vt.randperm(1000, device="cuda", generator=gpu).cpu().numpy(),
                                      vt.randperm(1000, generator=cpu).numpy())
    else:
        with pytest.raises(NotImplementedError, match="CUDA sort"):
            vt.randperm(10, device="cuda", generator=gpu)
    probs = vt.rand(4, 30) + 0.01
    for replacement, needs in ((False, ("sort",)), (True, ("cumsum", "searchsorted"))):
        if not _on_cuda(*needs):
            with pytest.raises(NotImplementedError):
                vt.multinomial(probs.cuda(), 10, replacement, generator=gpu)
            continue
        cpu, gpu = pair_gens()
        got = vt.multinomial(probs.cuda(), 10, replacement, generator=gpu)
        want = vt.multinomial(probs, 10, replacement, generator=cpu)
        np.testing.assert_array_equal(got.cpu().numpy(), want.numpy())
