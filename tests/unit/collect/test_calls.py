"""Reading a tracking API request: which calls become messages, which are refused and why."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processor.collect.calls import (
    BAD_BATCH,
    MISSING_USER_ID,
    TOO_LARGE,
    BadRequest,
    CallRules,
    read_calls,
    response_body,
)
from processor.events import parse_event, parse_time

NOW = parse_time("2026-11-20T10:00:00Z")
RULES = CallRules(max_call_bytes=32 * 1024, max_future_skew_ms=300_000)


def body(document: Any) -> bytes:
    return orjson.dumps(document)


def track(**fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "report.sent",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-11-20T09:00:00.123456+00:00",
        "context": {"groupId": "acme"},
        "properties": {"plan": "pro"},
        **fields,
    }


def test_a_batch_keeps_its_valid_calls_and_names_the_invalid_one() -> None:
    calls = [track(messageId="m1"), track(messageId="m2", event=None), track(messageId="m3")]
    result = read_calls("batch", body({"batch": calls}), RULES, NOW, NOW)
    assert [orjson.loads(m.value)["messageId"] for m in result.messages] == ["m1", "m3"]
    assert [(r.index, r.message_id, r.reason) for r in result.rejected] == [
        (1, "m2", "missing_type")
    ]
    status, answer = response_body(result)
    assert status == 200 and answer["success"] is True
    assert answer["rejected"][0]["reason"] == "missing_type"


def test_a_request_with_nothing_accepted_is_400_with_the_first_reason() -> None:
    result = read_calls("track", body(track(userId=None)), RULES, NOW, NOW)
    status, answer = response_body(result)
    assert (status, answer["code"], answer["success"]) == (400, MISSING_USER_ID, False)


def test_every_call_becomes_a_message_the_worker_reads_as_the_same_event() -> None:
    result = read_calls("batch", body({"batch": [track()], "sentAt": "x"}), RULES, NOW, NOW)
    (message,) = result.messages
    event = parse_event(message.value, NOW, 300_000, "segment")
    assert event.type == "report.sent"  # type: ignore[union-attr]
    assert event.event_id == "m1"  # type: ignore[union-attr]
    assert event.ts_ms == parse_time("2026-11-20T09:00:00.123Z")  # type: ignore[union-attr]
    stored = orjson.loads(message.value)
    assert stored["receivedAt"] == "2026-11-20T10:00:00Z" and stored["sentAt"] == "x"
    assert message.key == b"acme"


def test_a_single_call_endpoint_gives_the_type_and_the_api_fills_id_and_time() -> None:
    call = {"userId": "u1", "groupId": "acme", "traits": {"plan": "pro"}, "type": "track"}
    result = read_calls("group", body(call), RULES, NOW, NOW)
    stored = orjson.loads(result.messages[0].value)
    assert stored["type"] == "group"
    assert stored["timestamp"] == "2026-11-20T10:00:00Z"
    assert stored["messageId"].startswith("nsm-")
    assert result.messages[0].key == b"acme"


def test_a_write_key_in_the_body_is_never_produced() -> None:
    result = read_calls("track", body(track(writeKey="secret")), RULES, NOW, NOW)
    assert b"secret" not in result.messages[0].value


@pytest.mark.parametrize(
    ("call", "key"),
    [
        (track(), b"acme"),
        (track(context={}), b"u1"),
        (track(context={}, userId=None, anonymousId="anon"), b"anon"),
        ({**track(), "groupId": 7}, b"7"),
    ],
)
def test_the_key_is_the_account_else_the_user(call: dict[str, Any], key: bytes) -> None:
    assert read_calls("batch", body({"batch": [call]}), RULES, NOW, NOW).messages[0].key == key


def test_a_configured_key_field() -> None:
    rules = CallRules(32 * 1024, 300_000, key_field="properties.plan")
    assert read_calls("track", body(track()), rules, NOW, NOW).messages[0].key == b"pro"


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (track(timestamp="2026-11-20T09:00:00"), "bad_timestamp"),
        (track(timestamp="2026-11-20T10:06:00Z"), "future_timestamp"),
        (track(type="purchase"), "missing_type"),
        ("not a call", "not_object"),
        (track(properties={"blob": "x" * 40_000}), TOO_LARGE),
    ],
)
def test_invalid_calls_are_refused_with_the_worker_s_reason(call: Any, reason: str) -> None:
    result = read_calls("batch", body({"batch": [call]}), RULES, NOW, NOW)
    assert not result.messages
    assert [r.reason for r in result.rejected] == [reason]


@pytest.mark.parametrize(
    ("endpoint", "raw", "code"),
    [
        ("batch", b"{not json", "not_json"),
        ("batch", b"[]", "not_object"),
        ("batch", body({"batch": {"type": "track"}}), BAD_BATCH),
    ],
)
def test_an_unreadable_request_is_refused_whole(endpoint: str, raw: bytes, code: str) -> None:
    with pytest.raises(BadRequest) as refused:
        read_calls(endpoint, raw, RULES, NOW, NOW)
    assert refused.value.code == code
