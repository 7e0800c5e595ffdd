"""A Prometheus of a test's own: its folder, a free port, its configuration; stopped at the end.

For tests that import history or load rules without disturbing the shared Prometheus.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ports import free_port


def start_prometheus(
    folder: Path, config: dict[str, Any], retention: str = "10y"
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Prometheus over `folder / "data"`; returns its URL once it answers /-/ready."""
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port, log = free_port(), folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_file}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.retention.time={retention}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                return url, process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"the test Prometheus did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
