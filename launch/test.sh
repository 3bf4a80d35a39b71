#!/usr/bin/env bash
# Set up the environment (see launch/setup_env.sh) and run the test suite.
#   bash launch/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/launch/setup_env.sh"
cd "$ROOT"
python -m pytest -q tests "$@"
