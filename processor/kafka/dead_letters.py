"""The dead-letter topic `<topic>.dlq`: the original bytes, with why they were rejected."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

REASON_HEADER = "nsm-reason"
DETAIL_HEADER = "nsm-detail"
SOURCE_HEADER = "nsm-source"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


async def send_dead_letters(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    rejected: Sequence[tuple[bytes | None, bytes | None, int, str, str]],
) -> None:
    """Send (key, value, offset, reason, detail) rows and wait until the broker has them all.

    Called before the batch's offset is stored, so a crash in between sends a row twice at worst,
    never loses one.
    """
    sends = []
    for key, value, offset, reason, detail in rejected:
        headers = [
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail.encode()[:1000]),
            (SOURCE_HEADER, f"{topic}/{partition}/{offset}".encode()),
        ]
        sends.append(
            await producer.send(dead_letter_topic(topic), value=value, key=key, headers=headers)
        )
    await asyncio.gather(*sends)
