"""Read definition files into metrics, keeping the line of every key for messages.

Layers: YAML (PyYAML's composer keeps each node's position) -> one pydantic `Metric` per entry of
`metrics:` (and one `EventType` per entry of an optional `events:`) -> cross-metric rules
(`rules.py`, `events.py`). Every layer collects all of its problems instead of stopping at the
first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from processor.definitions.messages import Loc, describe_errors, did_you_mean
from processor.definitions.model import EventType, Metric
from processor.definitions.problems import DefinitionsNotFound, Problem

SUFFIXES = (".yaml", ".yml")
IN_MEMORY = "<memory>"
MEASURES = ("entities", "aggregate", "formula")


@dataclass(frozen=True)
class Declared:
    """A metric that passed the model, with the line of each of its top-level keys (and its YAML
    mapping, for the lines of nested keys)."""

    metric: Metric
    key_lines: Mapping[str, int] = field(default_factory=dict)
    node: Node | None = field(default=None, compare=False)

    @property
    def file(self) -> str:
        return self.metric.source[0]

    @property
    def line(self) -> int:
        return self.metric.source[1]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def line_at(self, loc: Loc) -> int:
        """The line of a nested key (`("entities", "all", 0, "event")`), or the nearest above."""
        return self.line if self.node is None else _line_at(self.node, loc)


@dataclass(frozen=True)
class DeclaredEvent:
    """An event type of `events:` that passed the model."""

    event: EventType

    @property
    def file(self) -> str:
        return self.event.source[0]

    @property
    def line(self) -> int:
        return self.event.source[1]


@dataclass
class Reading:
    """What reading definitions produced, before the cross-metric rules."""

    files: list[str] = field(default_factory=list)
    declared: list[Declared] = field(default_factory=list)
    events: list[DeclaredEvent] = field(default_factory=list)
    entries: int = 0
    # Names of entries the model rejected: rules must not also call references to them unknown.
    rejected_names: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def definition_files(path: Path) -> list[Path]:
    """The definition files at `path` (a directory, read non-recursively, or one file)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DefinitionsNotFound(
            f"{path} does not exist: pass the directory holding the metric definitions "
            "(*.yaml), or set NSM_DEFINITIONS"
        )
    # Hidden files are editors' and tools' leftovers (`.#product.yaml`), not definitions.
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise DefinitionsNotFound(
            f"{path} holds no definition files: add *.yaml files with a top-level metrics: list"
        )
    return files


def read_path(path: str | Path) -> Reading:
    reading = Reading()
    for file in definition_files(Path(path)):
        _read_file(file, reading)
    return reading


def read_dicts(items: Iterable[Any]) -> Reading:
    """Definitions built in memory; an entry's "line" is its position in the list, from 1."""
    reading = Reading(files=[IN_MEMORY])
    for position, raw in enumerate(items, start=1):
        _add_entry(reading, raw, IN_MEMORY, position, node=None)
    return reading


def _read_file(file: Path, reading: Reading) -> None:
    name = str(file)
    reading.files.append(name)
    text = ""
    try:
        text = file.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = _construct(root)
    except UnicodeDecodeError as exc:
        reading.problems.append(
            Problem(name, 1, f"is not UTF-8 text ({exc.reason}): save as UTF-8")
        )
        return
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # At the end of the text the mark is one line past the last; point at the last line.
        line = max(1, min(mark.line + 1, len(text.splitlines()))) if mark else 1
        what = ": ".join(part for part in (exc.context, exc.problem) if part)
        reading.problems.append(
            Problem(name, line, f"YAML syntax error: {what}: fix the YAML at this line")
        )
        return
    except yaml.YAMLError as exc:
        reading.problems.append(Problem(name, 1, f"YAML error: {exc}"))
        return
    reading.problems += _repeated_keys(name, root)
    entries, events = _entries(name, root, data, reading.problems)
    for node, raw in entries:
        _add_entry(reading, raw, name, _line(node), node)
    for node, raw in events:
        _add_event(reading, raw, name, node)


def _construct(root: Node | None) -> Any:
    if root is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


TOP_LEVEL = ("metrics", "events")


def _entries(
    file: str, root: Node | None, data: Any, problems: list[Problem]
) -> tuple[list[tuple[Node, Any]], list[tuple[Node, Any]]]:
    """The (node, value) of every entry of the top-level `metrics:` list and of `events:`."""
    missing = (
        "the file has no top-level metrics: list: start it with metrics: and a list of metrics"
    )
    if not isinstance(root, MappingNode) or not isinstance(data, dict):
        problems.append(Problem(file, _line(root) if root is not None else 1, missing))
        return [], []
    found: dict[str, tuple[Node, Node]] = {}
    for key, value in root.value:
        if isinstance(key, ScalarNode) and key.value in TOP_LEVEL:
            found[key.value] = (key, value)  # YAML keeps the last of repeated keys (reported)
        else:
            problems.append(
                Problem(
                    file,
                    _line(key),
                    f"unknown top-level key {getattr(key, 'value', '?')!r}"
                    f"{did_you_mean(str(getattr(key, 'value', '')), TOP_LEVEL)}: a definitions "
                    "file holds metrics: and events:; move it into a metric or remove it",
                )
            )
    if not found:
        problems.append(Problem(file, _line(root), missing))
        return [], []
    lists: list[list[tuple[Node, Any]]] = []
    for name, example in (("metrics", "metric as '- name: ...'"),
                          ("events", "event type as '- type: ...'")):  # fmt: skip
        if name not in found:
            lists.append([])
            continue
        key, value = found[name]
        if not isinstance(value, SequenceNode):
            problems.append(
                Problem(file, _line(key), f"{name}: is not a list: write each {example}")
            )
            lists.append([])
            continue
        lists.append(list(zip(value.value, data[name], strict=True)))
    return lists[0], lists[1]


def _add_event(reading: Reading, raw: Any, file: str, node: Node) -> None:
    line = _line(node)
    if not isinstance(raw, dict):
        what = f"not {type(raw).__name__} {raw!r}"
        reading.problems.append(
            Problem(file, line, f"an event type is a mapping (type: ..., fields: [...]), {what}")
        )
        return
    label = f"event type {raw.get('type')}" if isinstance(raw.get("type"), str) else "event type"
    try:
        event = EventType.model_validate(raw).located(file, line)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
            where = ".".join(str(part) for part in loc) or "entry"
            text = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                text = "unknown key: an event type has type, description and fields"
            reading.problems.append(Problem(file, _line_at(node, loc), f"{label}: {where}: {text}"))
        return
    reading.events.append(DeclaredEvent(event))


def _add_entry(reading: Reading, raw: Any, file: str, line: int, node: Node | None) -> None:
    reading.entries += 1
    if not isinstance(raw, dict):
        reading.problems.append(
            Problem(
                file,
                line,
                f"a metric is a mapping (name: ..., tier: ..., window: ...), "
                f"not {type(raw).__name__} {raw!r}",
            )
        )
        return
    name = raw.get("name")
    named = name is not None and not isinstance(name, dict | list)
    label = f"metric {name}" if named else "metric without a name"
    try:
        metric = Metric.model_validate(raw).located(file, line)
    except ValidationError as exc:
        if isinstance(name, str):
            reading.rejected_names.add(name)
        described = describe_errors(exc.errors())
        # pydantic checks the whole metric only once its fields are valid; say it now anyway.
        measures = [k for k in MEASURES if raw.get(k) is not None]
        if len(measures) != 1 and all(loc for loc, _ in described):
            found = ", ".join(measures) or "none"
            described.append(
                ((), f"a metric has exactly one of {', '.join(MEASURES)}; found {found}")
            )
        for loc, text in described:
            at = _line_at(node, loc) if node is not None else line
            reading.problems.append(Problem(file, at, f"{label}: {text}"))
        return
    reading.declared.append(Declared(metric, _key_lines(node), node))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _key_lines(node: Node | None) -> dict[str, int]:
    if not isinstance(node, MappingNode):
        return {}
    return {str(k.value): _line(k) for k, _ in node.value if isinstance(k, ScalarNode)}


def _line_at(node: Node, loc: Loc) -> int:
    """The line of the key that `loc` points at; the deepest existing one when it is missing."""
    line, current = _line(node), node
    for part in loc:
        if isinstance(current, MappingNode) and isinstance(part, str):
            match = next(
                ((k, v) for k, v in current.value if isinstance(k, ScalarNode) and k.value == part),
                None,
            )
            if match is None:
                break
            line, current = _line(match[0]), match[1]
        elif isinstance(current, SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                break
            current = current.value[part]
            line = _line(current)
        else:
            break
    return line


def _repeated_keys(file: str, root: Node | None) -> list[Problem]:
    """YAML keeps only the last of two equal keys in a mapping; a person rarely means that."""
    problems: list[Problem] = []
    pending: list[Node] = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in seen:
                        problems.append(
                            Problem(
                                file,
                                _line(key),
                                f"key {key.value!r} is repeated (first at line "
                                f"{seen[key.value]}); YAML would keep only this one: remove one",
                            )
                        )
                    seen.setdefault(key.value, _line(key))
                pending.append(value)
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)
    return problems
