"""``routeq demo``: run routeq end to end on the embedded emulator and print what happened.

The demo's worker and jobs use the prefix ``routeq-demo:``, so a production worker on the same
Redis ignores them. On a real Redis (``REDIS_URL``) a run first clears the previous demo's keys and
leaves its own with a TTL (a day at most), for ``routeq dashboard --prefix routeq-demo:``;
``--clean`` removes them now. With no Redis answering, the demo runs on an in-process stand-in,
whose data ends with the process: ``--dashboard`` serves the dashboard on it until Ctrl-C.
``--adaptive`` runs the learn-from-outcomes loop instead: an experiment, simulated feedback,
``report experiment``, ``suggest``, the suggested rules activated, and a second round.
Exit codes: 0; 1 a job failed (or the adaptive loop did not show cost down with quality held);
2 bad usage; 4 Redis.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from worker.cli import exits
from worker.cli.common import fail, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run routeq end to end on the embedded emulator (or --adaptive: the "
                                    "learn-from-outcomes loop)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL; if none answers: an in-process stand-in)")
    p.add_argument("--adaptive", action="store_true",
                   help="experiment, feedback, report, suggest, new rules, second round: one table per step")
    p.add_argument("--json", action="store_true",
                   help="with --adaptive: print the outcome as JSON on stdout (the tables go to stderr)")
    p.add_argument("--dashboard", action="store_true",
                   help="after the demo, serve the dashboard on its data until Ctrl-C (for the stand-in)")
    p.add_argument("--port", type=int, default=8080, help="--dashboard's TCP port (default 8080; 0: any)")
    p.add_argument("--clean", action="store_true",
                   help="delete the demo's keys (prefix routeq-demo:) from Redis and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from producer_client.connection import redis_url

    if args.clean and (args.adaptive or args.dashboard or args.json):
        return fail("demo: --clean runs alone", exits.USAGE)
    if args.json and not args.adaptive:
        return fail("demo: --json goes with --adaptive", exits.USAGE)
    if not 0 <= args.port <= 65535:
        return fail(f"demo: --port {args.port}: not a TCP port (0-65535)", exits.USAGE)
    logging.basicConfig(level=logging.WARNING)
    url = args.redis or redis_url()
    if args.clean:
        return asyncio.run(_clean(url))
    from worker.demo.dashboard import DashboardError, DashboardOptions

    dashboard = DashboardOptions(port=args.port) if args.dashboard else None
    try:
        if args.adaptive:
            return _adaptive(url, args.json, dashboard)
        from worker.demo.basic import run_demo

        results = asyncio.run(run_demo(url, out=sys.stdout, dashboard=dashboard))
    except DashboardError as exc:
        return fail(f"demo --dashboard: {exc}", exits.FAILED)
    return exits.OK if all(r.status == "succeeded" for r in results) else exits.FAILED


def _adaptive(url: str, as_json: bool, dashboard: Any) -> int:
    import asyncio

    from worker.demo.adaptive import run_adaptive

    outcome = asyncio.run(run_adaptive(url, out=sys.stderr if as_json else sys.stdout, dashboard=dashboard))
    if as_json:
        print_json(outcome.doc)
    return exits.OK if outcome.ok else exits.FAILED


async def _clean(url: str) -> int:
    from producer_client.connection import connect, redact
    from worker.demo.housekeeping import DEMO_PREFIX, delete_prefix

    redis = connect(url)
    try:
        removed = await delete_prefix(redis, DEMO_PREFIX)
    finally:
        await redis.aclose()
    print(f"routeq demo --clean: removed {removed} key(s) under {DEMO_PREFIX!r} at {redact(url)}")
    return exits.OK
