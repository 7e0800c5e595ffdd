"""`make demo`: the whole pipeline on the local stack, with the north stars live in the terminal.

Starts (after `make up`) the streaming worker and the generator: two weeks of history as fast as it
goes, then a steady live stream (20 events/s). Shows where everything is, then a live view of the
north stars read from the worker's /metrics, until Ctrl-C (or `--seconds N`). The services keep
running afterwards; `make down` stops them.

Repeatable: each run starts from an empty topic and namespace (the generated history ends at the
moment it starts, so a second run adding it again would double every number). `--keep` goes on
from what the last run left instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
NSM = [sys.executable, "-m", "processor.cli"]


def ensure_topic(bootstrap: str, topic: str, partitions: int, fresh: bool) -> None:
    """The topic, emptied first when `fresh` (with its dead-letter topic): deleted, then made
    again once the broker has finished deleting it."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if fresh:
            old = [t for t in (topic, f"{topic}.dlq") if t in admin.list_topics()]
            if old:
                admin.delete_topics(old)
            deadline = time.monotonic() + 60
            while set(old) & set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"Kafka did not delete {', '.join(old)} within 60 s")
                time.sleep(0.5)
        deadline = time.monotonic() + 60
        while topic not in admin.list_topics():
            try:
                admin.create_topics([NewTopic(topic, partitions, 1)])
            except TopicAlreadyExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # still being deleted
    finally:
        admin.close()


def empty_namespace(namespace: str) -> int:
    """Delete the namespace's state in Redis (what `nsm namespace drop` does)."""
    import asyncio

    from processor.config import Settings
    from processor.store.client import connect
    from processor.store.namespaces import drop

    async def work() -> int:
        client = await connect(Settings().redis_url.get_secret_value())
        try:
            return await drop(client, namespace)
        finally:
            await client.aclose()

    return asyncio.run(work())


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def view(samples: dict[str, list[tuple[dict[str, str], float]]]) -> Group:
    stars = Table(title="North stars (nsm_metric_value, live)", expand=True)
    for column in ("metric", "tier", "value", "by plan"):
        stars.add_column(column, justify="right" if column == "value" else "left")
    values = samples.get("nsm_metric_value", [])
    for labels, value in values:
        if labels["tier"] == "north_star" and labels["segment"] == "":
            plans = sorted(
                (lb["segment_value"], v) for lb, v in values
                if lb["metric"] == labels["metric"] and lb["segment"] == "plan"
            )  # fmt: skip
            by_plan = "  ".join(f"{p} {v:g}" for p, v in plans)
            stars.add_row(labels["metric"], labels["tier"], f"{value:g}", by_plan)
    health = Table(title="Processor", expand=True)
    for column in ("applied", "invalid", "duplicates", "lag", "newest event"):
        health.add_column(column, justify="right")

    def total(name: str) -> float:
        return sum(v for _, v in samples.get(name, []))

    newest = total("nsm_last_event_timestamp_seconds")
    age = f"{time.time() - newest:.0f} s ago" if newest else "-"
    health.add_row(
        f"{total('nsm_events_processed_total'):,.0f}", f"{total('nsm_events_invalid_total'):,.0f}",
        f"{total('nsm_events_duplicate_total'):,.0f}", f"{total('nsm_consumer_lag'):,.0f}", age,
    )  # fmt: skip
    return Group(stars, health)


def wait_healthy(port: int, worker: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited (code {worker.returncode}); see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit("the worker did not become healthy within 90 s; see its log")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the NSM pipeline on the local stack.")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    parser.add_argument("--days", type=int, default=14, help="history to generate first")
    parser.add_argument(
        "--keep", action="store_true", help="go on from the last run's topic and state"
    )
    args = parser.parse_args()

    bootstrap = os.environ.get("NSM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    topic = os.environ.get("NSM_TOPIC", "product-events")
    port = int(os.environ.get("NSM_METRICS_PORT", "6066"))
    prometheus = f"http://127.0.0.1:{os.environ.get('NSM_PROMETHEUS_PORT', '9090')}"
    logs = Path(os.environ.get("NSM_STACK_DIR", ROOT / ".stack")) / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    console = Console()

    namespace = os.environ.get("NSM_NAMESPACE", "live")
    if not args.keep:
        deleted = empty_namespace(namespace)
        console.print(
            f"Starting afresh: topic {topic} emptied, namespace {namespace} dropped "
            f"({deleted:,} keys); --keep goes on from the last run instead."
        )
    ensure_topic(bootstrap, topic, partitions=4, fresh=not args.keep)
    worker_log = (logs / "worker.log").open("ab")
    generator_log = (logs / "generator.log").open("ab")
    worker = subprocess.Popen([*NSM, "worker"], cwd=ROOT, stdout=worker_log, stderr=worker_log)
    generator = None
    try:
        wait_healthy(port, worker)
        generator = subprocess.Popen(
            [*NSM, "generate", "--kafka", "--topic", topic, "--days", str(args.days),
             "--follow", "--no-progress"],
            cwd=ROOT, stdout=generator_log, stderr=generator_log,
        )  # fmt: skip
        query = "nsm_metric_value%7Btier%3D%22north_star%22%2Csegment%3D%22%22%7D"
        console.print(f"""[bold]NSM is running[/bold]
  worker metrics  http://127.0.0.1:{port}/metrics   health http://127.0.0.1:{port}/health
  Prometheus      {prometheus}/graph?g0.expr={query}
  Kafka           {bootstrap}, topic {topic} (invalid events: {topic}.dlq)
  logs            {logs}/worker.log, {logs}/generator.log
  Grafana         `docker compose up -d grafana` where Docker runs (dashboards in grafana/)
Ctrl-C stops the worker and the generator; `make down` stops the services.""")
        deadline = time.monotonic() + args.seconds if args.seconds else None
        with Live(console=console, refresh_per_second=1) as live:
            while deadline is None or time.monotonic() < deadline:
                try:
                    live.update(view(scrape(port)))
                except OSError as exc:
                    live.update(Group(f"[yellow]waiting for the worker: {exc}[/yellow]"))
                time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (generator, worker):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (generator, worker):
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
