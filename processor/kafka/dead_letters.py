"""The dead-letter topic `<topic>.dlq`: the original bytes, with why they were rejected."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

REASON_HEADER = "nsm-reason"
DETAIL_HEADER = "nsm-detail"
SOURCE_HEADER = "nsm-source"
# On a dead letter whose message is too large for the dead-letter topic once the headers are
# added (or is refused there): the value is left out, this header gives its size in bytes, and
# `nsm-source` where to read it.
OMITTED_HEADER = "nsm-value-omitted"
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


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
    rows, sends = [], []
    for key, value, offset, reason, detail in rejected:
        headers = [
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail.encode()[:1000]),
            (SOURCE_HEADER, f"{topic}/{partition}/{offset}".encode()),
        ]
        row = (dead_letter_topic(topic), key, value, headers)
        try:
            sends.append(await producer.send(row[0], value=value, key=key, headers=headers))
        except _TOO_LARGE:  # larger than the producer sends
            sends.append(await _without_value(producer, *row))
        rows.append(row)
    results = await asyncio.gather(*sends, return_exceptions=True)
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, _TOO_LARGE):  # larger than the topic takes
            await (await _without_value(producer, *row))
        elif isinstance(result, BaseException):
            raise result


async def _without_value(
    producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes | None,
    headers: list[tuple[str, bytes]],
) -> asyncio.Future[object]:  # fmt: skip
    """A dead letter too large to send whole: its headers, and its size instead of its value."""
    omitted = [*headers, (OMITTED_HEADER, str(len(value or b"")).encode())]
    return await producer.send(topic, value=None, key=key, headers=omitted)
