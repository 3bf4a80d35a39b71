#!/usr/bin/env bash
# Self-supervised pretraining under the deepspeed launcher. All arguments go to the trainer:
#   NUM_GPUS=8 bash launch/pretrain.sh --recipe pretrain_original data.shards=/data/ls960
#   HOSTFILE=launch/hostfile.example bash launch/pretrain.sh --recipe pretrain_large data.shards=/data/ll60k
#   bash launch/pretrain.sh --recipe pretrain_tiny data.shards=demo_data/shards/timit   (CPU: one process)
# NUM_GPUS (default: all visible), HOSTFILE (multi-node), MASTER_PORT (default 29500).
set -euo pipefail
exec "$(dirname "$0")/_launch.sh" pretrain "$@"
