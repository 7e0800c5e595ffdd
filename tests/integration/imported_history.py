"""A history of generated events, as a replay records it, exported as OpenMetrics and imported by
promtool into a Prometheus of the test's own.

The history is computed without Kafka or Redis, with the replay's own steps: the engine applies
the events, the history sweep (`processor.replay.history`) takes every metric at every bucket
boundary, and `processor.replay.export` writes the OpenMetrics promtool reads.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.analysis.source import read_event_log
from processor.definitions import Catalog
from processor.engine import Engine
from processor.engine.compute import ComputeResult
from processor.replay.export import History, openmetrics
from processor.replay.history import history_step_ms, sweep
from tests.integration.private_prometheus import start_prometheus, stop


def history_of(events: list[dict[str, Any]], catalog: Catalog, now_ms: int) -> History:
    """Every metric at every bucket boundary from the first event to the newest one."""
    log = read_event_log(events, catalog, now_ms=now_ms)
    assert log.first_ms is not None and log.last_ms is not None
    engine = Engine(catalog)
    for item in log.events:
        engine.apply(item.event, item.seq)
    points = [
        (t, ComputeResult(t, values).to_json()["metrics"])
        for t, values in sweep(catalog, [engine], log.first_ms, log.last_ms)
    ]
    tiers = {m.name: m.tier for m in catalog}
    return History(tiers, history_step_ms(catalog), log.last_ms, points)


def write_openmetrics(history: History, path: Path, **options: Any) -> int:
    """Write the export to `path`; returns its size in bytes."""
    with path.open("w") as out:
        for line in openmetrics(history, **options):
            out.write(line)
    return path.stat().st_size


def import_blocks(source: Path, data: Path) -> float:
    """promtool's import into `data`, as docs/backfill.md says; returns the seconds it took."""
    started = time.monotonic()
    imported = subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=240h",
            "-q",
            str(source),
            str(data),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    return time.monotonic() - started


@dataclass
class ImportedPrometheus:
    url: str
    export_bytes: int
    import_seconds: float


def serve_history(folder: Path, history: History, **export: Any) -> Iterator[ImportedPrometheus]:
    """Export (with `export`'s options), import and serve `history` from a Prometheus of its
    own (a fixture's body)."""
    source = folder / "history.om"
    size = write_openmetrics(history, source, **export)
    seconds = import_blocks(source, folder / "data")
    url, process = start_prometheus(folder, {"global": {"scrape_interval": "15s"}})
    try:
        yield ImportedPrometheus(url, size, seconds)
    finally:
        stop(process)
