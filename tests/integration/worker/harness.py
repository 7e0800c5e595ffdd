"""Running `nsm worker` as a real process against the real Kafka and Redis, and reading it back.

A test creates a topic, produces messages to chosen partitions, starts one or more workers (each a
subprocess with its own metrics port), waits until they have applied everything, and compares the
scraped `nsm_metric_value` series with `compute_metrics` over the same messages read back from the
topic in partition order. Everything a test creates (processes, topics, consumer groups, Redis
keys) is removed by the fixtures in conftest.py, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, UnknownTopicOrPartitionError
from prometheus_client.parser import text_string_to_metric_families

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.engine import compute_metrics
from processor.events import InputFormat
from processor.store.client import connect, connect_sync
from processor.store.partition_store import RedisStateStore
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
NSM = ROOT / ".venv" / "bin" / "nsm"
TICK_S = 0.3

Message = tuple[int, bytes | None, bytes | None]
"""(partition, key, value) to produce; a None value is a tombstone."""


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2
) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)


# ---- Kafka ---------------------------------------------------------------------------------


def partition_for(key: bytes | None, value: bytes | None, partitions: int) -> int:
    """Stable partition of a message: by key, or by value when it has none (so that exact
    repeats of a keyless message share a partition, as dedup requires)."""
    basis = key if key is not None else (value or b"")
    return zlib.crc32(basis) % partitions


def create_topic(bootstrap: str, name: str, partitions: int, replication: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, replication)])
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        wait_until(
            lambda: len(consumer.partitions_for_topic(name) or ()) == partitions,
            30,
            f"topic {name} to have {partitions} partitions",
        )
    finally:
        consumer.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with `prefix` (the input, its .dlq, faust's own)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefix)]
        if names:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(names)
    finally:
        admin.close()


def delete_groups(bootstrap: str, groups: Iterable[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = {g["group_id"] for g in admin.list_groups()}
        wanted = [g for g in groups if g in existing]
        if wanted:
            # A group whose member is still leaving expires on its own.
            with contextlib.suppress(KafkaError):
                admin.delete_groups(wanted)
    finally:
        admin.close()


class Trickle(threading.Thread):
    """Produces the messages in chunks with short pauses, so a worker is always mid-stream."""

    def __init__(self, producer: Producer, messages: list[Message], chunks: int, pause_s: float):
        super().__init__(daemon=True)
        self.producer, self.messages = producer, messages
        self.chunks, self.pause_s = chunks, pause_s
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            size = -(-len(self.messages) // self.chunks)
            for start in range(0, len(self.messages), size):
                self.producer.send(self.messages[start : start + size])
                time.sleep(self.pause_s)
        except BaseException as error:  # reported by finish()
            self.error = error

    def finish(self, timeout_s: float = 60) -> None:
        self.join(timeout=timeout_s)
        assert not self.is_alive(), "the producer thread hangs"
        if self.error is not None:
            raise self.error


class Producer:
    """Sends to explicit partitions with acks=all, one request in flight, so that the order in
    a partition is the order of `send` calls."""

    def __init__(self, bootstrap: str, topic: str, compression: str | None = None) -> None:
        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_in_flight_requests_per_connection=1,
            max_request_size=4 * 1024 * 1024,
            compression_type=compression,
        )

    def send(self, messages: Iterable[Message]) -> int:
        futures = [
            self._producer.send(self.topic, key=key, value=value, partition=partition)
            for partition, key, value in messages
        ]
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)
        return len(futures)

    def close(self) -> None:
        self._producer.close()


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes] = field(default_factory=dict)


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30) -> dict[int, list[Record]]:
    """Every message of the topic, per partition in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: dict[int, list[Record]] = {tp.partition: [] for tps_ in [tps] for tp in tps_}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    headers = {k: v for k, v in (r.headers or [])}
                    out[tp.partition].append(
                        Record(tp.partition, r.offset, r.key, r.value, headers)
                    )
        return out
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


# ---- Redis ---------------------------------------------------------------------------------


def delete_namespace(url: str, namespace: str) -> int:
    client = connect_sync(url)
    try:
        keys = list(client.scan_iter(match=f"nsm:{namespace}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def stored_offsets(url: str, namespace: str, partitions: int) -> dict[int, int | None]:
    """The last applied offset of each partition, as the worker stored it."""
    client = connect_sync(url)
    try:
        out: dict[int, int | None] = {}
        for p in range(partitions):
            raw = client.hget(f"nsm:{namespace}:{{{namespace}.p{p}}}:meta", "offset")
            out[p] = None if raw is None else int(raw)
        return out
    finally:
        client.close()


# ---- definitions ---------------------------------------------------------------------------


def write_definitions(folder: Path, metrics: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.yaml").write_text(yaml.safe_dump({"metrics": metrics}, sort_keys=False))
    return folder


def definition_dicts(folder: Path) -> list[dict[str, Any]]:
    """The metrics of a definitions folder as plain dicts (the oracle's input)."""
    metrics: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        metrics += yaml.safe_load(path.read_text()).get("metrics", [])
    return metrics


# ---- the worker process ------------------------------------------------------------------------


@dataclass
class Scrape:
    """One /metrics answer: the metric values in the shape of CONTRACT §4, and the rest."""

    values: dict[str, dict[str, Any]]
    as_of_ms: int | None
    samples: dict[str, list[tuple[dict[str, str], float]]]

    def one(self, name: str, **labels: str) -> float | None:
        for sample_labels, value in self.samples.get(name, []):
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                return value
        return None

    def total(self, name: str) -> float:
        return sum(v for _, v in self.samples.get(name, []))

    @property
    def exporter(self) -> bool:
        return self.one("nsm_exporter") == 1.0

    def lag(self) -> dict[int, float]:
        return {
            int(labels["partition"]): v for labels, v in self.samples.get("nsm_consumer_lag", [])
        }


def parse_metrics(text: str) -> Scrape:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    values: dict[str, dict[str, Any]] = {}
    for labels, value in samples.get("nsm_metric_value", []):
        metric = values.setdefault(labels["metric"], {"value": None, "segments": {}})
        number = int(value) if value.is_integer() else value
        if labels["segment"] == "":
            metric["value"] = number
        else:
            metric["segments"].setdefault(labels["segment"], {})[labels["segment_value"]] = number
    as_of = samples.get("nsm_metric_as_of_timestamp_seconds")
    as_of_ms = round(as_of[0][1] * 1000) if as_of else None
    return Scrape(values, as_of_ms, samples)


def comparable(metrics: Mapping[str, Any], catalog: Catalog) -> dict[str, Any]:
    """Every catalogue metric as Prometheus can show it: no sample for no value (null), and no
    breakdown without a label that has a value."""
    out: dict[str, Any] = {}
    for metric in catalog:
        found = metrics.get(metric.name) or {"value": None, "segments": {}}
        segments = {}
        for name, labels in (found.get("segments") or {}).items():
            kept = {k: _number(v) for k, v in labels.items() if v is not None}
            if kept:
                segments[name] = kept
        out[metric.name] = {"value": _number(found.get("value")), "segments": segments}
    return out


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def differences(actual: Mapping[str, Any], expected: Mapping[str, Any], limit: int = 12) -> str:
    lines = []
    for name in sorted(set(actual) | set(expected)):
        a, e = actual.get(name), expected.get(name)
        if a != e:
            lines.append(f"{name}:\n  worker:   {json.dumps(a, sort_keys=True)[:600]}")
            lines.append(f"  expected: {json.dumps(e, sort_keys=True)[:600]}")
    return "\n".join(lines[: 2 * limit])


class WorkerProcess:
    """`nsm worker` in a subprocess of its own (own session, so a signal reaches it alone)."""

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        namespace: str,
        definitions: Path,
        redis_url: str,
        bootstrap: str,
        workdir: Path,
        clock: str = "events",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "NSM_TOPIC": topic,
            "NSM_NAMESPACE": namespace,
            "NSM_DEFINITIONS": str(definitions),
            "NSM_REDIS_URL": redis_url,
            "NSM_KAFKA_BOOTSTRAP": bootstrap,
            "NSM_METRICS_PORT": str(self.port),
            "NSM_CLOCK": clock,
            "NSM_TICK_SECONDS": str(TICK_S),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(NSM), "worker", "--tick", str(TICK_S)],
                cwd=self.workdir,  # the test's own folder, whatever the worker writes there
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            status, body = self._get("/health")
        except (OSError, urllib.error.URLError):
            return None
        return status, json.loads(body)

    def scrape(self) -> Scrape:
        status, body = self._get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return parse_metrics(body.decode())

    def wait_healthy(self, timeout_s: float = 60) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            self.check_alive()
            answer = self.health()
            return answer[1] if answer is not None and answer[0] == 200 else None

        try:
            return wait_until(ready, timeout_s, f"{self.name} /health 200")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """SIGKILL: no chance to flush or commit anything."""
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout_s: float = 15) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds to exit). Kills it after the timeout."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not stop within {timeout_s}s of SIGTERM:\n{self.log_tail()}"
            ) from None
        return code, time.monotonic() - started

    def close(self) -> None:
        """Stop it for good: SIGTERM (so it leaves its consumer groups), SIGKILL if it hangs."""
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.kill()


# ---- expectations ----------------------------------------------------------------------------


def values_of(records: Mapping[int, list[Record]]) -> list[bytes | None]:
    """Message values in an order compute_metrics may take them: partition after partition,
    offset order within each (an entity's events and an id's repeats share a partition)."""
    return [r.value for p in sorted(records) for r in records[p]]


def expected_metrics(
    records: Mapping[int, list[Record]],
    catalog: Catalog,
    *,
    at_ms: int | None = None,
    now_ms: int | None = None,
    input_format: InputFormat = "nsm",
) -> tuple[dict[str, Any], int, Any]:
    """(comparable values, as_of ms, the ComputeResult) of compute over the topic's messages."""
    values = [v for v in values_of(records) if v is not None]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    result = compute_metrics(values, catalog, at_ms=at_ms, now_ms=now, input_format=input_format)
    return comparable(result.to_json()["metrics"], catalog), result.as_of_ms, result


def wait_exact(
    workers: list[WorkerProcess],
    bootstrap: str,
    topic: str,
    catalog: Catalog,
    timeout_s: float = 45,
    stable_ticks: int = 3,
    input_format: InputFormat = "nsm",
) -> dict[str, Any]:
    """Wait until the workers have applied every message (lag 0 on every partition) and the
    exporter's values equal compute over the topic as of the newest event (NSM_CLOCK=events),
    and stay so for a few ticks; fail with the differences otherwise."""
    records = read_topic(bootstrap, topic)
    expected, as_of_ms, _ = expected_metrics(records, catalog, input_format=input_format)
    partitions = sorted(records)
    last: dict[str, Any] = {}

    def exact() -> bool | None:
        scrapes = []
        for worker in workers:
            worker.check_alive()
            try:
                scrapes.append(worker.scrape())
            except (TimeoutError, urllib.error.URLError) as error:
                if not isinstance(getattr(error, "reason", error), TimeoutError):
                    raise
                # A worker reloading its partitions (a swap, a reload) may answer late; that is
                # not a value. Alive and not yet exact by the deadline still fails.
                last["slow_scrapes"] = last.get("slow_scrapes", 0) + 1
                return None
        lag: dict[int, float] = {}
        for scrape in scrapes:
            lag.update(scrape.lag())
        exporters = [s for s in scrapes if s.exporter]
        last["lag"], last["exporters"] = lag, len(exporters)
        if sorted(lag) != partitions or any(lag.values()) or len(exporters) != 1:
            return False
        actual = comparable(exporters[0].values, catalog)
        last["actual"], last["as_of"] = actual, exporters[0].as_of_ms
        return actual == expected and exporters[0].as_of_ms == as_of_ms

    deadline = time.monotonic() + timeout_s
    streak = 0
    while streak < stable_ticks:
        answer = exact()
        if answer:
            streak += 1
        elif answer is False and streak:
            raise AssertionError(
                "values changed after being exact:\n" + differences(last["actual"], expected)
            )
        if time.monotonic() > deadline:
            detail = (
                f"lag {last.get('lag')}, exporters {last.get('exporters')}, "
                f"as_of {last.get('as_of')} vs {as_of_ms}, "
                f"scrapes timed out {last.get('slow_scrapes', 0)}\n"
                + differences(last.get("actual", {}), expected)
            )
            processed = [w.scrape().total("nsm_events_processed_total") for w in workers]
            counts = {p: len(rs) for p, rs in records.items()}
            detail += f"\nmessages per partition {counts}, processed {processed}"
            tails = "\n".join(f"--- {w.name}\n{w.log_tail(15)}" for w in workers)
            raise AssertionError(f"workers not exact after {timeout_s}s: {detail}\n{tails}")
        time.sleep(TICK_S)
    return expected


async def redis_worker(settings: Settings, catalog: Any, telemetry: Telemetry) -> Worker:
    """A worker on the Redis of `settings`, used without `start` (no faust app, no Kafka)."""
    backend = RedisStateStore(await connect(settings.redis_url.get_secret_value()))
    return Worker(settings, catalog, telemetry, backend=backend)
