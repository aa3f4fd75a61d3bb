"""The job envelope is checked whole: any bytes give an Envelope or a BadEnvelope, never an error."""

from __future__ import annotations

import pickle
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer_client.contract import Job
from producer_client.wire import envelope
from worker.envelope import MAX_EPOCH_MS, BadEnvelope, Envelope, open_envelope

GOOD: dict[str, Any] = {"t": None, "f": "complete", "a": [{"messages": [{"role": "user", "content": "hi"}]}],
                        "k": {}, "et": 1_700_000_000_000}


def with_(**changes: Any) -> bytes:
    doc = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not _DROP})


_DROP = object()


def test_what_the_producer_writes_opens() -> None:
    job = Job.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    opened = open_envelope(envelope(job, enqueue_ms=5, batch_id="b-1"))
    assert isinstance(opened, Envelope)
    assert (opened.batch_id, opened.enqueued_ms, opened.job["messages"][0]["content"]) == ("b-1", 5, "hi")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (None, "no job payload at"),
        (b"\x80\x04not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (with_(t="x"), "'t' must be null or a try count"),
        (with_(t=[1]), "'t' must be null or a try count"),
        (with_(t=1.5), "'t' must be null or a try count"),
        (with_(t=True), "'t' must be null or a try count"),
        (with_(t=-1), "'t' must be null or a try count"),
        (with_(et=100_000_000_000_000_000), "'et' must be the enqueue time"),
        (with_(et=-1_000_000_000_000_000), "'et' must be the enqueue time"),
        (with_(et="now"), "'et' must be the enqueue time"),
        (with_(et=_DROP), "'et' must be the enqueue time"),
        (with_(f="os.system"), "'f' must be 'complete'"),
        (with_(a=[]), "exactly one job document"),
        (with_(a=[1]), "exactly one job document"),
        (with_(a=[{}, {}]), "exactly one job document"),
        (with_(k={"payload": 1}), "'k' may only hold batch_id"),
        (with_(k={"ctx": 1}), "'k' may only hold batch_id"),
        (with_(k=[]), "'k' must be an object"),
        (with_(k={"batch_id": "no spaces allowed"}), "'k.batch_id' is not a valid id"),
        (with_(extra=1), "unknown key 'extra'"),
    ],
)
def test_each_bad_envelope_says_what_is_wrong(raw: bytes | None, says: str) -> None:
    opened = open_envelope(raw)
    assert isinstance(opened, BadEnvelope)
    assert says in opened.reason


def test_a_big_try_count_is_ignored_the_worker_counts_tries_itself() -> None:
    assert isinstance(open_envelope(with_(t=1_000_000_000)), Envelope)
    assert isinstance(open_envelope(with_(t=5)), Envelope)


def test_a_bad_envelope_keeps_what_is_usable_for_its_result() -> None:
    opened = open_envelope(with_(t="x", k={"batch_id": "b-7"}, et=123))
    assert isinstance(opened, BadEnvelope)
    assert (opened.batch_id, opened.enqueued_ms) == ("b-7", 123)
    assert open_envelope(with_(et=MAX_EPOCH_MS + 1)).enqueued_ms is None


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_a_pickle_is_refused_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    opened = open_envelope(pickle.dumps(Boom()))
    assert isinstance(opened, BadEnvelope) and "pickles are refused" in opened.reason
    assert "pwned" not in capsys.readouterr().out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@given(st.binary(max_size=200))
def test_any_bytes_open_or_are_refused(data: bytes) -> None:
    assert isinstance(open_envelope(data), Envelope | BadEnvelope)


@given(st.dictionaries(st.sampled_from(["t", "f", "a", "k", "et", "x"]), json_values, max_size=6))
def test_any_envelope_shape_opens_only_when_every_field_is_right(doc: dict[str, Any]) -> None:
    opened = open_envelope(orjson.dumps(doc))
    if isinstance(opened, Envelope):
        assert doc["f"] == "complete" and isinstance(doc["a"][0], dict) and type(doc["et"]) is int
        assert set(doc) <= {"t", "f", "a", "k", "et"} and set(doc.get("k", {})) <= {"batch_id"}
