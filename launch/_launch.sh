#!/usr/bin/env bash
# Shared by launch/{pretrain,finetune_ctc,finetune_cls}.sh: COMMAND then the trainer's arguments.
# With a GPU (or HOSTFILE) it runs `deepspeed [--num_gpus N | --hostfile H] --module ds_w2v.train`;
# on a machine without GPUs, one CPU process (DeepSpeed's CPU accelerator, gloo).
set -euo pipefail
# the project's environment (launch/setup_env.sh made it) when none is active: `python` and
# `deepspeed` are then its own, activated or not
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "${VENV:-$ROOT/.venv}/bin/python" ]; then
  # shellcheck disable=SC1091
  . "${VENV:-$ROOT/.venv}/bin/activate"
fi
command="$1"; shift
port="${MASTER_PORT:-29500}"
if [ -n "${HOSTFILE:-}" ]; then
  exec deepspeed --hostfile "$HOSTFILE" --master_port "$port" --module ds_w2v.train "$command" "$@"
fi
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  exec deepspeed ${NUM_GPUS:+--num_gpus "$NUM_GPUS"} --master_port "$port" --module ds_w2v.train "$command" "$@"
fi
if [ "${NUM_GPUS:-1}" -gt 1 ]; then  # CPU processes (tests, debugging): gloo
  DS_ACCELERATOR=cpu exec deepspeed --num_gpus "$NUM_GPUS" --master_port "$port" --module ds_w2v.train "$command" "$@"
fi
exec python -m ds_w2v.train "$command" "$@"
