"""(i) Reports: ``routeq report`` over 90 days of rollups, against issue 11's 1 s target.

A private redis-server is filled with 90 days x 24 hourly rollup hashes, and each day's sum (the
day tier), exactly as the finish script names and writes them (``worker/rollup_format.py``,
``worker/scripts/finish.lua``), for a few deployment sizes: ``combos`` is how many distinct (rule,
model, variant, task type, tenant) combinations finish jobs in an hour, each with about 16 metric
fields (jobs, statuses, an error type, fallbacks, cost, tokens, 5 latency buckets, feedback sums
on half of them). Then it times, in interleaved rounds so that a busy machine slows every figure
alike, the best of 5 of each:

- the headline: the whole command, ``routeq report --since 90d --format json``, as a new process
  (what a user waits for: interpreter and CLI start-up, imports, the read, the output), against
  the floor of a design with hourly rollups only: pipelined HGETALL of every hourly hash with the
  same client, replies thrown away. The note says whether the 1 s target is met;
- the read and sum alone (:class:`RollupReader`): with the day tier (whole days from one hash
  each, the two partial days at the ends from their hours), from the hours alone, and
  ``--by model,day``;
- start-up alone: ``routeq --version`` against a bare ``python -c pass``.

New processes run as an installed package does, with their bytecode cached (the first run of
each command is a warm-up that writes it, even under ``PYTHONDONTWRITEBYTECODE``).

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
from worker.analytics.rollups import RollupReader, hours_in
from worker.rollup_format import field

SECTION = "i report"
DAYS = 90
TARGET_MS = 1000.0
PREFIX = "routeq:"
HOURS_PER_TRIP = 240  # as RollupReader reads
FLOOR = "raw HGETALL of every hourly hash (same run)"
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
    """Write ``days`` x 24 hourly hashes ending with the current hour, and each day's sum as the
    finish script keeps it (``rollup:d:YYYYMMDD`` with ``_first``); returns the hourly field count."""
    client = redis.client()
    client.flushall()
    keys, rng, dims = Keys(PREFIX), random.Random(combos), combinations(combos)
    hour = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    fields = 0
    by_day: dict[str, dict[str, int | float]] = {}
    first: dict[str, int] = {}
    pipe = client.pipeline(transaction=False)
    for h in range(days * 24):
        at = hour - timedelta(hours=h)
        mapping = hour_fields(dims, rng)
        fields += len(mapping)
        pipe.hset(keys.rollup(at.strftime("%Y%m%d%H")), mapping=mapping)
        day = by_day.setdefault(at.strftime("%Y%m%d"), {})
        for name, value in mapping.items():
            day[name] = day.get(name, 0) + (float(value) if isinstance(value, str) else value)
        first[at.strftime("%Y%m%d")] = at.hour
        if h % 48 == 47:
            pipe.execute()
    for name, sums in by_day.items():
        pipe.hset(keys.rollup_day(name), mapping={**{k: repr(v) if isinstance(v, float) else v
                                                      for k, v in sums.items()}, "_first": first[name]})
    pipe.execute()
    return fields


async def time_read(
    url: str, by: tuple[str, ...], repeats: int = 3, *, day_tier: bool = True
) -> tuple[float, int]:
    """Best of ``repeats`` (ms) for reading and summing the whole window; and the group count."""
    redis = Redis.from_url(url)
    try:
        reader = RollupReader(redis, Keys(PREFIX), day_tier=day_tier)
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


async def time_floor(url: str, repeats: int = 3) -> float:
    """Best of ``repeats`` (ms) for HGETALL of every hour of the window, pipelined as the reader
    does (``HOURS_PER_TRIP`` a round trip) with the same client and parser, replies discarded."""
    redis = Redis.from_url(url)
    keys = Keys(PREFIX)
    try:
        now = datetime.now(UTC)
        hours = hours_in(now - timedelta(days=DAYS), now)
        batches = [hours[i:i + HOURS_PER_TRIP] for i in range(0, len(hours), HOURS_PER_TRIP)]
        pool = redis.connection_pool
        try:
            conn = await pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            conn = await pool.get_connection("HGETALL")
        try:
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                for batch in batches:
                    commands = [("HGETALL", keys.rollup(h)) for h in batch]
                    await conn.send_packed_command(conn.pack_commands(commands))
                    for _ in batch:
                        await conn.read_response()
                best = min(best, (time.perf_counter() - t0) * 1000)
            return best
        finally:
            await pool.release(conn)
    finally:
        await redis.aclose()


def time_process(args: list[str], env: dict[str, str], repeats: int = 3, *, warm_up: bool = True) -> float:
    """Best of ``repeats`` (ms) for running ``args`` as a new process, after a warm-up run that
    caches the bytecode (as an installed package has it)."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    best = float("inf")
    for i in range(repeats + warm_up):
        t0 = time.perf_counter()
        subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
        if i or not warm_up:
            best = min(best, (time.perf_counter() - t0) * 1000)
    return best


def time_command(url: str, repeats: int = 3, *argv: str, warm_up: bool = True) -> float:
    """Best of ``repeats`` (ms) for ``routeq report --since 90d`` (or ``argv``) as a new process."""
    env = {**os.environ, "REDIS_URL": url, "ROUTEQ_PREFIX": PREFIX}
    command = argv or ("report", "--since", f"{DAYS}d", "--format", "json")
    return time_process([sys.executable, "-m", "worker.cli.main", *command], env, repeats, warm_up=warm_up)


def startup_row(redis: RedisProc, say: Say, rounds: int = 5) -> Row:
    time_command(redis.url, 1, "--version")  # the warm-up
    bare = [sys.executable, "-c", "pass"]
    startup_ms = bare_ms = float("inf")
    for _ in range(rounds):
        startup_ms = min(startup_ms, time_command(redis.url, 1, "--version", warm_up=False))
        bare_ms = min(bare_ms, time_process(bare, dict(os.environ), 1, warm_up=False))
    say(f"routeq --version: {startup_ms:.0f} ms; python -c pass: {bare_ms:.0f} ms")
    return Row(SECTION, "`routeq --version` (interpreter and CLI start-up alone)", startup_ms, "ms",
               "`python -c pass`", bare_ms, "lower", note="every command pays this before its work")


def _target(ms: float) -> str:
    verdict = "met" if ms < TARGET_MS else "MISSED"
    return f"1 s target {verdict} ({ms - TARGET_MS:+,.0f} ms)"


def rows_for(redis: RedisProc, combos: int, say: Say, rounds: int = 5) -> tuple[Row, list[Row]]:
    """The headline row of this size, and its detail rows."""
    fields = fill(redis, combos)
    say(f"{combos} combinations/hour: {fields:,} fields in {DAYS * 24} hourly hashes")
    time_command(redis.url, 1)  # the warm-up
    floor_ms = flat_ms = hourly_ms = by_ms = command_ms = float("inf")
    groups = 0
    for _ in range(rounds):
        floor_ms = min(floor_ms, asyncio.run(time_floor(redis.url, 1)))
        flat_ms = min(flat_ms, asyncio.run(time_read(redis.url, (), 1))[0])
        hourly_ms = min(hourly_ms, asyncio.run(time_read(redis.url, (), 1, day_tier=False))[0])
        by, groups = asyncio.run(time_read(redis.url, ("model", "day"), 1))
        by_ms = min(by_ms, by)
        command_ms = min(command_ms, time_command(redis.url, 1, warm_up=False))
    say(f"floor {floor_ms:.0f} ms, read {flat_ms:.0f} ms (hours only {hourly_ms:.0f} ms), by model,day "
        f"{by_ms:.0f} ms ({groups} groups), command {command_ms:.0f} ms")
    title = f"90 days, {combos} combos/h ({fields / 1e6:.2f}M hourly fields)"
    headline = Row(SECTION, f"{title}: `routeq report --since 90d`, end to end (new process)", command_ms,
                   "ms", FLOOR, floor_ms, "lower", note=_target(command_ms))
    return headline, [
        Row(SECTION, f"{title}: read + sum (day tier + edge hours)", flat_ms, "ms", FLOOR, floor_ms, "lower"),
        Row(SECTION, f"{title}: read + sum of the hours alone (no day tier)", hourly_ms, "ms", FLOOR,
            floor_ms, "lower",
            note=f"{hourly_ms * 1000 / fields:.2f} µs per field; floor {floor_ms * 1000 / fields:.2f}"),
        Row(SECTION, f"{title}: read + sum --by model,day", by_ms, "ms", FLOOR, floor_ms, "lower",
            note=f"{groups} groups"),
    ]


def run(plan: Plan, say: Say, combos: tuple[int, ...] | None = None) -> list[Row]:
    """The end-to-end rows first (one per size), then start-up, then the read details."""
    sizes = combos or ((12,) if plan.quick else (12, 24, 40))
    with Children() as ch:
        redis = ch.redis_server()
        startup = startup_row(redis, say)
        measured = [rows_for(redis, size, say) for size in sizes]
    return [*(headline for headline, _ in measured), startup, *(row for _, rows in measured for row in rows)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--combos", default="12,24,40", help="dimension combinations per hour, comma-separated")
    args = p.parse_args()
    sizes = tuple(int(x) for x in args.combos.split(","))
    print(markdown(run(Plan.default(), lambda text: print(f"  · {text}", flush=True), sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
