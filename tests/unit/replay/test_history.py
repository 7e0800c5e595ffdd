"""The replay's history equals `nsm compute --at t` at every bucket boundary.

Events are split over partitions as Kafka would (an entity's and an id's events together),
applied in random batches, and arrive out of order; the sweep over the partitions' states must
give, for every boundary of the span, what `compute_metrics(at_ms=t)` gives over the same events.
"""

from __future__ import annotations

import copy
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.partition.state import Message, PartitionState
from processor.replay.history import history_step_ms, sweep
from tests.strategies import Scenario, catalog_of, scenarios
from tests.unit.worker.test_partitioned_processing import _raw_bytes, partition_of_each


@settings(max_examples=120, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_history_at_every_boundary_equals_compute_at(scenario: Scenario, choose: st.DataObject):
    catalog = catalog_of(scenario.metrics)
    raw = copy.deepcopy(scenario.raw)
    now = scenario.now_ms
    queues: dict[int, list[Message]] = defaultdict(list)
    for item, partition in zip(raw, partition_of_each(raw, choose), strict=True):
        queues[partition].append(Message(len(queues[partition]), _raw_bytes(item)))
    states = []
    for partition, messages in queues.items():
        state = PartitionState(catalog, partition, keep_history=True)
        position = 0
        while position < len(messages):
            size = choose.draw(st.integers(1, 5))
            state.apply_batch(messages[position : position + size], now, 300_000, True, False)
            position += size
        states.append(state)
    newest = [s.max_ts for s in states if s.max_ts is not None]
    if not newest:
        return
    step = history_step_ms(catalog)
    start = choose.draw(st.sampled_from([min(newest) - 3 * step, min(newest), max(newest)]))
    points = list(sweep(catalog, states, start, max(newest)))
    assert [t for t, _ in points] == list(range(start // step * step, max(newest) + 1, step))
    for t, values in points:
        expected = compute_metrics(copy.deepcopy(scenario.raw), catalog, at_ms=t, now_ms=now)
        assert ComputeResult(t, values).to_json() == expected.to_json(), t


def test_a_late_event_counts_at_the_boundaries_it_belongs_to():
    """An event older than a window behind the partition's newest one still shapes the past."""
    catalog = catalog_of(
        [
            {
                "name": "reports",
                "tier": "north_star",
                "window": "2h",
                "bucket": "1h",
                "aggregate": {"event": "report.sent", "count": True},
            }
        ]
    )
    hour = 3_600_000
    base = 1_795_168_800_000
    events = [
        b'{"type": "report.sent", "timestamp": %d}' % (base + 10 * hour),
        b'{"type": "report.sent", "timestamp": %d}' % (base + hour),
    ]
    state = PartitionState(catalog, 0, keep_history=True)
    state.apply_batch(
        [Message(i, e) for i, e in enumerate(events)], base + 11 * hour, 0, True, False
    )
    points = dict(sweep(catalog, [state], base, base + 10 * hour))
    assert points[base + hour]["reports"].value == 1
    assert points[base + 2 * hour]["reports"].value == 1
    assert points[base + 3 * hour]["reports"].value == 0
    assert points[base + 10 * hour]["reports"].value == 1
