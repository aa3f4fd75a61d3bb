"""What a worker process builds once at start-up and shares across its jobs."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.budget.alerts import AlertSink
from worker.budget.ledger import BudgetLedger
from worker.catalog import Catalog
from worker.claims import Claimer
from worker.health import HealthCache, ModelHealth, account_id
from worker.job import JobRunner
from worker.metrics import NO_METRICS, Metrics
from worker.openrouter import OpenRouterClient
from worker.pipeline import Pipeline, PolicyRef
from worker.results import ResultStore
from worker.routing import Policy
from worker.rules import load_rules
from worker.settings import WorkerSettings
from worker.shipped import CATALOG, RULES, shipped
from worker.spend import Spend
from worker.stats import WorkerStats


def load_policy(settings: WorkerSettings) -> Policy:
    """Catalog, then the rules file checked against it; raises RulesError naming every problem (or
    CatalogError) before any job is taken. The policy keeps the file's document, to recompile it
    when the catalog changes."""
    catalog = Catalog.load(settings.catalog_path or shipped(CATALOG))
    source = settings.rules_path or shipped(RULES)
    rules = load_rules(source, catalog=catalog)
    return Policy(rules, catalog, None, orjson.loads(source.read_bytes()))


@dataclass(frozen=True)
class Services:
    settings: WorkerSettings
    keys: Keys
    policy: PolicyRef
    client: OpenRouterClient
    ledger: BudgetLedger
    alerts: AlertSink
    health: ModelHealth
    results: ResultStore
    stats: WorkerStats
    jobs: JobRunner
    claimer: Claimer
    spend: Spend
    metrics: Metrics

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.alerts.aclose()


def build_services(
    settings: WorkerSettings, redis: Redis, policy: Policy, *, metrics: Metrics = NO_METRICS
) -> Services:
    keys = Keys(settings.prefix)
    client = OpenRouterClient(settings.openrouter)
    alerts = AlertSink(settings.budget_webhook)
    # The lease outlives the job timeout, so a slow but live job is never reclaimed.
    lease_s = settings.job_timeout_s + settings.lease_margin_s
    ledger = BudgetLedger(redis, prefix=settings.prefix, lease_s=lease_s, on_alerts=alerts.emit)
    spend = Spend(ledger)
    health = ModelHealth(redis, prefix=settings.prefix, settings=settings.breaker,
                         account=account_id(settings.openrouter.api_key))
    ref = PolicyRef(policy)
    pipeline = Pipeline(ref, client, spend, HealthCache(health), upstream_budget_s=settings.upstream_budget_s,
                        max_tries=settings.max_tries, metrics=metrics)
    results = ResultStore(redis, keys, ttl_s=settings.result_ttl_s,
                          decisions_maxlen=settings.decisions_maxlen, store_prompts=settings.store_prompts,
                          rollup_ttl_s=settings.rollup_days * 86_400, feedback_ttl_s=settings.feedback_ttl_s)
    stats = WorkerStats()
    return Services(
        settings=settings,
        keys=keys,
        policy=ref,
        client=client,
        ledger=ledger,
        alerts=alerts,
        health=health,
        results=results,
        stats=stats,
        jobs=JobRunner(pipeline, results, spend, alerts, stats, metrics),
        claimer=Claimer(redis, keys, [keys.queue(q) for q in settings.queues], claim_s=settings.claim_s),
        spend=spend,
        metrics=metrics,
    )
