"""Output for people and pipes alike.

- Tables: in a terminal, rich tables sized to it; anywhere else (a pipe, a file, CI) plain
  aligned columns with every value in full, never cut to fit 80 columns.
- Progress: a spinner or bar on standard error while a command works, only where a person
  watches (standard error is a terminal); pipes and logs get none of its escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Literal

import click

Align = Literal["left", "right"]


@dataclass
class TableData:
    """A table as data: rendered for a terminal by rich, or as plain columns for a pipe."""

    title: str
    columns: list[str]
    align: list[Align] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def plain(self) -> str:
        """Aligned columns, each as wide as its longest value: nothing is cut."""
        align = self.align or ["left"] * len(self.columns)
        widths = [
            max(len(cell) for cell in column)
            for column in zip(self.columns, *self.rows, strict=True)
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(width) if how == "right" else cell.ljust(width)
                for cell, width, how in zip(cells, widths, align, strict=True)
            ]
            return "  ".join(parts).rstrip()

        return "\n".join([self.title, line(self.columns), *(line(r) for r in self.rows)])


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def print_tables(*tables: TableData, stream: IO[str] | None = None) -> None:
    """Every table with rows; rich in a terminal, plain full-width columns elsewhere."""
    out = stream if stream is not None else sys.stdout
    shown = [t for t in tables if t.rows]
    if not is_terminal(out):
        click.echo("\n\n".join(t.plain() for t in shown), file=out)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False, soft_wrap=True)
    for data in shown:
        table = Table(title=data.title)
        align = data.align or ["left"] * len(data.columns)
        for column, how in zip(data.columns, align, strict=True):
            table.add_column(column, justify=how, overflow="fold")
        for row in data.rows:
            table.add_row(*row)
        console.print(table)


def progress_wanted(choice: bool | None = None) -> bool:
    """An explicit --progress/--no-progress wins; otherwise only where a person watches."""
    return is_terminal(sys.stderr) if choice is None else choice


@contextmanager
def progress_status(text: str, wanted: bool | None = None) -> Iterator[None]:
    """A spinner with `text` on standard error while the block runs (in a terminal only)."""
    if not progress_wanted(wanted):
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(f"nsm: {text}…"):
        yield
