#!/usr/bin/env bash
# The GPU check (see scripts/gpu_check.py): bash scripts/gpu_check.sh OUT_DIR [--dry-run] [--budget-s 480]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" scripts/gpu_check.py "$@"
