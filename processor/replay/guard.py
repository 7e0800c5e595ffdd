"""What a replay may write to: never a served namespace, and an existing one only when asked."""

from __future__ import annotations

from processor.store import namespaces as ns
from processor.store.client import RedisClient
from processor.store.namespaces import InfoField, NamespaceError


async def check_target(client: RedisClient, namespace: str, live: str) -> None:
    """Refuse the live logical name, any logical name, and whatever a worker serves now."""
    ns.check_name(namespace)
    targets = await ns.pointers(client)
    if namespace == live or namespace in targets:
        raise NamespaceError(
            f"{namespace!r} is a logical name workers serve; replay into a namespace of its own "
            f"(e.g. --namespace {namespace}-rebuild), then `nsm namespace swap` it"
        )
    serving = await ns.serving_names(client, namespace, live)
    if serving:
        raise NamespaceError(
            f"{namespace!r} is what {', '.join(serving)} serves now: a replay never writes "
            "served state. Replay into a new namespace and swap it in instead"
        )


async def prepare(
    client: RedisClient, namespace: str, resume: bool, discard: bool
) -> dict[str, str] | None:
    """The info of the interrupted replay to resume, or None to start afresh (after dropping
    the namespace when `discard`). Refuses to overwrite or resume what it should not."""
    exists = await ns.exists(client, namespace)
    info = await ns.read_info(client, namespace)
    status = ns.status_of(info) if exists else None
    if status == "running":
        raise NamespaceError(
            f"a replay into {namespace!r} is running (heartbeat "
            f"{info.get(InfoField.HEARTBEAT)}); wait for it, or stop it first"
        )
    if discard:
        if exists:
            await ns.drop(client, namespace)
        return None
    if resume:
        if not exists:
            raise NamespaceError(f"nothing to resume: namespace {namespace!r} does not exist")
        if status == "complete":
            raise NamespaceError(
                f"the replay into {namespace!r} is complete; nothing to resume "
                "(--discard replays it again)"
            )
        if status != "interrupted":
            raise NamespaceError(
                f"{namespace!r} was not built by a replay (status {status}); it cannot be resumed"
            )
        return info
    if exists:
        raise NamespaceError(
            f"namespace {namespace!r} already exists (status {status}): --resume continues an "
            f"interrupted replay, --discard starts again, `nsm namespace drop {namespace}` "
            "deletes it"
        )
    return None
