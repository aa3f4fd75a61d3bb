"""``routeq budget status`` and ``routeq budget reset SCOPE``: what operators see and undo."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX
from producer_client.money import nano_to_usd
from worker.cli.common import fail, print_json
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from worker.budget import BudgetState
    from worker.budget.ledger import BudgetLedger


def register(sub: Any) -> None:
    p = sub.add_parser("budget", help="inspect or reset budget counters")
    cmds = p.add_subparsers(dest="budget_command", required=True)
    st = cmds.add_parser("status", help="each budget counter: scope, window, spent, reserved, limit, %% used")
    st.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    st.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    st.set_defaults(func=_status)
    rs = cmds.add_parser("reset", help="zero the spend of counters (in-flight reservations are kept)")
    rs.add_argument("scope", help="a budget name (per-user), a scope value (user:u-42) or a full key")
    rs.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    rs.set_defaults(func=_reset)


def _ledger(args: argparse.Namespace) -> BudgetLedger:
    from producer_client.connection import connect, redis_url
    from worker.budget.ledger import BudgetLedger

    url = args.redis or redis_url()
    return BudgetLedger(connect(url), prefix=env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))


def _status(args: argparse.Namespace) -> int:
    import asyncio

    async def go() -> list[BudgetState]:
        ledger = _ledger(args)
        try:
            return await ledger.status_all()
        finally:
            await ledger.redis.aclose()

    states = asyncio.run(go())
    if args.json:
        for s in states:
            print_json({**s.as_dict(), "used_pct": _pct(s)})
        return 0
    if not states:
        print("no budget counters yet (budgets are declared in the rules file; counters appear on first use)")
        return 0
    headers = ["budget", "scope", "window", "spent USD", "reserved USD", "limit USD", "used"]
    rows = [[s.name, s.scope, s.window, nano_to_usd(s.spent_nano), nano_to_usd(s.reserved_nano),
             nano_to_usd(s.limit_nano), _pct(s)] for s in states]
    for line in render_table(headers, rows):
        print(line)
    return 0


def _pct(s: BudgetState) -> str:
    return f"{s.used_ratio * 100:.1f}%"


def _reset(args: argparse.Namespace) -> int:
    import asyncio

    async def go() -> int:
        ledger = _ledger(args)
        try:
            return await ledger.reset(args.scope)
        finally:
            await ledger.redis.aclose()

    count = asyncio.run(go())
    if count == 0:
        return fail(f"no budget counter matches {args.scope!r} (see `routeq budget status`)")
    print(f"reset {count} counter(s) matching {args.scope!r}")
    return 0
