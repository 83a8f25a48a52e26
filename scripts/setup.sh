#!/usr/bin/env bash
# Set up everything the trainer needs: a repo-local virtual environment (.venv) from the pinned
# trainer/requirements-dev.txt, plus the benchmarks' pins (bench/requirements.txt: TRL, matplotlib).
# Idempotent: re-running only installs what changed (pip's cache serves the multi-GB torch wheel after the
# first time).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/retry.sh
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat trainer/requirements.txt trainer/requirements-dev.txt bench/requirements.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  retry .venv/bin/python -m pip install --quiet --upgrade pip
  retry .venv/bin/python -m pip install --quiet --resume-retries 20 -r trainer/requirements-dev.txt -r bench/requirements.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import torch, transformers; print(f'trainer env ready: torch {torch.__version__}, transformers {transformers.__version__}')"
