"""``routeq health`` and ``routeq health clear`` against circuits and a block set by real attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import fakeredis
import orjson
import pytest

from worker.cli.main import main
from worker.health import BreakerSettings, ModelHealth
from worker.openrouter import Attempt

A, B = "openai/gpt-4o", "anthropic/claude-3.5-sonnet"


def failure(model: str, *, status: int = 502, error_type: str = "server_error") -> Attempt:
    return Attempt(model=model, models=(), status=status, error_type=error_type, error="upstream broke",
                   latency_ms=10, retry_after_s=None, failed_models=(model,))


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeServer]:
    """A fake Redis every command connects to, with A's circuit open, B failing once, and an
    account block from a 401."""
    fake = fakeredis.FakeServer()

    async def fill() -> None:
        redis = fakeredis.FakeAsyncRedis(server=fake)
        health = ModelHealth(redis, settings=BreakerSettings(failure_threshold=3), account="k1")
        for _ in range(3):
            await health.record(failure(A))
        await health.record(failure(B, status=504, error_type="timeout"))
        await health.record(failure(B, status=401, error_type="auth"))
        await health.redis.aclose()

    asyncio.run(fill())
    monkeypatch.setattr("producer_client.connection.connect",
                        lambda url, **kw: fakeredis.FakeAsyncRedis(server=fake))
    monkeypatch.delenv("ROUTEQ_PREFIX", raising=False)
    yield fake


def test_health_lists_circuits_and_blocks_and_clear_lifts_them(
    server: fakeredis.FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    circuits = {c["model"]: c for c in doc["circuits"]}
    assert circuits[A]["state"] == "open" and circuits[A]["consecutive_failures"] == 3
    assert circuits[B]["state"] == "closed" and circuits[B]["last_error"] == "timeout"
    assert [(b["account"], b["error_type"]) for b in doc["account_blocks"]] == [("k1", "auth")]

    assert main(["health"]) == 0
    table = capsys.readouterr().out
    assert A in table and "open" in table and "k1" in table

    assert main(["health", "clear", A]) == 0
    assert f"cleared the circuit of {A}" in capsys.readouterr().out
    assert main(["health", "clear", "account"]) == 0
    assert "cleared the account blocks (1 key)" in capsys.readouterr().out
    assert main(["health", "clear", "account"]) == 1  # nothing left: one line, exit 1
    assert "nothing to clear" in capsys.readouterr().err

    assert main(["health", "--json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert [c["model"] for c in doc["circuits"]] == [B] and doc["account_blocks"] == []
