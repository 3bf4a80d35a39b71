#!/usr/bin/env bash
# Training-time benchmark: real DeepSpeed engine updates per size, ZeRO stage and precision, ours vs
# HF transformers (docs/benchmarks.md). Sets nothing up: run it inside the venv, like pretrain.sh.
#   bash launch/bench.sh                               # defaults below, by what is visible
#   bash launch/bench.sh --presets original --zero 3 --steps 10 --json bench.jsonl
# With a GPU: --presets small,medium,original --zero 2,3 --precisions bf16
# Without:    --presets tiny --zero 2 --precisions fp32,bf16
# Arguments given replace the defaults they name (argparse keeps the last value).
set -euo pipefail
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  defaults=(--presets small,medium,original --zero 2,3 --precisions bf16)
else
  defaults=(--presets tiny --zero 2 --precisions fp32,bf16)
fi
exec ds-w2v bench train "${defaults[@]}" "$@"
