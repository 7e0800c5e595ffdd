"""The synthetic event stream: deterministic, valid per CONTRACT §1, and shaped as asked."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.events import Event, InvalidEvent, parse_event
from processor.generate import GeneratorConfig, RecordStream, iter_events, plan_history
from processor.generate.config import DAY_MS, Drop
from processor.generate.gtm import LOW_USAGE_REPORTS
from processor.times import parse_time as parse_time_ms

END = "2026-11-20T00:00:00Z"  # a Friday
END_MS = parse_time_ms(END)
NOW_MS = END_MS + DAY_MS  # a clock after the history, for validation
RFC3339_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PRODUCT_TYPES = {
    "report.sent",
    "report.viewed",
    "workflow.completed",
    "build.completed",
    "integration.data_received",
    "login",
    "page.viewed",
    "signup",
}
GTM_TYPES = {
    "ad.spend",
    "expense.recorded",
    "opportunity.created",
    "deal.won",
    "subscription.started",
    "subscription.renewed",
    "subscription.churned",
    "invoice.paid",
}
USER_TYPES = PRODUCT_TYPES - {"integration.data_received"}


def _config(**options: Any) -> GeneratorConfig:
    options.setdefault("seed", 11)
    options.setdefault("accounts", 60)
    options.setdefault("days", 21)
    return plan_history(end_ms=END_MS, **options)


def _values(config: GeneratorConfig) -> list[bytes]:
    return [value for _, value in RecordStream(config)]


def _ms(event: dict[str, Any]) -> int:
    return parse_time_ms(event["timestamp"])


@pytest.fixture(scope="module")
def stream() -> list[tuple[bytes | None, bytes]]:
    return list(RecordStream(_config()))


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    config = _config(accounts=20, days=5)
    assert _values(config) == _values(config)
    assert _values(config) != _values(_config(accounts=20, days=5, seed=12))


def test_every_event_is_valid_per_the_contract(stream: list[tuple[bytes | None, bytes]]) -> None:
    ids: Counter[str] = Counter()
    previous_ms = 0
    types: Counter[str] = Counter()
    for key, value in stream:
        parsed = parse_event(value, now_ms=NOW_MS)
        assert isinstance(parsed, Event), parsed
        event = parsed.data
        assert RFC3339_MS_Z.match(event["timestamp"]), event["timestamp"]
        assert parsed.ts_ms >= previous_ms, "events are in time order"
        assert parse_time_ms(END) - 21 * DAY_MS <= parsed.ts_ms <= END_MS
        previous_ms = parsed.ts_ms
        assert parsed.type in PRODUCT_TYPES | GTM_TYPES
        types[parsed.type] += 1
        ids[str(event["event_id"])] += 1
        if parsed.type in ("ad.spend", "expense.recorded"):
            assert "account_id" not in event
            assert key is not None
        else:
            assert key == event["account_id"].encode(), "the message key is the account"
            for field in ("plan", "segment", "region", "rep", "channel"):
                assert field in event or event["account_id"].startswith("acc_p")
        if parsed.type in USER_TYPES:
            assert event["user_id"] and event["workspace_id"]
    assert max(ids.values()) == 1, "event ids are unique"
    # A realistic mix: every kind of event appears, product usage dominates.
    assert set(types) >= PRODUCT_TYPES | GTM_TYPES - {"subscription.churned"}
    assert types["page.viewed"] > types["report.sent"] > types["deal.won"]


def test_event_specific_fields(stream: list[tuple[bytes | None, bytes]]) -> None:
    seen: dict[str, dict[str, Any]] = {}
    for _, value in stream:
        event = orjson.loads(value)
        seen.setdefault(event["type"], event)
    assert seen["report.viewed"]["properties"]["role"] in ("admin", "member", "viewer")
    assert isinstance(seen["workflow.completed"]["properties"]["key_workflow"], bool)
    assert seen["build.completed"]["properties"]["status"] in ("success", "failed")
    assert seen["build.completed"]["properties"]["project_id"]
    assert {"integration_id", "provider"} <= set(seen["integration.data_received"]["properties"])
    assert {"channel", "campaign", "cost"} <= set(seen["ad.spend"]["properties"])
    assert seen["opportunity.created"]["properties"]["source"] in ("inbound", "outbound")
    assert seen["opportunity.created"]["properties"]["amount"] > 0
    assert seen["deal.won"]["properties"]["amount"] > 0
    assert seen["subscription.started"]["properties"]["mrr"] > 0
    assert seen["invoice.paid"]["properties"]["amount"] > 0


def test_repeats_and_invalid_messages_are_mixed_in_as_asked() -> None:
    clean = _values(_config(accounts=20, days=7))
    faulty = _values(_config(accounts=20, days=7, duplicates_pct=5, invalid_pct=5))
    reasons: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    valid = []
    for value in faulty:
        parsed = parse_event(value, now_ms=NOW_MS)
        if isinstance(parsed, InvalidEvent):
            reasons[parsed.reason] += 1
            continue
        ids[str(parsed.event_id)] += 1
        valid.append(value)
    repeats = sum(count - 1 for count in ids.values())
    assert 0.03 * len(clean) < repeats < 0.07 * len(clean)
    assert 0.03 * len(clean) < sum(reasons.values()) < 0.07 * len(clean)
    expected_reasons = {"not_json", "not_object", "missing_type", "missing_timestamp"}
    assert set(reasons) == expected_reasons | {"bad_timestamp"}
    # Faults are added around the same stream: without them it is the clean stream.
    assert list(dict.fromkeys(valid)) == clean


def test_drop_lowers_the_chosen_segment_after_the_date_and_no_other() -> None:
    drop_from = END_MS - 14 * DAY_MS
    base = list(iter_events(_config(days=28)))
    dropped = list(iter_events(_config(days=28, drop=Drop(60, drop_from, "region", "emea"))))

    def after_over_before(events: list[dict[str, Any]], in_emea: bool) -> float:
        usage = [
            e for e in events if e["type"] in USER_TYPES and (e["region"] == "emea") == in_emea
        ]
        after = sum(1 for e in usage if _ms(e) >= drop_from)
        return after / (len(usage) - after)

    ratio = after_over_before(dropped, True) / after_over_before(base, True)
    assert 0.3 < ratio < 0.5, "a 60% drop leaves about 40% of the usage"

    # Other regions are untouched, event for event (ids aside, which are renumbered).
    def others(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        kept = (e for e in events if e.get("region") != "emea")
        return [(e["type"], e["timestamp"], e.get("user_id")) for e in kept]

    assert others(dropped) == others(base)
    # Before the date nothing changes at all.
    before = [(e["type"], e["timestamp"]) for e in base if _ms(e) < drop_from]
    assert [(e["type"], e["timestamp"]) for e in dropped if _ms(e) < drop_from] == before


def _first_month_reports(
    events: list[dict[str, Any]], start_ms: int, judged_by_ms: int
) -> dict[str, int]:
    """Reports each account sent in its first four weeks (from its sign-up, or from the start),
    for the accounts whose first four weeks ended by `judged_by_ms`."""
    first_ms: dict[str, int] = {}
    for event in events:
        # An account's first user event is its admin's sign-up when it was created during the
        # history (deals and opportunities may come earlier), and usage otherwise.
        if event["type"] in USER_TYPES and event["account_id"] not in first_ms:
            new = event["type"] == "signup"
            first_ms[event["account_id"]] = _ms(event) if new else start_ms
    reports: Counter[str] = Counter()
    for event in events:
        if event["type"] == "report.sent":
            account = event["account_id"]
            if _ms(event) < first_ms[account] + 28 * DAY_MS:
                reports[account] += 1
    return {a: reports[a] for a, ms in first_ms.items() if ms + 28 * DAY_MS <= judged_by_ms}


def test_churn_low_usage_concentrates_churn_in_low_usage_accounts() -> None:
    config = _config(accounts=150, days=100, churn_low_usage=True)
    events = list(iter_events(config))
    # Low-usage churn comes up to 7 weeks after the first month: judge the accounts whose first
    # month ended early enough for it to show.
    reports = _first_month_reports(events, config.start_ms, END_MS - 49 * DAY_MS)
    paid_types = ("subscription.started", "subscription.renewed")
    paying = {e["account_id"] for e in events if e["type"] in paid_types}
    churned = {e["account_id"] for e in events if e["type"] == "subscription.churned"}
    low = {a for a in paying & set(reports) if reports[a] < LOW_USAGE_REPORTS}
    high = paying & set(reports) - low
    assert len(low) >= 8 and len(high) >= 20
    low_rate = len(churned & low) / len(low)
    high_rate = len(churned & high) / len(high)
    assert low_rate > 0.35
    assert low_rate > 4 * high_rate
    # Churned accounts stop using the product.
    last_use: dict[str, int] = {}
    churn_ms = {e["account_id"]: _ms(e) for e in events if e["type"] == "subscription.churned"}
    for event in events:
        if event["type"] in USER_TYPES:
            last_use[event["account_id"]] = _ms(event)
    assert all(last_use.get(a, 0) < churn_ms[a] for a in churned)

    without = list(iter_events(_config(accounts=150, days=100)))
    assert sum(e["type"] == "subscription.churned" for e in without) < len(churned) / 2


def test_weekdays_are_busier_than_weekends_and_days_than_nights(
    stream: list[tuple[bytes | None, bytes]],
) -> None:
    by_weekday: Counter[int] = Counter()
    by_hour: Counter[int] = Counter()
    days_of_weekday: defaultdict[int, set[int]] = defaultdict(set)
    for _, value in stream:
        event = orjson.loads(value)
        if event["type"] not in USER_TYPES or event["region"] != "na":
            continue
        moment = datetime.fromtimestamp(_ms(event) / 1000, tz=UTC)
        by_weekday[moment.weekday()] += 1
        by_hour[(moment.hour - 5) % 24] += 1  # local time in North America
        days_of_weekday[moment.weekday()].add(_ms(event) // DAY_MS)
    per_day = {d: by_weekday[d] / len(days_of_weekday[d]) for d in by_weekday}
    assert min(per_day[d] for d in range(5)) > 2 * max(per_day[5], per_day[6])
    assert by_hour[10] > 5 * by_hour[3]


def test_accounts_grow_over_the_history() -> None:
    config = _config(accounts=100, days=60)
    active_by_week: defaultdict[int, set[str]] = defaultdict(set)
    for event in iter_events(config):
        if event["type"] in USER_TYPES:
            active_by_week[(_ms(event) - config.start_ms) // (7 * DAY_MS)].add(event["account_id"])
    assert len(active_by_week[7]) > 1.3 * len(active_by_week[0])


def test_engagement_is_uneven_across_users(stream: list[tuple[bytes | None, bytes]]) -> None:
    per_user = Counter(
        event["user_id"]
        for event in (orjson.loads(v) for _, v in stream)
        if event["type"] in USER_TYPES
    )
    counts = sorted(per_user.values(), reverse=True)
    top_tenth = sum(counts[: len(counts) // 10])
    assert top_tenth > 0.35 * sum(counts), "a few power users make a large share of the usage"


def test_disorder_shuffles_locally_and_keeps_every_event() -> None:
    ordered = _values(_config(accounts=20, days=3))
    shuffled = _values(_config(accounts=20, days=3, disorder_ms=60_000))
    assert shuffled != ordered
    assert sorted(shuffled) == sorted(ordered)
    latest = 0
    for value in shuffled:
        ts = _ms(orjson.loads(value))
        assert ts > latest - 60_000
        latest = max(latest, ts)


def test_events_alone_sizes_a_history_ending_near_the_end() -> None:
    config = plan_history(seed=5, accounts=30, max_events=20_000, end_ms=END_MS)
    values = _values(config)
    assert len(values) == 20_000
    last_ms = _ms(orjson.loads(values[-1]))
    history_ms = config.end_ms - config.start_ms
    assert last_ms > config.end_ms - 0.35 * history_ms


def test_follow_goes_on_with_events_stamped_now() -> None:
    stream = RecordStream(_config(accounts=10, days=1), follow=True)
    history = sum(1 for _ in RecordStream(_config(accounts=10, days=1)))
    values = [value for _, value in islice(stream, history + 50)]
    before = time.time_ns() // 1_000_000
    live = [orjson.loads(v) for v in values[history:]]
    assert stream.is_live
    assert all(abs(_ms(e) - before) < 60_000 for e in live)
    assert len({orjson.loads(v)["event_id"] for v in values}) == len(values)


def test_cli_writes_json_lines_to_stdout() -> None:
    args = ["generate", "--seed", "3", "--accounts", "10", "--days", "2", "--end", END]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) > 100
    assert all(isinstance(parse_event(line, now_ms=NOW_MS), Event) for line in lines)
    assert "wrote" in result.stderr


def test_cli_stops_after_events_and_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    args = ["generate", "--seed", "3", "--events", "500", "--end", END, "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--duplicates", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(out.read_bytes().splitlines()) == 500
    again = tmp_path / "again.jsonl"
    CliRunner().invoke(main, [*args[:-1], str(again), "--duplicates", "2", "--no-progress"])
    assert again.read_bytes() == out.read_bytes()


def test_cli_drop_option(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    args = ["generate", "--accounts", "30", "--days", "14", "--end", END, "--out", str(out)]
    drop = ["--drop", "100", "--drop-from", "2026-11-13", "--drop-segment", "plan=pro"]
    result = CliRunner().invoke(main, [*args, *drop])
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    late_pro_usage = [
        e
        for e in events
        if e.get("plan") == "pro"
        and e["type"] in USER_TYPES - {"signup"}
        and e["timestamp"] >= "2026-11-13"
    ]
    assert any(e.get("plan") == "pro" for e in events)
    assert late_pro_usage == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop", "20"], "--drop-from"),
        (["--drop-from", "2026-11-01"], "--drop PCT"),
        (["--drop", "20", "--drop-from", "2026-11-01", "--drop-segment", "tier=x"], "tier"),
        (["--drop", "20", "--drop-from", "2026-11-01", "--drop-segment", "plan"], "field=value"),
        (["--start", "2026-11-01T00:00:00"], "no zone"),
        (["--start", "2026-11-01", "--end", END, "--days", "3"], "at most two"),
        (["--out", "x.jsonl", "--topic", "t"], "exclude"),
    ],
)
def test_cli_rejects_bad_options_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["generate", *args])
    assert result.exit_code == 2
    assert message in result.output
