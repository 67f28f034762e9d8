"""The repository's root directory, for tests and their helpers (scripts, configs, sounds, flows)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
