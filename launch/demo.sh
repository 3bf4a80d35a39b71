#!/usr/bin/env bash
# The demo on a fresh machine: set up .venv, synthesise the offline demo corpora in the real
# TIMIT and RAVDESS layouts, prepare WebDataset shards, then run the demo's jobs on them
# (pretraining, CTC and emotion fine-tunes, the random-init CTC row, the two linear probes).
#   bash launch/demo.sh                 (everything under demo_data/ and runs/demo/; on 2 cores
#                                        ~11 min in all, set-up ~1 min from local wheels -- add
#                                        the downloads elsewhere -- corpora ~0.5 min: BENCHMARKS.md)
#   DEMO_DIR=/path HOURS=2 bash launch/demo.sh       (HOURS: read-speech corpus size, ~1 h of it for training)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/launch/setup_env.sh"
cd "$ROOT"
DEMO_DIR="${DEMO_DIR:-$ROOT/demo_data}"
HOURS="${HOURS:-2}"
mkdir -p "$DEMO_DIR"

if [ ! -f "$DEMO_DIR/shards/timit/dataset.json" ]; then
  ds-w2v synth timit --out "$DEMO_DIR/corpora/TIMIT" --hours "$HOURS" --overwrite
  ds-w2v prepare --format timit "$DEMO_DIR/corpora/TIMIT" --out "$DEMO_DIR/shards/timit" --overwrite --no-progress
fi
if [ ! -f "$DEMO_DIR/shards/ravdess/dataset.json" ]; then
  ds-w2v synth ravdess --out "$DEMO_DIR/corpora/RAVDESS" --overwrite
  ds-w2v prepare --format ravdess "$DEMO_DIR/corpora/RAVDESS" --out "$DEMO_DIR/shards/ravdess" --overwrite --no-progress
fi

python -m experiments.demo --data "$DEMO_DIR/shards" "$@"
