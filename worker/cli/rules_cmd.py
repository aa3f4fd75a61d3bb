"""``routeq rules``: validate rules files, and manage the versioned rules workers load from Redis.

``check`` validates a file. ``push`` stores a validated file as a new immutable version (and
``--activate`` makes workers switch to it); ``activate`` switches to any stored version (a
rollback is activating an older one); ``--expect N`` on both is a compare-and-swap on the active
version, so two operators cannot silently overwrite each other (exit 3 when it loses). ``list``,
``show``, ``diff`` and ``audit`` read the record; ``status`` shows what every worker runs.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.cli import exits
from worker.cli.common import fail, pinned_catalog, print_json, with_redis
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from redis.asyncio import Redis

    from worker.catalog import Catalog
    from worker.rules import RuleSet
    from worker.rules_store import AuditEntry, RulesStore, StoredRules, WorkerRules

T = TypeVar("T")
_NUMBER = re.compile(r"[0-9]+")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rules", help="validate routing rules; version and activate them in Redis")
    commands = parser.add_subparsers(dest="rules_command", required=True)
    check = commands.add_parser(
        "check",
        help="validate a rules file and print its version",
        description="Validate a rules file; every problem is printed with its JSON path. Exit 1 if any.",
    )
    check.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="rules file (default: $ROUTEQ_RULES, else the shipped rules)",
    )
    check.set_defaults(func=check_command)

    push = commands.add_parser(
        "push", help="store a rules file as a new version (validated as by `check`)",
        description="Validate FILE as `routeq rules check` does, then store it as a new immutable version "
                    'and print {"version", "hash", "active"}. Exit 1 (nothing stored) if it has problems, '
                    "3 if --expect lost.")
    push.add_argument("file", type=Path, metavar="FILE")
    push.add_argument("--message", "-m", default="", help="why (kept with the version and in the audit)")
    push.add_argument("--activate", action="store_true", help="also make it the active version, atomically")
    _cas_args(push)
    push.set_defaults(func=push_command)

    lst = commands.add_parser("list", help="stored versions, newest first, and which is active")
    lst.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _redis_arg(lst)
    lst.set_defaults(func=list_command)

    show = commands.add_parser("show", help="the document of a stored version (default: the active one)")
    show.add_argument("number", nargs="?", type=_version_number, metavar="N")
    _redis_arg(show)
    show.set_defaults(func=show_command)

    diff = commands.add_parser(
        "diff", help="what changes from A to B, per rule and field",
        description="Compare two rules documents. Each side is a version number, 'active', or a file "
                    "path (write ./3 for a file named 3), so `routeq rules diff active ./rules.json` "
                    "shows what a push would change.")
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")
    diff.add_argument("--json", action="store_true", help="one JSON document instead of text")
    _redis_arg(diff)
    diff.set_defaults(func=diff_command)

    act = commands.add_parser(
        "activate", help="make a stored version the active one (an older one: a rollback)",
        description='Switch every worker to version N; prints {"version", "previous"}. Exit 3 if --expect '
                    "lost, 1 if N is not stored.")
    act.add_argument("number", type=_version_number, metavar="N")
    act.add_argument("--message", "-m", default="", help="why (kept in the audit)")
    _cas_args(act)
    act.set_defaults(func=activate_command)

    status = commands.add_parser("status", help="the active version and the version each worker runs")
    status.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    _redis_arg(status)
    status.set_defaults(func=status_command)

    audit = commands.add_parser("audit", help="pushes and activations, newest first: who, when, what")
    audit.add_argument("--limit", type=_version_number, default=50, help="how many entries (default 50)")
    audit.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    _redis_arg(audit)
    audit.set_defaults(func=audit_command)


def _redis_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")


def _cas_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--expect", type=_expected, metavar="N",
                        help="refuse (exit 3) unless version N is the active one (0: none is active)")
    parser.add_argument("--by", default=None, help="who (default: the OS user)")
    _redis_arg(parser)


def _version_number(text: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _expected(text: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a version number (0: none active), got {text!r}")
    return int(text)


def load_or_report(path: Path | None, catalog: Catalog | None = None) -> RuleSet | None:
    """The rule set checked against the catalog (default: ``$ROUTEQ_CATALOG`` or the shipped one),
    or None after printing its problems to stderr (shared with ``route``)."""
    from worker.catalog import Catalog
    from worker.rules import RulesError, load_rules
    from worker.shipped import rules_file

    source = path if path is not None else rules_file()
    try:
        return load_rules(source, catalog=catalog if catalog is not None else Catalog.load())
    except RulesError as exc:
        count = len(exc.problems)
        print(f"{source}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        print(exc, file=sys.stderr)
        return None


def check_command(args: argparse.Namespace) -> int:
    rules = load_or_report(args.path)
    if rules is None:
        return 1
    print(f"ok: {len(rules.rules)} rules, version {rules.version} ({rules.source})")
    return 0


# -- the versioned rules in Redis --------------------------------------------------------------


def _with_store(args: argparse.Namespace, work: Callable[[RulesStore], Awaitable[T]]) -> T:
    from worker.rules_store import RulesStore

    async def go(redis: Redis) -> T:
        return await work(RulesStore(redis, Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))))

    return with_redis(args.redis, go)


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (containers)
        return "unknown"


def push_command(args: argparse.Namespace) -> int:
    from worker.catalog_store import fleet_catalog
    from worker.rules_store import VersionConflict, canonical_json, content_hash

    # Checked against the catalog the workers compile with (the one active in Redis, unless a
    # file is pinned): a version this accepts is one every worker can load.
    catalog, _ = _with_store(args, lambda store: fleet_catalog(
        store.redis, store.keys, pinned_catalog()))
    rules = load_or_report(args.file, catalog)
    if rules is None:
        return exits.FAILED
    doc = orjson.loads(args.file.read_bytes())
    if content_hash(canonical_json(doc)) != rules.version:
        return fail(f"{args.file} changed while it was being checked; nothing was stored", exits.FAILED)
    try:
        pushed = _with_store(args, lambda store: store.push(
            doc, message=args.message, by=_by(args), activate=args.activate, expect=args.expect))
    except VersionConflict as exc:
        return fail(f"rules push: {exc}", exits.CONFLICT)
    print_json({"version": pushed.version, "hash": pushed.hash, "active": pushed.active})
    return exits.OK


def activate_command(args: argparse.Namespace) -> int:
    from worker.rules_store import UnknownVersion, VersionConflict

    try:
        done = _with_store(args, lambda store: store.activate(
            args.number, by=_by(args), expect=args.expect, message=args.message))
    except VersionConflict as exc:
        return fail(f"rules activate: {exc}", exits.CONFLICT)
    except UnknownVersion as exc:
        return fail(f"rules activate: {exc} (see `routeq rules list`)", exits.FAILED)
    print_json({"version": done.version, "previous": done.previous})
    return exits.OK


def list_command(args: argparse.Namespace) -> int:
    async def work(store: RulesStore) -> tuple[int | None, list[Any]]:
        return await store.active(), await store.versions()

    active, versions = _with_store(args, work)
    if args.json:
        for v in versions:
            print_json({"version": v.number, "hash": v.hash, "created": _iso_ms(v.created_ms),
                        "created_ms": v.created_ms, "by": v.by, "message": v.message,
                        "active": v.number == active})
        return exits.OK
    if not versions:
        print("no rules versions in Redis: workers use their rules file")
        return exits.OK
    rows = [["*" if v.number == active else "", v.number, v.hash, _iso_ms(v.created_ms), v.by, v.message]
            for v in versions]
    for line in render_table(["active", "version", "hash", "created", "by", "message"], rows, align="<>"):
        print(line)
    return exits.OK


def show_command(args: argparse.Namespace) -> int:
    from worker.rules_store import UnknownVersion

    async def work(store: RulesStore) -> StoredRules | None:
        number = args.number if args.number is not None else await store.active()
        return None if number is None else await store.get(number)

    try:
        stored = _with_store(args, work)
    except UnknownVersion as exc:
        return fail(f"rules show: {exc}", exits.FAILED)
    if stored is None:
        return fail("rules show: no active rules version (workers use their rules file); give a number",
                    exits.FAILED)
    print_json(stored.doc, pretty=True)
    return exits.OK


class _SideError(Exception):
    """A diff side that cannot be read: one line for the user."""


def diff_command(args: argparse.Namespace) -> int:
    from worker.rules_diff import as_json, diff_rules, render
    from worker.rules_store import UnknownVersion

    sides: dict[str, tuple[str, dict[str, Any]]] = {}
    try:
        for text in (args.a, args.b):
            if not _is_stored(text):
                sides[text] = (text, _read_file(Path(text)))
        if len(sides) < len({args.a, args.b}):
            sides |= _with_store(args, lambda store: _read_stored(store, [args.a, args.b]))
    except (_SideError, UnknownVersion) as exc:
        return fail(f"rules diff: {exc}", exits.FAILED)
    (label_a, doc_a), (label_b, doc_b) = sides[args.a], sides[args.b]
    diff = diff_rules(doc_a, doc_b)
    if args.json:
        print_json({"from": label_a, "to": label_b, "changes": as_json(diff)})
        return exits.OK
    print(f"rules diff {label_a} → {label_b}")
    for line in render(diff):
        print(line)
    return exits.OK


def _is_stored(text: str) -> bool:
    return text == "active" or _NUMBER.fullmatch(text) is not None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise _SideError(f"cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise _SideError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _SideError(f"{path}: a rules document is a JSON object")
    return doc


async def _read_stored(store: RulesStore, texts: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for text in (t for t in texts if _is_stored(t)):
        number = await store.active() if text == "active" else int(text)
        if number is None:
            raise _SideError("no active rules version (workers use their rules file)")
        stored = await store.get(number)
        out[text] = (f"v{number} ({stored.hash})", stored.doc)
    return out


def audit_command(args: argparse.Namespace) -> int:
    entries = _with_store(args, lambda store: store.audit(args.limit))
    if args.json:
        for e in entries:
            print_json({**asdict(e), "at": _iso_ms(e.at_ms)})
        return exits.OK
    if not entries:
        print("no rules pushes or activations recorded")
        return exits.OK
    rows = [[_iso_ms(e.at_ms), e.event, e.version, e.hash, e.by, _opt(e.previous), e.message]
            for e in entries]
    for line in render_table(["at", "event", "version", "hash", "by", "previous", "message"], rows,
                             align="<<><<><"):
        print(line)
    return exits.OK


# -- status ------------------------------------------------------------------------------------


def status_command(args: argparse.Namespace) -> int:
    from worker.rules_store import worker_rules

    async def work(store: RulesStore) -> tuple[dict[str, Any] | None, list[WorkerRules]]:
        return await _active_doc(store), await worker_rules(store.redis, store.keys)

    active, workers = _with_store(args, work)
    number = active["version"] if active else None
    rows = [_worker_doc(w, number) for w in workers]
    if args.json:
        print_json({"active": active, "workers": rows})
        return exits.OK
    if active is None:
        print("active: none (workers use their rules file)")
    else:
        message = f": {active['message']}" if active["message"] else ""
        pushed = f"{active['hash']}, pushed by {active['created_by']}" if active["hash"] else "(missing)"
        print(f"active: v{number} {pushed}{message}")
        if active["activated_at"]:
            why = f": {active['activation_message']}" if active["activation_message"] else ""
            print(f"        activated by {active['by']} at {active['activated_at']}{why}")
    if not rows:
        print("workers: none listed under this prefix")
        return exits.OK
    print()
    table = [[w["name"], w["host"] or "-", w["state"], _rules_label(w["rules_number"], w["state"]),
              w["rules_version"] or "-", w["rules_since"] or "-", _error_label(w["rules_error"]), _note(w)]
             for w in rows]
    headers = ["worker", "host", "state", "rules", "hash", "since", "last error", "note"]
    for line in render_table(headers, table):
        print(line)
    return exits.OK


async def _active_doc(store: RulesStore) -> dict[str, Any] | None:
    from worker.rules_store import UnknownVersion

    number = await store.active()
    if number is None:
        return None
    try:
        stored: StoredRules | None = await store.get(number)
    except UnknownVersion:  # the version was deleted by hand: workers cannot load it either
        stored = None
    activation: AuditEntry | None = await store.activation()
    return {
        "version": number, "hash": stored.hash if stored else None,
        "message": stored.message if stored else "(this version is no longer stored)",
        "created_by": stored.by if stored else None,
        "by": activation.by if activation else None,
        "activation_message": activation.message if activation else None,
        "activated_at": _iso_ms(activation.at_ms) if activation else None,
        "activated_ms": activation.at_ms if activation else None,
    }


def _worker_doc(w: WorkerRules, active: int | None) -> dict[str, Any]:
    live = w.state == "live"
    return {
        "name": w.name, "host": w.host, "state": w.state, "last_beat": _iso_ms(w.beat_ms),
        "rules_number": w.rules_number, "rules_version": w.rules_version,
        "rules_since": _iso_s(w.rules_since) if w.rules_since is not None else None,
        "rules_error": w.rules_error,
        "on_active": (w.rules_number == active) if live else None,
    }


def _rules_label(number: int | None, state: str) -> str:
    if state == "lost":
        return "-"
    return f"v{number}" if number is not None else "file"


def _error_label(error: Any) -> str:
    """The worker's last failed version, ``{"number", "hash", "error"}`` or a plain string."""
    if error is None or error == "":
        return "-"
    if isinstance(error, dict):
        which = f"v{error['number']}" if error.get("number") is not None else error.get("hash", "?")
        why = error.get("error") or error.get("message") or error.get("reason") or ""
        return f"{which}: {why}" if why else str(which)
    return str(error)


def _note(w: dict[str, Any]) -> str:
    if w["state"] == "lost":
        return f"no heartbeat since {w['last_beat']}"
    return "" if w["on_active"] else "NOT on the active version"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _iso_ms(ms: int) -> str:
    return _iso_s(ms / 1000)


def _iso_s(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
