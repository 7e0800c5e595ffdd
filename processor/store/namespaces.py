"""Namespaces: physical state under `nsm:<name>:`, and the logical names workers serve.

A namespace N is the partitions' state exactly as `PartitionStore` writes it, plus

    nsm:N:info      hash: how N was built (see `InfoField`); absent for a namespace a worker built
    nsm:N:history   hash: the metric values at every bucket boundary of a replay (replay/history)

A worker serves a logical name L (NSM_NAMESPACE, default `live`). The string key `nsm:L:target`
names the physical namespace behind L; without it L is its own physical namespace. Workers call
`resolve_namespace` at start and on every flush tick; when the answer changes they drop their
in-memory state, load their partitions from the new namespace and consume from its stored offsets
(+1). A swap changes the pointer in one command; the former target is kept (`nsm:L:previous`) until
dropped. The keys outside the partitions (pointers, info, history, summaries) are each read and
written alone, so every command works on a Redis Cluster too.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from redis.typing import EncodableT

from processor.store.client import RedisClient, text

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
# A replay refreshes its heartbeat every few seconds; one silent for longer has stopped.
HEARTBEAT_STALE_MS = 30_000
POINTER_KEYS = ("target", "previous")


class InfoField:
    """Fields of `nsm:N:info` (all strings; offsets and fingerprints as JSON)."""

    STATUS = "status"  # running | complete | interrupted
    CREATED = "created_ms"
    HEARTBEAT = "heartbeat_ms"
    FINISHED = "finished_ms"
    TOPIC = "topic"
    FINGERPRINTS = "fingerprints"  # {metric: definition fingerprint}
    FROM = "from"  # as given: earliest, a time or a duration
    TO = "to_ms"
    START_OFFSETS = "start_offsets"  # {partition: first offset to read}
    END_OFFSETS = "end_offsets"  # {partition: offset to stop before}
    NEWEST = "newest_ms"
    APPLIED = "applied"
    INVALID = "invalid"
    DUPLICATES = "duplicates"
    HISTORY_FROM = "history_from_ms"
    HISTORY_POINTS = "history_points"  # set once the history is stored


class NamespaceError(Exception):
    """A namespace command cannot go on; the message says why and what to do."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise NamespaceError(
            f"invalid namespace {name!r}: use letters, digits, '_', '.' and '-' only"
        )
    return name


def prefix(namespace: str) -> str:
    return f"nsm:{namespace}:"


def info_key(namespace: str) -> str:
    return prefix(namespace) + "info"


def history_key(namespace: str) -> str:
    return prefix(namespace) + "history"


def target_key(logical: str) -> str:
    return prefix(logical) + "target"


def previous_key(logical: str) -> str:
    return prefix(logical) + "previous"


_text = text


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- the pointer ----------------------------------------------------------------------------


async def resolve_namespace(client: RedisClient, logical: str) -> str:
    """The physical namespace behind a logical name: its `target`, or the name itself."""
    value = await client.get(target_key(logical))
    return logical if value is None else _text(value)


async def point(client: RedisClient, logical: str, physical: str) -> str:
    """Atomically make `logical` resolve to `physical`; returns the former target.

    The pointer changes in one command (SET ... GET), so workers see the old target or the new
    one. `previous` is written just after it: the two keys are in different slots of a Redis
    Cluster, where no step may span them, and `previous` only tells `swap` what to undo."""
    old = await client.set(target_key(logical), physical, get=True)
    former = logical if old is None else _text(old)
    await client.set(previous_key(logical), former)
    return former


async def pointers(client: RedisClient) -> dict[str, str]:
    """Every logical name that has a pointer -> the namespace it points at."""
    found: dict[str, str] = {}
    async for key in client.scan_iter(match="nsm:*:target", count=1000):
        name = _text(key).split(":")[1]
        value = await client.get(key)
        if value is not None:
            found[name] = _text(value)
    return found


async def served(client: RedisClient, live: str) -> dict[str, list[str]]:
    """Physical namespace -> the logical names that resolve to it (`live` even without pointer)."""
    by_target: dict[str, list[str]] = defaultdict(list)
    targets = await pointers(client)
    targets.setdefault(live, live)
    for logical, physical in sorted(targets.items()):
        by_target[physical].append(logical)
    return dict(by_target)


# ---- what a namespace holds -----------------------------------------------------------------


async def read_info(client: RedisClient, namespace: str) -> dict[str, str]:
    raw = await client.hgetall(info_key(namespace))
    return {_text(k): _text(v) for k, v in raw.items()}


async def write_info(client: RedisClient, namespace: str, fields: Mapping[str, object]) -> None:
    mapping: dict[EncodableT, EncodableT] = {
        name: value if isinstance(value, str | int) else orjson.dumps(value).decode()
        for name, value in fields.items()
    }
    await client.hset(info_key(namespace), mapping=mapping)


def status_of(info: Mapping[str, str]) -> str:
    """running | complete | interrupted for a replayed namespace; `worker` for one without info
    (built by a worker). A `running` replay whose heartbeat stopped was interrupted."""
    status = info.get(InfoField.STATUS)
    if status is None:
        return "worker"
    if status == "running":
        heartbeat = int(info.get(InfoField.HEARTBEAT, "0"))
        if now_ms() - heartbeat > HEARTBEAT_STALE_MS:
            return "interrupted"
    return status


async def partitions_of(client: RedisClient, namespace: str) -> list[int]:
    """The partitions that have state in the namespace (from their `meta` keys)."""
    found = set()
    pattern = f"nsm:{namespace}:{{{namespace}.p*}}:meta"
    async for key in client.scan_iter(match=pattern, count=1000):
        tag = _text(key).split("{", 1)[1].split("}", 1)[0]
        found.add(int(tag.rsplit(".p", 1)[1]))
    return sorted(found)


async def exists(client: RedisClient, namespace: str) -> bool:
    if await client.exists(info_key(namespace)):
        return True
    return bool(await partitions_of(client, namespace))


async def stored_fingerprints(client: RedisClient, namespace: str) -> dict[str, str]:
    """{metric: fingerprint} the namespace's state was built with (union over partitions)."""
    fingerprints: dict[str, str] = {}
    for partition in await partitions_of(client, namespace):
        meta = await client.hgetall(f"nsm:{namespace}:{{{namespace}.p{partition}}}:meta")
        for name, value in meta.items():
            text = _text(name)
            if text.startswith("def:"):
                fingerprints[text[4:]] = _text(value)
    if not fingerprints:
        recorded = (await read_info(client, namespace)).get(InfoField.FINGERPRINTS)
        if recorded:
            fingerprints = orjson.loads(recorded)
    return fingerprints


@dataclass
class NamespaceView:
    name: str
    status: str
    partitions: int = 0
    newest_ms: int | None = None
    keys: int = 0
    memory_bytes: int = 0
    served_as: list[str] = field(default_factory=list)
    pointer_to: str | None = None


# Summing MEMORY USAGE over millions of keys would take long: sample, then scale.
_MEMORY_SAMPLE = 200


async def list_namespaces(client: RedisClient, live: str) -> list[NamespaceView]:
    keys_of: dict[str, list[bytes]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    async for key in client.scan_iter(match="nsm:*", count=2000):
        name = _text(key).split(":")[1]
        counts[name] += 1
        if len(keys_of[name]) < _MEMORY_SAMPLE:
            keys_of[name].append(key)
    targets = await pointers(client)
    serving = await served(client, live)
    views = []
    for name in sorted(counts):
        info = await read_info(client, name)
        partitions = await partitions_of(client, name)
        newest = [
            int(v)
            for v in [
                await client.hget(f"nsm:{name}:{{{name}.p{p}}}:meta", "max_ts") for p in partitions
            ]
            if v is not None
        ]
        sample = keys_of[name]
        sampled = [await client.memory_usage(k) or 0 for k in sample]
        memory = int(sum(sampled) * counts[name] / len(sample)) if sample else 0
        status = status_of(info) if info or partitions else "pointer"
        views.append(
            NamespaceView(
                name, status, len(partitions), max(newest) if newest else None,
                counts[name], memory, serving.get(name, []), targets.get(name),
            )
        )  # fmt: skip
    return views


async def drop(client: RedisClient, namespace: str, batch: int = 500) -> int:
    """Delete every key under `nsm:<namespace>:` except its pointer keys (they belong to the
    logical name, not to the data); returns how many keys were deleted."""
    keep = {target_key(namespace), previous_key(namespace)}
    deleted = 0
    pending: list[bytes] = []
    async for key in client.scan_iter(match=prefix(namespace) + "*", count=1000):
        if _text(key) in keep:
            continue
        pending.append(key)
        if len(pending) >= batch:
            deleted += await client.unlink(*pending)
            pending = []
    if pending:
        deleted += await client.unlink(*pending)
    return deleted


async def serving_names(client: RedisClient, namespace: str, live: str) -> list[str]:
    """The logical names (pointers, and `live` itself) that currently resolve to `namespace`."""
    return (await served(client, live)).get(namespace, [])
