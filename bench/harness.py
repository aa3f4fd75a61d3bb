"""One load run: fresh workers on a flushed Redis, N jobs in, stamps and costs out.

The same shape for routeq and bare arq: start the worker processes and wait until they are
ready, reset Redis's command counters, push the jobs the producer's natural way, wait (up to a
cap) for them to finish, then read each job's own enqueue/start/finish stamps, the CPU time each
process used, and Redis's command count.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench import arq_baseline, load
from bench.load import JobTimes, RunFigures
from bench.procs import Child, Children, EmulatorProc, RedisProc, wait_ready
from bench.report import Status
from producer_client.client import Client
from producer_client.contract import Result
from producer_client.errors import ResultTimeout

ROUTEQ_READY = "worker ready"
ARQ_READY = "arq worker ready"


@dataclass(frozen=True)
class LoadRun:
    """One run's figures; per-job costs divide by finished jobs (None when none finished)."""

    figures: RunFigures
    submitted: int
    timed_out: bool
    worker_cpu_ms_per_job: float | None
    emulator_cpu_ms_per_job: float | None
    redis_cmds_per_job: float | None
    script_calls_per_job: float | None

    @property
    def jobs_per_s(self) -> float:
        """Finished jobs over first enqueue → last finish; 0 when a cut run finished none."""
        if self.figures.jobs == 0:
            return 0.0 if self.timed_out else math.nan
        return self.figures.jobs_per_s

    @property
    def complete(self) -> bool:
        return not self.timed_out and self.figures.jobs == self.submitted


    def status_note(self) -> str:
        if self.complete:
            return ""
        return f"cut at the cap: {self.figures.jobs}/{self.submitted} jobs finished"


def status_of(*runs: LoadRun) -> Status:
    return "ok" if all(r.complete for r in runs) else "partial"


def cut_note(routeq: LoadRun, arq: LoadRun) -> str:
    """Which side of a routeq/arq pair was cut at its cap, if any."""
    parts = [routeq.status_note(), f"arq: {arq.status_note()}" if arq.status_note() else ""]
    return "; ".join(p for p in parts if p)


class Meter:
    """CPU seconds of a set of processes and Redis's command counters, between two points."""

    def __init__(self, redis: RedisProc, workers: Sequence[Child], emulator: EmulatorProc | None) -> None:
        self.redis = redis
        self.workers = list(workers)
        self.emulator = emulator
        redis.client().config_resetstat()
        self.worker_cpu0 = sum(w.cpu_s() for w in self.workers)
        self.emu_cpu0 = emulator.child.cpu_s() if emulator else 0.0

    def finish(self, jobs: int) -> tuple[float | None, float | None, float | None, float | None]:
        worker_cpu = sum(w.cpu_s() for w in self.workers) - self.worker_cpu0
        emu_cpu = (self.emulator.child.cpu_s() - self.emu_cpu0) if self.emulator else 0.0
        calls, scripts = command_counts(self.redis)
        if jobs == 0:
            return None, None, None, None
        return worker_cpu * 1000 / jobs, emu_cpu * 1000 / jobs, calls / jobs, scripts / jobs


def command_counts(redis: RedisProc) -> tuple[int, int]:
    """(all commands incl. those inside Lua and MULTI, EVAL/EVALSHA calls), minus INFO/CONFIG."""
    stats: dict[str, Any] = redis.client().info("commandstats")  # type: ignore[assignment]
    calls = scripts = 0
    for name, row in stats.items():
        cmd = name.removeprefix("cmdstat_")
        if cmd.startswith(("info", "config")):
            continue
        calls += int(row["calls"])
        if cmd in ("eval", "evalsha"):
            scripts += int(row["calls"])
    return calls, scripts


def start_routeq_workers(
    ch: Children, redis: RedisProc, emu: EmulatorProc, count: int, **settings: str
) -> list[Child]:
    env = {"ROUTEQ_SHUTDOWN_GRACE_S": "0", **settings}
    workers = [ch.routeq_worker(redis.url, emu.base_url, env) for _ in range(count)]
    wait_ready(workers, ROUTEQ_READY)
    return workers


def start_arq_workers(ch: Children, redis: RedisProc, count: int, max_jobs: int) -> list[Child]:
    workers = [ch.arq_worker(redis.url, max_jobs=max_jobs) for _ in range(count)]
    wait_ready(workers, ARQ_READY)
    return workers


def end_workers(ch: Children, workers: Sequence[Child], run: LoadRun | None) -> None:
    """SIGTERM after a finished run; kill after a cut one (its in-flight jobs don't matter)."""
    if run is None or not run.complete:
        for w in workers:
            w.kill()
        ch.stop(*workers)
    else:
        ch.stop(*workers)


# -- routeq ------------------------------------------------------------------------------------


async def routeq_jobs(url: str, n: int, cap_s: float) -> tuple[list[Result], int, bool]:
    """Submit n standard jobs in chunks (one batch), wait up to cap_s; (results, submitted, cut)."""
    batch = f"bench-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + cap_s
    async with Client.from_url(url) as client:
        ids = await load.submit(client, n, batch_id=batch)
        got: dict[str, Result] = {}
        cut = False
        try:
            left = max(0.1, deadline - time.monotonic())
            async for res in client.as_completed(ids, batch_id=batch, timeout=left):
                got[res.job_id] = res
        except ResultTimeout:
            cut = True
            for late in await client.get_many(ids):
                if late is not None:
                    got[late.job_id] = late
        return list(got.values()), len(ids), cut


def routeq_run(
    redis: RedisProc, emu: EmulatorProc, workers: Sequence[Child], n: int, cap_s: float
) -> LoadRun:
    meter = Meter(redis, workers, emu)
    results, submitted, cut = asyncio.run(routeq_jobs(redis.url, n, cap_s))
    times = load.result_times(results)
    return _run(times, submitted, cut, meter)


# -- arq ---------------------------------------------------------------------------------------


async def arq_jobs(
    url: str, n: int, function: str, args: Sequence[Any], cap_s: float
) -> tuple[list[JobTimes], bool]:
    """Enqueue with ``enqueue_job`` (100 calls in flight), wait for arq's queue to drain."""
    deadline = time.monotonic() + cap_s
    redis = await arq_baseline.pool(url)
    try:
        ids = await arq_baseline.enqueue(redis, n, function=function, args=args, concurrency=100)
        cut = False
        try:
            await arq_baseline.wait_drained(redis, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            cut = True
        return await arq_baseline.job_times(redis, ids), cut
    finally:
        await redis.aclose()


def arq_run(
    redis: RedisProc, workers: Sequence[Child], n: int, function: str, args: Sequence[Any], cap_s: float
) -> LoadRun:
    meter = Meter(redis, workers, None)
    times, cut = asyncio.run(arq_jobs(redis.url, n, function, args, cap_s))
    return _run(times, n, cut, meter)


def _run(times: list[JobTimes], submitted: int, cut: bool, meter: Meter) -> LoadRun:
    worker_ms, emu_ms, cmds, script_calls = meter.finish(len(times))
    return LoadRun(
        figures=load.figures(times),
        submitted=submitted,
        timed_out=cut,
        worker_cpu_ms_per_job=worker_ms,
        emulator_cpu_ms_per_job=emu_ms,
        redis_cmds_per_job=cmds,
        script_calls_per_job=script_calls,
    )
