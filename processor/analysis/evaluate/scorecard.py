"""Scores, ranking and the recommendation of one north star and one backup.

Each part scores from 0 to 1; the overall score weighs them by what a north star is for: above
all it must lead retention (leading indicator, core value), then move often and be movable.

- Effects (core value, leading indicator): a retention difference of 25 points or more scores 1,
  proportionally below; halved when the confidence interval includes 0; 0 when not measurable.
- Frequency: the mean of the share of weeks it moved and of its weekly reach (a quarter of the
  active accounts or more scores 1).
- Movability: a move of 20% or more within a quarter scores 1, proportionally below.

A vanity flag halves the score and keeps the metric out of the recommendation; a concentration
flag takes a fifth off. The backup is the best other eligible candidate that does not rest on the
very same event types, so that it still works when the north star's tracking breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processor.analysis.evaluate.criteria import (
    Flags,
    Frequency,
    Leading,
    Movability,
    core_value,
    flags,
    frequency,
    leading_indicator,
    movability,
)
from processor.analysis.evaluate.panel import Panel
from processor.analysis.evaluate.stats import Effect
from processor.definitions.formula import parse_formula
from processor.definitions.model import Catalog, Metric

WEIGHTS = {"leading": 0.35, "core_value": 0.30, "frequency": 0.15, "movability": 0.20}
FULL_EFFECT = 0.25
FULL_REACH = 0.25
FULL_MOVE = 0.20
VANITY_FACTOR = 0.5
CONCENTRATION_FACTOR = 0.8


@dataclass(frozen=True)
class Settings:
    months: int = 6
    retention_weeks: int = 8
    resamples: int = 1000
    seed: int = 0


@dataclass
class CandidateResult:
    name: str
    title: str
    tier: str
    core_value: Effect
    frequency: Frequency
    leading: Leading
    movability: Movability
    flags: Flags
    scores: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0

    @property
    def eligible(self) -> bool:
        return not self.flags.vanity and (
            self.leading.retention.estimate is not None or self.core_value.estimate is not None
        )


@dataclass
class Scorecard:
    candidates: list[CandidateResult]  # best first
    north_star: str | None
    backup: str | None
    reasons: list[str]
    # What the definitions declare (a north star and the one with `backup_for` it), to show
    # beside the recommendation.
    declared_north_star: str | None = None
    declared_backup: str | None = None


def declared(catalog: Catalog) -> tuple[str | None, str | None]:
    """The definitions' own north star (the first that backs up no other) and its backup."""
    stars = catalog.north_stars()
    primary = next(
        (m.name for m in stars if m.backup_for is None or m.backup_for not in catalog.metrics),
        None,
    )
    backup = next((m.name for m in stars if primary and m.backup_for == primary), None)
    return primary, backup


def effect_score(effect: Effect) -> float:
    if effect.estimate is None:
        return 0.0
    score = min(1.0, max(0.0, effect.estimate / FULL_EFFECT))
    return score if effect.significant else score / 2


def _score(result: CandidateResult) -> None:
    reach = result.frequency.weekly_reach or 0.0
    move = result.movability.move or 0.0
    result.scores = {
        "leading": effect_score(result.leading.retention),
        "core_value": effect_score(result.core_value),
        "frequency": (result.frequency.moved_share + min(1.0, reach / FULL_REACH)) / 2,
        "movability": min(1.0, move / FULL_MOVE),
    }
    overall = sum(WEIGHTS[part] * score for part, score in result.scores.items())
    if result.flags.vanity:
        overall *= VANITY_FACTOR
    if result.flags.concentrated:
        overall *= CONCENTRATION_FACTOR
    result.overall = overall


def event_types(catalog: Catalog, metric: Metric) -> frozenset[str]:
    if metric.entities is not None:
        return frozenset(t for c in metric.entities.all for t in c.event)
    if metric.aggregate is not None:
        return frozenset(metric.aggregate.event)
    assert metric.formula is not None
    found: frozenset[str] = frozenset()
    for operand in parse_formula(metric.formula).operands:
        found |= event_types(catalog, catalog[operand])
    return found


def evaluate_candidates(
    panel: Panel, catalog: Catalog, candidates: list[str], settings: Settings
) -> Scorecard:
    results = []
    for index, name in enumerate(candidates):
        metric = catalog[name]
        seed = settings.seed + 7919 * index  # its own stream per candidate, reproducible
        result = CandidateResult(
            name=name,
            title=metric.title or name,
            tier=metric.tier,
            core_value=core_value(panel, name, settings.retention_weeks, settings.resamples, seed),
            frequency=frequency(panel, name),
            leading=leading_indicator(panel, name, settings.months, settings.resamples, seed),
            movability=movability(panel, name),
            flags=flags(panel, metric),
        )
        _score(result)
        results.append(result)
    results.sort(key=lambda r: (-r.overall, r.name))
    return _recommend(results, catalog)


def _recommend(results: list[CandidateResult], catalog: Catalog) -> Scorecard:
    eligible = [r for r in results if r.eligible]
    reasons = []
    if not eligible:
        reasons.append(
            "No candidate can be recommended: none has a measurable link to retention without a "
            "vanity flag. Use a longer history, or more accounts."
        )
        return Scorecard(results, None, None, reasons, *declared(catalog))
    best = eligible[0]
    reasons.append(f"{best.name} scores highest ({best.overall:.2f}) of the eligible candidates.")
    best_types = event_types(catalog, catalog[best.name])
    others = eligible[1:]
    independent = [r for r in others if event_types(catalog, catalog[r.name]) != best_types]
    pool = independent or others
    backup = pool[0] if pool else None
    if backup is not None:
        why = "" if backup in independent else " (it rests on the same events: no better choice)"
        reasons.append(f"{backup.name} is the best other candidate ({backup.overall:.2f}){why}.")
    for result in results:
        if result.flags.vanity:
            reasons.append(f"{result.name} is left out: {'; '.join(result.flags.vanity_reasons)}.")
    declared_star, declared_backup = declared(catalog)
    chosen = None if backup is None else backup.name
    if declared_backup is not None and chosen != declared_backup:
        scores = {r.name: r.overall for r in results}
        theirs = (
            f" (score {scores[declared_backup]:.2f})" if declared_backup in scores else
            " (not among the candidates tested)"
        )  # fmt: skip
        reasons.append(
            f"The definitions declare {declared_backup}{theirs} as the backup of "
            f"{declared_star}; {chosen or 'no candidate'} is recommended instead."
        )
    return Scorecard(results, best.name, chosen, reasons, declared_star, declared_backup)
