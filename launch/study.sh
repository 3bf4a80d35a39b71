#!/usr/bin/env bash
# The longer CPU study (issue 12, items 4 and 6), not in CI: set up .venv, then python -m experiments.study,
# which synthesises its own corpora (labelled read speech, extra unlabelled speakers, emotion),
# pretrains tiny with its probe curve, runs the HF reference pretraining, the probes and the fair
# fine-tune ablation (lr chosen on dev per arm, 2 seeds), and writes results/STUDY.md.
#   bash launch/study.sh              ~2.5-3 h on 2 CPU cores the first time, ~1.5 h rerun (python -m experiments.study --estimate)
#   bash launch/study.sh --quick      minutes: every kind of job once with tiny budgets -> results/study_quick/
#   bash launch/study.sh --search     the recorded search over pretraining settings -> results/SEARCH.md
# Rerunning a command resumes it (finished runs are reused); runs under runs/study*, corpora under study_data/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/launch/setup_env.sh"
cd "$ROOT"
python -m experiments.study "$@"
