"""Keys in a shared Redis (issue 9, item 3): every key expires or has a documented owner, waiters do
not spin, prefixes isolate deployments, a wait nobody will serve says so, demo keys expire."""

from __future__ import annotations

import asyncio
import inspect
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis as sync_redis

from producer_client.client import Client
from producer_client.errors import ResultTimeout
from producer_client.jobs import build_job
from producer_client.keys import Keys
from tests.support import emu
from tests.support.procs import REPO, Emulator, RedisServer, WorkerProcess, base_env
from tests.support.rules import rules_with_budgets
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ROUTEQ = [sys.executable, "-m", "worker.cli.main"]
KEYS = Keys()
PRO = {"user_tier": "pro", "task_type": "chat", "user_id": "u-1", "max_latency_ms": 30000}
CAP = {"name": "cap", "scope": "global", "limit_usd": "5", "window": "total"}
# A waiter that spins re-reads a token in a tight loop: 2,266 BLPOP/LPUSH/GET in 3.8 s before the
# fix. A quiet one sends a handful per BLPOP slice; one that pauses on a token without a result,
# about six per half second.
QUIET_WAIT_S = 3.0
QUIET_CALLS = 25
PAUSING_CALLS = 100
DEMO_KEEP_S = 86_400  # the demo's keys expire within a day (routeq demo --help)
# Words that say who owns a key that never expires, or what bounds it (keys.py docstrings).
OWNED = re.compile(r"\b(owner|kept|trimmed|capped)\b", re.IGNORECASE)


# -- helpers ---------------------------------------------------------------------------------------


def ttl_of(r: sync_redis.Redis, key: str) -> int:
    return int(cast(int, r.ttl(key)))


def ttls(r: sync_redis.Redis) -> dict[str, int]:
    """Every key in the Redis with its TTL in seconds (-1: never expires)."""
    out = {raw.decode(): ttl_of(r, raw.decode()) for raw in r.scan_iter(count=1000)}
    return {k: t for k, t in out.items() if t != -2}  # -2: expired between SCAN and TTL


def command_calls(r: sync_redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, leaving out this probe's own."""
    stats = cast(dict[str, Any], r.info("commandstats"))
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return {name: n for name, n in calls.items() if name not in ("info", "config|resetstat", "config")}


def blocked_clients(r: sync_redis.Redis) -> int:
    return int(cast(dict[str, Any], r.info("clients"))["blocked_clients"])


def key_documentation(prefix: str) -> list[tuple[re.Pattern[str], str, str]]:
    """(pattern of the keys a ``Keys`` member names, member, its docstring and section comment),
    most specific first, so ``rollup:dim:model`` goes to ``rollup_dim`` and not to ``rollup``."""
    section = ""
    found = []
    for line in inspect.getsource(Keys).splitlines():
        text = line.strip()
        if text.startswith("# --"):
            section = text
        match = re.match(r"def ([a-z]\w*)\(self\b", text)
        if not match:
            continue
        name = match.group(1)
        member = inspect.getattr_static(Keys, name)
        fn = member.fget if isinstance(member, property) else member
        sample: Any = getattr(Keys(prefix), name)
        if callable(sample):
            sample = sample(*["\0"] * len(inspect.signature(sample).parameters))
        template = str(sample)
        if not template.startswith(prefix):
            continue  # a channel named after another key (``wake``), not a key
        pattern = re.compile(re.escape(template).replace("\0", ".+") + "$")
        found.append((pattern, name, f"{section} {inspect.getdoc(fn) or ''}"))
    return sorted(found, key=lambda item: -len(item[0].pattern.replace(".+", "")))


def undocumented_forever_keys(table: dict[str, int], prefix: str) -> list[str]:
    """Keys under ``prefix`` that never expire and whose ``Keys`` member names no owner or bound
    (or that no member names at all)."""
    docs = key_documentation(prefix)
    bad = []
    for key, ttl in sorted(table.items()):
        if ttl != -1 or not key.startswith(prefix):
            continue
        member = next(((name, doc) for pattern, name, doc in docs if pattern.match(key)), None)
        if member is None:
            bad.append(f"{key} (no Keys member names it)")
        elif not OWNED.search(member[1]):
            bad.append(f"{key} (Keys.{member[0]} documents no owner or bound)")
    return bad


# -- (a) every key expires or has an owner; waiters do not spin ---------------------------------------


async def test_waiters_give_the_done_token_back_with_the_results_ttl(
    worker: WorkerProcess, client: Client, redis_server: RedisServer, clean_emulator: Emulator
) -> None:
    r = redis_server.client()
    job_id = "ttl-waited"
    # Two waiters blocked on the done list before the job exists: each pops the one token and gives
    # it back (the path that used to recreate the list without a TTL).
    waiters = [asyncio.create_task(client.result(job_id, timeout=30)) for _ in range(2)]
    await eventually(lambda: blocked_clients(r) >= 2, timeout=10, what="two waiters blocked on the done list")
    await client.submit(prompt="hello", context=PRO, job_id=job_id)
    results = [*await asyncio.gather(*waiters), await client.result(job_id, timeout=5)]
    assert [x.status for x in results] == ["succeeded"] * 3

    with r.pipeline(transaction=True) as pipe:  # one instant: both TTLs count down together
        pipe.llen(KEYS.done(job_id))
        pipe.pttl(KEYS.done(job_id))
        pipe.pttl(KEYS.result(job_id))
        done_len, done_pttl, result_pttl = pipe.execute()
    assert done_len == 1, "the token must be back for the next waiter"
    assert 0 < done_pttl <= result_pttl + 1, (done_pttl, result_pttl)
    forever = {k: t for k, t in ttls(r).items() if job_id in k and t < 0}
    assert not forever, f"keys of job {job_id} that never expire: {forever}"


async def test_every_key_without_a_ttl_has_a_documented_owner(
    tmp_path: Path, redis_url: str, redis_server: RedisServer, clean_emulator: Emulator
) -> None:
    """What a worker leaves after ordinary traffic (budgets, a failure, a batch, a waiter): each key
    expires, or ``producer_client/keys.py`` names it with its owner or what bounds it."""
    rules = rules_with_budgets(tmp_path, [
        CAP,
        {"name": "daily", "scope": "user", "limit_usd": "10", "window": "day"},
    ])
    emu.set_faults(clean_emulator.base_url, {"fail_always": ["anthropic/claude-3.5-sonnet", "openai/gpt-4o"]})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_RULES=str(rules), ROUTEQ_MAX_JOBS="20")
    client = Client.from_url(redis_url)
    try:
        ok = await client.submit(prompt="hello", context=PRO)
        failed = await client.submit(prompt="write code", context={**PRO, "task_type": "code"})
        batch = await client.submit_many([{"prompt": "one"}, {"prompt": "two"}], batch_id="b-keys")
        finished = await client.wait_all([ok, failed, *(h.job_id for h in batch)], timeout=30)
        assert [x.status for x in finished] == ["succeeded", "failed", "succeeded", "succeeded"]
        table = ttls(redis_server.client())
    finally:
        await client.close()
        worker.kill()
    assert any(k.startswith("routeq:budget:") for k in table) and "routeq:failed" in table  # exercised
    bad = undocumented_forever_keys(table, "routeq:")
    assert not bad, "keys that never expire and have no documented owner:\n" + "\n".join(bad)


async def test_resubmitting_an_expired_id_does_not_make_its_waiter_spin(
    redis_url: str, redis_server: RedisServer, clean_emulator: Emulator
) -> None:
    r = redis_server.client()
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_RESULT_TTL_S="2")
    client = Client.from_url(redis_url)
    job_id = "again-1"
    try:
        waiter = asyncio.create_task(client.result(job_id, timeout=30))
        await eventually(lambda: blocked_clients(r) >= 1, timeout=10, what="a blocked waiter")
        await client.submit(prompt="hello", context=PRO, job_id=job_id)
        assert (await waiter).ok and (await client.result(job_id, timeout=5)).ok
        worker.kill()  # nobody will run the resubmitted job: its waiter must wait quietly
        await eventually(lambda: not r.exists(KEYS.result(job_id)), timeout=15, what="the result to expire")
        token_outlived_result = bool(r.exists(KEYS.done(job_id)))
        (handle,) = await client.submit_jobs([(job_id, build_job(prompt="hello again", context=PRO))])
        assert handle.added, "an expired id is a new job, not a duplicate"
        r.config_resetstat()
        started = time.monotonic()
        with pytest.raises(ResultTimeout):
            await client.result(job_id, timeout=QUIET_WAIT_S)
        waited = time.monotonic() - started
        calls = command_calls(r)
    finally:
        await client.close()
        worker.kill()
    assert sum(calls.values()) <= QUIET_CALLS, f"the waiter spun: {calls} in {waited:.1f}s"
    assert not token_outlived_result, "the done token outlived the result it announces"


async def test_a_token_without_a_result_makes_the_waiter_pause_not_spin(
    client: Client, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    r.rpush(KEYS.done("orphan"), "1")  # a result deleted by hand leaves its token behind
    r.config_resetstat()
    with pytest.raises(ResultTimeout):
        await client.result("orphan", timeout=QUIET_WAIT_S)
    calls = command_calls(r)
    assert sum(calls.values()) <= PAUSING_CALLS, f"the waiter spun on an orphan token: {calls}"
    assert 0 < ttl_of(r, KEYS.done("orphan")) <= 60, "an orphan token given back must expire"


# -- (b) prefixes isolate deployments on one Redis ---------------------------------------------------


async def test_two_prefixes_on_one_redis_keep_the_same_job_ids_apart(
    tmp_path: Path, redis_url: str, redis_server: RedisServer, clean_emulator: Emulator
) -> None:
    prefixes = ("staging:", "prod:")
    rules = rules_with_budgets(tmp_path, [CAP])
    emu.set_faults(clean_emulator.base_url, {"fail_always": ["anthropic/claude-3.5-sonnet", "openai/gpt-4o"]})
    workers = [WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_PREFIX=p, ROUTEQ_RULES=str(rules),
                             ROUTEQ_MAX_JOBS="20") for p in prefixes]
    clients = [Client.from_url(redis_url, prefix=p) for p in prefixes]
    try:
        handles, results = {}, {}
        for p, c in zip(prefixes, clients, strict=True):  # the same caller-chosen ids under each prefix
            jobs = [("order-42", build_job(prompt=f"hello from {p}", context=PRO)),
                    ("order-43", build_job(prompt=f"code from {p}", context={**PRO, "task_type": "code"}))]
            handles[p] = await c.submit_jobs(jobs, batch_id="b-same")
            results[p] = await c.wait_all(["order-42", "order-43"], batch_id="b-same", timeout=30)
        table = ttls(redis_server.client())
        channels = sorted(ch.decode() for ch in cast(list[bytes], redis_server.client().pubsub_channels()))
    finally:
        for c in clients:
            await c.close()
        for w in workers:
            w.kill()

    for p in prefixes:
        assert [h.added for h in handles[p]] == [True, True], f"{p} treated its ids as duplicates"
        ok, failed = results[p]
        assert ok.status == "succeeded" and ok.content is not None and ok.content.endswith(f"hello from {p}")
        assert failed.status == "failed"  # a dead letter, a breaker, budget counters: each prefix its own
        assert {f"{p}result:order-42", f"{p}failed", f"{p}budget:cap:global:total"} <= set(table)
    strays = [k for k in table if not k.startswith(prefixes)]
    assert not strays, f"keys outside both prefixes: {strays}"
    assert channels and all(ch.startswith(prefixes) for ch in channels), channels


# -- (c) a wait nobody will serve says so ------------------------------------------------------------


def stderr_line_within(
    proc: subprocess.Popen[str], pred: Callable[[str], bool], seconds: float
) -> str | None:
    """The first stderr line ``pred`` accepts, read for at most ``seconds``."""
    assert proc.stderr is not None
    found: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if pred(line):
                found.append(line.strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    return found[0] if found else None


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_submit_wait_warns_when_only_a_worker_of_another_prefix_is_live(
    redis_url: str, clean_emulator: Emulator
) -> None:
    other = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_PREFIX="elsewhere:")
    proc = subprocess.Popen([*ROUTEQ, "submit", "--prompt", "hello", "--wait", "--timeout", "60"],
                            env=base_env(REDIS_URL=redis_url), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        line = stderr_line_within(proc, lambda x: "no live routeq worker" in x, 15)
        after = time.monotonic() - started
    finally:
        stop(proc)
        other.kill()
    assert line is not None, "no warning on stderr while waiting for a job nobody serves"
    assert "'routeq:'" in line and "ROUTEQ_PREFIX" in line and "Traceback" not in line
    assert after < 12, f"the warning took {after:.1f}s"


def test_batch_warns_when_live_workers_serve_other_queues(
    tmp_path: Path, redis_url: str, clean_emulator: Emulator
) -> None:
    jobs = tmp_path / "in.jsonl"
    jobs.write_bytes(b"".join(orjson.dumps({"prompt": f"p{i}"}) + b"\n" for i in range(3)))
    interactive_only = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_QUEUES="interactive")
    proc = subprocess.Popen([*ROUTEQ, "batch", str(jobs), "--out", str(tmp_path / "out.jsonl"),
                             "--queue", "batch", "--progress", "off"],
                            env=base_env(REDIS_URL=redis_url), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        line = stderr_line_within(proc, lambda x: "no live routeq worker" in x, 15)
        after = time.monotonic() - started
    finally:
        stop(proc)
        interactive_only.kill()
    assert line is not None, "routeq batch waited silently on a queue nobody serves"
    assert "queue 'batch'" in line and "serve: interactive" in line
    assert after < 12, f"the warning took {after:.1f}s"


def test_a_served_wait_longer_than_the_grace_gives_no_warning(
    redis_url: str, clean_emulator: Emulator
) -> None:
    """The control: a live worker serves the queue, the job just takes longer than the grace."""
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 6500}}})
    served = WorkerProcess(redis_url, clean_emulator.base_url)
    try:
        done = subprocess.run([*ROUTEQ, "submit", "--prompt", "hello", "--wait", "--timeout", "30"],
                              env=base_env(REDIS_URL=redis_url), cwd=REPO, text=True, capture_output=True,
                              timeout=60)
    finally:
        served.kill()
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["status"] == "succeeded"
    assert "no live routeq worker" not in done.stderr


# -- (d) the demo leaves nothing that lives forever ------------------------------------------------


def routeq(*argv: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROUTEQ, *argv], env=base_env(REDIS_URL=redis_url), cwd=REPO, text=True,
                          capture_output=True, timeout=120)


def test_demo_leaves_only_expiring_keys_and_clean_removes_them(
    redis_url: str, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    r.set("users:own:key", "keep me")  # the user's data, no TTL: must stay exactly as it is
    r.hset("routeq:budget:cap:global:total", mapping={"spent": 7})  # a production routeq's key too
    before = ttls(r)

    demo = routeq("demo", redis_url=redis_url)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert f"Redis at {redis_url}" in demo.stdout + demo.stderr  # it really ran on this Redis
    assert "Traceback" not in demo.stderr
    after = ttls(r)
    new = {k: t for k, t in after.items() if k not in before}
    assert new, "the demo wrote nothing to this Redis"
    lasting = {k: t for k, t in new.items() if not 0 < t <= DEMO_KEEP_S}
    assert not lasting, f"demo keys without a TTL of at most a day: {lasting}"
    assert not [k for k in new if k.startswith("routeq:")], "the demo wrote under the production prefix"
    assert {k: after.get(k) for k in before} == before, "the demo touched keys that were not its own"

    clean = routeq("demo", "--clean", redis_url=redis_url)
    assert clean.returncode == 0 and "Traceback" not in clean.stderr, clean.stderr
    assert ttls(r) == before, "routeq demo --clean left keys behind (or removed the user's)"
    assert cast(bytes, r.get("users:own:key")) == b"keep me"
    assert cast(bytes, r.hget("routeq:budget:cap:global:total", "spent")) == b"7"
