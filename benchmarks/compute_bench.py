"""`nsm compute` over 1M generated events, against baselines over the same file in the same run.

- every example metric (23), against a bare decode loop (split lines, `orjson.loads`): the floor
  of any Python processor of this input;
- the two north stars, against DuckDB running the same question as SQL over the same file: the
  same window as of the newest event, the same dedup by event id (first occurrence), the same
  segment rule (the label on each account's most recent matching event); the bench checks that
  both give the same numbers before timing counts.

Both read the file from the page cache; each is timed in this process, best of `REPEAT` runs.
"""

from __future__ import annotations

import gc
import resource
import time
from pathlib import Path
from typing import Any

import orjson

from processor.definitions import load_definitions
from processor.definitions.model import Catalog
from processor.engine import ComputeResult, compute_file

ROOT = Path(__file__).resolve().parents[1]
NORTH_STARS = ("weekly_active_accounts_3plus_reports", "weekly_accounts_3plus_report_users")
SEGMENTS = ("plan", "segment", "region")
REPEAT = 3

# The two north stars of definitions/north_stars.yaml: accounts with 3+ report.sent, and accounts
# with 3+ distinct users viewing or sending reports, in the 7 days of 1-hour buckets ending with
# the newest event's; per segment, the label of the account's most recent matching event.
NORTH_STARS_SQL = """
WITH raw AS (
  SELECT row_number() OVER () AS seq, *
  FROM read_json('{path}', format = 'newline_delimited',
       columns = {{type: 'VARCHAR', timestamp: 'VARCHAR', event_id: 'VARCHAR',
                  account_id: 'VARCHAR', user_id: 'VARCHAR', plan: 'VARCHAR',
                  segment: 'VARCHAR', region: 'VARCHAR'}})
),
ev AS (
  SELECT seq, type, epoch_ms(timestamp::TIMESTAMPTZ) AS ts, account_id, user_id,
         plan, segment, region
  FROM raw
  QUALIFY event_id IS NULL OR row_number() OVER (PARTITION BY event_id ORDER BY seq) = 1
),
clock AS (SELECT max(ts) // 3600000 AS k FROM ev),
win AS (
  SELECT ev.* FROM ev, clock
  WHERE ts // 3600000 BETWEEN k - 167 AND k AND account_id IS NOT NULL
    AND type IN ('report.sent', 'report.viewed')
),
reports AS (
  SELECT account_id, count(*) >= 3 AS q, arg_max(plan, (ts, seq)) AS plan,
         arg_max(segment, (ts, seq)) AS segment, arg_max(region, (ts, seq)) AS region
  FROM win WHERE type = 'report.sent' GROUP BY account_id
),
readers AS (
  SELECT account_id, count(DISTINCT user_id) >= 3 AS q, arg_max(plan, (ts, seq)) AS plan,
         arg_max(segment, (ts, seq)) AS segment, arg_max(region, (ts, seq)) AS region
  FROM win GROUP BY account_id
)
SELECT 0, '', '', sum(q::INT) FROM reports
UNION ALL SELECT 0, 'plan', coalesce(plan, 'unknown'), sum(q::INT) FROM reports GROUP BY ALL
UNION ALL SELECT 0, 'segment', coalesce(segment, 'unknown'), sum(q::INT) FROM reports GROUP BY ALL
UNION ALL SELECT 0, 'region', coalesce(region, 'unknown'), sum(q::INT) FROM reports GROUP BY ALL
UNION ALL SELECT 1, '', '', sum(q::INT) FROM readers
UNION ALL SELECT 1, 'plan', coalesce(plan, 'unknown'), sum(q::INT) FROM readers GROUP BY ALL
UNION ALL SELECT 1, 'segment', coalesce(segment, 'unknown'), sum(q::INT) FROM readers GROUP BY ALL
UNION ALL SELECT 1, 'region', coalesce(region, 'unknown'), sum(q::INT) FROM readers GROUP BY ALL
"""


def decode_baseline(path: Path) -> float:
    started = time.perf_counter()
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
            count += 1
    return count / (time.perf_counter() - started)


def _timed_compute(path: Path, catalog: Catalog) -> tuple[float, ComputeResult]:
    best, result = float("inf"), None
    for _ in range(REPEAT):
        gc.collect()
        started = time.perf_counter()
        result = compute_file(path, catalog)
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def _numbers(rows: list[tuple[Any, ...]]) -> dict[tuple[int, str, str], int]:
    return {(int(m), f, label): int(n) for m, f, label, n in rows}


def duckdb_north_stars(path: Path) -> tuple[float, dict[tuple[int, str, str], int]]:
    """Seconds of DuckDB's best run of the north stars' SQL, and its numbers."""
    import duckdb

    sql = NORTH_STARS_SQL.format(path=str(path).replace("'", "''"))
    best, rows = float("inf"), []
    for _ in range(REPEAT):
        connection = duckdb.connect()
        started = time.perf_counter()
        rows = connection.sql(sql).fetchall()
        best = min(best, time.perf_counter() - started)
        connection.close()
    return best, _numbers(rows)


def _nsm_numbers(result: ComputeResult) -> dict[tuple[int, str, str], int]:
    numbers = {}
    for index, name in enumerate(NORTH_STARS):
        value = result.values[name]
        assert isinstance(value.value, int)
        numbers[(index, "", "")] = value.value
        for field in SEGMENTS:
            for label, n in value.segments[field].items():
                assert isinstance(n, int)
                numbers[(index, field, label)] = n
    return numbers


def run(path: Path) -> dict[str, Any]:
    catalog = load_definitions(ROOT / "definitions")
    baseline = decode_baseline(path)
    elapsed, result = _timed_compute(path, catalog)
    rate = result.applied / elapsed
    north_stars = Catalog(metrics={name: catalog[name] for name in NORTH_STARS})
    nsm_seconds, two = _timed_compute(path, north_stars)
    duck_seconds, duck = duckdb_north_stars(path)
    if _nsm_numbers(two) != duck:
        raise AssertionError("nsm compute and DuckDB disagree on the north stars")
    return {
        "events": result.applied,
        "metrics": len(catalog),
        "seconds": round(elapsed, 3),
        "events_per_s": round(rate),
        "baseline_decode_events_per_s": round(baseline),
        "ratio_to_decode": round(rate / baseline, 3),
        "north_stars_seconds": round(nsm_seconds, 3),
        "north_stars_duckdb_seconds": round(duck_seconds, 3),
        "north_stars_ratio_to_duckdb": round(duck_seconds / nsm_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
