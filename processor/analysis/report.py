"""The `nsm evaluate` HTML report: one self-contained file, charts inline as SVG, no scripts.

Top to bottom: the recommendation, the scorecard, whether each candidate leads retention (effect
sizes with confidence intervals), cohort retention curves, and each candidate's weekly series.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from processor.analysis.charts import (
    PALETTE,
    Interval,
    Series,
    interval_chart,
    line_chart,
    score_bar,
)
from processor.analysis.evaluate.export import history_needs
from processor.analysis.evaluate.panel import Panel
from processor.analysis.evaluate.scorecard import CandidateResult, Scorecard, Settings

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 0 auto; max-width: 1320px; padding: 24px; background: #f9fafb; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.sub { color: #6b7280; margin-bottom: 16px; }
.pick { display: flex; gap: 16px; margin: 16px 0; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 14px 18px; }
.pick .card { flex: 1; }
.pick .label { color: #6b7280; font-size: 12px; text-transform: uppercase; }
.pick .name { font-size: 20px; font-weight: 700; } .ns { border-left: 6px solid #2563eb; }
.backup { border-left: 6px solid #16a34a; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 6px 8px; text-align: left;
         vertical-align: middle; }
th { font-size: 12px; color: #6b7280; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.flag { display: inline-block; background: #fee2e2; color: #991b1b; border-radius: 4px;
        padding: 0 6px; margin-right: 4px; font-size: 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid .card { padding: 8px; }
ul.reasons { margin: 6px 0 0 18px; padding: 0; }
.note { color: #92400e; background: #fffbeb; border-color: #fcd34d; margin: 8px 0; }
.declared { color: #6b7280; font-size: 13px; margin-top: 2px; }
"""


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.0f} pt" if signed else f"{value * 100:.0f}%"


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _week_labels(panel: Panel) -> list[str]:
    return [
        datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%-d %b %Y") for t in panel.checkpoints
    ]


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%-d %b %Y")


def _note(text: str) -> str:
    return f'<div class="card note">{escape(text)}</div>'


def _pick(card: Scorecard) -> str:
    def box(kind: str, label: str, name: str | None, declared: str | None) -> str:
        if declared is None:
            said = ""
        elif declared == name:
            said = '<div class="declared">as the definitions declare</div>'
        else:
            said = f'<div class="declared">the definitions declare: <b>{escape(declared)}</b></div>'
        return (
            f'<div class="card {kind}"><div class="label">{label}</div>'
            f'<div class="name">{escape(name or "none")}</div>{said}</div>'
        )

    reasons = "".join(f"<li>{escape(r)}</li>" for r in card.reasons)
    return (
        f'<div class="pick">'
        f"{box('ns', 'Recommended north star', card.north_star, card.declared_north_star)}"
        f"{box('backup', 'Recommended backup', card.backup, card.declared_backup)}</div>"
        f'<div class="card"><b>Why</b><ul class="reasons">{reasons}</ul></div>'
    )


def _effect_cell(estimate: float | None, low: float | None, high: float | None, need: str) -> str:
    if estimate is None:
        why = "history too short (below)" if need else "too few accounts"
        return f"<small>not measurable: {why}</small>"
    return f"{_pct(estimate, True)} <small>[{_pct(low, True)}, {_pct(high, True)}]</small>"


def _scorecard_table(card: Scorecard, colors: dict[str, str], needs: dict[str, str]) -> str:
    head = (
        "<tr><th>#</th><th>candidate</th><th>score</th><th>leading indicator</th>"
        "<th>core value</th><th>frequency</th><th>movability</th><th>flags</th></tr>"
    )
    rows = []
    for rank, r in enumerate(card.candidates, start=1):
        flags = "".join(
            f'<span class="flag">{escape(text)}</span>'
            for text in (["vanity"] if r.flags.vanity else [])
            + (
                [f"concentration: {r.flags.top_account} {_pct(r.flags.top_share)}"]
                if r.flags.concentrated
                else []
            )
        )
        lead, core = r.leading.retention, r.core_value
        lead_need, core_need = needs.get("leading_indicator", ""), needs.get("core_value", "")
        freq = r.frequency
        rows.append(
            f'<tr data-candidate="{escape(r.name)}"><td class="num">{rank}</td>'
            f"<td><b>{escape(r.name)}</b><br><small>{escape(r.title)}</small></td>"
            f"<td>{score_bar(r.overall, colors[r.name])} {r.overall:.2f}</td>"
            f"<td>{score_bar(r.scores['leading'], colors[r.name])} "
            f"{_effect_cell(lead.estimate, lead.low, lead.high, lead_need)}"
            "</td>"
            f"<td>{score_bar(r.scores['core_value'], colors[r.name])} "
            f"{_effect_cell(core.estimate, core.low, core.high, core_need)}"
            "</td>"
            f"<td>{score_bar(r.scores['frequency'], colors[r.name])} moved "
            f"{freq.weeks_moved}/{freq.weeks_compared} wk, reach {_pct(freq.weekly_reach)}</td>"
            f"<td>{score_bar(r.scores['movability'], colors[r.name])} "
            f"{_pct(r.movability.move)}</td><td>{flags}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _effects(
    card: Scorecard, colors: dict[str, str], months: int, weeks: int, needs: dict[str, str]
) -> str:
    notes = [f"{part.replace('_', ' ').capitalize()} {need}." for part, need in needs.items()]
    if all(
        r.leading.retention.estimate is None and r.core_value.estimate is None
        for r in card.candidates
    ):
        return _note(
            "Neither effect can be measured on this history: "
            + (" ".join(notes) or "too few accounts reach or miss the metrics.")
        )
    lead = [
        Interval(
            r.name,
            r.leading.retention.estimate,
            r.leading.retention.low,
            r.leading.retention.high,
            colors[r.name],
        )
        for r in card.candidates
    ]
    core = [
        Interval(r.name, r.core_value.estimate, r.core_value.low, r.core_value.high, colors[r.name])
        for r in card.candidates
    ]
    charts = [
        interval_chart(
            "leading-effects",
            f"Month-{months} retention: attained month 1 minus not (95% CI)",
            lead,
        ),
        interval_chart(
            "core-value-effects",
            f"Retained {weeks} weeks later: reaching it minus not (95% CI)",
            core,
        ),
    ]
    # A chart where no candidate is measurable says nothing: the note under the scorecard does.
    shown = [
        chart
        for chart, rows in zip(charts, (lead, core), strict=True)
        if any(r.estimate is not None for r in rows)
    ]
    return '<div class="grid">' + "".join(f'<div class="card">{c}</div>' for c in shown) + "</div>"


def _curves(card: Scorecard, months: int, needs: dict[str, str]) -> str:
    labels = [f"m{m}" for m in range(months + 1)]
    measured = [
        r for r in card.candidates if r.leading.retention.reached_n + r.leading.retention.other_n
    ]
    if not measured:
        need = needs.get("leading_indicator")
        return _note(
            f"Retention by month {need}: no account's first month is {months} months before the "
            "end of the history. Use a longer history, or a smaller --months."
            if need
            else "No account is old enough to follow for "
            f"{months} months after its first month, or none has reached or missed a metric."
        )
    charts = []
    for r in measured:
        lead = r.leading
        reached, other = lead.retention.reached_n, lead.retention.other_n
        series = [
            Series("attained month 1", lead.curve_attained, "#2563eb"),
            Series("did not", lead.curve_other, "#dc2626", dashed=True),
        ]
        series = [s for s, n in zip(series, (reached, other), strict=True) if n]
        title = f"{r.name} ({reached} vs {other} accounts)"
        if not other:
            title = f"{r.name} ({reached} accounts, every one attained it)"
        elif not reached:
            title = f"{r.name} ({other} accounts, none attained it)"
        chart = line_chart(f"curve-{r.name}", title, series, labels, percent=True)
        charts.append(f'<div class="card">{chart}</div>')
    return f'<div class="grid">{"".join(charts)}</div>'


def _series(card: Scorecard, panel: Panel, colors: dict[str, str]) -> str:
    if not panel.checkpoints:
        return _note("The history holds no full week to chart.")
    labels = _week_labels(panel)
    charts = []
    for r in card.candidates:
        series = [Series(r.name, panel.totals[r.name], colors[r.name])]
        charts.append(
            f'<div class="card">{line_chart(f"series-{r.name}", r.title, series, labels)}</div>'
        )
    return f'<div class="grid">{"".join(charts)}</div>'


def _cohort_table(result: CandidateResult, needs: dict[str, str]) -> str:
    if not result.leading.cohorts:
        need = needs.get("leading_indicator", "needs accounts old enough to follow")
        return _note(f"No cohort can be followed yet: the leading indicator {need}.")
    rows = "".join(
        f"<tr><td>{escape(c.label)}</td><td class='num'>{c.accounts}</td>"
        f"<td class='num'>{c.attained}</td>"
        f"<td class='num'>{_pct(c.retained_attained / c.attained if c.attained else None)}</td>"
        f"<td class='num'>{_pct(c.retained_other / (c.accounts - c.attained) if c.accounts > c.attained else None)}</td></tr>"  # noqa: E501
        for c in result.leading.cohorts
    )
    return (
        f"<table><tr><th>cohort (first active)</th><th>accounts</th><th>attained month 1</th>"
        f"<th>retained, attained</th><th>retained, not</th></tr>{rows}</table>"
    )


def render_report(card: Scorecard, panel: Panel, settings: Settings) -> str:
    colors = {r.name: _color(i) for i, r in enumerate(card.candidates)}
    best = next((r for r in card.candidates if r.name == card.north_star), None)
    needs = history_needs(panel, settings)
    notes = "".join(
        _note(f"{part.replace('_', ' ').capitalize()}: {need}.") for part, need in needs.items()
    )
    cohorts = ""
    if best is not None:
        cohorts = f"<h2>Cohorts of {escape(best.name)}</h2>{_cohort_table(best, needs)}"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>North star evaluation</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Is it the right north star?</h1>"
        f'<div class="sub">{len(card.candidates)} candidates tested on '
        f"{_day(panel.start_ms)} – {_day(panel.end_ms)}: {len(panel.checkpoints)} "
        f"weeks, {len(panel.accounts)} accounts. Retention after {settings.months} months for "
        f"the leading indicator, after {settings.retention_weeks} weeks for core value.</div>"
        f"{_pick(card)}<h2>Scorecard</h2>{_scorecard_table(card, colors, needs)}{notes}"
        f"<h2>Does reaching it go with retention?</h2>"
        f"{_effects(card, colors, settings.months, settings.retention_weeks, needs)}"
        f"<h2>Retention by month since first activity</h2>"
        f"{_curves(card, settings.months, needs)}"
        f"<h2>Weekly values</h2>{_series(card, panel, colors)}{cohorts}"
        "</body></html>"
    )
