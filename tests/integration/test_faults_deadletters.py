"""Dead letters end to end: a job whose whole chain fails is listed by ``routeq failed``, and
``routeq retry`` runs it again under the same id once the fault is gone."""

from __future__ import annotations

import orjson
import pytest

from producer_client.client import Client
from tests.support import emu
from tests.support.faults import decisions_by_job, routeq
from tests.support.procs import Emulator, WorkerProcess

pytestmark = pytest.mark.integration

PRO = {"user_tier": "pro", "task_type": "chat", "budget_remaining": 50.0, "max_latency_ms": 30000}
CHAIN = ["openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"]  # the default rule's chain


async def test_failed_job_is_listed_then_retried_under_its_id(
    redis_url: str, clean_emulator: Emulator
) -> None:
    emu.set_faults(clean_emulator.base_url, {"fail_always": CHAIN})
    worker = WorkerProcess(redis_url, clean_emulator.base_url, OPENROUTER_MAX_RETRIES="1")
    client = Client.from_url(redis_url)
    try:
        job_id = await client.submit(prompt="please fail", context=PRO, metadata={"order": 7},
                                     job_id="dead-1")
        failed = await client.result(job_id, timeout=20)
        listed = routeq(redis_url, "failed", "--json")
        early_retry = routeq(redis_url, "retry", "not-a-failed-job")

        emu.set_faults(clean_emulator.base_url, {})
        retried = routeq(redis_url, "retry", job_id)
        succeeded = await client.result(job_id, timeout=20)
        listed_after = routeq(redis_url, "failed", "--json")
        retry_again = routeq(redis_url, "retry", job_id)
        decisions = (await decisions_by_job(client.redis))[job_id]
    finally:
        await client.close()
        worker.kill()

    assert failed.status == "failed" and failed.error is not None
    assert failed.error.type == "server_error" and failed.error.retryable
    assert failed.routing is not None and len(failed.routing.attempts) == 2

    assert listed.returncode == 0, listed.stderr
    (letter,) = orjson.loads(listed.stdout)
    assert letter["job_id"] == job_id and letter["error_type"] == "server_error"
    assert letter["attempts"] == 2 and letter["rule"] == "default" and letter["retryable"] is True
    assert early_retry.returncode == 1 and "not in the failed-job index" in early_retry.stderr

    assert retried.returncode == 0 and f"re-queued {job_id}" in retried.stdout, retried.stderr
    assert succeeded.status == "succeeded" and succeeded.job_id == job_id
    assert succeeded.metadata == {"order": 7}  # the kept job document, not a stand-in
    assert succeeded.routing is not None and succeeded.routing.model_served == CHAIN[0]
    assert orjson.loads(listed_after.stdout) == []
    assert retry_again.returncode == 1 and "not in the failed-job index" in retry_again.stderr
    assert [d["status"] for d in decisions] == ["failed", "succeeded"]  # one decision per run
