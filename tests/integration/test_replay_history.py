"""A replay's history, exported as OpenMetrics and imported by promtool into a Prometheus of the
test's own: range queries over the backfilled period equal `nsm compute --at` at sampled times."""

from __future__ import annotations

import json
import random
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from processor.definitions import Catalog
from processor.engine import compute_metrics
from tests.integration.private_prometheus import start_prometheus as start_private
from tests.integration.private_prometheus import stop
from tests.integration.test_replay_support import (
    Topic,
    catalog,
    history_topic,
    namespaces,
    replay_json,
    run_nsm,
)

__all__ = ["catalog", "history_topic", "namespaces"]  # fixtures used below

STEP_S = 300


def start_prometheus(folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    return start_private(folder, {"global": {"scrape_interval": "15s"}})


def query_range(url: str, expr: str, start: int, end: int, step: int) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def test_backfilled_history_in_prometheus_equals_compute_at_sampled_times(
    history_topic: Topic, catalog: Catalog, namespaces: str, tmp_path: Path
):
    name = f"{namespaces}-history"
    final = replay_json("--namespace", name, "--topic", history_topic.name, "--live", "x-none")
    exported = tmp_path / "history.om"
    run_nsm("history", "export", "--namespace", name, "--out", str(exported), "--step", "5m")
    text = exported.read_text()
    assert text.startswith("# HELP") and text.endswith("# EOF\n")
    blocks = subprocess.run(
        [
            "promtool",
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(exported),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert blocks.returncode == 0, blocks.stdout + blocks.stderr
    url, process = start_prometheus(tmp_path)
    try:
        raw = history_topic.values()
        stamps = [m.timestamp_ms for m in history_topic.messages]
        first, last = min(stamps) // 1000, max(stamps) // 1000
        random.seed(5)
        # Sampled on the export's grid and off it (between samples, within the lookback).
        times = [*sorted(random.sample(range(first + 3600, last, 60), 5)), last]
        for t in times:
            expected = compute_metrics(raw, catalog, at_ms=t * 1000).to_json()["metrics"]
            series = query_range(url, 'nsm_metric_value{segment=""}', t, t, 60)
            got = {s["metric"]["metric"]: float(s["values"][0][1]) for s in series}
            wanted = {m: float(v["value"]) for m, v in expected.items() if v["value"] is not None}
            assert got == wanted, t
            segments = query_range(
                url, 'nsm_metric_value{metric="weekly_reports_sent",segment="plan"}', t, t, 60
            )
            by_plan = {s["metric"]["segment_value"]: float(s["values"][0][1]) for s in segments}
            plans = expected["weekly_reports_sent"]["segments"]["plan"]
            assert by_plan == {k: float(v) for k, v in plans.items()}, t
        # The last sample is the replay's final answer.
        assert float(final["metrics"]["weekly_reports_sent"]["value"]) == got["weekly_reports_sent"]
    finally:
        stop(process)
