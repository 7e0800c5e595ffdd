"""The measured part of docs/capacity.md, from the last `make bench` results.

    python -m benchmarks.capacity            # print the figures and the worked sizing
    python -m benchmarks.capacity --write    # and rewrite them in docs/capacity.md

Reads benchmarks/results/worker.json (`make bench`, or `--only worker`) and scaling.json
(`--only scaling`), and the example definitions (for the Prometheus series). Every number in the
block it writes comes from those files or from the stated assumptions of the worked sizing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from processor.definitions import load_definitions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "capacity.md"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"

# The worked sizing's assumptions.
EVENTS_PER_S = 100_000
ACTIVE_ENTITIES = 10_000_000
UTILISATION = 0.5  # run cores at half their measured rate: headroom for bursts and catch-up
DAY_S = 86_400


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("s") else "s")


def longest_window_days() -> float:
    catalog = load_definitions(ROOT / "definitions")
    return max(m.bucket_ms * m.buckets_in_window for m in catalog if m.kind != "formula") / (
        DAY_S * 1000
    )


def series_bounds() -> tuple[int, int, int]:
    """(metrics, series of the totals, most series the segments may add) for the examples."""
    catalog = load_definitions(ROOT / "definitions")
    segments = sum(len(m.segments or []) * (m.max_segment_values + 1) for m in catalog)
    return len(catalog), len(catalog), segments


def render() -> str:
    worker = _load("worker")
    scaling = _load("scaling")
    if worker is None:
        raise SystemExit("no benchmarks/results/worker.json: run `make bench` first")
    w = worker["worker"]
    lines = [
        BEGIN,
        "",
        f"Source: `make bench` of {worker['when']} ({worker['events']:,} generated events, the 23 "
        f"example metrics, {worker['machine']}); scaling: "
        + (f"`--only scaling` of {scaling['when']}." if scaling else "not run yet."),
        "Regenerate with `python -m benchmarks.capacity --write` after a bench run.",
        "",
        "| figure | measured |",
        "|---|---|",
        f"| events/s per worker CPU-second (one worker, 4 partitions) | "
        f"{_n(w['events_per_worker_cpu_s'])} |",
        f"| events/s per Redis CPU-second (its atomic steps in the same run) | "
        f"{_n(w['events_per_redis_cpu_s'])} |",
        f"| one worker on this machine (2 cores shared with Kafka and Redis) | "
        f"{_n(w['events_per_s'])} events/s |",
        f"| Redis bytes of state per active (entity, metric) | "
        f"{_n(w['redis_bytes_state_per_entity_metric'])} |",
        f"| Redis bytes per event id kept for dedup | {w['redis_bytes_per_event_id']} |",
        f"| active (entity, metric) pairs; active entities | "
        f"{_n(w['active_entity_metric_pairs'])}; {_n(w['active_entities'])} |",
        f"| event ids kept at the end of the run | {_n(w['event_ids_kept'])} |",
        f"| worker peak memory (RSS), one worker holding all 4 partitions | "
        f"{w['worker_peak_rss_mb'][0]} MB |",
        f"| `nsm_metric_value` series exported | {_n(w['scrape_series'])} "
        f"({len(w['scrape_series_by_metric'])} metrics with a value) |",
        "",
    ]
    metrics, totals, segments = series_bounds()
    lines += [
        f"Prometheus series: one per metric for its total ({totals} for the {metrics} examples) "
        f"plus one per segment value, at most `max_segment_values` + 1 (`other`) per segment "
        f"field: at most {_n(totals + segments)} `nsm_metric_value` series for the examples, "
        f"{_n(w['scrape_series'])} on the bench stream.",
        "",
    ]
    if scaling:
        sc = scaling["scaling"]
        lines += [
            f"Scaling: one topic of {sc['partitions']} partitions, {sc['messages']:,} "
            f"messages; the bare aiokafka consume loop over it: "
            f"{_n(sc['bare_aiokafka_events_per_s'])} events/s.",
            "",
            "| workers | partitions each | events/s | × bare loop | worker CPU-s | events per "
            "worker CPU-s | Redis CPU-s | peak RSS per worker (MB) | load before |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for run in sc["runs"]:
            lines.append(
                f"| {run['workers']} | {run['partitions_per_worker']:g} | "
                f"{_n(run['events_per_s'])} | {run['ratio_to_bare']} | {run['worker_cpu_s']} | "
                f"{_n(run['events_per_worker_cpu_s'])} | {run['redis_cpu_s']} | "
                f"{', '.join(map(str, run['worker_peak_rss_mb']))} | "
                f"{run['load_average_before']} |"
            )
        lines.append("")
        one = next(r for r in sc["runs"] if r["workers"] == 1)
        four = next(r for r in sc["runs"] if r["workers"] == 4)
        held = sum(four["worker_peak_rss_mb"]) / len(four["worker_peak_rss_mb"])
        state = (one["worker_peak_rss_mb"][0] - held) * 4 / 3  # all partitions' share
        lines += [
            f"Worker memory, from the 1- and 4-worker runs (same events, so "
            f"{_n(w['active_entity_metric_pairs'])} active pairs in all): about "
            f"{one['worker_peak_rss_mb'][0] - state:,.0f} MB per worker process before any state, "
            f"plus about {state * 1000 / w['active_entity_metric_pairs']:,.0f} MB per 1,000 "
            f"active (entity, metric) pairs it holds, its event ids and batch buffers included "
            f"(peak RSS; approximate).",
            "",
        ]
    lines += sizing(w)
    lines += ["", END]
    return "\n".join(lines)


def sizing(w: dict[str, Any]) -> list[str]:
    per_core = w["events_per_worker_cpu_s"]
    redis_per_core = w["events_per_redis_cpu_s"]
    worker_cores = math.ceil(EVENTS_PER_S / (per_core * UTILISATION))
    redis_cores = math.ceil(EVENTS_PER_S / (redis_per_core * UTILISATION))
    pairs_per_entity = w["active_entity_metric_pairs"] / max(1, w["active_entities"])
    state_bytes = ACTIVE_ENTITIES * pairs_per_entity * w["redis_bytes_state_per_entity_metric"]
    ids_per_day = EVENTS_PER_S * DAY_S
    id_bytes_per_day = ids_per_day * w["redis_bytes_per_event_id"]
    kept_days = 3 * longest_window_days()
    return [
        f"**Worked sizing: {EVENTS_PER_S:,} events/s, {ACTIVE_ENTITIES:,} active entities** "
        f"(the example metrics; cores at {UTILISATION:.0%} of their measured rate):",
        "",
        f"- Workers: {EVENTS_PER_S:,} / ({_n(per_core)} × {UTILISATION}) → "
        f"**{_plural(worker_cores, 'worker core')}**: {_plural(worker_cores, 'worker process')} "
        f"(count one core each) and one more to take over from a failed one, and a topic of at "
        f"least "
        f"{max(4, 4 * worker_cores)} partitions, so that every worker holds two or more and more "
        f"workers can be added later.",
        f"- Redis CPU: {EVENTS_PER_S:,} / ({_n(redis_per_core)} × {UTILISATION}) → "
        f"**{_plural(redis_cores, 'Redis core')}**: a cluster of {max(3, redis_cores)} masters "
        f"(a Redis process uses one core; three is the smallest cluster), each with a replica.",
        f"- Redis state: {ACTIVE_ENTITIES:,} entities × {pairs_per_entity:.1f} active metrics "
        f"each (as on the bench stream) × {_n(w['redis_bytes_state_per_entity_metric'])} bytes "
        f"= **{state_bytes / 2**30:,.0f} GiB**, spread over the masters, and as much again on "
        f"the replicas.",
        f"- Event ids for dedup: {EVENTS_PER_S:,} events/s with an `event_id` make "
        f"{ids_per_day / 1e9:,.1f} billion ids a day, {id_bytes_per_day / 2**30:,.0f} GiB a day "
        f"at {w['redis_bytes_per_event_id']} bytes each; kept for three times the longest window "
        f"({kept_days:g} days with the examples' {kept_days / 3:g}-day windows), that is "
        f"**{id_bytes_per_day * kept_days / 2**40:,.0f} TiB**, and the workers hold the same ids "
        f"in memory. Exact dedup over that horizon does not fit at this rate: with event ids on "
        f"every event, NSM's dedup as it stands suits rates where events/s × "
        f"{kept_days:g} days × {w['redis_bytes_per_event_id']} bytes fits in memory (about "
        f"{(64 * 2**30) / (kept_days * DAY_S * w['redis_bytes_per_event_id']):,.0f} events/s "
        f"per 64 GiB), or shorter windows. The state above is not the limit.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/capacity.md's block")
    args = parser.parse_args()
    block = render()
    print(block)
    if args.write:
        text = DOC.read_text()
        before, _, rest = text.partition(BEGIN)
        _, _, after = rest.partition(END)
        DOC.write_text(before + block + after)


if __name__ == "__main__":
    main()
