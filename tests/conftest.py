import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # tests import oracle.py as a plain module

import pytest  # noqa: E402

try:  # the oracle: torch's thread pool spins on a small shared machine; one thread is far faster there
    import torch
    torch.set_num_threads(1)
except ImportError:
    pass


def _gpu_available():
    try:
        from vibetensor.runtime.cuda import driver
        return driver.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a GPU: CI has none (they run through scripts/gpu_check.sh)."""
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU; run scripts/gpu_check.sh on a GPU machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def no_tf32():
    """Matrix products in full float32 on both sides: torch's TF32 switch and ours
    (blas.allow_tf32, torch.backends.cuda.matmul.allow_tf32's twin) off for the test."""
    from vibetensor.runtime.cuda import blas
    saved, ours = torch.backends.cuda.matmul.allow_tf32, blas.allow_tf32[0]
    torch.backends.cuda.matmul.allow_tf32 = False
    blas.allow_tf32[0] = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved
    blas.allow_tf32[0] = ours
