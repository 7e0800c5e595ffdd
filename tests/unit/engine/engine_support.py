"""Builders shared by the engine tests: catalogues from plain dicts, events, a fixed clock."""

from __future__ import annotations

from typing import Any

from processor.definitions.model import Catalog, Metric
from processor.engine import ComputeResult, compute_metrics

HOUR = 3_600_000
DAY = 24 * HOUR
BASE = 1_795_168_800_000  # 2026-11-20T10:00:00Z, on an hour boundary
NOW = BASE + 30 * DAY


def catalog(*metrics: dict[str, Any]) -> Catalog:
    return Catalog(metrics={m["name"]: Metric.model_validate(m) for m in metrics})


def metric(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "tier": "diagnostic", "window": "1d", **fields}


def event(event_type: str, ts: int, **fields: Any) -> dict[str, Any]:
    return {"type": event_type, "timestamp": ts, **fields}


def compute(
    events: list[Any], *metrics: dict[str, Any], at: int | None = None, now: int = NOW
) -> ComputeResult:
    return compute_metrics(events, catalog(*metrics), at_ms=at, now_ms=now)


def values(events: list[Any], *metrics: dict[str, Any], at: int | None = None) -> dict[str, Any]:
    """The JSON document's metrics: {name: {"value": v, "segments": {...}}}."""
    document: dict[str, Any] = compute(events, *metrics, at=at).to_json()["metrics"]
    return document
