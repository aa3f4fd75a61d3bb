"""``routeq dashboard``: serve the read-only web dashboard until Ctrl-C.

It binds to loopback by default. ``--token`` (or ``ROUTEQ_DASHBOARD_TOKEN``, which keeps the token
out of the process list) makes the page and its data require ``Authorization: Bearer T`` or
``?token=T``; serving beyond loopback without one prints a warning.

With no prefix asked for (neither ``--prefix`` nor ``ROUTEQ_PREFIX``) and nothing under the default
one, it shows the last ``routeq demo``'s keys (prefix ``routeq-demo:``) if there are any, and says
so: ``./dev demo`` then ``routeq dashboard`` shows the demo's jobs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.cli import exits

if TYPE_CHECKING:
    from redis.asyncio import Redis

LOOPBACK = ("127.0.0.1", "::1", "localhost")


async def _has_data(redis: Redis, keys: Keys) -> bool:
    """Has a fleet or a demo ever run under ``keys``: its decisions stream or worker registry."""
    return bool(await redis.exists(keys.decisions, keys.workers))


async def choose_prefix(redis: Redis, asked: str | None) -> tuple[str, str | None]:
    """(prefix to show, a note when it fell back to the demo's) for an explicit or absent ask."""
    from worker.demo.housekeeping import DEMO_PREFIX

    if asked is not None:
        return asked, None
    if await _has_data(redis, Keys(DEFAULT_PREFIX)) or not await _has_data(redis, Keys(DEMO_PREFIX)):
        return DEFAULT_PREFIX, None
    return DEMO_PREFIX, (f"nothing under {DEFAULT_PREFIX!r} yet; showing the last demo's keys "
                         f"({DEMO_PREFIX!r}); --prefix chooses")


def register(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="a read-only web dashboard over the rollups and live state")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this host only)")
    p.add_argument("--token", help="require this bearer token (default: $ROUTEQ_DASHBOARD_TOKEN, else none)")
    p.add_argument("--prefix", help="key prefix to show (default: $ROUTEQ_PREFIX, else 'routeq:', or "
                   "the last demo's 'routeq-demo:' when 'routeq:' holds nothing)")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from producer_client.connection import connect, redact, redis_url
    from worker.dashboard.serve import DashboardError, DashboardOptions, serving

    token = args.token or env_str(os.environ, "ROUTEQ_DASHBOARD_TOKEN", "") or None
    asked = args.prefix or env_str(os.environ, "ROUTEQ_PREFIX", "") or None
    url = args.redis or redis_url()
    if token is None and args.host not in LOOPBACK:
        print(f"routeq dashboard: warning: serving on {args.host} without a token: anyone who can reach "
              "it sees your models, rules, budgets and workers (set --token)", file=sys.stderr)

    async def serve() -> int:
        redis = connect(url)
        try:
            prefix, note = await choose_prefix(redis, asked)
            if note:
                print(f"routeq dashboard: {note}", file=sys.stderr)
            async with serving(redis, Keys(prefix), DashboardOptions(args.host, args.port, token)) as where:
                need = " (token required: add ?token=... to open it)" if token else ""
                print(f"routeq dashboard on {where} for prefix {prefix!r} on {redact(url)}{need}", flush=True)
                stop = asyncio.Event()  # Ctrl-C ends it with 130; SIGTERM (a container stop) with 0
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
                await stop.wait()
                return exits.OK
        except DashboardError as exc:
            print(f"routeq dashboard: {exc}", file=sys.stderr)
            return exits.FAILED
        finally:
            await redis.aclose()

    return asyncio.run(serve())
