"""(e) Pickup latency: enqueue → job start on an idle worker, jobs arriving one by one.

Jobs arrive about every 20 ms with a random jitter, so they land at random phases of arq's
0.5 s poll cycle; routeq's worker is woken by the producer's PUBLISH. Start time is taken inside
the job by each system's own stamp (routeq ``timing.queue_ms``, arq ``st - et``), both with
millisecond resolution.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from bench import arq_baseline, harness, load
from bench.load import percentile
from bench.plan import Plan, Say
from bench.procs import Children
from bench.report import Row
from producer_client.client import Client
from producer_client.jobs import new_job_id

SECTION = "e pickup"


async def routeq_pickups(url: str, n: int, gap_s: float, seed: int = 11) -> list[float]:
    rnd = random.Random(seed)
    job = load.standard_job()
    batch = f"pickup-{uuid.uuid4().hex[:8]}"
    async with Client.from_url(url) as client:
        ids: list[str] = []
        for _ in range(n):
            await asyncio.sleep(gap_s * rnd.uniform(0.5, 1.5))
            job_id = new_job_id()
            await client.submit_jobs([(job_id, job)], batch_id=batch)
            ids.append(job_id)
        results = await client.wait_all(ids, batch_id=batch, timeout=30)
    return [float(r.timing.queue_ms) for r in results if r.timing.queue_ms is not None]


async def arq_pickups(url: str, n: int, gap_s: float, seed: int = 11) -> list[float]:
    rnd = random.Random(seed)
    redis = await arq_baseline.pool(url)
    try:
        ids: list[str] = []
        for _ in range(n):
            await asyncio.sleep(gap_s * rnd.uniform(0.5, 1.5))
            ids += await arq_baseline.enqueue(redis, 1, function=arq_baseline.NOOP)
        await arq_baseline.wait_drained(redis, 30)
        times = await arq_baseline.job_times(redis, ids)
    finally:
        await redis.aclose()
    return [(t.started - t.enqueued) * 1000 for t in times]


def run(plan: Plan, say: Say) -> list[Row]:
    n, gap = plan.pickup_jobs, plan.pickup_gap_s
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(0)
        workers = harness.start_routeq_workers(ch, redis, emu, 1)
        rq = asyncio.run(routeq_pickups(redis.url, n, gap))
        ch.stop(*workers)
        redis.flush()
        workers = harness.start_arq_workers(ch, redis, 1, 10)
        aq = asyncio.run(arq_pickups(redis.url, n, gap))
        ch.stop(*workers)
    say(f"pickup routeq p50 {percentile(rq, 50)} p99 {percentile(rq, 99)}; "
        f"arq p50 {percentile(aq, 50)} p99 {percentile(aq, 99)}")
    title = f"idle worker, {n} jobs ~{gap * 1000:.0f} ms apart"
    base = "arq defaults (poll_delay 0.5 s)"
    note = f"routeq {len(rq)}/{n}, arq {len(aq)}/{n} jobs measured; 1 ms resolution"
    return [
        Row(SECTION, f"{title}: enqueue→start p50", percentile(rq, 50), "ms", base, percentile(aq, 50),
            "lower", note=note),
        Row(SECTION, f"{title}: enqueue→start p99", percentile(rq, 99), "ms", base, percentile(aq, 99),
            "lower"),
    ]
