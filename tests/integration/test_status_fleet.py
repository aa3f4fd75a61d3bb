"""``routeq status`` on a fleet of three real workers: all three listed, one shown lost within
three heartbeats of its SIGKILL; ``routeq worker --check`` follows the workers on this host;
``--watch`` redraws until Ctrl-C and then exits 130 with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from producer_client.connection import connect
from producer_client.keys import Keys
from tests.support.procs import Emulator, WorkerProcess, _Child, base_env
from tests.support.waiting import eventually
from worker.observe.workers import read_workers

BEAT_S = 0.5
pytestmark = pytest.mark.integration


def routeq(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], env=base_env(REDIS_URL=redis_url),
                          capture_output=True, text=True, timeout=60)


def status(redis_url: str) -> dict[str, Any]:
    out = routeq(redis_url, "status", "--json")
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = orjson.loads(out.stdout)
    return doc


@pytest.fixture()
def fleet(redis_url: str, clean_emulator: Emulator) -> Iterator[list[WorkerProcess]]:
    workers = [WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_HEARTBEAT_S=str(BEAT_S),
                             ROUTEQ_MAX_JOBS="20") for _ in range(3)]
    yield workers
    for w in workers:
        w.kill()


async def test_status_lists_the_fleet_and_shows_a_killed_worker_lost(redis_url: str,
                                                                     fleet: list[WorkerProcess]) -> None:
    pids = {w.proc.pid for w in fleet}
    doc = status(redis_url)
    assert {w["pid"] for w in doc["workers"] if w["state"] == "live"} == pids
    assert all(w["queues"] == ["interactive", "batch"] and w["slots"] == 20 for w in doc["workers"])
    assert routeq(redis_url, "worker", "--check").returncode == 0

    victim = fleet[0]
    redis = connect(redis_url)
    try:
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()

        async def lost() -> list[str]:
            return [w.name for w in await read_workers(redis, Keys()) if w.state == "lost"]

        [name] = await eventually(lost, timeout=10, interval=0.02, what="the killed worker to show as lost")
        after = time.monotonic() - killed
    finally:
        await redis.aclose()
    assert name.endswith(f":{victim.proc.pid}")
    print(f"shown lost {after:.2f}s after SIGKILL (heartbeat {BEAT_S}s)")
    assert after <= 3 * BEAT_S + 0.5, f"shown lost {after:.2f}s after SIGKILL"

    text = routeq(redis_url, "status").stdout
    assert "workers: 2 live, 1 lost" in text
    assert any(name in line and "LOST" in line for line in text.splitlines())
    assert routeq(redis_url, "worker", "--check").returncode == 0  # two are still alive here

    for w in fleet[1:]:
        w.kill()

    async def check_fails() -> bool:
        return routeq(redis_url, "worker", "--check").returncode == 1

    await eventually(check_fails, timeout=10, interval=0.2, what="--check to fail once every worker is dead")


def test_watch_redraws_until_ctrl_c_then_exits_130_with_one_line(redis_url: str) -> None:
    proc = _Child([sys.executable, "-m", "worker.cli.main", "status", "--watch", "0.2"],
                  base_env(REDIS_URL=redis_url))
    try:
        deadline = time.monotonic() + 20
        while sum("routeq status" in line for line in list(proc.lines)) < 2:
            assert proc.proc.poll() is None and time.monotonic() < deadline, proc.output
            time.sleep(0.05)
        proc.signal(signal.SIGINT)
        assert proc.proc.wait(10) == 130
        time.sleep(0.1)  # let the reader thread take the last line
        tail = [line for line in proc.lines if line and not line.startswith(("routeq status ", " ", "queue"))]
        assert tail[-1] == "routeq status: interrupted"
        assert not any("Traceback" in line for line in proc.lines)
    finally:
        proc.kill()
