"""Hot reload: keep a worker on the active rules version (and catalog) without a restart.

Workers learn of an activation twice over: ``routeq rules activate`` PUBLISHes on
``rules:changed``, which wakes the worker's poll at once, and every claim returns the active
version number anyway (``worker/claims.py``), which covers a missed message at no extra cost.
A change is compiled off the job path (in a thread) and swapped in with one assignment; a job
routes with the policy it read when it started, from start to result. A version that fails to
compile here (a model this worker's catalog lacks, say) leaves the worker on its last good
policy and is reported in its heartbeat (``routeq rules status``), as Envoy does with a NACK.
With no version active in Redis, the worker runs its rules file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.catalog import Catalog
from worker.catalog_store import CatalogStore
from worker.claims import Control
from worker.pipeline import PolicyRef
from worker.routing import Policy
from worker.rules import RulesError, RuleSet, compile_rules

log = logging.getLogger("routeq.reload")

#: Reads a stored rules version's document (``RulesStore.get(n).doc``).
LoadRules = Callable[[int], Awaitable[Mapping[str, Any]]]
#: Reads a stored catalog version (``CatalogStore.load(n).catalog``).
LoadCatalog = Callable[[int], Awaitable[Catalog]]


@dataclass
class PolicyState:
    """What the heartbeat reports of this worker's policy."""

    rules_number: int | None = None
    catalog_number: int | None = None
    since: float = 0.0
    error: str | None = None
    error_at: float | None = None


class PolicyWatcher:
    def __init__(
        self,
        ref: PolicyRef,
        *,
        file_rules: RuleSet,
        file_doc: Mapping[str, Any] | None,
        load_rules: LoadRules,
        load_catalog: LoadCatalog | None = None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``file_rules``/``file_doc``: the rules file's policy and document (recompiled when the
        catalog changes). ``load_catalog`` is None when this worker does not follow Redis catalogs."""
        self.ref = ref
        self.file_rules = file_rules
        self.file_doc = file_doc
        self.load_rules = load_rules
        self.load_catalog = load_catalog
        self.on_change = on_change  # e.g. an immediate heartbeat, so `rules status` shows it now
        self.state = PolicyState(since=time.time())
        self._docs: dict[int, Mapping[str, Any]] = {}
        self._want = Control(None, None)
        self._task: asyncio.Task[None] | None = None
        self._failed: tuple[str | None, str | None] | None = None

    async def on_control(self, control: Control) -> None:
        """The fleet's active versions as the last claim saw them; reloads in the background."""
        self._want = control
        idle = self._task is None or self._task.done()
        if idle and self._wanted() not in (self._running(), self._failed):
            self._task = asyncio.create_task(self._follow())

    async def follow_now(self, control: Control) -> None:
        """At start-up: load the active versions before the first job (errors are reported, and the
        worker starts on its file)."""
        self._want = control
        await self._follow()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _wanted(self) -> tuple[str | None, str | None]:
        return self._want.rules_version, self._want.catalog_version if self.load_catalog else None

    def _running(self) -> tuple[str | None, str | None]:
        s = self.state
        return (None if s.rules_number is None else str(s.rules_number),
                None if s.catalog_number is None else str(s.catalog_number))

    async def _follow(self) -> None:
        while self._wanted() != self._running():
            target = self._wanted()
            try:
                policy, rules_n, catalog_n = await self._build(target)
            except Exception as exc:  # a bad version must never stop the worker
                self._failed = target
                self._fail(target, exc)
                if self.on_change is not None:
                    await self.on_change()
                return
            self.ref.current = policy
            self.state = PolicyState(rules_n, catalog_n, time.time())
            self._failed = None
            if self.on_change is not None:
                await self.on_change()
            log.info("policy now: rules %s (%s), catalog %s", rules_n if rules_n is not None else "file",
                     policy.rules.version, catalog_n if catalog_n is not None else "shipped/file")

    async def _build(self, target: tuple[str | None, str | None]) -> tuple[Policy, int | None, int | None]:
        rules_raw, catalog_raw = target
        rules_n = _number(rules_raw)
        catalog_n = _number(catalog_raw)
        catalog = self.ref.current.catalog
        if catalog_n is not None and catalog_n != self.state.catalog_number and self.load_catalog is not None:
            catalog = await self.load_catalog(catalog_n)
        if rules_n is None:
            doc = self.file_doc
            source = self.file_rules.source
        else:
            doc = self._docs.get(rules_n) or await self.load_rules(rules_n)
            self._docs = {rules_n: doc}
            source = f"rules version {rules_n} in Redis"
        if doc is None:
            return Policy(self.file_rules, catalog, None), None, catalog_n
        rules = await asyncio.to_thread(compile_rules, doc, source=source, catalog=catalog)
        return Policy(rules, catalog, rules_n), rules_n, catalog_n

    def _fail(self, target: tuple[str | None, str | None], exc: Exception) -> None:
        what = f"rules version {target[0]}" if target[0] is not None else "the rules file"
        if target[1] is not None:
            what += f" with catalog version {target[1]}"
        if isinstance(exc, RulesError):
            problems = exc.problems
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            why = "; ".join(str(p) for p in problems[:3]) + more
        else:
            why = f"{type(exc).__name__}: {exc}"
        self.state.error = f"{what} failed here, kept the last good policy: {why}"[:500]
        self.state.error_at = time.time()
        log.error("%s", self.state.error)


def _number(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def redis_rules(redis: Redis, keys: Keys) -> LoadRules:
    """Reads a version's document as ``routeq rules push`` stored it (``Keys.rules_version``)."""

    async def load(number: int) -> Mapping[str, Any]:
        raw = await redis.hget(keys.rules_version(number), "doc")  # type: ignore[misc]
        if raw is None:
            raise LookupError(f"rules version {number} is not in Redis")
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError(f"rules version {number} is not a JSON object")
        return doc

    return load


def redis_catalog(store: CatalogStore) -> LoadCatalog:
    """Reads a catalog version as ``routeq catalog sync`` (or a worker's refresh) stored it."""

    async def load(number: int) -> Catalog:
        stored = await store.load(number)
        if stored is None:
            raise LookupError(f"catalog version {number} is not in Redis")
        return stored.catalog

    return load
