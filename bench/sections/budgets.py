"""(c) Budgets: the ledger's reserve+settle cost, and worker throughput with budgets on vs off.

The ledger is measured directly (sequential pairs on a private Redis) next to the naive
check-then-record a gateway would do without it (HMGET before, HINCRBY after: two round trips,
no atomicity), so the price of atomicity is one number. Throughput on/off needs the worker to
apply budgets; a short probe run tells whether it does (budget counters appear in Redis), and
the on/off rows stay "pending" until it does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from bench import harness
from bench.harness import LoadRun, command_counts, status_of
from bench.plan import Plan, Say
from bench.procs import REPO, Children, RedisProc
from bench.report import Row, fmt
from producer_client.money import usd_to_nano
from worker.budget import applicable, parse_budgets
from worker.budget.ledger import BudgetLedger

SECTION = "c budgets"
BUDGETS: list[dict[str, Any]] = [
    {"name": "bench-global", "scope": "global", "limit_usd": "900000", "window": "day"},
]
_AMOUNT = usd_to_nano("0.0012")
_ACTUAL = usd_to_nano("0.0007")


def rules_with_budgets(directory: Path) -> Path:
    doc = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["budgets"] = BUDGETS
    path = directory / "rules-budgets.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


async def ledger_pairs(url: str, pairs: int) -> float:
    """µs per reserve+settle pair, run one after another like one job after another."""
    redis = Redis.from_url(url)
    try:
        ledger = BudgetLedger(redis, prefix="bench:")
        budgets = parse_budgets(BUDGETS)
        lines = applicable(budgets, {"user_id": "u-1"}, datetime.now(UTC), "UTC", prefix="bench:")
        run = uuid.uuid4().hex[:8]
        await ledger.reserve(f"warm-{run}", lines, _AMOUNT)  # loads the scripts
        await ledger.settle(f"warm-{run}", _ACTUAL)
        t0 = time.perf_counter()
        for i in range(pairs):
            job_id = f"{run}-{i}"
            held = await ledger.reserve(job_id, lines, _AMOUNT)
            assert held.ok, held
            await ledger.settle(job_id, _ACTUAL)
        return (time.perf_counter() - t0) * 1e6 / pairs
    finally:
        await redis.aclose()


async def naive_pairs(url: str, pairs: int) -> float:
    redis = Redis.from_url(url)
    try:
        key = "bench:naive:global"
        await redis.hmget(key, ["spent", "limit"])
        t0 = time.perf_counter()
        for _ in range(pairs):
            await redis.hmget(key, ["spent", "limit"])
            await redis.hincrby(key, "spent", _ACTUAL)
        return (time.perf_counter() - t0) * 1e6 / pairs
    finally:
        await redis.aclose()


def _ledger_rows(plan: Plan, say: Say, redis: RedisProc) -> list[Row]:
    redis.flush()
    naive_us = asyncio.run(naive_pairs(redis.url, plan.ledger_pairs))
    naive_calls, _ = command_counts(redis)
    redis.flush()
    ledger_us = asyncio.run(ledger_pairs(redis.url, plan.ledger_pairs))
    calls, scripts = command_counts(redis)
    n = plan.ledger_pairs + 1
    say(f"ledger {ledger_us:.0f} µs/pair ({scripts / n:.2f} round trips), naive {naive_us:.0f} µs/pair")
    return [
        Row(SECTION, f"reserve+settle, {plan.ledger_pairs:,} sequential pairs, 1 budget line", ledger_us,
            "µs/pair", "naive HMGET + HINCRBY (not atomic)", naive_us, "lower",
            note=f"{scripts / n:.2f} round trips/pair (EVALSHA), {calls / n:.1f} Redis commands/pair incl. "
            f"inside Lua; naive: {naive_calls / (plan.ledger_pairs + 1):.0f} round trips/pair"),
    ]


def _wired(redis: RedisProc) -> bool:
    return bool(next(iter(redis.client().scan_iter(match="routeq:budget:*", count=1000)), None))


def _throughput_rows(plan: Plan, say: Say, ch: Children, redis: RedisProc) -> list[Row]:
    emu = ch.emulator(0)
    rules = rules_with_budgets(ch.dir)
    redis.flush()
    probe = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_RULES=str(rules))
    probe_run = harness.routeq_run(redis, emu, probe, 20, 15.0)
    harness.end_workers(ch, probe, probe_run)
    if not _wired(redis):
        say("budgets: the worker wrote no budget counters; on/off rows pending")
        return [
            Row(SECTION, "throughput, budgets on (global day budget) vs off", None, "jobs/s",
                "same worker, budgets off", None, "higher", status="pending",
                note="the pipeline does not apply budgets yet (no routeq:budget:* keys after a probe run)"),
        ]
    runs: dict[str, LoadRun] = {}
    for label, env in (("off", {}), ("on", {"ROUTEQ_RULES": str(rules)})):
        redis.flush()
        workers = harness.start_routeq_workers(ch, redis, emu, 1, **env)
        runs[label] = harness.routeq_run(redis, emu, workers, plan.budget_jobs, plan.budget_cap_s)
        harness.end_workers(ch, workers, runs[label])
        say(f"budgets {label}: {runs[label]}")
    on, off = runs["on"], runs["off"]
    status = status_of(on, off)
    title = f"emulator 0 ms, {plan.budget_jobs:,} jobs"
    note = "; ".join(x for x in (on.status_note(), off.status_note()) if x)
    return [
        Row(SECTION, f"{title}: throughput, budgets on", on.jobs_per_s, "jobs/s",
            "same worker, budgets off", off.jobs_per_s, "higher", note=note, status=status),
        Row(SECTION, f"{title}: worker CPU per job, budgets on", on.worker_cpu_ms_per_job, "ms",
            "same worker, budgets off", off.worker_cpu_ms_per_job, "lower", status=status,
            note=f"{(on.worker_cpu_ms_per_job or 0) - (off.worker_cpu_ms_per_job or 0):+.3f} ms per job"),
        Row(SECTION, f"{title}: Redis commands per job, budgets on", on.redis_cmds_per_job, "cmds",
            "same worker, budgets off", off.redis_cmds_per_job, "lower",
            note=f"script calls/job {fmt(on.script_calls_per_job)} on vs {fmt(off.script_calls_per_job)} off",
            status=status),
    ]


def run(plan: Plan, say: Say) -> list[Row]:
    with Children() as ch:
        redis = ch.redis_server()
        return [*_ledger_rows(plan, say, redis), *_throughput_rows(plan, say, ch, redis)]
