"""Buckets and rolling windows (CONTRACT §3).

Bucket `floor(ts_ms / bucket_ms)`, aligned to the epoch; the window as of T is the buckets
`[k - n + 1, k]` with `k = floor(T_ms / bucket_ms)`. Python's `//` floors, also before 1970.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Windowed(Protocol):
    @property
    def bucket_ms(self) -> int: ...

    @property
    def buckets_in_window(self) -> int: ...


class WindowBounds(NamedTuple):
    first: int
    last: int

    def __contains__(self, bucket: object) -> bool:
        return isinstance(bucket, int) and self.first <= bucket <= self.last


def bucket_of(ts_ms: int, bucket_ms: int) -> int:
    return ts_ms // bucket_ms


def window_bounds(as_of_ms: int, metric: Windowed) -> WindowBounds:
    """The first and last bucket of the window as of `as_of_ms`, both included."""
    last = as_of_ms // metric.bucket_ms
    return WindowBounds(last - metric.buckets_in_window + 1, last)


def is_late(bucket: int, clock_ms: int, metric: Windowed) -> bool:
    """True when the bucket has already left the window as of the clock."""
    return bucket < window_bounds(clock_ms, metric).first
