"""A worker's log as an operator reads it: JSON lines, one line per finished job, start and stop
lines with the settings that matter, never the API key."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from producer_client.client import Client
from tests.support import emu
from tests.support.procs import API_KEY, Emulator, WorkerProcess

PRO = {"user_tier": "pro", "task_type": "chat", "user_id": "u-1"}


def _json_lines(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    docs = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(d, dict) for d in docs)
    return docs


async def test_json_logs_carry_start_job_and_stop_fields(
    redis_url: str, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, {"fail_always": ["openai/gpt-4o", "anthropic/claude-3.5-sonnet"]})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_LOG_FORMAT="json",
                           ROUTEQ_PREFIX="logs:", ROUTEQ_MAX_JOBS="40")
    logs_client = Client.from_url(redis_url, prefix="logs:")
    try:
        ok = await logs_client.submit(prompt="hello", context=PRO)
        tools = {"type": "function", "function": {"name": "f", "parameters": {}}}
        bad = await logs_client.submit(prompt="call it", context={**PRO, "needs_tools": True},
                                       params={"tools": [tools]})
        results = {r.job_id: r for r in await logs_client.wait_all([ok, bad], timeout=30)}
        await asyncio.to_thread(worker.wait_for_line, f'"job_id":"{bad}"')
    finally:
        await logs_client.close()
        assert worker.stop() == 0
    docs = _json_lines(worker.output)
    assert API_KEY not in worker.output

    start = next(d for d in docs if d.get("event") == "worker_started")
    assert start["prefix"] == "logs:" and start["max_jobs"] == 40 and start["queues"] == "interactive,batch"
    wanted = {"job_timeout_s", "max_tries", "rules_file", "catalog_file", "openrouter", "metrics_port"}
    assert wanted <= set(start)

    jobs = {d["job_id"]: d for d in docs if "job_id" in d and "status" in d}
    assert set(jobs) == {ok, bad}
    assert jobs[ok]["status"] == "succeeded" and jobs[ok]["error_type"] is None
    assert jobs[ok]["model"] == results[ok].routing.model_served  # type: ignore[union-attr]
    assert jobs[ok]["cost_usd"] == results[ok].usage.cost_usd  # type: ignore[union-attr]
    assert jobs[bad]["status"] == "failed" and jobs[bad]["error_type"] == results[bad].error.type  # type: ignore[union-attr]
    for line in jobs.values():
        assert {"queue", "rule", "latency_ms", "level"} <= set(line) and line["level"] == "INFO"

    stop = next(d for d in docs if d.get("event") == "worker_stopped")
    assert stop["jobs_done"] == 2 and stop["by_status"] == {"succeeded": 1, "failed": 1}
