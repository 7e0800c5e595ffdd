"""`make bench`: every figure with the baseline it is judged against, measured in the same run.

    python -m benchmarks.run [--events N] [--only compute,worker,replay,rebuild,collect,scaling]

`scaling` (16 partitions, 1, 2 and 4 workers) runs only when asked: `--only scaling`.

Prints a table and writes benchmarks/results/latest.json; BENCHMARKS.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import (
    collect_bench,
    compute_bench,
    rebuild_bench,
    replay_bench,
    scaling_bench,
    worker_bench,
)
from benchmarks.data import PARTITIONS, events_file, filled_topic

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", default="compute,worker,replay,rebuild,collect")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    console = Console()
    path = events_file(args.events)
    report: dict[str, Any] = {
        "events": args.events,
        "machine": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if "compute" in parts:
        console.print("[bold]nsm compute[/bold] ...")
        report["compute"] = compute_bench.run(path)
    if parts & {"worker", "replay"}:
        topic, total = filled_topic(path)
        report["topic"] = {"name": topic, "messages": total, "partitions": PARTITIONS}
    if "worker" in parts:
        # A broker just started (`make up`) serves its first reads slower while its JVM warms up,
        # and the worker, which fetches hardest, loses most: one untimed read of the topic first.
        console.print("[bold]worker[/bold]: warming up the broker (one untimed read) ...")
        worker_bench.bare_consume(topic, total)
        console.print("[bold]worker[/bold]: baseline (a) bare aiokafka ...")
        bare = worker_bench.bare_consume(topic, total)
        console.print("[bold]worker[/bold]: baseline (b) naive faust agent ...")
        naive = worker_bench.naive_faust(topic)
        console.print("[bold]worker[/bold]: nsm worker ...")
        measured = worker_bench.worker(topic, total, PARTITIONS)
        console.print("[bold]worker[/bold]: two nsm workers in one group ...")
        two = worker_bench.worker(topic, total, PARTITIONS, workers=2)
        pair = two["events_per_s"] or two["drain_events_per_s"]
        report["worker"] = {
            **measured,
            "baseline_a_bare_aiokafka_events_per_s": round(bare),
            "baseline_b_naive_faust_events_per_s": round(naive),
            "ratio_to_a": round(measured["events_per_s"] / bare, 3),
            "ratio_to_b": round(measured["events_per_s"] / naive, 1),
            "two_workers_events_per_s": pair,
            "two_workers_ratio_to_a": round(pair / bare, 3),
            "two_workers_ratio_to_b": round(pair / naive, 1),
            "scrape_5k_series": worker_bench.scrape_5k_series(),
        }
    if "replay" in parts:
        console.print("[bold]nsm replay[/bold] ...")
        report["replay"] = replay_bench.run(topic, total)
    if "rebuild" in parts:
        console.print("[bold]rebuild[/bold] of a changed metric (a topic of 2 x --events) ...")
        report["rebuild"] = rebuild_bench.run(args.events)
        if "replay" in report:
            # nsm replay of the whole bench topic, every metric: the figure the issue names.
            rate = report["rebuild"]["rebuild_events_per_s"]
            report["rebuild"]["ratio_to_bench_replay"] = round(
                rate / report["replay"]["events_per_s"], 3
            )
    if "collect" in parts:
        console.print("[bold]nsm collect[/bold]: collector, (a) bare HTTP, (b) bare producer ...")
        report["collect"] = collect_bench.run()
    if "scaling" in parts:
        console.print("[bold]scaling[/bold]: 16 partitions, 1, 2 and 4 workers ...")
        report["scaling"] = scaling_bench.run(path)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    # Each part also alone, so that a run of one part keeps the others' last figures (read by
    # `python -m benchmarks.capacity` for docs/capacity.md).
    context = {k: v for k, v in report.items() if not isinstance(v, dict)}
    for section in ("compute", "worker", "replay", "collect", "scaling"):
        if section in report:
            document = {**context, section: report[section]}
            (RESULTS / f"{section}.json").write_text(json.dumps(document, indent=2))
    table = Table(title=f"NSM benchmarks over {args.events:,} generated events")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for section, values in report.items():
        if isinstance(values, dict):
            for name, value in values.items():
                table.add_row(f"{section}.{name}", json.dumps(value))
    console.print(table)


if __name__ == "__main__":
    main()
