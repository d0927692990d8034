#!/usr/bin/env bash
# The README's test command: lint, types, import contracts, then the whole pytest suite
# (incl. browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
bash scripts/ensure-chromium.sh
export PATH="$PWD/.venv/bin:$PATH"
# One command per line: under `set -e` a failure before the last `&&` of a list is ignored.
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"; mypy .
echo "== import contracts"; lint-imports  # pyproject.toml [tool.importlinter]
echo "== pytest"; pytest "$@"
