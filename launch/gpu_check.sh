#!/usr/bin/env bash
# The GPU check (ds_w2v/bench/gpu_check.py): every GPU path once, time-boxed, results in gpu_results/.
#   bash launch/gpu_check.sh [--minutes 8.5] [--out gpu_results] on the lent GPU machine (one H100/H200)
#   bash launch/gpu_check.sh --dry-run                            on CPU with tiny, ~5 min (12 at most; CI runs it)
# On the GPU machine (offline; its python3 has torch + CUDA, transformers, tensorboard, nvcc) the wheels
# that image lacks come from .whl/ (made here by launch/gpu_wheels.sh, carried with the call): they are
# installed into /tmp/site (no venv; the image's torch stays) and put on PYTHONPATH with the checkout.
# A device call:  bash launch/gpu_check.sh --out "$OUT"   (carry: .whl; 8.5 min + the wheels, in the 10-minute limit)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
dry=0
for a in "$@"; do [ "$a" = "--dry-run" ] && dry=1; done
PY="${PYTHON:-python3}"
if [ "$dry" = 0 ]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
      export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"  # bin: the deepspeed launcher
      bash launch/gpu_wheels.sh --check --installed || echo "gpu_check: the installed wheels do not check out (above); going on" >&2
    else
      echo "gpu_check: installing .whl/ failed; going on with what the image has" >&2
    fi
  else
    echo "gpu_check: no .whl/ (make it with: bash launch/gpu_wheels.sh); going on with what the image has" >&2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m ds_w2v.bench.gpu_check "$@"
