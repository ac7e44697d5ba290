"""Random numbers: the Philox stream (known-answer vectors, the documented layout), generators and
their state, reproducibility, and the distributions' properties (range, moments) — values can't be
compared with torch's (different algorithm), but shapes, dtypes and errors can, and are."""
import math

import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import check
from vibetensor.runtime import generator as rg

N = 100_000


@pytest.fixture(autouse=True)
def _seeded():
    vt.manual_seed(1234)
    yield


def np_of(t):
    return t.detach().cpu().numpy().astype(np.float64) if t.dtype is not vt.bfloat16 else \
        t.float().numpy().astype(np.float64)


# -- the bijection and the stream ------------------------------------------------------------------------

# Random123's known-answer vectors for philox4x32-10: (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    out = rg.philox4x32(*counter, *key)
    assert tuple(int(w) for w in out) == expected


def test_philox_vectorised_matches_scalar():
    c = np.array([0, 1, 2**32 - 1, 12345], dtype=np.uint32)
    vec = rg.philox4x32(c, c ^ 7, c, c, 0xDEADBEEF, 0x1234)
    for i in range(4):
        one = rg.philox4x32(int(c[i]), int(c[i]) ^ 7, int(c[i]), int(c[i]), 0xDEADBEEF, 0x1234)
        assert [int(w[i]) for w in vec] == [int(w) for w in one]


def test_stream_layout():
    """word j of a draw at (seed, offset) is component j % 4 of counter offset + j // 4, with
    key (seed_lo, seed_hi) and counter (offset_lo, offset_hi, 0, 0) — Triton's randint4x."""
    seed = 0x0123456789ABCDEF
    for offset in (0, 5, 2**32 - 1, 2**32 + 3):
        w = rg.words(seed, offset, 10)
        for j in range(10):
            c = offset + j // 4
            ref = rg.philox4x32(c & 0xFFFFFFFF, c >> 32, 0, 0, seed & 0xFFFFFFFF, seed >> 32)
            assert int(w[j]) == int(ref[j % 4])


def test_uint_to_uniform_float():
    w = np.array([0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0x40000000], dtype=np.uint32)
    u = rg.uint_to_uniform_float(w)
    assert u.dtype == np.float32
    scale = np.float32(4.6566127342e-10)
    # negatives fold: x < 0 -> -x - 1, so 0xFFFFFFFF (-1) -> 0 and 0x80000000 (-2**31) -> 2**31 - 1
    expected = np.array([0, 1, 2, 2**31 - 1, 2**31 - 1, 0, 1, 2**30], dtype=np.int64).astype(np.float32) * scale
    assert np.array_equal(u, expected)
    assert u.max() < 1.0


def test_rand_is_the_documented_function_of_seed_and_offset():
    g = vt.Generator().manual_seed(99)
    g.set_offset(7)
    x = vt.rand(10, generator=g)
    assert np.array_equal(x.numpy(), rg.uint_to_uniform_float(rg.words(99, 7, 10)))
    assert g.get_offset() == 7 + 3  # ceil(10 / 4) counters


@pytest.mark.parametrize("make,counters", [
    (lambda g: vt.rand(10, generator=g), 3),
    (lambda g: vt.rand(3, dtype=vt.float64, generator=g), 2),      # 2 words per double
    (lambda g: vt.rand(3, dtype=vt.complex64, generator=g), 2),    # 2 components
    (lambda g: vt.randn(5, generator=g), 2),                        # pairs: 6 words
    (lambda g: vt.randn(4, dtype=vt.float64, generator=g), 2),     # 1 counter per pair of doubles
    (lambda g: vt.randint(0, 10, (9,), generator=g), 3),
    (lambda g: vt.randint(0, 2**40, (3,), generator=g), 2),         # 2 words when the range > 2**32
    (lambda g: vt.randperm(6, generator=g), 3),                    # 64-bit keys
    (lambda g: vt.rand(0, generator=g), 0),
])
def test_offset_advances_by_counters_used(make, counters):
    g = vt.Generator()
    make(g)
    assert g.get_offset() == counters


def test_consecutive_draws_continue_the_stream():
    g1, g2 = vt.Generator().manual_seed(5), vt.Generator().manual_seed(5)
    a, b = vt.rand(8, generator=g1), vt.rand(8, generator=g1)
    whole = vt.rand(16, generator=g2)
    assert np.array_equal(np.concatenate([a.numpy(), b.numpy()]), whole.numpy())


# -- generators and state ----------------------------------------------------------------------------------

def test_manual_seed_reproduces():
    vt.manual_seed(7)
    a = [vt.rand(5), vt.randn(3, 4), vt.randint(0, 100, (6,)), vt.randperm(10)]
    vt.manual_seed(7)
    b = [vt.rand(5), vt.randn(3, 4), vt.randint(0, 100, (6,)), vt.randperm(10)]
    for x, y in zip(a, b):
        assert x.tolist() == y.tolist()
    assert vt.rand(5).tolist() != a[0].tolist()  # the stream moved on


def test_consecutive_calls_differ():
    assert vt.rand(100).tolist() != vt.rand(100).tolist()
    assert vt.randn(100).tolist() != vt.randn(100).tolist()


def test_generator_isolation():
    vt.manual_seed(3)
    expected = vt.rand(4).tolist()
    vt.manual_seed(3)
    g = vt.Generator().manual_seed(3)
    mine = vt.rand(4, generator=g).tolist()
    assert vt.rand(4).tolist() == expected == mine  # g's draw did not advance the default generator
    g2 = vt.Generator().manual_seed(4)
    assert vt.rand(4, generator=g2).tolist() != mine


def test_generator_api():
    g = vt.Generator()
    assert g.initial_seed() == torch.Generator().initial_seed() == 67280421310721
    assert repr(g.device) == "device(type='cpu')" and vt.Generator(device="cpu").device == vt.device("cpu")
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    assert g.manual_seed(-1).initial_seed() == 2**64 - 1 == torch.Generator().manual_seed(-1).initial_seed()
    with pytest.raises(ValueError):
        g.manual_seed(2**64)
    with pytest.raises(RuntimeError):
        g.manual_seed(1.5)
    s = g.seed()
    assert isinstance(s, int) and g.initial_seed() == s
    assert vt.default_generator.device == vt.device("cpu")


def test_state_roundtrip():
    g = vt.Generator().manual_seed(11)
    vt.rand(5, generator=g)
    state = g.get_state()
    assert state.dtype is vt.uint8 and tuple(state.shape) == (16,)
    a = vt.randn(7, generator=g).tolist()
    g.set_state(state)
    assert vt.randn(7, generator=g).tolist() == a
    vt.manual_seed(2)
    s = vt.get_rng_state()
    x = vt.rand(3).tolist()
    vt.set_rng_state(s)
    assert vt.rand(3).tolist() == x


def test_state_errors():
    g = vt.Generator()
    with pytest.raises(TypeError):
        g.set_state([1, 2])
    with pytest.raises(TypeError):
        g.set_state(vt.zeros(16))
    with pytest.raises(RuntimeError):
        g.set_state(vt.zeros(3, dtype=vt.uint8))


def test_global_seeding_functions():
    assert vt.manual_seed(-1).initial_seed() == 2**64 - 1 == vt.initial_seed()
    assert vt.manual_seed("3").initial_seed() == 3  # int() of the argument, as torch
    with pytest.raises(ValueError):
        vt.manual_seed(-2**63 - 1)
    s = vt.seed()
    assert vt.initial_seed() == s


def test_fork_rng():
    vt.manual_seed(9)
    with vt.random.fork_rng():
        inside = vt.rand(3).tolist()
    assert vt.rand(3).tolist() == inside


def test_generator_type_and_device_checks():
    with pytest.raises(TypeError):
        vt.rand(3, generator=5)
    cuda_gen = rg.Generator("cuda:0")  # keyed to a CUDA device; building one needs no GPU
    with pytest.raises(RuntimeError, match="Expected a 'cpu' device type for generator but found 'cuda'"):
        vt.zeros(3).uniform_(generator=cuda_gen)


@pytest.mark.cuda
def test_philox_matches_triton():
    """Our NumPy stream is bit-exact with Triton's 32-bit Philox4x32-10 (tl.philox on uint32 counter
    halves: counter c is (c mod 2**32, c >> 32, 0, 0), so offsets beyond 2**32 too) and tl.rand;
    tl.randn4x agrees to float32 rounding (libm vs CUDA math). (tl.randint4x with an int64 offset
    is Philox4x64 since Triton 3.x, another stream: our CUDA kernel runs its own 4x32 rounds.)"""
    import triton
    import triton.language as tl

    @triton.jit
    def draw(words_ptr, uniform_ptr, normal_ptr, seed, base, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = i < n
        c = base.to(tl.uint64) + i.to(tl.uint64)
        lo = c.to(tl.uint32)
        hi = (c >> 32).to(tl.uint32)
        zero = lo * 0
        r0, r1, r2, r3 = tl.philox(seed, lo, hi, zero, zero)
        tl.store(words_ptr + 4 * i, r0.to(tl.int32, bitcast=True), mask=mask)
        tl.store(words_ptr + 4 * i + 1, r1.to(tl.int32, bitcast=True), mask=mask)
        tl.store(words_ptr + 4 * i + 2, r2.to(tl.int32, bitcast=True), mask=mask)
        tl.store(words_ptr + 4 * i + 3, r3.to(tl.int32, bitcast=True), mask=mask)
        small = i.to(tl.uint32)  # tl.rand / randn4x with 32-bit offsets: the 4x32 rounds
        tl.store(uniform_ptr + i, tl.rand(seed, small), mask=mask)
        n0, n1, n2, n3 = tl.randn4x(seed, small)
        tl.store(normal_ptr + 4 * i, n0, mask=mask)
        tl.store(normal_ptr + 4 * i + 1, n1, mask=mask)
        tl.store(normal_ptr + 4 * i + 2, n2, mask=mask)
        tl.store(normal_ptr + 4 * i + 3, n3, mask=mask)

    from vibetensor.backends.cpu.random import normal01
    n = 3000
    for seed in (42, 0x0123456789ABCDEF):
        for base in (0, 2**32 - 700, 2**40 + 3):
            words = torch.empty(4 * n, dtype=torch.int32, device="cuda")
            uniform = torch.empty(n, dtype=torch.float32, device="cuda")
            normal = torch.empty(4 * n, dtype=torch.float32, device="cuda")
            draw[(triton.cdiv(n, 256),)](words, uniform, normal, seed, base, n, BLOCK=256)
            ours = rg.words(seed, base, 4 * n)
            assert np.array_equal(words.cpu().numpy().view(np.uint32), ours)
            ours0 = rg.uint_to_uniform_float(rg.words(seed, 0, 4 * n))
            assert np.array_equal(uniform.cpu().numpy(), ours0[0::4])
            g = vt.Generator().manual_seed(seed)
            z = normal01(g, 4 * n, vt.float32)
            np.testing.assert_allclose(normal.cpu().numpy(), z, rtol=2e-6, atol=2e-6)


# -- distributions: ranges and moments ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_rand(dtype):
    x = np_of(vt.rand(N, dtype=getattr(vt, dtype)))
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.01 and abs(x.var() - 1 / 12) < 0.005
    assert len(np.unique(x)) > (200 if dtype == "bfloat16" else 1000)


def test_rand_complex():
    z = vt.rand(N, dtype=vt.complex64).numpy()
    for part in (z.real, z.imag):
        assert part.min() >= 0 and part.max() < 1 and abs(part.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(z.real, z.imag)[0, 1]) < 0.02


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_randn(dtype):
    x = np_of(vt.randn(N, dtype=getattr(vt, dtype)))
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1) < 0.02
    assert abs(((x > 1) & (x < 2)).mean() - 0.1359) < 0.01  # shape, not just moments
    assert np.all(np.isfinite(x))


def test_randn_odd_length_and_complex():
    assert vt.randn(7).shape == (7,)
    z = vt.randn(N, dtype=vt.complex64).numpy()
    assert abs(z.real.var() - 0.5) < 0.02 and abs(z.imag.var() - 0.5) < 0.02
    assert abs(np.mean(np.abs(z) ** 2) - 1) < 0.02


@pytest.mark.parametrize("low,high,dtype", [
    (0, 10, "int64"), (-5, 5, "int64"), (0, 2, "bool"), (0, 256, "uint8"), (-128, 128, "int8"), (3, 4, "int32"),
    (0, 2**24, "float32"), (-2**62, 2**62, "int64"), (0, 2**40, "int64"), (-10, 10, "float64"), (0, 100, "int16"),
])
def test_randint(low, high, dtype):
    x = vt.randint(low, high, (N,), dtype=getattr(vt, dtype))
    assert x.dtype is getattr(vt, dtype)
    a = x.numpy().astype(np.float64) if dtype != "bool" else x.numpy().astype(np.int64)
    assert a.min() >= low and a.max() <= high - 1
    assert abs(a.mean() - (low + high - 1) / 2) < 0.02 * (high - low)
    if high - low <= 256:
        assert len(np.unique(a)) == high - low  # every value turns up


def test_randint_forms():
    assert vt.randint(5, (3,)).dtype is vt.int64 and vt.randint(5, (3,)).max().item() < 5
    assert tuple(vt.randint(3, 5, size=(2, 2)).shape) == (2, 2)
    assert vt.randint(high=5, size=(4,)).min().item() >= 0
    assert vt.randint(vt.tensor(2), vt.tensor(5), (50,)).min().item() >= 2
    assert vt.randint(5, (3,), out=vt.empty(0, dtype=vt.int32)).dtype is vt.int32
    assert vt.randint_like(vt.zeros(2, 3), 3, 5).dtype is vt.float32
    assert vt.randint_like(vt.zeros(4, dtype=vt.int16), high=3).max().item() < 3


def test_randperm():
    for n in (0, 1, 2, 10, 1000):
        p = vt.randperm(n).numpy()
        assert sorted(p.tolist()) == list(range(n))
    assert vt.randperm(50).tolist() != vt.randperm(50).tolist()
    assert vt.randperm(5, dtype=vt.float32).dtype is vt.float32
    # each position is uniform over values: mean of the first element over many permutations
    firsts = np.array([vt.randperm(10)[0].item() for _ in range(2000)])
    assert abs(firsts.mean() - 4.5) < 0.3


@pytest.mark.parametrize("low,high,dtype", [(2.0, 5.0, "float32"), (-1.0, 1.0, "float64"), (0.0, 8.0, "float16"),
                                            (-3.0, -2.0, "bfloat16")])
def test_uniform_(low, high, dtype):
    x = np_of(vt.empty(N, dtype=getattr(vt, dtype)).uniform_(low, high))
    assert x.min() >= low and x.max() <= high
    assert abs(x.mean() - (low + high) / 2) < 0.01 * (high - low)


def test_normal_and_normal_():
    x = vt.empty(N, dtype=vt.float64).normal_(3.0, 2.0).numpy()
    assert abs(x.mean() - 3) < 0.03 and abs(x.std() - 2) < 0.03
    y = vt.normal(vt.tensor([0.0, 100.0]).expand(N // 2, 2), vt.tensor([1.0, 0.1])).numpy()
    assert abs(y[:, 0].std() - 1) < 0.03 and abs(y[:, 1].mean() - 100) < 0.01 and abs(y[:, 1].std() - 0.1) < 0.003
    z = vt.normal(2.0, vt.full((N,), 3.0)).numpy()
    assert abs(z.mean() - 2) < 0.05 and abs(z.std() - 3) < 0.05
    w = vt.normal(-1.0, 0.5, (N,)).numpy()
    assert abs(w.mean() + 1) < 0.01 and abs(w.std() - 0.5) < 0.01
    assert vt.empty(5).normal_(1.0, 0.0).tolist() == [1.0] * 5


def test_bernoulli():
    x = vt.empty(N).bernoulli_(0.3).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0} and abs(x.mean() - 0.3) < 0.01
    p = vt.tensor([0.0, 0.25, 1.0]).expand(N // 3, 3)
    y = vt.bernoulli(p).numpy()
    assert y[:, 0].max() == 0 and y[:, 2].min() == 1 and abs(y[:, 1].mean() - 0.25) < 0.015
    assert vt.bernoulli(vt.tensor([0.5, 0.5]), 1.0).tolist() == [1.0, 1.0]
    b = vt.zeros(N, dtype=vt.bool).bernoulli_(0.5)
    assert b.dtype is vt.bool and abs(b.numpy().mean() - 0.5) < 0.01
    assert vt.bernoulli(vt.full((4,), 0.5, dtype=vt.float64)).dtype is vt.float64


def test_exponential_geometric_log_normal_cauchy():
    e = vt.empty(N).exponential_(2.0).numpy()
    assert e.min() >= 0 and abs(e.mean() - 0.5) < 0.01
    g = vt.empty(N).geometric_(0.25).numpy()
    assert g.min() >= 1 and np.all(g == np.round(g)) and abs(g.mean() - 4) < 0.1
    ln = vt.empty(N, dtype=vt.float64).log_normal_(0.5, 0.25).numpy()
    assert ln.min() > 0 and abs(np.log(ln).mean() - 0.5) < 0.01 and abs(np.log(ln).std() - 0.25) < 0.01
    c = vt.empty(N, dtype=vt.float64).cauchy_(1.0, 2.0).numpy()
    q25, q50, q75 = np.quantile(c, [0.25, 0.5, 0.75])
    assert abs(q50 - 1) < 0.05 and abs(q75 - q25 - 4) < 0.15  # interquartile range of Cauchy(1, 2) is 4


def test_random_():
    assert vt.empty(N, dtype=vt.uint8).random_().numpy().max() == 255
    f = vt.empty(N).random_().numpy()
    assert f.min() >= 0 and f.max() <= 2**24 and np.all(f == np.round(f))
    b = vt.empty(1000, dtype=vt.bool).random_().numpy()
    assert b.any() and not b.all()
    i = vt.empty(N, dtype=vt.int64).random_(10).numpy()
    assert i.min() == 0 and i.max() == 9
    j = vt.empty(N, dtype=vt.int8).random_(-5, 0).numpy()
    assert j.min() == -5 and j.max() == -1
    k = vt.empty(N, dtype=vt.int64).random_(5, None).numpy()
    assert k.min() >= 5 and k.max() > 2**62  # up to int64's max
    h = vt.empty(N, dtype=vt.float16).random_().numpy()
    assert h.max() <= 2048


@pytest.mark.parametrize("replacement", [False, True])
def test_multinomial(replacement):
    p = vt.tensor([[0.1, 0.0, 0.6, 0.3], [1.0, 1.0, 1.0, 1.0]])
    draws = np.stack([vt.multinomial(p, 2, replacement).numpy() for _ in range(3000)])  # (3000, 2 rows, 2)
    assert draws.dtype == np.int64 and draws.shape == (3000, 2, 2)
    assert not np.any(draws[:, 0] == 1)  # a zero-probability category is never drawn
    if not replacement:
        assert np.all(draws[..., 0] != draws[..., 1])
    first = np.bincount(draws[:, 0, 0], minlength=4) / 3000
    assert abs(first[2] - 0.6) < 0.04 and abs(first[0] - 0.1) < 0.03
    big = vt.multinomial(vt.tensor([0.2, 0.8]), N, True).numpy()
    assert abs(big.mean() - 0.8) < 0.01
    assert vt.multinomial(vt.tensor([0.5, 0.0]), 2).tolist() == [0, 1]  # zero-prob last, as torch


def test_like_forms_and_out():
    base = vt.zeros(3, 4, dtype=vt.float64)
    for t in (vt.rand_like(base), vt.randn_like(base), vt.randint_like(base, 5)):
        assert t.dtype is vt.float64 and tuple(t.shape) == (3, 4)
    out = vt.empty(1)
    r = vt.rand(2, 3, out=out)
    assert r is out and tuple(out.shape) == (2, 3)
    assert vt.rand(2, 3, requires_grad=True).requires_grad


# -- against torch: dtypes, shapes, errors -------------------------------------------------------------------

def meta(x):
    return (repr(x.dtype), tuple(x.shape))


SHAPES_AND_DTYPES = [
    lambda lib: meta(lib.rand(2, 3)), lambda lib: meta(lib.rand((2, 3))), lambda lib: meta(lib.rand([2, 3])),
    lambda lib: meta(lib.rand(size=[2, 3])), lambda lib: meta(lib.rand(3, dtype=lib.float16)),
    lambda lib: meta(lib.rand(3, dtype=lib.complex64)), lambda lib: meta(lib.randn(3, dtype=lib.complex64)),
    lambda lib: meta(lib.randn(2, 0)), lambda lib: meta(lib.rand(())),
    lambda lib: meta(lib.rand(2, out=lib.empty(2, dtype=lib.float64))),
    lambda lib: meta(lib.randint(5, (3,))), lambda lib: meta(lib.randint(5, (3,), dtype=lib.float32)),
    lambda lib: meta(lib.randint(0, 2, (3,), dtype=lib.bool)), lambda lib: meta(lib.randint(5, (3,), out=lib.empty(0))),
    lambda lib: meta(lib.randint(-2**63, 2**63 - 1, (3,))), lambda lib: meta(lib.randperm(5)),
    lambda lib: meta(lib.randperm(5, dtype=lib.float32)), lambda lib: meta(lib.randperm(256, dtype=lib.uint8)),
    lambda lib: meta(lib.randperm(0)), lambda lib: meta(lib.randperm(258, dtype=lib.bfloat16)), lambda lib: meta(lib.randperm(4, out=lib.empty(0, dtype=lib.int32))),
    lambda lib: meta(lib.normal(lib.zeros(2), lib.ones(2))),
    lambda lib: meta(lib.normal(lib.zeros(2, dtype=lib.float64), lib.ones(2))),
    lambda lib: meta(lib.normal(lib.zeros(2), lib.ones(2, dtype=lib.float64))),
    lambda lib: meta(lib.normal(lib.zeros(2, dtype=lib.float64), 1)),
    lambda lib: meta(lib.normal(0, lib.ones(2, dtype=lib.float16))), lambda lib: meta(lib.normal(0., 1., (2, 3))),
    lambda lib: meta(lib.normal(0, 1, (2,))), lambda lib: meta(lib.normal(0., 1., size=(2, 3))),
    lambda lib: meta(lib.normal(0., 1., (2,), dtype=lib.float64)), lambda lib: meta(lib.normal(2., lib.ones(2))),
    lambda lib: meta(lib.normal(lib.zeros(2, 1), lib.ones(3))), lambda lib: meta(lib.normal(lib.zeros(2), lib.ones(2, 1))),
    lambda lib: meta(lib.normal(lib.zeros(2), lib.ones(2, dtype=lib.int64))),
    lambda lib: meta(lib.normal(lib.zeros(2), 1., out=lib.empty(2))),
    lambda lib: meta(lib.bernoulli(lib.tensor([0.2, 0.3], dtype=lib.float64))),
    lambda lib: meta(lib.bernoulli(lib.tensor([0, 1]), 0.5)), lambda lib: meta(lib.bernoulli(lib.zeros(2), p=0.5)),
    lambda lib: meta(lib.zeros(3, dtype=lib.int64).bernoulli_(0.5)),
    lambda lib: meta(lib.zeros(2, 3).bernoulli_(lib.tensor([0.5, 0.1, 0.3]))),
    lambda lib: meta(lib.zeros(3, dtype=lib.int64).geometric_(0.5)),
    lambda lib: meta(lib.zeros(3, dtype=lib.bool).bernoulli_(0.5)),
    lambda lib: meta(lib.multinomial(lib.tensor([0.5, 0.5]), 3, True)), lambda lib: meta(lib.multinomial(lib.ones(2, 3), 2)),
    lambda lib: meta(lib.multinomial(lib.ones(0, 3), 1)), lambda lib: meta(lib.ones(4).multinomial(2)),
    lambda lib: meta(lib.randint_like(lib.zeros(2), 5)), lambda lib: meta(lib.randint_like(lib.zeros(2), 3, 5)),
    lambda lib: meta(lib.rand_like(lib.zeros(2, dtype=lib.int64), dtype=lib.float32)),
    lambda lib: meta(lib.randn_like(lib.zeros(2, dtype=lib.float64))),
    lambda lib: meta(lib.zeros(3).uniform_(lib.tensor(0.), 2)), lambda lib: meta(lib.zeros(3).normal_(lib.tensor(1.), 2)),
    lambda lib: meta(lib.zeros(3).random_(5, None)), lambda lib: meta(lib.zeros(3).uniform_(1, 1)),
    lambda lib: meta(lib.zeros(3).random_(0, 2**24 + 2)),
]

def own_words(fn):
    """A TypeError for mistyped arguments: torch lists every overload, we name the argument."""
    fn.own_words = True
    return fn


ERRORS = [
    lambda lib: lib.rand(3, dtype=lib.int64), lambda lib: lib.randn(3, dtype=lib.int64), lambda lib: lib.rand(3, dtype=lib.bool),
    lambda lib: lib.rand(-1), lambda lib: lib.randn(2, -1), lambda lib: lib.randint(0, 5, (-1,)),
    lambda lib: lib.randint(5, 5, (3,)), lambda lib: lib.randint(6, 5, (3,)), lambda lib: lib.randint(5, (3,), dtype=lib.bool),
    lambda lib: lib.randint(0, 300, (3,), dtype=lib.uint8), lambda lib: lib.randint(-1, 3, (3,), dtype=lib.uint8),
    lambda lib: lib.randint(0, 2**63, (3,)), own_words(lambda lib: lib.randint(0, 5.5, (3,))), own_words(lambda lib: lib.randint(0.5, 5, (3,))),
    lambda lib: lib.randint(5, 3), lambda lib: lib.randint(5, size=3), own_words(lambda lib: lib.randint(5)),
    lambda lib: lib.zeros(3).uniform_(2, 1), lambda lib: lib.zeros(3).uniform_(-3e38, 3e38),
    lambda lib: lib.zeros(3).uniform_(0, float("inf")), lambda lib: lib.zeros(3).uniform_(float("nan"), 1),
    lambda lib: lib.zeros(3, dtype=lib.int64).uniform_(), lambda lib: lib.zeros(3, dtype=lib.bool).uniform_(),
    lambda lib: lib.zeros(3, dtype=lib.float16).uniform_(0, 1e5), lambda lib: lib.zeros(3).normal_(0, -1),
    lambda lib: lib.zeros(3, dtype=lib.int64).normal_(), lambda lib: lib.zeros(3).normal_(0, float("nan")),
    lambda lib: lib.zeros(3).random_(2, 1), lambda lib: lib.zeros(3).random_(0), lambda lib: lib.zeros(3).random_(-1),
    lambda lib: lib.zeros(3, dtype=lib.uint8).random_(-1, 5), lambda lib: lib.zeros(3, dtype=lib.uint8).random_(0, 257),
    lambda lib: lib.zeros(3, dtype=lib.int8).random_(-129, 128), lambda lib: lib.zeros(3, dtype=lib.int16).random_(0, 2**20),
    lambda lib: lib.zeros(3, dtype=lib.int32).random_(0, 2**40), lambda lib: lib.zeros(3, dtype=lib.bool).random_(0, 3),
    lambda lib: lib.zeros(3, dtype=lib.float16).random_(0, 2**20), lambda lib: lib.zeros(3, dtype=lib.complex64).random_(),
    own_words(lambda lib: lib.zeros(3).random_(0.5, 3)), lambda lib: lib.zeros(3).bernoulli_(2), lambda lib: lib.zeros(3).bernoulli_(-0.5),
    lambda lib: lib.zeros(3).bernoulli_(lib.tensor([0.5, 2, 0.1])), lambda lib: lib.bernoulli(lib.tensor([0.5, 1.5])),
    lambda lib: lib.bernoulli(lib.tensor([0, 1])), lambda lib: lib.zeros(3).bernoulli_(lib.tensor([0.5, 0.1])),
    lambda lib: lib.zeros(3).bernoulli_(lib.tensor([[0.5], [0.1]])), lambda lib: lib.zeros(3).bernoulli_(lib.tensor([1, 0, 1])),
    lambda lib: lib.zeros(3, dtype=lib.complex64).bernoulli_(0.5), lambda lib: lib.zeros(3).exponential_(0),
    lambda lib: lib.zeros(3).exponential_(-1), lambda lib: lib.zeros(3, dtype=lib.int64).exponential_(),
    lambda lib: lib.zeros(3, dtype=lib.complex64).exponential_(), lambda lib: lib.zeros(3).geometric_(0),
    lambda lib: lib.zeros(3).geometric_(1), lambda lib: lib.zeros(3, dtype=lib.complex64).geometric_(0.5),
    lambda lib: lib.zeros(3, dtype=lib.bool).geometric_(0.5), lambda lib: lib.zeros(3).log_normal_(0, 0),
    lambda lib: lib.zeros(3, dtype=lib.int64).log_normal_(), lambda lib: lib.zeros(3).cauchy_(0, 0),
    lambda lib: lib.zeros(3, dtype=lib.int64).cauchy_(), lambda lib: lib.randperm(-1),
    lambda lib: lib.randperm(300, dtype=lib.uint8), lambda lib: lib.randperm(129, dtype=lib.int8),
    lambda lib: lib.randperm(5, dtype=lib.bool), lambda lib: lib.randperm(5, dtype=lib.complex64),
    lambda lib: lib.randperm(2049 + 1, dtype=lib.float16),
    lambda lib: lib.multinomial(lib.tensor([0.5, 0.5]), 3), lambda lib: lib.multinomial(lib.tensor([-0.5, 0.5]), 1),
    lambda lib: lib.multinomial(lib.tensor([0., 0.]), 1), lambda lib: lib.multinomial(lib.tensor([float("inf"), 0.]), 1),
    lambda lib: lib.multinomial(lib.tensor([float("nan"), 0.]), 1), lambda lib: lib.multinomial(lib.tensor(0.5), 1),
    lambda lib: lib.multinomial(lib.ones(2, 2, 2), 1), lambda lib: lib.multinomial(lib.ones(2, 3), 0),
    lambda lib: lib.multinomial(lib.ones(3, dtype=lib.int64), 1), lambda lib: lib.multinomial(lib.ones(0), 1),
    lambda lib: lib.normal(lib.zeros(2), lib.ones(3)), lambda lib: lib.normal(0., -1., (2,)),
    lambda lib: lib.normal(lib.zeros(2), -1), lambda lib: lib.normal(lib.zeros(2), lib.tensor([1., -1])),
    lambda lib: lib.normal(lib.zeros(2, dtype=lib.int64), lib.ones(2)), own_words(lambda lib: lib.normal(0., 1.)),
    lambda lib: lib.rand_like(lib.zeros(2, dtype=lib.int64)), lambda lib: lib.rand(2, dtype=lib.float64, out=lib.empty(2)),
]

MESSAGES = [fn for fn in ERRORS if not getattr(fn, "own_words", False)]  # the rest copy torch's text


@pytest.mark.parametrize("fn", SHAPES_AND_DTYPES)
def test_shapes_and_dtypes_match_torch(fn):
    check(fn)


@pytest.mark.parametrize("fn", ERRORS)
def test_errors_match_torch(fn):
    check(fn)


@pytest.mark.parametrize("fn", MESSAGES)
def test_error_messages_match_torch(fn):
    with pytest.raises(Exception) as theirs:
        fn(torch)
    with pytest.raises(Exception) as ours:
        fn(vt)
    assert str(ours.value) == str(theirs.value)


def test_failed_op_leaves_input_unchanged():
    x = vt.arange(4.0)
    for bad in (lambda: x.uniform_(2, 1), lambda: x.normal_(0, -1), lambda: x.bernoulli_(vt.tensor([0.5, 2, 0, 0])),
                lambda: x.random_(3, 1)):
        with pytest.raises(RuntimeError):
            bad()
        assert x.tolist() == [0.0, 1.0, 2.0, 3.0]
    g = vt.Generator()
    with pytest.raises(RuntimeError):
        vt.multinomial(vt.tensor([-1.0, 1.0]), 1, generator=g)
    assert g.get_offset() == 0  # a rejected op draws nothing


def test_non_contiguous_in_place():
    x = vt.zeros(4, 6)
    view = x[:, ::2]
    view.uniform_(5, 6)
    a = x.numpy()
    assert np.all(a[:, 1::2] == 0) and np.all((a[:, ::2] >= 5) & (a[:, ::2] < 6))
    assert math.isfinite(float(view.sum()))
