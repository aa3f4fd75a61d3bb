"""``routeq demo``: run the main job against the built-in emulator and print the routing table."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run a mixed set of jobs end to end on the embedded emulator")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL, else an in-process stand-in)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(run_demo(args.redis))
    return 0 if all(r.status == "succeeded" for r in results) else 1
