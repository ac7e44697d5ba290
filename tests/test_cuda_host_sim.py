"""The CUDA host path on CPU (CI): benchmarks/cuda_host_sim.py runs CUDA ops against a simulated
device (allocator on fake memory, launches recorded, nothing computed) and checks that replay
plans launch exactly what the full path launches, then runs reversal training steps end to end.
In a subprocess: the simulation patches the runtime process-wide."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="the simulation needs Triton (installed by the test extras)")
pytest.importorskip("cuda.bindings", reason="the simulation needs cuda-bindings (installed by the test extras)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_replay_plans_launch_what_the_full_path_launches():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "cuda_host_sim.py"), "--check"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), r.stdout + r.stderr
