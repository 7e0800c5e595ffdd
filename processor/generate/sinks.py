"""Where records go (a file, standard output, a Kafka topic), at what pace, with what progress.

The loop is the same for every destination: take a record when the pace allows, hand it to the
sink, update the progress now and then, and on Ctrl-C stop cleanly after flushing what was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from processor.generate.records import Record, RecordStream

# Redrawing the bar costs far more than generating an event: at full speed, look at the clock
# only every so many records, and redraw a few times a second at most.
_PROGRESS_EVERY = 1_024
_REFRESH_SECONDS = 0.25


class Sink(Protocol):
    def write(self, key: bytes | None, value: bytes) -> None: ...

    def close(self) -> None:
        """Flush everything written so far; raise if some of it could not be delivered."""


class LinesSink:
    """JSON Lines to a binary file or standard output."""

    def __init__(self, handle: IO[bytes], close_handle: bool) -> None:
        self._handle = handle
        self._close_handle = close_handle

    def write(self, key: bytes | None, value: bytes) -> None:
        self._handle.write(value)
        self._handle.write(b"\n")

    def close(self) -> None:
        self._handle.flush()
        if self._close_handle:
            self._handle.close()


def paced(records: Iterator[Record], rate_now: Callable[[], float]) -> Iterator[Record]:
    """At most `rate_now()` records a second (0: as fast as possible); the rate may change, as it
    does when a fast replay of history turns into a live stream.

    The wait comes before the next record is taken, so a live event is stamped when it is sent.
    """
    current_rate = -1.0
    anchor = time.monotonic()
    sent = 0
    while True:
        rate = rate_now()
        if rate != current_rate:
            current_rate, anchor, sent = rate, time.monotonic(), 0
        if rate > 0:
            delay = anchor + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            record = next(records)
        except StopIteration:
            return
        sent += 1
        yield record


@dataclass
class Summary:
    records: int
    duplicates: int
    invalid: int
    seconds: float
    interrupted: bool

    def describe(self, destination: str) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        extras = []
        if self.duplicates:
            extras.append(f"{self.duplicates:,} repeats")
        if self.invalid:
            extras.append(f"{self.invalid:,} invalid")
        detail = f" (of which {', '.join(extras)})" if extras else ""
        verb = "interrupted after" if self.interrupted else "wrote"
        return (
            f"{verb} {self.records:,} events{detail} to {destination} "
            f"in {self.seconds:.1f}s ({rate:,.0f} events/s)"
        )


class _Bar:
    """Progress on standard error: events, events/s and, while replaying history, the time left.

    Without `--events` the history's length is known in time, not in events, so the bar advances
    with the event time reached; during `--follow` it only counts.
    """

    def __init__(self, stream: RecordStream, console: Console) -> None:
        self._stream = stream
        config = stream.config
        self._by_count = config.max_events is not None
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[records]:>12,} events"),
            TextColumn("{task.fields[speed]:>9,.0f} events/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        total = config.max_events if self._by_count else config.end_ms - config.start_ms
        self._task: TaskID = self._progress.add_task("history", total=total, records=0, speed=0.0)
        self._started = self._last_update = time.monotonic()

    def start(self) -> None:
        self._progress.start()

    def stop(self, finished: bool) -> None:
        self.update()
        if finished and not self._stream.is_live:
            # The history ran to its end; its last event rarely falls on its very last millisecond.
            self._progress.update(self._task, completed=self._progress.tasks[0].total)
        self._progress.stop()

    def maybe_update(self) -> None:
        now = time.monotonic()
        if now - self._last_update >= _REFRESH_SECONDS:
            self._last_update = now
            self.update()

    def update(self) -> None:
        stats = self._stream.stats
        elapsed = max(time.monotonic() - self._started, 1e-9)
        config = self._stream.config
        if self._by_count:
            completed = stats.records
        else:
            completed = max(0, min(stats.last_event_ms, config.end_ms) - config.start_ms)
        live = self._stream.is_live
        self._progress.update(
            self._task,
            completed=completed,
            total=None if live else self._progress.tasks[0].total,
            description="live" if live else "history",
            records=stats.records,
            speed=stats.records / elapsed,
        )


def run(
    stream: RecordStream,
    sink: Sink,
    rate: float = 0.0,
    live_rate: float = 0.0,
    progress_console: Console | None = None,
) -> Summary:
    """Send every record of the stream to the sink, the history at `rate` and the live part (with
    `follow`) at `live_rate` records a second; Ctrl-C stops after flushing."""
    started = time.monotonic()
    interrupted = False
    finished = False
    bar = _Bar(stream, progress_console) if progress_console is not None else None
    try:
        if bar is not None:
            bar.start()
        records = paced(iter(stream), lambda: live_rate if stream.is_live else rate)
        for count, (key, value) in enumerate(records, start=1):
            sink.write(key, value)
            if bar is not None and (count % _PROGRESS_EVERY == 0 or rate or stream.is_live):
                bar.maybe_update()
        finished = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.stop(finished)
        sink.close()
    stats = stream.stats
    return Summary(
        records=stats.records,
        duplicates=stats.duplicates,
        invalid=stats.invalid,
        seconds=time.monotonic() - started,
        interrupted=interrupted,
    )
