"""The C launch path (runtime/cuda/fastlaunch.py) without a GPU: fastlaunch_stub_check.py runs in a
subprocess over a stub libcuda.so.1 whose cuLaunchKernel records what it is given, and checks that
Kernel's C __call__ launches what the Python path's rules choose. Needs a C compiler and Triton's
headers (what the extension is built with on a GPU machine); skipped where they are missing."""
import os
import shutil
import subprocess
import sys

import pytest

STUB = r"""
#include "cuda.h"
#include <stdint.h>
/* the last launch: count, function, grid x/y/z, block x, shared bytes, stream, parameter count, parameters */
static uint64_t rec[9 + 64];
uint64_t *last(void) { return rec; }
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, CUstream stream, void **params, void **extra) {
  uint64_t n = (uint64_t)(uintptr_t)f % 100;  /* the test's function ids carry their parameter count */
  rec[0]++; rec[1] = (uint64_t)(uintptr_t)f; rec[2] = gx; rec[3] = gy; rec[4] = gz; rec[5] = bx;
  rec[6] = shared; rec[7] = (uint64_t)(uintptr_t)stream; rec[8] = n;
  for (uint64_t i = 0; i < n && i < 64; i++) rec[9 + i] = *(uint64_t *)params[i];  /* 8-byte slots */
  return CUDA_SUCCESS;
}
CUresult cuGetErrorName(CUresult e, const char **p) { *p = "stub"; return CUDA_SUCCESS; }
"""


def _toolchain():
    cc = shutil.which("gcc") or shutil.which("cc")
    try:
        from triton.backends.nvidia import driver as nv
    except Exception:  # noqa: BLE001  (no Triton: nothing to build the launcher with)
        return None, None
    return cc, nv.include_dirs[0]


def test_c_kernel_call_launches_what_the_python_rules_choose(tmp_path):
    cc, include = _toolchain()
    if cc is None or include is None:
        pytest.skip("no C compiler or no Triton headers: the fast launcher cannot be built here")
    src = tmp_path / "stub.c"
    src.write_text(STUB)
    lib = tmp_path / "libcuda.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", f"-I{include}", "-Wl,-soname,libcuda.so.1", "-o", str(lib),
                    str(src)], check=True)
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path), TRITON_CACHE_DIR=str(tmp_path / "triton"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    check = os.path.join(root, "tests", "fastlaunch_stub_check.py")
    out = subprocess.run([sys.executable, check, str(lib)], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-3000:] + out.stderr[-3000:]
