#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install ds_w2v into it.
# Sourced by launch/test.sh and launch/demo.sh; safe to run again.
#   VENV=path   where the environment lives (default: .venv in the repository root)
# On a machine without torch, the CPU build torch==2.13.0 is installed first, so that the
# `torch>=2.4` requirement is already met and pip never pulls a multi-GB CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q torch==2.13.0
fi
python -m pip install -q -e "$ROOT[test,demo]"
