"""`nsm collect` answering as the tracking API does, against the real Kafka."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import aiohttp
import pytest

from tests.integration.collect.harness import WRITE_KEY, CollectorProcess, basic_auth
from tests.integration.worker.conftest import EndToEnd
from tests.integration.worker.harness import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def call(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "report.sent",
        "userId": f"u{n % 7}",
        "messageId": f"m{n}",
        "timestamp": "2026-11-20T09:00:00Z",
        "context": {"groupId": f"acct-{n % 5}"},
        "properties": {"n": n},
        **fields,
    }


def produced(e2e: EndToEnd) -> list[dict[str, Any]]:
    records = read_topic(e2e.bootstrap, e2e.topic)
    out = []
    for partition, rows in records.items():
        for row in rows:
            assert row.value is not None
            document = json.loads(row.value)
            document["_key"], document["_partition"] = row.key, partition
            out.append(document)
    return out


def test_a_batch_with_one_invalid_call_keeps_the_others(
    e2e: EndToEnd, collector: CollectorProcess
) -> None:
    calls = [call(1), call(2, timestamp="yesterday"), call(3)]
    status, answer = collector.post("/v1/batch", {"batch": calls, "writeKey": WRITE_KEY})
    assert status == 200, answer
    assert answer["rejected"] == [
        {
            "index": 1,
            "messageId": "m2",
            "reason": "bad_timestamp",
            "message": answer["rejected"][0]["message"],
        }
    ]
    assert "yesterday" in answer["rejected"][0]["message"]
    stored = produced(e2e)
    assert sorted(d["messageId"] for d in stored) == ["m1", "m3"]
    assert all(d["_key"] == d["context"]["groupId"].encode() for d in stored)
    assert all("writeKey" not in d for d in stored)
    # Keyed by the account: the account's calls share a partition.
    partitions = {d["context"]["groupId"]: d["_partition"] for d in stored}
    assert len(partitions) == 2
    metrics = collector.scrape()
    assert metrics.one("nsm_collect_rejected_total", reason="bad_timestamp") == 1
    assert metrics.one("nsm_collect_events_total") == 2


def test_a_wrong_key_is_401_and_nothing_is_produced(
    e2e: EndToEnd, collector: CollectorProcess
) -> None:
    for key in ("not-the-key", "", None):
        status, answer = collector.post("/v1/batch", {"batch": [call(1)]}, key=key)
        assert (status, answer["code"]) == (401, "unauthorized")
    assert produced(e2e) == []
    assert WRITE_KEY not in collector.log_tail(1000)
    assert collector.scrape().one("nsm_collect_rejected_total", reason="unauthorized") == 3


def test_a_body_over_the_limit_is_413_gzip_or_not(
    e2e: EndToEnd, collector: CollectorProcess
) -> None:
    big = {"batch": [call(n, properties={"pad": "x" * 30_000}) for n in range(20)]}
    status, answer = collector.post("/v1/batch", big)
    assert (status, answer["code"]) == (413, "too_large")
    # Compressed it is small on the wire; the limit counts the inflated body.
    packed = gzip.compress(json.dumps(big).encode())
    assert len(packed) < 50_000
    status, answer = collector.post("/v1/batch", packed, headers={"Content-Encoding": "gzip"})
    assert (status, answer["code"]) == (413, "too_large")
    single = call(1, properties={"pad": "x" * 40_000})
    assert collector.post("/v1/track", single)[0] == 413
    assert produced(e2e) == []


def test_a_gzip_batch_is_read(e2e: EndToEnd, collector: CollectorProcess) -> None:
    packed = gzip.compress(json.dumps({"batch": [call(n) for n in range(50)]}).encode())
    status, answer = collector.post("/v1/batch", packed, headers={"Content-Encoding": "gzip"})
    assert (status, answer) == (200, {"success": True})
    assert len(produced(e2e)) == 50


def test_a_flood_of_invalid_requests_leaves_it_serving_valid_ones(
    e2e: EndToEnd, collector: CollectorProcess
) -> None:
    """10,000 invalid requests (bad key, not JSON, invalid calls) from 50 connections at once,
    with valid batches among them: every valid one is answered 200 and produced once."""
    invalid = [
        ({"Authorization": basic_auth("wrong")}, b'{"batch": []}'),
        ({"Authorization": basic_auth(WRITE_KEY)}, b"{not json"),
        ({"Authorization": basic_auth(WRITE_KEY)}, json.dumps({"batch": [{"type": "x"}]}).encode()),
    ]

    async def flood() -> tuple[list[int], list[int]]:
        bad_statuses: list[int] = []
        good_statuses: list[int] = []
        queue: asyncio.Queue[tuple[bool, int]] = asyncio.Queue()
        for n in range(10_000):
            queue.put_nowait((False, n))
            if n % 200 == 0:
                queue.put_nowait((True, n))
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                while not queue.empty():
                    valid, n = queue.get_nowait()
                    if valid:
                        headers = {"Authorization": basic_auth(WRITE_KEY)}
                        data = json.dumps({"batch": [call(n)]}).encode()
                    else:
                        headers, data = invalid[n % len(invalid)]
                    async with session.post(collector.url + "/v1/batch", data=data,
                                            headers=headers) as response:  # fmt: skip
                        await response.read()
                        (good_statuses if valid else bad_statuses).append(response.status)

            await asyncio.gather(*(client() for _ in range(50)))
        return good_statuses, bad_statuses

    good, bad = asyncio.run(flood())
    assert len(bad) == 10_000 and set(bad) == {400, 401}
    assert good == [200] * 50
    assert sorted(d["messageId"] for d in produced(e2e)) == sorted(
        f"m{n}" for n in range(0, 10_000, 200)
    )
