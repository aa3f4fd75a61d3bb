"""routeq as a user installs it: a wheel in a fresh virtualenv, used from a directory outside the
checkout, so nothing is found by accident in the source tree.

- ``routeq[worker]``: the shipped rules and catalog load from the package, ``rules check``,
  ``route`` and ``config init`` work, one job runs end to end through ``python -m worker`` and the
  emulator, and ``routeq demo`` runs on its embedded defaults;
- ``routeq`` alone (the producer side): ``producer_client`` imports, arq, httpx and aiohttp are
  not installed, and a worker command says in one line what to install.

Each venv install takes about half a minute (pip's cache makes later runs faster).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.procs import API_KEY, REPO, RedisServer, _Child, free_port

pytestmark = pytest.mark.integration


def sh(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}\nstdout: {done.stdout[-2000:]}\n"
                             f"stderr: {done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)], cwd=out)
    (built,) = out.glob("routeq-*.whl")
    return built


def make_venv(where: Path, requirement: str) -> Path:
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    sh([*pip, requirement], cwd=where)
    return python


def clean_env(venv_dir: Path, **extra: str) -> dict[str, str]:
    """The user's environment: the venv first on PATH, nothing of the checkout or of routeq's settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROUTEQ_", "OPENROUTER_", "REDIS_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def worker_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("venv-worker")
    make_venv(where / "venv", f"{wheel}[worker]")
    yield where


def test_the_worker_install_runs_everything_from_outside_the_checkout(
    worker_venv: Path, redis_server: RedisServer
) -> None:
    home = worker_venv / "elsewhere"
    home.mkdir()
    env = clean_env(worker_venv / "venv")
    routeq = str(worker_venv / "venv" / "bin" / "routeq")
    assert sh([routeq, "--version"], cwd=home, env=env).stdout.startswith("routeq ")
    assert sh([routeq, "rules", "check"], cwd=home, env=env).stdout.startswith("ok: 8 rules")
    routed = sh([routeq, "route", "--context", '{"user_tier": "pro"}'], cwd=home, env=env)
    decision = orjson.loads(routed.stdout)
    assert decision["rule"] == "default" and decision["chain"]
    sh([routeq, "config", "init", "cfg"], cwd=home, env=env)
    copied = sh([routeq, "rules", "check", "cfg/rules.json"], cwd=home, env=env)
    assert copied.stdout.startswith("ok: 8 rules")

    # One job end to end: the emulator and a worker from the venv, on a private redis-server.
    redis_server.client().flushall()
    port = free_port()
    emulator = _Child([routeq, "emulator", "--port", str(port), "--api-key", API_KEY], env)
    emulator.wait_for_line("emulator listening on")
    base = f"http://127.0.0.1:{port}/api/v1"
    run_env = clean_env(worker_venv / "venv", REDIS_URL=redis_server.url, OPENROUTER_BASE_URL=base,
                        OPENROUTER_API_KEY=API_KEY)
    worker = _Child([str(worker_venv / "venv" / "bin" / "python"), "-m", "worker"], run_env)
    try:
        worker.wait_for_line("worker ready")
        done = sh([routeq, "submit", "--prompt", "hello from a wheel", "--context", '{"user_tier": "pro"}',
                   "--wait", "--timeout", "30"], cwd=home, env=run_env)
        result = orjson.loads(done.stdout)
        assert result["status"] == "succeeded" and result["routing"]["rule"] == "default"
        # The dashboard's page and its vendored chart library are package data too.
        dash_port = free_port()
        dashboard = _Child([routeq, "dashboard", "--port", str(dash_port)], run_env)
        try:
            dashboard.wait_for_line("routeq dashboard on")
            for path in ("/", "/static/uPlot.iife.min.js", "/static/dashboard.js"):
                got = httpx.get(f"http://127.0.0.1:{dash_port}{path}", timeout=10)
                assert got.status_code == 200 and got.content, path
        finally:
            dashboard.kill()
    finally:
        worker.kill()
        emulator.kill()
    examples = sh([routeq, "config", "init", "cfg2"], cwd=home, env=env)
    for example in ("model-routing.json", "cascade.json"):
        assert (home / "cfg2" / "examples" / example).is_file(), examples.stdout
        sh([routeq, "rules", "check", f"cfg2/examples/{example}"], cwd=home, env=env)

    # The demo on its embedded defaults: nothing answers at REDIS_URL, so the in-process stand-in.
    demo_env = clean_env(worker_venv / "venv", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    demo = sh([routeq, "demo"], cwd=home, env=demo_env, timeout=180)
    assert "stand-in" in demo.stderr + demo.stdout and "free-tier" in demo.stdout


def test_the_producer_install_has_no_worker_dependencies(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    where = tmp_path_factory.mktemp("venv-producer")
    python = make_venv(where / "venv", str(wheel))
    env = clean_env(where / "venv")
    probe = ("import importlib.util as u, producer_client\n"
             "from producer_client import Client, SyncClient, Job\n"
             "print(sorted(m for m in ('arq', 'httpx', 'aiohttp', 'h11', 'fakeredis') if u.find_spec(m)))")
    assert sh([str(python), "-c", probe], cwd=where, env=env).stdout.strip() == "[]"
    routeq = str(where / "venv" / "bin" / "routeq")
    assert '"job"' in sh([routeq, "schema"], cwd=where, env=env).stdout
    assert sh([routeq, "route", "--context", "{}"], cwd=where, env=env).returncode == 0  # the pure core
    refused = sh([routeq, "emulator", "--port", "0"], cwd=where, env=env, check=False)
    assert refused.returncode == 5, refused.stderr
    assert refused.stderr.strip().endswith("pip install 'routeq[worker]'")
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
