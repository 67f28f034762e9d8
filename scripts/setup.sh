#!/usr/bin/env bash
# Set up callcenter on a Debian 12 / Ubuntu machine: system packages, the venv, the
# pjsua2 build (cached), and the prompts. Idempotent: a second run only checks.
#
# Usage: scripts/setup.sh [--test]     (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

say() { echo "[setup] $*" >&2; }

SUDO=""
[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"

PKGS=(python3 python3-venv python3-dev build-essential swig xz-utils dpkg-dev ca-certificates
      redis-server redis-tools sip-tester espeak-ng sox libsox-fmt-base)
[[ $WITH_TEST -eq 1 ]] && PKGS+=(postgresql kamailio baresip)   # the SIP edge and a registering softphone
# The encrypted edge (SIP over TLS and WSS; rtpengine, userspace forwarding, anchors the agents' SRTP/WebRTC media;
# iptables: the silent-phone test drops a connection's packets)
[[ $WITH_TEST -eq 1 ]] && PKGS+=(kamailio-tls-modules kamailio-websocket-modules rtpengine-daemon openssl iptables)
# The web console's browser tests (tests/browser.py): Debian's chromium driven by selenium through its chromedriver
[[ $WITH_TEST -eq 1 ]] && PKGS+=(chromium chromium-driver)
# npm installs the console's third-party front-end files (web/package-lock.json); Debian's if there is none
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
# The Asterisk benchmark peer's build deps (bench/asterisk/build.sh builds it on demand, not here).
[[ $WITH_TEST -eq 1 ]] && PKGS+=(libedit-dev libjansson-dev libxml2-dev uuid-dev libsqlite3-dev libssl-dev
                                 libncurses-dev pkg-config bzip2 patch)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    say "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged redis-server service is not used: callcenter starts its own on a local socket.
# Nor is the packaged kamailio service (the tests run their own edge): it would hold port 5060, which the
# demo hotline answers on.
if [[ $WITH_TEST -eq 1 ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled kamailio >/dev/null 2>&1; then
    $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
fi
# Nor the packaged rtpengine service (the tests and the demo start their own, on their own ports)
if [[ $WITH_TEST -eq 1 ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-enabled rtpengine-daemon >/dev/null 2>&1; then
    $SUDO systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || true
fi

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    say "creating .venv"
    "$PY" -m venv .venv
fi
VPY="$ROOT/.venv/bin/python"
extras="."
[[ $WITH_TEST -eq 1 ]] && extras=".[test]"
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
say "installing callcenter into .venv"
"$VPY" -m pip install -q -e "$extras" 2>&1 | grep -v "^WARNING: Location" || true

say "web console assets (npm ci into web/node_modules)"
# Pinned with their integrity hashes in web/package-lock.json; installed again only when the lock changed.
if ! cmp -s web/package-lock.json web/node_modules/.callcenter-lock.json; then
    (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    # JsSIP ships CommonJS only: bundled for the browser by the pinned esbuild (the same bytes every time)
    (cd web && npm run --silent build >&2)
    cp web/package-lock.json web/node_modules/.callcenter-lock.json
fi
# the files the pages load must be exactly those web/assets.json names (the pages' Subresource Integrity)
"$VPY" -m callcenter.console.assets web

say "pjsua2 with call-center limits"
bash scripts/build_pjsua2.sh "$VPY"

say "prompts (sounds/)"
"$VPY" scripts/make_prompts.py --quiet

"$ROOT/.venv/bin/callcenter" doctor --config "${CALLCENTER_CONFIG:-callcenter.yaml}" --no-redis >&2
