"""Batch computation: a sequence of raw events in, every metric as of T out (`nsm compute`).

The work is the engine's (native/engine): decoding, validation, dedup, windows, every metric,
formulas and the segment cap. This module feeds it and shapes its result.

An event the engine fails on while applying it (docs/semantics.md, `unprocessable`) may have
changed the state in part: the computation then starts again from the first event, with that one
invalid (`unprocessable`), so that nothing of it remains. The input is read again for this.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import orjson
from nsm_native import Compute

from processor.definitions.model import Catalog
from processor.engine.spec import compile_catalog
from processor.engine.values import MetricValue, json_number
from processor.events import InputFormat

_BATCH = 10_000
_CHUNK_BYTES = 8 << 20


class Rejected(NamedTuple):
    """An event that was not applied: its position among the events (from 0), its line in the
    JSON Lines read (from 1, blank lines included), why, and the detail."""

    position: int
    line: int
    reason: str
    detail: str


@dataclass(slots=True)
class ComputeResult:
    as_of_ms: int
    values: dict[str, MetricValue]
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    applied: int = 0
    rejected: list[Rejected] = field(default_factory=list)  # every invalid event, in order

    def to_json(self) -> dict[str, Any]:
        """The document of CONTRACT §4: `{"as_of": ..., "metrics": {name: {value, segments}}}`."""
        from processor.events import format_time

        return {
            "as_of": format_time(self.as_of_ms),
            "metrics": {
                name: {
                    "value": json_number(result.value),
                    "segments": {
                        segment: {label: json_number(v) for label, v in values.items()}
                        for segment, values in result.segments.items()
                    },
                }
                for name, result in self.values.items()
            },
        }


def message_bytes(
    raw: bytes | bytearray | memoryview | str | dict[str, Any] | None,
) -> bytes | None:
    """A message as the engine reads it: its bytes (a dict is written as JSON; None stays None,
    a message without a value)."""
    if raw is None or type(raw) is bytes:
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, dict):
        try:
            return orjson.dumps(raw)
        except TypeError:  # an integer beyond 64 bits, which orjson does not write
            return json.dumps(raw, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return bytes(raw)


def _run(
    feed: Callable[[Compute], None],
    catalog: Catalog,
    at_ms: int | None,
    now_ms: int | None,
    skew_ms: int,
    input_format: InputFormat,
) -> ComputeResult:
    """Feed the events to an engine, again after each event it failed on (the rest computed
    without it), and shape the result."""
    clock_now = int(time.time() * 1000) if now_ms is None else now_ms
    spec = compile_catalog(catalog)
    failed: dict[int, str] = {}
    while True:
        engine = Compute(spec, at_ms, clock_now, skew_ms, input_format, failed)
        feed(engine)
        if engine.failure is None:
            break
        position, detail = engine.failure
        failed[position] = detail
    values = {r.name: MetricValue(r.value, r.segments) for r in engine.evaluate()}
    return ComputeResult(
        engine.as_of_ms,
        values,
        Counter(engine.invalid),
        engine.duplicates,
        engine.applied,
        [Rejected(*r) for r in engine.rejected],
    )


class _Replayable:
    """A one-shot iterator that can be iterated again: what was read is kept."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._source = iter(items)
        self._read: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        yield from self._read[:]
        for item in self._source:
            self._read.append(item)
            yield item


def compute_metrics(
    events: Iterable[bytes | str | dict[str, Any]],
    catalog: Catalog,
    at_ms: int | None = None,
    now_ms: int | None = None,
    max_future_skew_ms: int = 300_000,
    input_format: InputFormat = "nsm",
) -> ComputeResult:
    """Apply the events in the given order (the arrival order) and evaluate every metric.

    `at_ms` None means the largest timestamp among applied events, or `now_ms` (default the wall
    clock) when none was applied. Invalid events and repeated event ids are counted, not applied.
    `input_format="segment"` reads Segment/RudderStack calls. After an event the engine fails
    on, `events` is iterated again: a one-shot iterator is kept as it is read.
    """
    source = _Replayable(events) if iter(events) is events else events

    def feed(engine: Compute) -> None:
        batch: list[bytes | None] = []
        for raw in source:
            batch.append(message_bytes(raw))
            if len(batch) >= _BATCH:
                engine.feed(batch)
                batch = []
                if engine.failure is not None:
                    return
        engine.feed(batch)

    return _run(feed, catalog, at_ms, now_ms, max_future_skew_ms, input_format)


def compute_file(
    path: str | os.PathLike[str],
    catalog: Catalog,
    at_ms: int | None = None,
    now_ms: int | None = None,
    max_future_skew_ms: int = 300_000,
    input_format: InputFormat = "nsm",
) -> ComputeResult:
    """`compute_metrics` over a JSON Lines file, which the engine reads itself."""
    name = os.fspath(path)
    return _run(
        lambda engine: engine.feed_file(name),
        catalog, at_ms, now_ms, max_future_skew_ms, input_format,
    )  # fmt: skip


def compute_stream(
    stream: IO[bytes],
    catalog: Catalog,
    at_ms: int | None = None,
    now_ms: int | None = None,
    max_future_skew_ms: int = 300_000,
    input_format: InputFormat = "nsm",
) -> ComputeResult:
    """`compute_metrics` over a JSON Lines stream (blank lines are not events), read in large
    chunks that the engine splits into lines itself. A stream that cannot seek (a pipe) is kept
    in a temporary file first, to be read again after an event the engine failed on."""
    if not stream.seekable():
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(stream, spool, _CHUNK_BYTES)
            spool.seek(0)
            return compute_stream(spool, catalog, at_ms, now_ms, max_future_skew_ms, input_format)
    start = stream.tell()

    def feed(engine: Compute) -> None:
        stream.seek(start)
        rest = b""
        while chunk := stream.read(_CHUNK_BYTES):
            end = chunk.rfind(b"\n")
            if end < 0:
                rest += chunk
                continue
            engine.feed_lines(rest + chunk[: end + 1])
            rest = chunk[end + 1 :]
            if engine.failure is not None:
                return
        if rest:
            engine.feed_lines(rest)

    return _run(feed, catalog, at_ms, now_ms, max_future_skew_ms, input_format)
