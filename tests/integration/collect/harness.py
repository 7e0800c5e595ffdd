"""`nsm collect` as a real process on a free port, and what the tests send it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.integration.worker.harness import NSM, Scrape, free_port, parse_metrics, wait_until

WRITE_KEY = "test-write-key"


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


class CollectorProcess:
    """`nsm collect` in a subprocess of its own session, with its log in the test's folder."""

    def __init__(
        self,
        *,
        topic: str,
        bootstrap: str,
        workdir: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"collect-{self.port}.log"
        self.workdir = workdir
        self.env = {
            **os.environ,
            "NSM_TOPIC": topic,
            "NSM_KAFKA_BOOTSTRAP": bootstrap,
            "NSM_COLLECT_PORT": str(self.port),
            "NSM_COLLECT_HOST": "127.0.0.1",
            "NSM_COLLECT_WRITE_KEYS": f"other-key,{WRITE_KEY}",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(NSM), "collect"], cwd=self.workdir, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def post(
        self,
        path: str,
        body: bytes | Mapping[str, Any],
        key: str | None = WRITE_KEY,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", basic_auth(key))
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def health(self) -> int | None:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, urllib.error.URLError):
            return None

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            return parse_metrics(response.read().decode())

    def wait_ready(self, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"nsm collect exited:\n{self.log_tail()}")
            return self.health() == 200

        try:
            wait_until(ready, timeout_s, "nsm collect /health 200")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tail()}") from None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
