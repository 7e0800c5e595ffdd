"""Every metric's exact value at every bucket boundary of a replayed span.

A metric's value as of T depends only on the window of buckets `[k - n + 1, k]`, `k = T // b`, so
it is constant between its bucket boundaries; its history is its value at each boundary. Taking
a snapshot while consuming would miss events that arrive later in another partition, so the
replay keeps its partitions' states whole (no pruning) and sweeps them after consuming: the
engine slides each metric's window over the boundaries once (native/engine/src/history.rs),
giving for each boundary t exactly what `nsm compute --at t` gives over the same events.
Partitions combine as one stream would: numbers add, distinct values unite, and an entity whose
events reached several partitions is one entity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import nsm_native

from processor.definitions.model import Catalog
from processor.engine.spec import compile_catalog
from processor.engine.summaries import Summary, finish
from processor.engine.values import MetricValue
from processor.partition.state import PartitionState


def history_step_ms(catalog: Catalog) -> int:
    """The spacing of history points: every metric's bucket boundaries fall on it."""
    return math.gcd(*(m.bucket_ms for m in catalog if m.kind != "formula")) or 3_600_000


def history_times(catalog: Catalog, start_ms: int, end_ms: int) -> list[int]:
    """start, start + step, ... up to end_ms, where step is `history_step_ms` and start is
    `start_ms` rounded down to it."""
    step = history_step_ms(catalog)
    return list(range(start_ms // step * step, end_ms + 1, step))


def sweep_summaries(
    catalog: Catalog, states: Sequence[PartitionState], start_ms: int, end_ms: int
) -> Iterator[tuple[int, Summary]]:
    """(t, the states' merged summary as of t) for every time of `history_times`. Summaries of
    several sweeps over disjoint partitions merge (`merge_summaries`) into the sweep over all."""
    times = history_times(catalog, start_ms, end_ms)
    if not states or not times:
        return
    partitions = [s.native for s in states]
    yield from zip(
        times, nsm_native.sweep(compile_catalog(catalog), partitions, times), strict=True
    )


def sweep(
    catalog: Catalog, states: Sequence[PartitionState], start_ms: int, end_ms: int
) -> Iterator[tuple[int, dict[str, MetricValue]]]:
    """(t, every metric as of t) for every time of `history_times`."""
    for t, summary in sweep_summaries(catalog, states, start_ms, end_ms):
        yield t, finish(catalog, summary)
