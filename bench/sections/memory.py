"""(g) Memory: resident set of one worker holding 1,000 in-flight jobs vs the same worker idle.

The emulator holds every call for a few seconds, so all jobs are claimed and waiting at once;
VmRSS is sampled from /proc while they are, and the peak is reported. bare arq holding the same
number of ``asyncio.sleep`` jobs is shown for scale.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from bench import arq_baseline, harness, load
from bench.plan import Plan, Say
from bench.procs import Child, Children, RedisProc
from bench.report import Row
from producer_client.client import Client
from producer_client.keys import Keys

SECTION = "g memory"
_MIB = 1024.0


def _in_flight(redis: RedisProc) -> int:
    """Jobs running now: arq marks each with an in-progress key; routeq's claim moves a job's queue
    score to when its claim expires, so running jobs are the future-scored members."""
    client = redis.client()
    arq = sum(1 for _ in client.scan_iter(match="arq:in-progress:*", count=5000))
    now_ms = int(time.time() * 1000)
    keys = Keys()
    routeq = sum(int(client.zcount(keys.queue(q), f"({now_ms}", "+inf")) for q in ("interactive", "batch"))
    return arq + routeq


def _peak_rss(worker: Child, redis: RedisProc, window_s: float) -> tuple[int, int]:
    """(peak VmRSS KiB, jobs in flight at that moment) over ``window_s``."""
    peak, at = 0, 0
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        rss = worker.rss_kib()
        if rss > peak:
            peak, at = rss, _in_flight(redis)
        time.sleep(0.1)
    return peak, at


def _idle_rss(worker: Child) -> int:
    time.sleep(1.0)  # let start-up garbage settle
    return worker.rss_kib()


def _held(
    redis: RedisProc, worker: Child, submit: Callable[[], None], window_s: float
) -> tuple[int, int, int]:
    idle = _idle_rss(worker)
    submit()
    peak, at = _peak_rss(worker, redis, window_s)
    return idle, peak, at


def _submit_routeq(url: str, n: int) -> None:
    async def go() -> None:
        async with Client.from_url(url) as client:
            await load.submit(client, n, batch_id=None)

    asyncio.run(go())


def _submit_arq(url: str, n: int, seconds: float) -> None:
    async def go() -> None:
        redis = await arq_baseline.pool(url)
        try:
            await arq_baseline.enqueue(
                redis, n, function=arq_baseline.SLEEP, args=(seconds,), concurrency=100
            )
        finally:
            await redis.aclose()

    asyncio.run(go())


def _kill(ch: Children, workers: Sequence[Child]) -> None:
    for w in workers:
        w.kill()
    ch.stop(*workers)


def run(plan: Plan, say: Say) -> list[Row]:
    n, latency_ms = plan.memory_inflight, plan.memory_latency_ms
    window = latency_ms / 1000 * 0.9
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(latency_ms)
        workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_MAX_JOBS=str(n))
        idle, peak, at = _held(redis, workers[0], lambda: _submit_routeq(redis.url, n), window)
        _kill(ch, workers)
        redis.flush()
        workers = harness.start_arq_workers(ch, redis, 1, n)
        hold_s = latency_ms / 1000
        a_idle, a_peak, a_at = _held(redis, workers[0], lambda: _submit_arq(redis.url, n, hold_s), window)
        _kill(ch, workers)
    say(f"memory routeq idle {idle} KiB peak {peak} KiB at {at}; arq idle {a_idle} peak {a_peak} at {a_at}")
    per_job = (peak - idle) / max(at, 1)
    a_per_job = (a_peak - a_idle) / max(a_at, 1)
    return [
        Row(SECTION, f"worker RSS, {n:,} jobs held {latency_ms / 1000:g} s upstream", peak / _MIB, "MiB",
            "same worker idle", idle / _MIB, "lower",
            note=f"{at} jobs in flight at the peak; ≈ {per_job:.0f} KiB per in-flight job"),
        Row(SECTION, f"bare arq worker RSS, {n:,} sleep jobs held", a_peak / _MIB, "MiB",
            "same arq worker idle", a_idle / _MIB, "lower",
            note=f"{a_at} jobs in flight at the peak; ≈ {a_per_job:.0f} KiB per in-flight job"),
    ]
