"""Durations as written in definitions and options: `<int><unit>` with unit one of s m h d w."""

from __future__ import annotations

import re

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^([1-9][0-9]*)([smhdw])$")


def parse_duration_ms(text: str) -> int:
    """The duration in milliseconds; ValueError says what a valid one looks like."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: write a positive integer followed by one of "
            "s, m, h, d, w (for example 30m, 1h, 7d)"
        )
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def format_duration_ms(ms: int) -> str:
    """The shortest `<int><unit>` spelling of a whole duration (used in messages and PromQL)."""
    for unit in ("w", "d", "h", "m", "s"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
