"""The worker's Prometheus series (CONTRACT §4 and docs/metrics.md), in a registry of its own.

`nsm_metric_value` comes from a custom collector that reads the latest exported snapshot when
Prometheus scrapes, so a scrape never waits for a computation and a worker that is not the
exporter serves no such series at all. The snapshot holds the ready metrics only, and with them
every metric's `nsm_metric_ready` and `nsm_metric_window_coverage_ratio` (worker/readiness.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processor.definitions.model import Catalog
from processor.engine import MetricValue
from processor.events import INVALID_REASONS
from processor.worker.readiness import MetricStatus

METRIC_LABELS = ["metric", "tier", "segment", "segment_value"]

# `*_created` samples double every counter's series for no use on these dashboards.
disable_created_metrics()


@dataclass
class Snapshot:
    """What the exporter serves: the ready metrics' values as of a time, with their tiers, and
    every metric's status."""

    as_of_ms: int
    values: Mapping[str, MetricValue]
    tiers: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, MetricStatus] = field(default_factory=dict)


class MetricValuesCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        # Without a snapshot: the statuses of a worker that holds no partition at all (nothing
        # of it can be ready), or none for a worker that leaves the export to another.
        self.statuses: Mapping[str, MetricStatus] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "nsm_metric_value",
            'The metric as of now; the total has segment="", a breakdown segment=<field>.',
            labels=METRIC_LABELS,
        )
        snapshot = self.snapshot
        if snapshot is not None:
            for name, value in snapshot.values.items():
                tier = snapshot.tiers.get(name, "")
                if value.value is not None:
                    family.add_metric([name, tier, "", ""], _float(value.value))
                for segment, labels in value.segments.items():
                    for label, amount in labels.items():
                        if amount is not None:  # no value: no sample (CONTRACT §2, formulas)
                            family.add_metric([name, tier, segment, label], _float(amount))
        yield family
        as_of = GaugeMetricFamily(
            "nsm_metric_as_of_timestamp_seconds",
            "The time the exported nsm_metric_value series are computed as of.",
        )
        if snapshot is not None:
            as_of.add_metric([], snapshot.as_of_ms / 1000)
        yield as_of
        statuses = snapshot.statuses if snapshot is not None else self.statuses
        ready = GaugeMetricFamily(
            "nsm_metric_ready",
            "1 when the metric's value is exported; 0 while its state is built from the topic.",
            labels=["metric"],
        )
        coverage = GaugeMetricFamily(
            "nsm_metric_window_coverage_ratio",
            "Share of the metric's window the applied events cover (below 1 when the topic no "
            "longer holds the window's start).",
            labels=["metric"],
        )
        for name, status in statuses.items():
            ready.add_metric([name], 1.0 if status.ready else 0.0)
            coverage.add_metric([name], status.coverage)
        yield ready
        yield coverage


class KnownGauge(Collector):
    """A gauge without labels that has no sample until its value is known: a worker that has
    applied nothing and loaded no state does not say its newest event is from 1970."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.value: float | None = None

    def set(self, value: float) -> None:
        self.value = value

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self.value is not None:
            family.add_metric([], self.value)
        yield family


def _float(value: int | Decimal) -> float:
    return float(value)


class Telemetry:
    def __init__(self, catalog: Catalog) -> None:
        self.registry = CollectorRegistry()
        self.catalog = catalog
        self.tiers = {m.name: m.tier for m in catalog}
        r = self.registry
        self.values = MetricValuesCollector()
        r.register(self.values)
        self.processed = Counter("nsm_events_processed", "Events applied.", registry=r)
        self.invalid = Counter(
            "nsm_events_invalid", "Events sent to the dead-letter topic.", ["reason"], registry=r
        )
        self.late = Counter(
            "nsm_events_late", "Events too late for a metric's window.", ["metric"], registry=r
        )
        self.duplicates = Counter(
            "nsm_events_duplicate", "Events ignored as repeats of an applied event_id.", registry=r
        )
        self.last_event = KnownGauge(
            "nsm_last_event_timestamp_seconds", "Event time of the newest applied event."
        )
        r.register(self.last_event)
        self.exporter = Gauge(
            "nsm_exporter", "1 on the worker that exports nsm_metric_value.", registry=r
        )
        self.lag = Gauge(
            "nsm_consumer_lag",
            "Messages in the partition not yet applied.",
            ["topic", "partition"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "nsm_batch_duration_seconds",
            "Time to apply one batch, from decoding to the atomic Redis step.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_events = Histogram(
            "nsm_batch_events",
            "Events per batch.",
            buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000),
            registry=r,
        )
        self.dependency_up = Gauge(
            "nsm_dependency_up",
            "1 when the dependency answered at the last attempt.",
            ["dependency"],
            registry=r,
        )
        self.unreadable_batches = Counter(
            "nsm_record_batches_unreadable",
            "Record batches that could not be read (CRC, decompression, decoding): passed over.",
            ["partition"],
            registry=r,
        )
        self.partitions = Gauge(
            "nsm_partitions_assigned", "Partitions this worker owns.", registry=r
        )
        self.reloads = Counter(
            "nsm_definitions_reloads",
            "Reloads of the definitions (SIGHUP, --watch-definitions): applied, or rejected as "
            "invalid (the running set is kept).",
            ["outcome"],
            registry=r,
        )
        self.rebuild_remaining = Gauge(
            "nsm_rebuild_remaining_messages",
            "Messages a partition's rebuilds of changed or new metrics still have to read.",
            ["partition"],
            registry=r,
        )
        for outcome in ("applied", "rejected"):
            self.reloads.labels(outcome=outcome)
        for reason in INVALID_REASONS:
            self.invalid.labels(reason=reason)
        for dependency in ("kafka", "redis"):
            self.dependency_up.labels(dependency=dependency).set(0)

    def set_catalog(self, catalog: Catalog) -> None:
        """The definitions were reloaded."""
        self.catalog = catalog
        self.tiers = {m.name: m.tier for m in catalog}

    def publish(
        self,
        as_of_ms: int,
        values: Mapping[str, MetricValue],
        statuses: Mapping[str, MetricStatus],
    ) -> None:
        """Export the ready metrics' values (those of others are left out) and every status."""
        ready = {name: v for name, v in values.items() if statuses.get(name, _NOT).ready}
        self.values.snapshot = Snapshot(as_of_ms, ready, self.tiers, dict(statuses))
        self.exporter.set(1)

    def withdraw(self, holds_partitions: bool = True) -> None:
        """This worker is not the exporter: serve no nsm_metric_value series. A worker without
        any partition says that nothing is ready (it may be the only one, on a topic it cannot
        read); one with partitions leaves the statuses to the exporter."""
        self.values.snapshot = None
        self.values.statuses = {} if holds_partitions else {
            m.name: _NOT for m in self.catalog
        }  # fmt: skip
        self.exporter.set(0)


_NOT = MetricStatus(ready=False, coverage=0.0)
