"""How a replay shares partitions among processes: pure planning, no process started."""

from __future__ import annotations

import subprocess
import sys

from processor.replay.run import process_count, split_plan
from processor.replay.source import OffsetPlan


def test_the_default_is_one_process_per_cpu_for_a_large_replay_and_one_for_a_small_one(
    monkeypatch,
):
    monkeypatch.setattr("processor.replay.run._usable_cpus", lambda: 4)
    assert process_count(None, partitions=8, messages=1_000_000) == 4
    assert process_count(None, partitions=8, messages=1_000) == 1
    # Never more processes than partitions, never fewer than one, whatever was asked.
    assert process_count(None, partitions=2, messages=1_000_000) == 2
    assert process_count(6, partitions=3, messages=10) == 3
    assert process_count(2, partitions=3, messages=10) == 2
    assert process_count(5, partitions=0, messages=0) == 1


def test_every_partition_goes_to_exactly_one_plan_with_its_own_offsets():
    plan = OffsetPlan("t", {p: 10 * p for p in range(5)}, {p: 100 + p for p in range(5)})
    parts = split_plan(plan, 2)
    assert [sorted(part.start) for part in parts] == [[0, 2, 4], [1, 3]]
    for part in parts:
        assert part.topic == "t"
        assert part.start == {p: plan.start[p] for p in part.start}
        assert part.end == {p: plan.end[p] for p in part.start}
    assert sum(part.total for part in parts) == plan.total


def test_the_default_counts_the_cpus_this_process_may_use_not_the_machines():
    # Pinned to one CPU (as taskset, a container's cpuset or a batch scheduler does), a large
    # replay runs in one process.
    code = "from processor.replay.run import process_count; print(process_count(None, 8, 10**7))"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert pinned.stdout.strip() == "1"
