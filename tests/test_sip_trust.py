"""Trusted sources, per-source caps and asserted identity: the pure logic and its config (no SIP)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from repo import REPO

from callcenter.config import load_config
from callcenter.exceptions import ConfigError
from callcenter.telephony.trust import DEFAULT_TRUSTED, SourcePolicy, TrustedSource, asserted_user, source_ip


def test_source_address_forms() -> None:
    assert str(source_ip("192.0.2.7:5060")) == "192.0.2.7"
    assert str(source_ip("[2001:db8::1]:5061")) == "2001:db8::1"
    assert str(source_ip("[::ffff:192.0.2.7]:5060")) == "192.0.2.7"   # dual-stack socket
    assert source_ip("garbage") is None


def test_default_trusts_only_this_host() -> None:
    policy = SourcePolicy(DEFAULT_TRUSTED, 200)
    assert policy.match(source_ip("127.0.0.1:5060")) is not None
    assert policy.match(source_ip("[::1]:5060")) is not None
    assert policy.match(source_ip("192.0.2.7:5060")) is None
    assert policy.match(None) is None


def test_most_specific_entry_sets_the_cap() -> None:
    edge = TrustedSource(ipaddress.ip_network("10.0.0.5/32"), max_calls=3)
    lan = TrustedSource(ipaddress.ip_network("10.0.0.0/24"))
    policy = SourcePolicy((lan, edge), max_calls_per_source=1)
    ip = source_ip("10.0.0.5:5060")
    assert policy.match(ip) is edge
    assert [policy.admit(ip, edge) for _ in range(4)] == [True, True, True, False]
    other = source_ip("10.0.0.6:5060")
    assert policy.admit(other, lan) and not policy.admit(other, lan)
    policy.release("10.0.0.5")
    assert policy.admit(ip, edge)


def test_asserted_identity_from_headers_only() -> None:
    msg = ("INVITE sip:hotline@w SIP/2.0\r\nFrom: <sip:0901@x>;tag=1\r\n"
           "P-Asserted-Identity: \"Bank\" <sip:0281234567@trunk.example;user=phone>\r\n"
           "P-Asserted-Identity: <tel:+84281234567>\r\n\r\n"
           "v=0\r\nP-Asserted-Identity: <sip:999@evil>\r\n")
    assert asserted_user(msg) == "0281234567"
    assert asserted_user("INVITE x SIP/2.0\r\np-asserted-identity: <tel:+84901>\r\n\r\n") == "+84901"
    assert asserted_user("INVITE x SIP/2.0\r\nFrom: <sip:1@x>\r\n\r\nP-Asserted-Identity: <sip:2@y>") == ""


def _config(tmp_path: Path, sip: str) -> Path:
    p = tmp_path / "callcenter.yaml"
    p.write_text(f"""
sip:
  port: 5060
{sip}
paths: {{ivr_scripts: {REPO / 'ivr_scripts'}, sounds: {REPO / 'sounds'},
        routing_rules: {REPO / 'routing_rules.yaml'}, campaigns: {REPO / 'campaigns'}}}
""")
    return p


def test_config_trusted_entries(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, """  trusted:
    - 192.0.2.10
    - {net: 198.51.100.0/24, max_calls: 5, pai: false}
  max_calls_per_source: 50
  rtp_timeout: 0
"""))
    s = cfg.sip
    assert [str(t.network) for t in s.trusted] == ["192.0.2.10/32", "198.51.100.0/24"]
    assert s.trusted[1].max_calls == 5 and s.trusted[1].pai is False
    assert s.max_calls_per_source == 50 and s.rtp_timeout == 0 and s.max_call_seconds == 14400


def test_config_defaults_are_safe(tmp_path: Path) -> None:
    s = load_config(_config(tmp_path, "")).sip
    assert s.trusted == DEFAULT_TRUSTED
    assert s.rtp_timeout == 60 and s.max_call_seconds == 14400 and s.max_tcp_connections == 1000


@pytest.mark.parametrize(("sip", "key", "line"), [
    ("  trusted:\n    - 10.0.0.0/8\n    - not-an-ip\n", "sip.trusted[1]", 6),
    ("  trusted:\n    - {net: 10.0.0.1, max_calls: 0}\n", "sip.trusted[0].max_calls", 5),
    ("  trusted:\n    - {net: 10.0.0.1, color: red}\n", "sip.trusted[0].color", 5),
    ("  trusted:\n    - {max_calls: 3}\n", "sip.trusted[0].net", 5),
    ("  rtp_timeout: 0.5\n", "sip.rtp_timeout", 4),
    ("  max_calls_per_source: 0\n", "sip.max_calls_per_source", 4),
])
def test_config_errors_name_key_and_line(tmp_path: Path, sip: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, sip))
    text = str(err.value)
    assert key in text and f"callcenter.yaml:{line}" in text, text


def test_uris_we_send_to_carry_one_target_and_no_headers() -> None:
    from callcenter.telephony.trust import safe_header_value, safe_uri

    for ok in ("sip:1001@127.0.0.1:5070", "sip:0901234567@trunk.example;user=phone", "tel:+84901234567",
               "sips:agent@pbx.example.com:5061;transport=tls"):
        assert safe_uri(ok), ok
    for bad in ("sip:x@h?Replaces=abc%3Bto-tag%3D1", "<sip:x@h>", "sip:x@h>,<sip:y@evil>", "sip:x@h\r\nVia: z",
                "sip:a b@h", "http://evil.example/", "", "\"Boss\" sip:x@h"):
        assert not safe_uri(bad), bad
    assert safe_header_value("<sip:0901@callcenter.invalid>")
    assert not safe_header_value("x\r\nContact: <sip:evil@h>")
