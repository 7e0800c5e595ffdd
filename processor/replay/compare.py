"""Two namespaces compared metric by metric and segment by segment, as of one time.

Each namespace's partitions are loaded from Redis exactly as a worker restores them and
summarised as of the same time, so the numbers are what a worker serving either would export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processor.definitions.model import Catalog
from processor.engine.compute import ComputeResult
from processor.engine.summaries import finish, merge_summaries
from processor.partition.state import PartitionState
from processor.store import namespaces as ns
from processor.store.client import RedisClient
from processor.store.namespaces import NamespaceError
from processor.store.partition_store import RedisPartitionStore
from processor.worker.rebuild import incomplete

Number = int | float | None


@dataclass(frozen=True)
class Difference:
    metric: str
    segment: str  # "" for the total
    label: str  # "" for the total
    left: Number
    right: Number
    missing: str = ""  # "left" or "right" when one side does not list it at all


async def newest_event(client: RedisClient, namespace: str) -> int | None:
    partitions = await ns.partitions_of(client, namespace)
    times = await RedisPartitionStore(client, namespace).max_event_times(partitions)
    return max(times.values()) if times else None


async def namespace_values(
    client: RedisClient, catalog: Catalog, namespace: str, at_ms: int
) -> tuple[dict[str, Any], list[str]]:
    """The JSON of `nsm compute` for the namespace as of `at_ms`, and the metrics whose stored
    state was built from other definitions (they are compared as empty) or is not complete
    (a worker is still rebuilding it: compared as it stands)."""
    if not await ns.exists(client, namespace):
        raise NamespaceError(f"namespace {namespace!r} does not exist (see `nsm namespace list`)")
    store = RedisPartitionStore(client, namespace)
    summaries, changed = [], set()
    for partition in await ns.partitions_of(client, namespace):
        state = PartitionState(catalog, partition)
        stored = await store.load(partition)
        changed.update(state.restore(stored))
        changed.update(incomplete(stored, state.fingerprints))
        summaries.append(state.summarize(at_ms))
    values = finish(catalog, merge_summaries(catalog, summaries))
    return ComputeResult(at_ms, values).to_json(), sorted(changed)


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[Difference]:
    """Every total and segment value that differs, or that one side lists and the other not."""
    found = []
    left_metrics, right_metrics = left["metrics"], right["metrics"]
    for metric in sorted(set(left_metrics) | set(right_metrics)):
        a, b = left_metrics.get(metric), right_metrics.get(metric)
        if a is None or b is None:
            value = (a or b)["value"]
            found.append(Difference(metric, "", "", value if a else None, value if b else None,
                                    "left" if a is None else "right"))  # fmt: skip
            continue
        if a["value"] != b["value"]:
            found.append(Difference(metric, "", "", a["value"], b["value"]))
        for segment in sorted(set(a["segments"]) | set(b["segments"])):
            sa, sb = a["segments"].get(segment, {}), b["segments"].get(segment, {})
            for label in sorted(set(sa) | set(sb)):
                if label not in sa or label not in sb:
                    side = "left" if label not in sa else "right"
                    found.append(Difference(metric, segment, label, sa.get(label),
                                            sb.get(label), side))  # fmt: skip
                elif sa[label] != sb[label]:
                    found.append(Difference(metric, segment, label, sa[label], sb[label]))
    return found
