"""Metric values read back from Prometheus: the series the worker exports (or a replay's imported
history), so that `nsm explain` works on live data without a file of events.

At each time, one instant query returns every metric's total and every breakdown
(`nsm_metric_value{metric, segment, segment_value}`, CONTRACT §4). `max by` drops the scrape
labels, so that a value exported by a different worker after a rebalance is still one value.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from processor.analysis.source import Snapshot
from processor.engine import MetricValue
from processor.engine.segments import Value
from processor.events import format_time

SERIES = "nsm_metric_value"
QUERY = f"max by (metric, segment, segment_value) ({SERIES})"


class PrometheusUnavailable(Exception):
    """Prometheus could not be asked, or answered with an error; the message says which."""


def _number(text: str) -> Value:
    """Prometheus's decimal text back into the engine's values: counts int, the rest Decimal."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return Decimal(text)


class PrometheusSource:
    """Every metric's value as of given times, from Prometheus's HTTP API."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str]) -> Any:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # 4xx/5xx carry the reason in their body
            try:
                reason = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                reason = error.reason
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered: {reason}") from None
        except (OSError, ValueError) as error:
            raise PrometheusUnavailable(
                f"cannot read Prometheus at {self.url}: {error}; check --prometheus"
            ) from None
        if body.get("status") != "success":
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered: {body.get('error')}")
        return body["data"]

    def snapshot(self, at_ms: int) -> Snapshot:
        data = self._get("/api/v1/query", {"query": QUERY, "time": f"{at_ms / 1000:.3f}"})
        totals: dict[str, Value] = {}
        segments: dict[str, dict[str, dict[str, Value]]] = {}
        for sample in data["result"]:
            labels, value = sample["metric"], _number(sample["value"][1])
            name, segment = labels["metric"], labels.get("segment", "")
            if segment:
                by_value = segments.setdefault(name, {}).setdefault(segment, {})
                by_value[labels.get("segment_value", "")] = value
            else:
                totals[name] = value
        return {
            name: MetricValue(totals.get(name), segments.get(name, {}))
            for name in dict.fromkeys([*totals, *segments])
        }

    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        result = {}
        for t in times_ms:
            snapshot = self.snapshot(t)
            if not snapshot:
                raise ValueError(
                    f"Prometheus at {self.url} holds no {SERIES} at {format_time(t)}: it needs "
                    "the worker scraped then, or a replay's history imported "
                    "(nsm history export, docs/backfill.md)"
                )
            result[t] = snapshot
        return result
