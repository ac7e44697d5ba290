"""Matrix products on CUDA (cuBLAS) against torch's CUDA results, and their gradients."""
import pytest
import torch

import vibetensor.torch as vt
from oracle import check, make_pair

pytestmark = pytest.mark.cuda

CASES = [  # (name, fn, shapes)
    ("mm", lambda lib, a, b: a @ b, ((33, 17), (17, 9))),
    ("mm_t", lambda lib, a, b: a.T @ b, ((17, 33), (17, 9))),
    ("mm_bt", lambda lib, a, b: a @ b.T, ((33, 17), (9, 17))),
    ("bmm", lambda lib, a, b: lib.bmm(a, b), ((4, 8, 5), (4, 5, 6))),
    ("bmm_mT", lambda lib, a, b: a.mT @ b, ((4, 5, 8), (4, 5, 6))),
    ("matmul_broadcast", lambda lib, a, b: a @ b, ((2, 3, 8, 5), (5, 6))),
    ("matmul_1d", lambda lib, a, b: a @ b, ((5,), (5, 6))),
    ("addmm", lambda lib, a, b: lib.addmm(lib.ones(6, device="cuda", dtype=a.dtype), a, b, beta=0.5, alpha=2),
     ((7, 5), (5, 6))),
    ("linear", lambda lib, a, b: lib.nn.functional.linear(a, b, lib.ones(b.shape[0], device="cuda", dtype=a.dtype)),
     ((7, 5), (6, 5))),
    # a random bias: cuBLASLt's bias epilogue must add it per output column (a dense 1-D bias),
    # a strided one takes the copy-then-gemm path
    ("linear_bias", lambda lib, a, b, c: lib.nn.functional.linear(a, b, c), ((7, 5), (6, 5), (6,))),
    ("linear_bias_3d", lambda lib, a, b, c: lib.nn.functional.linear(a, b, c), ((2, 7, 5), (6, 5), (6,))),
    ("linear_bias_strided", lambda lib, a, b, c: lib.nn.functional.linear(a, b, c[::2]), ((7, 5), (6, 5), (12,))),
    ("addmm_bias", lambda lib, a, b, c: lib.addmm(c, a, b), ((7, 5), (5, 6), (6,))),
    ("addmm_bias_alpha", lambda lib, a, b, c: lib.addmm(c, a.T, b, alpha=0.5), ((5, 7), (5, 6), (6,))),
    ("empty_inner", lambda lib, a, b: a @ b, ((3, 0), (0, 4))),
    ("mv", lambda lib, a, b: lib.mv(a, b), ((7, 5), (5,))),
    ("mv_t_strided", lambda lib, a, b: lib.mv(a.T, b[::2]), ((10, 7), (20,))),
    ("addmv", lambda lib, a, b: lib.addmv(lib.ones(7, device="cuda", dtype=a.dtype), a, b, beta=0.5, alpha=2),
     ((7, 5), (5,))),
    ("baddbmm", lambda lib, a, b: lib.baddbmm(lib.ones(1, 6, device="cuda", dtype=a.dtype), a, b, beta=0.5,
                                              alpha=2), ((4, 8, 5), (4, 5, 6))),
    ("addbmm", lambda lib, a, b: lib.addbmm(lib.ones(8, 6, device="cuda", dtype=a.dtype), a, b, beta=0.5,
                                            alpha=2), ((4, 8, 5), (4, 5, 6))),
    ("addbmm_beta0", lambda lib, a, b: lib.addbmm(lib.ones(8, 6, device="cuda", dtype=a.dtype), a, b, beta=0),
     ((3, 8, 5), (3, 5, 6))),
    ("bmm_broadcast_batch", lambda lib, a, b: lib.bmm(a, b.expand(4, -1, -1)), ((4, 8, 5), (1, 5, 6))),
    ("mm_offset_views", lambda lib, a, b: a[1:, 1:] @ b[1:, 1:], ((34, 18), (18, 10))),
    ("mm_strided_copy", lambda lib, a, b: a[:, ::2] @ b, ((33, 34), (17, 9))),
]


@pytest.fixture(params=["cublaslt", "cublas"])
def path(request):
    """Each case on cuBLASLt (the default for half types and float32) and on cublasGemmEx."""
    from vibetensor.runtime.cuda import blas
    blas.use_lt[0] = request.param == "cublaslt"
    yield request.param
    blas.use_lt[0] = True


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_forward(name, fn, shapes, dtype, path):
    torch.backends.cuda.matmul.allow_tf32 = False
    pairs = [tuple(t.cuda() for t in make_pair(s, dtype, seed=i)) for i, s in enumerate(shapes)]
    if name.startswith("addbmm") and dtype in ("bfloat16", "float16"):
        # torch rounds to the half type after each batch's product; ours is one product with float32
        # accumulation, rounded once: compare both with the float32 result rounded to the half type
        exact = fn(torch, *[p[0].float() for p in pairs]).to(pairs[0][0].dtype)
        ours = torch.from_numpy(fn(vt, *[p[1] for p in pairs]).float().cpu().numpy())
        torch.testing.assert_close(ours, exact.float().cpu(), rtol=1e-2, atol=1e-2)
        return
    check(fn, *pairs, rtol=2e-2 if dtype in ("bfloat16", "float16") else None,
          atol=2e-2 if dtype in ("bfloat16", "float16") else None)


@pytest.mark.parametrize("name,fn,shapes", CASES[:6], ids=[c[0] for c in CASES[:6]])
def test_gradients(name, fn, shapes):
    pairs = []
    for i, s in enumerate(shapes):
        t, v = make_pair(s, "float64", seed=i)
        pairs.append((t.cuda().requires_grad_(), v.cuda().requires_grad_()))
    for lib, k in ((torch, 0), (vt, 1)):
        fn(lib, *[p[k] for p in pairs]).sum().backward()
    for t, v in pairs:
        check(lambda lib, g: g, (t.grad, v.grad))


def _exact(fn, pairs, dtype):
    """fn on float32 copies (no TF32: exact for half-type inputs up to float32 rounding), rounded to dtype."""
    return fn(torch, *[p[0].float() for p in pairs]).to(dtype).float().cpu()


SPLIT_K = [  # small outputs with long sums: the shapes cuBLAS splits over k
    ("mm", lambda lib, a, b: a @ b, ((8, 8192), (8192, 8))),
    ("mm_t", lambda lib, a, b: a.T @ b, ((4096, 16), (4096, 4))),
    ("addmm", lambda lib, a, b: lib.addmm(lib.full((5,), 0.5, device="cuda", dtype=a.dtype), a, b, beta=0.5,
                                          alpha=2), ((6, 6000), (6000, 5))),
    ("addbmm", lambda lib, a, b: lib.addbmm(lib.ones(8, 6, device="cuda", dtype=a.dtype), a, b, beta=0.5, alpha=2),
     ((64, 8, 100), (64, 100, 6))),
    ("bmm", lambda lib, a, b: lib.bmm(a, b), ((2, 4, 5000), (2, 5000, 3))),
]


@pytest.mark.parametrize("name,fn,shapes", SPLIT_K, ids=[c[0] for c in SPLIT_K])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_products_round_once(name, fn, shapes, dtype, path):
    """Partial sums over k stay in float32: the result is the float32 product rounded once (within an
    ulp of the half type), never partials rounded to the half type and added (several ulps off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    pairs = [tuple(t.cuda() for t in make_pair(s, dtype, seed=i)) for i, s in enumerate(shapes)]
    exact = _exact(fn, pairs, pairs[0][0].dtype)
    ours = torch.from_numpy(fn(vt, *[p[1] for p in pairs]).float().cpu().numpy())
    ulp = 2.0 ** (-7 if dtype == "bfloat16" else -10)
    torch.testing.assert_close(ours, exact, rtol=ulp, atol=1e-2 * exact.abs().max().item() * ulp)


def test_cublaslt_plans_an_algorithm():
    """The half-type and float32 products really run on cuBLASLt (not the gemm_ex fallback), and a
    repeated product reuses its plan."""
    from vibetensor.runtime.cuda import blas
    for dtype in (vt.bfloat16, vt.float16, vt.float32):
        a = vt.randn(64, 96).to(dtype).cuda()
        b = vt.randn(96, 80).to(dtype).cuda()
        blas._lt_plans.clear()
        a @ b
        a @ b
        plans = list(blas._lt_plans.values())
        assert len(plans) == 1 and plans[0] is not None, dtype
