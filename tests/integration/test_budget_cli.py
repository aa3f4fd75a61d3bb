"""`routeq budget status` / `reset` against a real Redis that a worker has charged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from producer_client.client import Client
from producer_client.money import usd_to_nano
from tests.support.procs import REPO, Emulator, WorkerProcess, base_env
from tests.support.rules import rules_with_budgets

pytestmark = pytest.mark.integration


def routeq(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args, "--redis", redis_url],
                          cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=30)


async def test_status_shows_spend_and_reset_zeroes_it(
    tmp_path: Path, redis_url: str, clean_emulator: Emulator
) -> None:
    rules = rules_with_budgets(tmp_path, [
        {"name": "per-tenant", "scope": "tenant", "limit_usd": "2", "window": "month"},
    ])
    worker = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_RULES=str(rules))
    client = Client.from_url(redis_url)
    try:
        res = await client.result(await client.submit(
            prompt="hello", context={"tenant": "acme", "user_tier": "pro", "budget_remaining": 9.0}),
            timeout=20)
    finally:
        await client.close()
        worker.kill()
    assert res.status == "succeeded" and res.usage is not None

    out = routeq(redis_url, "budget", "status", "--json")
    assert out.returncode == 0, out.stderr
    (row,) = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert row["name"] == "per-tenant" and row["scope"] == "tenant:acme"
    assert usd_to_nano(row["spent_usd"]) == usd_to_nano(res.usage.cost_usd)
    assert row["limit_usd"] == "2.000000000" and row["reserved_usd"] == "0.000000000"

    table = routeq(redis_url, "budget", "status")
    assert "per-tenant" in table.stdout and "tenant:acme" in table.stdout

    assert routeq(redis_url, "budget", "reset", "tenant:acme").returncode == 0
    after = orjson.loads(routeq(redis_url, "budget", "status", "--json").stdout)
    assert after["spent_usd"] == "0.000000000"
    assert routeq(redis_url, "budget", "reset", "nope").returncode == 1
