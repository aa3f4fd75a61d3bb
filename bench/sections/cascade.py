"""(k) Cheap-first cascade vs always the standard tier: cost per job and accepted answers.

The same classification jobs, twice, through one worker: once with the shipped
``config/examples/cascade.json`` (budget model first, answers that are not a label escalate to
mid, then standard), once with that rule pinned to the standard tier and the same acceptance
check (no escalation). The emulator answers a share of prompts with a sentence instead of a
label, per model (10 % budget, 3 % mid, 2 % standard), by hash of model and prompt, so both runs
see the same prompts fail the same way. Costs are what the emulator billed (``usage.cost``).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import harness
from bench.plan import Plan, Say
from bench.procs import Children, EmulatorProc
from bench.report import Row
from producer_client.client import Client
from producer_client.contract import Result
from producer_client.money import usd_to_nano
from worker.shipped import shipped

SECTION = "k cascade"
OFF_FORMAT = {
    "meta-llama/llama-3.1-8b-instruct": 0.10,
    "openai/gpt-4o-mini": 0.03,
    "anthropic/claude-3.5-sonnet": 0.02,
}
SENTENCES = ("the delivery was late but the support team was kind", "great value, would buy again",
             "it broke after two days", "arrived on time, nothing special", "I am not sure how I feel")


def _rules(pinned: bool, directory: Path) -> Path:
    doc = orjson.loads(shipped("examples/cascade.json").read_bytes())
    if pinned:
        rule = doc["rules"][0]
        rule["tier"] = "standard"
        rule.pop("escalate")
        rule["name"] = "classify-standard"
    path = directory / ("pinned.json" if pinned else "cascade.json")
    path.write_bytes(orjson.dumps(doc))
    return path


async def _jobs(url: str, n: int, cap_s: float) -> list[Result]:
    run = uuid.uuid4().hex[:8]
    jobs = [
        {"prompt": f"Classify the sentiment of review {i}: {SENTENCES[i % len(SENTENCES)]}",
         "context": {"task_type": "classification", "tenant": "acme", "user_id": f"u-{i % 50}"}}
        for i in range(n)
    ]
    async with Client.from_url(url) as client:
        handles = await client.submit_many(jobs, batch_id=f"cascade-{run}", queue="batch")
        return await client.wait_all([h.job_id for h in handles], batch_id=f"cascade-{run}", timeout=cap_s)


def _run(plan: Plan, say: Say, rules: Path, n: int) -> tuple[list[Result], str]:
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(0)
        _set_faults(emu)
        workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_RULES=str(rules),
                                               ROUTEQ_MAX_JOBS=str(plan.e2e_max_jobs))
        results = asyncio.run(_jobs(redis.url, n, plan.e2e_cap_s * 4))
        billed = _billed(emu)
        ch.stop(*workers)
        say(f"{rules.name}: {len(results)} results, billed {billed} USD")
        return results, billed


def _set_faults(emu: EmulatorProc) -> None:
    control = emu.base_url.removesuffix("/api/v1") + "/_emulator"
    faults = {"models": {m: {"off_format": p} for m, p in OFF_FORMAT.items()}}
    httpx.put(control + "/faults", json=faults, timeout=5).raise_for_status()


def _billed(emu: EmulatorProc) -> str:
    control = emu.base_url.removesuffix("/api/v1") + "/_emulator"
    doc: dict[str, Any] = httpx.get(control + "/stats", timeout=5).json()
    return str(doc["billed_usd"])


def _figures(results: list[Result]) -> tuple[float, float, float]:
    """(cost per job in micro-USD, accepted share, share that escalated at least once)."""
    n = max(1, len(results))
    cost = sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage is not None)
    accepted = sum(r.status == "succeeded" for r in results)
    escalated = sum(1 for r in results if r.routing is not None and len(r.routing.escalations) > 1)
    return cost / n / 1000, accepted / n, escalated / n


def run(plan: Plan, say: Say) -> list[Row]:
    n = 300 if plan.quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        cascade, _ = _run(plan, say, _rules(False, Path(tmp)), n)
        pinned, _ = _run(plan, say, _rules(True, Path(tmp)), n)
    c_cost, c_ok, c_up = _figures(cascade)
    p_cost, p_ok, _ = _figures(pinned)
    base = "always the standard tier"
    return [
        Row(SECTION, f"{n:,} classification jobs: cost per job", c_cost, "µUSD", base, p_cost, "lower",
            note=f"{c_up:.1%} of jobs escalated past the budget model"),
        Row(SECTION, f"{n:,} classification jobs: accepted answers", c_ok * 100, "%", base, p_ok * 100,
            "higher", note="accepted: the answer is one of the labels"),
    ]
