"""Record batches that cannot be read: passed on as one marker each, never as an endless error.

aiokafka raises from `getmany` when a record batch fails its CRC or cannot be decompressed or
decoded, and raises again at every fetch after: its position stays before the batch, so the
batch and every message behind it are never read, and the error looks like any other Kafka
error. `install()` (run when processor.kafka.clients is imported) makes aiokafka's consumers
unpack record sets batch by batch with that failure caught: a batch that cannot be read becomes
one `UnreadableBatch` in the fetched records, in its place and spanning its offsets, and the
consumer moves past it. What to do with it is the reader's choice (the worker logs it, counts it,
shows it on /health and stores its offsets as passed; a replay logs and passes it).

Only the unpacking of a fetched record set is replaced, for consumers that read uncommitted
records (NSM's; read_committed ones keep aiokafka's own). The records of readable batches are
those aiokafka would give, built by its own `_consumer_record`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException

log = logging.getLogger("nsm.kafka")

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
_made = itertools.count(1)
made = 0  # UnreadableBatch markers made in this process: readers scan for them only when it grew


@dataclass(frozen=True, slots=True)
class UnreadableBatch:
    """A record batch that could not be read, in place of its records. It has the `offset`
    (its first offset not yet read) and `value` (None) a record has, so it sorts and slices
    with them; `last_offset` is the batch's last."""

    topic: str
    partition: int
    offset: int
    last_offset: int
    codec: str
    error: str
    key: None = None
    value: None = None

    @property
    def offsets(self) -> int:
        return self.last_offset - self.offset + 1


class TolerantPartitionRecords(fetcher.PartitionRecords):
    """aiokafka's PartitionRecords, unpacking batch by batch with a failure caught."""

    def _unpack_records(self) -> Iterator[Any]:
        if self._isolation_level == fetcher.READ_COMMITTED:
            yield from super()._unpack_records()
            return
        tp, records = self._tp, self._records
        while records.has_next():
            batch = records.next_batch()
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                continue
            try:
                if self._check_crcs and not batch.validate_crc():
                    raise CorruptRecordException(f"invalid CRC in {tp}")
                # The whole batch first: its records are decompressed and decoded together.
                read = [
                    self._consumer_record(tp, record)
                    for record in batch
                    # Compacted away or before the fetch position: not returned.
                    if record.offset >= self.next_fetch_offset
                ]
            except Exception as error:
                first = max(self.next_fetch_offset, batch.base_offset)
                self.next_fetch_offset = batch.next_offset
                yield _marker(tp, first, batch, error)
                continue
            for record in read:
                self.next_fetch_offset = record.offset + 1
                yield record
            self.next_fetch_offset = batch.next_offset


def _marker(tp: Any, first: int, batch: Any, error: Exception) -> UnreadableBatch:
    global made
    made = next(_made)
    codec = CODECS.get(batch.attributes & 0x07, f"codec {batch.attributes & 0x07}")
    text = " ".join(str(error).split())
    return UnreadableBatch(
        tp.topic, tp.partition, first, batch.next_offset - 1, codec,
        f"{type(error).__name__}: {text}" if text else type(error).__name__,
    )  # fmt: skip


def install() -> None:
    """Make aiokafka's fetchers in this process build TolerantPartitionRecords."""
    fetcher.PartitionRecords = TolerantPartitionRecords


def split(records: list[Any]) -> list[list[Any] | UnreadableBatch]:
    """A partition's fetched records in runs: lists of records, and markers between them."""
    runs: list[list[Any] | UnreadableBatch] = []
    current: list[Any] = []
    for record in records:
        if type(record) is UnreadableBatch:
            if current:
                runs.append(current)
                current = []
            runs.append(record)
        else:
            current.append(record)
    if current:
        runs.append(current)
    return runs
