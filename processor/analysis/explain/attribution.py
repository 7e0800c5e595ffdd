"""How the change of a metric splits over the values of one segment field.

Additive metrics (entity counts, event counts, sums) split exactly: the total is the sum of the
segment values, so each value's change is its contribution, and its share of the change can be
set against its share of the starting value. A value that holds much more of the change than of
the base is where the move happened (`excess`).

Ratios `a / b` (conversion rate, ROAS) do not add up over segments. With per-segment rates
`r = a_s / b_s` and weights `w = b_s / B` the total is `R = Σ w r`, and its change splits exactly
into three parts (the standard shift-share decomposition, at the old weights and the old rates):

    rate effect        Σ w1 (r2 - r1)          the segments converted better or worse
    mix effect         Σ (w2 - w1) r1          the denominator moved between segments
    interaction        Σ (w2 - w1) (r2 - r1)   both at once, kept apart rather than hidden

A segment with no denominator at one of the two times has no rate there: its whole contribution
(entering `w2 r2`, leaving `-w1 r1`) is composition, so it goes to the mix effect. Numerator
without any denominator (revenue of organic accounts in ROAS) is part of `A / B` but of no
segment rate; its change is reported as `unmatched`, so the four parts add up to `R2 - R1`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Contribution:
    label: str
    before: float | None  # for a ratio's segment, its rate; None where it has none
    after: float | None
    change: float  # this value's part of the change of the whole
    relative: float | None  # change / before; None from 0
    share_of_change: float | None  # change / the change of the whole field; None when it is 0
    share_of_base: float | None  # before / the field's total before; None when that is 0
    # The change beyond what the value would have done moving in proportion with the whole:
    # `change - share_of_base * total change`. Well defined even when the whole hardly moved
    # (where shares of the change blow up), so it picks the one segment named in the summary.
    unexpected: float = 0.0

    @property
    def excess(self) -> float | None:
        """How much more of the change than of the base this value holds."""
        if self.share_of_change is None:
            return None
        return self.share_of_change - (self.share_of_base or 0.0)


def _relative(before: float, after: float) -> float | None:
    return None if before == 0 else (after - before) / abs(before)


def additive_contributions(
    before: Mapping[str, float], after: Mapping[str, float]
) -> list[Contribution]:
    """Each value's contribution, the largest either way first.

    A value listed at one time only counts 0 at the other (it had no entity or event there).
    """
    labels = sorted(set(before) | set(after))
    total_before = sum(before.values())
    total_change = sum(after.values()) - total_before
    rows = []
    for name in labels:
        one, two = before.get(name, 0.0), after.get(name, 0.0)
        base = None if total_before == 0 else one / total_before
        rows.append(
            Contribution(
                label=name,
                before=one,
                after=two,
                change=two - one,
                relative=_relative(one, two),
                share_of_change=None if total_change == 0 else (two - one) / total_change,
                share_of_base=base,
                unexpected=(two - one) - (base or 0.0) * total_change,
            )
        )
    return rank_contributions(rows)


def rank_contributions(rows: list[Contribution]) -> list[Contribution]:
    """By absolute contribution: the values that moved the whole most, either way, come first.

    A value that fell by 9 while the whole grew by 5 is as much of the story as one that rose by
    9: ranking by the signed change (or only the way the whole moved) would bury it.
    """
    return sorted(rows, key=lambda c: (-abs(c.change), c.label))


def extremes(rows: list[Contribution]) -> tuple[Contribution | None, Contribution | None]:
    """The largest decliner and the largest riser among `rows` (None where nothing moved so)."""
    decliner = min(rows, key=lambda c: (c.change, c.label), default=None)
    riser = max(rows, key=lambda c: (c.change, c.label), default=None)
    return (
        decliner if decliner is not None and decliner.change < 0 else None,
        riser if riser is not None and riser.change > 0 else None,
    )


def plain_changes(
    before: Mapping[str, float | None], after: Mapping[str, float | None]
) -> list[Contribution]:
    """Per-value changes of a metric that does not add up over segments (no shares)."""
    rows = []
    for name in sorted(set(before) | set(after)):
        one, two = before.get(name), after.get(name)
        if one is None or two is None:
            continue
        rows.append(Contribution(name, one, two, two - one, _relative(one, two), None, None))
    return rank_contributions(rows)


@dataclass(frozen=True, slots=True)
class RatioSegment:
    label: str
    rate_before: float | None  # None: no denominator at that time
    rate_after: float | None
    weight_before: float
    weight_after: float
    rate_effect: float
    mix_effect: float
    interaction: float
    unmatched: float

    @property
    def total(self) -> float:
        return self.rate_effect + self.mix_effect + self.interaction + self.unmatched


@dataclass(frozen=True, slots=True)
class RatioDecomposition:
    before: float
    after: float
    rate_effect: float
    mix_effect: float
    interaction: float
    unmatched: float
    segments: list[RatioSegment]

    @property
    def change(self) -> float:
        return self.after - self.before


def ratio_decomposition(
    numerator_before: Mapping[str, float],
    denominator_before: Mapping[str, float],
    numerator_after: Mapping[str, float],
    denominator_after: Mapping[str, float],
) -> RatioDecomposition | None:
    """The rate, mix, interaction and unmatched parts of the change of `Σ a / Σ b`.

    None when the denominator's total is 0 at either time (the ratio has no value there).
    """
    labels = sorted(
        set(numerator_before)
        | set(denominator_before)
        | set(numerator_after)
        | set(denominator_after)
    )
    den1, den2 = sum(denominator_before.values()), sum(denominator_after.values())
    if den1 == 0 or den2 == 0:
        return None
    segments = []
    for name in labels:
        a1, b1 = numerator_before.get(name, 0.0), denominator_before.get(name, 0.0)
        a2, b2 = numerator_after.get(name, 0.0), denominator_after.get(name, 0.0)
        w1, w2 = b1 / den1, b2 / den2
        r1 = a1 / b1 if b1 else None
        r2 = a2 / b2 if b2 else None
        rate = mix = interaction = 0.0
        if r1 is not None and r2 is not None:
            rate = w1 * (r2 - r1)
            mix = (w2 - w1) * r1
            interaction = (w2 - w1) * (r2 - r1)
        elif r2 is not None:
            mix = w2 * r2  # entering: all composition
        elif r1 is not None:
            mix = -w1 * r1  # leaving
        unmatched = (0.0 if b2 else a2 / den2) - (0.0 if b1 else a1 / den1)
        segments.append(RatioSegment(name, r1, r2, w1, w2, rate, mix, interaction, unmatched))
    segments.sort(key=lambda s: (-abs(s.total), s.label))
    return RatioDecomposition(
        before=sum(numerator_before.values()) / den1,
        after=sum(numerator_after.values()) / den2,
        rate_effect=sum(s.rate_effect for s in segments),
        mix_effect=sum(s.mix_effect for s in segments),
        interaction=sum(s.interaction for s in segments),
        unmatched=sum(s.unmatched for s in segments),
        segments=segments,
    )
