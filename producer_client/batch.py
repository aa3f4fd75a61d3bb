"""Batches of jobs: job specs, JSONL input files, resumable output files, running counts, the run.

A batch run reads IN (one job per line), appends one result document per line to OUT as results
arrive, and can be stopped and run again: jobs whose result is already in OUT are skipped, the
rest are submitted again (harmless: enqueueing is idempotent per id, and results of jobs that
finished meanwhile are still in Redis). That needs stable ids, so a line without ``id`` gets one
derived from its line number and content.

Lines that are not valid jobs never reach Redis. Each gets a result document in OUT like the ones
the worker writes for invalid jobs (``status: "rejected"``, ``error.type: "invalid_job"``), with
``error.details = {"source": "routeq batch", "line": N}``, so OUT has one schema throughout.
These client-side rejections are checked again on every run: fix the line and re-run to send it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from producer_client.contract import ErrorInfo, Job, Result, Timing
from producer_client.errors import InvalidJob, RouteqError
from producer_client.money import nano_to_usd, usd_to_nano
from producer_client.specs import is_valid_id, parse_spec

if TYPE_CHECKING:
    from producer_client.client import Client

REJECT_SOURCE = "routeq batch"


# -- input files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    line: int
    job_id: str
    job: Job


@dataclass(frozen=True)
class Rejection:
    """An input line that is not a valid job, with the id its rejection record is filed under."""

    line: int
    job_id: str
    message: str

    def result(self) -> Result:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return Result(
            job_id=self.job_id,
            status="rejected",
            error=ErrorInfo(
                type="invalid_job",
                message=f"line {self.line}: {self.message}",
                details={"source": REJECT_SOURCE, "line": self.line},
            ),
            timing=Timing(started_at=now, finished_at=now),
        )


@dataclass(frozen=True)
class BatchInput:
    entries: tuple[Entry, ...]
    rejections: tuple[Rejection, ...]

    @property
    def batch_id(self) -> str:
        """Derived from the job ids, so a re-run of the same file waits on the same batch list."""
        digest = hashlib.sha256("\n".join(e.job_id for e in self.entries).encode()).hexdigest()
        return "batch-" + digest[:24]

    @property
    def total(self) -> int:
        return len(self.entries) + len(self.rejections)


def line_id(line: int, raw: bytes) -> str:
    """The id of a line without one: stable across runs as long as the line stays put and unchanged."""
    return f"line{line}-" + hashlib.sha256(b"%d\n" % line + raw.strip()).hexdigest()[:16]


def read_input(lines: Iterable[bytes]) -> BatchInput:
    """Parse JSONL job lines (blank lines skipped); invalid lines and repeated ids become rejections."""
    entries: list[Entry] = []
    rejections: list[Rejection] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        fallback = line_id(n, raw)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            rejections.append(Rejection(n, fallback, f"not valid JSON: {exc}"))
            continue
        if not isinstance(doc, dict):
            rejections.append(Rejection(n, fallback, f"expected a JSON object, got {type(doc).__name__}"))
            continue
        try:
            explicit, job = parse_spec(doc)
        except InvalidJob as exc:
            own = doc.get("id")
            job_id = own if is_valid_id(own) and own not in seen else fallback
            rejections.append(Rejection(n, job_id, str(exc)))
            continue
        job_id = explicit or fallback
        if job_id in seen:
            reused = f"id: {job_id!r} is already used on line {seen[job_id]}"
            rejections.append(Rejection(n, fallback, reused))
            continue
        seen[job_id] = n
        entries.append(Entry(n, job_id, job))
    return BatchInput(tuple(entries), tuple(rejections))


def read_input_file(path: Path) -> BatchInput:
    with path.open("rb") as f:
        return read_input(f)


# -- output files ------------------------------------------------------------------------------


def is_local_rejection(result: Result) -> bool:
    """True for the records ``read_input`` rejections produce (the line never reached Redis)."""
    details = result.error.details if result.error is not None else None
    return details is not None and details.get("source") == REJECT_SOURCE


@dataclass(frozen=True)
class Previous:
    """What an earlier run left in OUT: the last record per job id, and lines that could not be read."""

    results: dict[str, Result]
    unreadable: int = 0


def read_previous(path: Path) -> Previous:
    """Read OUT, first cutting off a torn last line (the run was killed mid-write)."""
    if not path.exists():
        return Previous({})
    with path.open("r+b") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            data = data[:keep]
    results: dict[str, Result] = {}
    unreadable = 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            res = Result.model_validate_json(raw)
        except ValidationError:
            unreadable += 1
            continue
        results[res.job_id] = res
    return Previous(results, unreadable)


class OutFile:
    """Append-only JSONL of result documents, flushed per line: an interrupt loses nothing written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[bytes] = path.open("ab")

    def write(self, result: Result) -> None:
        self._f.write(result.model_dump_json().encode() + b"\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> OutFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Plan:
    """What a run has left to do, given the input and what OUT already holds."""

    batch_id: str
    total: int
    todo: tuple[Entry, ...]
    new_rejections: tuple[Rejection, ...]
    recorded: tuple[Result, ...]  # OUT's records for this input that count as final


def plan_batch(batch: BatchInput, previous: Previous) -> Plan:
    have = previous.results
    todo, recorded = [], []
    for e in batch.entries:
        res = have.get(e.job_id)
        if res is None or is_local_rejection(res):
            todo.append(e)
        else:
            recorded.append(res)
    fresh = []
    for r in batch.rejections:
        old = have.get(r.job_id)
        if old is not None and is_local_rejection(old):
            recorded.append(old)
        else:
            fresh.append(r)
    return Plan(batch.batch_id, batch.total, tuple(todo), tuple(fresh), tuple(recorded))


# -- counts ------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Running counts behind the progress bar and the summary; fed one result at a time."""

    total: int
    statuses: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    cost_nano: int = 0
    run_ms: list[int] = field(default_factory=list)
    e2e_ms: list[int] = field(default_factory=list)
    resumed: int = 0  # records earlier runs left in OUT
    this_run: int = 0  # records written by this run, local rejections included
    collected: int = 0  # results from workers in this run: what the rate measures
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def for_plan(cls, plan: Plan) -> Tally:
        """A tally of the whole input, starting from the results earlier runs recorded."""
        tally = cls(plan.total)
        for res in plan.recorded:
            tally.add(res, resumed=True)
        return tally

    def add(self, result: Result, *, resumed: bool = False) -> None:
        self.statuses[result.status] += 1
        if resumed:
            self.resumed += 1
        else:
            self.this_run += 1
        if is_local_rejection(result):
            return
        if not resumed:
            self.collected += 1
        routing = result.routing
        self.rules[routing.rule if routing else "-"] += 1
        self.models[(routing.model_served or "-") if routing else "-"] += 1
        if result.usage is not None:
            self.cost_nano += usd_to_nano(result.usage.cost_usd)
        self.run_ms.append(result.timing.total_ms)
        e2e = enqueue_to_finish_ms(result.timing)
        if e2e is not None:
            self.e2e_ms.append(e2e)

    @property
    def done(self) -> int:
        return self.resumed + self.this_run

    @property
    def unsuccessful(self) -> int:
        """Failed or rejected, by a worker or as an invalid line."""
        return self.done - self.statuses["succeeded"]

    @property
    def cost_usd(self) -> str:
        return nano_to_usd(self.cost_nano)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started

    def rate(self, now: float | None = None) -> float:
        """Worker results per second in this run."""
        elapsed = self.elapsed(now)
        return self.collected / elapsed if elapsed > 0 else 0.0

    def eta_s(self, now: float | None = None) -> float | None:
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate > 0 else None


def enqueue_to_finish_ms(timing: Timing) -> int | None:
    if timing.enqueued_at is None:
        return None
    try:
        start = datetime.fromisoformat(timing.enqueued_at)
        end = datetime.fromisoformat(timing.finished_at)
    except ValueError:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def percentile(values: list[int], p: float) -> int | None:
    """Nearest-rank percentile (an observed value, no interpolation); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    unfinished: int
    interrupted: bool = False
    error: str | None = None


async def run_batch(
    client: Client,
    plan: Plan,
    out: OutFile,
    tally: Tally,
    *,
    queue: str = "batch",
    chunk: int = 500,
    timeout: float | None = None,
    stop: asyncio.Event | None = None,
) -> RunOutcome:
    """Submit the plan's jobs while collecting their results into OUT, until all are in, ``stop``
    is set, ``timeout`` seconds pass, or submitting fails (the error is returned, not raised)."""
    for rejection in plan.new_rejections:
        res = rejection.result()
        out.write(res)
        tally.add(res)
    ids = [e.job_id for e in plan.todo]
    collected = 0
    stop = stop or asyncio.Event()

    async def collect() -> None:
        # The stop flag is checked here too, not only by cancelling this task: Python 3.11's
        # asyncio.wait_for (inside redis-py's reads) can swallow a cancellation, and a collector
        # that missed it would go on writing results after Ctrl-C until the batch was done.
        nonlocal collected
        wait = math.inf if timeout is None else timeout
        results = client.as_completed(ids, batch_id=plan.batch_id, timeout=wait, queue=queue)
        try:
            async for res in results:
                if stop.is_set():
                    return
                out.write(res)
                tally.add(res)
                collected += 1
        finally:
            await results.aclose()

    submitter = asyncio.create_task(
        client.submit_many(
            ((e.job_id, e.job) for e in plan.todo),
            queue=queue, batch_id=plan.batch_id, chunk=chunk, on_full="wait",
        )
    )
    collector = asyncio.create_task(collect())
    stopper = asyncio.create_task(stop.wait())
    running: set[asyncio.Task[Any]] = {submitter, collector, stopper}
    error: str | None = None
    try:
        while collector in running:
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            running -= finished
            if stopper in finished:
                return RunOutcome(len(ids) - collected, interrupted=True)
            if submitter in finished and (exc := submitter.exception()) is not None:
                if not isinstance(exc, RouteqError):
                    raise exc
                error = f"submitting stopped: {exc}"
                break
        if collector.done() and (exc := collector.exception()) is not None:
            if not isinstance(exc, RouteqError):
                raise exc
            error = str(exc)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return RunOutcome(len(ids) - collected, error=error)
