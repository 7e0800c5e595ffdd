"""A topic and a running `nsm collect` per test, on the shared Kafka; both removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.collect.harness import CollectorProcess
from tests.integration.worker import conftest as worker_fixtures
from tests.integration.worker.conftest import EndToEnd

e2e = worker_fixtures.e2e  # the unique topic and namespace, removed afterwards


@pytest.fixture
def collector(e2e: EndToEnd, tmp_path: Path) -> Iterator[CollectorProcess]:
    e2e.create_topic(3)
    process = CollectorProcess(topic=e2e.topic, bootstrap=e2e.bootstrap, workdir=tmp_path).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()
