"""The scorecard as JSON: every number behind the table and the report."""

from __future__ import annotations

from typing import Any

from processor.analysis.evaluate.panel import MONTH_MS, WEEK_MS, Panel
from processor.analysis.evaluate.scorecard import CandidateResult, Scorecard, Settings
from processor.analysis.evaluate.stats import Effect
from processor.events import format_time


def effect_json(effect: Effect) -> dict[str, Any]:
    return {
        "effect": effect.estimate,
        "ci_low": effect.low,
        "ci_high": effect.high,
        "significant": effect.significant,
        "reached": effect.reached_rate,
        "not_reached": effect.other_rate,
        "reached_n": effect.reached_n,
        "not_reached_n": effect.other_n,
    }


def candidate_json(result: CandidateResult, panel: Panel) -> dict[str, Any]:
    lead, move = result.leading, result.movability
    return {
        "metric": result.name,
        "title": result.title,
        "tier": result.tier,
        "score": result.overall,
        "scores": result.scores,
        "eligible": result.eligible,
        "core_value": effect_json(result.core_value),
        "frequency": {
            "weeks_moved": result.frequency.weeks_moved,
            "weeks_compared": result.frequency.weeks_compared,
            "weekly_reach": result.frequency.weekly_reach,
        },
        "leading_indicator": {
            "months": lead.months,
            "retention": effect_json(lead.retention),
            "expansion": effect_json(lead.expansion),
            "cohorts": [
                {
                    "cohort": c.label,
                    "accounts": c.accounts,
                    "attained": c.attained,
                    "retained_attained": c.retained_attained,
                    "retained_not_attained": c.retained_other,
                }
                for c in lead.cohorts
            ],
            "retention_curve": {"attained": lead.curve_attained, "not_attained": lead.curve_other},
        },
        "movability": {
            "largest_move_in_a_quarter": move.move,
            "from_week_ending": format_time(panel.checkpoints[move.from_index]),
            "to_week_ending": format_time(panel.checkpoints[move.to_index]),
        },
        "flags": {
            "concentration": result.flags.concentrated,
            "top_account": result.flags.top_account,
            "top_account_share": result.flags.top_share,
            "vanity": result.flags.vanity,
            "vanity_reasons": result.flags.vanity_reasons,
        },
        "weekly_series": result_series(result, panel),
    }


def result_series(result: CandidateResult, panel: Panel) -> list[dict[str, Any]]:
    return [
        {"week_ending": format_time(t), "value": v}
        for t, v in zip(panel.checkpoints, panel.totals[result.name], strict=True)
    ]


def history_needs(panel: Panel, settings: Settings) -> dict[str, str]:
    """Parts of the test the history is too short for, each with what it needs and has."""
    have_months = (panel.end_ms - panel.start_ms) / MONTH_MS
    have_weeks = (panel.end_ms - panel.start_ms) / WEEK_MS
    needs = {}
    if have_months < settings.months + 1:
        needs["leading_indicator"] = (
            f"needs {settings.months + 1} months of history (a first month and "
            f"{settings.months} more, --months {settings.months}); this has {have_months:.1f}"
        )
    if have_weeks < settings.retention_weeks + 1:
        needs["core_value"] = (
            f"needs {settings.retention_weeks + 1} weeks of history (a week and "
            f"{settings.retention_weeks} more, --retention-weeks {settings.retention_weeks}); "
            f"this has {have_weeks:.1f}"
        )
    return needs


def scorecard_json(card: Scorecard, panel: Panel, settings: Settings) -> dict[str, Any]:
    return {
        "history": {"from": format_time(panel.start_ms), "to": format_time(panel.end_ms)},
        "weeks": len(panel.checkpoints),
        "accounts": len(panel.accounts),
        "settings": {
            "months": settings.months,
            "retention_weeks": settings.retention_weeks,
            "resamples": settings.resamples,
            "seed": settings.seed,
        },
        "recommendation": {
            "north_star": card.north_star,
            "backup": card.backup,
            "declared_north_star": card.declared_north_star,
            "declared_backup": card.declared_backup,
            "reasons": card.reasons,
        },
        "history_needs": history_needs(panel, settings),
        "candidates": [candidate_json(r, panel) for r in card.candidates],
    }
