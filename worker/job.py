"""Running one claimed job to its one result, whatever happens inside.

The pipeline turns the job into a :class:`~worker.results.Finish`; the finish script writes it.
An unexpected exception (a bug) still ends in a ``failed`` result (``internal_error``); only a
cancellation (shutdown) leaves the job unfinished, and the runner puts it back in its queue.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from worker.budget.alerts import AlertSink
from worker.claims import Claimed
from worker.envelope import open_envelope
from worker.metrics import NO_METRICS, Metrics
from worker.outcome import JobClock, Outcome
from worker.pipeline import JobInput, Pipeline
from worker.results import Finish, Finished, ResultStore
from worker.spend import Spend
from worker.stats import WorkerStats

log = logging.getLogger("routeq.job")


@dataclass(frozen=True)
class JobRunner:
    pipeline: Pipeline
    results: ResultStore
    spend: Spend
    alerts: AlertSink
    stats: WorkerStats
    metrics: Metrics = NO_METRICS

    async def run(self, claimed: Claimed) -> Finished:
        where = self.results.keys.job(claimed.job_id)
        # The raw envelope is not kept while the job waits on upstream (with a thousand in flight,
        # raw and parsed copies of every job add up): only the parsed job lives on.
        raw, claimed.envelope = claimed.envelope, None
        inp = JobInput(claimed.job_id, claimed.queue_key, open_envelope(raw, where=where), claimed.job_try)
        del raw
        batch_id = inp.envelope.batch_id
        try:
            started = self.pipeline.start(inp)
            del inp
            finish = await self.pipeline.call(started)
        except asyncio.CancelledError:
            raise  # shutdown: the runner puts the job back
        except Exception as exc:  # a bug must never leave a job without a result
            log.exception("job %s: internal error", claimed.job_id)
            result = Outcome(claimed.job_id, claimed.job_try).failed(
                JobClock(enqueued_at=None), "internal_error", f"{type(exc).__name__}: {exc}"
            )
            finish = Finish(result, claimed.queue_key, batch_id)
        # Once the upstream call is over its money must be settled: a shutdown must not cut this.
        finished = await asyncio.shield(self.results.finish(finish))
        if finished.settlement is not None:
            self.spend.remember(finished.settlement.lines)
            if finished.settlement.alerts:
                await self.alerts.emit(finished.settlement.alerts)
        self.stats.finished(finish.result, finished.written)
        self.metrics.job_finished(finish.queue_key.rsplit(":", 1)[-1], finish.result, finished.written)
        _log_finished(finish, finished)
        return finished


def _log_finished(finish: Finish, finished: Finished) -> None:
    """One INFO line per finished job (never its prompt); in JSON logs its fields are keys too."""
    r = finish.result
    routing = r.routing
    fields = {
        "job_id": r.job_id,
        "queue": finish.queue_key.rsplit(":", 1)[-1],
        "status": r.status if finished.written else "duplicate",
        "rule": routing.rule if routing else None,
        "model": routing.model_served if routing else None,
        "error_type": r.error.type if r.error else None,
        "cost_usd": r.usage.cost_usd if r.usage else "0",
        "latency_ms": r.timing.total_ms,
        "job_try": r.job_try,
    }
    log.info("← %s %s queue=%s rule=%s model=%s error=%s cost_usd=%s latency_ms=%d", r.job_id,
             fields["status"], fields["queue"], fields["rule"], fields["model"], fields["error_type"],
             fields["cost_usd"], r.timing.total_ms, extra=fields)
