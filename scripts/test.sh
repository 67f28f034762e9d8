#!/usr/bin/env bash
# One command: set up (with test extras) and run the whole test suite and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check callcenter tests bench
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
