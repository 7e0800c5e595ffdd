"""NSM's `cluster` parameter in the Redis URL: read, taken out, and everything else kept."""

from __future__ import annotations

import pytest

from processor.store.client import RedisTarget, RedisUrlError, parse_url, split_url, text


@pytest.mark.parametrize(
    ("url", "base", "mode"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", "auto"),
        ("redis://h:7001/0?cluster=yes", "redis://h:7001/0", "yes"),
        ("redis://h:7001/0?cluster=TRUE", "redis://h:7001/0", "yes"),
        ("redis://h:7001/0?cluster=no", "redis://h:7001/0", "no"),
        ("redis://h:7001/0?cluster=auto", "redis://h:7001/0", "auto"),
        ("rediss://u:p%40ss@h:7001/0?ssl_ca_certs=/ca.crt&cluster=1&socket_timeout=2",
         "rediss://u:p%40ss@h:7001/0?ssl_ca_certs=%2Fca.crt&socket_timeout=2", "yes"),
    ],
)  # fmt: skip
def test_the_cluster_parameter_is_read_and_taken_out(url: str, base: str, mode: str):
    assert split_url(url) == (base, mode)


def test_an_unknown_cluster_value_says_what_to_write():
    with pytest.raises(RedisUrlError, match="use yes, no or auto"):
        split_url("redis://h:7001/0?cluster=maybe")


def test_text_of_what_redis_returns():
    assert text(b"nsm:live:target") == "nsm:live:target"
    assert text("already") == "already"
    assert text(3) == "3"


def test_several_nodes_name_a_cluster_started_from_whichever_answers():
    target = parse_url("rediss://:pw@10.0.0.5:7001,10.0.0.6:7002,[::1]:7003/0?ssl_ca_certs=/ca")
    assert target == RedisTarget(
        "rediss://:pw@10.0.0.5:7001/0?ssl_ca_certs=%2Fca", "yes",
        (("10.0.0.6", 7002), ("::1", 7003)),
    )  # fmt: skip
    assert parse_url("redis://h:6379/0") == RedisTarget("redis://h:6379/0", "auto")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://a:7001,b:7002/0?cluster=no", "drop cluster=no"),
        ("redis://a:7001,b/0", "host:port"),
    ],
)
def test_a_node_list_that_cannot_be_used_says_why(url: str, message: str):
    with pytest.raises(RedisUrlError, match=message):
        parse_url(url)
