#!/usr/bin/env bash
# The encrypted SIP edge in front of the demo hotline (run it beside ./scripts/demo.sh, in another terminal):
# rtpengine and Kamailio (deploy/kamailio/kamailio.cfg), a self-signed certificate, SIP passwords for the demo
# agents. Agents' phones register there: plain SIP (UDP/TCP) on EDGE_SIP_PORT (5062), TLS on EDGE_TLS_PORT
# (5061; SRTP media), browsers on wss://EDGE_HOST:EDGE_WSS_PORT (8443; DTLS-SRTP + ICE). See README
# "Encrypted edge / agents from home". Ctrl-C stops both.
#
# Env: EDGE_HOST (the address phones reach, default 127.0.0.1; the certificate is made for it), RTP_ADDRESS
# (rtpengine's media address, default EDGE_HOST), WORKER (the hotline, default 127.0.0.1:5060),
# EDGE_SIP_PORT, EDGE_TLS_PORT, EDGE_WSS_PORT, RTPENGINE_NG_PORT (2223), EDGE_RPC_PORT (5065: the registrations,
# loopback only), EDGE_DIR (default var/edge), EDGE_SHM_MB (256: Kamailio's shared memory; a TLS/WSS phone holds ~150 KB,
# so 256 MB carries ~1,500 phones).
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${EDGE_HOST:-127.0.0.1}"
SIP_PORT="${EDGE_SIP_PORT:-5062}" TLS_PORT="${EDGE_TLS_PORT:-5061}" WSS_PORT="${EDGE_WSS_PORT:-8443}"
NG_PORT="${RTPENGINE_NG_PORT:-2223}" RPC_PORT="${EDGE_RPC_PORT:-5065}" DIR="$(realpath -m "${EDGE_DIR:-var/edge}")"
SHM_MB="${EDGE_SHM_MB:-256}"
for cmd in kamailio rtpengine openssl; do
    command -v "$cmd" >/dev/null 2>&1 || [[ -x "/usr/sbin/$cmd" ]] || {
        echo "[edge] $cmd is missing: apt-get install kamailio kamailio-tls-modules kamailio-websocket-modules rtpengine-daemon openssl" >&2
        exit 1; }
done
mkdir -p "$DIR/callcenter" && chmod 700 "$DIR"
CREDS="$DIR/agents.secrets.yaml"
if [[ ! -f "$CREDS" ]]; then      # the demo agents' SIP passwords, made once
    (umask 077; .venv/bin/python -c 'import secrets
for a in ("1001", "1002", "1003", "1004"):
    print(f"\"{a}\": {secrets.token_urlsafe(12)}")' > "$CREDS")
fi
TLS=(--self-signed "$HOST")
[[ -f "$DIR/callcenter/edge.crt" ]] && TLS=(--tls-cert "$DIR/callcenter/edge.crt" --tls-key "$DIR/callcenter/edge.key")
.venv/bin/callcenter kamailio --credentials "$CREDS" --worker "${WORKER:-127.0.0.1:5060}" --out "$DIR/callcenter" \
    --rtpengine "udp:127.0.0.1:$NG_PORT" --wss-port "$WSS_PORT" --rpc "127.0.0.1:$RPC_PORT" "${TLS[@]}" >&2
cp deploy/kamailio/kamailio.cfg "$DIR/kamailio.cfg"

rtpengine --config-file=none --foreground --log-stderr --table=-1 --interface="${RTP_ADDRESS:-$HOST}" \
    --listen-ng="127.0.0.1:$NG_PORT" --port-min=40000 --port-max=40999 >"$DIR/rtpengine.log" 2>&1 &
RTPENGINE_PID=$!
trap 'kill $RTPENGINE_PID 2>/dev/null || true' EXIT
cat >&2 <<MSG
[edge] SIP $HOST:$SIP_PORT (udp, tcp), TLS $HOST:$TLS_PORT, WSS wss://$HOST:$WSS_PORT; logs: $DIR/kamailio.log, rtpengine.log
[edge] the demo agents' SIP passwords: $CREDS; the certificate phones must trust: $DIR/callcenter/edge.crt
[edge] to ring agent 1001 here, set its uri to sip:1001@$HOST:$SIP_PORT in routing_rules.yaml (then restart the demo)
[edge] to offer calls only to agents with a phone registered here: callcenter.yaml edge.registrations: [http://127.0.0.1:$RPC_PORT/RPC]
MSG
kamailio -DD -E -f "$DIR/kamailio.cfg" -l "udp:$HOST:$SIP_PORT" -l "tcp:$HOST:$SIP_PORT" -l "tls:$HOST:$TLS_PORT" \
    -l "tls:$HOST:$WSS_PORT" -w "$DIR" -A "DBURL=\"text://$DIR/callcenter\"" \
    -A "DSLIST=\"$DIR/callcenter/dispatcher.list\"" -A "CTLSOCK=\"unix:$DIR/ctl.sock\"" -P "$DIR/kamailio.pid" \
    -m "$SHM_MB" -M 8 >"$DIR/kamailio.log" 2>&1
