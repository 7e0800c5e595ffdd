"""A seeded, realistic B2B SaaS event stream: product usage and go-to-market events of a synthetic
customer base, as CONTRACT §1 events.

    config = plan_history(seed=7, accounts=200, days=60)
    for key, value in RecordStream(config):   # (message key, JSON bytes), in time order
        ...

Layers, from the inside out: `vocabulary` and `world` (who the customers are), `rhythm` (when they
work), `product` and `gtm` (what they do), `simulation` (the clock), `records` (bytes, keys and
injected faults), `sinks` and `to_kafka` (where the records go).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

from processor.generate.config import (
    DAY_MS,
    DEFAULT_ACCOUNTS,
    DEFAULT_DAYS,
    Drop,
    GeneratorConfig,
    format_time_ms,
)
from processor.generate.records import Record, RecordStream, iter_events
from processor.generate.simulation import Simulation

__all__ = [
    "Drop",
    "GeneratorConfig",
    "Record",
    "RecordStream",
    "Simulation",
    "format_time_ms",
    "iter_events",
    "plan_history",
]

# Sizing a history to a number of events: margin over the estimate, and the longest history made.
_SIZING_MARGIN = 1.12
_MAX_DAYS = 3 * 365


def plan_history(
    *,
    seed: int,
    accounts: int = DEFAULT_ACCOUNTS,
    start_ms: int | None = None,
    end_ms: int | None = None,
    days: float | None = None,
    max_events: int | None = None,
    now_ms: int | None = None,
    **options: Any,
) -> GeneratorConfig:
    """The configuration for a history given any two of start, end and length (the end defaults
    to now). With only `max_events`, the history is made long enough to hold that many events."""
    if start_ms is not None and end_ms is not None and days is not None:
        raise ValueError("give at most two of --start, --end and --days")
    if days is not None and days < 0:
        raise ValueError("--days cannot be negative")
    if end_ms is None:
        if start_ms is not None and days is not None:
            end_ms = start_ms + int(days * DAY_MS)
        else:
            end_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    sized_by_events = start_ms is None and days is None and max_events is not None
    if start_ms is None:
        start_ms = end_ms - int((DEFAULT_DAYS if days is None else days) * DAY_MS)
    config = GeneratorConfig(
        seed=seed,
        accounts=accounts,
        start_ms=start_ms,
        end_ms=end_ms,
        max_events=max_events,
        **options,
    )
    if sized_by_events:
        assert max_events is not None
        config = replace(config, start_ms=end_ms - int(_days_for(config, max_events) * DAY_MS))
    return config


def _days_for(config: GeneratorConfig, events: int) -> float:
    """Days of history expected to hold `events`.

    Accounts draw the same attributes and the same place in the history (as a fraction of it)
    whatever its length, so the expected volume is proportional to the length: measure it once.
    """
    expected = Simulation(config).expected_events()
    trial_days = (config.end_ms - config.start_ms) / DAY_MS
    days = events * _SIZING_MARGIN * trial_days / max(expected, 1.0)
    return min(max(1.0, math.ceil(days)), _MAX_DAYS)
