"""Reading fields of an event, their labels and numbers, and `where` filters (docs/semantics.md).

Everything a metric needs per event is compiled once into closures, because this is the hot path:
lookups never build intermediate objects, and a filter is a chain of precomputed tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from processor.definitions.model import Filter, FilterOps

UNKNOWN = "unknown"

Lookup = Callable[[Mapping[str, Any]], Any]
"""Returns the field's value, or None when it is missing or null."""

Predicate = Callable[[Mapping[str, Any]], bool]
ValueTest = Callable[[Any], bool]


def _walk(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def compile_lookup(name: str) -> Lookup:
    """A plain name is read at the top level, then in `properties`; a dotted name is a path."""
    if "." in name:
        path = tuple(name.split("."))
        return lambda data: _walk(data, path)

    def plain(data: Mapping[str, Any]) -> Any:
        value = data.get(name)
        if value is None:
            # A top-level null counts as missing, so `properties` is consulted.
            properties = data.get("properties")
            if isinstance(properties, dict):
                return properties.get(name)
        return value

    return plain


def lookup(data: Mapping[str, Any], name: str) -> Any:
    """One-off lookup; the engine reads fields from a flat view instead (make_flattener)."""
    return compile_lookup(name)(data)


Flattener = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def make_flattener(names: Iterable[str]) -> Flattener:
    """A function giving an event's flat view, where `view.get(name)` is the lookup of `name`.

    The view holds `properties` overlaid by the top level (a top-level null gives way to the
    property), and the value of every dotted name among `names` under that name: a definition
    cannot address a key containing a dot otherwise, so such keys are free. One view is built per
    event, and then every lookup of every metric is a single dict access.
    """
    paths = tuple((name, tuple(name.split("."))) for name in sorted(set(names)) if "." in name)

    def flatten(data: Mapping[str, Any]) -> Mapping[str, Any]:
        properties = data.get("properties")
        if isinstance(properties, dict) and properties:
            view = {**properties, **data}
            if None in data.values():
                for key, value in data.items():
                    if value is None and key in properties:
                        view[key] = properties[key]
        elif paths:
            view = dict(data)
        else:
            return data
        for name, path in paths:
            view[name] = _walk(data, path)
        return view

    return flatten


def label(value: Any) -> str:
    """The label of a value: entity ids, distinct values, segment values, event ids."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return compact_json(value)
    return str(value)


_END = object()


def _scalar_json(value: Any) -> str:
    kind = type(value)
    if kind is str or isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float or isinstance(value, float):
        if math.isfinite(value):
            return float.__repr__(value)
        return "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
    return int.__repr__(value)


def compact_json(value: Any) -> str:
    """The JSON text `json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)` gives, at any depth.

    A loop over an explicit stack instead of recursion: the decoder accepts values nested 1,024
    levels deep, past Python's recursion limit, and a label must exist for every value it accepts
    (docs/semantics.md, Labels).
    """
    out: list[str] = []
    # Per open container: its remaining items (an object's as sorted (key, value) pairs), whether
    # it is an object, and whether an item was written yet.
    stack: list[tuple[Iterator[Any], bool]] = []
    item = value
    while True:
        if isinstance(item, dict):
            out.append("{")
            stack.append((iter(sorted(item.items())), True))
        elif isinstance(item, list | tuple):
            out.append("[")
            stack.append((iter(item), False))
        else:
            out.append(_scalar_json(item))
        while stack:
            items, is_object = stack[-1]
            following: Any = next(items, _END)
            if following is _END:
                out.append("}" if is_object else "]")
                stack.pop()
                continue
            if out[-1] not in ("{", "["):
                out.append(",")
            if is_object:
                key, item = following
                out.append(encode_basestring(key))
                out.append(":")
            else:
                item = following
            break
        else:
            return "".join(out)


_PREVIEW_CHARS = 60


def preview(value: Any) -> str:
    """A value as an error detail shows it: short, whatever its size or depth (a repr of a value
    nested 1,000 levels deep exceeds the recursion limit, one of a long string is as long)."""
    if isinstance(value, str):
        if len(value) <= _PREVIEW_CHARS:
            return repr(value)
        return f"{value[:_PREVIEW_CHARS]!r}... ({len(value):,} characters)"
    if isinstance(value, dict):
        return f"a JSON object of {len(value)} members"
    if isinstance(value, list):
        return f"a JSON array of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def label_or_unknown(value: Any) -> str:
    if type(value) is str:
        return value
    return UNKNOWN if value is None else label(value)


def is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def as_decimal(value: Any) -> Decimal | None:
    """The exact decimal a JSON number is written as; None for anything that is not a number."""
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is float and math.isfinite(value):
        return Decimal(repr(value))
    return None


def _equals(expected: Any) -> ValueTest:
    if expected is None:
        return lambda value: False
    if isinstance(expected, bool):
        return lambda value: value is expected
    if isinstance(expected, str):
        return lambda value: type(value) is str and value == expected
    # A number: equal by value to an int or float, never to a bool.
    return lambda value: (type(value) is int or type(value) is float) and value == expected


def _equals_any(options: list[Any]) -> ValueTest:
    strings = frozenset(o for o in options if isinstance(o, str))
    booleans = frozenset(o for o in options if isinstance(o, bool))
    numbers = frozenset(
        o for o in options if isinstance(o, int | float) and not isinstance(o, bool)
    )

    def test(value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return value in strings
        if kind is bool:
            return value in booleans
        if kind is int or kind is float:
            # 1 and 1.0 hash alike, so membership compares numbers by value.
            return value in numbers
        return False

    return test


def _compare(threshold: float, op: str) -> ValueTest:
    def numeric(value: Any) -> bool:
        kind = type(value)
        return kind is int or kind is float

    if op == "gt":
        return lambda value: numeric(value) and value > threshold
    if op == "gte":
        return lambda value: numeric(value) and value >= threshold
    if op == "lt":
        return lambda value: numeric(value) and value < threshold
    return lambda value: numeric(value) and value <= threshold


def _negate_present(test: ValueTest) -> ValueTest:
    return lambda value: value is not None and not test(value)


def compile_value_test(spec: Filter) -> ValueTest:
    """The test one `where` entry applies to a looked-up value (None = missing or null)."""
    if not isinstance(spec, FilterOps):
        equal = _equals(spec)
        return equal
    tests: list[ValueTest] = []
    given = spec.model_fields_set
    if "in_" in given:
        tests.append(_equals_any(spec.in_ or []))
    if "not_in" in given:
        tests.append(_negate_present(_equals_any(spec.not_in or [])))
    if "not_" in given:
        tests.append(_negate_present(_equals(spec.not_)))
    for op in ("gt", "gte", "lt", "lte"):
        threshold = getattr(spec, op)
        if threshold is not None:
            tests.append(_compare(threshold, op))
    if spec.exists is not None:
        wanted = spec.exists
        tests.append(lambda value: (value is not None) is wanted)
    if len(tests) == 1:
        return tests[0]
    return lambda value: all(test(value) for test in tests)


def compile_where(where: Mapping[str, Filter]) -> Predicate | None:
    """One predicate over an event's flat view for a whole `where`; None when nothing to check."""
    checks = [(name, compile_value_test(spec)) for name, spec in where.items()]
    if not checks:
        return None
    if len(checks) == 1:
        ((name, test),) = checks
        return lambda view: test(view.get(name))
    if len(checks) == 2:
        (name_a, test_a), (name_b, test_b) = checks
        return lambda view: test_a(view.get(name_a)) and test_b(view.get(name_b))
    return lambda view: all(test(view.get(name)) for name, test in checks)
