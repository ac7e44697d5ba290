#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install what it lacks from local wheels (.whl/, no network
# needed), run the GPU tests (marker `cuda`) and the GPU benchmarks, print a one-screen summary.
#   bash scripts/gpu_check.sh            # tests and benchmarks; full logs go to $OUT (default /tmp/vt-gpu)
#   bash scripts/gpu_check.sh tests      # only the tests (or: bench, only the benchmarks)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vt-gpu}
PARTS=${1:-all}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/vt-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/vt-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
tests_rc=0 bench_rc=0

if [ "$PARTS" != bench ]; then
  # one file per worker (--dist loadfile): files that compare allocator statistics see only their own
  # allocations; eight workers share the GPU and compile Triton kernels in parallel
  python3 -m pytest -q -m cuda -p no:cacheprovider tests -n ${GPU_WORKERS:-8} --dist loadfile \
    --timeout 300 -W ignore::DeprecationWarning > "$OUT/tests.log" 2>&1
  tests_rc=$?
  echo "== GPU tests (pytest -m cuda) =="
  grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | cut -c1-200 | head -n 40
  tail -n 1 "$OUT/tests.log"
fi

if [ "$PARTS" != tests ]; then
  run() { local log=$1; shift; "$@" > "$OUT/$log" 2>&1 || bench_rc=1; }
  run bench_runtime.log python3 benchmarks/cuda_runtime.py --json "$OUT/cuda_runtime.json"
  run bench_ops.log python3 benchmarks/cuda_ops.py --json "$OUT/cuda_ops.json"
  run bench_optim.log python3 benchmarks/cuda_optim.py --json "$OUT/cuda_optim.json"
  run bench_reversal.log python3 benchmarks/reversal.py --json "$OUT/reversal.json" --plot "$OUT/reversal.png" --seeds 5
  run bench_kernels.log python3 benchmarks/reversal_kernels.py --json "$OUT/reversal_kernels.json"
  run reversal_profile.log python3 benchmarks/reversal_profile.py --steps 50 --top 25
  echo "== CUDA runtime benchmark (vibetensor vs torch, same run) =="
  tail -n 9 "$OUT/bench_runtime.log"
  echo "== CUDA ops benchmark (vibetensor vs torch, same run) =="
  tail -n 14 "$OUT/bench_ops.log"
  echo "== CUDA optimizer benchmark (AdamW over 100 params, vibetensor vs torch foreach/fused) =="
  tail -n 9 "$OUT/bench_optim.log"
  echo "== Reversal workload, 2000 iterations (vibetensor vs torch, same run) =="
  grep -A 5 "^variant" "$OUT/bench_reversal.log"
  grep -A 3 "^mean loss of the last" "$OUT/bench_reversal.log"
  echo "== GPU kernel time per reversal step ($OUT/bench_kernels.log has the per-kernel tables) =="
  tail -n 5 "$OUT/bench_kernels.log"
  echo "== Host profile of one eager reversal step ($OUT/reversal_profile.log) =="
  head -n 8 "$OUT/reversal_profile.log"
fi
exit $(( tests_rc != 0 || bench_rc != 0 ))
