"""Running a worker process: check settings, policy and key, connect, serve until SIGTERM, drain.

Every start-up problem is one line on stderr and exit code 2 (see the README): an invalid
setting, rules file or catalog, Redis refusing the credentials, or an OpenRouter key or URL that
cannot work. Redis briefly unreachable is waited out; OpenRouter unreachable at start is retried
a few times (a few seconds), then the worker exits 2 rather than start blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from producer_client.cancel import raise_if_cancelled
from producer_client.connection import connect, redact
from worker import loop
from worker.budget.ledger import BudgetLedger
from worker.catalog import CatalogError
from worker.catalog_refresh import CatalogRefresher, RefreshSettings
from worker.catalog_store import CatalogStore
from worker.heartbeat import Beat, Heartbeat
from worker.logs import configure_logging
from worker.metrics import NO_METRICS, Metrics, PrometheusMetrics
from worker.metrics_gauges import GaugeReader
from worker.metrics_server import MetricsError, start_metrics
from worker.openrouter.keycheck import KeyCheckFailed, check_key
from worker.reload import PolicyState, PolicyWatcher, redis_catalog, redis_rules
from worker.routing import Policy
from worker.rules import RulesError
from worker.runner import RouteqWorker
from worker.services import Services, build_services, load_policy
from worker.settings import SettingsError, WorkerSettings
from worker.version import routeq_version

GC_THRESHOLDS: Final = (10_000, 20, 20)

log = logging.getLogger("routeq.worker")


class StartupError(RuntimeError):
    """The worker cannot start; the message is the one line to show."""


def build_worker(
    settings: WorkerSettings,
    *,
    pool: Redis | None = None,
    policy: Policy | None = None,
    burst: bool = False,
    handle_signals: bool = True,
    metrics: Metrics | None = None,
) -> RouteqWorker:
    """A ready worker; raises RulesError (every problem, with its JSON path) before connecting."""
    policy = policy or load_policy(settings)
    pool = pool or connect(settings.redis_url, socket_timeout_s=30.0)
    if metrics is None:
        metrics = PrometheusMetrics(policy.catalog) if settings.metrics.enabled else NO_METRICS
    services = build_services(settings, pool, policy, metrics=metrics)
    keys = services.keys
    catalogs = CatalogStore(pool, keys)
    follow_catalog = settings.catalog_path is None  # ROUTEQ_CATALOG pins a file: no Redis catalogs
    watcher = PolicyWatcher(services.policy, file_rules=policy.rules, file_doc=policy.doc,
                            load_rules=redis_rules(pool, keys),
                            load_catalog=redis_catalog(catalogs) if follow_catalog else None,
                            on_change=lambda: policy_changed())
    refresh = RefreshSettings(settings.catalog_refresh_s, min(300.0, settings.catalog_refresh_s or 300.0))
    refresher = CatalogRefresher(catalogs, settings.openrouter, refresh) if follow_catalog else None
    heartbeat = Heartbeat(
        pool, keys,
        Beat(settings.worker_name, settings.queues, settings.max_jobs, settings.heartbeat_s,
             routeq_version()),
        lambda: _live(services, worker, watcher.state),
    )

    async def policy_changed() -> None:
        services.metrics.set_catalog(services.policy.current.catalog)
        await beat_now(heartbeat)

    async def on_startup(ctx: dict[str, Any]) -> None:
        gauges = GaugeReader(pool, keys, settings.queues, services.health,
                             models=lambda: services.policy.current.rules.models(),
                             budgets=services.spend.known_states)
        try:
            ctx["metrics"] = await start_metrics(services.metrics, settings.metrics, reader=gauges,
                                                 slots=lambda: (worker.job_counter, settings.max_jobs))
        except MetricsError as exc:
            raise StartupError(str(exc)) from None
        try:
            await watcher.follow_now(await services.claimer.control())
        except (RedisError, OSError) as exc:
            log.warning("cannot read the active rules version yet (%s); starting on the rules file", exc)
        ctx["heartbeat"] = asyncio.create_task(heartbeat.run())
        # Everything built so far lives as long as the worker: take it out of the cycle
        # collector's sight, so each collection walks only what jobs allocate. And collect the
        # young generation every 10,000 allocations instead of 700: a job allocates hundreds of
        # objects that live until it ends, and 1,000 jobs in flight made the default thresholds
        # walk them over and over (10-15% of the CPU per job at 1,000 slots; README, Benchmarks).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        ctx["reclaimer"] = asyncio.create_task(reclaim_forever(services.ledger, settings.reclaim_every_s))
        if refresher is not None and refresh.enabled:
            ctx["catalog"] = asyncio.create_task(refresher.run())

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        for name in ("heartbeat", "reclaimer", "catalog"):
            task = ctx.pop(name, None)
            if task is not None:
                task.cancel()
        await watcher.aclose()
        served = ctx.pop("metrics", None)
        if served is not None:
            await served.aclose()
        await heartbeat.stop()
        await services.aclose()

    worker = RouteqWorker(
        claimer=services.claimer,
        jobs=services.jobs,
        interactive_reserve=settings.interactive_reserve,
        wake_channels=(*(keys.wake(q) for q in services.claimer.queue_keys), keys.rules_changed,
                       keys.catalog_changed),
        on_control=watcher.on_control,
        redis_pool=pool,
        ctx={"routeq": services},
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.max_jobs,
        job_timeout=settings.job_timeout_s,
        poll_delay=settings.poll_delay_s,
        handle_signals=handle_signals,
        job_completion_wait=settings.shutdown_grace_s,
        burst=burst,
        log_results=False,
    )
    return worker


async def beat_now(heartbeat: Heartbeat) -> None:
    """An extra heartbeat right away (a policy change should show before the next beat)."""
    with contextlib.suppress(RedisError, OSError):
        await heartbeat.beat_once()


def _live(services: Services, worker: RouteqWorker, state: PolicyState) -> dict[str, Any]:
    stats = services.stats
    policy = services.policy.current
    return {
        "slots_used": worker.job_counter,
        "jobs_done": stats.done,
        "jobs_per_s": round(stats.rate(), 2),
        "by_status": dict(stats.by_status),
        "rules_version": policy.rules.version,
        "rules_number": policy.number,
        "rules_since": state.since,
        "rules_error": state.error,
        "rules_error_at": state.error_at,
        "catalog_version": state.catalog_number,
        "catalog_models": len(policy.catalog),
        "last_error": stats.last_error or state.error,
        "last_error_at": stats.last_error_at or state.error_at,
    }


async def reclaim_forever(ledger: BudgetLedger, every_s: float) -> None:
    """Charge in full the reservations of tries whose worker died (their lease ran out)."""
    while True:
        await asyncio.sleep(every_s)
        raise_if_cancelled()
        try:
            reclaimed = await ledger.reclaim_expired()
        except Exception as exc:  # Redis down or a bug: try again next round
            log.warning("reclaiming expired reservations failed: %s", exc)
            continue
        if reclaimed:
            log.warning("reclaimed %d expired reservation(s), charged in full: %s",
                        len(reclaimed), ", ".join(reclaimed[:10]))


async def run_worker(settings: WorkerSettings, *, burst: bool = False) -> None:
    worker = build_worker(settings, burst=burst)
    where = redact(settings.redis_url)
    started = _start_fields(settings, where)
    log.info("routeq %s worker %s on %s: prefix=%s queues=%s max_jobs=%d job_timeout_s=%d max_tries=%d "
             "rules_file=%s catalog_file=%s (versions active in Redis take over) openrouter=%s "
             "metrics_port=%s store_prompts=%s", started["version"],
             settings.worker_name, where, settings.prefix, started["queues"], settings.max_jobs,
             settings.job_timeout_s, settings.max_tries, started["rules_file"], started["catalog_file"],
             settings.openrouter.base_url, settings.metrics.port, settings.store_prompts, extra=started)
    try:
        await worker.pool.ping()
    except (AuthenticationError, AuthorizationError) as exc:
        # Bad credentials do not heal: stop now rather than retry forever. (An unreachable Redis
        # is different: the main loop waits for it.)
        await worker.pool.aclose()
        raise StartupError(f"Redis at {where} refused the credentials: {exc}") from None
    except ResponseError as exc:
        await worker.pool.aclose()
        raise StartupError(f"Redis at {where} refused the connection: {exc}") from None
    except (RedisConnectionError, OSError):
        log.warning("Redis at %s is not reachable yet; waiting for it", where)
    try:
        await check_key(settings.openrouter)
    except KeyCheckFailed as exc:
        await worker.pool.aclose()
        raise StartupError(str(exc)) from None
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()
        stats = worker.jobs.stats
        uptime_s = round(time.time() - stats.started_at, 1)
        log.info("routeq worker %s stopped after %.0f s: %d jobs (%s)", settings.worker_name, uptime_s,
                 stats.done, ", ".join(f"{k} {v}" for k, v in sorted(stats.by_status.items())) or "none",
                 extra={"event": "worker_stopped", "worker": settings.worker_name, "uptime_s": uptime_s,
                        "jobs_done": stats.done, "by_status": dict(stats.by_status),
                        "duplicates": stats.duplicates})


def _start_fields(settings: WorkerSettings, where: str) -> dict[str, Any]:
    """The settings that explain a worker's behaviour, for its start line (never the API key)."""
    return {
        "event": "worker_started", "version": routeq_version(), "worker": settings.worker_name,
        "redis": where, "prefix": settings.prefix, "queues": ",".join(settings.queues),
        "max_jobs": settings.max_jobs, "interactive_reserve": settings.interactive_reserve,
        "job_timeout_s": settings.job_timeout_s, "max_tries": settings.max_tries,
        "heartbeat_s": settings.heartbeat_s, "rules_file": str(settings.rules_path or "shipped"),
        "catalog_file": str(settings.catalog_path or "shipped"), "openrouter": settings.openrouter.base_url,
        "metrics_port": settings.metrics.port, "store_prompts": settings.store_prompts,
        "rollup_days": settings.rollup_days, "event_loop": loop.name(settings.event_loop),
    }


def main() -> int:
    try:
        settings = WorkerSettings.from_env()
    except SettingsError as exc:
        print(f"routeq worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        loop.run(run_worker(settings), settings.event_loop)
    except RulesError as exc:
        print(f"routeq worker: rules are invalid:\n{exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print(f"routeq worker: model catalog is invalid: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"routeq worker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0

