"""What a worker process builds once at start-up and shares across its jobs."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.catalog import Catalog, default_catalog_path
from worker.openrouter import OpenRouterClient
from worker.pipeline import Pipeline
from worker.results import ResultStore
from worker.rules import RuleSet, default_rules_path, load_rules
from worker.settings import WorkerSettings


@dataclass(frozen=True)
class Services:
    settings: WorkerSettings
    pipeline: Pipeline
    results: ResultStore
    client: OpenRouterClient

    async def aclose(self) -> None:
        await self.client.aclose()


def load_policy(settings: WorkerSettings) -> tuple[RuleSet, Catalog]:
    """Rules and catalog; raises RulesError naming every problem, before any job is taken."""
    rules = load_rules(settings.rules_path or default_rules_path())
    catalog = Catalog.load(settings.catalog_path or default_catalog_path())
    return rules, catalog


def build_services(
    settings: WorkerSettings, redis: Redis, rules: RuleSet, catalog: Catalog
) -> Services:
    client = OpenRouterClient(settings.openrouter)
    keys = Keys(settings.prefix)
    return Services(
        settings=settings,
        pipeline=Pipeline(
            rules=rules,
            catalog=catalog,
            client=client,
            upstream_budget_s=settings.upstream_budget_s,
            max_tries=settings.max_tries,
        ),
        results=ResultStore(
            redis,
            keys,
            ttl_s=settings.result_ttl_s,
            decisions_maxlen=settings.decisions_maxlen,
            store_prompts=settings.store_prompts,
        ),
        client=client,
    )
