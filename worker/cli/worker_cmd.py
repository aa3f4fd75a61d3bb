"""``routeq worker``: the same process ``python -m worker`` runs (the Procfile's worker type).

``routeq worker --check`` is a container liveness probe: exit 0 when a worker on this host (its
heartbeat names this hostname) beat within the last three intervals, 1 otherwise. arq's own
check reads one health key per queue that every worker overwrites and any worker's shutdown
deletes, so it can say "alive" for a dead worker and "dead" for a live one; each routeq worker's
heartbeat key is its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.cli import exits


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker (settings from the environment, see README)")
    p.add_argument("--check", action="store_true",
                   help="liveness probe: exit 0 if a worker on this host has a fresh heartbeat, else 1")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args)
    import os

    from worker.serve import main

    if args.redis:
        os.environ["REDIS_URL"] = args.redis  # the worker reads its settings from the environment
    return main()


def _check(args: argparse.Namespace) -> int:
    import asyncio
    import socket

    from producer_client.connection import connect, redis_url
    from worker.observe.workers import fresh, on_this_host, read_workers

    keys = Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))
    host = socket.gethostname()

    async def go() -> list[Any]:
        redis = connect(args.redis or redis_url(), socket_timeout_s=5.0, retries=0)
        try:
            return on_this_host(await read_workers(redis, keys), host)
        finally:
            await redis.aclose()

    mine = asyncio.run(go())
    now_ms = int(time.time() * 1000)
    alive = [w for w in mine if fresh(w, now_ms)]
    if not alive:
        print(f"routeq worker --check: no worker on {host} has a fresh heartbeat under prefix "
              f"{keys.prefix!r}", file=sys.stderr)
        return exits.FAILED
    names = ", ".join(f"{w.name} ({(now_ms - w.last_beat_ms) / 1000:.1f}s ago)" for w in alive)
    print(f"ok: {names}")
    return exits.OK
