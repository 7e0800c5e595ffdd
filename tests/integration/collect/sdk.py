"""The official Python tracking clients, pointed at `nsm collect`, replaying generated calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from processor.generate import RecordStream, plan_history
from processor.times import parse_time as parse_time_ms
from tests.integration.collect.harness import WRITE_KEY

END_MS = parse_time_ms("2026-11-20T00:00:00Z")


def generated_calls(seed: int, accounts: int, days: float) -> list[dict[str, Any]]:
    """`nsm generate --format segment` calls, as dicts."""
    config = plan_history(
        seed=seed, accounts=accounts, days=days, end_ms=END_MS, event_format="segment"
    )
    return [orjson.loads(value) for _, value in RecordStream(config)]


# The SDKs drop a call when their in-memory queue (10,000 by default) is full; a test sends its
# whole history at once, faster than one upload thread drains it, so the queue holds all of it.
QUEUE_SIZE = 100_000


def segment_client(host: str, errors: list[Any], **options: Any) -> SegmentClient:
    """segment-analytics-python with its defaults but for the host (and a quick flush)."""
    return SegmentClient(
        write_key=WRITE_KEY, host=host, on_error=lambda e, batch: errors.append(e),
        upload_interval=0.1, max_queue_size=QUEUE_SIZE, **options,
    )  # fmt: skip


def rudder_client(host: str, errors: list[Any], **options: Any) -> RudderClient:
    """rudder-sdk-python (gzip bodies by default)."""
    return RudderClient(
        write_key=WRITE_KEY, host=host, on_error=lambda e, batch: errors.append(e),
        upload_interval=0.1, max_queue_size=QUEUE_SIZE, **options,
    )  # fmt: skip


def send(client: SegmentClient | RudderClient, calls: Iterable[dict[str, Any]]) -> int:
    """Each call through the client's own method, with its messageId and timestamp.

    Returns how many calls the client accepted into its queue (it refuses some when full)."""
    sent = 0
    for call in calls:
        common = {
            "user_id": call.get("userId"),
            "anonymous_id": call.get("anonymousId"),
            "timestamp": datetime.fromisoformat(call["timestamp"]),
            "message_id": call["messageId"],
        }
        if call["type"] == "group":
            accepted, _ = client.group(group_id=call["groupId"], traits=call["traits"], **common)
        elif call["type"] == "page":
            accepted, _ = client.page(name=call["name"], properties=call["properties"],
                                      context=dict(call["context"]), **common)  # fmt: skip
        else:
            accepted, _ = client.track(event=call["event"], properties=call["properties"],
                                       context=dict(call["context"]), **common)  # fmt: skip
        sent += int(accepted)
    return sent
