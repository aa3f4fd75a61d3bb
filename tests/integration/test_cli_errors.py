"""Every bad input, setting or Redis problem gets one line naming it and a documented exit code.

Table-driven: each case runs a real ``routeq`` (or ``python -m worker``) process and asserts the
exit code, a phrase of the message, and that no Python traceback reached the user.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import pytest

from tests.support.faults import AuthRedisServer
from tests.support.procs import API_KEY, REPO, Emulator, RedisServer, base_env, free_port

pytestmark = pytest.mark.integration

ROUTEQ = [sys.executable, "-m", "worker.cli.main"]
WORKER = [sys.executable, "-m", "worker"]
# Exit codes (README, "Exit codes"): 1 failed, 2 bad usage or setting, 4 Redis, 130 interrupted.


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    says: str = ""
    stdin: str | None = None


@dataclass
class Places:
    """Endpoints the cases point at, filled in by the fixture."""

    redis: str
    auth: AuthRedisServer
    emulator: Emulator
    dead: str = field(default_factory=lambda: f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture(scope="module")
def places(redis_server: RedisServer, emulator: Emulator) -> Iterator[Places]:
    auth = AuthRedisServer("right-password").start()
    assert isinstance(auth, AuthRedisServer)
    yield Places(redis_server.url, auth, emulator)
    auth.close()


def cases(p: Places, tmp: Path) -> list[Case]:
    base = p.redis.rsplit("/", 1)[0]
    emulator_port = p.emulator.base_url.split(":")[2].split("/")[0]
    bad_catalog = tmp / "catalog.json"
    bad_catalog.write_text('{"data": "nope"}')
    w = {"REDIS_URL": p.redis, "OPENROUTER_BASE_URL": p.emulator.base_url, "OPENROUTER_API_KEY": API_KEY}
    out: list[Case] = []
    for argv in (["budget", "status"], ["budget", "reset", "tenant:x"], ["health"], ["failed"]):
        out += [
            Case(f"{argv[0]} refused", [*ROUTEQ, *argv], {"REDIS_URL": p.dead}, 4, "Redis at redis://127.0.0.1"),
            Case(f"{argv[0]} wrong password", [*ROUTEQ, *argv], {"REDIS_URL": p.auth.url_with("wrong")}, 4,
                 "invalid username-password pair"),
            Case(f"{argv[0]} db out of range", [*ROUTEQ, *argv], {"REDIS_URL": base + "/99"}, 4, "DB index"),
            Case(f"{argv[0]} not redis", [*ROUTEQ, *argv], {"REDIS_URL": f"redis://127.0.0.1:{emulator_port}/0"},
                 4, "Redis at"),
        ]
    for argv in (["submit", "--prompt", "x"], ["result", "j1"], ["budget", "status"], ["health"],
                 ["failed"], ["retry", "j1"]):
        out.append(Case(f"{argv[0]} notaurl", [*ROUTEQ, *argv], {"REDIS_URL": "notaurl"}, 2,
                        "REDIS_URL='notaurl'"))
    out += [
        Case("worker notaurl", WORKER, {**w, "REDIS_URL": "notaurl"}, 2, "REDIS_URL='notaurl'"),
        Case("submit db 99", [*ROUTEQ, "submit", "--prompt", "x"], {"REDIS_URL": base + "/99"}, 4,
             "DB index"),
        Case("result db 99", [*ROUTEQ, "result", "j1"], {"REDIS_URL": base + "/99"}, 4, "DB index"),
        Case("worker db 99", WORKER, {**w, "REDIS_URL": base + "/99"}, 2, "DB index"),
        Case("log level", WORKER, {**w, "ROUTEQ_LOG_LEVEL": "verbose"}, 2, "ROUTEQ_LOG_LEVEL='verbose'"),
        Case("catalog missing", WORKER, {**w, "ROUTEQ_CATALOG": str(tmp / "nope.json")}, 2, "cannot read"),
        Case("catalog invalid", WORKER, {**w, "ROUTEQ_CATALOG": str(bad_catalog)}, 2, '"data" list'),
        Case("route catalog", [*ROUTEQ, "route", "--context", "{}"], {"ROUTEQ_CATALOG": str(bad_catalog)}, 2,
             '"data" list'),
        Case("timeout abc", WORKER, {**w, "OPENROUTER_TIMEOUT_S": "abc"}, 2, "OPENROUTER_TIMEOUT_S='abc'"),
        Case("cooldown 0", WORKER, {**w, "ROUTEQ_BREAKER_COOLDOWN_S": "0"}, 2, "ROUTEQ_BREAKER_COOLDOWN_S"),
        Case("max jobs abc", WORKER, {**w, "ROUTEQ_MAX_JOBS": "abc"}, 2, "ROUTEQ_MAX_JOBS='abc'"),
        Case("reserve too big", WORKER, {**w, "ROUTEQ_MAX_JOBS": "25", "ROUTEQ_INTERACTIVE_RESERVE": "25"}, 2,
             "ROUTEQ_INTERACTIVE_RESERVE=25 leaves no slot"),
        Case("queue depth abc", [*ROUTEQ, "submit", "--prompt", "x"],
             {"REDIS_URL": p.redis, "ROUTEQ_MAX_QUEUE_DEPTH": "abc"}, 2, "ROUTEQ_MAX_QUEUE_DEPTH='abc'"),
        Case("emulator port in use", [*ROUTEQ, "emulator", "--port", emulator_port], {}, 2, "cannot listen"),
        Case("emulator port range", [*ROUTEQ, "emulator", "--port", "99999"], {}, 2, "out of range"),
        Case("empty prompt", [*ROUTEQ, "submit", "--prompt", "  "], {"REDIS_URL": p.redis}, 2,
             "prompt: empty"),
        Case("lone surrogate", [*ROUTEQ, "submit", "--prompt-file", str(_surrogate_file(tmp))],
             {"REDIS_URL": p.redis}, 2, "prompt-file"),
        Case("route like submit", [*ROUTEQ, "route", "--context", '{"needs_tools": "yes"}'], {}, 2,
             "context.needs_tools"),
        Case("prompt file missing", [*ROUTEQ, "submit", "--prompt-file", str(tmp / "none.txt")],
             {"REDIS_URL": p.redis}, 2, "No such file"),
        Case("context not JSON", [*ROUTEQ, "submit", "--prompt", "x", "--context", "{bad"],
             {"REDIS_URL": p.redis}, 2, "--context is not valid JSON"),
        Case("event loop", WORKER, {**w, "ROUTEQ_EVENT_LOOP": "tokio"}, 2, "ROUTEQ_EVENT_LOOP='tokio'"),
    ]
    return out


def _surrogate_file(tmp: Path) -> Path:
    path = tmp / "bad.txt"
    path.write_bytes(b"\xed\xa0\x80 not utf-8")  # an encoded lone surrogate: not valid UTF-8
    return path


def run(case: Case, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = base_env(**case.env)
    return subprocess.run(case.argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          input=case.stdin)


def test_each_bad_input_gets_one_line_and_its_exit_code(places: Places, tmp_path: Path) -> None:
    failures = []
    table = cases(places, tmp_path)
    with ThreadPoolExecutor(max_workers=6) as pool:  # each case is its own process: run a few at once
        runs = list(pool.map(run, table))
    for case, done in zip(table, runs, strict=True):
        err = done.stderr.strip()
        problems = []
        if done.returncode != case.code:
            problems.append(f"exit {done.returncode} != {case.code}")
        if "Traceback" in done.stderr:
            problems.append("traceback")
        if case.says not in done.stderr:
            problems.append(f"no {case.says!r}")
        lines = [x for x in err.splitlines() if " INFO " not in x and " WARNING " not in x]
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines")
        if problems:
            failures.append(f"{case.name}: {', '.join(problems)}\n  stderr: {err[:400]}")
    assert not failures, "\n".join(failures)


def test_a_closed_pipe_ends_quietly(places: Places, tmp_path: Path) -> None:
    contexts = "\n".join(orjson.dumps({"user_tier": "pro", "tags": {"n": i}}).decode() for i in range(20_000))
    jobs = tmp_path / "in.jsonl"
    jobs.write_text("\n".join(orjson.dumps({"prompt": f"p{i}"}).decode() for i in range(300)))
    runs = [([*ROUTEQ, "route", "--contexts", "-"], contexts),
            ([*ROUTEQ, "batch", str(jobs), "--out", str(tmp_path / "out.jsonl"), "--progress", "off"], None)]
    for argv, stdin in runs:  # `routeq ... | head -1`
        proc = subprocess.Popen(argv, env=base_env(REDIS_URL=places.redis), cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin or ""), daemon=True)
        feeder.start()
        if stdin is None:  # batch prints its summary when it ends: stop it as a user would
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
        proc.stdout.readline()
        proc.stdout.close()  # what `head -1` does after its line
        code = proc.wait(30)
        err = proc.stderr.read()
        assert code in (0, 130) and "Traceback" not in err and "Broken pipe" not in err, (argv, code, err)


def _feed(pipe: IO[str], text: str) -> None:
    try:
        pipe.write(text)
        pipe.close()
    except (BrokenPipeError, ValueError):
        pass


def test_ctrl_c_while_waiting_is_one_line_exit_130_and_the_job_id_comes_first(places: Places) -> None:
    env = base_env(REDIS_URL=places.redis)  # no worker serves it: the wait would last
    proc = subprocess.Popen([*ROUTEQ, "submit", "--prompt", "hello", "--wait", "--timeout", "60"], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert "enqueued; waiting for its result" in first and "routeq result " in first
    job_id = first.split("job ", 1)[1].split()[0]
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 130 and rest.strip() == "routeq submit: interrupted"
    waiting = subprocess.Popen([*ROUTEQ, "result", job_id, "--wait", "60"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it start waiting (an earlier signal would be one before asyncio runs)
    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=20)
    assert waiting.returncode == 130 and "Traceback" not in err
    assert err.strip() == "routeq result: interrupted"


def test_sigterm_to_a_worker_whose_redis_is_gone_exits_cleanly(places: Places) -> None:
    with socket.socket() as s:  # a port that refuses connections
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    env = base_env(REDIS_URL=dead, OPENROUTER_BASE_URL=places.emulator.base_url, OPENROUTER_API_KEY=API_KEY)
    proc = subprocess.Popen(WORKER, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    seen = ""
    while "Redis unreachable" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in seen + out


def test_result_exits_non_zero_unless_the_job_succeeded(places: Places) -> None:
    import redis as sync_redis

    r = sync_redis.Redis.from_url(places.redis)
    error = {"type": "invalid_job", "message": "x"}
    doc = {"v": 1, "job_id": "rejected-1", "status": "rejected", "error": error,
           "timing": {"started_at": "a", "finished_at": "b"}}
    r.set("routeq:result:rejected-1", orjson.dumps(doc))
    done = subprocess.run([*ROUTEQ, "result", "rejected-1"], env=base_env(REDIS_URL=places.redis), cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and orjson.loads(done.stdout)["status"] == "rejected"
    r.delete("routeq:result:rejected-1")
    assert os.environ.get("ROUTEQ_PREFIX") is None
