"""`nsm explain --namespace` reads a replayed namespace's history and explains exactly what
`nsm explain --events` explains from the events themselves."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from processor.analysis.source import EventsSource, read_event_log
from processor.cli import main
from processor.definitions import load_definitions
from processor.engine import MetricValue
from processor.generate import Drop, iter_events, plan_history
from processor.replay.export import store_history
from processor.store.client import connect
from processor.store.namespaces import history_key
from processor.times import parse_time as parse_time_ms

ROOT = Path(__file__).resolve().parents[2]
METRIC = "weekly_active_accounts_3plus_reports"
BEFORE, AFTER = "2026-11-12T23:59:59Z", "2026-11-19T23:59:59Z"


def same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def test_explain_from_a_namespace_equals_explain_from_events(redis_url: str, unique_name: str,
                                                              tmp_path: Path):  # fmt: skip
    drop = Drop(pct=90, from_ms=parse_time_ms("2026-11-13T00:00:00Z"), field="region", value="emea")
    config = plan_history(seed=4, accounts=60, days=21,
                          end_ms=parse_time_ms("2026-11-20T00:00:00Z"), drop=drop)  # fmt: skip
    events = list(iter_events(config))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    catalog = load_definitions(ROOT / "definitions")
    t1, t2 = parse_time_ms(BEFORE), parse_time_ms(AFTER)
    values = EventsSource(read_event_log(events, catalog), catalog).values_at([t1, t2])

    async def points() -> AsyncIterator[tuple[int, dict[str, MetricValue]]]:
        for t in (t1, t2):
            yield t, values[t]

    async def store() -> None:
        client = await connect(redis_url)
        try:
            await store_history(client, unique_name, catalog, 3_600_000, t2, points())
        finally:
            await client.aclose()

    async def clean() -> None:
        client = await connect(redis_url)
        try:
            await client.unlink(history_key(unique_name))
        finally:
            await client.aclose()

    asyncio.run(store())
    try:
        common = ["explain", METRIC, "--from", BEFORE, "--to", AFTER, "--format", "json",
                  "--definitions", str(ROOT / "definitions")]  # fmt: skip
        runner = CliRunner()
        from_events = runner.invoke(main, [*common, "--events", str(path)])
        from_history = runner.invoke(
            main, [*common, "--namespace", unique_name, "--redis-url", redis_url]
        )
    finally:
        asyncio.run(clean())
    assert from_events.exit_code == 0, from_events.output
    assert from_history.exit_code == 0, from_history.output
    expected, got = orjson.loads(from_events.output), orjson.loads(from_history.output)
    assert expected["change"] != 0 and expected["segments"], "there is a change to explain"
    assert same(got, expected)


def test_explain_needs_exactly_one_source():
    result = CliRunner().invoke(main, ["explain", METRIC, "--from", BEFORE, "--to", AFTER])
    assert result.exit_code == 2
    assert "exactly one of --prometheus URL, --events FILE and --namespace NAME" in result.output
