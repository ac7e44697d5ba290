#!/usr/bin/env bash
# Set up (idempotent) and run the main job: train the sequence-reversal transformer (on the GPU when
# there is one, else a smaller CPU default). Usage: bash scripts/run.sh [train args, e.g. --iters 200]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
exec python3 -m vibetensor train "$@"
