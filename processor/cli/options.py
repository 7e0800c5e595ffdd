"""What several `nsm` commands share: the --definitions and --events options, times, exit codes.

Every command that reads definitions exits 1 on invalid definitions (the problems on stderr, as
`nsm validate` prints them) and 2 when there are none to read.
"""

from __future__ import annotations

import bisect
import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import click

from processor.definitions import Catalog, DefinitionsInvalid, DefinitionsNotFound, load_definitions
from processor.times import SYNTAX, parse_time

EXIT_INVALID_DEFINITIONS, EXIT_DEFINITIONS_NOT_FOUND = 1, 2
F = TypeVar("F", bound=Callable[..., Any])


def definitions_option(function: F) -> F:
    return click.option(
        "--definitions",
        "definitions_path",
        default="definitions/",
        show_default=True,
        envvar="NSM_DEFINITIONS",
        type=click.Path(path_type=str),
        help="Directory (or one YAML file) of metric definitions [env NSM_DEFINITIONS].",
    )(function)


def events_option(function: F) -> F:
    return click.option(
        "--events",
        "events_path",
        required=True,
        type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
        help="JSON Lines file of events, one per line; - for standard input.",
    )(function)


def input_format_option(function: F) -> F:
    return click.option(
        "--input-format",
        default="nsm",
        show_default=True,
        envvar="NSM_INPUT_FORMAT",
        type=click.Choice(["nsm", "segment"]),
        help="NSM's own events, or Segment/RudderStack calls [env NSM_INPUT_FORMAT].",
    )(function)


def load_or_exit(ctx: click.Context, path: str) -> Catalog:
    """The catalog; on bad or missing definitions, the problems on stderr and a non-zero exit."""
    try:
        return load_definitions(path)
    except DefinitionsNotFound as exc:
        click.echo(f"nsm {ctx.info_name}: {exc}", err=True)
        ctx.exit(EXIT_DEFINITIONS_NOT_FOUND)
    except DefinitionsInvalid as exc:
        click.echo(str(exc), err=True)
        ctx.exit(EXIT_INVALID_DEFINITIONS)
    raise AssertionError("unreachable")  # ctx.exit raises


def json_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a JSON Lines stream; blank lines separate nothing and are not events."""
    for line in stream:
        if line and not line.isspace():
            yield line


class JsonLinesFile:
    """The events of a JSON Lines file (`-`: standard input), read anew at each iteration (the
    engine starts again after a message it failed on: compute_metrics), with the line number of
    each. Standard input that is not a file is kept in a temporary file, read only once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = "<stdin>" if path == "-" else path
        self._spool: IO[bytes] | None = None
        # For each blank line, the number of events before it (line_number).
        self._blanks: list[int] = []

    def __iter__(self) -> Iterator[bytes]:
        self._blanks = []
        with self._open() as stream:
            events = 0
            for line in stream:
                if line and not line.isspace():
                    events += 1
                    yield line
                else:
                    self._blanks.append(events)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> JsonLinesFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def line_number(self, position: int) -> int:
        """The line (from 1) of the event at `position` (from 0) of the last iteration."""
        return position + 1 + bisect.bisect_right(self._blanks, position)

    def _open(self) -> contextlib.AbstractContextManager[IO[bytes]]:
        if self.path != "-":
            return open(self.path, "rb")  # closed by the caller's `with`
        stdin = click.get_binary_stream("stdin")
        if self._spool is None and not stdin.seekable():
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
            shutil.copyfileobj(stdin, self._spool)
        source = self._spool if self._spool is not None else stdin
        source.seek(0)
        return contextlib.nullcontext(source)


class TimeParam(click.ParamType):
    """The one time syntax of every option (`processor.times`): RFC 3339, a date, epoch ms, a
    duration ago (`7d`) or `now`."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


TIME = TimeParam()
TIME_HELP = f"TIME: {SYNTAX}."
