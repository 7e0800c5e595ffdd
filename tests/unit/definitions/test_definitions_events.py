"""The `events:` schema (CONTRACT §2) and `nsm validate --events`: unknown event types and fields
in metrics, keys and segments, with a did-you-mean, against the declared types or a sample."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from processor.cli import main
from processor.definitions import load_definitions
from tests.unit.definitions.support import Writer, errors_of, line_of, metrics, problems_of

EVENTS = """\
events:
  - type: report.sent
    description: A report reached its recipients.
    fields: [account_id, user_id, plan, region, report_id, recipients]
  - type: seat.active
    fields: [account_id, seat, context.region]
"""

TYPO = metrics(
    """
    - name: typo_type
      tier: diagnostic
      parent: weekly_active_accounts
      window: 7d
      aggregate: {event: report.snt, count: true}
    - name: typo_key
      tier: diagnostic
      parent: weekly_active_accounts
      window: 7d
      segments: [plan, nonexistent_field]
      entities:
        key: acount_id
        all:
          - event: [report.sent, seat.active]
            where: {plann: pro}
            distinct: user_id
            at_least: 2
    """,
    base=True,
)


def test_undeclared_types_and_fields_are_errors_at_their_lines_with_a_did_you_mean(
    write: Writer,
):
    write("events.yaml", EVENTS)
    path = write("product.yaml", TYPO)
    errors = {(p.line, p.message) for p in errors_of(path.parent)}
    assert errors == {
        (
            line_of(TYPO, "report.snt"),
            "metric typo_type: event type 'report.snt' is not declared in events: (did you mean "
            "'report.sent'?): fix the name, or declare the type under events:",
        ),
        (
            line_of(TYPO, "acount_id"),
            "metric typo_key: field 'acount_id' (key) is not a declared field of report.sent, "
            "seat.active (did you mean 'account_id'?): fix the name, or add it to the type's "
            "fields: under events:",
        ),
        (
            line_of(TYPO, "plann"),
            "metric typo_key: field 'plann' (where) is not a declared field of report.sent, "
            "seat.active (did you mean 'plan'?): fix the name, or add it to the type's fields: "
            "under events:",
        ),
        (
            line_of(TYPO, "nonexistent_field"),
            "metric typo_key: field 'nonexistent_field' (segment) is not a declared field of "
            "report.sent, seat.active: fix the name, or add it to the type's fields: under "
            "events:",
        ),
    }


def test_fields_are_named_as_metrics_name_them(write: Writer):
    write("events.yaml", EVENTS)
    path = write(
        "product.yaml",
        metrics("""
            - name: fine
              tier: diagnostic
              parent: weekly_active_accounts
              window: 7d
              segments: [properties.plan, context.region]
              aggregate:
                event: "*"
                where: {event_id: {exists: true}, properties.report_id: {exists: true}}
                distinct: user_id
            - name: seats
              tier: diagnostic
              parent: weekly_active_accounts
              window: 7d
              aggregate: {event: seat.active, where: {plan: pro}, count: true}
        """),
    )
    errors = [p.message for p in errors_of(path.parent)]
    # `plan` is a field of report.sent, not of seat.active: the one `seats` reads.
    assert errors == [
        "metric seats: field 'plan' (where) is not a declared field of seat.active: fix the "
        "name, or add it to the type's fields: under events:"
    ]


def test_without_declared_events_nothing_is_held_to_them(write: Writer):
    path = write("product.yaml", TYPO)
    assert errors_of(path.parent) == []


def test_a_file_may_hold_only_events_and_the_catalog_keeps_them(write: Writer):
    write("events.yaml", EVENTS)
    path = write("product.yaml", metrics())
    catalog = load_definitions(path.parent)
    assert list(catalog.events) == ["report.sent", "seat.active"]
    assert catalog.events["report.sent"].carries("properties.report_id")
    assert catalog.events["seat.active"].carries("context.region")
    assert not catalog.events["seat.active"].carries("context")


def test_event_type_entries_are_checked(write: Writer):
    text = EVENTS + "  - type: report.sent\n    fields: [x]\n  - type: '*'\n  - tpye: a.b\n"
    path = write("events.yaml", text)
    write("product.yaml", metrics())
    found = {(p.line, p.message) for p in problems_of(path.parent)}
    assert (
        line_of(text, "type: report.sent", 2),
        "event type report.sent is declared twice (first at "
        f"{path}:{line_of(text, 'type: report.sent')}): declare each type once, with all its "
        "fields",
    ) in found
    messages = " / ".join(m for _, m in found)
    assert "'*' means any type in a metric" in messages
    assert "unknown key: an event type has type, description and fields" in messages


# ---- nsm validate --events ---------------------------------------------------------------------


def sample(*events: dict[str, object]) -> bytes:
    return b"\n".join(orjson.dumps(e) for e in events) + b"\nnot json\n"


SAMPLE = sample(
    *[{"type": "report.sent", "timestamp": 1, "account_id": "a", "plan": "pro"}] * 3,
    {"type": "report.sent", "timestamp": 1, "account_id": "b", "properties": {"region": "eu"}},
    {"type": "page.viewed", "timestamp": 1, "account_id": "a"},
)


def validate(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", *args], input=stdin)
    return result.exit_code, result.output


def test_validate_events_reports_types_and_fields_no_event_carries_with_counts(write: Writer):
    text = metrics("""
        - name: views
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          segments: [region, plann]
          aggregate: {event: [page.view, report.sent], count: true}
    """)
    path = write("product.yaml", text)
    code, output = validate(str(path.parent), "--events", "-", stdin=SAMPLE)
    assert code == 1
    lines = output.splitlines()
    assert (
        f"{path}:{line_of(text, 'page.view')}: metric views: no event in <stdin> has type "
        "'page.view' (5 events of 2 types read) (did you mean 'page.viewed'?)"
    ) in lines
    assert (
        f"{path}:{line_of(text, 'plann')}: metric views: field 'plann' (segment): none of the 4 "
        "report.sent events in <stdin> carries it (did you mean 'plan'?)"
    ) in lines
    # `region` is in the properties of one event: carried, as a metric looks it up.
    assert not any("'region'" in line for line in lines)
    assert lines[-1].endswith(
        "<stdin>: 5 events of 2 types (1 line not an event); 2 errors, 0 warnings"
    )


def test_validate_events_warns_of_declared_types_and_fields_the_sample_lacks(write: Writer):
    write("events.yaml", EVENTS)
    path = write("product.yaml", metrics())
    events_file = path.parent.parent / "sample.jsonl"
    events_file.write_bytes(SAMPLE)
    code, output = validate(str(path.parent), "--events", str(events_file))
    assert code == 0, output
    assert "event type seat.active: declared, but no event in" in output
    assert "event type report.sent: field 'user_id' is declared, but none of its 4 events" in output
    assert (
        f"{events_file}:5: warning: 1 events of type 'page.viewed' are not declared in events:"
        in output
    )


def test_the_example_definitions_declare_the_generators_events(tmp_path):
    from processor.generate import RecordStream, plan_history

    config = plan_history(seed=3, accounts=60, days=90, max_events=None, end_ms=1_795_168_800_000)
    lines = [value for _, value in RecordStream(config)]
    (tmp_path / "sample.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code, output = validate("definitions", "--events", str(tmp_path / "sample.jsonl"))
    assert code == 0, output
    assert "16 event types declared" in output and "0 warnings" in output
