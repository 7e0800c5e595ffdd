"""The history export is compact and exact: 10 days of the example metrics, written with only
the samples Prometheus needs, import in seconds and answer range queries with `nsm compute --at`."""

from __future__ import annotations

import json
import random
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processor.definitions import Catalog, load_definitions
from processor.engine import compute_metrics
from processor.generate import iter_events, plan_history
from processor.replay.export import DEFAULT_LOOKBACK_MS
from processor.times import parse_time
from tests.integration.imported_history import ImportedPrometheus, history_of, serve_history

ROOT = Path(__file__).resolve().parents[2]
END = "2026-11-20T00:00:00Z"
DAYS = 10
MB = 1_000_000


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_definitions(ROOT / "definitions")


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(iter_events(plan_history(seed=1, days=DAYS, end_ms=parse_time(END))))


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, catalog: Catalog, events: list[dict[str, Any]]
) -> Iterator[ImportedPrometheus]:
    history = history_of(events, catalog, now_ms=parse_time(END))
    yield from serve_history(tmp_path_factory.mktemp("ten-days"), history)


def query_range(url: str, expr: str, t: int) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": t, "end": t, "step": 60})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def test_ten_days_export_small_and_import_fast(imported: ImportedPrometheus, catalog: Catalog):
    series = query_range(imported.url, "count(nsm_metric_value)", parse_time(END) // 1000 - 3600)
    count = int(float(series[0]["values"][0][1]))
    # A sample per series every lookback delta is what gap-free answers need; one a minute (the
    # export before) wrote five times as many.
    per_series = DAYS * 86_400_000 // DEFAULT_LOOKBACK_MS
    print(f"export: {imported.export_bytes / MB:.1f} MB, {count} series at the end, "
          f"import {imported.import_seconds:.1f} s")  # fmt: skip
    assert imported.export_bytes <= 70 * MB
    assert imported.export_bytes <= count * per_series * 160  # bytes a sample line takes at most
    assert imported.import_seconds < 30


def test_range_queries_equal_compute_at_sampled_times(
    imported: ImportedPrometheus, catalog: Catalog, events: list[dict[str, Any]]
):
    end_s = parse_time(END) // 1000
    random.seed(18)
    # On the hour (a bucket boundary), between samples, and just before a boundary.
    times = [end_s - 86_400 * 2, end_s - 7 * 3600 - 60, end_s - 3600 - 1]
    times += random.sample(range(end_s - 8 * 86_400, end_s - 3600), 3)
    for t in times:
        expected = compute_metrics(events, catalog, at_ms=t * 1000, now_ms=parse_time(END))
        wanted = expected.to_json()["metrics"]
        totals = query_range(imported.url, 'nsm_metric_value{segment=""}', t)
        got = {s["metric"]["metric"]: float(s["values"][0][1]) for s in totals}
        assert got == {m: float(v["value"]) for m, v in wanted.items() if v["value"] is not None}
        for metric, segment in (("pipeline_30d", "rep"), ("weekly_reports_sent", "region")):
            breakdown = query_range(
                imported.url, f'nsm_metric_value{{metric="{metric}",segment="{segment}"}}', t
            )
            by_value = {s["metric"]["segment_value"]: float(s["values"][0][1]) for s in breakdown}
            labels = wanted[metric]["segments"][segment]
            assert by_value == {k: float(v) for k, v in labels.items()}, (t, metric)
