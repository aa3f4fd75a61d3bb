"""Real processes for integration tests: a private redis-server, the emulator, worker processes.

Everything binds to 127.0.0.1 on a free port, so tests never touch the machine's own Redis and
can kill and restart what they started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-or-v1-test-0123456789abcdef-SECRET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


class RedisServer:
    """A redis-server child on a free loopback port; stop/start keep the port (and the AOF)."""

    def __init__(self, *, appendonly: bool = True, extra: list[str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="routeq-redis-")
        self.appendonly = appendonly
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"), *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(self.ping, 10, f"redis-server on {self.port}")
        return self

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


class _Child:
    """A child process whose output is kept (last lines) and can be waited on for a line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: deque[str] = deque(maxlen=2000)
        self.proc = subprocess.Popen(
            args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise TimeoutError(f"no line with {needle!r}; output:\n" + "\n".join(self.lines))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTEQ_", "OPENROUTER_", "REDIS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Emulator(_Child):
    def __init__(self, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "worker.cli.main", "emulator", "--port", "0", "--api-key", API_KEY, *args],
            base_env(),
        )
        line = self.wait_for_line("emulator listening on")
        self.base_url = line.split("listening on", 1)[1].strip()


def worker_env(redis_url: str, base_url: str, settings: dict[str, str]) -> dict[str, str]:
    defaults = {"REDIS_URL": redis_url, "OPENROUTER_BASE_URL": base_url, "OPENROUTER_API_KEY": API_KEY}
    return base_env(**{**defaults, **{k: str(v) for k, v in settings.items()}})


def start_worker(redis_url: str, base_url: str, **settings: str) -> _Child:
    """A ``python -m worker`` child, not waited for (to see it refuse to start)."""
    return _Child([sys.executable, "-m", "worker"], worker_env(redis_url, base_url, settings))


class WorkerProcess(_Child):
    def __init__(self, redis_url: str, base_url: str, **settings: str) -> None:
        """A ``python -m worker`` child, ready to take jobs when the constructor returns."""
        super().__init__([sys.executable, "-m", "worker"], worker_env(redis_url, base_url, settings))
        self.wait_for_line("worker ready")
