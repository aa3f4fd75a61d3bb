"""Validated model catalogs in Redis: numbered versions, the active one, the last sync's report.

Why versions: a sync that goes wrong must never replace prices the workers are using (LiteLLM's
bad cost map made new models cost $0 for twenty minutes), so a catalog is stored only after
validation and judgement (``worker/catalog_sync.py``), as a new immutable version, and made
active in the same Lua step that PUBLISHes its number on ``catalog:changed``; workers also see the
active number with every claim (``worker/claims.py``). The newest :data:`KEEP_VERSIONS` versions
are kept, so ``routeq catalog diff`` can compare and an operator can see what changed.

A version is a hash: ``doc`` (the validated ``/models`` JSON, sorted keys), ``fetched_ms``,
``models`` (count), ``routers`` (count), ``refused`` (JSON list of ``{index, id, reason}``),
``source`` (URL or file) and ``checked_ms`` (the last sync that found it unchanged). These keys
have no TTL: their owner is ``routeq catalog sync`` and the workers' refresh.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from producer_client.keys import Keys, numbered_base
from producer_client.lua import lua_script
from worker.catalog import Catalog, CatalogError, Refusal, validate_models_json
from worker.stored_json import stored_object

#: Versions kept in Redis (older ones are deleted when a new one is stored).
KEEP_VERSIONS: Final = 10
#: Refusals stored with a version and a report (a hostile body may hold millions).
MAX_REFUSALS_KEPT: Final = 200


@dataclass(frozen=True)
class StoredCatalog:
    number: int
    catalog: Catalog
    fetched_ms: int
    refused: tuple[Refusal, ...]
    source: str
    checked_ms: int
    digest: str  # sha256 of the stored document: equal digests, equal catalogs


def canonical_doc(doc: Mapping[str, Any]) -> bytes:
    """The stored form of a validated document: JSON with sorted keys."""
    return orjson.dumps(dict(doc), option=orjson.OPT_SORT_KEYS)


def digest(canonical: bytes) -> str:
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class CatalogStore:
    def __init__(self, redis: Redis, keys: Keys, *, keep: int = KEEP_VERSIONS) -> None:
        if keep < 2:
            raise ValueError("keep at least 2 catalog versions (diff compares the last two)")
        self.redis = redis
        self.keys = keys
        self.keep = keep
        self._base = numbered_base(keys.catalog_version)  # the script builds version keys as base .. n
        self._store = redis.register_script(lua_script("worker", "catalog_store.lua"))

    async def active(self) -> int | None:
        """The active version number; None: workers use their catalog file."""
        return _number(await self.redis.get(self.keys.catalog_active))

    async def load(self, number: int | None = None) -> StoredCatalog | None:
        """Version ``number`` (default: the active one); None if it is not stored.

        :class:`CatalogError` if the stored document no longer validates (edited by hand)."""
        if number is None:
            number = await self.active()
            if number is None:
                return None
        raw: dict[Any, Any] = await self.redis.hgetall(self.keys.catalog_version(number))  # type: ignore[misc]
        if not raw:
            return None
        f = {_text(k): v for k, v in raw.items()}
        body = f.get("doc", b"")
        body = body if isinstance(body, bytes) else str(body).encode()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CatalogError(f"catalog version {number} in Redis is not JSON: {exc}") from None
        return StoredCatalog(
            number=number,
            catalog=validate_models_json(doc).catalog,
            fetched_ms=int(f.get("fetched_ms") or 0),
            refused=_refusals(f.get("refused")),
            source=_text(f.get("source", b"")),
            checked_ms=int(f.get("checked_ms") or f.get("fetched_ms") or 0),
            digest=digest(body),
        )

    async def store(
        self,
        catalog_doc: Mapping[str, Any],
        refused: Sequence[Refusal],
        source: str,
        *,
        fetched_ms: int | None = None,
    ) -> int:
        """Store a validated document as a new version, activate it and publish its number.

        The document must come from :func:`worker.catalog.validate_models_json` (its
        ``document``); it is re-validated here only to count its models."""
        body = canonical_doc(catalog_doc)
        catalog = validate_models_json(catalog_doc).catalog
        now = fetched_ms if fetched_ms is not None else _now_ms()
        fields: list[str | bytes | int] = [
            "doc", body,
            "fetched_ms", now,
            "checked_ms", now,
            "models", len(catalog),
            "routers", len(catalog.routers),
            "refused", refusals_json(refused),
            "source", source,
        ]
        reply = await self._store(
            keys=[self.keys.catalog_next, self.keys.catalog_active],
            args=[self._base, self.keys.catalog_changed, self.keep, *fields],
        )
        return int(reply[0])

    async def touch(self, number: int, *, checked_ms: int | None = None) -> None:
        """Record that a sync found version ``number`` unchanged upstream."""
        key = self.keys.catalog_version(number)
        if await self.redis.exists(key):
            when = str(checked_ms if checked_ms is not None else _now_ms())
            await self.redis.hset(key, "checked_ms", when)  # type: ignore[misc]

    async def versions(self) -> list[int]:
        """The stored version numbers, oldest first."""
        last = _number(await self.redis.get(self.keys.catalog_next)) or 0
        numbers = list(range(max(1, last - 4 * self.keep), last + 1))
        if not numbers:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in numbers:
                pipe.exists(self.keys.catalog_version(n))
            found = await pipe.execute()
        return [n for n, there in zip(numbers, found, strict=True) if there]

    async def write_report(self, report: Mapping[str, Any]) -> None:
        """The last sync attempt's outcome (no TTL: replaced by the next attempt)."""
        await self.redis.set(self.keys.catalog_report, orjson.dumps(report))

    async def report(self) -> dict[str, Any] | None:
        return stored_object(await self.redis.get(self.keys.catalog_report))


def refusals_json(refused: Sequence[Refusal]) -> bytes:
    return orjson.dumps([r.as_dict() for r in refused[:MAX_REFUSALS_KEPT]])


def _refusals(raw: Any) -> tuple[Refusal, ...]:
    if raw is None:
        return ()
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(Refusal.from_dict(i) for i in items if isinstance(i, dict))


def _number(value: Any) -> int | None:
    """A version number from Redis; None for absent, empty, 0 or not a number."""
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n > 0 else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def fleet_catalog(redis: Redis, keys: Keys, pinned: str | None) -> tuple[Catalog, str]:
    """The catalog workers compile rules against, and where it came from: a file pinned with
    ``ROUTEQ_CATALOG`` (``pinned``), else the version active in Redis, else the shipped snapshot.
    Commands that check rules for the fleet (``rules push``, ``suggest --write``, ``route
    --active``) use it, so a file they accept is one the workers accept."""
    if pinned:
        return Catalog.load(pinned), pinned
    stored = await CatalogStore(redis, keys).load()
    if stored is not None:
        return stored.catalog, f"catalog version {stored.number} (Redis)"
    return Catalog.load(), "the shipped catalog"
