#!/usr/bin/env bash
# The linters, as the test command and the pre-commit hooks run them: ruff (style and the rules the code's
# noqa comments name) and mypy (the package's types; configured in pyproject.toml). Exits non-zero on any finding.
#
# Usage: scripts/lint.sh            (after scripts/setup.sh --test, which installs both into .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
.venv/bin/ruff check callcenter tests bench scripts || status=1
.venv/bin/mypy || status=1
exit $status
