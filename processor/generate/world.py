"""The synthetic customer base: accounts with their users (seats), workspaces, projects, reports and
integrations, drawn once from the seed before any event is generated."""

from __future__ import annotations

import math
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate
from random import Random
from typing import Any

from processor.generate import vocabulary as vocab
from processor.generate.config import DAY_MS, GeneratorConfig
from processor.generate.rhythm import WEEKLY_FACTOR_BY_REGION

NEVER = 2**62
# Users of an account created during the history join over its first weeks, a few days apart.
_MEAN_ONBOARDING_MS = 3 * DAY_MS
_MAX_ONBOARDING_MS = 21 * DAY_MS
# Share of an older account's seats added during the history (seat expansion).
_EXPANSION_SHARE = 0.08
# Spread of account engagement: most accounts are light, a few are very active.
_ENGAGEMENT_SIGMA = 0.8
# Users of an account usually share one workspace per dozen seats.
_SEATS_PER_WORKSPACE = 12


@dataclass(slots=True)
class User:
    user_id: str
    role: str
    joined_ms: int
    workspace_id: str
    daily_rate: float
    # The event types this user produces, with cumulative weights for a bisect draw.
    kinds: tuple[str, ...]
    kind_cum: tuple[int, ...]
    projects: tuple[str, ...]

    def draw_kind(self, uniform: float) -> str:
        return self.kinds[bisect(self.kind_cum, uniform * self.kind_cum[-1])]


@dataclass(slots=True)
class Integration:
    integration_id: str
    provider: str
    connected_ms: int
    sync_probability: float  # per hour; 0 for a connection that broke and sends nothing


@dataclass(slots=True)
class Account:
    account_id: str
    plan: str
    segment: str
    region: str
    rep: str
    channel: str
    campaign: str | None
    created_ms: int
    engagement: float
    mrr: float
    sales_assisted: bool
    users: list[User]
    user_cum_weights: list[float]
    project_success: dict[str, float]
    report_ids: tuple[str, ...]
    integrations: list[Integration]
    weekly_factor: tuple[float, ...]
    # Top-level fields every event of the account carries, so that breakdowns work on any metric.
    attributes: dict[str, Any] = field(default_factory=dict)
    churned_ms: int = NEVER
    # Reports sent in the account's first four weeks (of its life, or of the history for older
    # accounts): the usage that decides a low-usage churn.
    first_month_end_ms: int = 0
    first_month_reports: int = 0

    # Expected user events in an average weekday hour, before the hour-of-week factor.
    hourly_rate: float = 0.0

    @property
    def is_paid(self) -> bool:
        return self.plan != "free"

    @property
    def revenue_attributes(self) -> dict[str, Any]:
        """Account attributes plus the acquisition campaign, for revenue and pipeline events."""
        if self.campaign is None:
            return self.attributes
        return {**self.attributes, "campaign": self.campaign}


def _weighted(rng: Random, values: tuple[str, ...], weights: tuple[int, ...]) -> str:
    return rng.choices(values, weights=weights)[0]


def _log_uniform_int(rng: Random, low: int, high: int) -> int:
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


_MIX = {
    role: (tuple(k for k, _ in mix), tuple(accumulate(w for _, w in mix)))
    for role, mix in vocab.PRODUCT_MIX_BY_ROLE.items()
}


def _channel_for(rng: Random, plan: str) -> str:
    # Outbound prospecting targets accounts big enough to buy a paid plan from a rep.
    while True:
        channel = _weighted(rng, vocab.CHANNELS, vocab.CHANNEL_WEIGHTS)
        if channel != "outbound" or plan in ("pro", "enterprise"):
            return channel


def _users(
    rng: Random, account_id: str, seats: int, created_ms: int, config: GeneratorConfig
) -> tuple[list[User], dict[str, float]]:
    suffix = account_id.removeprefix("acc_")
    workspaces = [f"ws_{suffix}_{k}" for k in range(1 + seats // _SEATS_PER_WORKSPACE)]
    projects_by_workspace = {
        ws: tuple(f"prj_{suffix}_{w}{p}" for p in range(rng.randint(1, 3)))
        for w, ws in enumerate(workspaces)
    }
    project_success = {
        project: rng.uniform(0.7, 0.97)
        for projects in projects_by_workspace.values()
        for project in projects
    }
    span_ms = config.end_ms - config.start_ms
    users = []
    for seat in range(seats):
        role = "admin" if seat == 0 else _weighted(rng, vocab.ROLES, vocab.ROLE_WEIGHTS)
        tier = rng.choices(vocab.USER_TIERS, weights=vocab.USER_TIER_WEIGHTS)[0]
        if created_ms >= config.start_ms:
            onboarding = 0.0 if seat == 0 else rng.expovariate(1 / _MEAN_ONBOARDING_MS)
            joined_ms = created_ms + int(min(onboarding, _MAX_ONBOARDING_MS))
        elif seat > 0 and rng.random() < _EXPANSION_SHARE:
            joined_ms = config.start_ms + int(rng.random() * span_ms)
        else:
            joined_ms = created_ms
        workspace = workspaces[0] if seat == 0 else rng.choice(workspaces)
        kinds, kind_cum = _MIX[role]
        users.append(
            User(
                user_id=f"usr_{suffix}_{seat}",
                role=role,
                joined_ms=joined_ms,
                workspace_id=workspace,
                daily_rate=tier[1],
                kinds=kinds,
                kind_cum=kind_cum,
                projects=projects_by_workspace[workspace],
            )
        )
    return users, project_success


def _integrations(rng: Random, account_id: str, plan: str, created_ms: int) -> list[Integration]:
    low, high = vocab.INTEGRATIONS_BY_PLAN[plan]
    providers = rng.sample(vocab.PROVIDERS, rng.randint(low, high))
    suffix = account_id.removeprefix("acc_")
    integrations = []
    for k, provider in enumerate(providers):
        broken = rng.random() < 0.2
        every_hours = rng.choice((2, 4, 6, 12, 24))
        integrations.append(
            Integration(
                integration_id=f"int_{suffix}_{k}",
                provider=provider,
                connected_ms=created_ms + int(rng.random() * 7 * DAY_MS),
                sync_probability=0.0 if broken else 1 / every_hours,
            )
        )
    return integrations


def build_accounts(config: GeneratorConfig) -> list[Account]:
    """Every account of the history, in id order; the same config always gives the same accounts."""
    rng = Random(f"{config.seed}:world")
    width = max(5, len(str(config.accounts)))
    span_ms = config.end_ms - config.start_ms
    accounts = []
    for number in range(1, config.accounts + 1):
        account_id = f"acc_{number:0{width}d}"
        plan = _weighted(rng, vocab.PLANS, vocab.PLAN_WEIGHTS)
        segments, segment_weights = vocab.SEGMENT_BY_PLAN[plan]
        segment = _weighted(rng, segments, segment_weights)
        region = _weighted(rng, vocab.REGIONS, vocab.REGION_WEIGHTS)
        channel = _channel_for(rng, plan)
        campaign = None
        if channel in vocab.PAID_CHANNELS:
            campaign = rng.choice(vocab.CAMPAIGNS[channel])[0]
        rep = rng.choice(vocab.REPS_BY_SEGMENT[segment])
        seats = _log_uniform_int(rng, *vocab.SEATS_BY_PLAN[plan])
        if rng.random() < config.existing_share:
            created_ms = config.start_ms - int(rng.uniform(30, 720) * DAY_MS)
        else:
            # Sign-ups accelerate: the density of new accounts grows linearly over the history.
            created_ms = config.start_ms + int(math.sqrt(rng.random()) * span_ms)
        users, project_success = _users(rng, account_id, seats, created_ms, config)
        report_count = 3 + seats // 2
        account = Account(
            account_id=account_id,
            plan=plan,
            segment=segment,
            region=region,
            rep=rep,
            channel=channel,
            campaign=campaign,
            created_ms=created_ms,
            engagement=rng.lognormvariate(0.0, _ENGAGEMENT_SIGMA),
            mrr=round(seats * vocab.PRICE_PER_SEAT[plan] * rng.uniform(0.8, 1.0), 2),
            sales_assisted=plan in ("pro", "enterprise")
            and (segment != "smb" or channel == "outbound"),
            users=users,
            user_cum_weights=list(accumulate(u.daily_rate for u in users)),
            project_success=project_success,
            report_ids=tuple(f"rpt_{account_id[4:]}_{k}" for k in range(report_count)),
            integrations=_integrations(rng, account_id, plan, created_ms),
            weekly_factor=WEEKLY_FACTOR_BY_REGION[region],
            first_month_end_ms=max(created_ms, config.start_ms) + 28 * DAY_MS,
        )
        account.hourly_rate = sum(u.daily_rate for u in users) * account.engagement / 24
        account.attributes = {
            "account_id": account_id,
            "plan": plan,
            "segment": segment,
            "region": region,
            "rep": rep,
            "channel": channel,
        }
        accounts.append(account)
    return accounts
