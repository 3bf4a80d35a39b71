#!/usr/bin/env bash
# The GPU check (experiments/gpu/gpu_check.py): every GPU path once, time-boxed, results in gpu_results/.
#   bash launch/gpu_check.sh [--minutes 8.5] [--out gpu_results] on the GPU machine (one H100/H200)
#   bash launch/gpu_check.sh --dry-run                            on CPU with tiny, 2-5 min (12 at most; CI runs it)
# The wheels the GPU machine's image lacks come from .whl/ (launch/_gpu_env.sh).
# A device call:  bash launch/gpu_check.sh --out "$OUT"   (carry: .whl; 8.5 min + the wheels, in the 10-minute limit)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=launch/_gpu_env.sh
. launch/_gpu_env.sh "$@"
exec "$PY" -m experiments.gpu.gpu_check "$@"
