"""``routeq demo`` in a user's Redis and on the stand-in (issues 9, 11 and 14).

- On a real Redis the demo writes only under ``routeq-demo:``, every key it leaves expires, a
  second run starts from a clean prefix, ``routeq dashboard --prefix routeq-demo:`` then shows its
  jobs, and ``routeq demo --clean`` removes them, leaving the user's own keys as they were.
- On the stand-in, ``--dashboard`` serves the page on the demo's data until Ctrl-C.
- ``--adaptive`` runs the learn-from-outcomes loop: round 2 costs less per job than round 1 with
  quality held, after ``suggest``'s rules were activated as version 2.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from typing import Any, cast

import httpx
import orjson
import pytest

from tests.support.procs import REPO, RedisServer, _Child, base_env, free_port
from worker.demo.basic import DEMO_JOBS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROUTEQ = [sys.executable, "-m", "worker.cli.main"]
PREFIX = "routeq-demo:"
USER_KEYS = {b"users:own:key", b"routeq:budget:cap:global:total"}


def routeq(*args: str, timeout: float = 150, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROUTEQ, *args], env=base_env(**env), cwd=REPO, text=True, capture_output=True,
                          timeout=timeout)


def ttls(server: RedisServer) -> dict[bytes, int]:
    r = server.client()
    return {key: int(cast(int, r.ttl(key))) for key in r.scan_iter(count=1000)}


def demo_keys(server: RedisServer) -> dict[bytes, int]:
    return {k: ttl for k, ttl in ttls(server).items() if k.startswith(PREFIX.encode())}


def dashboard_data(redis_url: str) -> dict[str, Any]:
    """What ``routeq dashboard --prefix routeq-demo:`` serves, read as the page reads it."""
    proc = _Child([*ROUTEQ, "dashboard", "--prefix", PREFIX, "--port", "0"], base_env(REDIS_URL=redis_url))
    try:
        url = proc.wait_for_line("routeq dashboard on http://").split(" on ")[1].split()[0]
        doc: dict[str, Any] = httpx.get(url + "api/data", timeout=10).json()
        return doc
    finally:
        proc.stop()


def test_the_demo_keeps_to_its_prefix_expires_everything_and_shows_on_the_dashboard(
    redis_url: str, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    r.set("users:own:key", "keep me")  # the user's data, no TTL: must stay exactly as it is
    r.hset("routeq:budget:cap:global:total", mapping={"spent": 7})  # a production routeq's key too
    before = ttls(redis_server)

    first = routeq("demo", REDIS_URL=redis_url)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Redis at redis://127.0.0.1" in first.stdout and "free-tier" in first.stdout
    assert f"routeq dashboard --prefix {PREFIX}" in first.stdout and "routeq demo --clean" in first.stdout
    left = demo_keys(redis_server)
    assert left, "the demo left nothing for the dashboard to show"
    assert {k: t for k, t in left.items() if t < 0} == {}, "keys without a TTL"
    assert max(left.values()) <= 86_400  # short TTLs: a day at most
    assert {k: t for k, t in ttls(redis_server).items() if not k.startswith(PREFIX.encode())}.keys() == \
        before.keys() == USER_KEYS
    assert r.get("users:own:key") == b"keep me" and r.ttl("users:own:key") == -1
    assert cast(bytes, r.hget("routeq:budget:cap:global:total", "spent")) == b"7"

    # A second run clears the first one's keys: one demo's jobs, not two.
    second = routeq("demo", REDIS_URL=redis_url)
    assert second.returncode == 0, second.stderr[-2000:]
    assert re.search(r"cleared \d+ key\(s\) of an earlier demo", second.stdout + second.stderr)
    results = [k for k in demo_keys(redis_server) if k.startswith(f"{PREFIX}result:".encode())]
    assert len(results) == len(DEMO_JOBS)

    # Issue 14's "done when": `routeq dashboard` after the demo shows the demo's jobs.
    data = dashboard_data(redis_url)
    assert data["prefix"] == PREFIX
    assert data["totals"]["jobs"] == len(DEMO_JOBS) == data["totals"]["succeeded"]
    assert data["totals"]["fallbacks"] >= 1  # the tools and vision jobs fell back

    cleaned = routeq("demo", "--clean", REDIS_URL=redis_url)
    assert cleaned.returncode == 0, cleaned.stderr
    assert re.search(r"removed \d+ key\(s\) under 'routeq-demo:'", cleaned.stdout)
    assert demo_keys(redis_server) == {}
    assert ttls(redis_server) == before


def test_the_adaptive_loop_cuts_the_cost_per_job_and_holds_quality(
    redis_url: str, redis_server: RedisServer
) -> None:
    done = routeq("demo", "--adaptive", "--json", REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = orjson.loads(done.stdout)
    assert doc["backend"] == "redis" and doc["rules_versions"] == [1, 2]
    first, second = doc["rounds"]
    assert first["jobs"] == second["jobs"] == doc["jobs_per_round"] >= 200
    assert first["succeeded"] == first["jobs"] and second["succeeded"] == second["jobs"]
    assert first["rules_versions"] == [1] and second["rules_versions"] == [2]
    # Round 1 split users between both models; round 2 ran on the cheaper one alone.
    assert len(first["served"]) == 2 and min(first["served"].values()) >= first["jobs"] // 3
    (cheaper,) = second["served"]
    assert cheaper in first["served"]
    assert float(second["cost_per_job_usd"]) < float(first["cost_per_job_usd"])
    assert doc["cost_per_job_change"] < -0.2 and doc["cost_down"]
    q1, q2 = first["quality"], second["quality"]
    assert q1["n"] == first["jobs"] and q2["n"] == second["jobs"]
    assert q2["mean"] >= q1["mean"] - doc["tolerance"] and doc["quality_held"]
    (proposal,) = [s for s in doc["suggestions"] if (s["task_type"], s["rule"]) == ("classification",
                                                                                    "classification")]
    assert proposal["action"] == "route" and proposal["candidate"]["model"] == cheaper
    assert proposal["non_inferiority"]["non_inferior"]
    arms = {v["name"]: v for v in doc["experiment"]["variants"]}
    assert arms["control"]["jobs"] + arms["cheaper"]["jobs"] == first["jobs"]
    assert not doc["experiment"]["sample_ratio"]["mismatch"]

    # The tables went to stderr, one per step, ending with the comparison.
    for step in range(1, 9):
        assert f"step {step}: " in done.stderr
    assert re.search(r"cost per job -\d+\.\d%; quality [+-]\d\.\d{3} \(held", done.stderr)
    # The rules versions it pushed expire like every other key it left.
    left = demo_keys(redis_server)
    assert f"{PREFIX}rules:v:2".encode() in left and {k: t for k, t in left.items() if t < 0} == {}


def test_on_the_stand_in_the_demo_serves_its_dashboard_until_ctrl_c() -> None:
    nothing = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers there: the in-process stand-in
    proc = _Child([*ROUTEQ, "demo", "--dashboard", "--port", "0"], base_env(REDIS_URL=nothing))
    try:
        line = proc.wait_for_line("routeq dashboard on http://", timeout=60)
        url = line.split(" on ")[1].split()[0]
        data = httpx.get(url + "api/data", timeout=10).json()
        assert data["totals"]["jobs"] == len(DEMO_JOBS) == data["totals"]["succeeded"]
        assert [w["state"] for w in data["workers"]] == ["live"]  # the demo's worker still runs
        assert httpx.get(url, timeout=10).status_code == 200
        proc.signal(signal.SIGINT)
        assert proc.proc.wait(30) == 0
    finally:
        proc.kill()
    assert "stand-in" in proc.output and "free-tier" in proc.output and "Traceback" not in proc.output
