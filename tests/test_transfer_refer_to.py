"""An agent phone's Refer-To, as calls/transfer.py reads it before transferring: a sip: URI's plain user part
(an agent id, a queue, a number) and at most a Replaces header naming one dialog; anything else is refused."""

from __future__ import annotations

import pytest

from callcenter.calls.transfer import parse_refer_to


@pytest.mark.parametrize(("refer_to", "expected"), [
    ("<sip:1002@127.0.0.1:5070>", ("1002", None)),
    ("sip:0901234567@trunk.example;user=phone", ("0901234567", None)),
    ("<sip:support@10.0.0.1;transport=udp>", ("support", None)),
    ("<sip:1003@10.0.0.1:5070?Replaces=abc%4010.0.0.2%3Bto-tag%3Db1%3Bfrom-tag%3Da1>",
     ("1003", "abc@10.0.0.2;to-tag=b1;from-tag=a1")),
    ("<sip:1003@h?replaces=abc%3Bfrom-tag%3Da1%3Bto-tag%3Db1%3Bearly-only>", ("1003", "abc;from-tag=a1;to-tag=b1;early-only")),
])
def test_a_plain_uri_or_one_replaces_is_read(refer_to: str, expected: tuple[str, str | None]) -> None:
    assert parse_refer_to(refer_to) == expected


@pytest.mark.parametrize("refer_to", [
    "<tel:+84901234567>",                                          # not sip:
    "<sips:1002@h>",
    "<sip:h>",                                                     # no user
    "<sip:1002@h?Subject=hi>",                                     # another embedded header
    "<sip:1002@h?Replaces=abc%3Bto-tag%3Db1%3Bfrom-tag%3Da1&Priority=urgent>",
    "<sip:1002@h?Replaces=abc%0D%0AX-Evil%3A1%3Bto-tag%3Db1%3Bfrom-tag%3Da1>",   # a line break smuggled
    "<sip:1002@h?Replaces=abc>",                                   # no tags
    '"Bob" <sip:1002@h>',                                          # a display name
    "<sip:" + "9" * 40 + "@h>",                                    # a user part too long to be ours
])
def test_anything_else_is_refused(refer_to: str) -> None:
    assert parse_refer_to(refer_to) is None
