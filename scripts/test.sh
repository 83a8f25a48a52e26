#!/usr/bin/env bash
# Every test suite: the trainer's (pytest), the extension's unit tests (node:test) and the end-to-end test
# in real VS Code (code-server + Chromium). Installs what it needs first (idempotent). Runs every suite
# even if one fails, then ends with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
# one SFT-start cache for every suite of this run (the e2e tests' trainers and pytest's share the default start);
# ignored by git, safe to delete
export GRPO_CACHE_DIR="${GRPO_CACHE_DIR:-$PWD/.cache/grpo-sft}"
source scripts/retry.sh

bash scripts/setup.sh || { echo "FAILED: scripts/setup.sh (the trainer's venv)" >&2; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  retry npm ci --no-audit --no-fund || { echo "FAILED: npm ci" >&2; exit 1; }
fi

failed=()
run() { local name=$1; shift; echo "::: $name: $*"; "$@" || failed+=("$name"); }

run "extension build and .vsix" npm run package
run "extension unit tests" npm test
run "end-to-end (code-server)" npm run test:e2e
run "trainer tests (pytest)" env PYTHONPATH=trainer .venv/bin/python -m pytest trainer/tests -q -p no:cacheprovider

# pytest runs last so that its summary line closes the output
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED suites: ${failed[*]}"
  exit 1
fi
