"""What to generate: the options of `nsm generate` as one immutable value, and their parsing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DEFAULT_DAYS = 28
DEFAULT_ACCOUNTS = 100

# Account attributes a drop can be restricted to (`--drop-segment plan=pro`).
ACCOUNT_FIELDS = ("account_id", "plan", "segment", "region", "rep", "channel")


def format_time_ms(ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision, the form every generated event carries."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class Drop:
    """A fall in product usage from `from_ms` on, for accounts matching `field=value` (or all)."""

    pct: float
    from_ms: int
    field: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.pct <= 100:
            raise ValueError("the drop is a percentage above 0 and at most 100")
        if (self.field is None) != (self.value is None):
            raise ValueError("a drop segment needs both a field and a value")
        if self.field is not None and self.field not in ACCOUNT_FIELDS:
            raise ValueError(
                f"cannot restrict a drop to {self.field!r}: use one of {', '.join(ACCOUNT_FIELDS)}"
            )

    @classmethod
    def parse_segment(cls, text: str) -> tuple[str, str]:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"invalid segment {text!r}: write field=value, e.g. plan=pro")
        return name.strip(), value.strip()


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that shapes the stream; two equal configs give byte-identical output."""

    seed: int
    start_ms: int
    end_ms: int
    accounts: int = DEFAULT_ACCOUNTS
    max_events: int | None = None
    drop: Drop | None = None
    churn_low_usage: bool = False
    duplicates_pct: float = 0.0
    invalid_pct: float = 0.0
    disorder_ms: int = 0
    # NSM's own events, or the calls of a Segment/RudderStack source (generate/segment.py).
    event_format: Literal["nsm", "segment"] = "nsm"
    # Accounts that already exist when the history starts; the rest sign up during it.
    existing_share: float = field(default=0.5)

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise ValueError("the end of the history is before its start")
        if self.accounts < 1:
            raise ValueError("at least one account is needed")
        if self.max_events is not None and self.max_events < 0:
            raise ValueError("the number of events cannot be negative")
        for name in ("duplicates_pct", "invalid_pct"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name.removesuffix('_pct')} is a percentage from 0 to 100")
        if self.disorder_ms < 0:
            raise ValueError("disorder cannot be negative")

    @property
    def id_prefix(self) -> str:
        """A short tag shared by this stream's event ids.

        It depends on the seed and on everything that changes which events exist, so the same
        command gives the same ids, while a later run (another end time) cannot collide with an
        earlier one in the same topic and be dropped as duplicates.
        """
        shape = (
            self.seed,
            self.start_ms,
            self.end_ms,
            self.accounts,
            self.drop,
            self.churn_low_usage,
            self.existing_share,
        )
        return hashlib.blake2b(repr(shape).encode(), digest_size=5).hexdigest()
