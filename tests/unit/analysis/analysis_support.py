"""Shared data for the analysis tests: seeded generated histories with a planted truth, test
definitions, and a minimal PNG reader for checking rendered screenshots."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.generate import iter_events, plan_history
from processor.times import parse_time as parse_time_ms

END_MS = parse_time_ms("2026-11-20T00:00:00Z")  # a Friday
DROP_FROM = "2026-11-13T00:00:00Z"

# Candidates for evaluation: the planted north star (reports drive retention), a vanity count of
# logins, and accounts that merely log in.
CANDIDATES_YAML = """
metrics:
  - name: accounts_3plus_reports
    title: Accounts sending 3+ reports a week
    tier: north_star
    window: 7d
    entities:
      key: account_id
      all:
        - event: report.sent
          count_at_least: 3
  - name: weekly_logins
    title: Logins a week
    tier: diagnostic
    parent: accounts_3plus_reports
    window: 7d
    aggregate: {event: login, count: true}
  - name: accounts_with_a_login
    title: Accounts with a login a week
    tier: diagnostic
    parent: accounts_3plus_reports
    window: 7d
    entities:
      key: account_id
      all:
        - event: login
          count_at_least: 1
"""

# A KPI tree for explaining a drop: report volume is hit by a drop in product usage, integration
# syncs (machine traffic) are not.
DROP_TREE_YAML = """
metrics:
  - name: accounts_3plus_reports
    title: Accounts sending 3+ reports a week
    tier: north_star
    window: 7d
    segments: [region, plan]
    entities:
      key: account_id
      all:
        - event: report.sent
          count_at_least: 3
  - name: reports_sent
    tier: diagnostic
    parent: accounts_3plus_reports
    window: 7d
    segments: [region, plan]
    aggregate: {event: report.sent, count: true}
  - name: integration_syncs
    tier: diagnostic
    parent: accounts_3plus_reports
    window: 7d
    segments: [region, plan]
    aggregate: {event: integration.data_received, count: true}
  - name: reports_per_reporting_account
    tier: diagnostic
    parent: accounts_3plus_reports
    window: 7d
    segments: [region]
    formula: reports_sent / reporting_accounts
  - name: reporting_accounts
    tier: granular
    parent: reports_per_reporting_account
    window: 7d
    segments: [region, plan]
    entities:
      key: account_id
      all:
        - event: report.sent
          count_at_least: 1
"""

LIFECYCLE = {"subscription.started", "subscription.renewed", "subscription.churned", "invoice.paid"}


def write_definitions(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.yaml").write_text(text, encoding="utf-8")
    return directory


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def history_with_churn(seed: int = 2) -> list[dict[str, Any]]:
    """About 15 weeks where accounts sending few reports in their first month churn weeks later
    (the generator's --churn-low-usage). Only the event types the candidates and the lifecycle
    read are kept, which keeps the tests fast and changes no value."""
    config = plan_history(seed=seed, accounts=80, days=105, end_ms=END_MS, churn_low_usage=True)
    keep = {"report.sent", "login", *LIFECYCLE}
    return [e for e in iter_events(config) if e["type"] in keep]


def history_with_drop() -> list[dict[str, Any]]:
    """Ten weeks, then 90% of product usage gone in region emea for the last week."""
    from processor.generate import Drop

    drop = Drop(pct=90, from_ms=parse_time_ms(DROP_FROM), field="region", value="emea")
    config = plan_history(seed=4, accounts=100, days=42, end_ms=END_MS, drop=drop)
    keep = {"report.sent", "integration.data_received"}
    return [e for e in iter_events(config) if e["type"] in keep]


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit PNG (what a browser screenshot is)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    position, idat = 8, b""
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), f"unexpected PNG format {depth}/{color}"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        row_filter, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if row_filter == 1:
                line[i] = (line[i] + left) & 0xFF
            elif row_filter == 2:
                line[i] = (line[i] + up) & 0xFF
            elif row_filter == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif row_filter == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + best) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "no chromium to render the report: install it (Debian: apt-get install -y chromium)"
    )


def take_screenshot(page: Path, folder: Path, width: int, height: int) -> Path:
    """A headless Chromium screenshot of `page`, with nothing fetched from the network."""
    screenshot = folder / f"{page.stem}.png"
    subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={folder / 'profile'}",
            f"--screenshot={screenshot}",
            f"--window-size={width},{height}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return screenshot
