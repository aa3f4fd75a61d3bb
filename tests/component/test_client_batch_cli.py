"""``routeq batch`` on fakeredis, with a stand-in worker thread finishing jobs through finish.lua."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import orjson
import pytest

from producer_client import Client
from producer_client.contract import Routing, Usage
from producer_client.keys import Keys
from worker.cli import batch_cmd
from worker.cli.main import main
from worker.outcome import JobClock, Outcome
from worker.results import Finish, ResultStore

KEYS = Keys()
Capture = pytest.CaptureFixture[str]


class WorkerThread(threading.Thread):
    """Takes jobs off the batch queue and finishes them; ``metadata.fail`` makes a job fail."""

    def __init__(self, server: fakeredis.FakeServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.ran: Counter[str] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        redis = fakeredis.FakeAsyncRedis(server=self.server)
        store = ResultStore(redis, KEYS, ttl_s=600)
        while not self.halt.is_set():
            for raw_id in await redis.zrange(KEYS.queue("batch"), 0, 49):
                job_id = raw_id.decode()
                env = orjson.loads(await redis.get(KEYS.job(job_id)))
                job = env["a"][0]
                self.ran[job_id] += 1
                clock = JobClock(enqueued_at=env["et"] / 1000)
                model = "openai/gpt-4o-mini"
                routing = Routing(rule="default", rules_version="t", model=model, chain=[model],
                                  max_tokens=8, model_served=model)
                if job["metadata"].get("fail"):
                    result = Outcome(job_id, 1).failed(clock, "upstream_error", "boom", routing=routing)
                else:
                    result = Outcome(job_id, 1).succeeded(
                        clock, content="ok", message={"role": "assistant", "content": "ok"},
                        routing=routing, usage=Usage(cost_usd="0.000000013"),
                    )
                await store.finish(Finish(result, KEYS.queue("batch"), env["k"].get("batch_id")))
                await redis.zrem(KEYS.queue("batch"), job_id)
                await redis.delete(KEYS.job(job_id))
            await asyncio.sleep(0.002)
        await redis.aclose()


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    server = fakeredis.FakeServer()

    def fake_client(url: str | None) -> Client:
        return Client(fakeredis.FakeAsyncRedis(server=server), full_wait_s=math.inf)

    monkeypatch.setattr(batch_cmd, "make_client", fake_client)
    return server


@pytest.fixture()
def worker(server: fakeredis.FakeServer) -> Iterator[WorkerThread]:
    thread = WorkerThread(server)
    thread.start()
    yield thread
    thread.halt.set()
    thread.join(5)


def write_input(
    path: Path, n: int, *, fail: frozenset[int] = frozenset(), bad: dict[int, bytes] | None = None
) -> None:
    bad = bad or {}
    with path.open("wb") as f:
        for i in range(n):
            if i in bad:
                f.write(bad[i] + b"\n")
                continue
            doc: dict[str, object] = {"prompt": f"question {i}", "metadata": {"fail": i in fail}}
            if i % 2:
                doc["id"] = f"own-{i}"
            f.write(orjson.dumps(doc) + b"\n")


def out_records(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def run(tmp_path: Path, *extra: str) -> int:
    return main(["batch", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
                 "--progress", "lines", *extra])


@pytest.mark.usefixtures("worker")
def test_all_succeed_exit_zero_and_sum_up(tmp_path: Path, capsys: Capture) -> None:
    write_input(tmp_path / "in.jsonl", 40)
    assert run(tmp_path, "--chunk", "7") == 0
    records = out_records(tmp_path / "out.jsonl")
    assert len(records) == 40 and len({r["job_id"] for r in records}) == 40
    assert all(r["status"] == "succeeded" for r in records)
    out, err = capsys.readouterr()
    assert re.search(r"^succeeded +40$", out, re.M)
    assert re.search(r"^default +40$", out, re.M)
    assert re.search(r"^openai/gpt-4o-mini +40$", out, re.M)
    assert "total cost: 0.000000520 USD" in out  # 40 x 13 nano-USD, exact
    assert "enqueue -> finish" in out and "jobs/s" in out
    assert "routeq batch: 40/40 (100%)" in err  # the last progress line


def test_failures_and_bad_lines_are_reported_and_exit_one(
    tmp_path: Path, capsys: Capture, worker: WorkerThread
) -> None:
    bad = {3: b'{"prompt": "x", "contxt": {}}', 7: b"{oops", 8: b'{"id": "own-1", "prompt": "again"}'}
    write_input(tmp_path / "in.jsonl", 12, fail=frozenset({4, 5}), bad=bad)
    assert run(tmp_path) == 1
    records = out_records(tmp_path / "out.jsonl")
    statuses = Counter(str(r["status"]) for r in records)
    assert statuses == {"succeeded": 7, "failed": 2, "rejected": 3}
    rejected = [r for r in records if r["status"] == "rejected"]
    assert sorted(r["error"]["details"]["line"] for r in rejected) == [4, 8, 9]  # type: ignore[index]
    assert sum(worker.ran.values()) == 9  # rejected lines never reached Redis
    out, _ = capsys.readouterr()
    assert "rejected lines (3):" in out
    assert "line 4: contxt: unknown field" in out
    assert "line 8: not valid JSON" in out
    assert "line 9: id: 'own-1' is already used on line 2" in out


def test_a_rerun_resumes_without_running_anything_twice(
    tmp_path: Path, capsys: Capture, worker: WorkerThread
) -> None:
    write_input(tmp_path / "in.jsonl", 30, bad={5: b"[]"})
    assert run(tmp_path) == 1
    out_path = tmp_path / "out.jsonl"
    lines = out_path.read_bytes().splitlines(keepends=True)
    # As if interrupted: the last 12 results never reached OUT, and the last write was torn.
    out_path.write_bytes(b"".join(lines[:18]) + lines[18][:40])
    kept = {orjson.loads(x)["job_id"] for x in lines[:18]}
    capsys.readouterr()
    assert run(tmp_path) == 1  # still 1: line 6 is still invalid
    records = out_records(out_path)
    assert len(records) == 30 and len({r["job_id"] for r in records}) == 30
    assert {str(r["job_id"]) for r in records[:18]} == kept
    assert max(worker.ran.values()) == 1 and sum(worker.ran.values()) == 29
    out, _ = capsys.readouterr()
    assert "30 with a result (18 from earlier runs)" in out
    assert "12 results from workers this run" in out
    # Fix the bad line and run again: only that line is sent.
    write_input(tmp_path / "in.jsonl", 30)
    assert run(tmp_path) == 0
    assert sum(worker.ran.values()) == 30
    assert out_records(out_path)[-1]["status"] == "succeeded"


def test_timeout_leaves_jobs_unfinished_and_exits_one(
    tmp_path: Path, server: fakeredis.FakeServer, capsys: Capture
) -> None:
    write_input(tmp_path / "in.jsonl", 3)  # no worker: nothing finishes
    assert run(tmp_path, "--timeout", "0.3") == 1
    out, err = capsys.readouterr()
    assert "3 unfinished" in out
    assert "still unfinished after 0.3s" in err


def test_a_missing_input_file_is_a_usage_error(tmp_path: Path, capsys: Capture) -> None:
    assert run(tmp_path) == 2
    assert "no such file" in capsys.readouterr().err
