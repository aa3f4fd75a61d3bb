"""The arq job function. Whatever happens inside, the job ends with exactly one result."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from producer_client.contract import Job
from worker.deadletters import keep_failed_job
from worker.outcome import JobClock, Outcome
from worker.pipeline import JobInput
from worker.services import Services

log = logging.getLogger("routeq.job")


async def complete(ctx: dict[str, Any], payload: Any, batch_id: str | None = None, **_: Any) -> str:
    svc: Services = ctx["routeq"]
    job_id: str = ctx["job_id"]
    job_try: int = ctx.get("job_try", 1)
    enqueued: datetime | None = ctx.get("enqueue_time")
    enqueued_at = enqueued.timestamp() if enqueued else None

    # A re-run (crash, cancel, duplicate delivery): a result may already exist.
    if job_try > 1 and await svc.results.existing(job_id) is not None:
        log.info("job %s already has a result; not running it again", job_id)
        return "duplicate"
    messages: Any = None
    job: Job | None = None
    try:
        ran = await svc.pipeline.run(
            JobInput(job_id, payload, job_try=job_try, enqueued_at=enqueued_at, batch_id=batch_id)
        )
        result, job, messages = ran.result, ran.job, ran.messages
    except asyncio.CancelledError:
        raise  # shutdown: arq puts the job back on the queue
    except Exception as exc:  # a bug must never leave a job without a result
        log.exception("job %s: internal error", job_id)
        result = Outcome(job_id, job_try).failed(
            JobClock(enqueued_at=enqueued_at), "internal_error", f"{type(exc).__name__}: {exc}",
            retryable=True,
        )
    if result.status == "failed" and job is not None:
        # Dead letters keep the job itself, so `routeq retry` can run it again under its id.
        await keep_failed_job(svc.results.redis, svc.results.keys, job_id,
                              job.model_dump_json().encode(), svc.results.ttl_s)
    written = await svc.results.write(result, batch_id=batch_id, messages=messages)
    return result.status if written else "duplicate"
