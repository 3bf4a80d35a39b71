#!/usr/bin/env bash
# The GPU study (experiments/gpu/gpu_study.py): pretrain small for up to 8 minutes on corpora
# synthesised on the device, then the linear phone probe of it against its random init.
#   bash launch/gpu_study.sh [--minutes 9] [--out gpu_study]   on the lent GPU machine (one H100/H200)
#   bash launch/gpu_study.sh --dry-run                          on CPU with tiny, ~2 min (a test runs it)
# The wheels the GPU machine's image lacks come from .whl/ (launch/_gpu_env.sh).
# A device call:  bash launch/gpu_study.sh --out "$OUT"   (carry: .whl; 9 min + the wheels, in the 10-minute limit)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=launch/_gpu_env.sh
. launch/_gpu_env.sh "$@"
exec "$PY" -m experiments.gpu.gpu_study "$@"
