"""Stable Grafana uids: the same definitions give the same uids, so links and bookmarks survive a
regeneration. Grafana caps uids at 40 characters; longer names keep a readable start and a hash."""

from __future__ import annotations

import hashlib

MAX_UID = 40
DATASOURCE_UID = "nsm-prometheus"  # fixed in grafana/provisioning/datasources/prometheus.yml
OVERVIEW_UID = "nsm-overview"
PROCESSOR_UID = "nsm-processor"


def stable_uid(kind: str, name: str) -> str:
    uid = f"nsm-{kind}-{name}"
    if len(uid) <= MAX_UID:
        return uid
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{uid[: MAX_UID - len(digest) - 1]}-{digest}"


def north_star_uid(metric: str) -> str:
    # No kind in the middle: most metric names then fit whole in the 40 characters.
    uid = f"nsm-{metric}"
    return (
        uid
        if len(uid) <= MAX_UID and uid not in (OVERVIEW_UID, PROCESSOR_UID)
        else stable_uid("ns", metric)
    )
