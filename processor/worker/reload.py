"""Reloading the definitions without a restart: on SIGHUP, and with `--watch-definitions` when
the files change.

A new set is validated like `nsm validate` does. An invalid one is rejected: every problem is
logged as `file:line: message`, `nsm_definitions_reloads_total{outcome="rejected"}` counts it,
and the running set keeps running. A valid one is run from then on (`Worker.reload`): metrics
that are new or defined differently are rebuilt from the topic in the background, removed ones
are deleted, and the others go on as they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from processor.definitions import DefinitionsNotFound, inspect_definitions
from processor.definitions.loader import definition_files
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry

log = logging.getLogger("nsm.worker.reload")


def definitions_digest(path: str | Path) -> str:
    """A digest of the definition files' names and contents ("" when there are none)."""
    digest = hashlib.sha256()
    try:
        files = definition_files(Path(path))
    except DefinitionsNotFound:
        return ""
    for file in files:
        digest.update(file.name.encode() + b"\0")
        try:
            digest.update(file.read_bytes())
        except OSError:
            digest.update(b"\0unreadable")
        digest.update(b"\0")
    return digest.hexdigest()


class Reloader:
    def __init__(self, worker: Worker, path: str, telemetry: Telemetry) -> None:
        self.worker = worker
        self.path = path
        self.telemetry = telemetry
        self._digest = definitions_digest(path)
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> bool:
        """Read the definitions again and run them if they are valid; True when they run."""
        async with self._lock:
            self._digest = definitions_digest(self.path)
            try:
                report = inspect_definitions(self.path)
            except DefinitionsNotFound as exc:
                self._reject(why, [str(exc)])
                return False
            if report.catalog is None:
                self._reject(why, [str(p) for p in report.problems])
                return False
            await self.worker.reload(report.catalog)
            self.telemetry.reloads.labels(outcome="applied").inc()
            log.info("definitions reloaded", extra={"why": why, "path": self.path,
                                                    "metrics": len(report.catalog)})  # fmt: skip
            return True

    def _reject(self, why: str, problems: list[str]) -> None:
        self.telemetry.reloads.labels(outcome="rejected").inc()
        log.error(
            "definitions reload rejected: the running definitions are kept",
            extra={"why": why, "path": self.path, "problems": problems},
        )
        for problem in problems:
            log.error(problem)

    async def watch(self, interval_s: float) -> None:
        """Reload whenever the files' digest changes (polled, so it works on any filesystem)."""
        while True:
            await asyncio.sleep(interval_s)
            if definitions_digest(self.path) != self._digest:
                await self.reload("definition files changed")
