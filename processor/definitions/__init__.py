"""Metric definitions: read, validate and hold them as a `Catalog`.

    catalog = load_definitions("definitions/")           # raises DefinitionsInvalid on errors
    catalog, problems = check_definitions("definitions/")  # never raises on bad definitions

Validation runs in layers (YAML, the pydantic model, cross-metric rules) and reports every problem
with its file and line, errors and warnings alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.definitions.events import SampleProfile, check_events, check_sample
from processor.definitions.loader import Reading, read_dicts, read_path
from processor.definitions.model import (
    Aggregate,
    Alert,
    Anomaly,
    Catalog,
    Condition,
    Entities,
    EventType,
    Metric,
)
from processor.definitions.problems import (
    DefinitionsError,
    DefinitionsInvalid,
    DefinitionsNotFound,
    Problem,
    sorted_problems,
)
from processor.definitions.rules import check_rules

__all__ = [
    "Aggregate",
    "Alert",
    "Anomaly",
    "Catalog",
    "Condition",
    "DefinitionsError",
    "DefinitionsInvalid",
    "DefinitionsNotFound",
    "DefinitionsReport",
    "Entities",
    "EventType",
    "Metric",
    "Problem",
    "catalog_from_dicts",
    "check_definitions",
    "inspect_definitions",
    "load_definitions",
]


@dataclass(frozen=True)
class DefinitionsReport:
    """Everything a validation run found; `catalog` is None when there is any error."""

    files: list[str]
    entries: int  # metric entries found, including those that failed validation
    metrics: list[Metric]  # entries that passed the model (cross-metric rules aside)
    problems: list[Problem]
    catalog: Catalog | None
    event_types: int = 0  # entries of `events:` that passed the model

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def _report(reading: Reading, sample: SampleProfile | None = None) -> DefinitionsReport:
    problems = reading.problems + check_rules(reading.declared, reading.rejected_names)
    problems += check_events(reading.declared, reading.events)
    if sample is not None:
        problems += check_sample(reading.declared, reading.events, sample)
    problems = sorted_problems(problems)
    metrics = [d.metric for d in reading.declared]
    catalog = None
    if not any(p.severity == "error" for p in problems):
        events = {e.event.type: e.event for e in reading.events}
        catalog = Catalog(metrics={m.name: m for m in metrics}, events=events)
    return DefinitionsReport(
        reading.files, reading.entries, metrics, problems, catalog, len(reading.events)
    )


def inspect_definitions(path: str | Path, sample: SampleProfile | None = None) -> DefinitionsReport:
    """Validate a definitions directory or file (and, given a sample's profile, hold it to those
    events); DefinitionsNotFound when there is none."""
    return _report(read_path(path), sample)


def check_definitions(path: str | Path) -> tuple[Catalog | None, list[Problem]]:
    """The catalog (None when there is any error) and every problem, sorted by file then line."""
    report = inspect_definitions(path)
    return report.catalog, report.problems


def load_definitions(path: str | Path) -> Catalog:
    """The catalog; raises DefinitionsInvalid listing every problem when there is any error."""
    return _catalog_or_raise(inspect_definitions(path))


def catalog_from_dicts(items: Iterable[Mapping[str, Any]]) -> Catalog:
    """A catalog from definitions built in memory, checked by the same rules as files.

    Problems name the file `<memory>` and, as the line, the entry's position in `items` (from 1).
    """
    entries = (dict(item) if isinstance(item, Mapping) else item for item in items)
    return _catalog_or_raise(_report(read_dicts(entries)))


def _catalog_or_raise(report: DefinitionsReport) -> Catalog:
    if report.catalog is None:
        raise DefinitionsInvalid(report.problems)
    return report.catalog
