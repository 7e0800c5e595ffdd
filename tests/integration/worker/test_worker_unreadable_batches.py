"""Record batches that cannot be read: a named error, never "Kafka down", and the worker goes on.

A broker validates what producers send, so a batch that cannot be read comes from damage after
the fact (a disk, a copy, a tool writing segments). The test damages two gzip batches in the
segment file of a private stack's broker: one whose payload no longer decompresses (its CRC
written anew, so only decompression fails), one whose CRC no longer matches. The worker must
pass over both, apply every other batch exactly, count and report them, and never restart.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.record.util import calc_crc32c

from processor.engine import compute_metrics
from tests.integration.worker.conftest import EndToEnd, PrivateStack
from tests.integration.worker.harness import (
    comparable,
    now_ms,
    stored_offsets,
    wait_until,
    write_definitions,
)
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

METRICS: list[dict[str, Any]] = [
    {"name": "reports", "tier": "north_star", "window": "1d", "bucket": "1h",
     "segments": ["plan"], "aggregate": {"event": "report.sent", "count": True}},
    {"name": "active", "tier": "diagnostic", "window": "1d", "bucket": "1h",
     "entities": {"key": "account_id", "all": [{"event": "*", "count_at_least": 1}]}},
]  # fmt: skip
GROUPS, PER_GROUP = 5, 20
HEADER = 61  # a v2 record batch's header; its CRC covers the bytes from 21 on


def _batches(segment: bytes) -> list[tuple[int, int, int]]:
    """(position, base offset, size) of each record batch in a segment file."""
    out, position = [], 0
    while position + 12 <= len(segment):
        base, length = struct.unpack_from(">qi", segment, position)
        if length <= 0:
            break
        out.append((position, base, 12 + length))
        position += 12 + length
    return out


def _damage(path: Path, position: int, size: int, keep_crc_valid: bool) -> None:
    data = bytearray(path.read_bytes())
    middle = position + HEADER + (size - HEADER) // 2
    for i in range(middle - 4, middle + 4):
        data[i] ^= 0x5A
    if keep_crc_valid:
        crc = calc_crc32c(bytes(data[position + 21 : position + size]))
        struct.pack_into(">I", data, position + 17, crc)
    with path.open("r+b") as segment:
        segment.seek(position)
        segment.write(data[position : position + size])


def test_unreadable_batches_are_passed_over_named_and_counted(
    private_stack: PrivateStack, unique_name: str, tmp_path: Path
):
    stack = private_stack
    e2e = EndToEnd(stack.bootstrap, stack.redis_url, unique_name, tmp_path)
    try:
        catalog = catalog_of(METRICS)
        definitions = write_definitions(tmp_path / "definitions", METRICS)
        e2e.create_topic(1)
        start = now_ms() - 3_600_000
        groups: list[list[bytes]] = []
        producer = e2e.producer(compression="gzip")
        for g in range(GROUPS):
            events = [
                {"type": "report.sent", "timestamp": start + g * 1000 + i,
                 "account_id": f"a{g}-{i % 4}", "plan": ["free", "pro"][i % 2],
                 "event_id": f"{g}-{i}"}
                for i in range(PER_GROUP)
            ]  # fmt: skip
            group = [orjson.dumps(event) for event in events]
            producer.send([(0, None, value) for value in group])  # one batch per send
            groups.append(group)
        segment = next((stack.folder / "kafka" / "data").glob(f"{e2e.topic}-0/*.log"))
        batches = _batches(segment.read_bytes())
        assert [base for _, base, _ in batches] == [g * PER_GROUP for g in range(GROUPS)]
        _damage(segment, batches[1][0], batches[1][2], keep_crc_valid=True)
        _damage(segment, batches[3][0], batches[3][2], keep_crc_valid=False)

        worker = e2e.worker("reader", definitions)
        worker.wait_healthy()
        readable = [v for g, group in enumerate(groups) if g not in (1, 3) for v in group]
        expected = compute_metrics(readable, catalog, now_ms=now_ms())
        want = comparable(expected.to_json()["metrics"], catalog)

        def exact() -> bool:
            worker.check_alive()
            scrape = worker.scrape()
            return comparable(scrape.values, catalog) == want and scrape.lag() == {0: 0}

        wait_until(exact, 90, "the readable batches applied exactly")
        scrape = worker.scrape()
        assert scrape.one("nsm_record_batches_unreadable_total", partition="0") == 2
        assert scrape.one("nsm_dependency_up", dependency="kafka") == 1
        assert scrape.total("nsm_events_processed_total") == len(readable)
        answer = worker.health()
        assert answer is not None and answer[0] == 200, answer
        report = answer[1]["unreadable_record_batches"]
        assert report["count"] == 2
        assert [batch["offsets"] for batch in report["last"]] == [
            [PER_GROUP, 2 * PER_GROUP - 1], [3 * PER_GROUP, 4 * PER_GROUP - 1]
        ]  # fmt: skip
        assert {batch["codec"] for batch in report["last"]} == {"gzip"}
        assert "CorruptRecordException" in report["last"][1]["error"]
        assert stored_offsets(stack.redis_url, e2e.namespace, 1) == {0: GROUPS * PER_GROUP - 1}
        time.sleep(1)
        assert worker.starts == 1 and worker.alive
        assert worker.log_tail(400).count("unreadable record batch") == 2
    finally:
        for worker in e2e.workers:
            worker.close()
        for producer in e2e.producers:
            producer.close()
