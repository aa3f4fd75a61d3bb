"""The embedded default the demos run on: the emulator in-process, a worker task, and Redis.

Redis is the one at ``REDIS_URL`` when it answers, else an in-process stand-in (fakeredis with
Lua). On a real Redis the demo clears its prefix's keys from an earlier run first, and when it ends
every key it leaves has a TTL (see :mod:`worker.demo.housekeeping`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, TextIO

from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.connection import check_redis_url, connect, redact
from producer_client.keys import Keys
from worker.demo.housekeeping import (
    DEMO_PREFIX,
    KEEP_S,
    RESULT_TTL_S,
    ROLLUP_DAYS,
    delete_prefix,
    expire_untimed,
)
from worker.emulator.runner import RunningEmulator, serve_emulator
from worker.openrouter import OpenRouterSettings
from worker.runner import RouteqWorker
from worker.serve import build_worker
from worker.settings import WorkerSettings
from worker.standin import redis_answers, standin_pair

API_KEY: Final = "sk-or-demo-key"
WORKER_NAME: Final = "routeq-demo-worker"


@dataclass(frozen=True)
class Backend:
    """Where the demo's jobs live: a real Redis at ``url``, or the in-process stand-in."""

    url: str
    real: bool
    worker_pool: Redis
    redis: Redis  # the producer side's connection (the client's, the demo's reads)

    @property
    def description(self) -> str:
        if self.real:
            return f"Redis at {redact(self.url)}"
        return f"in-process Redis stand-in (nothing answered at {redact(self.url)})"


async def open_backend(url: str) -> Backend:
    """The Redis at ``url`` if it answers, else the stand-in; a URL redis-py cannot use is a
    SettingsError (one line from the command), not a silent stand-in."""
    check_redis_url(url)
    if await redis_answers(url):
        return Backend(url, True, connect(url, socket_timeout_s=30.0), connect(url))
    pool, producer = standin_pair()
    return Backend(url, False, pool, producer)


@dataclass(frozen=True)
class DemoStack:
    backend: Backend
    emulator: RunningEmulator
    worker: RouteqWorker
    settings: WorkerSettings
    client: Client

    @property
    def redis(self) -> Redis:
        return self.backend.redis

    @property
    def keys(self) -> Keys:
        return self.client.keys


def demo_settings(url: str, base_url: str, *, max_jobs: int, poll_delay_s: float) -> WorkerSettings:
    """A worker under the demo prefix, with the demo's short TTLs and no catalog sync (the shipped
    catalog is the emulator's, and a sync would leave catalog records behind)."""
    return WorkerSettings(
        redis_url=url, prefix=DEMO_PREFIX, queues=("interactive",), max_jobs=max_jobs,
        poll_delay_s=poll_delay_s, job_timeout_s=30, result_ttl_s=RESULT_TTL_S,
        feedback_ttl_s=RESULT_TTL_S, rollup_days=ROLLUP_DAYS, catalog_refresh_s=0,
        heartbeat_s=1.0, worker_name=WORKER_NAME,
        openrouter=OpenRouterSettings(base_url=base_url, api_key=API_KEY),
    )


@asynccontextmanager
async def demo_stack(
    url: str, *, out: TextIO, faults: dict[str, Any] | None = None, max_jobs: int = 50,
    poll_delay_s: float = 0.2,
) -> AsyncIterator[DemoStack]:
    """A running worker and a client under :data:`DEMO_PREFIX`; on a real Redis, the prefix is
    emptied first and every key left gets a TTL at the end."""
    backend = await open_backend(url)
    if backend.real:
        cleared = await delete_prefix(backend.redis)
        if cleared:
            print(f"routeq demo: cleared {cleared} key(s) of an earlier demo under {DEMO_PREFIX!r}", file=out)
    client = Client(backend.redis, prefix=DEMO_PREFIX, url_for_errors=redact(url))
    try:
        async with serve_emulator(faults=faults, api_key=API_KEY) as emu:
            print(f"routeq demo: emulator at {emu.base_url}, {backend.description}", file=out)
            settings = demo_settings(url, emu.base_url, max_jobs=max_jobs, poll_delay_s=poll_delay_s)
            worker = build_worker(settings, pool=backend.worker_pool, handle_signals=False)
            task = asyncio.create_task(worker.async_run())
            try:
                yield DemoStack(backend, emu, worker, settings, client)
            finally:
                await worker.drain(timeout_s=10)
                await asyncio.gather(task, return_exceptions=True)
                await worker.close()
    finally:
        try:
            if backend.real:  # after the worker stopped: nothing writes under the prefix any more
                await expire_untimed(backend.redis, DEMO_PREFIX, KEEP_S)
        finally:
            await client.close()
