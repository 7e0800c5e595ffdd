"""The events source gives, at every time, exactly what `nsm compute --at` gives."""

from __future__ import annotations

from analysis_support import END_MS

from processor.analysis.source import EventsSource, read_event_log
from processor.definitions import load_definitions
from processor.engine import compute_metrics
from processor.generate import iter_events, plan_history
from processor.generate.config import DAY_MS


def test_values_at_many_times_equal_compute_at_each_time() -> None:
    catalog = load_definitions("definitions")
    config = plan_history(seed=9, accounts=12, days=10, end_ms=END_MS, duplicates_pct=0)
    events = list(iter_events(config))
    events += events[:50]  # repeats of ids: duplicates for both
    times = [END_MS - k * DAY_MS // 3 - 12_345 for k in range(0, 12, 4)]
    log = read_event_log(events, catalog, now_ms=END_MS + DAY_MS)
    assert log.duplicates == 50
    values = EventsSource(log, catalog).values_at(times)
    for at_ms in times:
        expected = compute_metrics(events, catalog, at_ms=at_ms, now_ms=END_MS + DAY_MS)
        assert values[at_ms] == expected.values
