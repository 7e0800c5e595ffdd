"""`nsm replay --wait`: Kafka and Redis are tried until they answer or the wait is over."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from processor.config import Settings
from processor.replay.source import consumer_options
from processor.store.client import UNAVAILABLE, connect

# The first retry after a second, then twice as long each time, up to half a minute.
FIRST_RETRY_S, LONGEST_RETRY_S = 1.0, 30.0


class ServicesUnavailable(Exception):
    """Kafka or Redis did not answer within the wait; the message names which and why."""


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _missing(redis_url: str, bootstrap: str, settings: Settings) -> dict[str, str]:
    missing: dict[str, str] = {}
    try:
        # Connecting asks the server whether it is a cluster node: that is the check.
        client = await connect(redis_url)
        await client.aclose()
    except UNAVAILABLE as error:
        missing[f"redis ({settings.redis_url_for_logs})"] = _short(error)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **consumer_options(settings))
    try:
        await admin.start()  # bootstraps: asks the cluster for its brokers
    except (KafkaError, OSError) as error:
        missing[f"kafka ({bootstrap})"] = _short(error)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return missing


async def wait_for_services(
    redis_url: str, bootstrap: str, settings: Settings, wait_s: float,
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """Return once Redis and Kafka answer; one line per failed attempt through `say`; raise
    ServicesUnavailable when they still do not after `wait_s` seconds (0: one attempt)."""
    deadline = time.monotonic() + wait_s
    delay = FIRST_RETRY_S
    for attempt in itertools.count(1):
        missing = await _missing(redis_url, bootstrap, settings)
        if not missing:
            return
        reasons = "; ".join(f"{name}: {error}" for name, error in missing.items())
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServicesUnavailable(
                f"{' and '.join(missing)} did not answer within {wait_s:g} s ({reasons}); "
                "start them, or wait longer with --wait"
            )
        pause = min(delay, left)
        say(f"nsm replay: waiting for {' and '.join(missing)} (attempt {attempt}: {reasons}); "
            f"next try in {pause:.0f} s")  # fmt: skip
        await asyncio.sleep(pause)
        delay = min(delay * 2, LONGEST_RETRY_S)
