"""Producer side of the routeq runs: one standard job, chunked submits, per-job timing.

Throughput and latency come from each job's own stamps (enqueue, start, finish), the same way
for routeq (``result.timing``) and arq (its result envelope), so neither side is timed by the
way the driver happens to wait for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from producer_client.client import Client
from producer_client.contract import Job, Result
from producer_client.jobs import build_job, new_job_id

CHUNK = 500


@dataclass(frozen=True)
class JobTimes:
    """Epoch seconds of one finished job."""

    enqueued: float
    started: float
    finished: float
    ok: bool


@dataclass(frozen=True)
class RunFigures:
    """What one load run produced; ``span_s`` runs from the first enqueue to the last finish."""

    jobs: int
    ok: int
    span_s: float
    p50_ms: float
    p99_ms: float
    pickup_p50_ms: float
    pickup_p99_ms: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.span_s if self.span_s > 0 else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def figures(times: Sequence[JobTimes]) -> RunFigures:
    if not times:
        return RunFigures(0, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    latency = [(t.finished - t.enqueued) * 1000 for t in times]
    pickup = [(t.started - t.enqueued) * 1000 for t in times]
    span = max(t.finished for t in times) - min(t.enqueued for t in times)
    return RunFigures(
        jobs=len(times),
        ok=sum(t.ok for t in times),
        span_s=span,
        p50_ms=percentile(latency, 50),
        p99_ms=percentile(latency, 99),
        pickup_p50_ms=percentile(pickup, 50),
        pickup_p99_ms=percentile(pickup, 99),
    )


def standard_job(i: int = 0) -> Job:
    """A small chat job that the shipped rules route to the default rule's chain."""
    return build_job(
        prompt=f"Summarise ticket {i}: the printer on floor 3 is out of toner again.",
        context={"user_id": f"u-{i % 50}", "tenant": "acme", "user_tier": "pro", "task_type": "chat"},
        params={"max_tokens": 64},
    )


async def submit(client: Client, n: int, *, batch_id: str | None, chunk: int = CHUNK) -> list[str]:
    """n standard jobs through ``Client.submit_jobs``, ``chunk`` per call."""
    job = standard_job()
    ids: list[str] = []
    for start in range(0, n, chunk):
        part = [(new_job_id(), job) for _ in range(min(chunk, n - start))]
        await client.submit_jobs(part, batch_id=batch_id)
        ids += [job_id for job_id, _ in part]
    return ids


async def wait(client: Client, ids: Sequence[str], *, batch_id: str | None, timeout_s: float) -> list[Result]:
    return await client.wait_all(ids, batch_id=batch_id, timeout=timeout_s)


def result_times(results: Sequence[Result]) -> list[JobTimes]:
    out: list[JobTimes] = []
    for r in results:
        t = r.timing
        if t.enqueued_at is None:
            continue
        ok = r.status == "succeeded"
        out.append(JobTimes(_epoch(t.enqueued_at), _epoch(t.started_at), _epoch(t.finished_at), ok))
    return out


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0
