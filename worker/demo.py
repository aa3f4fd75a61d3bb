"""``routeq demo``: the main job end to end on an embedded default.

It starts the emulator in-process, uses ``REDIS_URL`` when a Redis answers there (else an
in-process stand-in), starts a worker, submits a mixed set of jobs and prints how each was routed.
Demo keys use their own prefix, so a production worker on the same Redis ignores them, and the
demo deletes them when it ends: it leaves nothing behind in a user's Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from producer_client.client import Client
from producer_client.connection import DEFAULT_URL, connect, redact
from producer_client.contract import Result
from producer_client.keys import glob_escape
from worker.cli.table import render_table
from worker.emulator.runner import serve_emulator
from worker.openrouter import OpenRouterSettings
from worker.serve import build_worker
from worker.settings import WorkerSettings
from worker.standin import redis_answers, standin_pair

_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}

DEMO_JOBS: list[tuple[str, dict[str, Any]]] = [
    ("free user", {"prompt": "Hi! What can you do?", "context": {"user_tier": "free"}}),
    ("code task", {
        "prompt": "Refactor this function:\n```python\ndef f(x): return x*2\n```",
        "context": {"user_tier": "pro", "task_type": "code", "budget_remaining": 40.0},
    }),
    ("vision", {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, _IMAGE]}
        ],
        "context": {"user_tier": "pro", "needs_vision": True, "budget_remaining": 40.0},
    }),
    ("tools (primary down)", {
        "prompt": "Please call the weather tool for Paris.",
        "context": {"user_tier": "pro", "needs_tools": True, "budget_remaining": 40.0},
        "params": {"tools": [_TOOL]},
    }),
    ("enterprise", {
        "prompt": "Summarise our Q3 churn drivers in three bullets.",
        "context": {"user_tier": "enterprise", "task_type": "analysis", "tenant": "acme"},
    }),
    ("latency-sensitive", {
        "prompt": "Classify: 'The delivery was late and the box was crushed.'",
        "context": {"user_tier": "pro", "task_type": "classification", "max_latency_ms": 1500,
                    "budget_remaining": 40.0},
    }),
    ("low budget", {
        "prompt": "Write a haiku about queues.",
        "context": {"user_tier": "basic", "task_type": "chat", "budget_remaining": 0.40},
    }),
    ("auto-classified", {
        "prompt": "Why does this crash?\n```python\nimport os\nos.remove(None)\n```",
        "context": {"user_tier": "pro", "task_type": "auto", "budget_remaining": 40.0},
    }),
]

# The demo shows a fallback: the tools rule's primary model is down in the emulator.
DEMO_FAULTS: dict[str, Any] = {"fail_always": ["openai/gpt-4o"]}


async def run_demo(redis_url: str | None = None, *, out: Any = None) -> list[Result]:
    import sys

    out = out or sys.stdout
    url = redis_url or os.environ.get("REDIS_URL", DEFAULT_URL)
    prefix = f"routeq-demo-{uuid.uuid4().hex[:8]}:"
    if await redis_answers(url):
        where = f"Redis at {redact(url)}"
        pool, producer_redis = connect(url, socket_timeout_s=30.0), connect(url)
    else:
        where = f"in-process Redis stand-in (nothing answered at {redact(url)})"
        pool, producer_redis = standin_pair()

    async with serve_emulator(faults=DEMO_FAULTS, api_key="sk-or-demo-key") as emu:
        print(f"routeq demo: emulator at {emu.base_url}, {where}", file=out)
        settings = WorkerSettings(
            redis_url=url, prefix=prefix, queues=("interactive",), max_jobs=50,
            poll_delay_s=0.2, job_timeout_s=30,
            openrouter=OpenRouterSettings(base_url=emu.base_url, api_key="sk-or-demo-key"),
        )
        worker = build_worker(settings, pool=pool, handle_signals=False)
        worker_task = asyncio.create_task(worker.async_run())
        client = Client(producer_redis, prefix=prefix)
        try:
            ids = [await client.submit(**spec) for _, spec in DEMO_JOBS]
            results = await client.wait_all(ids, timeout=60)
        finally:
            await worker.drain(timeout_s=10)
            await asyncio.gather(worker_task, return_exceptions=True)
            await worker.close()
            await delete_prefix(producer_redis, prefix)
            await client.close()
    print_table([name for name, _ in DEMO_JOBS], results, out=out)
    return results


async def delete_prefix(redis: Redis, prefix: str) -> int:
    """Remove every key under ``prefix`` (the demo's own); returns how many."""
    doomed = [key async for key in redis.scan_iter(match=glob_escape(prefix) + "*", count=1000)]
    for start in range(0, len(doomed), 500):
        await redis.delete(*doomed[start : start + 500])
    return len(doomed)


def print_table(names: Sequence[str], results: Sequence[Result], *, out: Any) -> None:
    headers = ["job", "status", "rule", "model", "served model", "cost (USD)", "latency"]
    rows = []
    for name, r in zip(names, results, strict=True):
        routing = r.routing
        rows.append([
            name,
            r.status,
            routing.rule if routing else "-",
            routing.model if routing else "-",
            (routing.model_served or "-") if routing else "-",
            r.usage.cost_usd if r.usage else "-",
            f"{r.timing.total_ms} ms",
        ])
    for line in render_table(headers, rows, rule=True):
        print(line, file=out)
