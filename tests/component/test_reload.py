"""Hot reload inside a worker: follow the active version, swap whole, keep the last good policy."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import orjson
import pytest

from producer_client.keys import Keys
from worker.catalog import Catalog
from worker.claims import Control
from worker.pipeline import PolicyRef
from worker.reload import PolicyWatcher, redis_rules
from worker.routing import Policy
from worker.rules import load_rules
from worker.shipped import RULES, shipped

KEYS = Keys("t:")


def version(model: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(shipped(RULES).read_bytes())
    doc["rules"][-1] = {"name": "default", "priority": 99, "when": {}, "model": model}
    return doc


@pytest.fixture()
async def setup() -> Any:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    catalog = Catalog.load()
    file_rules = load_rules(catalog=catalog)
    ref = PolicyRef(Policy(file_rules, catalog, None, orjson.loads(shipped(RULES).read_bytes())))
    watcher = PolicyWatcher(ref, file_rules=file_rules, file_doc=ref.current.doc,
                            load_rules=redis_rules(redis, KEYS))
    yield redis, ref, watcher
    await watcher.aclose()
    await redis.aclose()


async def store(redis: Any, number: int, doc: dict[str, Any]) -> None:
    await redis.hset(KEYS.rules_version(number), mapping={"doc": orjson.dumps(doc)})


async def settled(watcher: PolicyWatcher) -> None:
    if watcher._task is not None:
        await asyncio.wait_for(asyncio.shield(watcher._task), 10)


async def test_an_activation_swaps_the_whole_policy_and_a_rollback_goes_back(setup: Any) -> None:
    redis, ref, watcher = setup
    first = ref.current
    await store(redis, 1, version("openai/gpt-4o"))
    await store(redis, 2, version("anthropic/claude-3.5-sonnet"))
    await watcher.on_control(Control("1", None))
    await settled(watcher)
    one = ref.current
    assert one is not first and one.number == 1
    assert one.rules.decide({"user_tier": "pro"}).model == "openai/gpt-4o"
    await watcher.on_control(Control("2", None))
    await settled(watcher)
    assert ref.current.number == 2 and watcher.state.rules_number == 2 and watcher.state.error is None
    await watcher.on_control(Control("1", None))  # rollback: activate the older number again
    await settled(watcher)
    assert ref.current.number == 1 and ref.current.rules.version == one.rules.version
    await watcher.on_control(Control(None, None))  # nothing active any more: the rules file
    await settled(watcher)
    assert ref.current.number is None and ref.current.rules.version == first.rules.version


async def test_a_version_that_fails_here_keeps_the_last_good_one_and_says_why(setup: Any) -> None:
    redis, ref, watcher = setup
    await store(redis, 1, version("openai/gpt-4o"))
    await watcher.on_control(Control("1", None))
    await settled(watcher)
    good = ref.current
    await store(redis, 2, version("openai/gpt-5-typo"))  # not in this worker's catalog
    await watcher.on_control(Control("2", None))
    await settled(watcher)
    assert ref.current is good
    assert watcher.state.rules_number == 1
    assert watcher.state.error is not None and "rules version 2 failed here" in watcher.state.error
    assert "openai/gpt-5-typo" in watcher.state.error
    await watcher.on_control(Control("2", None))  # the same bad version is not retried each poll
    assert watcher._task is None or watcher._task.done()
    await store(redis, 3, version("anthropic/claude-3.5-sonnet"))
    await watcher.on_control(Control("3", None))
    await settled(watcher)
    assert ref.current.number == 3


async def test_a_job_keeps_the_policy_it_started_with(setup: Any) -> None:
    redis, ref, watcher = setup
    held = ref.current  # what a running job read at its start
    await store(redis, 1, version("openai/gpt-4o"))
    await watcher.on_control(Control("1", None))
    await settled(watcher)
    assert held.rules.decide({"user_tier": "pro"}).model == "openai/gpt-4o-mini"  # unchanged for it
    assert ref.current.rules.decide({"user_tier": "pro"}).model == "openai/gpt-4o"
