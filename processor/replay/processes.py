"""A shard in a process of its own, so that a replay uses more than one CPU.

The engine's work per event is Python, bound to one core by the interpreter lock; partitions are
independent until the end, so each process reads and applies some of them (its own Kafka consumer
and Redis connection, the same fenced writes) and the replay merges the shards' summaries as it
merges partitions'. The child runs a `Shard` and answers the replay's calls over a pipe, one at
a time; progress comes back while it consumes, at most a few times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Any

from processor.config import Settings
from processor.engine.summary import Summary
from processor.replay.request import ReplayRequest
from processor.replay.shard import Consumed, Report, Shard, Tally
from processor.replay.source import OffsetPlan
from processor.store.client import connect

_REPORT_SECONDS = 0.25
_STOP_SECONDS = 30.0


class ShardFailed(RuntimeError):
    """A replay process failed; the message is its error."""


class ProcessShard:
    """`Shard`'s interface, served by a child process (started with `spawn`: no inherited event
    loop, threads or sockets)."""

    def __init__(
        self, settings: Settings, request: ReplayRequest, plan: OffsetPlan, resumed: bool
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, settings, request, plan, resumed),
            name=f"nsm-replay-{'-'.join(map(str, plan.start))}",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._report: Report | None = None

    async def consume(self, report: Report) -> Consumed:
        self._report = report  # also for the counts that arrive while closing
        result: Consumed = await self._call(("consume",), report)
        return result

    async def summarize(self, as_of_ms: int) -> list[Summary]:
        result: list[Summary] = await self._call(("summarize", as_of_ms))
        return result

    async def history(self, first_ms: int, as_of_ms: int) -> AsyncIterator[tuple[int, Summary]]:
        await self._send(("history", first_ms, as_of_ms))
        while True:
            kind, payload = await self._receive()
            if kind == "done":
                return
            yield payload

    async def expire(self, as_of_ms: int) -> None:
        await self._call(("expire", as_of_ms))

    async def close(self, interrupt: bool = False) -> None:
        """Stop the child once it has finished what it does; with `interrupt` (the replay
        failed), interrupt that first, as Ctrl-C would: it flushes its writes and stops."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the child is already gone
                self._conn.send(("close",))
                if interrupt and self._process.pid is not None:
                    os.kill(self._process.pid, signal.SIGINT)
        with contextlib.suppress(BaseException):
            async with asyncio.timeout(_STOP_SECONDS):
                while True:
                    kind, payload = await self._receive()
                    if kind == "progress" and self._report is not None:
                        self._report(payload)
        await asyncio.to_thread(self._process.join, _STOP_SECONDS)
        if self._process.is_alive():
            self._process.terminate()
            await asyncio.to_thread(self._process.join)
        self._conn.close()

    async def _call(self, command: tuple[Any, ...], report: Report | None = None) -> Any:
        await self._send(command)
        while True:
            kind, payload = await self._receive()
            if kind == "progress" and report is not None:
                report(payload)
            elif kind == "done":
                return payload

    async def _send(self, command: tuple[Any, ...]) -> None:
        try:
            self._conn.send(command)
        except OSError:  # a broken pipe: the child is gone
            raise await self._stopped() from None

    async def _receive(self) -> tuple[str, Any]:
        try:
            kind, payload = await receive(self._conn)
        except EOFError:
            raise await self._stopped() from None
        if kind == "error":
            raise payload
        return kind, payload

    async def _stopped(self) -> ShardFailed:
        await asyncio.to_thread(self._process.join, 5)  # for its exit code
        return ShardFailed(
            f"replay process {self._process.name} stopped (exit code "
            f"{self._process.exitcode}); resume with --resume"
        )


# ---- the child ------------------------------------------------------------------------------


def _serve(
    conn: Connection, settings: Settings, request: ReplayRequest, plan: OffsetPlan, resumed: bool
) -> None:
    # As in the replay's own process: the state has no reference cycles, and the cyclic
    # collector would rescan its millions of containers again and again.
    gc.disable()
    try:
        asyncio.run(_serve_calls(conn, settings, request, plan, resumed))
    except BaseException as error:  # reported to the replay, which raises it
        with contextlib.suppress(OSError):
            conn.send(("error", _transferable(error)))
    finally:
        conn.close()


async def _serve_calls(
    conn: Connection, settings: Settings, request: ReplayRequest, plan: OffsetPlan, resumed: bool
) -> None:
    client = await connect(settings.redis_url.get_secret_value())
    try:
        shard = Shard(client, settings, request, plan, resumed)
        while True:
            command, *args = await receive(conn)
            if command == "close":
                return
            if command == "consume":
                pending, sent = Tally(), time.monotonic()

                def report(tally: Tally) -> None:
                    nonlocal pending, sent
                    pending.add(tally)
                    if time.monotonic() - sent >= _REPORT_SECONDS:
                        conn.send(("progress", pending))
                        pending, sent = Tally(), time.monotonic()

                try:
                    consumed = await shard.consume(report)
                finally:  # also when interrupted: progress up to the last batch written
                    conn.send(("progress", pending))
                conn.send(("done", consumed))
            elif command == "summarize":
                conn.send(("done", await shard.summarize(*args)))
            elif command == "history":
                async for point in shard.history(*args):
                    conn.send(("point", point))  # pickled now: before the sweep moves on
                conn.send(("done", None))
            elif command == "expire":
                await shard.expire(*args)
                conn.send(("done", None))
    finally:
        await client.aclose()


async def receive(conn: Connection) -> Any:
    """The next object from the pipe, waiting in the event loop (not in a thread, which a
    cancelled wait would leave behind, still reading)."""
    loop = asyncio.get_running_loop()
    while not conn.poll():
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _set_once, readable)
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())
    return conn.recv()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _transferable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a ShardFailed with its traceback."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        text = "".join(traceback.format_exception(error)).strip()
        return ShardFailed(f"replay process failed: {text}")
