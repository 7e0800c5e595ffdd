"""Reading a whole topic without a consumer group: every partition assigned, from planned offsets
to an end fixed when the replay starts, in large batches.

Offsets for a time come from the broker's time index (`offsets_for_times`), so `--from` and `--to`
select by the Kafka message timestamp: the time the producer sent the message, normally a moment
after the event time. The end is a snapshot of the end offsets (or the first offset after `--to`),
so a replay ends even while producers keep writing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from processor.config import Settings
from processor.kafka import unreadable
from processor.kafka.unreadable import UnreadableBatch
from processor.times import SYNTAX, parse_time

log = logging.getLogger("nsm.replay")


class SourceError(Exception):
    """The topic cannot be read as asked; the message says why."""


@dataclass
class OffsetPlan:
    topic: str
    start: dict[int, int]  # first offset to read
    end: dict[int, int]  # read up to, not including, this offset

    @property
    def total(self) -> int:
        return sum(max(0, self.end[p] - self.start[p]) for p in self.start)


def parse_from(text: str, now_ms: int) -> int | None:
    """None for `earliest`; otherwise the time a `--from` TIME or DURATION (that long ago) means."""
    if text.strip().lower() == "earliest":
        return None
    try:
        return parse_time(text, now_ms)
    except ValueError:
        raise SourceError(f"--from {text!r}: write `earliest` or a time: {SYNTAX}") from None


def consumer_options(settings: Settings) -> dict[str, Any]:
    """Security settings in aiokafka's spelling: TLS files become an SSL context."""
    options = settings.kafka_client_options()
    files = {k: options.pop(f"ssl_{k}", None) for k in ("cafile", "certfile", "keyfile")}
    if any(files.values()):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(**files)
    return options


def new_consumer(bootstrap: str, settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,  # no group: nothing is committed, the live worker's group is untouched
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="nsm-replay",
        # Large fetches: a replay is about throughput, not latency.
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=200,
        **consumer_options(settings),
    )


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # A consumer without a subscription keeps no metadata for the topic, so
    # `partitions_for_topic` would know nothing: ask the cluster for all of it.
    cluster = await consumer._client.fetch_all_metadata()
    partitions = cluster.partitions_for_topic(topic)
    if not partitions:
        raise SourceError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def plan_offsets(
    consumer: AIOKafkaConsumer, topic: str, from_ms: int | None, to_ms: int | None
) -> OffsetPlan:
    tps = await topic_partitions(consumer, topic)
    end = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    begin = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
    start = dict(begin)
    if from_ms is not None:
        found = await consumer.offsets_for_times({tp: max(from_ms, 0) for tp in tps})
        # No message at or after the time: nothing to read in that partition.
        start = {
            tp.partition: end[tp.partition] if o is None else o.offset for tp, o in found.items()
        }
    if to_ms is not None:
        after = await consumer.offsets_for_times({tp: to_ms + 1 for tp in tps})
        for tp, o in after.items():
            if o is not None:
                end[tp.partition] = min(end[tp.partition], o.offset)
    return OffsetPlan(topic, start, end)


async def batches(
    consumer: AIOKafkaConsumer,
    topic: str,
    positions: Mapping[int, int],
    end: Mapping[int, int],
    max_records: int,
) -> AsyncIterator[tuple[int, list[ConsumerRecord[bytes, bytes]]]]:
    """(partition, records in offset order) until every partition reached its end offset."""
    pending = {p for p, o in positions.items() if o < end[p]}
    markers_seen = unreadable.made
    tps = {p: TopicPartition(topic, p) for p in pending}
    consumer.assign(list(tps.values()))
    for p, tp in tps.items():
        consumer.seek(tp, positions[p])
    while pending:
        fetched = await consumer.getmany(timeout_ms=500, max_records=max_records)
        for tp, records in fetched.items():
            p = tp.partition
            if p not in pending:
                continue
            stop, last = end[p], records[-1].offset
            if unreadable.made != markers_seen:
                markers_seen = unreadable.made
                records = _without_markers(records, stop)
            if last >= stop:
                records = [r for r in records if r.offset < stop]
            if records:
                yield p, records
            if last + 1 >= stop:
                pending.discard(p)
                consumer.pause(tp)
        if not fetched:
            # Transaction markers or compaction can leave no record at end - 1: ask the position.
            for p in list(pending):
                if await consumer.position(tps[p]) >= end[p]:
                    pending.discard(p)
                    consumer.pause(tps[p])


def _without_markers(records: list[Any], stop: int) -> list[Any]:
    """The records without markers of unreadable record batches, each of which is logged: a
    replay passes over them as the worker does."""
    kept = []
    for record in records:
        if type(record) is not UnreadableBatch:
            kept.append(record)
        elif record.offset < stop:
            log.error(
                "unreadable record batch: its offsets are passed over",
                extra={"partition": record.partition, "first_offset": record.offset,
                       "last_offset": record.last_offset, "codec": record.codec,
                       "error": record.error},
            )  # fmt: skip
    return kept
