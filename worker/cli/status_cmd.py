"""``routeq status [--json] [--watch [SECONDS]]``: the fleet at a glance, like ``rq info``.

Queues (depth, oldest waiting job, in and out per minute), live and lost workers from their
heartbeats, circuits and account blocks, budget lines and the active rules version. ``--watch``
redraws until Ctrl-C; with ``--json`` it prints one document per line instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from producer_client.money import nano_to_usd
from worker.cli import exits
from worker.cli.common import print_json, with_redis
from worker.cli.table import render_table

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from worker.observe.fleet import FleetStatus

DEFAULT_WATCH_S = 2.0
MAX_LOST_SHOWN = 10  # the most recently silent; --json lists them all
_CLEAR = "\x1b[H\x1b[2J"


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="queues, workers, circuits, budgets and rules at a glance")
    p.add_argument("--json", action="store_true", help="one JSON document (one per redraw with --watch)")
    p.add_argument("--watch", nargs="?", type=_interval, const=DEFAULT_WATCH_S, metavar="SECONDS",
                   help=f"redraw every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C")
    p.add_argument("--queue", action="append", default=[], metavar="NAME",
                   help="also show this queue (the default ones and those workers serve are shown)")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_run)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("between 0.1 and 3600 seconds")
    return value


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from worker.observe.fleet import fleet_status

    keys = Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))

    async def go(redis: Redis) -> None:
        while True:
            status = await fleet_status(redis, keys, queues=args.queue)
            if args.json:
                print_json(status.as_dict())
            else:
                _draw(render_status(status), watching=bool(args.watch))
            if not args.watch:
                return
            await asyncio.sleep(args.watch)

    with_redis(args.redis, go)
    return exits.OK


def _draw(lines: list[str], *, watching: bool) -> None:
    """A redraw clears a terminal; into a pipe or file, frames are separated by a blank line."""
    text = "\n".join(lines) + "\n"
    if watching:
        text = _CLEAR + text if sys.stdout.isatty() else text + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def render_status(s: FleetStatus) -> list[str]:
    """The text view (the JSON one is ``FleetStatus.as_dict``)."""
    lines = [f"routeq status  prefix {s.prefix!r}  at {_iso(s.at_ms / 1000)}  rules: {_rules(s)}", ""]
    est = "~" if s.flow.estimated else ""
    flow_in, flow_out = s.flow.in_per_min, s.flow.out_per_min
    rows = [[q.name, q.depth, q.ready, q.running, _age(q.oldest_ready_age_s),
             f"{est}{_rate(flow_in.get(q.name, 0.0))}", f"{est}{_rate(flow_out.get(q.name, 0.0))}"]
            for q in s.queues]
    unattributed = s.flow.out_per_min.get("", 0.0)
    if unattributed:
        rows.append(["(queue not recorded)", "", "", "", "", "", f"{est}{_rate(unattributed)}"])
    lines += render_table(["queue", "depth", "ready", "running", "oldest ready", "in/min", "out/min"], rows,
                          align="<>>>>>>")
    lines.append("")
    lines += _workers(s)
    lines.append("")
    lines += _health(s)
    lines.append("")
    lines += _budgets(s)
    return lines


def _rules(s: FleetStatus) -> str:
    r = s.rules
    if r is None:
        return "no version active (each worker uses its rules file)"
    text = f"version {r.number}"
    if r.hash:
        text += f" {r.hash}"
    if r.message:
        text += f" {r.message!r}"
    if r.created_ms:
        text += f" (activated version made {_iso(r.created_ms / 1000)}{f' by {r.by}' if r.by else ''})"
    return text


def _workers(s: FleetStatus) -> list[str]:
    if not s.workers:
        return ["workers: none (no heartbeat under this prefix: check REDIS_URL and ROUTEQ_PREFIX)"]
    rows = []
    lost_shown = 0
    for w in s.workers:
        if w.state == "lost":
            lost_shown += 1
            if lost_shown > MAX_LOST_SHOWN:
                continue
            rows.append([w.name, f"LOST (silent {_age(w.silent_s(s.at_ms))})", *[""] * 9])
            continue
        d = w.doc
        rows.append([
            w.name, "live", d.get("host", "-"), d.get("pid", "-"), ",".join(w.queues),
            f"{d.get('slots_used', '-')}/{d.get('slots', '-')}", d.get("jobs_per_s", "-"),
            _version(d.get("rules_number"), d.get("rules_version")),
            _catalog(d),
            _age(float(d["uptime_s"])) if "uptime_s" in d else "-", _last_error(d, s.at_ms),
        ])
    live = sum(w.state == "live" for w in s.workers)
    hidden = max(0, lost_shown - MAX_LOST_SHOWN)
    more = [f"... and {hidden} more lost (listed for a day after going silent; see --json)"] if hidden else []
    head = ["worker", "state", "host", "pid", "queues", "slots", "jobs/s", "rules", "catalog", "uptime",
            "last error"]
    return [f"workers: {live} live, {len(s.workers) - live} lost",
            *render_table(head, rows, align="<<<><>><<>"), *more]


def _health(s: FleetStatus) -> list[str]:
    troubled = [c for c in s.circuits if c.state != "closed" or c.consecutive_failures]
    lines = []
    if troubled:
        rows = [[c.model, c.state, c.consecutive_failures, c.last_error or "-",
                 _iso(c.open_until) if c.open_until else "-"] for c in troubled]
        lines += render_table(["model", "circuit", "failures", "last error", "open until"], rows)
    else:
        lines.append(f"circuits: every model closed ({len(s.circuits)} tracked)")
    now = s.at_ms / 1000
    if s.account_blocks:
        rows = [[a, b.error_type, _age(max(0.0, b.until - now)), b.message]
                for a, b in s.account_blocks.items()]
        lines += render_table(["account (key hash)", "blocked for", "left", "why"], rows)
    else:
        lines.append("account blocks: none")
    return lines


def _budgets(s: FleetStatus) -> list[str]:
    if not s.budgets:
        return ["budgets: no counters yet"]
    rows = [[b.name, b.scope, b.window, nano_to_usd(b.spent_nano), nano_to_usd(b.reserved_nano),
             nano_to_usd(b.limit_nano), f"{b.used_ratio * 100:.1f}%"] for b in s.budgets]
    return render_table(["budget", "scope", "window", "spent USD", "reserved USD", "limit USD", "used"], rows,
                        align="<<<>>>>")


def _last_error(doc: Mapping[str, Any], now_ms: int) -> str:
    err, at = doc.get("last_error"), doc.get("last_error_at")
    if doc.get("rules_error"):  # a rules version this worker could not load outranks job errors
        err, at = f"rules: {doc['rules_error']}", doc.get("rules_error_at")
    if not err:
        return "-"
    ago = f" ({_age(now_ms / 1000 - float(at))} ago)" if at else ""
    return f"{' '.join(str(err).split())[:100]}{ago}"


def _catalog(doc: Mapping[str, Any]) -> str:
    version = _version(doc.get("catalog_number"), doc.get("catalog_version"))
    models = doc.get("catalog_models")
    if models is None:
        return version
    return f"{'file' if version == '-' else version} ({models})"


def _version(number: Any, version: Any) -> str:
    """``v3`` for a version stored in Redis (a number), a short content hash for a file's."""
    if number is None and isinstance(version, int) and not isinstance(version, bool):
        number = version
    if number is not None:
        return f"v{number}"
    if version:
        text = str(version)
        return text.removeprefix("sha256:")[:12]
    return "-"


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

