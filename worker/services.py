"""What a worker process builds once at start-up and shares across its jobs."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.budget import BudgetDef
from worker.budget.alerts import AlertSink
from worker.budget.ledger import BudgetLedger
from worker.catalog import Catalog
from worker.health import ModelHealth
from worker.openrouter import OpenRouterClient
from worker.pipeline import Pipeline
from worker.results import ResultStore
from worker.rules import RuleSet, load_rules
from worker.settings import WorkerSettings
from worker.shipped import CATALOG, RULES, shipped
from worker.spend import SpendControl


@dataclass(frozen=True)
class Services:
    settings: WorkerSettings
    pipeline: Pipeline
    results: ResultStore
    client: OpenRouterClient
    ledger: BudgetLedger | None = None
    alerts: AlertSink | None = None

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.alerts is not None:
            await self.alerts.aclose()


@dataclass(frozen=True)
class Policy:
    rules: RuleSet
    budgets: tuple[BudgetDef, ...]
    catalog: Catalog


def load_policy(settings: WorkerSettings) -> Policy:
    """Rules, budgets and catalog; raises RulesError naming every problem before any job is taken."""
    rules = load_rules(settings.rules_path or shipped(RULES))
    budgets = rules.budgets
    catalog = Catalog.load(settings.catalog_path or shipped(CATALOG))
    return Policy(rules, budgets, catalog)


def build_services(settings: WorkerSettings, redis: Redis, policy: Policy) -> Services:
    client = OpenRouterClient(settings.openrouter)
    keys = Keys(settings.prefix)
    ledger: BudgetLedger | None = None
    alerts: AlertSink | None = None
    spend: SpendControl | None = None
    if policy.budgets:
        alerts = AlertSink(settings.budget_webhook)
        # The lease outlives arq's job timeout, so a slow but live job is never reclaimed.
        lease_s = settings.job_timeout_s + settings.lease_margin_s
        ledger = BudgetLedger(redis, prefix=settings.prefix, lease_s=lease_s, on_alerts=alerts.emit)
        spend = SpendControl(policy.budgets, ledger, policy.catalog, policy.rules.timezone,
                             prefix=settings.prefix)
    return Services(
        settings=settings,
        pipeline=Pipeline(
            rules=policy.rules,
            catalog=policy.catalog,
            client=client,
            upstream_budget_s=settings.upstream_budget_s,
            max_tries=settings.max_tries,
            spend=spend,
            health=ModelHealth(redis, prefix=settings.prefix, settings=settings.breaker),
        ),
        results=ResultStore(
            redis,
            keys,
            ttl_s=settings.result_ttl_s,
            decisions_maxlen=settings.decisions_maxlen,
            store_prompts=settings.store_prompts,
        ),
        client=client,
        ledger=ledger,
        alerts=alerts,
    )
