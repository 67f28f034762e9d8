"""Redis URLs and the config's redis: section (callcenter.redisurl): a Sentinel deployment given as
``sentinels`` + ``master_name`` or as a ``redis+sentinel://`` URL, the durable writes' WAIT, and every mistake
refused at start naming the file, the key and the line."""

from __future__ import annotations

import pytest

from callcenter.exceptions import ConfigError
from callcenter.redisurl import (
    Durability,
    SentinelTarget,
    UrlError,
    check_url,
    parse_config,
    parse_sentinel,
    sentinel_url,
    split_url,
    with_durability,
)
from callcenter.yamlsrc import Reader, loads


def redis_section(text: str) -> str | None:
    data, loc = loads(text, "cc.yaml")
    rd = Reader(data, loc).section("redis")
    return parse_config(rd)


def test_a_sentinel_url_names_the_sentinels_the_master_and_its_credentials() -> None:
    url = sentinel_url(["10.0.0.1:26379", " s2:26380", "[::1]:26381"], "cc main", db=2, password="p@ss:word",
                       sentinel_password="sp")
    assert url.startswith("redis+sentinel://")
    assert parse_sentinel(url) == SentinelTarget((("10.0.0.1", 26379), ("s2", 26380), ("::1", 26381)), "cc main",
                                                 2, None, "p@ss:word", "sp")
    durable = with_durability(url, Durability(1, 500))
    assert split_url(durable) == (url, Durability(1, 500))
    assert split_url("redis://h:6379/0") == ("redis://h:6379/0", Durability())
    check_url(durable)


@pytest.mark.parametrize(("url", "says"), [
    ("http://h:6379", "must start with"),
    ("redis+sentinel://h:26379", "master_name"),
    ("redis+sentinel:///ccmaster", "names no sentinel"),
    ("redis+sentinel://h:port/ccmaster", "is not host:port"),
    ("redis+sentinel://h:26379/ccmaster/x", "master_name/db"),
    ("redis+sentinel://h:26379/ccmaster?color=red", "unknown option 'color'"),
    ("redis://h:6379/0?wait_replicas=1", "wait_ms"),
    ("redis://h:6379/0?wait_replicas=one&wait_ms=5", "whole number"),
])
def test_a_url_that_cannot_work_is_refused_saying_why(url: str, says: str) -> None:
    with pytest.raises(UrlError, match=says):
        check_url(url)


def test_config_sentinels_become_one_url_with_a_wait_of_one_replica() -> None:
    url = redis_section("redis:\n  sentinels: [127.0.0.1:26379, 127.0.0.1:26380]\n  master_name: ccmaster\n"
                        "  wait_timeout: 250ms\n")
    assert url is not None
    plain, durable = split_url(url)
    assert parse_sentinel(plain).sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert durable == Durability(1, 250)
    # a single Redis: no WAIT unless asked (there may be no replica at all)
    assert split_url(redis_section("redis: {url: 'redis://h:6379/0'}") or "")[1] == Durability()
    asked = redis_section("redis: {url: 'redis://h:6379/0', wait_replicas: 1}")
    assert split_url(asked or "")[1] == Durability(1, 500)


@pytest.mark.parametrize(("text", "key", "line", "says"), [
    ("redis:\n  sentinels: [h:1]\n  url: redis://h:6379\n  master_name: m\n", "redis.url", 3, "not both"),
    ("redis:\n  sentinels: [h:1, nope]\n  master_name: m\n", "redis.sentinels[1]", 2, "not host:port"),
    ("redis:\n  sentinels: [h:1]\n", "redis.master_name", None, "required"),
    ("redis:\n  url: redis://h:6379\n  master_name: m\n", "redis.master_name", 3, "only with sentinels"),
    ("redis:\n  url: 'redis+sentinel://h:1'\n", "redis.url", 2, "master_name"),
    ("redis:\n  sentinels: [h:1]\n  master_name: m\n  wait_replicas: -1\n", "redis.wait_replicas", 4, ""),
])
def test_config_mistakes_name_the_key_and_line(text: str, key: str, line: int | None, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        redis_section(text)
    message = str(err.value)
    assert "cc.yaml" in message and key in message and says in message, message
    if line is not None:
        assert f":{line}:" in message, message
