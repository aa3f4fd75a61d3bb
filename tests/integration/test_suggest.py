"""Issue 11's loop over real workers: an experiment, simulated feedback, then ``routeq suggest``.

The shipped rules' catch-all (``default``: gpt-4o-mini) splits classification jobs 50/50 with a
cheaper llama variant. The emulator labels each prompt right with a configured accuracy per
model (deterministic per prompt), and feedback scores 1 for the true label. When llama is as
accurate, ``suggest`` proposes routing classification there and writes rules that check and
push; when it is much worse, nothing is proposed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from producer_client.client import Client
from tests.support import emu
from tests.support.procs import REPO, Emulator, WorkerProcess, base_env

MINI, LLAMA = "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct"
JOBS = 600
pytestmark = pytest.mark.timeout(240)


@pytest.fixture()
def rules_path(tmp_path: Path) -> Path:
    doc = orjson.loads((REPO / "worker" / "defaults" / "rules.json").read_bytes())
    doc["experiments"] = [{"name": "cls-cheap", "rule": "default", "unit": "user_id", "salt": "it-1",
                           "variants": [{"name": "control", "weight": 50},
                                        {"name": "llama", "weight": 50, "model": LLAMA}]}]
    path = tmp_path / "rules.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


@pytest.fixture()
def worker(redis_url: str, clean_emulator: Emulator, rules_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(redis_url, clean_emulator.base_url, ROUTEQ_RULES=str(rules_path),
                         ROUTEQ_MAX_JOBS="200")
    yield proc
    proc.kill()


def routeq(redis_url: str, rules_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(REDIS_URL=redis_url, ROUTEQ_RULES=str(rules_path))
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


async def run_experiment(client: Client) -> dict[str, int]:
    """JOBS classification jobs from distinct users, each scored by simulated feedback."""
    prompts = {f"cls-{i}": f"Classify the sentiment of this review (#{i}): delivery was late again."
               for i in range(JOBS)}
    specs = [{"id": job_id, "prompt": prompt,
              "context": {"user_tier": "pro", "task_type": "classification", "user_id": f"user-{job_id}"}}
             for job_id, prompt in prompts.items()]
    handles = await client.submit_many(specs)
    results = await client.wait_all([h.job_id for h in handles], timeout=180)
    assert all(r.status == "succeeded" for r in results), [r.error for r in results if r.error][:3]
    served: dict[str, int] = {}
    for r in results:
        assert r.routing is not None and r.routing.model_served is not None
        served[r.routing.model_served] = served.get(r.routing.model_served, 0) + 1
    await asyncio.gather(*(client.feedback(r.job_id, score=emu.simulated_score(prompts[r.job_id], r.content))
                           for r in results))
    return served


def suggestion(doc: dict[str, Any]) -> dict[str, Any]:
    (found,) = [s for s in doc["suggestions"] if (s["task_type"], s["rule"]) == ("classification", "default")]
    assert isinstance(found, dict)
    return found


async def test_an_equally_accurate_cheaper_model_is_proposed_and_the_rules_push(
    redis_url: str, clean_emulator: Emulator, worker: WorkerProcess, client: Client, rules_path: Path,
    tmp_path: Path,
) -> None:
    emu.set_accuracy(clean_emulator.base_url, {MINI: 0.9, LLAMA: 0.9})
    served = await run_experiment(client)
    assert served[MINI] >= 250 and served[LLAMA] >= 250  # a 50/50 split of 600 users

    out = tmp_path / "suggested.json"
    done = routeq(redis_url, rules_path, "suggest", "--since", "1h", "--min-samples", "200",
                  "--tolerance", "0.1", "--format", "json", "--write", str(out))
    assert done.returncode == 0, done.stderr
    found = suggestion(orjson.loads(done.stdout))
    assert found["action"] == "route", found["why"]
    assert found["current"]["model"] == MINI and found["candidate"]["model"] == LLAMA
    assert found["non_inferiority"]["non_inferior"] and found["non_inferiority"]["lower_bound"] > -0.1
    assert found["monthly_saving_usd"] is not None and float(found["monthly_saving_usd"]) > 0

    written = orjson.loads(out.read_bytes())
    rule = next(r for r in written["rules"] if r["name"] != "default" and r.get("model") == LLAMA)
    assert rule["when"] == {"task_type": "classification"} and rule["fallbacks"][0] == MINI
    names = [r["name"] for r in written["rules"]]
    assert names.index(rule["name"]) == names.index("default") - 1
    checked = routeq(redis_url, rules_path, "rules", "check", str(out))
    assert checked.returncode == 0, checked.stderr
    pushed = routeq(redis_url, rules_path, "rules", "push", str(out), "-m", "routeq suggest")
    assert pushed.returncode == 0, pushed.stderr
    assert orjson.loads(pushed.stdout)["version"] == 1


async def test_a_worse_cheaper_model_is_not_proposed(
    redis_url: str, clean_emulator: Emulator, worker: WorkerProcess, client: Client, rules_path: Path,
    tmp_path: Path,
) -> None:
    emu.set_accuracy(clean_emulator.base_url, {MINI: 0.95, LLAMA: 0.5})
    await run_experiment(client)

    out = tmp_path / "suggested.json"
    done = routeq(redis_url, rules_path, "suggest", "--since", "1h", "--min-samples", "200",
                  "--tolerance", "0.02", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert not [s for s in doc["suggestions"] if s["action"] == "route"]
    found = suggestion(doc)
    assert found["action"] == "keep" and found["candidate"]["model"] == LLAMA
    assert found["candidate"]["quality"]["mean"] < 0.6 < 0.9 < found["current"]["quality"]["mean"]
    refused = routeq(redis_url, rules_path, "suggest", "--since", "1h", "--write", str(out))
    assert refused.returncode == 1 and "nothing to write" in refused.stderr and not out.exists()
