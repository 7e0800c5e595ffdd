"""`nsm namespace list|diff|swap|drop`: the namespaces of metric state in Redis."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from processor.cli.options import TIME, definitions_option, load_or_exit
from processor.cli.output import TableData, print_tables, progress_status
from processor.events import format_time
from processor.partition.state import fingerprints
from processor.replay.cli_support import live_option, redis_option, run_with_redis
from processor.replay.compare import Difference, differences, namespace_values, newest_event
from processor.store import namespaces as ns
from processor.store.client import RedisClient
from processor.store.namespaces import InfoField, NamespaceError


@click.group(name="namespace")
def command() -> None:
    """Namespaces of metric state: `nsm:NAME:` in Redis, one per replay or worker.

    Workers serve a logical name (NSM_NAMESPACE, default `live`) that points at one namespace;
    `swap` repoints it, atomically, and running workers follow within about a second.
    """


# ---- list -----------------------------------------------------------------------------------


@command.command(name="list")
@redis_option
@live_option
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
def list_command(redis_url: str | None, live: str, output_format: str) -> None:
    """Every namespace: status, partitions, newest event, size, and who serves it."""
    views = run_with_redis(redis_url, lambda client: ns.list_namespaces(client, live))
    if output_format == "json":
        rows = [view.__dict__ for view in views]
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    columns = ["namespace", "status", "partitions", "newest event", "keys", "memory", "served as"]
    table = TableData(
        "Namespaces",
        columns,
        ["right" if column in ("partitions", "keys", "memory") else "left" for column in columns],
    )
    if not views:
        click.echo("no namespace has state yet: run nsm worker, or nsm replay --namespace NAME")
        return
    for view in views:
        served = ", ".join(view.served_as)
        if view.pointer_to is not None:
            served = f"{served} (points at {view.pointer_to})".strip()
        table.add_row(
            view.name, view.status, str(view.partitions),
            format_time(view.newest_ms) if view.newest_ms is not None else "",
            f"{view.keys:,}", f"{view.memory_bytes / 1_048_576:,.1f} MiB", served,
        )  # fmt: skip
    print_tables(table)


# ---- diff -----------------------------------------------------------------------------------


@command.command(name="diff")
@click.argument("left")
@click.argument("right")
@redis_option
@definitions_option
@click.option(
    "--at", "at_ms", type=TIME, help="Compare as of TIME [default: the newer newest event]."
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
def diff_command(
    left: str,
    right: str,
    redis_url: str | None,
    definitions_path: str,
    at_ms: int | None,
    output_format: str,
) -> None:
    """Compare namespaces LEFT and RIGHT metric by metric and segment by segment.

    Exits 0 when they agree, 1 when they differ (as diff does).
    """
    catalog = load_or_exit(click.get_current_context(), definitions_path)

    async def work(client: RedisClient) -> tuple[int, list[Difference], list[str]]:
        when = at_ms
        if when is None:
            times = [t for t in [await newest_event(client, n) for n in (left, right)] if t]
            if not times:
                raise NamespaceError("neither namespace holds any event; pass --at")
            when = max(times)
        a, changed_a = await namespace_values(client, catalog, left, when)
        b, changed_b = await namespace_values(client, catalog, right, when)
        what = "was built from another definition, or is still being rebuilt"
        notes = [f"{left}: {m} {what}" for m in changed_a]
        notes += [f"{right}: {m} {what}" for m in changed_b]
        return when, differences(a, b), notes

    with progress_status(f"reading and comparing {left} and {right}"):
        when, found, notes = run_with_redis(redis_url, work)
    for note in notes:
        click.echo(f"nsm namespace diff: {note} (compared as empty)", err=True)
    if output_format == "json":
        document: dict[str, Any] = {
            "as_of": format_time(when),
            "left": left,
            "right": right,
            "differences": [d.__dict__ for d in found],
        }
        click.echo(orjson.dumps(document).decode())
    elif found:
        _print_differences(found, left, right, when)
    else:
        click.echo(f"{left} and {right} agree on every metric as of {format_time(when)}")
    sys.exit(1 if found else 0)


def _print_differences(found: list[Difference], left: str, right: str, when: int) -> None:
    table = TableData(
        f"{len(found)} differences as of {format_time(when)}",
        ["metric", "segment", "segment value", left, right],
        ["left", "left", "left", "right", "right"],
    )
    for d in found:
        a = "absent" if d.missing == "left" else str(d.left)
        b = "absent" if d.missing == "right" else str(d.right)
        table.add_row(d.metric, d.segment, d.label, a, b)
    print_tables(table)


# ---- swap -----------------------------------------------------------------------------------


@command.command(name="swap")
@click.argument("name")
@redis_option
@live_option
@definitions_option
@click.option("--topic", envvar="NSM_TOPIC", default="product-events", show_default=True,
              help="The topic the workers consume [env NSM_TOPIC].")  # fmt: skip
@click.option("--force", is_flag=True, help="Swap in a replay that is not complete.")
def swap_command(
    name: str, redis_url: str | None, live: str, definitions_path: str, topic: str, force: bool
) -> None:
    """Make the workers serving LIVE serve namespace NAME, atomically.

    Running workers notice within about a second: each drops its in-memory state, loads its
    partitions from NAME and consumes from NAME's stored offsets on, so the events after the
    replay are applied once. The former namespace stays until `nsm namespace drop`; swapping it
    back undoes the swap.
    """
    catalog = load_or_exit(click.get_current_context(), definitions_path)
    wanted = fingerprints(catalog)

    async def work(client: RedisClient) -> tuple[str, str]:
        ns.check_name(name)
        if not await ns.exists(client, name):
            raise NamespaceError(f"namespace {name!r} does not exist (see `nsm namespace list`)")
        current = await ns.resolve_namespace(client, live)
        if current == name:
            raise NamespaceError(f"{live} already serves {name}")
        info = await ns.read_info(client, name)
        status = ns.status_of(info)
        if status not in ("complete", "worker") and not force:
            raise NamespaceError(
                f"the replay into {name!r} is {status}: finish it first "
                f"(`nsm replay --namespace {name} --resume`), or pass --force"
            )
        if info.get(InfoField.TOPIC, topic) != topic:
            raise NamespaceError(
                f"{name!r} was replayed from topic {info[InfoField.TOPIC]!r}, but the workers "
                f"consume {topic!r}: its offsets mean nothing there"
            )
        reference = await ns.stored_fingerprints(client, current) or wanted
        _check_definitions(name, await ns.stored_fingerprints(client, name), reference)
        return current, await ns.point(client, live, name)

    _, previous = run_with_redis(redis_url, work)
    click.echo(
        f"{live} now serves {name} (it served {previous}).\n"
        f"Hand-over: within about a second each worker serving {live} drops its in-memory state, "
        f"loads its partitions from {name} and consumes from {name}'s stored offsets on; "
        f"nothing is lost or counted twice.\n"
        f"{previous} is kept: `nsm namespace swap {previous} --live {live}` undoes this, "
        f"`nsm namespace drop {previous}` frees it."
    )


def _check_definitions(name: str, built: dict[str, str], served: dict[str, str]) -> None:
    missing = sorted(set(served) - set(built))
    extra = sorted(set(built) - set(served))
    changed = sorted(m for m in set(built) & set(served) if built[m] != served[m])
    if not (missing or extra or changed):
        return
    parts = []
    if changed:
        parts.append(f"defined differently: {', '.join(changed)}")
    if missing:
        parts.append(f"not in {name}: {', '.join(missing)}")
    if extra:
        parts.append(f"only in {name}: {', '.join(extra)}")
    raise NamespaceError(
        f"{name!r} was built from other definitions than the workers run ({'; '.join(parts)}). "
        "Replay again with the workers' definitions, or deploy the new definitions to the "
        "workers first and then swap"
    )


# ---- drop -----------------------------------------------------------------------------------


@command.command(name="drop")
@click.argument("name")
@redis_option
@live_option
@click.option("--force", is_flag=True, help="Drop even while a replay writes into it.")
def drop_command(name: str, redis_url: str | None, live: str, force: bool) -> None:
    """Delete every key of namespace NAME (not one a worker serves)."""

    async def work(client: RedisClient) -> int:
        ns.check_name(name)
        serving = await ns.serving_names(client, name, live)
        if serving:
            raise NamespaceError(
                f"{name!r} is served as {', '.join(serving)}: swap another namespace in first"
            )
        if ns.status_of(await ns.read_info(client, name)) == "running" and not force:
            raise NamespaceError(f"a replay is writing into {name!r}; stop it or pass --force")
        return await ns.drop(client, name)

    deleted = run_with_redis(redis_url, work)
    click.echo(f"dropped {name}: {deleted:,} keys deleted")
