"""An in-process stack for component tests: fakeredis (with Lua), the emulator, a worker task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from producer_client.client import Client
from worker.emulator.runner import RunningEmulator, serve_emulator
from worker.metrics import Metrics
from worker.openrouter import OpenRouterSettings
from worker.runner import RouteqWorker
from worker.serve import build_worker
from worker.settings import WorkerSettings
from worker.standin import standin_pair


@dataclass
class Stack:
    client: Client
    worker: RouteqWorker
    emulator: RunningEmulator


@asynccontextmanager
async def inproc_stack(
    *, rules: Path | None = None, faults: dict[str, Any] | None = None, metrics: Metrics | None = None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    pool, producer = standin_pair()
    async with serve_emulator(faults=faults, api_key="sk-or-test") as emulator:
        base = WorkerSettings(
            queues=("interactive", "batch"), max_jobs=50, poll_delay_s=0.05, job_timeout_s=20,
            rules_path=rules,
            openrouter=OpenRouterSettings(base_url=emulator.base_url, api_key="sk-or-test", max_retries=1,
                                          backoff_base_s=0.01),
        )
        worker = build_worker(replace(base, **settings), pool=pool, handle_signals=False, metrics=metrics)
        task = asyncio.create_task(worker.async_run())
        client = Client(producer)
        try:
            yield Stack(client, worker, emulator)
        finally:
            await worker.drain(timeout_s=5)
            await asyncio.gather(task, return_exceptions=True)
            await worker.close()
            await client.close()
