"""Hot reload on real parts: push, activate and roll back rules while two worker processes run a
steady stream of jobs. Every job succeeds, each records a version that was active while it ran,
and every worker reports a new activation within a second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from producer_client.client import Client
from producer_client.contract import Result
from producer_client.keys import Keys
from tests.support.procs import Emulator
from tests.support.waiting import eventually
from worker.rules_store import RulesStore, worker_rules
from worker.shipped import RULES, shipped

PROPAGATION_S = 1.0  # the documented bound: pub/sub wakes the worker, the claim's read backs it up
SWITCHES = 20
MINI, SONNET = "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"


def version(model: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(shipped(RULES).read_bytes())
    doc["rules"][-1] = {"name": "default", "priority": 99, "when": {}, "model": model}
    return doc


async def test_switching_versions_under_load(redis_url: str, clean_emulator: Emulator) -> None:
    from tests.support.faults import start_workers

    workers = start_workers(2, redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="50",
                            ROUTEQ_HEARTBEAT_S="5")  # slow beats: only the reload's own beat can be quick
    client = Client.from_url(redis_url)
    store = RulesStore(client.redis, Keys())
    timeline: list[tuple[float, int]] = []  # (when it became active, number)
    results: list[Result] = []
    stop = asyncio.Event()

    async def stream() -> None:
        n = 0
        while not stop.is_set():
            job_id = await client.submit(prompt=f"steady {n}", context={"user_tier": "pro"})
            results.append(await client.result(job_id, timeout=30))
            n += 1

    try:
        v1 = (await store.push(version(MINI), by="test", message="mini", activate=True)).version
        v2 = (await store.push(version(SONNET), by="test", message="sonnet")).version
        timeline.append((time.time(), v1))

        async def on_v1() -> bool:
            live = [w for w in await worker_rules(client.redis, Keys()) if w.state == "live"]
            return len(live) == 2 and all(w.rules_number == v1 for w in live)

        await eventually(on_v1, timeout=10, what="both workers on the first version")
        producers = [asyncio.create_task(stream()) for _ in range(4)]
        delays = []
        for i in range(1, SWITCHES + 1):
            target = v1 if i % 2 == 0 else v2
            await store.activate(target, by="test")
            at = time.time()
            timeline.append((at, target))

            async def all_on(number: int = target) -> bool:
                live = [w for w in await worker_rules(client.redis, Keys()) if w.state == "live"]
                return len(live) == 2 and all(w.rules_number == number for w in live)

            await eventually(all_on, timeout=10, interval=0.005, what=f"both workers on version {target}")
            delays.append(time.time() - at)
            await asyncio.sleep(0.2)  # let jobs run on this version
        stop.set()
        await asyncio.gather(*producers)
    finally:
        await client.close()
        for w in workers:
            w.kill()

    delays.sort()
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))]
    print(f"\nswitch to all workers: p50 {delays[len(delays) // 2] * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms over {SWITCHES} switches; {len(results)} jobs")
    assert p99 < PROPAGATION_S
    assert results and all(r.status == "succeeded" for r in results)
    model_of = {v1: MINI, v2: SONNET}
    for r in results:
        assert r.routing is not None and r.routing.rules_number in model_of
        assert r.routing.model == model_of[r.routing.rules_number]
        # The versions in force at some moment from the propagation bound before its start to its end.
        since = _epoch(r.timing.started_at) - PROPAGATION_S
        finished = _epoch(r.timing.finished_at)
        during = {n for at, n in timeline if since < at <= finished}
        during |= {n for at, n in timeline if at <= since}.intersection([_in_force(timeline, since)])
        assert r.routing.rules_number in during, (r.job_id, r.routing.rules_number, since, timeline)


def _in_force(timeline: list[tuple[float, int]], t: float) -> int | None:
    before = [n for at, n in timeline if at <= t]
    return before[-1] if before else None


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
