"""``routeq catalog``: sync the model catalog from OpenRouter into Redis, show it, diff versions.

``sync`` fetches ``{OPENROUTER_BASE_URL}/models``, validates every entry and stores a new active
version, unless the fetch failed or the result looks wrong (then the last good version stays
active and the reason is printed; ``--force`` accepts a suspicious one). ``show`` prints the
catalog workers use (the active version, else the catalog file); ``diff`` compares the last two
versions, or two given ones. Exit codes: 0 ok, 1 sync kept the last good catalog or a model or
version is unknown, 2 bad settings, 4 Redis.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.cli import exits
from worker.cli.common import fail, print_json, with_redis
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from redis.asyncio import Redis

    from worker.catalog import Catalog, ModelInfo, Refusal
    from worker.catalog_diff import CatalogDiff
    from worker.catalog_store import CatalogStore, StoredCatalog

T = TypeVar("T")
_NUMBER = re.compile(r"[0-9]+")
_REFUSALS_SHOWN = 50


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("catalog", help="the model catalog: sync from OpenRouter, show, diff")
    commands = parser.add_subparsers(dest="catalog_command", required=True)

    sync = commands.add_parser(
        "sync", help="fetch /models, validate it and store it as the active catalog version",
        description="Fetch {OPENROUTER_BASE_URL}/models, validate every entry and store a new active "
                    "version in Redis. A failed fetch or a suspicious catalog (more than 20% of the models "
                    "gone, a paid model now free, a price x100) keeps the last good version: exit 1.")
    sync.add_argument("--force", action="store_true", help="store a suspicious catalog anyway")
    sync.add_argument("--json", action="store_true", help="the report as one JSON document")
    _redis_arg(sync)
    sync.set_defaults(func=sync_command)

    show = commands.add_parser(
        "show", help="the catalog workers use, one line per model (or one model in full)",
        description="Prices per million tokens (per request for 'request'). Without a version in Redis, "
                    "the catalog file ($ROUTEQ_CATALOG or the shipped snapshot) is shown.")
    show.add_argument("model", nargs="?", metavar="MODEL")
    show.add_argument("--version", type=_version_number, metavar="N",
                      help="a stored version (default: the active one)")
    show.add_argument("--json", action="store_true", help="JSON instead of a table")
    _redis_arg(show)
    show.set_defaults(func=show_command)

    diff = commands.add_parser(
        "diff", help="price and capability changes between the last two versions (or A and B)")
    diff.add_argument("versions", nargs="*", type=_version_number, metavar="A B")
    diff.add_argument("--json", action="store_true", help="one JSON document instead of text")
    _redis_arg(diff)
    diff.set_defaults(func=diff_command)


def _redis_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")


def _version_number(text: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive version number, got {text!r}")
    return int(text)


def _with_store(args: argparse.Namespace, work: Callable[[CatalogStore], Awaitable[T]]) -> T:
    from worker.catalog_store import CatalogStore

    async def go(redis: Redis) -> T:
        return await work(CatalogStore(redis, Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))))

    return with_redis(args.redis, go)


# -- sync ----------------------------------------------------------------------------------------


def sync_command(args: argparse.Namespace) -> int:
    from worker.catalog_sync import sync
    from worker.openrouter.settings import OpenRouterSettings

    settings = OpenRouterSettings.from_env()
    report = _with_store(args, lambda store: sync(store, settings, force=args.force))
    if args.json:
        print_json(report.as_dict())
        return exits.OK if report.ok else exits.FAILED
    counts = f"{report.models} models, {report.routers} variable-price routers, {len(report.refused)} refused"
    if report.stored:
        print(f"catalog version {report.version} stored and active: {counts} ({report.source})")
        if report.why:
            print(f"  {report.why}")
    elif report.ok:
        print(f"catalog version {report.version} unchanged: {counts} ({report.source})")
    else:
        kept = f"version {report.version}" if report.version is not None else "the catalog file"
        print(f"sync {report.outcome}: {report.why}")
        print(f"  kept {kept} active" + (f"; fetched {counts}" if report.entries else ""))
        if report.suspicious:
            print("  check the catalog, then `routeq catalog sync --force` to accept it anyway")
    _print_refusals(report.refused)
    return exits.OK if report.ok else exits.FAILED


def _print_refusals(refused: tuple[Refusal, ...]) -> None:
    if not refused:
        return
    print(f"refused entries ({len(refused)}):")
    rows = [[f"#{r.index}", r.id if r.id is not None else "-", r.reason] for r in refused[:_REFUSALS_SHOWN]]
    for line in render_table(["entry", "id", "reason"], rows):
        print(f"  {line}")
    if len(refused) > _REFUSALS_SHOWN:
        print(f"  ... and {len(refused) - _REFUSALS_SHOWN} more (--json lists them)")


# -- show ----------------------------------------------------------------------------------------


def show_command(args: argparse.Namespace) -> int:
    from worker.catalog import Catalog
    from worker.shipped import catalog_file

    async def work(store: CatalogStore) -> tuple[StoredCatalog | None, int | None]:
        return await store.load(args.version), await store.active()

    stored, active = _with_store(args, work)
    if stored is None and args.version is not None:
        return fail(f"catalog show: no catalog version {args.version} in Redis", exits.FAILED)
    if stored is not None:
        catalog, origin = stored.catalog, {
            "version": stored.number, "active": stored.number == active, "source": stored.source,
            "fetched": _iso_ms(stored.fetched_ms), "checked": _iso_ms(stored.checked_ms)}
    else:
        catalog, origin = Catalog.load(), {"version": None, "active": False, "source": str(catalog_file())}
    if args.model is not None:
        return _show_model(catalog, args.model, origin, as_json=args.json)
    if args.json:
        print_json({**origin, "models": [_model_dict(m) for m in catalog.everything()]})
        return exits.OK
    if origin["version"] is None:
        print(f"no catalog version in Redis: workers use the catalog file {origin['source']}")
    else:
        state = "active" if origin["active"] else "not active"
        print(f"catalog version {origin['version']} ({state}): {len(catalog)} models, "
              f"{len(catalog.routers)} routers, fetched {origin['fetched']} from {origin['source']}")
    headers = ["model", "prompt $/M", "completion $/M", "request $", "context", "max out", "tools", "vision",
               "structured"]
    rows = [_row(m) for m in catalog.everything()]
    for line in render_table(headers, rows, align="<>>>>><<<"):
        print(line)
    return exits.OK


def _row(m: ModelInfo) -> list[object]:
    from worker.catalog_diff import decimal_text, per_million

    prices = (["variable"] * 3 if m.variable_price else
              [decimal_text(per_million(m.prompt_price)), decimal_text(per_million(m.completion_price)),
               decimal_text(m.request_price)])
    return [m.id, *prices, m.context_length, m.max_completion_tokens or "-", _yes(m.supports_tools),
            _yes(m.supports_images), _yes(m.supports_structured_outputs)]


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _show_model(catalog: Catalog, model: str, origin: dict[str, Any], *, as_json: bool) -> int:
    info = catalog.get(model)
    if info is None:
        import difflib

        near = difflib.get_close_matches(model, [m.id for m in catalog.everything()], n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        where = f"version {origin['version']}" if origin["version"] is not None else origin["source"]
        return fail(f"catalog show: {model!r} is not in the catalog ({where}){hint}", exits.FAILED)
    doc = _model_dict(info)
    if as_json:
        print_json({**origin, "model": doc})
        return exits.OK
    for key, value in doc.items():
        shown = ", ".join(value) if isinstance(value, list) else _cap(value)
        print(f"{key + ':':<26}{shown}")
    return exits.OK


def _model_dict(m: ModelInfo) -> dict[str, Any]:
    """One model for people and scripts: prices per million tokens as decimal strings (per request
    for ``request``); a router's prices are null (variable)."""
    from worker.catalog_diff import decimal_text, per_million

    def price(per_token: Any, scale: bool = True) -> str | None:
        if m.variable_price or per_token is None:
            return None
        return decimal_text(per_million(per_token) if scale else per_token)

    return {
        "id": m.id,
        "name": m.name,
        "author": m.author,
        "provider": m.provider_name,
        "variable_price": m.variable_price,
        "prompt_per_mtok": price(m.prompt_price),
        "completion_per_mtok": price(m.completion_price),
        "request": price(m.request_price, scale=False),
        "cache_read_per_mtok": price(m.cache_read_price),
        "cache_write_per_mtok": price(m.cache_write_price),
        "context_length": m.context_length,
        "max_completion_tokens": m.max_completion_tokens,
        "tools": m.supports_tools,
        "vision": m.supports_images,
        "structured_outputs": m.supports_structured_outputs,
        "input_modalities": sorted(m.input_modalities),
        "output_modalities": sorted(m.output_modalities),
        "supported_parameters": sorted(m.supported_parameters),
    }


# -- diff ----------------------------------------------------------------------------------------


def diff_command(args: argparse.Namespace) -> int:
    from worker.catalog_diff import diff_catalogs

    if len(args.versions) not in (0, 2):
        return fail("catalog diff: give two version numbers, or none for the last two", exits.USAGE)

    async def work(store: CatalogStore) -> tuple[list[int], list[StoredCatalog | None]]:
        stored = await store.versions()
        wanted = args.versions or stored[-2:]
        if len(wanted) < 2:
            return stored, []
        return stored, [await store.load(n) for n in wanted]

    stored, loaded = _with_store(args, work)
    if not loaded:
        return fail(f"catalog diff: needs two catalog versions in Redis, found {len(stored)} "
                    "(run `routeq catalog sync`)", exits.FAILED)
    missing = [n for n, s in zip(args.versions, loaded, strict=False) if s is None]
    if missing:
        return fail(f"catalog diff: no catalog version {missing[0]} in Redis "
                    f"(stored: {', '.join(map(str, stored)) or 'none'})", exits.FAILED)
    old, new = (s for s in loaded if s is not None)
    diff = diff_catalogs(old.catalog, new.catalog)
    if args.json:
        print_json({"from": old.number, "to": new.number, **diff.as_dict()})
        return exits.OK
    for line in render_diff(old.number, new.number, diff):
        print(line)
    return exits.OK


def render_diff(old: int, new: int, diff: CatalogDiff) -> list[str]:
    from worker.catalog_diff import decimal_text

    lines = [f"catalog version {old} -> {new}: {len(diff.added)} added, {len(diff.removed)} removed, "
             f"{len(diff.prices)} price changes, {len(diff.capabilities)} capability changes"]
    if diff.added:
        lines.append("added:   " + ", ".join(diff.added))
    if diff.removed:
        lines.append("removed: " + ", ".join(diff.removed))
    if diff.prices:
        lines.append("price changes:")
        rows = [[p.model, p.price, decimal_text(p.old), "->", decimal_text(p.new), p.unit]
                for p in diff.prices]
        headers = ["model", "price", "old", "", "new", "unit"]
        lines.extend("  " + line for line in render_table(headers, rows, align="<<><><"))
    if diff.capabilities:
        lines.append("capability changes:")
        rows = [[c.model, c.capability, _cap(c.old), "->", _cap(c.new)] for c in diff.capabilities]
        lines.extend("  " + line for line in render_table(["model", "capability", "old", "", "new"], rows))
    return lines


def _cap(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds") if ms else "-"
