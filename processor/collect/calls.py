"""A tracking API request's body in, the Kafka messages to produce and the calls rejected out.

Pure: the receive time and the clock are parameters. Each call is checked with the decoder the
worker uses (`parse_event` with the Segment input format), so a call the collector accepts is
one the worker applies, and one it would send to the dead-letter topic is answered with 400 here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor import segment
from processor.engine.fields import compile_lookup, label
from processor.events import InvalidEvent, format_time, parse_event

BATCH = "batch"
ENDPOINTS = (*segment.CALL_TYPES, BATCH)

# Reasons a call or a request is refused that the decoder does not have (docs/segment.md).
TOO_LARGE = "too_large"
MISSING_USER_ID = "missing_user_id"
BAD_BATCH = "bad_batch"


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int  # the call's position in the batch (0 for a single call)
    message_id: str | None
    reason: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "messageId": self.message_id,
            "reason": self.reason,
            "message": self.detail,
        }


@dataclass
class Calls:
    """What a request holds: the messages to produce, in call order, and the calls refused."""

    messages: list[Message] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


class BadRequest(ValueError):
    """The request as a whole cannot be read (400): `code` is the reason, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CallRules:
    """What the collector checks and adds, from its settings."""

    max_call_bytes: int
    max_future_skew_ms: int
    key_field: str = ""  # empty: the account (processor/segment.py)
    _owner: Callable[[Mapping[str, Any]], Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        owner = compile_lookup(self.key_field) if self.key_field else segment.account_of
        object.__setattr__(self, "_owner", owner)

    def key_of(self, call: Mapping[str, Any]) -> bytes | None:
        """The message key: the account (or the configured field), else the user, so that the
        calls of one account share a partition (CONTRACT §1)."""
        owner = self._owner(call)
        if owner is None:
            owner = call.get("userId")
        if owner is None:
            owner = call.get("anonymousId")
        return None if owner is None else label(owner).encode()


def read_calls(
    endpoint: str, body: bytes, rules: CallRules, received_ms: int, now_ms: int
) -> Calls:
    """The calls of a request to `/v1/<endpoint>`; raises BadRequest when the body is unusable.

    A single-call endpoint (`track`, `identify`, ...) takes the call type from its path; `batch`
    takes `{"batch": [call, ...]}` whose calls each carry their type.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("not_json", f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise BadRequest("not_object", f"the body is a JSON {kind}, not an object")
    if endpoint == BATCH:
        calls = document.get(BATCH)
        if not isinstance(calls, list):
            raise BadRequest(BAD_BATCH, 'a batch request is an object with a "batch" list of calls')
        sent_at = document.get("sentAt")
    else:
        document["type"] = endpoint
        calls, sent_at = [document], None
    received = format_time(received_ms)
    result = Calls()
    for index, call in enumerate(calls):
        checked = _check(call, index, rules, received, sent_at, now_ms)
        if isinstance(checked, Rejected):
            result.rejected.append(checked)
        else:
            result.messages.append(checked)
    return result


def _check(
    call: Any, index: int, rules: CallRules, received: str, sent_at: Any, now_ms: int
) -> Message | Rejected:
    if not isinstance(call, dict):
        detail = f"a call is a JSON object, not a {type(call).__name__}"
        return Rejected(index, None, "not_object", detail)
    # A write key sent in the body (Segment's libraries put one in) is a secret: never produced.
    call.pop("writeKey", None)
    # What the API adds: an id when the sender gave none (a retry of such a call cannot be told
    # from a new one), the time when there is none, and when it was received.
    if call.get(segment.MESSAGE_ID) is None:
        call[segment.MESSAGE_ID] = f"nsm-{uuid.uuid4()}"
    if call.get("timestamp") is None:
        call["timestamp"] = received
    if sent_at is not None and "sentAt" not in call:
        call["sentAt"] = sent_at
    call["receivedAt"] = received
    message_id = call[segment.MESSAGE_ID]
    message_id = message_id if type(message_id) is str else label(message_id)
    if call.get("userId") is None and call.get("anonymousId") is None:
        return Rejected(index, message_id, MISSING_USER_ID, "a call needs userId or anonymousId")
    event = parse_event(call, now_ms, rules.max_future_skew_ms, "segment")
    if isinstance(event, InvalidEvent):
        return Rejected(index, message_id, event.reason, event.detail)
    value = orjson.dumps(call)
    if len(value) > rules.max_call_bytes:
        detail = f"the call is {len(value):,} bytes, more than {rules.max_call_bytes:,}"
        return Rejected(index, message_id, TOO_LARGE, detail)
    return Message(rules.key_of(call), value)


def response_body(calls: Calls) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a request that was read: 200 when a call was accepted (with the
    rejected ones listed), 400 with the first reason when none was."""
    rejected = [r.as_json() for r in calls.rejected]
    if calls.messages or not calls.rejected:
        body: dict[str, Any] = {"success": True}
        if rejected:
            body["rejected"] = rejected
        return 200, body
    first = calls.rejected[0]
    body = {"success": False, "code": first.reason, "message": first.detail, "rejected": rejected}
    return 400, body
