"""Small helpers the CLI commands share."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from worker.cli import exits

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")


def print_json(doc: Any, *, pretty: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.write(orjson.dumps(doc, option=option | orjson.OPT_APPEND_NEWLINE).decode())
    sys.stdout.flush()


def parse_json_arg(raw: str, what: str) -> Any:
    """A JSON command-line argument, or one line naming the argument and the problem, then
    SystemExit with the usage exit code (2: bad input, nothing was done)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        print(f"routeq: {what} is not valid JSON: {exc}", file=sys.stderr)
        raise SystemExit(exits.USAGE) from None


def fail(message: str, code: int = 1) -> int:
    print(f"routeq: {message}", file=sys.stderr)
    return code


def with_redis(url: str | None, work: Callable[[Redis], Awaitable[T]], **connect_args: Any) -> T:
    """Run ``work`` on a connection to ``url`` (default ``$REDIS_URL``) and close it after: the
    shape of every command that reads or writes Redis once."""
    import asyncio

    from producer_client.connection import connect, redis_url

    async def go() -> T:
        redis = connect(url or redis_url(), **connect_args)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def pinned_catalog() -> str | None:
    """``$ROUTEQ_CATALOG``: a catalog file pinned for the fleet (None: Redis or the shipped one)."""
    import os

    from producer_client.envvars import env_str

    return env_str(os.environ, "ROUTEQ_CATALOG", "") or None
