"""``routeq batch`` as a user runs it: a subprocess against redis-server, the emulator and a worker,
interrupted with Ctrl-C (SIGINT) and run again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support import emu
from tests.support.procs import REPO, Emulator, WorkerProcess, base_env

pytestmark = pytest.mark.integration

JOBS = 300
PRO = {"user_tier": "pro", "budget_remaining": 50.0}


@pytest.fixture()
def slow_worker(redis_url: str, clean_emulator: Emulator) -> Iterator[WorkerProcess]:
    # About 40 jobs/s (12 slots, 300 ms a call): slow enough to interrupt part-way on any machine.
    emu.set_faults(clean_emulator.base_url, {"models": {"*": {"latency_ms": 300}}})
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_MAX_JOBS="12",
                         ROUTEQ_INTERACTIVE_RESERVE="2")
    yield proc
    proc.kill()


def write_input(path: Path) -> None:
    with path.open("wb") as f:
        for i in range(JOBS):
            task = "code" if i % 3 else "chat"
            doc: dict[str, object] = {"prompt": f"item {i}", "context": {**PRO, "task_type": task}}
            if i % 2:
                doc["id"] = f"row-{i}"
            f.write(orjson.dumps(doc) + b"\n")
        f.write(b'{"prompt": "typo", "contxt": {}}\n')
        f.write(b"not json at all\n")


def start(tmp_path: Path, redis_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli.main", "batch", str(tmp_path / "in.jsonl"),
         "--out", str(tmp_path / "out.jsonl"), "--chunk", "64"],
        env=base_env(REDIS_URL=redis_url), cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def test_interrupt_and_resume_runs_every_job_exactly_once(
    tmp_path: Path, redis_url: str, slow_worker: WorkerProcess, clean_emulator: Emulator
) -> None:
    write_input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    first = start(tmp_path, redis_url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 40):
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=20)
    assert first.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert "unfinished" in stdout
    partial = records(out)
    assert 40 <= len(partial) < JOBS  # really interrupted part-way

    second = start(tmp_path, redis_url)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 1, stderr  # the two invalid lines
    final = records(out)
    ids = Counter(str(r["job_id"]) for r in final)
    assert len(final) == JOBS + 2 and max(ids.values()) == 1  # nothing written twice
    statuses = Counter(str(r["status"]) for r in final)
    assert statuses == {"succeeded": JOBS, "rejected": 2}
    assert "from earlier runs" in stdout and "rejected lines (2):" in stdout
    assert "line 301: contxt: unknown field" in stdout and "line 302: not valid JSON" in stdout
    # No job ran twice: one upstream call per job over both runs.
    time.sleep(0.3)
    assert emu.stats(clean_emulator.base_url)["requests_total"] == JOBS

    third = start(tmp_path, redis_url)  # everything done: nothing to send, same verdict
    stdout, _ = third.communicate(timeout=30)
    assert third.returncode == 1
    assert f"{JOBS + 2} with a result ({JOBS + 2} from earlier runs)" in stdout
    assert len(records(out)) == JOBS + 2
