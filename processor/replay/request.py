"""What a replay is asked to do (`nsm replay`'s options), shared by the replay and its shards."""

from __future__ import annotations

from dataclasses import dataclass

from processor.definitions.model import Catalog


@dataclass
class ReplayRequest:
    namespace: str
    topic: str
    bootstrap: str
    catalog: Catalog
    from_spec: str = "earliest"
    to_ms: int | None = None
    history: bool = True
    history_from_ms: int | None = None
    resume: bool = False
    discard: bool = False
    live: str = "live"
    max_records: int = 50_000
    max_future_skew_ms: int = 300_000
    progress: bool = False
    # Processes reading partitions side by side; None: one per CPU, up to one per partition,
    # and one alone for a small replay (starting a process costs more than it saves).
    processes: int | None = None
