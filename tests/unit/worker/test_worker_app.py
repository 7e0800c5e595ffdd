"""The faust app around the worker: it starts no Kafka client of its own."""

from __future__ import annotations

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.worker.app import create_app


def test_faust_starts_no_kafka_client_only_the_web_server_and_the_timer():
    """faust's producer failed the worker's start while the broker was away (the worker exited
    instead of waiting), and its consumer group held a worker restarted after kill -9 back for
    a session; the worker reads and writes Kafka with clients of its own, which wait."""
    app = create_app(Settings(namespace="unit"), Catalog(metrics={}), tick_seconds=1.0)
    boot = app.boot_strategy
    assert not boot._should_enable_kafka_producer()
    assert not boot._should_enable_kafka_consumer()
    assert boot._should_enable_web()
