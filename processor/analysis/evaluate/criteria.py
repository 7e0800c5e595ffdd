"""The four parts of the north-star test, and the two warning flags, for one candidate.

1. Core value: of the accounts active in a week, are those that reach the metric still retained
   `retention_weeks` later more often than those that do not? (account-weeks, pooled)
2. Frequency: in how many weeks the metric moves, and what share of active accounts reach it in a
   typical week.
3. Leading indicator: accounts by cohort (the month they were first active); does reaching the
   metric in most weeks of their first month go with retention, and revenue, `months` later?
4. Movability: the largest relative move within any quarter (13 weeks).

Flags: concentration (one account holds a large share of the value) and vanity (a count of
sign-ups, logins or page views, or a series that does not fall even when activity does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from processor.analysis.evaluate.panel import MONTH_MS, WEEK_MS, AccountLife, Panel
from processor.analysis.evaluate.stats import Effect, Tally, mean_effect, rate_effect
from processor.definitions.model import Metric
from processor.definitions.rules import is_vanity_event

QUARTER_WEEKS = 13
# Reaching the metric in at least this share of the first month's weeks is "attaining" it.
ATTAINMENT_SHARE = 0.5
# One account holding this share of the value on average dominates the metric.
CONCENTRATION_SHARE = 0.25
# A series this long that never falls while activity does is flagged as only going up.
VANITY_MIN_WEEKS = 6


@dataclass(frozen=True)
class Frequency:
    weeks_moved: int
    weeks_compared: int
    weekly_reach: float | None  # mean share of the week's active accounts that reach the metric

    @property
    def moved_share(self) -> float:
        return self.weeks_moved / self.weeks_compared if self.weeks_compared else 0.0


@dataclass(frozen=True)
class Cohort:
    label: str
    accounts: int
    attained: int
    retained_attained: int
    retained_other: int


@dataclass(frozen=True)
class Leading:
    months: int
    retention: Effect
    expansion: Effect  # revenue in month `months` over revenue in month 1, among paying accounts
    cohorts: list[Cohort]
    # Share retained at the end of each month 0..months, for attained and other accounts.
    curve_attained: list[float | None]
    curve_other: list[float | None]


@dataclass(frozen=True)
class Movability:
    move: float | None  # the largest |v_j - v_i| / v_i with j - i <= 13 weeks
    from_index: int
    to_index: int


@dataclass(frozen=True)
class Flags:
    top_account: str | None
    top_share: float | None  # the largest account's mean share of the value
    vanity_reasons: list[str]

    @property
    def concentrated(self) -> bool:
        return self.top_share is not None and self.top_share >= CONCENTRATION_SHARE

    @property
    def vanity(self) -> bool:
        return bool(self.vanity_reasons)


def core_value(panel: Panel, name: str, retention_weeks: int, resamples: int, seed: int) -> Effect:
    horizon_ms = retention_weeks * WEEK_MS
    tallies: dict[str, list[int]] = {a: [0, 0, 0, 0] for a in panel.accounts}
    for index, at_ms in enumerate(panel.checkpoints):
        if at_ms + horizon_ms > panel.end_ms:
            break
        reached = panel.reached(name, index)
        for account in panel.active[index]:
            life = panel.accounts.get(account)
            if life is None or (life.churned_ms is not None and life.churned_ms <= at_ms):
                continue
            tally = tallies[account]
            offset = 0 if account in reached else 2
            tally[offset] += 1
            tally[offset + 1] += life.retained_at(at_ms + horizon_ms)
    units: list[Tally] = [(t[0], t[1], t[2], t[3]) for t in tallies.values() if t[0] or t[2]]
    return rate_effect(units, resamples=resamples, seed=seed)


def frequency(panel: Panel, name: str) -> Frequency:
    series = panel.totals[name]
    pairs = [(a, b) for a, b in pairwise(series) if a is not None and b is not None]
    moved = sum(1 for a, b in pairs if a != b)
    shares = []
    for index, active in enumerate(panel.active):
        evaluated = [a for a in active if a in panel.accounts]
        if evaluated:
            reached = panel.reached(name, index)
            shares.append(sum(1 for a in evaluated if a in reached) / len(evaluated))
    reach = sum(shares) / len(shares) if shares else None
    return Frequency(moved, len(pairs), reach)


def cohort_label(life: AccountLife, start_ms: int) -> str:
    if life.first_ms < start_ms + WEEK_MS:
        # Already a customer when the history starts: judged on its first month in the history.
        return "at start"
    return datetime.fromtimestamp(life.first_ms / 1000, tz=UTC).strftime("%Y-%m")


def _first_month_attained(panel: Panel, name: str, life: AccountLife) -> bool | None:
    weeks = [
        i for i, t in enumerate(panel.checkpoints) if life.first_ms < t <= life.first_ms + MONTH_MS
    ]
    if not weeks:
        return None
    hits = sum(1 for i in weeks if life.account_id in panel.values[name][i])
    return hits / len(weeks) >= ATTAINMENT_SHARE


def leading_indicator(panel: Panel, name: str, months: int, resamples: int, seed: int) -> Leading:
    rows: list[tuple[str, bool, AccountLife]] = []
    for life in panel.accounts.values():
        if life.first_ms + months * MONTH_MS > panel.end_ms:
            continue  # not yet old enough to tell
        attained = _first_month_attained(panel, name, life)
        if attained is not None:
            rows.append((cohort_label(life, panel.start_ms), attained, life))
    outcome_at = [life.first_ms + months * MONTH_MS for _, _, life in rows]
    tallies: list[Tally] = []
    for (_, hit, life), at_ms in zip(rows, outcome_at, strict=True):
        kept = int(life.retained_at(at_ms))
        tallies.append((1, kept, 0, 0) if hit else (0, 0, 1, kept))
    strata = [label for label, _, _ in rows]
    retention = rate_effect(tallies, strata=strata, resamples=resamples, seed=seed)
    measures, measure_strata = [], []
    for (label, hit, life), at_ms in zip(rows, outcome_at, strict=True):
        first = life.revenue_between(life.first_ms - 1, life.first_ms + MONTH_MS)
        if first > 0:
            later = life.revenue_between(at_ms - MONTH_MS, at_ms)
            measures.append((hit, later / first))
            measure_strata.append(label)
    expansion = mean_effect(measures, strata=measure_strata, resamples=resamples, seed=seed + 1)
    return Leading(
        months=months,
        retention=retention,
        expansion=expansion,
        cohorts=_cohorts(rows, outcome_at),
        curve_attained=_curve([life for _, hit, life in rows if hit], months),
        curve_other=_curve([life for _, hit, life in rows if not hit], months),
    )


def _cohorts(rows: list[tuple[str, bool, AccountLife]], outcome_at: list[int]) -> list[Cohort]:
    found: dict[str, list[int]] = {}
    for (label, hit, life), at_ms in zip(rows, outcome_at, strict=True):
        counts = found.setdefault(label, [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += hit
        kept = life.retained_at(at_ms)
        counts[2 if hit else 3] += kept
    order = sorted(found, key=lambda label: "" if label == "at start" else label)
    return [Cohort(label, *found[label]) for label in order]


def _curve(lives: list[AccountLife], months: int) -> list[float | None]:
    if not lives:
        return [None] * (months + 1)
    return [
        sum(1 for life in lives if m == 0 or life.retained_at(life.first_ms + m * MONTH_MS))
        / len(lives)
        for m in range(months + 1)
    ]


def movability(panel: Panel, name: str) -> Movability:
    series = panel.totals[name]
    best = Movability(None, 0, 0)
    for i, first in enumerate(series):
        if not first:
            continue
        for j in range(i + 1, min(len(series), i + QUARTER_WEEKS + 1)):
            later = series[j]
            if later is None:
                continue
            move = abs(later - first) / abs(first)
            if best.move is None or move > best.move:
                best = Movability(move, i, j)
    return best


def flags(panel: Panel, metric: Metric) -> Flags:
    mean_shares: dict[str, float] = {}
    weeks = 0
    for per_account in panel.values[metric.name]:
        total = sum(per_account.values())
        if total <= 0:
            continue
        weeks += 1
        for account, value in per_account.items():
            mean_shares[account] = mean_shares.get(account, 0.0) + value / total
    top_account = min(mean_shares, key=lambda a: (-mean_shares[a], a)) if mean_shares else None
    top_share = mean_shares[top_account] / weeks if top_account is not None else None
    reasons = []
    aggregate = metric.aggregate
    if (
        aggregate is not None
        and aggregate.kind == "count"
        and all(is_vanity_event(t) for t in aggregate.event)
    ):
        reasons.append(f"a count of {', '.join(aggregate.event)} events grows with traffic")
    if _never_falls_when_activity_does(panel, metric.name):
        reasons.append("it never fell, not even in the weeks when fewer accounts were active")
    return Flags(top_account, top_share, reasons)


def _never_falls_when_activity_does(panel: Panel, name: str) -> bool:
    """A metric that only goes up: it never fell in VANITY_MIN_WEEKS or more, although the number
    of active accounts did fall in some week. A growing business's north star may rise for
    months; one that cannot fall when activity does measures accumulation, not value."""
    series = panel.totals[name]
    if sum(1 for v in series if v is not None) < VANITY_MIN_WEEKS:
        return False
    active = [len(week) for week in panel.active]
    activity_fell = any(b < a for a, b in pairwise(active))
    pairs = [(a, b) for a, b in pairwise(series) if a is not None and b is not None]
    return activity_fell and all(b >= a for a, b in pairs) and pairs[-1][1] > pairs[0][0]
