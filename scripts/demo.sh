#!/usr/bin/env bash
# One command: set everything up and start the demo hotline on SIP port 5060 with demo agents.
# Redis: its own redis-server on a local socket under var/ unless REDIS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[demo] agents on TLS/SRTP desk phones or browsers (WSS), from home: ./scripts/edge.sh in another terminal (README \"Encrypted edge / agents from home\")" >&2
exec .venv/bin/callcenter demo --config "${CALLCENTER_CONFIG:-callcenter.yaml}"
