"""The one step every consumer of the topic takes per batch: apply it to the partition's state,
then write what it changed, its ids, its counts and its offset in one atomic, fenced store step.

The worker and the replay both take it. Applying runs in a thread when given an executor (the
engine works without the GIL); a partition's batches must go one at a time and in order, each
applied then written, which the caller ensures. A write raises `Fenced` when the partition was
written by someone else since its state was loaded: the caller reloads it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from processor.partition.state import BatchOutcome, PartitionState, Record
from processor.store.protocol import MetaUpdate, PartitionStore


@dataclass(frozen=True)
class StepOptions:
    max_future_skew_ms: int
    event_clock: bool
    # False: every event is applied whatever its lateness (a replay keeps its history).
    drop_late: bool = True


class BatchStep:
    def __init__(self, store: PartitionStore, options: StepOptions) -> None:
        self.store = store
        self.options = options

    def apply(
        self,
        state: PartitionState,
        records: Sequence[Record],
        now_ms: int,
        unprocessable: Mapping[int, str] | None = None,
    ) -> BatchOutcome:
        """`PartitionState.apply_batch` with this step's options: raises MessageFailed when
        the engine fails on a message, and `unprocessable` names such messages of an earlier
        attempt."""
        o = self.options
        return state.apply_batch(
            records, now_ms, o.max_future_skew_ms, o.event_clock, o.drop_late, unprocessable
        )

    async def apply_in(
        self,
        executor: Executor | None,
        state: PartitionState,
        records: Sequence[Record],
        now_ms: int,
        unprocessable: Mapping[int, str] | None = None,
    ) -> BatchOutcome:
        """`apply` in a thread of `executor` (None: in this thread)."""
        if executor is None:
            return self.apply(state, records, now_ms, unprocessable)
        work = functools.partial(self.apply, state, records, now_ms, unprocessable)
        return await asyncio.get_running_loop().run_in_executor(executor, work)

    async def write(
        self, state: PartitionState, outcome: BatchOutcome, meta: MetaUpdate | None = None
    ) -> None:
        """Store the batch, with `meta` (marks, fenced by their `pending`); nothing to do for a
        batch that held only skipped records."""
        if outcome.new_offset is None:
            return
        await self.store.apply_batch(
            state.partition,
            outcome.previous_offset,
            outcome.new_offset,
            outcome.max_ts,
            outcome.writes,
            outcome.ids,
            outcome.counts(),
            meta,
        )
