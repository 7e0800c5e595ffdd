"""The replay's progress bar on standard error: events read, events per second and time left."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Redrawing costs more than a batch of events: at most a few times a second.
_REFRESH_SECONDS = 0.25


class _Speed(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")


class ReplayProgress:
    """Counts events as they are applied; `None`-safe to use when no bar is wanted."""

    def __init__(self, total: int, enabled: bool, description: str = "replay") -> None:
        self._progress: Progress | None = None
        self._pending = 0
        self._last = time.monotonic()
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
                _Speed(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total)
            self._progress.start()

    def advance(self, events: int) -> None:
        self._pending += events
        now = time.monotonic()
        if self._progress is not None and now - self._last >= _REFRESH_SECONDS:
            self._progress.update(self._task, advance=self._pending)
            self._pending, self._last = 0, now

    def phase(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=self._pending, description=description)
            self._pending = 0

    def close(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=self._pending)
            self._progress.stop()
