#!/usr/bin/env bash
# CTC fine-tuning (speech recognition) under the deepspeed launcher:
#   NUM_GPUS=8 bash launch/finetune_ctc.sh --recipe finetune_ctc_original data.shards=/data/timit model.init=runs/pretrain
set -euo pipefail
exec "$(dirname "$0")/_launch.sh" finetune-ctc "$@"
