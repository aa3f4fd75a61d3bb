"""``routeq health``: the shared circuit breakers and account blocks; ``health clear`` lifts them.

Circuits open on their own after repeated model failures and close after a successful probe; an
account block follows a 401 or 402 and lasts its cooldown. Clearing is for when an operator knows
better (the key was fixed, credits were added, a provider came back).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX
from worker.cli import exits
from worker.cli.common import fail, print_json
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from worker.health import ModelHealth


def register(sub: Any) -> None:
    p = sub.add_parser("health", help="circuit breakers and account blocks (and clear them)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_show)
    cmds = p.add_subparsers(dest="health_command")
    c = cmds.add_parser("clear", help="close a model's circuit, or lift the account blocks ('account')")
    c.add_argument("target", metavar="MODEL|account")
    c.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    c.set_defaults(func=_clear)


def _health(args: argparse.Namespace) -> ModelHealth:
    from producer_client.connection import connect, redis_url
    from worker.health import ModelHealth

    return ModelHealth(connect(args.redis or redis_url()),
                       prefix=env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _show(args: argparse.Namespace) -> int:
    import asyncio

    async def go() -> tuple[Any, Any]:
        health = _health(args)
        try:
            return await health.status(), await health.blocks()
        finally:
            await health.redis.aclose()

    circuits, blocks = asyncio.run(go())
    if args.json:
        print_json({
            "circuits": [asdict(c) for c in circuits],
            "account_blocks": [{"account": a, **asdict(b)} for a, b in blocks.items()],
        })
        return exits.OK
    now = time.time()
    if circuits:
        rows = [[c.model, c.state, c.consecutive_failures, c.last_error or "-", _when(c.open_until)]
                for c in circuits]
        for line in render_table(["model", "circuit", "failures", "last error", "open until"], rows):
            print(line)
    else:
        print("circuits: every model closed (healthy)")
    if blocks:
        rows = [[a, b.error_type, f"{max(0.0, b.until - now):.0f}s", b.message] for a, b in blocks.items()]
        print()
        for line in render_table(["account (key hash)", "blocked for", "left", "why"], rows):
            print(line)
    else:
        print("account blocks: none")
    return exits.OK


def _clear(args: argparse.Namespace) -> int:
    import asyncio

    from worker.health.breaker import ACCOUNT

    async def go() -> int:
        health = _health(args)
        try:
            return await health.clear(args.target)
        finally:
            await health.redis.aclose()

    removed = asyncio.run(go())
    what = "account blocks" if args.target == ACCOUNT else f"circuit of {args.target}"
    if not removed:
        return fail(f"nothing to clear: no {what} in force", exits.FAILED)
    print(f"cleared the {what} ({removed} key{'s' if removed != 1 else ''})")
    return exits.OK
