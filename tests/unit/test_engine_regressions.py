"""Minimal cases where the engine once disagreed with docs/semantics.md; expected values by hand."""

from __future__ import annotations

from typing import Any

import pytest

from processor.engine import compute_metrics
from tests.strategies import catalog_of

BASE = 1_795_168_800_000  # 2026-11-20T10:00:00Z


def metric(name: str, **spec: Any) -> dict[str, Any]:
    return {"name": name, "tier": "diagnostic", "window": "4h", **spec}


# s0 = 1e20 + 1e-20 exactly (41 significant digits), s1 = 1e20: both exact sums.
STREAM = [
    {"type": "x", "timestamp": BASE, "amount": 1e20},
    {"type": "x", "timestamp": BASE, "amount": 1e-20},
    {"type": "y", "timestamp": BASE, "amount": 1e20},
]
SUMS = [
    metric("s0", aggregate={"event": "x", "sum": "amount"}),
    metric("s1", aggregate={"event": "y", "sum": "amount"}),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s0 - s1", 1e-20),
        ("(s0 + 0) - s1", 1e-20),  # + is exact: adding 0 must not round s0 to 28 digits
        ("s0 * 1 - s1", 1e-20),  # * is exact too
        ("s0 * s0 - s1 * s1", 2.0),  # 2 + 1e-40 exactly
        ("1 / (s0 * 1 - s1)", 1e20),  # the denominator is 1e-20, not zero: a value, not null
    ],
)
def test_formula_addition_and_multiplication_are_exact(text: str, expected: float) -> None:
    """docs/semantics.md, Formulas: "Arithmetic is exact decimal (28 significant digits for
    division)". Only a division may round; + - * over exact sums must not."""
    catalog = catalog_of([*SUMS, metric("f", formula=text)])
    got = compute_metrics(STREAM, catalog, at_ms=BASE, now_ms=BASE).to_json()["metrics"]
    assert got["s0"]["value"] == 1e20
    assert got["f"]["value"] == expected


HOUR = 3_600_000
COUNT = metric("m", aggregate={"event": "x", "count": True})


def test_a_repeat_before_the_originals_horizon_is_a_duplicate() -> None:
    """docs/semantics.md, Dedup: the original (applied, out of the window as of T) keeps its id
    until its horizon, so a repeat timestamped before then is ignored whatever its content."""
    stream = [
        {"type": "x", "timestamp": BASE - 4 * HOUR, "event_id": "e"},  # horizon: BASE
        {"type": "x", "timestamp": BASE - 1, "event_id": "e"},  # before the horizon: a repeat
    ]
    result = compute_metrics(stream, catalog_of([COUNT]), at_ms=BASE, now_ms=BASE)
    assert result.to_json()["metrics"]["m"]["value"] == 0
    assert (result.duplicates, result.applied) == (1, 1)


def test_an_id_met_again_after_the_horizon_is_a_new_event() -> None:
    """An id reused after its original left every window counts, and `--at` follows it."""
    stream = [
        {"type": "x", "timestamp": BASE - 10 * HOUR, "event_id": "e"},  # horizon: BASE - 6h
        {"type": "x", "timestamp": BASE, "event_id": "e"},
    ]
    result = compute_metrics(stream, catalog_of([COUNT]), now_ms=BASE)
    assert (result.duplicates, result.applied) == (0, 2)
    assert result.to_json() == {
        "as_of": "2026-11-20T10:00:00Z",
        "metrics": {"m": {"value": 1, "segments": {}}},
    }
