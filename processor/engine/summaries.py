"""Summaries: what each partition's state contributes to every metric as of a time.

The engine makes them (nsm_native.Summary): numbers add and distinct values unite when
partitions merge, and `finish` gives every metric's value (formulas, then the segment cap). The
worker stores each partition's summary (JSON) for the exporter, which merges them; a replay
merges its processes' summaries the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from nsm_native import Summary

from processor.definitions.model import Catalog
from processor.engine.spec import compile_catalog
from processor.engine.values import MetricValue

__all__ = ["Summary", "decode_summary", "encode_summary", "finish", "merge_summaries"]


def encode_summary(
    catalog: Catalog,
    summary: Summary,
    extras: Mapping[str, Any] | None = None,
    only: Iterable[str] | None = None,
) -> bytes:
    """The summary as stored; `extras` are further top-level fields; `only`: the metrics whose
    parts are kept (all when None)."""
    kept = None if only is None else set(only)
    return summary.encode(compile_catalog(catalog), dict(extras) if extras else None, kept)


def decode_summary(catalog: Catalog, raw: bytes) -> Summary:
    return Summary.decode(compile_catalog(catalog), raw)


def summary_extras(raw: bytes) -> dict[str, Any]:
    """The further top-level fields of a stored summary."""
    extras: dict[str, Any] = json.loads(Summary.extras(raw))
    return extras


def stored_as_of(raw: bytes) -> int:
    """As of when a stored summary is (epoch ms)."""
    as_of: int = json.loads(raw)["as_of"]
    return as_of


def merge_summaries(catalog: Catalog, summaries: Iterable[Summary]) -> Summary:
    return Summary.merge(compile_catalog(catalog), list(summaries))


def finish(catalog: Catalog, summary: Summary) -> dict[str, MetricValue]:
    """Every metric's value: formulas over the merged parts, then the segment cap."""
    return {
        r.name: MetricValue(r.value, r.segments) for r in summary.finish(compile_catalog(catalog))
    }
