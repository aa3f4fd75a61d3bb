"""``routeq failed`` and ``routeq retry``: the dead letters on the command line.

Redis comes from ``--redis`` or ``$REDIS_URL``, the key prefix from ``$ROUTEQ_PREFIX``. Retries go
to the batch queue unless told otherwise: replaying dead letters must not crowd out live
interactive traffic.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, QUEUES, Keys
from worker.cli.common import fail, print_json
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from redis.asyncio import Redis

    from worker.deadletters import DeadLetter

MESSAGE_CHARS = 80


def _connect(url: str) -> Redis:
    from producer_client.connection import connect

    return connect(url)


# How commands get a Redis client; tests swap in fakeredis.
connect_redis: Callable[[str], Redis] = _connect


def register(sub: Any) -> None:
    f = sub.add_parser("failed", help="list failed jobs (dead letters), newest first")
    f.add_argument("--limit", type=_positive_int, default=50, help="at most this many (default 50)")
    f.add_argument("--since", type=_iso_ms, help="only jobs failed at or after this ISO time (naive = UTC)")
    f.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    f.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    f.set_defaults(func=_failed)

    r = sub.add_parser("retry", help="re-queue failed jobs under their own ids")
    r.add_argument("job_id", nargs="?", help="the failed job to re-queue")
    r.add_argument("--all", action="store_true", help="re-queue every failed job still kept")
    r.add_argument("--error-type", metavar="TYPE", help="with --all: only jobs that failed with TYPE")
    r.add_argument("--queue", choices=QUEUES, default="batch", help="queue to re-queue on (default batch)")
    r.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    r.set_defaults(func=_retry)


def _failed(args: argparse.Namespace) -> int:
    from worker.deadletters import list_failed

    async def go(redis: Redis, keys: Keys) -> int:
        letters = await list_failed(redis, keys, limit=args.limit, since_ms=args.since)
        if args.json:
            print_json([d.to_dict() for d in letters])
        elif letters:
            _print_table(letters)
        else:
            print("no failed jobs")
        return 0

    return _run(args, go)


def _retry(args: argparse.Namespace) -> int:
    if args.all == (args.job_id is not None):
        return fail("give a job id or --all", 2)
    if args.error_type and not args.all:
        return fail("--error-type only goes with --all", 2)
    from producer_client.client import Client
    from producer_client.envvars import env_int
    from worker.deadletters import RetryRefused, list_failed, requeue

    # Backpressure as for any producer: a full queue refuses the retry (nothing changes).
    depth = env_int(os.environ, "ROUTEQ_MAX_QUEUE_DEPTH", 0, low=0)

    async def go(redis: Redis, keys: Keys) -> int:
        client = Client(redis, prefix=keys.prefix, queue=args.queue, url_for_errors=_where(args),
                        max_queue_depth=depth)
        if not args.all:
            await requeue(client, args.job_id)
            print(f"re-queued {args.job_id} on {args.queue}")
            return 0
        letters = await list_failed(redis, keys, limit=None)
        chosen = [d.job_id for d in reversed(letters) if args.error_type in (None, d.error_type)]
        refused = 0
        for job_id in chosen:  # oldest first
            try:
                await requeue(client, job_id)
            except RetryRefused as exc:
                refused += 1
                print(f"routeq: {exc}", file=sys.stderr)
        print(f"re-queued {len(chosen) - refused} of {len(chosen)} failed job(s) on {args.queue}")
        return 1 if refused else 0

    return _run(args, go)


def _run(args: argparse.Namespace, go: Callable[[Redis, Keys], Awaitable[int]]) -> int:
    import asyncio

    from producer_client.connection import redis_url
    from producer_client.errors import RedisUnavailable, RouteqError

    async def main() -> int:
        redis = connect_redis(args.redis or redis_url())
        try:
            return await go(redis, Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX)))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except RedisUnavailable:
        raise  # the command line's handler reports it (exit 4)
    except RouteqError as exc:
        return fail(str(exc))


def _print_table(letters: Sequence[DeadLetter]) -> None:
    head = ("JOB ID", "FAILED AT (UTC)", "ERROR", "RULE", "MODEL", "ATTEMPTS", "MESSAGE")
    rows = [
        (
            d.job_id,
            d.failed_at[:19].replace("T", " "),
            d.error_type or "-",
            d.rule or "-",
            d.model or "-",
            str(d.attempts),
            _clip(d.message or ""),
        )
        for d in letters
    ]
    for line in render_table(head, rows):
        print(line)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 3] + "..."


def _where(args: argparse.Namespace) -> str:
    from producer_client.connection import redact, redis_url

    return redact(args.redis or redis_url())


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _iso_ms(raw: str) -> int:
    """An ISO-8601 time as epoch ms (the failed index's score); naive times are UTC."""
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO time (e.g. 2026-11-22T13:05:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
