"""The simulation clock: hour after hour, the events of every account, in time order, each stamped
with its timestamp and a unique id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from operator import itemgetter
from random import Random

from processor.generate.config import DAY_MS, HOUR_MS, GeneratorConfig, format_time_ms
from processor.generate.gtm import Calendar, Commerce
from processor.generate.product import Event, Timed, integration_activity, user_activity
from processor.generate.rhythm import MEAN_WEEK_FACTOR
from processor.generate.world import Account, build_accounts

_BY_TIME = itemgetter(0)


class Simulation:
    """One run of the synthetic company. Iterate `history()` once, then optionally `live()`."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.accounts: list[Account] = build_accounts(config)
        self.calendar = Calendar()
        self.commerce = Commerce(config, self.accounts, self.calendar)
        self.commerce.schedule_history()
        # Separate generators, so that a drop changes nothing but the events it removes.
        self._usage_rng = Random(f"{config.seed}:usage")
        self._drop_rng = Random(f"{config.seed}:drop")
        self._id_prefix = config.id_prefix
        self._issued = 0
        self._next_hour = config.start_ms // HOUR_MS
        self._hour_prefix: tuple[int, str] = (-1, "")

    def _drop_for(self, account: Account) -> tuple[int | None, float]:
        drop = self.config.drop
        if drop is None:
            return None, 0.0
        if drop.field is not None and str(account.attributes[drop.field]) != drop.value:
            return None, 0.0
        return drop.from_ms, drop.pct / 100

    def _simulate_hour(self, hour_index: int) -> list[Timed]:
        hour_start = hour_index * HOUR_MS
        if hour_start % DAY_MS == 0 or hour_index == self.config.start_ms // HOUR_MS:
            self.commerce.start_of_day(hour_start - hour_start % DAY_MS)
        events: list[Timed] = []
        for account in self.accounts:
            if account.churned_ms <= hour_start or account.created_ms >= hour_start + HOUR_MS:
                continue
            drop_from, drop_share = self._drop_for(account)
            user_activity(
                account, hour_start, self._usage_rng, events, drop_from, drop_share, self._drop_rng
            )
            integration_activity(account, hour_start, self._usage_rng, events)
        self.calendar.take_hour(hour_index, events)
        events.sort(key=_BY_TIME)  # stable: equal times keep the order they were made in
        return events

    def _next_id(self) -> str:
        self._issued += 1
        return f"{self._id_prefix}-{self._issued:09d}"

    def _timestamp(self, ts: int) -> str:
        # Formatting a datetime per event is the slowest step; the date and hour change rarely.
        hour_index, prefix = self._hour_prefix
        if ts // HOUR_MS != hour_index:
            hour_index = ts // HOUR_MS
            prefix = format_time_ms(hour_index * HOUR_MS)[:14]
            self._hour_prefix = (hour_index, prefix)
        minutes, millis = divmod(ts % HOUR_MS, 60_000)
        return f"{prefix}{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}Z"

    def history(self) -> Iterator[tuple[int, Event]]:
        """The events between the configured start and end, as (epoch ms, event), in time order."""
        start, end = self.config.start_ms, self.config.end_ms
        last_hour = end // HOUR_MS
        while self._next_hour <= last_hour:
            hour_events = self._simulate_hour(self._next_hour)
            self._next_hour += 1
            for ts, event in hour_events:
                if start <= ts <= end:
                    event["timestamp"] = self._timestamp(ts)
                    event["event_id"] = self._next_id()
                    yield ts, event

    def live(self) -> Iterator[tuple[int, Event]]:
        """Endless further events stamped with the wall clock when they are taken, for demos.

        The simulated hours go on after the history (churn and renewals continue); only the
        timestamps are replaced, so the stream keeps the product's mix of accounts and events at
        whatever rate it is consumed.
        """
        self._next_hour = max(self._next_hour, self.config.end_ms // HOUR_MS + 1)
        while True:
            hour_events = self._simulate_hour(self._next_hour)
            self._next_hour += 1
            for _, event in hour_events:
                now_ms = time.time_ns() // 1_000_000
                event["timestamp"] = self._timestamp(now_ms)
                event["event_id"] = self._next_id()
                yield now_ms, event

    def expected_events(self) -> float:
        """Roughly how many events the history holds, from each account's rates and the part of
        the history it exists in (before churn, which it cannot know)."""
        start, end = self.config.start_ms, self.config.end_ms
        total = 0.0
        for account in self.accounts:
            days = max(0, end - max(start, account.created_ms)) / DAY_MS
            syncs = sum(i.sync_probability for i in account.integrations)
            total += days * 24 * (account.hourly_rate * MEAN_WEEK_FACTOR + syncs)
        return total
