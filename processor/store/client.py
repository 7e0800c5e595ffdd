"""Every Redis client NSM makes, from one URL: a single server or a Redis Cluster.

`NSM_REDIS_URL` names a server, or any node of a Redis Cluster, or several nodes of one (comma-
separated, so that NSM starts while one of them is down). Cluster mode is detected by asking the
node (`INFO cluster`: `cluster_enabled:1`), or set by the URL's `cluster` parameter, which is
taken out before the URL reaches redis-py:

    redis://127.0.0.1:6379/0                     detected (the default)
    redis://10.0.0.5:7001/0?cluster=yes          a cluster, without asking (INFO not allowed)
    redis://10.0.0.5:7001,10.0.0.6:7001/0        a cluster, from whichever of these answers
    rediss://nsm:secret@10.0.0.5:7001/0          a password and TLS, on a server or a cluster

On a cluster, redis-py's `RedisCluster` discovers the other nodes from the ones named, sends each
command to the master owning its key's slot, and follows MOVED and ASK redirections itself. NSM
keeps every atomic step on keys of one slot: a partition's keys share the hash tag
`{<namespace>.p<N>}` (store/partition_store.py), and the keys outside the partitions are each
written alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RedisClient = aioredis.Redis | aioredis.RedisCluster
SyncRedisClient = redis.Redis | redis.RedisCluster

Mode = Literal["auto", "yes", "no"]

# Redis, or the part of a cluster a command needs, cannot answer now; it may later. A cluster
# answers CLUSTERDOWN or TRYAGAIN, or leaves a slot uncovered, while a replica takes over from a
# failed master; redis-py retries those a few times, then raises them.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    TryAgainError,
    SlotNotCoveredError,
    OSError,
)


def text(value: object) -> str:
    """A key, field or value as Redis returned it (bytes: NSM never asks redis-py to decode)."""
    return value.decode() if isinstance(value, bytes) else str(value)


# A node that stops answering without closing the connection (a network partition, a stopped
# process) is given up after this long and retried like a refused connection, instead of holding
# the worker forever; `socket_timeout` or `socket_connect_timeout` in the URL take precedence.
TIMEOUTS: dict[str, Any] = {"socket_timeout": 30.0, "socket_connect_timeout": 5.0}


class RedisUrlError(ValueError):
    """The Redis URL cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names: redis-py's URL of the first node (NSM's parameter taken out), the
    cluster mode asked for, and the further nodes of a cluster given after the first."""

    url: str
    mode: Mode
    more_nodes: tuple[tuple[str, int], ...] = ()


def _node(written: str) -> tuple[str, int]:
    host, sep, port = written.rpartition(":")
    if not sep or not port.isdigit():
        raise RedisUrlError(f"{written!r} in the Redis URL: write each node as host:port")
    return host.strip("[]"), int(port)


def parse_url(url: str) -> RedisTarget:
    """What the URL names; several nodes (`redis://a:7001,b:7001/0`) can only be a cluster."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    first, *more = hosts.split(",")
    more_nodes = tuple(_node(node) for node in more)
    base, mode = split_url(urlunsplit(parts._replace(netloc=credentials + at + first)))
    if more_nodes:
        if mode == "no":
            raise RedisUrlError("several nodes in the Redis URL name a cluster: drop cluster=no")
        mode = "yes"
    return RedisTarget(base, mode, more_nodes)


def split_url(url: str) -> tuple[str, Mode]:
    """The URL for redis-py (without NSM's `cluster` parameter) and the cluster mode asked for."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    mode: Mode = "auto"
    kept = []
    for name, value in query:
        if name != "cluster":
            kept.append((name, value))
            continue
        choice = value.lower()
        if choice in ("yes", "true", "1"):
            mode = "yes"
        elif choice in ("no", "false", "0"):
            mode = "no"
        elif choice == "auto":
            mode = "auto"
        else:
            raise RedisUrlError(f"cluster={value!r} in the Redis URL: use yes, no or auto")
    return urlunsplit(parts._replace(query=urlencode(kept))), mode


def _cluster_enabled(info: dict[str, Any]) -> bool:
    return str(info.get("cluster_enabled", "0")) == "1"


class _Cluster(aioredis.RedisCluster):
    """redis-py's cluster client, but no node of the cluster answering is a ConnectionError (as
    it is for one server), not a `RedisClusterException` like a misuse: NSM waits for it."""

    async def initialize(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as error:
            if isinstance(error.__cause__, UNAVAILABLE):
                raise RedisConnectionError(str(error)) from error
            raise


class _SyncCluster(redis.RedisCluster):
    """`_Cluster`, for the synchronous client (tests, benchmarks)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except RedisClusterException as error:
            if isinstance(error.__cause__, UNAVAILABLE):
                raise RedisConnectionError(str(error)) from error
            raise


async def connect(url: str) -> RedisClient:
    """A client for the server or cluster at `url`; asks the node whether it is in a cluster
    unless the URL says. Raises one of UNAVAILABLE while Redis does not answer."""
    target = parse_url(url)
    base, mode = target.url, target.mode
    if mode == "auto":
        probe = aioredis.Redis.from_url(base, **TIMEOUTS)
        try:
            mode = "yes" if _cluster_enabled(await probe.info("cluster")) else "no"
        finally:
            await probe.aclose()
    if mode == "no":
        return aioredis.Redis.from_url(base, **TIMEOUTS)
    nodes = [aioredis.cluster.ClusterNode(host, port) for host, port in target.more_nodes]
    cluster = _Cluster.from_url(base, startup_nodes=nodes or None, **TIMEOUTS)
    try:
        await cluster.initialize()
    except BaseException:
        await cluster.aclose()
        raise
    return cluster


def connect_sync(url: str) -> SyncRedisClient:
    """`connect`, with redis-py's synchronous clients."""
    target = parse_url(url)
    base, mode = target.url, target.mode
    if mode == "auto":
        probe = redis.Redis.from_url(base, **TIMEOUTS)
        try:
            mode = "yes" if _cluster_enabled(probe.info("cluster")) else "no"
        finally:
            probe.close()
    if mode == "no":
        return redis.Redis.from_url(base, **TIMEOUTS)
    nodes = [redis.cluster.ClusterNode(host, port) for host, port in target.more_nodes]
    return _SyncCluster.from_url(base, startup_nodes=nodes or None, **TIMEOUTS)
