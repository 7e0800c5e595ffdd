"""The typed model of a metric definition (CONTRACT §2).

This layer checks what one metric says on its own: field types, exactly-one-of choices, durations.
Rules that need the whole catalogue (unique names, parents, cycles, formula operands) live in
`rules.py`; reading YAML with line numbers lives in `loader.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from processor.durations import parse_duration_ms

Tier = Literal["north_star", "diagnostic", "granular"]
TIERS: tuple[Tier, ...] = ("north_star", "diagnostic", "granular")
ANY_EVENT = "*"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_SEGMENTS = 3
# `group.<trait>`: an account's trait from its group calls (docs/semantics.md, Traits).
GROUP_TRAIT_PREFIX = "group."
FILTER_OPERATORS = ("in", "not_in", "not", "gt", "gte", "lt", "lte", "exists")

Scalar = str | int | float | bool | None
# A threshold or a comparison bound is a number; `true` must not pass as 1 (docs/semantics.md).
Number = StrictInt | StrictFloat


def _check_duration(value: Any) -> str:
    parse_duration_ms(str(value))
    return str(value)


Duration = Annotated[str, BeforeValidator(_check_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FilterOps(_Strict):
    """`{in: [...]}`, `{not_in: [...]}`, `{not: v}`, `{gt|gte|lt|lte: n}`, `{exists: bool}`.

    Several operators in one mapping must all hold (`{gte: 10, lt: 100}`).
    """

    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    not_: Scalar | None = Field(default=None, alias="not")
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    exists: StrictBool | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> FilterOps:
        if not self.model_fields_set:
            raise ValueError(f"a filter mapping needs one of: {', '.join(FILTER_OPERATORS)}")
        return self


Filter = FilterOps | Scalar
"""A `where` value: a scalar means equality; a mapping holds operators."""


def _as_event_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


EventTypes = Annotated[list[str], BeforeValidator(_as_event_list), Field(min_length=1)]


class Condition(_Strict):
    """One condition of an `entities` metric; it ends in exactly one of count, distinct, sum."""

    event: EventTypes
    where: dict[str, Filter] = Field(default_factory=dict)
    count_at_least: StrictInt | None = Field(default=None, ge=1)
    distinct: str | None = None
    sum: str | None = None
    at_least: Number | None = None
    each_count_at_least: StrictInt | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_ending(self) -> Condition:
        endings = [k for k in ("count_at_least", "distinct", "sum") if getattr(self, k) is not None]
        if len(endings) != 1:
            raise ValueError(
                "a condition ends in exactly one of count_at_least, distinct (with at_least) "
                f"or sum (with at_least); found {', '.join(endings) or 'none'}"
            )
        if self.count_at_least is not None and self.at_least is not None:
            raise ValueError("at_least goes with distinct or sum; count_at_least stands alone")
        if (self.distinct is not None or self.sum is not None) and self.at_least is None:
            raise ValueError(f"{endings[0]}: {getattr(self, endings[0])} needs at_least: N")
        if self.distinct is not None and self.at_least is not None and self.at_least < 1:
            raise ValueError("distinct needs at_least of 1 or more")
        if self.each_count_at_least is not None and self.distinct is None:
            raise ValueError("each_count_at_least goes with distinct")
        return self

    @property
    def kind(self) -> Literal["count", "distinct", "sum"]:
        if self.count_at_least is not None:
            return "count"
        return "distinct" if self.distinct is not None else "sum"


class Entities(_Strict):
    """Distinct entities (values of `key`) for which every condition holds inside the window."""

    key: str
    all: list[Condition] = Field(min_length=1)


class Aggregate(_Strict):
    """A number over the matching events in the window: exactly one of count, sum, distinct."""

    event: EventTypes
    where: dict[str, Filter] = Field(default_factory=dict)
    count: Literal[True] | None = None
    sum: str | None = None
    distinct: str | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> Aggregate:
        measures = [k for k in ("count", "sum", "distinct") if getattr(self, k) is not None]
        if len(measures) != 1:
            raise ValueError(
                "an aggregate has exactly one of count: true, sum: FIELD, distinct: FIELD; "
                f"found {', '.join(measures) or 'none'}"
            )
        return self

    @property
    def kind(self) -> Literal["count", "sum", "distinct"]:
        if self.count:
            return "count"
        return "sum" if self.sum is not None else "distinct"


class Anomaly(_Strict):
    """Fire when the value is far below the same hour of the week over the last 4 weeks.

    The centre is the median of those four values, the spread 1.4826 times their median absolute
    deviation (the robust stand-in for a standard deviation). The value must be more than
    `deviations` spreads below the centre, and at least `min_drop_pct` % below it (four values
    can agree exactly, which makes the spread 0), for `for`: longer than a week by default, so
    that a one-week dip such as a holiday does not page while a lasting fall does.
    """

    deviations: Number = Field(default=3, gt=0)
    min_drop_pct: Number = Field(default=10, gt=0, lt=100)
    for_: Duration = Field(default="8d", alias="for")


class Alert(_Strict):
    drop_pct: Number | None = Field(default=None, gt=0, lt=100)
    for_: Duration = Field(default="15m", alias="for")
    min_baseline: Number | None = Field(default=None, ge=0)
    floor: Number | None = None
    anomaly: Anomaly | None = None

    @model_validator(mode="after")
    def _something_to_alert_on(self) -> Alert:
        if self.drop_pct is None and self.floor is None and self.anomaly is None:
            raise ValueError("an alert needs drop_pct, floor or anomaly (or several)")
        return self


UNITS = ("count", "percent", "ratio", "seconds")
_CURRENCY = re.compile(r"^currency:[A-Z]{3}$")


def _check_unit(value: Any) -> Any:
    if not isinstance(value, str) or not (value in UNITS or _CURRENCY.match(value)):
        raise ValueError(
            f"unit {value!r} is not one of {', '.join(UNITS)} or currency:<ISO 4217 code> "
            "(currency:USD, currency:EUR)"
        )
    return value


Unit = Annotated[str, BeforeValidator(_check_unit)]


class Metric(_Strict):
    name: str
    title: str | None = None
    description: str | None = None
    tier: Tier
    parent: str | None = None
    backup_for: str | None = None
    window: Duration
    bucket: Duration = "1h"
    unit: Unit = "count"
    segments: list[str] = Field(default_factory=list, max_length=MAX_SEGMENTS)
    max_segment_values: StrictInt = Field(default=50, ge=1)
    alert: Alert | None = None
    entities: Entities | None = None
    aggregate: Aggregate | None = None
    formula: str | None = None

    # Where the metric was declared, for messages; set by the loader.
    _file: str = PrivateAttr(default="<memory>")
    _line: int = PrivateAttr(default=0)

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"name {value!r} must be snake_case: lowercase letters, digits and _, "
                "starting with a letter"
            )
        return value

    @field_validator("segments")
    @classmethod
    def _unique_segments(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("segments lists a field twice")
        return value

    @model_validator(mode="after")
    def _one_measure(self) -> Metric:
        kinds = [k for k in ("entities", "aggregate", "formula") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a metric has exactly one of entities, aggregate, formula; "
                f"found {', '.join(kinds) or 'none'}"
            )
        return self

    @model_validator(mode="after")
    def _traits_on_entities(self) -> Metric:
        traits = [s for s in self.segments if s.startswith(GROUP_TRAIT_PREFIX)]
        if traits and self.aggregate is not None:
            raise ValueError(
                f"segment {traits[0]}: account traits (group.<trait>) segment entities metrics "
                "only; an aggregate breaks down by a field of its own events"
            )
        return self

    @property
    def kind(self) -> Literal["entities", "aggregate", "formula"]:
        if self.entities is not None:
            return "entities"
        return "aggregate" if self.aggregate is not None else "formula"

    @property
    def window_ms(self) -> int:
        return parse_duration_ms(self.window)

    @property
    def bucket_ms(self) -> int:
        return parse_duration_ms(self.bucket)

    @property
    def buckets_in_window(self) -> int:
        return self.window_ms // self.bucket_ms

    @property
    def source(self) -> tuple[str, int]:
        return self._file, self._line

    def located(self, file: str, line: int) -> Metric:
        self._file, self._line = file, line
        return self


STANDARD_FIELDS = ("type", "timestamp", "event_id")


class EventType(_Strict):
    """One entry of a top-level `events:` list: an event type the product sends, and its fields
    (named as metrics name them: `plan` is looked up at the top level, then in `properties`)."""

    type: str = Field(min_length=1)
    description: str | None = None
    fields: list[str] = Field(default_factory=list)

    # Where the type was declared, for messages; set by the loader.
    _file: str = PrivateAttr(default="<memory>")
    _line: int = PrivateAttr(default=0)

    @field_validator("type")
    @classmethod
    def _not_any(cls, value: str) -> str:
        if value == ANY_EVENT:
            raise ValueError("'*' means any type in a metric; declare each type by its name")
        return value

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fields lists a field twice")
        if any(not name for name in value):
            raise ValueError("a field name is empty")
        return value

    @property
    def source(self) -> tuple[str, int]:
        return self._file, self._line

    def located(self, file: str, line: int) -> EventType:
        self._file, self._line = file, line
        return self

    def carries(self, name: str) -> bool:
        """Whether an event of this type has the field `name` as a metric would look it up: a
        declared field, `properties.<declared>`, or a dotted path under a declared field."""
        if name in STANDARD_FIELDS or name in self.fields:
            return True
        head, _, rest = name.partition(".")
        if head == "properties" and rest in self.fields:
            return True
        return any(name.startswith(f + ".") for f in self.fields)


class Catalog(BaseModel):
    """Every metric of a definitions directory, by name, in declaration order, and the event
    types declared under `events:` (none: the definitions do not declare them)."""

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, Metric]
    events: dict[str, EventType] = Field(default_factory=dict)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.metrics.values())

    def __len__(self) -> int:
        return len(self.metrics)

    def __getitem__(self, name: str) -> Metric:
        return self.metrics[name]

    def children(self, name: str) -> list[Metric]:
        return [m for m in self.metrics.values() if m.parent == name]

    def north_stars(self) -> list[Metric]:
        return [m for m in self.metrics.values() if m.tier == "north_star"]
