#!/usr/bin/env bash
# Classification fine-tuning (speech emotion recognition) under the deepspeed launcher:
#   NUM_GPUS=8 bash launch/finetune_cls.sh --recipe finetune_cls_original data.shards=/data/ravdess model.init=runs/pretrain
set -euo pipefail
exec "$(dirname "$0")/_launch.sh" finetune-cls "$@"
