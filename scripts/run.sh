#!/usr/bin/env bash
# Set up (idempotent) and run the main job. Usage: bash scripts/run.sh [demo args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
exec python3 -m vibetensor demo "$@"
