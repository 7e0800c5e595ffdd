"""What validating definitions reports: problems with their place, and the errors raised on them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem in the definitions, at the line a person has to edit."""

    file: str
    line: int
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


def sorted_problems(problems: Iterable[Problem]) -> list[Problem]:
    """By file, then line; problems on one line keep the order they were found in."""
    return sorted(problems, key=lambda p: (p.file, p.line))


class DefinitionsError(Exception):
    """The metric definitions cannot be used."""


class DefinitionsNotFound(DefinitionsError):
    """The path does not exist, or holds no definition files."""


class DefinitionsInvalid(DefinitionsError):
    """The definitions have errors; `.problems` lists every one (and the warnings)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted_problems(problems)
        errors = [p for p in self.problems if p.is_error]
        noun = "error" if len(errors) == 1 else "errors"
        lines = [f"invalid metric definitions ({len(errors)} {noun}):"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))
