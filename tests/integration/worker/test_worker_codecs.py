"""Every codec Kafka offers (CONTRACT §1): topics written compressed with gzip, snappy, lz4 and
zstd are read by the worker and give exactly what `nsm compute` gives over their messages."""

from __future__ import annotations

import pytest

from processor.definitions import load_definitions
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import read_topic, wait_exact
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_topic_written_with_each_codec_is_read_exactly(e2e: EndToEnd, codec: str):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(2)
    messages = generated_messages(21, 2, events=3000, duplicates=2, invalid=1)
    worker = e2e.worker(codec)
    worker.wait_healthy()
    e2e.producer(compression=codec).send(messages)
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    scrape = worker.scrape()
    assert scrape.one("nsm_dependency_up", dependency="kafka") == 1
    records = read_topic(e2e.bootstrap, e2e.topic)
    assert sum(len(rs) for rs in records.values()) == len(messages)
    assert scrape.total("nsm_events_processed_total") > 0
    assert scrape.total("nsm_record_batches_unreadable_total") == 0
