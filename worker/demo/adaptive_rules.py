"""The adaptive demo's rules: version 1 adds a classification rule with an experiment; each version
is pushed and activated through :class:`worker.rules_store.RulesStore` (as ``routeq rules push
--activate`` does), then awaited in the worker's heartbeat (it reloads on the change notice)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.catalog import Catalog
from worker.rules import compile_rules, thaw
from worker.rules_store import RulesStore, worker_rules
from worker.shipped import CATALOG, RULES, shipped

RULE: Final = "classification"
EXPERIMENT: Final = "cls-cheaper"
BY: Final = "routeq demo --adaptive"


def shipped_doc() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(shipped(RULES).read_bytes())
    return doc


def shipped_catalog() -> Catalog:
    return Catalog.load(shipped(CATALOG))


def tier(doc: Mapping[str, Any], name: str) -> str:
    return str(doc["tiers"][name])


def route_of(doc: Mapping[str, Any], rule: str) -> tuple[str, list[str]]:
    """The model and fallbacks ``rule`` names in ``doc``, tier names resolved."""
    tiers = doc.get("tiers") or {}
    raw = next(r for r in doc["rules"] if r.get("name") == rule)
    model = raw.get("model") or tiers.get(raw.get("tier"), "-")
    return str(model), [str(tiers.get(f, f)) for f in raw.get("fallbacks") or ()]


def experiment_doc(base: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` plus a rule for classification jobs on the mid tier (the catch-all's model, what
    they got before) and a 50/50 experiment by user between it and the budget tier's model."""
    doc: dict[str, Any] = thaw(base)
    rule = {"name": RULE, "priority": 50, "description": "Classification jobs: the mid tier for now.",
            "when": {"task_type": "classification"}, "tier": "mid", "fallbacks": ["budget"]}
    rules = list(doc.get("rules") or [])
    at = next((i for i, r in enumerate(rules) if r.get("name") == "default"), len(rules))
    doc["rules"] = [*rules[:at], rule, *rules[at:]]
    doc["experiments"] = [*(doc.get("experiments") or []), {
        "name": EXPERIMENT, "rule": RULE, "status": "running", "unit": "user_id", "salt": "routeq-demo",
        "description": "Is the budget tier as good as the mid tier at classification?",
        "variants": [{"name": "control", "weight": 50},
                     {"name": "cheaper", "weight": 50, "model": tier(base, "budget")}],
    }]
    return doc


@dataclass(frozen=True)
class Activated:
    number: int
    hash: str
    reload_s: float  # from the push to the worker's heartbeat showing it


async def push_and_activate(redis: Redis, keys: Keys, doc: Mapping[str, Any], *, message: str,
                            worker: str, timeout_s: float = 15.0) -> Activated:
    """Check ``doc`` against the catalog (as ``routeq rules push`` does), store it as a new active
    version, and wait until ``worker``'s heartbeat runs it."""
    compile_rules(doc, source=message, catalog=shipped_catalog())  # RulesError: a bug of the demo
    started = time.monotonic()
    pushed = await RulesStore(redis, keys).push(doc, message=message, by=BY, activate=True)
    await wait_for_version(redis, keys, worker, pushed.version, timeout_s)
    return Activated(pushed.version, pushed.hash, time.monotonic() - started)


async def wait_for_version(redis: Redis, keys: Keys, worker: str, number: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        running = {w.name: w for w in await worker_rules(redis, keys)}.get(worker)
        if running is not None and running.rules_number == number:
            return
        if time.monotonic() > deadline:
            now = "no heartbeat" if running is None else f"rules version {running.rules_number}"
            raise TimeoutError(f"the demo's worker did not switch to rules version {number} within "
                               f"{timeout_s:g} s ({now})")
        await asyncio.sleep(0.05)
