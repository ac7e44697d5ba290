#!/usr/bin/env bash
# Set up (idempotent) and run the CPU test suite. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test]" 2>&1 | grep -v "Running pip as the 'root' user" || true
exec python3 -m pytest -q -n 2 -p no:cacheprovider "$@" tests
