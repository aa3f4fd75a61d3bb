"""One catalog sync: fetch ``/models``, validate every entry, judge the result, store or keep.

The order matters: nothing reaches the workers unless the whole body was read, every entry kept
passed validation (``worker/catalog.py``), and the new catalog looks like a plausible successor
of the active one (:func:`judge`). A failed fetch or a suspicious catalog keeps the last good
version active and says why in the report (``catalog:report``, ``routeq catalog sync``);
``force`` accepts a suspicious one (an operator who checked it). A catalog identical to the active
one is not stored again: the active version is only marked as checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

import httpx
import orjson

from worker.catalog import Catalog, CatalogError, Refusal, Validated, validate_models_json
from worker.catalog_diff import decimal_text, diff_catalogs
from worker.catalog_store import MAX_REFUSALS_KEPT, CatalogStore, StoredCatalog, canonical_doc, digest
from worker.openrouter.errors import redact, shorten
from worker.openrouter.settings import OpenRouterSettings

#: Share of the active catalog's models that may disappear in one sync.
MAX_GONE_SHARE: Final = Decimal("0.2")
#: A price multiplied or divided by this much in one sync is a unit error, not a price change.
MAX_PRICE_FACTOR: Final = Decimal(100)
#: A ``/models`` body larger than this is refused before parsing (the real one is about 2 MB).
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
_NAMES_SHOWN: Final = 5

OK: Final = "ok"
KEPT: Final = "kept-last-good"
FAILED: Final = "failed"


class CatalogFetchError(Exception):
    """``/models`` could not be read; the message never holds the API key."""


@dataclass(frozen=True)
class SyncReport:
    """What one sync did. ``version`` is the active version afterwards (new, unchanged or kept;
    None when Redis has none and this sync stored nothing)."""

    outcome: str  # ok | kept-last-good | failed
    why: str | None
    version: int | None
    previous: int | None
    stored: bool
    forced: bool
    source: str
    at_ms: int
    models: int = 0
    routers: int = 0
    entries: int = 0
    refused: tuple[Refusal, ...] = field(default=())
    suspicious: str | None = None  # why the judge objected (also set when ``forced`` accepted it)

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "why": self.why,
            "version": self.version,
            "previous": self.previous,
            "stored": self.stored,
            "forced": self.forced,
            "suspicious": self.suspicious,
            "source": self.source,
            "at_ms": self.at_ms,
            "models": self.models,
            "routers": self.routers,
            "entries": self.entries,
            "refused_count": len(self.refused),
            "refused": [r.as_dict() for r in self.refused[:MAX_REFUSALS_KEPT]],
        }


async def fetch_models(
    settings: OpenRouterSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    max_bytes: int = MAX_BODY_BYTES,
) -> dict[str, Any]:
    """``GET {base_url}/models`` as a JSON object; :class:`CatalogFetchError` otherwise."""
    url = settings.models_url
    headers = settings.headers()
    timeout = httpx.Timeout(settings.attempt_timeout_s, connect=settings.connect_timeout_s)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, transport=transport) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            body = await _read_capped(response, max_bytes)
    except httpx.HTTPError as exc:
        raise CatalogFetchError(_clean(f"GET {url}: {type(exc).__name__}: {exc}", settings)) from None
    if response.status_code != 200:
        text = body[:300].decode("utf-8", "replace")
        raise CatalogFetchError(_clean(f"GET {url} answered HTTP {response.status_code}: {text}", settings))
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CatalogFetchError(_clean(f"GET {url}: the body is not JSON ({exc})", settings)) from None
    if not isinstance(doc, dict):
        raise CatalogFetchError(f"GET {url}: the body is a JSON {type(doc).__name__}, not an object")
    return doc


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise CatalogFetchError(
            f"GET {response.url}: the body is {declared} bytes, over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise CatalogFetchError(f"GET {response.url}: the body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def judge(previous: Catalog | None, new: Catalog) -> str | None:
    """None if ``new`` may replace ``previous``; else why it looks wrong.

    Suspicious: no fixed-price model at all; more than 20% of the previous models gone; a model
    that had a price now free; a price multiplied or divided by 100 or more (a unit error)."""
    if not len(new):
        routers = f" ({len(new.routers)} variable-price routers)" if new.routers else ""
        return f"no model with a fixed price{routers}"
    if previous is None:
        return None
    problems = []
    before = [m.id for m in previous.everything()]
    gone = [m for m in before if m not in new]
    if before and Decimal(len(gone)) / len(before) > MAX_GONE_SHARE:
        problems.append(f"{len(gone)} of {len(before)} models gone "
                        f"({100 * len(gone) // len(before)}%): {_names(gone)}")
    now_free = [m.id for m in previous if not m.is_free and (n := new.get(m.id)) is not None and n.is_free]
    if now_free:
        problems.append(f"paid model{'s' if len(now_free) > 1 else ''} now free: {_names(now_free)}")
    jumps = [
        f"{c.model} {c.price} {decimal_text(c.old)} -> {decimal_text(c.new)} {c.unit}"
        for c in diff_catalogs(previous, new).prices
        if c.factor is not None and not 1 / MAX_PRICE_FACTOR < c.factor < MAX_PRICE_FACTOR
    ]
    if jumps:
        problems.append(f"price changed {MAX_PRICE_FACTOR}x or more: {_names(jumps)}")
    return "; ".join(problems) or None


def judge_document(validated: Validated) -> str | None:
    """Whether the body itself says it is incomplete (``total_count`` above the entries sent)."""
    total = validated.total_count
    if total is not None and total > validated.entries:
        return f"partial list: {validated.entries} of {total} entries (total_count)"
    return None


async def sync(
    store: CatalogStore,
    settings: OpenRouterSettings,
    *,
    force: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SyncReport:
    """Fetch, validate, judge, then store a new active version or keep the last good one.

    Writes the report to Redis whatever happens (Redis errors propagate)."""
    at = _now_ms()
    current = await store.load()
    previous = current.number if current is not None else None
    report = SyncReport(FAILED, None, previous, previous, stored=False, forced=force,
                        source=settings.models_url, at_ms=at)
    try:
        validated = validate_models_json(await fetch_models(settings, transport=transport))
    except (CatalogFetchError, CatalogError) as exc:
        report = replace(report, why=str(exc))
    else:
        report = await _settle(store, current, validated, replace(
            report, models=len(validated.catalog), routers=len(validated.catalog.routers),
            entries=validated.entries, refused=validated.refused))
    await store.write_report(report.as_dict())
    return report


async def _settle(
    store: CatalogStore, current: StoredCatalog | None, validated: Validated, report: SyncReport
) -> SyncReport:
    """Keep the last good version, mark it checked, or store the new one."""
    suspicious = judge_document(validated) or judge(current.catalog if current else None, validated.catalog)
    if suspicious and not report.forced:
        return replace(report, outcome=KEPT, why=f"suspicious: {suspicious}", suspicious=suspicious)
    report = replace(report, outcome=OK, suspicious=suspicious)
    if current is not None and digest(canonical_doc(validated.document)) == current.digest:
        await store.touch(current.number, checked_ms=report.at_ms)
        return replace(report, why="unchanged")
    number = await store.store(validated.document, validated.refused, report.source, fetched_ms=report.at_ms)
    why = f"accepted with --force although suspicious: {suspicious}" if suspicious else None
    return replace(report, why=why, version=number, stored=True)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_NAMES_SHOWN])
    return shown + (f" (+{len(items) - _NAMES_SHOWN} more)" if len(items) > _NAMES_SHOWN else "")


def _clean(text: str, settings: OpenRouterSettings) -> str:
    return shorten(" ".join(redact(text, settings.api_key).split()))


def _now_ms() -> int:
    return int(time.time() * 1000)
