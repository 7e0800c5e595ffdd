"""Shared by `nsm replay`, `nsm namespace` and `nsm history`: options and the Redis client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from processor.config import Settings
from processor.store.client import UNAVAILABLE, RedisClient, RedisUrlError, connect
from processor.store.namespaces import NamespaceError

T = TypeVar("T")


def redis_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--redis-url",
        envvar="NSM_REDIS_URL",
        default=None,
        metavar="URL",
        help="Redis URL, a server or any node of a Redis Cluster [env NSM_REDIS_URL, "
        "redis://127.0.0.1:6379/0].",
    )(function)


def live_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--live",
        envvar="NSM_NAMESPACE",
        default="live",
        show_default=True,
        help="The logical namespace the workers serve [env NSM_NAMESPACE].",
    )(function)


def run_with_redis(redis_url: str | None, work: Callable[[RedisClient], Awaitable[T]]) -> T:
    """Run `work` with a Redis client; a refusal becomes a clean error message."""
    url = redis_url or Settings().redis_url.get_secret_value()

    async def main() -> T:
        client = await connect(url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except NamespaceError as error:
        raise click.ClickException(str(error)) from None
    except RedisUrlError as error:
        raise click.ClickException(str(error)) from None
    except UNAVAILABLE as error:
        raise click.ClickException(
            f"cannot reach Redis ({type(error).__name__}): {error}"
        ) from None
