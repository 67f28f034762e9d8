"""The key tables: one declaration per key is its builder, its Lua builder and its documentation."""

from __future__ import annotations

import pytest

from callcenter.auth.keys import AuthKeys
from callcenter.calls.voicemail import VoicemailKeys
from callcenter.dialer.keys import DialerKeys
from callcenter.keyspace import Key, KeySpace, key1, key2, lua_builders
from callcenter.routing.keys import Keys


class _Sample(KeySpace):
    one = key1("s:{a}", "hash", "one part")
    two = key2("s:{a}:x:{b}", "set", "two parts")


def test_a_key_is_its_template_under_the_prefix() -> None:
    s = _Sample("p:")
    assert s.one("A") == "p:s:A"
    assert s.two("A", 7) == "p:s:A:x:7"
    assert Keys().queue("sales") == "cc:rt:q:sales"
    assert DialerKeys("t:").contact("c1", "+84901") == "t:dialer:c:c1:ct:+84901"
    assert AuthKeys().audit() == "cc:audit"
    assert VoicemailKeys().box("q", "new") == "cc:vm:q:q:new"


def test_the_declared_arity_is_checked_against_the_template() -> None:
    with pytest.raises(TypeError, match="has 2 parts, declared with 1"):
        key1("s:{a}:{b}", "hash", "wrong")


def test_the_declarations_list_every_key_in_order_with_its_type() -> None:
    declared = _Sample.declared()
    assert list(declared) == ["one", "two"]
    assert isinstance(_Sample.one, Key) and _Sample.one.kind == "hash" and _Sample.two.parts == ("a", "b")
    assert {k.kind for k in Keys.declared().values()} <= {"set", "hash", "zset", "string", "list", "stream"}


def test_lua_builders_build_the_same_keys() -> None:
    lua = lua_builders(_Sample)
    assert 'K.one = function(a) return PREFIX .. "s:" .. a end' in lua
    assert 'K.two = function(a, b) return PREFIX .. "s:" .. a .. ":x:" .. b end' in lua
