#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install ds_w2v into it.
# Sourced by launch/test.sh and launch/demo.sh; safe to run again.
#   VENV=path   where the environment lives (default: .venv in the repository root)
# On a machine without torch, torch is installed first, so that the `torch>=2.4` requirement is
# already met: on a machine without an NVIDIA GPU the CPU build of torch 2.13.0 (a wheel of it on
# local disk where pip's find-links has one, else PyTorch's CPU index), never PyPI's multi-GB CUDA
# build (a plain `pip install -e .` with no torch pulled torch+cu130, a 5.9 GB venv); with one, PyPI's.
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
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    python -m pip install -q torch                                   # a GPU: the CUDA build
  elif python -m pip install -q --no-index --no-deps torch==2.13.0 2>/dev/null; then
    python -m pip install -q torch==2.13.0                           # the local CPU wheel, then its dependencies
  else
    python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple
  fi
fi
python -m pip install -q -e "$ROOT[test,demo]"
