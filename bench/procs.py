"""Child processes a benchmark runs against: a private redis-server, the emulator, workers.

Everything binds to 127.0.0.1 on a free port (never the machine's own Redis on 6379). Child
output goes to files, not pipes: a reader thread in the driver would compete for the GIL with
the producer being measured. :class:`Children` owns every process and kills what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[1]
API_KEY = "sk-or-v1-bench-not-a-secret"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")


def _die_with_parent() -> None:
    """Linux: SIGKILL the child if the driver dies without cleaning up (e.g. killed itself)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_env(**extra: str) -> dict[str, str]:
    """The driver's environment minus routeq/OpenRouter/Redis settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTEQ_", "OPENROUTER_", "REDIS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


class Child:
    """A process whose output goes to ``log_path``; knows its CPU time and resident memory."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                list(args), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a ^C to the driver must not kill children mid-cleanup
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_line(self, needle: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if needle in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = "\n".join(self.output().splitlines()[-30:])
        raise RuntimeError(f"{self.name}: no line with {needle!r} (exit={self.proc.poll()}); output:\n{tail}")

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far (from /proc; 0 once the process is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class Children:
    """Starts children in one temp dir and guarantees they are all stopped on exit."""

    def __init__(self, keep_logs: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="routeq-bench-"))
        self.keep_logs = keep_logs
        self._all: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for child in reversed(self._all):
            child.kill()
        self._all.clear()
        if not self.keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, name: str, args: Sequence[str], env: dict[str, str]) -> Child:
        child = Child(name, args, env, self.dir)
        self._all.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """SIGTERM all at once (they drain in parallel), then wait for each."""
        for c in children:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        for c in children:
            c.stop()
            if c in self._all:
                self._all.remove(c)

    # -- the processes a benchmark needs ------------------------------------------------------

    def redis_server(self) -> RedisProc:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        port = free_port()
        data = self.dir / f"redis-{port}"
        data.mkdir()
        args = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--maxclients", "10000",
        ]
        child = self.start("redis", args, {"PATH": os.environ.get("PATH", "")})
        server = RedisProc(child, port)
        wait_until(server.ping, 10, f"redis-server on port {port}")
        return server

    def emulator(self, latency_ms: float = 0.0) -> EmulatorProc:
        args = [
            sys.executable, "-m", "worker.cli.main", "emulator", "--port", "0",
            "--latency-ms", f"{latency_ms:g}",
        ]
        child = self.start("emulator", args, child_env())
        line = child.wait_for_line("emulator listening on")
        return EmulatorProc(child, line.split("listening on", 1)[1].strip())

    def routeq_worker(
        self, redis_url: str, base_url: str, settings: Mapping[str, str], *, profile_to: Path | None = None
    ) -> Child:
        """``python -m worker`` (optionally under cProfile) with ``ROUTEQ_*`` settings."""
        env = child_env(
            REDIS_URL=redis_url, OPENROUTER_BASE_URL=base_url, OPENROUTER_API_KEY=API_KEY, **settings
        )
        prefix = [sys.executable] if profile_to is None else [
            sys.executable, "-m", "cProfile", "-o", str(profile_to),
        ]
        return self.start("routeq-worker", [*prefix, "-m", "worker"], env)

    def arq_worker(self, redis_url: str, *, max_jobs: int) -> Child:
        """arq's own CLI on :class:`bench.arq_baseline.WorkerSettings` (arq's defaults otherwise)."""
        env = child_env(BENCH_ARQ_REDIS_URL=redis_url, BENCH_ARQ_MAX_JOBS=str(max_jobs))
        args = [sys.executable, "-m", "arq", "bench.arq_baseline.WorkerSettings"]
        return self.start("arq-worker", args, env)


def wait_ready(workers: Sequence[Child], needle: str, timeout_s: float = 60.0) -> None:
    for w in workers:
        w.wait_for_line(needle, timeout_s)


class RedisProc:
    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def version(self) -> str:
        info: dict[str, Any] = self.client().info("server")  # type: ignore[assignment]
        return str(info["redis_version"])

    def flush(self) -> None:
        r = self.client()
        r.flushall()
        r.config_resetstat()


class EmulatorProc:
    def __init__(self, child: Child, base_url: str) -> None:
        self.child = child
        self.base_url = base_url
