"""The collector's Prometheus series (docs/metrics.md), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()


class CollectTelemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "nsm_collect_requests_total",
            "Tracking API requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "nsm_collect_events_total",
            "Calls produced to the topic and acknowledged by Kafka.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "nsm_collect_rejected_total",
            "Calls and requests refused, by reason (a request refused whole counts once).",
            ["reason"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "nsm_collect_produce_seconds",
            "Time from handing a request's calls to Kafka until every one was acknowledged.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.pending = Gauge(
            "nsm_collect_pending_events",
            "Calls handed to Kafka and not yet acknowledged.",
            registry=self.registry,
        )
        self.kafka_up = Gauge(
            "nsm_collect_kafka_up",
            "1 while the last produce was acknowledged, 0 while Kafka is unreachable.",
            registry=self.registry,
        )
