"""(i) Reports: ``routeq report`` over 90 days of hourly rollups, against issue 11's 1 s target.

A private redis-server is filled with 90 days x 24 hourly rollup hashes exactly as the finish
script names them (``worker/rollup_format.py``), for a few deployment sizes: ``combos`` is how
many distinct (rule, model, variant, task type, tenant) combinations finish jobs in an hour, each
with about 16 metric fields (jobs, statuses, an error type, fallbacks, cost, tokens, 5 latency
buckets, feedback sums on half of them). Then it times:

- the read and sum alone (:class:`RollupReader`), ungrouped and ``--by model,day``;
- the whole command, ``routeq report --since 90d --format json``, as a fresh process (this
  includes the interpreter's start-up, about 0.4 s of it on a small machine).

Run alone from the repository root: ``.venv/bin/python -m bench.sections.report [--combos 12,40]``
(as a module: run as a script, ``bench/sections/select.py`` would shadow the standard library's
``select``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from bench.plan import Plan, Say
from bench.procs import REPO, Children, RedisProc
from bench.report import Row, markdown
from producer_client.keys import Keys
from worker.analytics.rollups import RollupReader
from worker.rollup_format import field

SECTION = "i report"
DAYS = 90
TARGET_MS = 1000.0
PREFIX = "routeq:"
_RULES = ("default", "code-tasks", "low-latency", "enterprise-default", "free-tier", "tools-required")
_MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct", "anthropic/claude-3.5-sonnet",
           "openai/gpt-4o", "google/gemma-2-9b-it:free")
_TASKS = ("chat", "code", "classification", "analysis", "summarization")


def combinations(count: int, seed: int = 7) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    seen: set[tuple[str, str, str, str, str]] = set()
    while len(seen) < count:
        variant = rng.choice(("-", "-", "cls-cheap:control", "cls-cheap:llama"))
        seen.add((rng.choice(_RULES), rng.choice(_MODELS), variant, rng.choice(_TASKS),
                  f"tenant-{rng.randrange(max(1, count // 4))}"))
    return sorted(seen)


def hour_fields(combos: list[tuple[str, str, str, str, str]], rng: random.Random) -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for i, dims in enumerate(combos):
        n = rng.randrange(20, 400)
        failed = n // 20
        metrics: list[tuple[str, int | str]] = [
            ("n", n), ("s:succeeded", n - failed), ("s:failed", failed), ("e:upstream_error", failed),
            ("fb", n // 10), ("cost", n * rng.randrange(20_000, 2_000_000)), ("pt", n * 180), ("ct", n * 60),
        ]
        metrics += [(f"h:{b}", n // 5) for b in range(3, 8)]
        if i % 2 == 0:
            scored = n // 4
            metrics += [("qn", scored), ("qs", repr(scored * 0.8)), ("qq", repr(scored * 0.7))]
        out.update({field(dims, metric): value for metric, value in metrics})
    return out


def fill(redis: RedisProc, combos: int, days: int = DAYS, now: datetime | None = None) -> int:
    """Write ``days`` x 24 hourly hashes ending with the current hour; returns the field count."""
    client = redis.client()
    client.flushall()
    keys, rng, dims = Keys(PREFIX), random.Random(combos), combinations(combos)
    hour = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    fields = 0
    pipe = client.pipeline(transaction=False)
    for h in range(days * 24):
        mapping = hour_fields(dims, rng)
        fields += len(mapping)
        pipe.hset(keys.rollup((hour - timedelta(hours=h)).strftime("%Y%m%d%H")), mapping=mapping)
        if h % 48 == 47:
            pipe.execute()
    pipe.execute()
    return fields


async def time_read(url: str, by: tuple[str, ...], repeats: int = 3) -> tuple[float, int]:
    """Best of ``repeats`` (ms) for reading and summing the whole window; and the group count."""
    redis = Redis.from_url(url)
    try:
        reader = RollupReader(redis, Keys(PREFIX))
        now = datetime.now(UTC)
        since = now - timedelta(days=DAYS)
        best, groups = float("inf"), 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            rollup = await reader.read(since, now, by)
            best = min(best, (time.perf_counter() - t0) * 1000)
            groups = len(rollup.groups)
        return best, groups
    finally:
        await redis.aclose()


def time_command(url: str, repeats: int = 3, *argv: str) -> float:
    """Best of ``repeats`` (ms) for ``routeq report --since 90d`` (or ``argv``) as a fresh process."""
    env = {**os.environ, "REDIS_URL": url, "ROUTEQ_PREFIX": PREFIX}
    command = argv or ("report", "--since", f"{DAYS}d", "--format", "json")
    args = [sys.executable, "-m", "worker.cli.main", *command]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def startup_row(redis: RedisProc, say: Say) -> Row:
    startup_ms = time_command(redis.url, 3, "--version")
    say(f"routeq --version: {startup_ms:.0f} ms")
    return Row(SECTION, "`routeq --version` (interpreter and CLI start-up alone)", startup_ms, "ms",
               "issue 11 target", TARGET_MS, "lower", note="every command pays this before its work")


def rows_for(redis: RedisProc, combos: int, say: Say) -> list[Row]:
    fields = fill(redis, combos)
    say(f"{combos} combinations/hour: {fields:,} fields in {DAYS * 24} hourly hashes")
    flat_ms, _ = asyncio.run(time_read(redis.url, ()))
    by_ms, groups = asyncio.run(time_read(redis.url, ("model", "day")))
    command_ms = time_command(redis.url)
    say(f"read {flat_ms:.0f} ms, by model,day {by_ms:.0f} ms ({groups} groups), command {command_ms:.0f} ms")
    title = f"90 days hourly, {combos} combos/h ({fields / 1e6:.2f}M fields)"
    target = "issue 11 target"
    return [
        Row(SECTION, f"{title}: read + sum", flat_ms, "ms", target, TARGET_MS, "lower",
            note=f"{flat_ms * 1000 / fields:.2f} µs per field"),
        Row(SECTION, f"{title}: read + sum --by model,day", by_ms, "ms", target, TARGET_MS, "lower",
            note=f"{groups} groups"),
        Row(SECTION, f"{title}: `routeq report --since 90d` (new process)", command_ms, "ms", target,
            TARGET_MS, "lower", note="includes interpreter start-up"),
    ]


def run(plan: Plan, say: Say, combos: tuple[int, ...] | None = None) -> list[Row]:
    sizes = combos or ((12,) if plan.quick else (12, 40))
    with Children() as ch:
        redis = ch.redis_server()
        return [startup_row(redis, say), *(row for size in sizes for row in rows_for(redis, size, say))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--combos", default="12,40", help="dimension combinations per hour, comma-separated")
    args = p.parse_args()
    sizes = tuple(int(x) for x in args.combos.split(","))
    print(markdown(run(Plan.default(), lambda text: print(f"  · {text}", flush=True), sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
