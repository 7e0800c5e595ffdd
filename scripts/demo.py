"""`make demo`: show that the local stack is up and healthy, and where each service is.

It grows with the project: once the streaming worker exists, it also runs the generator and the
worker and shows the north stars live.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

import redis
from kafka.admin import KafkaAdminClient
from rich.console import Console
from rich.table import Table


def kafka_health(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        cluster = admin.describe_cluster()
        topics = len(admin.list_topics())
    finally:
        admin.close()
    return f"{len(cluster['brokers'])} broker, cluster {cluster['cluster_id']}, {topics} topics"


def redis_health(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        return f"Redis {info['redis_version']}, {client.dbsize()} keys"
    finally:
        client.close()


def prometheus_health(url: str) -> str:
    with urllib.request.urlopen(f"{url}/api/v1/status/buildinfo", timeout=5) as response:
        version = json.load(response)["data"]["version"]
    with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as response:
        targets = json.load(response)["data"]["activeTargets"]
    up = sum(1 for t in targets if t["health"] == "up")
    return f"Prometheus {version}, {up}/{len(targets)} targets up"


def main() -> int:
    bootstrap = os.environ.get("NSM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    redis_url = os.environ.get("NSM_REDIS_URL", "redis://127.0.0.1:6379/0")
    prometheus = f"http://127.0.0.1:{os.environ.get('NSM_PROMETHEUS_PORT', '9090')}"
    checks = [
        ("Kafka", bootstrap, lambda: kafka_health(bootstrap)),
        ("Redis", redis_url.split("@")[-1], lambda: redis_health(redis_url)),
        ("Prometheus", prometheus, lambda: prometheus_health(prometheus)),
    ]
    table = Table(title="NSM local stack")
    for column in ("service", "address", "health"):
        table.add_column(column)
    healthy = True
    for name, address, check in checks:
        try:
            table.add_row(name, address, f"[green]{check()}[/green]")
        except Exception as exc:  # any failure is shown, not raised: this is a health report
            healthy = False
            table.add_row(name, address, f"[red]{type(exc).__name__}: {exc}[/red]")
    console = Console()
    console.print(table)
    console.print("Stop everything with [bold]make down[/bold].")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
