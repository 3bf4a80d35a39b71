#!/usr/bin/env bash
# Sourced by launch/gpu_check.sh and launch/gpu_study.sh (ROOT set, cwd the checkout; "$@" theirs):
# PY, and on the GPU machine (no --dry-run) the wheels its image lacks. That machine is offline; its
# python3 has torch + CUDA, transformers, tensorboard, nvcc. The rest comes from .whl/ (made here by
# launch/gpu_wheels.sh, carried with the call), installed into /tmp/site (no venv: the image's torch
# stays) and put on PYTHONPATH with the checkout.
dry=0
for a in "$@"; do [ "$a" = "--dry-run" ] && dry=1; done
PY="${PYTHON:-python3}"
if [ "$dry" = 0 ]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
      export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PATH="/tmp/site/bin:$PATH"  # bin: the deepspeed launcher
      bash launch/gpu_wheels.sh --check --installed || echo "gpu env: the installed wheels do not check out (above); going on" >&2
    else
      echo "gpu env: installing .whl/ failed; going on with what the image has" >&2
    fi
  else
    echo "gpu env: no .whl/ (make it with: bash launch/gpu_wheels.sh); going on with what the image has" >&2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
