"""Product events: what the users of one account do in one hour, and what its integrations send.

This is the hot path of the generator (most events are made here), so it draws counts once per
account and hour and keeps per-event work to a few random draws and one dict.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import Any

from processor.generate import vocabulary as vocab
from processor.generate.config import HOUR_MS
from processor.generate.rhythm import hour_of_week, poisson
from processor.generate.world import Account, User

Event = dict[str, Any]
Timed = tuple[int, Event]
Builder = Callable[[Account, User, Random], dict[str, Any]]

_KEY_WORKFLOWS = tuple(name for name, key in vocab.WORKFLOWS if key)
_OTHER_WORKFLOWS = tuple(name for name, key in vocab.WORKFLOWS if not key)


def _page_viewed(account: Account, user: User, rng: Random) -> dict[str, Any]:
    return {"path": rng.choice(vocab.PAGES)}


def _login(account: Account, user: User, rng: Random) -> dict[str, Any]:
    method = "sso" if account.plan == "enterprise" else rng.choice(vocab.LOGIN_METHODS[:2])
    return {"method": method}


def _report_sent(account: Account, user: User, rng: Random) -> dict[str, Any]:
    return {
        "report_id": rng.choice(account.report_ids),
        "recipients": rng.randint(1, 12),
        "delivery": rng.choice(vocab.DELIVERIES),
    }


def _report_viewed(account: Account, user: User, rng: Random) -> dict[str, Any]:
    return {"report_id": rng.choice(account.report_ids), "role": user.role}


def _workflow_completed(account: Account, user: User, rng: Random) -> dict[str, Any]:
    # Most completed workflows are the core ones the product is bought for.
    key = rng.random() < 0.6
    name = rng.choice(_KEY_WORKFLOWS if key else _OTHER_WORKFLOWS)
    return {"workflow": name, "key_workflow": key, "duration_ms": rng.randint(2_000, 600_000)}


def _build_completed(account: Account, user: User, rng: Random) -> dict[str, Any]:
    project = rng.choice(user.projects)
    success = rng.random() < account.project_success[project]
    return {
        "project_id": project,
        "status": "success" if success else "failed",
        "duration_ms": rng.randint(20_000, 900_000),
    }


BUILDERS: dict[str, Builder] = {
    "page.viewed": _page_viewed,
    "login": _login,
    "report.sent": _report_sent,
    "report.viewed": _report_viewed,
    "workflow.completed": _workflow_completed,
    "build.completed": _build_completed,
}


def user_activity(
    account: Account,
    hour_start: int,
    rng: Random,
    out: list[Timed],
    drop_from_ms: int | None = None,
    drop_share: float = 0.0,
    drop_rng: Random | None = None,
) -> None:
    """Append the account's user events of the hour starting at `hour_start` to `out`.

    A drop removes each event from `drop_from_ms` on with probability `drop_share`, drawing from its
    own generator so that every other event stays exactly what it would have been without it.
    """
    factor = account.weekly_factor[hour_of_week(hour_start)]
    count = poisson(rng, account.hourly_rate * factor)
    if not count:
        return
    uniform = rng.random
    churned_ms = account.churned_ms
    attributes = account.attributes
    for user in rng.choices(account.users, cum_weights=account.user_cum_weights, k=count):
        ts = hour_start + int(uniform() * HOUR_MS)
        kind = user.draw_kind(uniform())
        # Drawn before any skip, so that churn or a drop elsewhere never shifts the draws of
        # the events that remain.
        properties = BUILDERS[kind](account, user, rng)
        if ts < user.joined_ms or ts >= churned_ms:
            continue
        if drop_from_ms is not None and ts >= drop_from_ms:
            assert drop_rng is not None
            if drop_rng.random() < drop_share:
                continue
        if kind == "report.sent" and ts < account.first_month_end_ms:
            account.first_month_reports += 1
        event = {
            "type": kind,
            "timestamp": None,
            "event_id": None,
            **attributes,
            "user_id": user.user_id,
            "workspace_id": user.workspace_id,
            "properties": properties,
        }
        out.append((ts, event))


def integration_activity(account: Account, hour_start: int, rng: Random, out: list[Timed]) -> None:
    """Append the data syncs of the account's integrations in the hour (machine traffic: no user,
    no daily rhythm)."""
    for integration in account.integrations:
        if not integration.sync_probability or rng.random() >= integration.sync_probability:
            continue
        ts = hour_start + int(rng.random() * HOUR_MS)
        if ts < integration.connected_ms or ts >= account.churned_ms:
            continue
        event = {
            "type": "integration.data_received",
            "timestamp": None,
            "event_id": None,
            **account.attributes,
            "properties": {
                "integration_id": integration.integration_id,
                "provider": integration.provider,
                "records": rng.randint(1, 5_000),
            },
        }
        out.append((ts, event))


def signup(account: Account, user: User, method: str) -> Event:
    return {
        "type": "signup",
        "timestamp": None,
        "event_id": None,
        **account.attributes,
        "user_id": user.user_id,
        "workspace_id": user.workspace_id,
        "properties": {"role": user.role, "method": method},
    }
