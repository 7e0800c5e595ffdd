from __future__ import annotations

import nsm_native
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine.compute import message_bytes
from processor.events import format_time, parse_rfc3339_ms, parse_time
from tests import oracle

NOW = 1_795_168_800_000  # 2026-11-20T10:00:00Z


def check(raw: object, now: int = NOW, skew: int = 300_000) -> nsm_native.EventCheck:
    return nsm_native.check_event(message_bytes(raw), now, skew)  # type: ignore[arg-type]


def reason(raw: object, now: int = NOW, skew: int = 300_000) -> str | None:
    return check(raw, now, skew).reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not_json"),
        (b"", "not_json"),
        (b'"\xff"', "not_json"),
        ("NaN", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (b"null", "not_object"),
        (b'{"timestamp": 1}', "missing_type"),
        (b'{"type": null, "timestamp": 1}', "missing_type"),
        (b'{"type": 5, "timestamp": 1}', "missing_type"),
        (b'{"type": "a"}', "missing_timestamp"),
        (b'{"type": "a", "timestamp": null}', "missing_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20T10:00:00"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "2026-02-30T10:00:00Z"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20T24:00:00Z"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20T10:00:60Z"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20T10:00:00+24:00"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": "1795168800000"}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": 1795168800000.0}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": true}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": {"ms": 1}}', "bad_timestamp"),
        (b'{"type": "a", "timestamp": 1795169100001}', "future_timestamp"),
        (b'{"type": "a", "timestamp": "2026-11-20T12:05:01+02:00"}', "future_timestamp"),
    ],
)
def test_every_invalid_reason(raw: object, expected: str) -> None:
    assert reason(raw) == expected


def test_the_skew_bound_itself_is_still_valid() -> None:
    assert reason({"type": "a", "timestamp": NOW + 300_000}) is None
    assert reason({"type": "a", "timestamp": NOW + 300_001}) == "future_timestamp"
    assert reason({"type": "a", "timestamp": NOW + 1_000}, skew=0) == "future_timestamp"


def test_a_valid_event_from_bytes_str_and_dict() -> None:
    raw = '{"type": "report.sent", "timestamp": "2026-11-20T10:00:00Z", "event_id": 7, "x": 1}'
    seven = check({"type": "a", "timestamp": 5, "event_id": "7"}).event_id
    for source in (raw, raw.encode(), {"type": "report.sent", "timestamp": NOW, "event_id": 7}):
        parsed = check(source)
        assert parsed.reason is None
        assert parsed.event_type == "report.sent"
        assert parsed.ts_ms == NOW
        assert parsed.event_id == seven
    assert check({"type": "a", "timestamp": 5, "event_id": None}).event_id is None


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-20T10:00:00Z", NOW),
        ("2026-11-20t10:00:00z", NOW),
        ("2026-11-20 10:00:00Z", NOW),
        ("2026-11-20T12:00:00+02:00", NOW),
        ("2026-11-20T09:30:00-00:30", NOW),
        ("2026-11-20T10:00:00.123Z", NOW + 123),
        ("2026-11-20T10:00:00.1Z", NOW + 100),
        ("2026-11-20T10:00:00.123999Z", NOW + 123),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_rfc3339_forms(text: str, ms: int) -> None:
    parsed = check({"type": "a", "timestamp": text})
    assert parsed.reason is None
    assert parsed.ts_ms == ms
    assert parse_time(text) == ms


def test_parse_time_takes_epoch_ms_and_rejects_the_rest() -> None:
    assert parse_time("1795168800000") == NOW
    assert parse_time(" -5 ") == -5
    for bad in ("yesterday", "2026-11-20T10:00:00", "1.5", ""):
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_time(bad)


def test_format_time() -> None:
    assert format_time(NOW) == "2026-11-20T10:00:00Z"
    assert format_time(NOW + 7) == "2026-11-20T10:00:00.007Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999Z"
    for ms in (0, NOW, NOW + 999, -86_400_001):
        assert parse_time(format_time(ms)) == ms


def test_times_rfc3339_cannot_write_stay_epoch_ms() -> None:
    assert format_time(10**15) == "1000000000000000"
    assert parse_time(format_time(10**15)) == 10**15
    assert reason({"type": "a", "timestamp": 10**15}) == "future_timestamp"


FIRST_MS, LAST_MS = -62_135_596_800_000, 253_402_300_799_999  # years 1 to 9999
# ASCII digits (month 13, hour 24, second 60, 30 February...), digits datetime may read otherwise,
# and other separators, letters and signs.
ODD = "0123456789٣０a +-:Tt.Zz,W"


@st.composite
def usual_shape(draw: st.DrawFn) -> str:
    """`YYYY-MM-DDTHH:MM:SS[.fff]Z` of a valid time, with up to two characters replaced."""
    ms = draw(st.integers(FIRST_MS, LAST_MS))
    text = format_time(ms)  # with the fraction only when there is one
    if len(text) == 20 and draw(st.booleans()):
        text = text[:-1] + ".000Z"
    chars = list(text)
    for _ in range(draw(st.integers(0, 2))):
        chars[draw(st.integers(0, len(chars) - 1))] = draw(st.sampled_from(ODD))
    return "".join(chars)


@settings(max_examples=3000)
@given(usual_shape())
def test_timestamps_of_the_usual_shape_parse_as_the_oracle_parses_them(text: str) -> None:
    """Every near miss of the usual shape is read, or refused, as the oracle does."""
    assert parse_rfc3339_ms(text) == oracle.parse_timestamp(text)
