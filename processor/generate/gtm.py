"""Go-to-market and account lifecycle events: sign-ups, pipeline, deals, subscriptions, invoices,
ad spend and churn.

Unlike product usage these are sparse and tied to dates (a renewal every 30 days, a deal some weeks
after its opportunity), so they are put on a calendar of hours ahead of time, and dropped when they
fall after the account's churn.
"""

from __future__ import annotations

import math
from collections import defaultdict
from random import Random
from typing import Any

from processor.generate import vocabulary as vocab
from processor.generate.config import DAY_MS, HOUR_MS, GeneratorConfig
from processor.generate.product import Event, Timed, signup
from processor.generate.rhythm import poisson
from processor.generate.world import Account

BILLING_PERIOD_MS = 30 * DAY_MS
# An account whose first four weeks hold fewer reports than this sent fewer than 3 a week on
# average: it never reached the north star, the usage pattern that precedes churn.
LOW_USAGE_REPORTS = 12
LOW_USAGE_CHURN_PROBABILITY = 0.6
LOW_USAGE_CHURN_DELAY_DAYS = (14, 49)
# Churn at a renewal whatever the usage (budget cuts, acquisitions): the background rate.
BASELINE_CHURN_PER_RENEWAL = 0.015
# Opportunities lost for each one won, by rep: win rates between about 20% and 40%.
LOST_PER_WON_RANGE = (1.5, 4.0)
# Sales and marketing spend beyond ads (salaries, tools, events) is set so that new ARR over all
# spend, the magic number, lands near this value; the split is sales first, then marketing.
TARGET_MAGIC_NUMBER = 0.9
OTHER_SPEND_SPLIT = (("sales", "salaries", 0.7), ("marketing", "programs", 0.3))
SALES_CYCLE_DAYS = {"smb": (7, 30), "mid_market": (10, 45), "enterprise": (30, 90)}
# B2B advertisers spend less on weekends, when their buyers are not looking.
WEEKEND_SPEND_FACTOR = 0.6


def _event(kind: str, attributes: dict[str, Any], properties: dict[str, Any]) -> Event:
    return {
        "type": kind,
        "timestamp": None,
        "event_id": None,
        **attributes,
        "properties": properties,
    }


class Calendar:
    """Events scheduled ahead, by hour; an account's events after its churn are not delivered."""

    def __init__(self) -> None:
        self._by_hour: defaultdict[int, list[tuple[int, Account | None, Event]]] = defaultdict(list)

    def add(self, ts: int, account: Account | None, event: Event) -> None:
        self._by_hour[ts // HOUR_MS].append((ts, account, event))

    def take_hour(self, hour_index: int, out: list[Timed]) -> None:
        for ts, account, event in self._by_hour.pop(hour_index, ()):
            churned = account is not None and ts >= account.churned_ms
            if not churned or event["type"] == "subscription.churned":
                out.append((ts, event))


class Commerce:
    """Schedules the lifecycle and go-to-market events of every account onto the calendar."""

    def __init__(self, config: GeneratorConfig, accounts: list[Account], calendar: Calendar):
        self.config = config
        self.accounts = accounts
        self.calendar = calendar
        self.rng = Random(f"{config.seed}:gtm")
        self._next_id = {"opp": 0, "inv": 0, "prospect": 0}
        span_days = max(1.0, (config.end_ms - config.start_ms) / DAY_MS)
        self.span_days = span_days
        in_history = [a for a in accounts if a.created_ms >= config.start_ms]
        # Opportunities that do not become accounts of the history (lost, or won after its end)
        # copy the attributes of the deals won, so every rep, segment and channel has a pipeline.
        self.won_templates = [a for a in in_history if a.sales_assisted]
        reps = sorted({a.rep for a in accounts})
        self.lost_per_won = {rep: self.rng.uniform(*LOST_PER_WON_RANGE) for rep in reps}
        # Spend follows the revenue each campaign brings, divided by the ROAS it tends to achieve.
        self.daily_spend: dict[tuple[str, str], float] = {}
        for channel, campaigns in vocab.CAMPAIGNS.items():
            for campaign, roas in campaigns:
                arr = sum(a.mrr * 12 for a in in_history if a.campaign == campaign)
                self.daily_spend[(channel, campaign)] = max(arr / span_days / roas, 50.0)
        new_arr_per_day = sum(a.mrr * 12 for a in in_history) / span_days
        ads_per_day = sum(self.daily_spend.values())
        self.daily_other_spend = max(new_arr_per_day / TARGET_MAGIC_NUMBER - ads_per_day, 100.0)

    def _new_id(self, kind: str) -> str:
        self._next_id[kind] += 1
        return f"{kind}_{self._next_id[kind]:06d}"

    def schedule_history(self) -> None:
        """Sign-ups of users joining during the history, and the purchase of new accounts."""
        start, end = self.config.start_ms, self.config.end_ms
        for account in self.accounts:
            for user in account.users:
                if start <= user.joined_ms <= end:
                    method = (
                        "sso"
                        if account.plan == "enterprise"
                        else self.rng.choice(("google", "password"))
                    )
                    self.calendar.add(user.joined_ms, account, signup(account, user, method))
            if account.created_ms >= start:
                self._schedule_purchase(account)

    def _schedule_purchase(self, account: Account) -> None:
        rng = self.rng
        arr = round(account.mrr * 12, 2)
        if account.sales_assisted:
            low, high = SALES_CYCLE_DAYS[account.segment]
            opportunity_id = self._new_id("opp")
            opened_ms = account.created_ms - int(rng.uniform(low, high) * DAY_MS)
            won_ms = account.created_ms - int(rng.uniform(1, 48) * HOUR_MS)
            source = "outbound" if account.channel == "outbound" else "inbound"
            attributes = account.revenue_attributes
            opened = {"opportunity_id": opportunity_id, "source": source, "amount": arr}
            self._add_if_in_history(
                opened_ms, account, _event("opportunity.created", attributes, opened)
            )
            won = {"opportunity_id": opportunity_id, "amount": arr}
            self._add_if_in_history(won_ms, account, _event("deal.won", attributes, won))
        if account.is_paid:
            started_ms = account.created_ms + int(rng.uniform(5, 40) * 60_000)
            subscription = {
                "subscription_id": f"sub_{account.account_id[4:]}",
                "mrr": account.mrr,
                "arr": arr,
                "billing": "monthly",
            }
            event = _event("subscription.started", account.revenue_attributes, subscription)
            self.calendar.add(started_ms, account, event)
            self._invoice(account, started_ms + 60_000)

    def _add_if_in_history(self, ts: int, account: Account, event: Event) -> None:
        if ts >= self.config.start_ms:
            self.calendar.add(ts, account, event)

    def _invoice(self, account: Account, ts: int) -> None:
        invoice = {"invoice_id": self._new_id("inv"), "amount": account.mrr, "currency": "USD"}
        self.calendar.add(ts, account, _event("invoice.paid", account.attributes, invoice))

    def start_of_day(self, day_start: int) -> None:
        """Schedule the day's ad spend, renewals, churn decisions and lost opportunities."""
        for (channel, campaign), daily in self.daily_spend.items():
            self._ad_spend(day_start, channel, campaign, daily)
        for account in self.accounts:
            if account.created_ms < day_start and account.churned_ms > day_start:
                self._renewal_or_churn(account, day_start)
                if day_start <= account.first_month_end_ms < day_start + DAY_MS:
                    self._judge_first_month(account)
        for department, category, share in OTHER_SPEND_SPLIT:
            self._expense(day_start, department, category, self.daily_other_spend * share)
        days_left = (self.config.end_ms - day_start) / DAY_MS
        # New accounts arrive at a linearly growing pace (twice the average at the end); so does
        # the pipeline that feeds them.
        growth = min(2.0, max(0.0, 2 * (1 - (days_left - 0.5) / self.span_days)))
        for template in self.won_templates:
            lost = self.lost_per_won[template.rep] * growth / self.span_days
            # Deals that will close after the history ends were opened during it: without them
            # the last weeks would show wins but too few new opportunities.
            low, high = SALES_CYCLE_DAYS[template.segment]
            closes_after_end = min(1.0, max(0.0, (high - days_left) / (high - low)))
            still_open = closes_after_end * growth / self.span_days
            for _ in range(poisson(self.rng, lost + still_open)):
                self._prospect_opportunity(day_start, template)

    def _ad_spend(self, day_start: int, channel: str, campaign: str, daily: float) -> None:
        weekday = (day_start // DAY_MS + 3) % 7  # 0 = Monday
        factor = WEEKEND_SPEND_FACTOR if weekday >= 5 else 1.0
        cost = round(daily * factor * self.rng.uniform(0.75, 1.25), 2)
        ts = day_start + 23 * HOUR_MS + int(self.rng.random() * HOUR_MS)
        spend = {"channel": channel, "campaign": campaign, "cost": cost, "currency": "USD"}
        event = {"type": "ad.spend", "timestamp": None, "event_id": None, "properties": spend}
        self.calendar.add(ts, None, event)

    def _renewal_or_churn(self, account: Account, day_start: int) -> None:
        periods = math.ceil((day_start - account.created_ms) / BILLING_PERIOD_MS)
        renewal_ms = account.created_ms + periods * BILLING_PERIOD_MS
        if not day_start <= renewal_ms < day_start + DAY_MS:
            return
        if self.rng.random() < BASELINE_CHURN_PER_RENEWAL:
            reason = self.rng.choice(vocab.CHURN_REASONS[1:])
            self._churn(account, renewal_ms, reason)
        elif account.is_paid:
            renewed = {"subscription_id": f"sub_{account.account_id[4:]}", "mrr": account.mrr}
            event = _event("subscription.renewed", account.attributes, renewed)
            self.calendar.add(renewal_ms, account, event)
            self._invoice(account, renewal_ms + 60_000)

    def _judge_first_month(self, account: Account) -> None:
        if not self.config.churn_low_usage or account.first_month_reports >= LOW_USAGE_REPORTS:
            return
        if self.rng.random() < LOW_USAGE_CHURN_PROBABILITY:
            delay_days = self.rng.uniform(*LOW_USAGE_CHURN_DELAY_DAYS)
            self._churn(account, account.first_month_end_ms + int(delay_days * DAY_MS), "low_usage")

    def _churn(self, account: Account, ts: int, reason: str) -> None:
        if ts >= account.churned_ms:
            return
        account.churned_ms = ts
        if account.is_paid:  # a free account just goes quiet
            churned = {
                "subscription_id": f"sub_{account.account_id[4:]}",
                "mrr": account.mrr,
                "reason": reason,
            }
            self.calendar.add(
                ts, account, _event("subscription.churned", account.attributes, churned)
            )

    def _expense(self, day_start: int, department: str, category: str, daily: float) -> None:
        cost = round(daily * self.rng.uniform(0.9, 1.1), 2)
        ts = day_start + 22 * HOUR_MS + int(self.rng.random() * HOUR_MS)
        expense = {"department": department, "category": category, "cost": cost, "currency": "USD"}
        event = {"type": "expense.recorded", "timestamp": None, "event_id": None}
        self.calendar.add(ts, None, {**event, "properties": expense})

    def _prospect_opportunity(self, day_start: int, template: Account) -> None:
        rng = self.rng
        attributes = {
            **template.revenue_attributes,
            "account_id": self._new_id("prospect").replace("prospect_", "acc_p"),
        }
        del attributes["plan"]  # a prospect has no plan yet
        opened = {
            "opportunity_id": self._new_id("opp"),
            "source": "outbound" if template.channel == "outbound" else "inbound",
            "amount": round(template.mrr * 12 * rng.lognormvariate(0, 0.5), 2),
        }
        ts = day_start + int(rng.uniform(8, 20) * HOUR_MS)
        self.calendar.add(ts, None, _event("opportunity.created", attributes, opened))
