"""Turn pydantic's validation errors into messages that say what is wrong and what to write instead.

Each message comes with the error's location (`loc`) cleaned of pydantic's union-member tags, so the
loader can find the line of the offending key.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from processor.definitions.model import (
    FILTER_OPERATORS,
    MAX_SEGMENTS,
    TIERS,
    Aggregate,
    Alert,
    Anomaly,
    Condition,
    Entities,
    FilterOps,
    Metric,
)

Loc = tuple[str | int, ...]

DURATION_KEYS = ("window", "bucket", "for")
DURATION_HINT = "write a positive integer followed by s, m, h, d or w (7d, 30d)"

# Which model a mapping at a (generalised) location is: list indexes become "#", filter fields "*".
_MODELS: dict[Loc, type[BaseModel]] = {
    (): Metric,
    ("entities",): Entities,
    ("entities", "all", "#"): Condition,
    ("entities", "all", "#", "where", "*"): FilterOps,
    ("aggregate",): Aggregate,
    ("aggregate", "where", "*"): FilterOps,
    ("alert",): Alert,
    ("alert", "anomaly"): Anomaly,
}

# What to add when a required key is missing.
_MISSING_HINTS = {
    "name": "add name: a_snake_case_name (it becomes the metric label)",
    "tier": "add tier: north_star, diagnostic or granular",
    "window": "add window: 7d (the rolling window length; 30d, 90d ... also work)",
    "event": "add event: an event type, a list of types, or '*' for any type",
    "key": "add key: account_id (the field that identifies an entity)",
    "all": "add all: with a list of conditions",
}

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "none_required": "null",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
}

_SCALAR_TAGS = frozenset({"str", "int", "float", "bool", "none"})


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The keys a person writes in YAML (aliases such as `for` and `in`, not `for_` and `in_`)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_errors(errors: Sequence[ErrorDetails]) -> list[tuple[Loc, str]]:
    """One (location, message) per problem, in pydantic's order, without repeats."""
    cleaned = [(_clean(err["loc"]), err) for err in errors]
    # A union (a filter is a value or a mapping of operators) reports one error per member. When
    # one member got further into the input, the person meant that form: drop the others.
    deeper = [loc for loc, err in cleaned if not _is_member_type_error(err)]
    kept = [
        (loc, err)
        for loc, err in cleaned
        if not (_is_member_type_error(err) and any(_is_strict_prefix(loc, d) for d in deeper))
    ]
    grouped: dict[Loc, list[ErrorDetails]] = {}
    for loc, err in kept:
        grouped.setdefault(loc, []).append(err)
    described: list[tuple[Loc, str]] = []
    for loc, group in grouped.items():
        own = [err for err in group if not _is_member_type_error(err)]
        if own:  # the mapping form failed on its own terms; the other members add only noise
            texts = [_message(loc, err) for err in own]
        elif len(group) > 1:
            texts = [_union_message(loc, group)]
        else:
            texts = [_message(loc, group[0])]
        for text in texts:
            if (loc, text) not in described:
                described.append((loc, text))
    return described


def path_text(loc: Loc) -> str:
    """`entities.all[0].where.plan` for ('entities', 'all', 0, 'where', 'plan')."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _is_union_tag(loc: Loc, index: int) -> bool:
    part = loc[index]
    if not isinstance(part, str) or (index > 0 and loc[index - 1] == "where"):
        return False  # the field name right after `where` is the person's, whatever it is
    return part in _SCALAR_TAGS or "[" in part or part == FilterOps.__name__


def _clean(loc: Loc) -> Loc:
    return tuple(part for i, part in enumerate(loc) if not _is_union_tag(loc, i))


def _is_member_type_error(err: ErrorDetails) -> bool:
    loc = err["loc"]
    return bool(loc) and _is_union_tag(loc, len(loc) - 1) and err["type"] in _TYPE_NAMES


def _is_strict_prefix(short: Loc, long: Loc) -> bool:
    return len(short) < len(long) and long[: len(short)] == short


def _model_at(loc: Loc) -> type[BaseModel] | None:
    general: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            general.append("#")
        elif i > 0 and loc[i - 1] == "where":
            general.append("*")
        else:
            general.append(part)
    return _MODELS.get(tuple(general))


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _union_message(loc: Loc, group: Sequence[ErrorDetails]) -> str:
    value = group[0]["input"]
    if len(loc) >= 2 and loc[-2] == "where":
        return (
            f"{path_text(loc)} is {_shown(value)}, which is not a filter: write {loc[-1]}: VALUE "
            f"to match a value, or a mapping of operators ({', '.join(FILTER_OPERATORS)})"
        )
    expected = sorted({_TYPE_NAMES[err["type"]] for err in group})
    return f"{path_text(loc)} is {_shown(value)}: write {' or '.join(expected)}"


def _message(loc: Loc, err: ErrorDetails) -> str:
    kind, value = err["type"], err["input"]
    where = path_text(loc)
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        inside = f" in {path_text(loc[:-1])}" if len(loc) > 1 else ""
        hint = _MISSING_HINTS.get(str(last), f"add {last}:")
        return f"missing key {last!r}{inside}: {hint}"
    if kind == "value_error" and last in DURATION_KEYS:
        return f"{where} {str(value)!r} is not a duration: {DURATION_HINT}"
    if kind == "literal_error" and last == "tier":
        return (
            f"tier {value!r} is not a tier: use one of {', '.join(TIERS)}"
            f"{did_you_mean(str(value), TIERS)}"
        )
    if kind == "literal_error" and last == "count":
        return (
            f"{where} is {value!r}: write count: true to count matching events, "
            "or use sum: FIELD or distinct: FIELD instead"
        )
    if kind == "too_long" and last == "segments":
        return (
            f"segments lists {len(value)} fields ({', '.join(map(str, value))}): at most "
            f"{MAX_SEGMENTS} are allowed; keep the {MAX_SEGMENTS} that explain the metric best"
        )
    if kind == "value_error" and last == "segments" and isinstance(value, list):
        repeated = sorted({str(v) for v in value if value.count(v) > 1})
        return (
            f"segments lists {', '.join(map(repr, repeated))} more than once: list each field once"
        )
    if kind == "too_short" and last == "event":
        return f"{where} lists no event type: name a type, a list of types, or '*' for any type"
    if kind == "too_short" and last == "all":
        return f"{where} has no condition: add at least one condition under all:"
    if kind in ("value_error", "assertion_error"):
        text = str(err.get("ctx", {}).get("error", err["msg"]))
        return text if not where or text.startswith(str(last)) else f"{where}: {text}"
    expected = err["msg"].replace("Input should be", "it should be")
    return f"{where or 'metric'} is {_shown(value)}: {expected}"


def _unknown_key(loc: Loc) -> str:
    key, container = str(loc[-1]), loc[:-1]
    model = _model_at(container)
    inside = f" in {path_text(container)}" if container else ""
    if model is None:
        return f"unknown key {key!r}{inside}: remove it"
    if model is FilterOps:
        choices = list(FILTER_OPERATORS)
        return (
            f"unknown filter operator {key!r}{inside}{did_you_mean(key, choices)}: "
            f"the operators are {', '.join(choices)}"
        )
    choices = allowed_keys(model)
    return (
        f"unknown key {key!r}{inside}{did_you_mean(key, choices)}: "
        f"the allowed keys are {', '.join(choices)}"
    )
