"""Batch files without Redis: reading IN, stable ids, reading OUT back, planning a resume, counting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from producer_client.batch import (
    OutFile,
    Previous,
    Rejection,
    Tally,
    enqueue_to_finish_ms,
    is_local_rejection,
    line_id,
    percentile,
    plan_batch,
    read_input,
    read_previous,
)
from producer_client.contract import Result, Routing, Timing, Usage

GOOD = b'{"prompt": "hello", "context": {"task_type": "chat"}}'


def lines(*docs: bytes) -> list[bytes]:
    return [d + b"\n" for d in docs]


def result(job_id: str, status: str = "succeeded", *, cost: str = "0.000000001", model: str = "m/a",
           rule: str = "default", total_ms: int = 10, queued: str | None = "2026-01-01T00:00:00.000Z",
           finished: str = "2026-01-01T00:00:00.250Z") -> Result:
    return Result(
        job_id=job_id, status=status,  # type: ignore[arg-type]
        routing=Routing(rule=rule, rules_version="t", model=model, chain=[model], max_tokens=8,
                        model_served=model if status == "succeeded" else None),
        usage=Usage(cost_usd=cost),
        timing=Timing(enqueued_at=queued, started_at=finished, finished_at=finished, total_ms=total_ms),
    )


def test_reads_valid_lines_in_order_and_skips_blank_ones() -> None:
    batch = read_input(lines(b'{"id": "a", "prompt": "x"}', b"   ", GOOD,
                             b'{"messages": [{"role": "user", "content": "m"}], "metadata": {"k": 1}}'))
    assert [(e.line, e.job_id) for e in batch.entries][:1] == [(1, "a")]
    assert [e.line for e in batch.entries] == [1, 3, 4]
    assert batch.entries[2].job.metadata == {"k": 1}
    assert batch.rejections == () and batch.total == 3


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b'["a list"]', "expected a JSON object, got list"),
        (b'{"prompt": "x", "contxt": {}}', "contxt: unknown field"),
        (b'{"context": {}}', "messages: give messages or a prompt"),
        (b'{"prompt": "x", "messages": []}', "not both"),
        (b'{"prompt": 7}', "prompt: expected a string, got int"),
        (b'{"messages": "hi"}', "messages: expected a list of messages, got str"),
        (b'{"prompt": "x", "context": {"max_latency_ms": 0}}', "context.max_latency_ms:"),
        (b'{"prompt": "x", "params": {"temperature": 9}}', "params.temperature:"),
        (b'{"id": "no spaces", "prompt": "x"}', "id: 'no spaces' is not a valid id"),
    ],
)
def test_invalid_lines_are_rejected_with_line_and_reason(raw: bytes, needle: str) -> None:
    batch = read_input(lines(GOOD, raw, GOOD.replace(b"hello", b"bye")))
    assert [e.line for e in batch.entries] == [1, 3]
    (rejection,) = batch.rejections
    assert rejection.line == 2 and needle in rejection.message
    record = rejection.result()
    assert record.status == "rejected" and record.error is not None
    assert record.error.type == "invalid_job" and record.error.message.startswith("line 2: ")
    assert is_local_rejection(record)


def test_a_repeated_id_is_rejected_on_its_second_line() -> None:
    batch = read_input(lines(b'{"id": "a", "prompt": "x"}', b'{"id": "a", "prompt": "y"}'))
    assert [e.job_id for e in batch.entries] == ["a"]
    (rejection,) = batch.rejections
    assert "'a' is already used on line 1" in rejection.message
    assert rejection.job_id != "a"  # its record must not shadow the first line's result


def test_ids_without_an_id_field_are_stable_and_depend_on_line_and_content() -> None:
    first = read_input(lines(GOOD, GOOD))
    again = read_input(lines(GOOD, GOOD))
    assert [e.job_id for e in first.entries] == [e.job_id for e in again.entries]
    assert first.entries[0].job_id != first.entries[1].job_id  # same content, other line
    edited = read_input(lines(GOOD.replace(b"hello", b"hullo"), GOOD))
    assert edited.entries[0].job_id != first.entries[0].job_id
    assert edited.entries[1].job_id == first.entries[1].job_id
    assert line_id(1, GOOD + b"\r\n") == line_id(1, GOOD)
    assert first.batch_id == again.batch_id != edited.batch_id


def test_out_file_round_trip_and_a_torn_last_line_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with OutFile(out) as f:
        f.write(result("a"))
        f.write(result("b", "failed"))
    with out.open("ab") as raw:
        raw.write(b'{"v": 1, "job_id": "c", "sta')  # killed mid-write
    previous = read_previous(out)
    assert sorted(previous.results) == ["a", "b"] and previous.unreadable == 0
    assert out.read_bytes().endswith(b"\n")
    with OutFile(out) as f:
        f.write(result("c"))
    assert [orjson.loads(x)["job_id"] for x in out.read_bytes().splitlines()] == ["a", "b", "c"]


def test_unreadable_out_lines_are_counted_not_trusted(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"hello": 1}\n' + result("a").model_dump_json().encode() + b"\n")
    previous = read_previous(out)
    assert list(previous.results) == ["a"] and previous.unreadable == 1
    assert read_previous(tmp_path / "missing.jsonl") == Previous({})


def test_plan_skips_recorded_jobs_and_rechecks_local_rejections() -> None:
    batch = read_input(lines(b'{"id": "a", "prompt": "x"}', b'{"id": "b", "prompt": "x"}',
                             b'{"id": "c", "prompt": "x"}', b'{"id": "d", "prompt": 1}'))
    (bad,) = batch.rejections
    previous = Previous({
        "a": result("a"),
        "b": result("b", "failed"),  # a worker's verdict is final: not re-run
        "c": Rejection(3, "c", "prompt: expected a string").result(),  # the line is valid now
        bad.job_id: bad.result(),  # still invalid, already recorded
        "other": result("other"),  # not in this input
    })
    plan = plan_batch(batch, previous)
    assert [e.job_id for e in plan.todo] == ["c"]
    assert plan.new_rejections == ()
    assert sorted(r.job_id for r in plan.recorded) == ["a", "b", "d"]
    assert plan.total == 4 and plan.batch_id == batch.batch_id


def test_tally_counts_cost_exactly_and_latencies() -> None:
    batch = read_input(lines(GOOD, GOOD, GOOD, b"{}"))
    plan = plan_batch(batch, Previous({batch.entries[0].job_id: result(batch.entries[0].job_id, cost="0.1")}))
    tally = Tally.for_plan(plan)
    tally.add(result("x", cost="0.2", model="m/b", total_ms=30))
    tally.add(result("y", "failed", cost="0.000000007", rule="r2", total_ms=50, queued=None))
    tally.add(plan.new_rejections[0].result())
    assert tally.cost_usd == "0.300000007"  # floats would give 0.30000000700000004
    assert (tally.done, tally.resumed, tally.this_run, tally.collected, tally.unsuccessful) == (4, 1, 3, 2, 2)
    assert tally.statuses == {"succeeded": 2, "failed": 1, "rejected": 1}
    assert tally.rules == {"default": 2, "r2": 1}  # the local rejection has no routing
    assert tally.models == {"m/a": 1, "m/b": 1, "-": 1}
    assert sorted(tally.run_ms) == [10, 30, 50]
    assert tally.e2e_ms == [250, 250]
    assert tally.eta_s() == 0


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95
    assert percentile([7], 95) == 7 and percentile([], 50) is None
    assert percentile([5, 1, 3], 50) == 3


def test_enqueue_to_finish_needs_both_stamps() -> None:
    t = Timing(enqueued_at="2026-01-01T00:00:01.000Z", started_at="x", finished_at="2026-01-01T00:00:02.500Z")
    assert enqueue_to_finish_ms(t) == 1500
    assert enqueue_to_finish_ms(t.model_copy(update={"enqueued_at": None})) is None
    assert enqueue_to_finish_ms(t.model_copy(update={"finished_at": "garbage"})) is None
