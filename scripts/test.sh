#!/usr/bin/env bash
# One command: set up (with test extras), run the linters (scripts/lint.sh: ruff and mypy), then the whole
# test suite. A lint finding fails it before any test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/lint.sh
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
