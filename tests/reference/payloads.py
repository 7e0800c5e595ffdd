"""What a batch writes to Redis, packed in msgpack as the atomic step's script reads it.

Packing is the only per-cell work left between a batch's state and Redis, so it is done once,
where the writes are made: the Python engine's writes are packed here, and the native core
(native/src/pack.rs) packs its own in the same format. Redis's Lua unpacks them with cmsgpack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgpack


def _packb(value: object) -> bytes:
    # Field names and values go as msgpack strings (no bin type), which Lua reads as strings.
    return msgpack.packb(value, use_bin_type=False)


@dataclass
class BucketWrite:
    metric: str
    bucket: int
    expires_at_ms: int
    fields: Mapping[bytes, bytes]

    @property
    def member(self) -> str:
        return f"{self.metric}:{self.bucket}"


@dataclass(frozen=True)
class PackedWrites:
    """Bucket writes: one msgpack `[expires_at, member, [field, value, ...]]` per member, in the
    order of `members`, concatenated over `chunks` (no array header, so that packed writes join
    without copying: `as_array` copies them once, into the script's argument)."""

    members: Sequence[str] = ()
    chunks: tuple[bytes, ...] = ()

    @classmethod
    def pack(cls, writes: Iterable[BucketWrite]) -> PackedWrites:
        members: list[str] = []
        items: list[bytes] = []
        for w in writes:
            members.append(w.member)
            # The time as a string: Lua would print a large number in exponent notation.
            fields = [x for item in w.fields.items() for x in item]
            items.append(_packb([str(w.expires_at_ms), w.member, fields]))
        return cls(members, tuple(items))

    def __add__(self, other: PackedWrites) -> PackedWrites:
        return PackedWrites([*self.members, *other.members], self.chunks + other.chunks)

    def as_array(self) -> bytes:
        """The whole msgpack array, as the script takes it."""
        header = msgpack.Packer().pack_array_header(len(self.members))
        return b"".join((header, *self.chunks))

    def unpack(self) -> list[BucketWrite]:
        writes = []
        for expires_at, member, fields in msgpack.unpackb(self.as_array(), raw=True):
            metric, _, bucket = member.decode().rpartition(":")
            pairs = dict(zip(fields[::2], fields[1::2], strict=True))
            writes.append(BucketWrite(metric, int(bucket), int(expires_at), pairs))
        return writes


@dataclass(frozen=True)
class NewIds:
    """A batch's new event ids with their horizons, as the ids zset's member holds them: the
    msgpack array `[id, horizon, ...]`; and the newest horizon (None when there are none)."""

    packed: bytes = b"\x90"  # []
    newest: int | None = None

    @classmethod
    def pack(cls, ids: Iterable[tuple[str, int]]) -> NewIds:
        pairs = list(ids)
        flat = [x for pair in pairs for x in pair]
        return cls(_packb(flat), max((horizon for _, horizon in pairs), default=None))

    def unpack(self) -> list[tuple[str, int]]:
        flat = msgpack.unpackb(self.packed, raw=False)
        return list(zip(flat[::2], flat[1::2], strict=True))
