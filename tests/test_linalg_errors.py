"""LAPACK failures of the CPU inverses, solves and factorizations: torch's exception type
(torch.linalg.LinAlgError, a RuntimeError) and its exact message, naming the batch element and, for inv,
getrf's zero diagonal element. One line per case: (id, fn(lib, A), A as nested lists, dtype, batch shape)."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt

RANK2 = [[1, 2, 3], [2, 4, 6], [1, 0, 1]]       # U's last diagonal element is exactly zero
MIDDLE = [[1, 0, 0], [0, 0, 0], [0, 0, 2]]      # the second
EYE3 = np.eye(3).tolist()


def _solve(lib, a):
    return lib.linalg.solve(a, lib.ones(a.shape[:-1], dtype=a.dtype))


CASES = [
    ("inv_zero", lambda L, a: L.linalg.inv(a), np.zeros((3, 3)).tolist(), "float32"),
    ("inv_rank2", lambda L, a: L.linalg.inv(a), RANK2, "float32"),
    ("inv_rank2_float64", lambda L, a: L.linalg.inv(a), RANK2, "float64"),
    ("inv_middle", lambda L, a: L.linalg.inv(a), MIDDLE, "float64"),
    ("inv_complex", lambda L, a: L.linalg.inv(a), [[1, 2], [2, 4]], "complex64"),
    ("inv_1x1", lambda L, a: L.linalg.inv(a), [[0]], "float64"),
    ("inv_batch", lambda L, a: L.linalg.inv(a), [EYE3, EYE3, MIDDLE, RANK2], "float32"),
    ("inv_batch_4d", lambda L, a: L.linalg.inv(a.reshape(2, 2, 3, 3)), [EYE3, EYE3, EYE3, RANK2], "float64"),
    ("torch_inverse", lambda L, a: L.inverse(a), RANK2, "float32"),
    ("tensor_inverse_batch", lambda L, a: a.inverse(), [MIDDLE, EYE3], "complex128"),
    ("solve", _solve, RANK2, "float32"),
    ("solve_batch", _solve, [EYE3, MIDDLE], "float64"),
    ("solve_right", lambda L, a: L.linalg.solve(a, L.ones(2, 3, dtype=a.dtype), left=False), MIDDLE, "float64"),
    ("cholesky", lambda L, a: L.linalg.cholesky(a), [[1, 0], [0, -1]], "float32"),
    ("cholesky_batch", lambda L, a: L.linalg.cholesky(a), [EYE3, EYE3, (-np.eye(3)).tolist()], "float64"),
]


@pytest.mark.parametrize("name,fn,values,dtype", CASES, ids=[c[0] for c in CASES])
def test_lapack_failure_matches_torch(name, fn, values, dtype):
    a = np.array(values, dtype=dtype)
    with pytest.raises(torch.linalg.LinAlgError) as expected:
        fn(torch, torch.from_numpy(a.copy()))
    ours = vt.from_numpy(a.copy())
    with pytest.raises(vt.linalg.LinAlgError) as got:
        fn(vt, ours)
    assert isinstance(got.value, RuntimeError)
    assert str(got.value) == str(expected.value)
    assert (np.asarray(ours.tolist(), dtype=a.dtype) == a).all()  # the input is left unchanged
