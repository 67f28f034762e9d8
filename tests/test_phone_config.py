"""The ``phone`` section of callcenter.yaml (callcenter/console/phone.py): where the agent desktop's browser
phone registers and whose credentials it gets; errors name file, key and line. And the credentials it hands
out: an agent's HA1 for the edge's realm, never the password."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo import REPO

from callcenter import edge
from callcenter.console.phone import PhoneBook, PhoneSettings, parse_settings
from callcenter.exceptions import ConfigError
from callcenter.routing.rules import load as load_rules
from callcenter.yamlsrc import Reader, loads


def read(text: str, base: Path) -> PhoneSettings | None:
    data, loc = loads(text, "callcenter.yaml")
    return parse_settings(Reader(data, loc), lambda value: base / value)


def test_the_phone_section(tmp_path: Path) -> None:
    (tmp_path / "creds.yaml").write_text('"1001": s3cret-1001\n')
    assert read("{}", tmp_path) is None                 # no section: no phone on the agent page
    s = read('phone: {ws_url: "wss://edge.example.com:8443", credentials: creds.yaml}\n', tmp_path)
    assert s == PhoneSettings("wss://edge.example.com:8443", tmp_path / "creds.yaml", "edge.example.com")
    s = read('phone: {ws_url: "wss://10.0.0.5:8443/ws", credentials: creds.yaml, domain: example.com}\n', tmp_path)
    assert s is not None and (s.ws_url, s.domain) == ("wss://10.0.0.5:8443/ws", "example.com")


MISTAKES = {
    'phone: {ws_url: "https://edge:8443", credentials: creds.yaml}\n': "callcenter.yaml:1: phone.ws_url",
    'phone: {ws_url: "wss://edge:8443 \'unsafe-eval\'", credentials: creds.yaml}\n': "callcenter.yaml:1: phone.ws_url",
    'phone:\n  ws_url: "wss://edge:8443"\n  credentials: missing.yaml\n': "callcenter.yaml:3: phone.credentials",
    'phone:\n  credentials: creds.yaml\n': "phone.ws_url",
    'phone: {ws_url: "wss://edge:8443", credentials: creds.yaml, password: x}\n': "callcenter.yaml:1: phone.password",
    'phone: {ws_url: "wss://edge:8443", credentials: creds.yaml, domain: "a@b"}\n': "callcenter.yaml:1: phone.domain",
}


@pytest.mark.parametrize("text", MISTAKES)
def test_mistakes_name_file_key_and_line(text: str, tmp_path: Path) -> None:
    (tmp_path / "creds.yaml").write_text('"1001": s3cret-1001\n')
    with pytest.raises(ConfigError) as err:
        read(text, tmp_path)
    assert MISTAKES[text] in str(err.value), str(err.value)


def test_the_book_holds_each_agents_ha1_not_its_password(tmp_path: Path) -> None:
    (tmp_path / "creds.yaml").write_text('"1001": s3cret-1001\n"1002": s3cret-1002\n')
    settings = PhoneSettings("wss://127.0.0.1:8443", tmp_path / "creds.yaml", "127.0.0.1")
    book = PhoneBook.load(settings, load_rules(REPO / "routing_rules.yaml"))
    assert book.registration("1001") == {"ws_url": "wss://127.0.0.1:8443", "uri": "sip:1001@127.0.0.1",
                                         "user": "1001", "realm": edge.REALM, "ha1": edge.ha1("1001", "s3cret-1001")}
    assert book.registration("1003") is None           # no SIP credentials: 404
    assert "s3cret" not in repr(book) and edge.ha1("1001", "s3cret-1001") not in repr(book)
    (tmp_path / "creds.yaml").write_text('"9999": s3cret-9999\n')     # not an agent of the rules: refused at start
    with pytest.raises(ConfigError, match="no agent '9999'"):
        PhoneBook.load(settings, load_rules(REPO / "routing_rules.yaml"))
