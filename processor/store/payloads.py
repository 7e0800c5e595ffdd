"""What a batch writes besides its state: its new event ids, packed by the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NewIds:
    """A batch's new event ids with their horizons, as the ids zset's member holds them (the
    engine's format 2: 128-bit hashes grouped by horizon), and the newest horizon (None when
    there are none)."""

    packed: bytes = b"\x02"  # format 2, no ids
    newest: int | None = None
