"""Which metrics the exporter may export, and the share of each window the state covers. No I/O.

Each partition's summary says which of its metrics are complete, for which version of their
definition (fingerprint), and from what time their state holds every event when the topic no
longer held its beginning (processor/worker/rebuild.py). A metric is ready, and exported, only
when every partition of the topic has it complete for the definition the exporter runs; a formula
only when all of its operands are. Nothing else is exported: no placeholder for a metric that has
no state yet (CONTRACT §4, "No made-up numbers").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nsm_native import window_start_ms

from processor.definitions.formula import parse_formula
from processor.definitions.model import Catalog, Metric
from processor.engine.summaries import (
    Summary,
    decode_summary,
    encode_summary,
    merge_summaries,
    summary_extras,
)

READY, COVERED = "ready", "covered"


@dataclass
class PartitionReport:
    """What one partition's summary carries: its parts of the complete metrics (those alone),
    the fingerprints they are complete for, and where their coverage starts."""

    summary: Summary
    ready: dict[str, str] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)

    def extras(self) -> dict[str, object]:
        """The readiness fields as the summary document holds them."""
        return {READY: self.ready, COVERED: self.covered}

    def encode(self, catalog: Catalog) -> bytes:
        """The summary document, with the parts of the complete metrics only."""
        return encode_summary(catalog, self.summary, self.extras(), only=self.ready)

    @classmethod
    def decode(cls, catalog: Catalog, raw: bytes) -> PartitionReport:
        """From a stored summary (ValueError when it is not one)."""
        return cls.of(decode_summary(catalog, raw), summary_extras(raw))

    @classmethod
    def of(cls, summary: Summary, extras: Mapping[str, object]) -> PartitionReport:
        """From a decoded summary; a summary without readiness (an older worker) has nothing
        ready."""
        ready = extras.get(READY) or {}
        covered = extras.get(COVERED) or {}
        assert isinstance(ready, dict) and isinstance(covered, dict)
        return cls(summary, dict(ready), {k: int(v) for k, v in covered.items()})


@dataclass(frozen=True)
class MetricStatus:
    ready: bool
    coverage: float  # share of the window the state covers, 0..1


def coverage_ratio(metric: Metric, covered_from_ms: int | None, as_of_ms: int) -> float:
    """The share of the window as of `as_of_ms` (from its first bucket's start to then) from
    `covered_from_ms` on; 1.0 when the state holds every event (None) or the window starts
    later."""
    if covered_from_ms is None:
        return 1.0
    start = window_start_ms(metric.bucket_ms, metric.buckets_in_window, as_of_ms)
    if covered_from_ms <= start:
        return 1.0
    span = as_of_ms - start
    if span <= 0:
        return 0.0
    return max(0.0, min(1.0, (as_of_ms - covered_from_ms) / span))


_NEVER = 2**62  # a coverage start no event reaches: a partition that reported nothing


def combine(
    catalog: Catalog,
    fingerprints: Mapping[str, str],
    reports: Sequence[PartitionReport | None],
    as_of_ms: int,
) -> tuple[Summary, dict[str, MetricStatus]]:
    """The merged summary of the ready metrics, and every metric's status. `reports` has one
    entry per partition of the topic (None for a partition that has written no summary)."""
    ready: dict[str, bool] = {}
    start: dict[str, int | None] = {}
    for metric in catalog:
        if metric.kind == "formula":
            continue
        name, wanted = metric.name, fingerprints.get(metric.name)
        ready[name] = bool(reports) and all(
            r is not None and r.ready.get(name) == wanted for r in reports
        )
        starts = [
            _NEVER if r is None else r.covered.get(name) for r in reports
        ] or [_NEVER]  # fmt: skip
        known = [s for s in starts if s is not None]
        start[name] = max(known) if known else None
    for metric in catalog:
        if metric.kind == "formula":
            _formula_status(catalog, metric.name, ready, start, set())
    statuses = {
        m.name: MetricStatus(ready[m.name], coverage_ratio(m, start[m.name], as_of_ms))
        for m in catalog
    }
    # Each summary holds its partition's complete metrics only: a metric complete in some
    # partitions and not in others is merged from those, and not exported (not ready).
    merged = merge_summaries(catalog, [r.summary for r in reports if r is not None])
    return merged, statuses


def _formula_status(
    catalog: Catalog,
    name: str,
    ready: dict[str, bool],
    start: dict[str, int | None],
    visiting: set[str],
) -> None:
    """A formula is ready when every operand is, and covers what all of them cover."""
    if name in ready or name in visiting:
        return
    visiting.add(name)
    formula = catalog[name].formula
    assert formula is not None
    operands = [op for op in parse_formula(formula).operands if op in catalog.metrics]
    for operand in operands:
        _formula_status(catalog, operand, ready, start, visiting)
    ready[name] = all(ready.get(op, False) for op in operands)
    known = [start.get(op) for op in operands]
    starts = [s for s in known if s is not None]
    start[name] = max(starts) if starts else None
