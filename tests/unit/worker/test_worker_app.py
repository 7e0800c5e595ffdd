"""The faust app around the worker: settings that decide how fast a restarted worker starts."""

from __future__ import annotations

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.worker.app import SESSION_TIMEOUT_S, create_app


def test_a_worker_killed_without_leaving_its_groups_is_replaced_within_the_session_timeout():
    # faust's default (60 s) held every restart after kill -9 back for a minute.
    app = create_app(Settings(namespace="unit"), Catalog(metrics={}), tick_seconds=1.0)
    assert SESSION_TIMEOUT_S <= 10
    assert app.conf.broker_session_timeout == SESSION_TIMEOUT_S
    assert app.conf.broker_rebalance_timeout == SESSION_TIMEOUT_S
