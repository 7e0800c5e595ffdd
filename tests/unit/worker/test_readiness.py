"""Which metrics the exporter exports (CONTRACT §4, "No made-up numbers"), their window coverage,
and the series the worker serves for them."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from processor.engine import MetricValue
from processor.engine.summaries import Summary, finish
from processor.partition.state import Message, PartitionState, fingerprints
from processor.worker.readiness import MetricStatus, PartitionReport, combine, coverage_ratio
from processor.worker.telemetry import Telemetry
from tests.strategies import BASE_MS, catalog_of

HOUR = 3_600_000
CATALOG = catalog_of(
    [
        {"name": "sent", "tier": "diagnostic", "window": "4h", "bucket": "1h",
         "aggregate": {"event": "report.sent", "count": True}},
        {"name": "viewed", "tier": "diagnostic", "window": "4h", "bucket": "1h",
         "aggregate": {"event": "report.viewed", "count": True}},
        {"name": "ratio", "tier": "north_star", "window": "4h", "bucket": "1h",
         "formula": "viewed / sent"},
    ]
)  # fmt: skip
FPS = fingerprints(CATALOG)


def summary_of(sent: int, viewed: int = 0) -> Summary:
    """A partition's summary (as of BASE_MS) that counts `sent` reports sent and `viewed`
    viewed."""
    events = [("report.sent", i) for i in range(sent)]
    events += [("report.viewed", i) for i in range(viewed)]
    state = PartitionState(CATALOG, 0)
    messages = [
        Message(i, orjson.dumps({"type": kind, "timestamp": BASE_MS, "account_id": "acme",
                                 "event_id": f"{kind}-{n}"}))
        for i, (kind, n) in enumerate(events)
    ]  # fmt: skip
    state.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    return state.summarize(BASE_MS)


def report(ready: list[str], covered: dict[str, int] | None = None) -> PartitionReport:
    return PartitionReport(summary_of(10, 10), {m: FPS[m] for m in ready}, covered or {})


def value_of(merged: Summary, metric: str) -> object:
    return finish(CATALOG, merged)[metric].value


def test_coverage_is_the_share_of_the_window_from_where_the_state_holds_every_event():
    metric = CATALOG["sent"]
    as_of = 100 * HOUR + HOUR // 2  # the window: buckets 97..100, from 97 h to 100.5 h
    assert coverage_ratio(metric, None, as_of) == 1.0
    assert coverage_ratio(metric, 97 * HOUR, as_of) == 1.0
    assert coverage_ratio(metric, 99 * HOUR, as_of) == pytest.approx(1.5 / 3.5)
    assert coverage_ratio(metric, as_of + 1, as_of) == 0.0


def test_a_metric_is_ready_only_when_every_partition_has_it_for_the_running_definition():
    stale = PartitionReport(summary_of(10), {"sent": "an older fingerprint"})
    _, statuses = combine(CATALOG, FPS, [report(["sent", "viewed"]), report(["sent"]), stale], 0)
    assert statuses["sent"] == MetricStatus(False, 1.0)  # partition 2 ran other definitions
    assert not statuses["viewed"].ready  # partition 1 still rebuilds it
    assert not statuses["ratio"].ready  # a formula needs all its operands

    merged, statuses = combine(CATALOG, FPS, [report(["sent", "viewed"])] * 2, 0)
    assert all(s.ready for s in statuses.values())
    assert value_of(merged, "sent") == 20


def test_a_partition_without_a_summary_makes_every_metric_not_ready_and_uncovered():
    _, statuses = combine(CATALOG, FPS, [report(["sent", "viewed"]), None], 0)
    assert statuses == {name: MetricStatus(False, 0.0) for name in ("sent", "viewed", "ratio")}
    _, nothing = combine(CATALOG, FPS, [], 0)
    assert not any(s.ready for s in nothing.values())


def test_coverage_is_the_latest_start_over_partitions_and_operands():
    as_of = 100 * HOUR
    reports = [
        report(["sent", "viewed"], {"sent": 99 * HOUR}),
        report(["sent", "viewed"], {"sent": 98 * HOUR, "viewed": 98 * HOUR}),
    ]
    _, statuses = combine(CATALOG, FPS, reports, as_of)
    assert statuses["sent"].coverage == pytest.approx(1 / 3)  # from 99 h of 97..100 h
    assert statuses["viewed"].coverage == pytest.approx(2 / 3)
    assert statuses["ratio"].coverage == pytest.approx(1 / 3)


def test_summaries_carry_readiness_and_the_parts_of_ready_metrics_only():
    raw = PartitionReport(summary_of(3, 4), {"sent": FPS["sent"]}, {"sent": 7}).encode(CATALOG)
    decoded = PartitionReport.decode(CATALOG, raw)
    assert decoded.ready == {"sent": FPS["sent"]} and decoded.covered == {"sent": 7}
    assert value_of(decoded.summary, "sent") == 3
    assert orjson.loads(raw)["metrics"].keys() == {"sent"}  # viewed is not complete here


def test_a_summary_without_readiness_has_nothing_ready():
    raw = orjson.dumps({"as_of": BASE_MS, "metrics": {}})
    assert PartitionReport.decode(CATALOG, raw).ready == {}


def test_the_exporter_serves_values_of_ready_metrics_and_every_status():
    telemetry = Telemetry(CATALOG)
    values = {name: MetricValue(Decimal(4), {}) for name in ("sent", "viewed", "ratio")}
    statuses = {
        "sent": MetricStatus(True, 1.0),
        "viewed": MetricStatus(False, 0.25),
        "ratio": MetricStatus(False, 0.25),
    }
    telemetry.publish(0, values, statuses)
    sample = telemetry.registry.get_sample_value
    total = {"tier": "diagnostic", "segment": "", "segment_value": ""}
    assert sample("nsm_metric_value", {"metric": "sent", **total}) == 4
    assert sample("nsm_metric_value", {"metric": "viewed", **total}) is None  # no placeholder
    assert sample("nsm_metric_ready", {"metric": "viewed"}) == 0
    assert sample("nsm_metric_window_coverage_ratio", {"metric": "viewed"}) == 0.25
    assert sample("nsm_metric_ready", {"metric": "sent"}) == 1


def test_a_worker_without_partitions_reports_nothing_ready_and_one_with_some_leaves_it():
    telemetry = Telemetry(CATALOG)
    sample = telemetry.registry.get_sample_value
    telemetry.withdraw(holds_partitions=False)
    assert [sample("nsm_metric_ready", {"metric": m}) for m in ("sent", "ratio")] == [0, 0]
    telemetry.withdraw(holds_partitions=True)
    assert sample("nsm_metric_ready", {"metric": "sent"}) is None
