"""The per-account view of a history: which accounts reach each candidate metric in each week,
which are active, and each account's lifecycle (first activity, churn, invoices).

Which accounts reach a metric comes from the engine itself, so it follows the definitions exactly:
every candidate (and every metric a formula uses) is evaluated broken down by `account_id`, with
no cap on segment values. By the engine's segment rule an entity belongs to the account on its
most recent matching event in the window, so:

- an `entities` metric keyed by `account_id`: the account reaches it when it qualifies (value 1);
- keyed by another entity (workspace, project, integration) whose events carry `account_id`: the
  account's value is the number of its qualifying entities, and it reaches the metric when that
  is at least 1;
- an `aggregate`: the account's own events' count, sum or distinct count; reached when above 0;
- a `formula`: the formula over the account's operand values; reached when above 0.

Breaking down by account changes no total, so the same pass gives each candidate's weekly series.
Weeks are ISO weeks (Monday to Sunday, UTC); a metric is read as of the last millisecond of each
week that the events cover entirely.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from nsm_native import FieldReader

from processor.analysis.source import EventLog, EventsSource
from processor.definitions.formula import parse_formula
from processor.definitions.model import Catalog, Metric

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS
# 1970-01-01 was a Thursday; the first Monday of the epoch is 4 days later.
_FIRST_MONDAY_MS = 4 * DAY_MS
ACCOUNT_FIELD = "account_id"
CHURN_EVENT = "subscription.churned"
INVOICE_EVENT = "invoice.paid"
# An account is retained at T when it has not churned and was active in the 28 days before T.
RETENTION_ACTIVITY_MS = 28 * DAY_MS
UNCAPPED = 10**9


@dataclass(slots=True)
class AccountLife:
    account_id: str
    first_ms: int
    last_ms: int
    active_days: list[int] = field(default_factory=list)  # sorted distinct day numbers
    churned_ms: int | None = None
    invoices: list[tuple[int, float]] = field(default_factory=list)

    def active_between(self, start_ms: int, end_ms: int) -> bool:
        """Any activity on a day after start_ms's day, up to end_ms's day (whole UTC days)."""
        index = bisect_right(self.active_days, end_ms // DAY_MS)
        return index > 0 and self.active_days[index - 1] > start_ms // DAY_MS

    def retained_at(self, at_ms: int) -> bool:
        if self.churned_ms is not None and self.churned_ms <= at_ms:
            return False
        return self.active_between(at_ms - RETENTION_ACTIVITY_MS, at_ms)

    def revenue_between(self, start_ms: int, end_ms: int) -> float:
        return sum(amount for ts, amount in self.invoices if start_ms < ts <= end_ms)


@dataclass
class Panel:
    start_ms: int  # first and last event of the history
    end_ms: int
    checkpoints: list[int]  # the last millisecond of each whole week
    accounts: dict[str, AccountLife]  # the accounts under evaluation
    totals: dict[str, list[float | None]]  # candidate -> its value at each checkpoint
    values: dict[str, list[dict[str, float]]]  # candidate -> per checkpoint, account -> value > 0
    active: list[set[str]]  # per checkpoint, the accounts active in that week

    def reached(self, candidate: str, index: int) -> set[str]:
        return {a for a in self.values[candidate][index] if a in self.accounts}


def week_ends(start_ms: int, end_ms: int) -> list[int]:
    """The last millisecond of every Monday-to-Sunday week inside [start_ms, end_ms]."""
    first_monday = start_ms + (-(start_ms - _FIRST_MONDAY_MS)) % WEEK_MS
    ends = []
    week_end = first_monday + WEEK_MS - 1
    while week_end <= end_ms:
        ends.append(week_end)
        week_end += WEEK_MS
    return ends


def _with_operands(catalog: Catalog, names: Iterable[str]) -> list[str]:
    needed: dict[str, None] = {}

    def visit(name: str) -> None:
        if name in needed:
            return
        needed[name] = None
        metric = catalog[name]
        if metric.formula is not None:
            for operand in parse_formula(metric.formula).operands:
                visit(operand)

    for name in names:
        visit(name)
    return list(needed)


def per_account_catalog(catalog: Catalog, candidates: Iterable[str]) -> Catalog:
    """The candidates and their operands, each broken down by account only, without a cap."""
    metrics: dict[str, Metric] = {}
    for name in _with_operands(catalog, candidates):
        metrics[name] = catalog[name].model_copy(
            update={"segments": [ACCOUNT_FIELD], "max_segment_values": UNCAPPED, "alert": None}
        )
    return Catalog(metrics=metrics)


def account_lives(log: EventLog, active_types: Collection[str] | None) -> dict[str, AccountLife]:
    """Every active account's lifecycle; activity is any event of `active_types` (None: any
    type). Churn is the first `subscription.churned`; revenue the `amount` of `invoice.paid`."""
    lives: dict[str, AccountLife] = {}
    days: dict[str, set[int]] = {}
    churns: dict[str, int] = {}
    invoices: dict[str, list[tuple[int, float]]] = {}
    # The engine reads the fields, as it looks them up and labels them for the metrics.
    fields = FieldReader(["type", ACCOUNT_FIELD, "amount"]).read([item.raw for item in log.events])
    for item, ((event_type, _), (account, _), (_, amount)) in zip(log.events, fields, strict=True):
        if account is None:
            continue
        if event_type == CHURN_EVENT:
            churns.setdefault(account, item.ts_ms)
            continue
        if event_type == INVOICE_EVENT and amount is not None:
            invoices.setdefault(account, []).append((item.ts_ms, amount))
        if active_types is not None and event_type not in active_types:
            continue
        life = lives.get(account)
        if life is None:
            life = lives[account] = AccountLife(account, item.ts_ms, item.ts_ms)
            days[account] = set()
        life.last_ms = item.ts_ms
        days[account].add(item.ts_ms // DAY_MS)
    for account, life in lives.items():
        life.active_days = sorted(days[account])
        life.churned_ms = churns.get(account)
        life.invoices = invoices.get(account, [])
    return lives


def build_panel(
    log: EventLog,
    catalog: Catalog,
    candidates: list[str],
    active_types: Collection[str] | None = None,
    min_active_weeks: int = 2,
) -> Panel:
    """The panel of `candidates` over the whole weeks of the log.

    Accounts active in fewer than `min_active_weeks` of those weeks are left out: a prospect with
    one sales event, or a one-off visit, has no retention to judge.
    """
    if log.first_ms is None or log.last_ms is None:
        raise ValueError("no valid events: nothing to evaluate")
    start_ms, end_ms = log.first_ms, log.last_ms
    checkpoints = week_ends(start_ms, end_ms)
    if len(checkpoints) < 2:
        raise ValueError("the events cover fewer than two whole weeks (Monday to Sunday, UTC)")
    snapshots = EventsSource(log, per_account_catalog(catalog, candidates)).values_at(checkpoints)
    lives = account_lives(log, active_types)
    active = [
        {a for a, life in lives.items() if life.active_between(t - WEEK_MS, t)} for t in checkpoints
    ]
    weeks_active = {a: sum(1 for week in active if a in week) for a in lives}
    accounts = {a: life for a, life in lives.items() if weeks_active[a] >= min_active_weeks}
    totals: dict[str, list[float | None]] = {}
    values: dict[str, list[dict[str, float]]] = {}
    for name in candidates:
        totals[name] = []
        values[name] = []
        for at_ms in checkpoints:
            result = snapshots[at_ms][name]
            totals[name].append(None if result.value is None else float(result.value))
            per_account = result.segments.get(ACCOUNT_FIELD, {})
            values[name].append(
                {a: float(v) for a, v in per_account.items() if v is not None and v > 0}
            )
    return Panel(start_ms, end_ms, checkpoints, accounts, totals, values, active)
