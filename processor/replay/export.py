"""A replay's history in Redis, and as OpenMetrics text for `promtool tsdb create-blocks-from`.

`nsm:<ns>:history` is a hash: field `meta` holds the tiers of the metrics and the spacing of the
points, and one field per point time (epoch ms) holds every metric's value as of that time, in the
JSON of `nsm compute` (`{metric: {value, segments}}`), compressed.

A value holds from its point until the next one (values only change at bucket boundaries), so the
export writes a sample where a value changes and then one per lookback delta while it holds: every
sample equals `nsm compute --at` its time, and every instant of the span finds one within
Prometheus's lookback (5 minutes by default), so queries and graphs have no gaps.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from processor.definitions.model import Catalog
from processor.engine import MetricValue
from processor.engine.compute import ComputeResult
from processor.store.client import RedisClient
from processor.store.namespaces import history_key

META = "meta"
DEFAULT_LOOKBACK_MS = 300_000  # Prometheus's --query.lookback-delta default
SERIES = "nsm_metric_value"
_WRITE_BATCH = 200


async def store_history(
    client: RedisClient,
    namespace: str,
    catalog: Catalog,
    step_ms: int,
    end_ms: int,
    points: AsyncIterable[tuple[int, dict[str, MetricValue]]],
) -> int:
    """Replace the namespace's history with these points (the last one holds until `end_ms`,
    the newest event); returns how many were stored."""
    key = history_key(namespace)
    await client.unlink(key)
    stored, batch = 0, {}
    first = last = None
    async for t, values in points:
        document = ComputeResult(t, values).to_json()["metrics"]
        batch[str(t)] = zlib.compress(orjson.dumps(document), 1)
        first = t if first is None else first
        last = t
        stored += 1
        if len(batch) >= _WRITE_BATCH:
            await client.hset(key, mapping=batch)  # type: ignore[arg-type]
            batch = {}
    if batch:
        await client.hset(key, mapping=batch)  # type: ignore[arg-type]
    meta = {
        "tiers": {m.name: m.tier for m in catalog},
        "step_ms": step_ms,
        "from_ms": first,
        "to_ms": last,
        "end_ms": end_ms,
        "points": stored,
    }
    await client.hset(key, META, orjson.dumps(meta))
    return stored


@dataclass
class History:
    tiers: dict[str, str]
    step_ms: int
    end_ms: int
    points: list[tuple[int, dict[str, Any]]]  # time-ordered (t, {metric: {value, segments}})


async def load_history(client: RedisClient, namespace: str) -> History | None:
    raw = await client.hgetall(history_key(namespace))
    if not raw:
        return None
    meta = orjson.loads(raw.pop(META.encode()))
    points = sorted(
        (int(t), orjson.loads(zlib.decompress(cast(bytes, document))))
        for t, document in raw.items()
    )
    return History(meta["tiers"], meta["step_ms"], meta["end_ms"], points)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _seconds(ms: int) -> str:
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms / 1000:.3f}"


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


SeriesKey = tuple[str, str, str]  # metric, segment, segment value ("" and "" for the total)


def _value(document: Mapping[str, Any], series: SeriesKey) -> int | float | None:
    metric, segment, label = series
    entry = document.get(metric)
    if entry is None:
        return None
    if not segment:
        return entry["value"]
    return entry["segments"].get(segment, {}).get(label)


def openmetrics(
    history: History,
    lookback_ms: int = DEFAULT_LOOKBACK_MS,
    from_ms: int | None = None,
    to_ms: int | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Lines of OpenMetrics text: one gauge family, each series' samples together and in time
    order (as promtool requires), then `# EOF`. No value (a division by zero): no sample.

    Only the samples Prometheus needs to answer any query in the span exactly: one where a
    series' value changes (at a bucket boundary), then one every `lookback_ms` while it holds,
    so that every instant within the span finds a sample no older than Prometheus's lookback
    delta (5 minutes by default) holding the value as of that instant."""
    yield f"# HELP {SERIES} A metric as of the sample time, rebuilt by a replay.\n"
    yield f"# TYPE {SERIES} gauge\n"
    points = history.points
    if points:
        first_t, last_t = points[0][0], points[-1][0]
        start = first_t if from_ms is None else max(first_t, from_ms)
        end = max(last_t, history.end_ms) if to_ms is None else to_ms
        series: set[SeriesKey] = set()
        for _, document in points:
            for metric, entry in document.items():
                series.add((metric, "", ""))
                for segment, labels in entry["segments"].items():
                    series.update((metric, segment, label) for label in labels)
        extra = "".join(f',{k}="{_escape(v)}"' for k, v in sorted((extra_labels or {}).items()))
        # Where each point's value holds: from its time (or `start`) until the next point.
        spans = [
            (max(t, start), points[i + 1][0] if i + 1 < len(points) else end + 1, document)
            for i, (t, document) in enumerate(points)
        ]
        spans = [(a, min(b, end + 1), d) for a, b, d in spans if a < b and a <= end]
        for key in sorted(series):
            metric, segment, label = key
            # Prometheus keeps no empty label: the total is the series without segment labels.
            labels = f'metric="{_escape(metric)}",tier="{_escape(history.tiers.get(metric, ""))}"'
            if segment:
                labels += f',segment="{_escape(segment)}",segment_value="{_escape(label)}"'
            prefix = f"{SERIES}{{{labels}{extra}}} "
            last: int | float | None = None
            last_at = 0
            for span_start, span_end, document in spans:
                value = _value(document, key)
                if value is None:
                    last = None
                    continue
                at = span_start if value != last or last is None else last_at + lookback_ms
                while at < span_end:
                    yield f"{prefix}{_number(value)} {_seconds(at)}\n"
                    last, last_at = value, at
                    at += lookback_ms
    yield "# EOF\n"
