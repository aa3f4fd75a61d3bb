"""Reading one experiment's outcome from Redis: what ``routeq report experiment`` and the
adaptive demo both show."""

from __future__ import annotations

from typing import TYPE_CHECKING

from producer_client.keys import Keys
from worker.analytics.active_rules import ActiveRules, active_rules
from worker.analytics.experiment import ExperimentReport, build_report, variant_of
from worker.analytics.rollups import Rollup, RollupReader
from worker.analytics.window import Window

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def read_experiment(
    redis: Redis, keys: Keys, name: str, span: Window
) -> tuple[ActiveRules, Rollup, ExperimentReport]:
    """The active rules (for the configured weights), the window's rollup by variant, and the
    experiment's report: units (HyperLogLog) and metrics per variant, configured or seen."""
    rules = await active_rules(redis, keys)
    rollup = await RollupReader(redis, keys).read(span.since, span.until, ("variant",))
    metrics = {v: m for (dim,), m in rollup.groups.items() if (v := variant_of(dim, name))}
    config = rules.experiment(name)
    names = {str(v.get("name")) for v in (config or {}).get("variants") or ()} | set(metrics)
    units = {n: int(await redis.pfcount(keys.experiment_units(name, n))) for n in sorted(names)}
    return rules, rollup, build_report(name, config, metrics, units)
