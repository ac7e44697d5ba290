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
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16", "float16"])
def test_forward(name, fn, shapes, dtype):
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
