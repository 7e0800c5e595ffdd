"""The scaling run: one topic of 16 partitions, read by 1, 2 and 4 workers in one consumer group
on this machine, with the bare consume loop over the same topic as the same-run baseline.

Per run: events/s, the CPU the workers and Redis spent, each worker's peak memory, and the load
average before it (the machine is shared: a busy machine shows in it). How far more workers help
depends on the cores free for them: on two cores shared with Kafka and Redis, not far.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks import worker_bench
from benchmarks.data import filled_topic

PARTITIONS = 16
WORKERS = (1, 2, 4)


def run(path: Path) -> dict[str, Any]:
    topic, total = filled_topic(path, PARTITIONS)
    worker_bench.bare_consume(topic, total)  # warm the broker, untimed
    bare = worker_bench.bare_consume(topic, total)
    runs = []
    for workers in WORKERS:
        load = os.getloadavg()[0]
        measured = worker_bench.worker(topic, total, PARTITIONS, workers=workers,
                                       measure_memory=False)  # fmt: skip
        measured["load_average_before"] = round(load, 2)
        rate = measured["events_per_s"] or measured["drain_events_per_s"]
        measured["ratio_to_bare"] = round(rate / bare, 3)
        measured["partitions_per_worker"] = PARTITIONS / workers
        runs.append(measured)
    return {
        "partitions": PARTITIONS,
        "messages": total,
        "cpus": len(os.sched_getaffinity(0)),
        "bare_aiokafka_events_per_s": round(bare),
        "runs": runs,
    }
