"""Running a worker process: load the policy, connect, serve until SIGTERM, drain, exit."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from arq.connections import ArqRedis
from arq.worker import func
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError

from producer_client.connection import redact
from producer_client.keys import JOB_FUNCTION, Keys
from worker.budget.ledger import BudgetLedger
from worker.job import complete
from worker.outcome import JobClock, Outcome
from worker.rules import RulesError
from worker.runner import RouteqWorker, make_pool
from worker.serialization import deserialize, serialize
from worker.services import Services, build_services, load_policy
from worker.settings import SettingsError, WorkerSettings

log = logging.getLogger("routeq.worker")

# arq counts every start toward max_tries and then fails the job without calling us (so without a
# result); we enforce our own, lower limit inside the job instead.
_ARQ_MAX_TRIES = 1000


def build_worker(
    settings: WorkerSettings,
    *,
    pool: ArqRedis | None = None,
    burst: bool = False,
    handle_signals: bool = True,
) -> RouteqWorker:
    """A ready worker; raises RulesError (every problem, with its JSON path) before connecting."""
    policy = load_policy(settings)
    pool = pool or make_pool(settings.redis_url)
    keys = Keys(settings.prefix)
    queue_keys = tuple(keys.queue(q) for q in settings.queues)
    services = build_services(settings, pool, policy)

    async def on_lost_payload(job_id: str) -> None:
        result = Outcome(job_id, 1).rejected(
            JobClock(enqueued_at=None), "invalid_job",
            f"no job payload at arq:job:{job_id} (expired, or the id was queued without one)",
        )
        await services.results.write(result)

    async def on_startup(ctx: dict[str, Any]) -> None:
        if services.ledger is not None:
            ctx["reclaimer"] = asyncio.create_task(
                reclaim_forever(services.ledger, settings.reclaim_every_s)
            )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        task = ctx.pop("reclaimer", None)
        if task is not None:
            task.cancel()
        svc: Services = ctx["routeq"]
        await svc.aclose()

    return RouteqWorker(
        functions=[func(complete, name=JOB_FUNCTION, timeout=settings.job_timeout_s,
                        max_tries=_ARQ_MAX_TRIES)],
        queue_names=queue_keys,
        interactive_reserve=settings.interactive_reserve,
        scan_limit=settings.scan_limit,
        wake_channels=tuple(keys.wake(q) for q in queue_keys),
        redis_pool=pool,
        ctx={"routeq": services, "on_lost_payload": on_lost_payload},
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.max_jobs,
        job_timeout=settings.job_timeout_s,
        keep_result=0,
        poll_delay=settings.poll_delay_s,
        max_tries=_ARQ_MAX_TRIES,
        health_check_interval=10,
        handle_signals=handle_signals,
        job_completion_wait=settings.shutdown_grace_s,
        job_serializer=serialize,
        job_deserializer=deserialize,
        burst=burst,
        log_results=False,
    )


async def reclaim_forever(ledger: BudgetLedger, every_s: float) -> None:
    """Charge in full the reservations of tries whose worker died (their lease ran out)."""
    while True:
        await asyncio.sleep(every_s)
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
    log.info("routeq worker %s on %s", settings.worker_name, redact(settings.redis_url))
    try:
        await worker.pool.ping()
    except (AuthenticationError, AuthorizationError) as exc:
        # Bad credentials do not heal: stop now rather than retry forever. (An unreachable Redis
        # is different: the main loop waits for it.)
        await worker.pool.aclose()
        where = redact(settings.redis_url)
        raise CredentialsError(f"Redis at {where} refused the credentials: {exc}") from None
    except (RedisConnectionError, OSError):
        pass
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()


class CredentialsError(RuntimeError):
    """Redis refused the worker's credentials at start-up."""


def configure_logging(level: str) -> None:
    """Our own logs at ``level``; arq's and httpx's per-job lines only when debugging (they cost
    more CPU than the job bookkeeping itself at a thousand jobs a second)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        for noisy in ("arq.worker", "arq.jobs", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("arq.worker").addFilter(_hide_job_args)


def _hide_job_args(record: logging.LogRecord) -> bool:
    """arq logs the first 80 characters of each job's arguments when it starts one: the prompt.
    Prompts stay out of logs as they stay out of the decision stream (ROUTEQ_STORE_PROMPTS)."""
    if record.msg == "%6.2fs → %s(%s)%s" and isinstance(record.args, tuple) and len(record.args) == 4:
        record.args = (record.args[0], record.args[1], "…", record.args[3])
    return True


def main() -> int:
    configure_logging(os.environ.get("ROUTEQ_LOG_LEVEL", "INFO"))
    try:
        settings = WorkerSettings.from_env()
    except SettingsError as exc:
        print(f"routeq worker: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_worker(settings))
    except RulesError as exc:
        print(f"routeq worker: rules file is invalid:\n{exc}", file=sys.stderr)
        return 2
    except CredentialsError as exc:
        print(f"routeq worker: {exc}", file=sys.stderr)
        return 2
    return 0
