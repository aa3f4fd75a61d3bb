"""Bad input never crashes a worker: fuzzed payloads written straight into the queue each get a
``rejected`` result naming what is wrong, and a bad rules file stops the worker at start-up with
the JSON path of every problem."""

from __future__ import annotations

import itertools
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producer_client.contract import Job, Result
from producer_client.errors import InvalidJob
from producer_client.jobs import parse_job
from producer_client.keys import Keys
from tests.support import emu
from tests.support.faults import enqueue_raw_sync
from tests.support.procs import Emulator, RedisServer, WorkerProcess, base_env
from worker.envelope import KEYS as ENVELOPE_KEYS
from worker.envelope import MAX_EPOCH_MS, Envelope, open_envelope

pytestmark = pytest.mark.integration

KEYS = Keys()
ROLES = {"system", "developer", "user", "assistant", "tool"}
JOB_FIELDS = set(Job.model_fields)
_ids = itertools.count()


@dataclass(frozen=True)
class Case:
    """Bytes to put in the queue, and what the rejection message must mention."""

    data: bytes
    needles: tuple[str, ...]
    why: str


@dataclass
class FuzzStack:
    redis: redis.Redis
    worker: WorkerProcess
    upstream: str  # the emulator's base URL


@pytest.fixture(scope="module")
def fuzz_stack(redis_server: RedisServer, emulator: Emulator) -> Iterator[FuzzStack]:
    """One worker for every example: a crash anywhere would show in every later example."""
    if not redis_server.ping():
        redis_server.start()
    r = redis_server.client()
    r.flushall()
    worker = WorkerProcess(redis_server.url, emulator.base_url, ROUTEQ_POLL_DELAY_S="0.05")
    yield FuzzStack(r, worker, emulator.base_url)
    worker.kill()


# -- strategies --------------------------------------------------------------------------------------

ODD = st.sampled_from(["x", "é", "\u0000", "😀", "\u202e", "\ufeff", "\U0010ffff", "ǅ", " "])
HUGE = st.builds(lambda c, n: c * n, ODD, st.integers(900_000, 1_100_000))  # ~1-4 MB of UTF-8
ODD_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)  # any Unicode but surrogates
NOT_INT = st.one_of(st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.lists(st.integers(), max_size=2))
NOT_STR = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.lists(st.text(max_size=3), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
NOT_ONE_ITEM_LIST = st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none(),
                              st.lists(st.integers(), max_size=4).filter(lambda v: len(v) != 1))
NOT_DICT = st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3), st.booleans())

# (path in the job document, values that break it) — the path is what the message must name.
BREAKS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("messages", st.one_of(NOT_DICT, st.just([]), st.dictionaries(ODD_TEXT, st.integers(), max_size=2))),
    ("messages.0.role", st.one_of(ODD_TEXT.filter(lambda s: s not in ROLES), HUGE, NOT_STR)),
    ("messages.0.content", st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                                     st.booleans(), st.lists(st.integers(), min_size=1, max_size=3))),
    ("messages.0.tool_calls", st.one_of(st.integers(), st.text(max_size=5),
                                        st.lists(st.integers(), min_size=1))),
    ("context.max_latency_ms", st.one_of(st.integers(max_value=0), NOT_INT)),
    ("context.needs_tools", st.one_of(st.integers(), st.text(max_size=5), st.none())),
    ("context.user_tier", NOT_STR),
    ("context.tags", st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))),
    ("params.temperature", st.one_of(st.floats(min_value=2.001, max_value=1e300), st.floats(max_value=-0.001,
                                     min_value=-1e300), st.text(max_size=5))),
    ("params.max_tokens", st.one_of(st.integers(max_value=0), st.text(max_size=4), st.floats(0.5, 9.5))),
    ("v", st.one_of(st.integers().filter(lambda v: v != 1), st.text(max_size=4), HUGE)),
    ("metadata", NOT_DICT),
]


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[last] = value


def _valid_doc() -> dict[str, Any]:
    return {"v": 1, "messages": [{"role": "user", "content": "hello"}],
            "context": {"user_tier": "pro", "task_type": "chat"}, "params": {}, "metadata": {"k": "v"}}


def _dumps(obj: Any) -> bytes:
    """JSON as any producer could write it (the stdlib keeps integers beyond 64 bits)."""
    return json.dumps(obj, ensure_ascii=False).encode()


def _envelope(doc: Any, **override: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"t": None, "f": "complete", "a": [doc], "k": {}, "et": int(time.time() * 1000)}
    env.update(override)
    return env


@st.composite
def broken_fields(draw: st.DrawFn) -> Case:
    """A job document with 1-3 fields of the wrong type or value, one per top-level field."""
    chosen = draw(st.lists(st.sampled_from(BREAKS), min_size=1, max_size=3,
                           unique_by=lambda b: b[0].split(".")[0]))
    doc = _valid_doc()
    for path, values in chosen:
        _set(doc, path, draw(values))
    return Case(_dumps(_envelope(doc)), tuple(p for p, _ in chosen), "wrong field values")


@st.composite
def odd_fields(draw: st.DrawFn) -> Case:
    """Unknown fields with odd names (NULs, RTL marks, emoji …), or a required field missing."""
    doc = _valid_doc()
    if draw(st.booleans()):
        del doc["messages"]
        return Case(_dumps(_envelope(doc)), ("messages: Field required",), "missing field")
    names = st.one_of(ODD_TEXT, st.builds(lambda c: c * 300, ODD))
    name = draw(names.filter(lambda s: s and s not in JOB_FIELDS))
    doc[name] = draw(st.one_of(st.integers(), ODD_TEXT, st.none()))
    return Case(_dumps(_envelope(doc)), (f"{name}: unknown field",), "unknown field")


@st.composite
def broken_envelopes(draw: st.DrawFn) -> Case:
    doc = _valid_doc()
    variants: list[tuple[Any, str]] = [
        (draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), ODD_TEXT, st.none())),
         "job envelope must be a JSON object"),
        ({k: v for k, v in _envelope(doc).items() if k != "f"}, "'f' must be 'complete'"),
        (_envelope(doc, f=draw(NOT_STR)), "'f' must be 'complete'"),
        (_envelope(doc, f=draw(ODD_TEXT.filter(lambda s: s != "complete"))), "'f' must be 'complete'"),
        (_envelope(doc, a=draw(NOT_ONE_ITEM_LIST | st.just([doc, doc]) | st.just([1]))),
         "'a' must be a list holding exactly one job document"),
        (_envelope(doc, k=draw(st.one_of(st.integers(), st.text(max_size=3),
                                         st.lists(st.integers(), max_size=2)))),
         "'k' must be an object"),
        (_envelope(doc, k=draw(st.dictionaries(st.sampled_from(["payload", "ctx", "x", "batch"]),
                                               st.integers(), min_size=1))),
         "'k' may only hold batch_id"),
        (_envelope(doc, et=draw(st.one_of(st.text(max_size=5), st.booleans(), st.none(),
                                          st.floats(0, 1e12), st.integers(max_value=-1),
                                          st.integers(min_value=MAX_EPOCH_MS + 1)))),
         "'et' must be the enqueue time"),
        (_envelope(doc, t=draw(st.one_of(st.text(max_size=5), st.booleans(), st.floats(0.1, 1e6),
                                         st.lists(st.integers(), max_size=2), st.integers(max_value=-1)))),
         "'t' must be null or a try count"),
        ({**_envelope(doc), draw(ODD_TEXT.filter(lambda s: s not in ENVELOPE_KEYS)): draw(st.integers())},
         "unknown key"),
    ]
    env, needle = variants[draw(st.integers(0, len(variants) - 1))]
    return Case(_dumps(env), (needle,), "broken envelope")


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


@st.composite
def not_json(draw: st.DrawFn) -> Case:
    """Random bytes, pickles, JSON with lone surrogates or invalid UTF-8 inside a string."""
    kind = draw(st.sampled_from(["bytes", "pickle", "surrogate", "utf8"]))
    if kind == "bytes":
        data = draw(st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)))
    elif kind == "pickle":
        data = pickle.dumps(_envelope(_valid_doc()), protocol=draw(st.integers(0, pickle.HIGHEST_PROTOCOL)))
    elif kind == "surrogate":
        cp = draw(st.integers(0xD800, 0xDFFF))
        data = orjson.dumps(_envelope(_valid_doc())).replace(b'"hello"', b'"he\\u%04xllo"' % cp)
    else:
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]))
        data = orjson.dumps(_envelope(_valid_doc())).replace(b"hello", b"he" + bad + b"llo")
    return Case(data, ("not JSON",), f"not JSON ({kind})")


def _explicit(path: str, value: Any) -> Case:
    doc = _valid_doc()
    _set(doc, path, value)
    return Case(_dumps(_envelope(doc)), (path,), f"explicit {path}")


CASES = st.one_of(broken_fields(), odd_fields(), broken_envelopes(), not_json())


# -- tests ------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(case=CASES)
@example(case=_explicit("messages.0.role", "r" * 1_000_000))  # ~1 MB string
@example(case=_explicit("messages.0.role", "us\u0000er"))  # a NUL
@example(case=_explicit("v", "\u202e\U0010ffff" * 200_000))  # ~1.6 MB of odd Unicode
@example(case=Case(b"", ("not JSON",), "empty bytes"))
@example(case=Case(_dumps(_envelope(_valid_doc(), t="x")), ("'t' must be",), "a text try count"))
@example(case=Case(_dumps(_envelope(_valid_doc(), t=1.5)), ("'t' must be",), "a fractional try count"))
@example(case=Case(_dumps(_envelope(_valid_doc(), et=10**17)), ("'et' must be",), "year out of range"))
@example(case=Case(_dumps(_envelope(_valid_doc(), et=-(10**15))), ("'et' must be",), "before 1970"))
@example(case=Case(_dumps(_envelope(_valid_doc(), k={"payload": 1})), ("'k' may only",), "kwarg clash"))
@example(case=Case(pickle.dumps(_envelope(_valid_doc())), ("not JSON",), "a pickle"))
@example(case=Case(orjson.dumps(_envelope(_valid_doc())).replace(b'"hello"', b'"\\ud800"'), ("not JSON",),
                   "a lone surrogate"))
def test_fuzzed_payloads_get_a_precise_rejection_and_the_worker_survives(
    fuzz_stack: FuzzStack, case: Case
) -> None:
    job_id = f"fuzz-{next(_ids)}"
    _assert_invalid_locally(case)
    calls_before = emu.stats(fuzz_stack.upstream)["requests_total"]
    enqueue_raw_sync(fuzz_stack.redis, job_id, case.data)
    popped = fuzz_stack.redis.blpop([KEYS.done(job_id)], timeout=15)
    assert popped is not None, f"no result for {case.why}; worker output:\n{fuzz_stack.worker.output[-3000:]}"
    raw = cast(bytes | None, fuzz_stack.redis.get(KEYS.result(job_id)))
    assert raw is not None
    res = Result.model_validate_json(raw)
    assert res.job_id == job_id and res.status == "rejected", res
    assert res.error is not None and res.error.type == "invalid_job" and not res.error.retryable
    for needle in case.needles:
        assert needle in res.error.message, (case.why, needle, res.error.message[:500])
    # The same step that wrote the result took the job off the queue: not retried, not stuck.
    assert fuzz_stack.redis.zscore(KEYS.queue(), job_id) is None
    assert fuzz_stack.redis.exists(KEYS.job(job_id), KEYS.tries(job_id)) == 0
    assert emu.stats(fuzz_stack.upstream)["requests_total"] == calls_before  # nothing sent upstream
    assert fuzz_stack.worker.proc.poll() is None


def test_worker_still_serves_after_the_fuzz_and_a_huge_valid_prompt_is_refused(fuzz_stack: FuzzStack) -> None:
    r = fuzz_stack.redis
    ok = _run(r, "after-fuzz", _valid_doc())
    assert ok.status == "succeeded" and ok.metadata == {"k": "v"}
    huge = _valid_doc()
    huge["messages"][0]["content"] = "word " * 250_000  # ~1.25 MB: more tokens than any chain model holds
    refused = _run(r, "huge-valid", huge)
    assert refused.status == "rejected" and refused.error is not None
    assert refused.error.type == "no_eligible_model" and "context" in refused.error.message
    assert fuzz_stack.worker.proc.poll() is None
    assert "Traceback" not in fuzz_stack.worker.output


def test_bad_rules_file_stops_the_worker_at_start_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(orjson.dumps({
        "version": 1, "timezone": "Mars/Olympus",
        "rules": [
            {"name": "a", "priority": "high", "when": {"user_tier": {"like": "x"}}, "model": "openai/gpt-4o"},
            {"name": "b", "priority": 2, "when": {}, "model": "openai/gpt-4o-mini", "fallbacks": "nope",
             "max_tokens": -5},
        ],
        "budgets": [{"name": "c", "scope": "user", "limit_usd": "-1", "window": "fortnight"}],
    }).decode())
    t0 = time.monotonic()
    # Redis is unreachable on purpose: the rules must be refused before any connection is tried.
    proc = subprocess.run([sys.executable, "-m", "worker"], capture_output=True, text=True, timeout=30,
                          env=base_env(ROUTEQ_RULES=str(bad), REDIS_URL="redis://127.0.0.1:1/0"))
    took = time.monotonic() - t0
    assert proc.returncode == 2
    assert took < 10
    for path in ("$.timezone", "$.rules[0].priority", "$.rules[0].when.user_tier.like",
                 "$.rules[1].fallbacks", "$.rules[1].max_tokens", "$.budgets[0].limit_usd",
                 "$.budgets[0].window"):
        assert f"{path}: " in proc.stderr, (path, proc.stderr)
    missing = tmp_path / "missing.json"
    gone = subprocess.run([sys.executable, "-m", "worker"], capture_output=True, text=True, timeout=30,
                          env=base_env(ROUTEQ_RULES=str(missing), REDIS_URL="redis://127.0.0.1:1/0"))
    assert gone.returncode != 0 and str(missing) in gone.stderr and "Traceback" not in gone.stderr


def _assert_invalid_locally(case: Case) -> None:
    """Sanity: the case really is invalid by the contract (else the test itself is wrong)."""
    try:
        env = orjson.loads(case.data)
    except orjson.JSONDecodeError:
        return
    a = env.get("a") if isinstance(env, dict) else None
    doc = a[0] if isinstance(a, list) and a else None
    envelope_ok = isinstance(open_envelope(case.data), Envelope)
    if envelope_ok:
        with pytest.raises(InvalidJob):
            parse_job(doc if isinstance(doc, dict) else {"payload": doc})


def _run(r: redis.Redis, prefix: str, doc: dict[str, Any]) -> Result:
    job_id = f"{prefix}-{next(_ids)}"
    enqueue_raw_sync(r, job_id, _dumps(_envelope(doc)))
    assert r.blpop([KEYS.done(job_id)], timeout=20) is not None
    raw = cast(bytes | None, r.get(KEYS.result(job_id)))
    assert raw is not None
    return Result.model_validate_json(raw)


