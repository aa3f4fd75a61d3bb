"""The versioned rules store, on fakeredis and on a real redis-server (``script_redis``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from producer_client.keys import Keys
from tests.support.procs import REPO
from tests.support.waiting import eventually
from worker.rules import compile_rules
from worker.rules_store import (
    RulesStore,
    UnknownVersion,
    VersionConflict,
    worker_rules,
)

KEYS = Keys("t:")


def rules_doc(max_tokens: int = 1024) -> dict[str, Any]:
    """The shipped rules, made distinct by their default max_tokens."""
    doc: dict[str, Any] = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    doc["defaults"] = {"max_tokens": max_tokens}
    return doc


@pytest.fixture()
def store(script_redis: Redis) -> RulesStore:
    return RulesStore(script_redis, KEYS)


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key under the test prefix with its content, to prove that nothing changed."""
    out: dict[str, Any] = {}
    for key in sorted(await redis.keys("t:*")):
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            out[key.decode()] = await redis.hgetall(key)  # type: ignore[misc]
        elif kind == "stream":
            out[key.decode()] = await redis.xrange(key)
        else:
            out[key.decode()] = await redis.get(key)
    return out


async def test_push_stores_immutable_numbered_versions(store: RulesStore, script_redis: Redis) -> None:
    before = int(time.time() * 1000)
    first = await store.push(rules_doc(100), message="cheaper answers", by="alice")
    second = await store.push(rules_doc(200), by="bob")
    after = int(time.time() * 1000)

    assert (first.version, second.version) == (1, 2)
    assert not first.active and not second.active
    assert await store.active() is None  # pushing alone activates nothing
    one, two = await store.get(1), await store.get(2)
    assert one.doc == rules_doc(100) and two.doc == rules_doc(200)
    assert (one.message, one.by, two.message, two.by) == ("cheaper answers", "alice", "", "bob")
    assert before <= one.created_ms <= two.created_ms <= after
    # The stored hash is what a worker compiling the stored document will call its version.
    assert one.hash == first.hash == compile_rules(one.doc).version
    assert two.hash == compile_rules(two.doc).version != one.hash
    # Records owned by `routeq rules`: no TTL.
    for key in (KEYS.rules_version(1), KEYS.rules_next, KEYS.rules_audit):
        assert await script_redis.ttl(key) == -1

    stored_one = await script_redis.hgetall(KEYS.rules_version(1))  # type: ignore[misc]
    await store.activate(2, by="carol")
    await store.push(rules_doc(300), by="dave", activate=True)
    assert await script_redis.hgetall(KEYS.rules_version(1)) == stored_one  # type: ignore[misc]


async def test_the_hash_ignores_key_order_and_the_stored_doc_is_canonical(store: RulesStore) -> None:
    doc = rules_doc()
    reordered = dict(reversed(list(doc.items())))
    a = await store.push(doc, by="x")
    b = await store.push(reordered, by="x")
    assert a.hash == b.hash == compile_rules(doc).version


async def test_a_hand_reset_counter_never_overwrites_a_version(
    store: RulesStore, script_redis: Redis
) -> None:
    await store.push(rules_doc(100), by="x")
    await script_redis.delete(KEYS.rules_next)
    pushed = await store.push(rules_doc(200), by="x")
    assert pushed.version == 2
    assert (await store.get(1)).doc == rules_doc(100)


async def test_push_with_activate_switches_in_the_same_step(store: RulesStore) -> None:
    pushed = await store.push(rules_doc(), message="go", by="alice", activate=True, expect=0)
    assert pushed.active and await store.active() == pushed.version == 1
    activate, push = await store.audit()
    assert (push.event, push.version, push.previous, push.message) == ("push", 1, None, "go")
    assert (activate.event, activate.version, activate.previous) == ("activate", 1, None)
    assert activate.by == "alice"
    assert activate.hash == push.hash == pushed.hash


async def test_a_lost_expect_stores_nothing_at_all(store: RulesStore, script_redis: Redis) -> None:
    await store.push(rules_doc(100), by="x", activate=True, expect=0)
    before = await snapshot(script_redis)
    for expect, activate in [(0, False), (0, True), (7, True)]:
        with pytest.raises(VersionConflict) as lost:
            await store.push(rules_doc(200), by="y", activate=activate, expect=expect)
        assert (lost.value.expected, lost.value.actual) == (expect, 1)
    assert await snapshot(script_redis) == before  # not even a version number was used

    won = await store.push(rules_doc(200), by="y", activate=True, expect=1)
    assert won.version == 2 and await store.active() == 2


async def test_of_concurrent_pushes_expecting_the_same_version_exactly_one_wins(
    store: RulesStore, script_redis: Redis
) -> None:
    await store.push(rules_doc(1), by="setup", activate=True)
    n = 24
    outcomes = await asyncio.gather(
        *(store.push(rules_doc(10 + i), by=f"op{i}", activate=True, expect=1) for i in range(n)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, VersionConflict)]
    assert len(won) == 1 and len(lost) == n - 1, outcomes
    assert all(c.actual == 2 for c in lost)
    assert await store.active() == won[0].version == 2
    assert [v.number for v in await store.versions()] == [2, 1]
    assert int(await script_redis.get(KEYS.rules_next) or 0) == 2


async def test_of_concurrent_activations_expecting_the_same_version_exactly_one_wins(
    store: RulesStore,
) -> None:
    for i in range(1, 6):
        await store.push(rules_doc(i), by="setup")
    await store.activate(1, by="setup")
    outcomes = await asyncio.gather(
        *(store.activate(n, by="op", expect=1) for n in (2, 3, 4, 5) * 4), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1 and all(isinstance(o, VersionConflict) for o in outcomes if o not in won)
    assert await store.active() == won[0].version and won[0].previous == 1


async def test_activate_and_roll_back(store: RulesStore, script_redis: Redis) -> None:
    await store.push(rules_doc(100), by="x", activate=True)
    await store.push(rules_doc(200), by="x", activate=True)
    back = await store.activate(1, by="oncall", expect=2, message="v2 too slow")
    assert (back.version, back.previous) == (1, 2) and await store.active() == 1
    again = await store.activate(1, by="oncall")  # idempotent, still audited
    assert (again.version, again.previous) == (1, 1)
    latest, rollback = (await store.audit(2))
    assert (latest.event, latest.version, latest.previous) == ("activate", 1, 1)
    assert (rollback.by, rollback.message) == ("oncall", "v2 too slow")
    assert rollback.hash == (await store.get(1)).hash

    before = await snapshot(script_redis)
    with pytest.raises(UnknownVersion):
        await store.activate(9, by="x")
    with pytest.raises(VersionConflict) as lost:
        await store.activate(2, by="x", expect=2)
    assert lost.value.actual == 1
    assert await snapshot(script_redis) == before


async def test_the_audit_lists_every_push_and_activation_newest_first(store: RulesStore) -> None:
    start = int(time.time() * 1000)
    await store.push(rules_doc(100), message="first", by="alice")
    await store.push(rules_doc(200), message="second", by="bob", activate=True)
    await store.activate(1, by="carol", message="rollback")
    entries = await store.audit()
    assert [(e.event, e.version, e.by, e.previous, e.message) for e in entries] == [
        ("activate", 1, "carol", 2, "rollback"),
        ("activate", 2, "bob", None, "second"),
        ("push", 2, "bob", None, "second"),
        ("push", 1, "alice", None, "first"),
    ]
    assert all(start <= e.at_ms <= int(time.time() * 1000) for e in entries)
    assert [e.hash for e in entries] == [(await store.get(n)).hash for n in (1, 2, 2, 1)]
    assert len(await store.audit(limit=2)) == 2
    activation = await store.activation()
    assert activation is not None and (activation.version, activation.by) == (1, "carol")


async def test_activation_is_found_behind_later_pushes(store: RulesStore) -> None:
    assert await store.activation() is None
    await store.push(rules_doc(1), by="alice", activate=True)
    for i in range(250):  # more than one page of the stream
        await store.push(rules_doc(2 + i), by="bob")
    activation = await store.activation()
    assert activation is not None and (activation.version, activation.by) == (1, "alice")


async def test_every_activation_is_published(store: RulesStore, script_redis: Redis) -> None:
    pubsub = script_redis.pubsub()
    await pubsub.subscribe(KEYS.rules_changed)
    await eventually(lambda: pubsub.get_message(timeout=0.05), timeout=5, what="subscribe confirmation")
    heard: list[bytes] = []

    async def next_message() -> bytes | None:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        return message["data"] if message else None

    await store.push(rules_doc(100), by="x")  # no activation: nothing published
    await store.push(rules_doc(200), by="x", activate=True)
    heard.append(await eventually(next_message, timeout=5, what="publish of v2"))
    await store.activate(1, by="x")
    heard.append(await eventually(next_message, timeout=5, what="publish of v1"))
    await store.activate(1, by="x")
    heard.append(await eventually(next_message, timeout=5, what="re-publish of v1"))
    assert heard == [b"2", b"1", b"1"]
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_versions_are_listed_newest_first_without_documents(
    store: RulesStore, script_redis: Redis
) -> None:
    for i in range(3):
        await store.push(rules_doc(100 + i), message=f"m{i}", by="x")
    await script_redis.delete(KEYS.rules_version(2))  # deleted by hand: skipped
    versions = await store.versions()
    assert [(v.number, v.message) for v in versions] == [(3, "m2"), (1, "m0")]
    assert versions[0].hash == (await store.get(3)).hash
    with pytest.raises(UnknownVersion):
        await store.get(2)


async def test_worker_rules_reads_live_and_lost_heartbeats(script_redis: Redis) -> None:
    now_ms = int(time.time() * 1000)
    beats: dict[str, dict[str, Any]] = {
        "w-on": {"host": "h1", "beat_ms": now_ms, "rules_number": 2, "rules_version": "sha256:aaa",
                 "rules_since": now_ms / 1000 - 5, "rules_error": None},
        "w-file": {"host": "h2", "beat_ms": now_ms - 1, "rules_number": None, "rules_version": "sha256:bbb",
                   "rules_since": now_ms / 1000 - 9,
                   "rules_error": {"number": 3, "hash": "sha256:ccc", "error": "unknown model x/y"}},
    }
    for name, doc in beats.items():
        await script_redis.set(KEYS.worker(name), orjson.dumps(doc))
        await script_redis.zadd(KEYS.workers, {name: doc["beat_ms"]})
    await script_redis.zadd(KEYS.workers, {"w-gone": now_ms - 60_000})  # its key expired
    got = {w.name: w for w in await worker_rules(script_redis, KEYS)}
    assert [w.name for w in await worker_rules(script_redis, KEYS)] == ["w-on", "w-file", "w-gone"]
    assert (got["w-on"].state, got["w-on"].rules_number, got["w-on"].host) == ("live", 2, "h1")
    assert got["w-file"].rules_number is None and got["w-file"].rules_error["number"] == 3
    assert (got["w-gone"].state, got["w-gone"].beat_ms, got["w-gone"].host) == ("lost", now_ms - 60_000, None)
