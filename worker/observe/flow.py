"""Jobs in and out per minute, counted from the decision stream inside Redis.

Why the decision stream (``{prefix}decisions``, one entry per finished job, its id the finish
time in ms) and not the hourly rollups: a rate over an hour hides a fleet that stopped a minute
ago, and rollups have no queue dimension. The counting runs in a Lua script
(``decision_counts.lua``) so entries, which may hold prompts, never cross the wire, and each call
reads a bounded number of them: past ``CAP`` entries in the window, the rate is extrapolated from
the newest ``CAP`` (and marked ``estimated``): exact up to ~1,000 jobs a minute, estimated above.

"In" is the jobs that became ready during the window: those still waiting (queue zset scores in
the window) plus those already finished whose arrival (finish - total_ms - queue_ms) falls in it.
Jobs that arrived in the window and are still running are not counted: at most the slots in use.
Entries without a ``queue`` field (written before workers recorded it) count under ``""``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from producer_client.keys import Keys
from producer_client.lua import lua_script

WINDOW_MS = 60_000
#: Entries read per call. Reading a stream entry into Lua costs Redis ~6 us (measured: 1,000
#: entries of 16 fields, 6-7 ms), so a call blocks Redis for a few milliseconds at most.
CAP = 1_000
UNKNOWN_QUEUE = ""


@dataclass(frozen=True)
class Counts:
    """One script call: entries by (bucket start ms, queue, status), arrivals by queue."""

    scanned: int
    first_id: str
    last_id: str
    by_bucket: dict[tuple[int, str, str], int] = field(default_factory=dict)
    arrivals: dict[str, int] = field(default_factory=dict)


class DecisionCounter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._script = redis.register_script(lua_script("worker", "decision_counts.lua"))

    async def count(
        self, low: str, high: str = "+", *, descending: bool = False, cap: int = CAP,
        bucket_ms: int = 0, arrivals_since_ms: int | None = None,
    ) -> Counts:
        args = ["desc" if descending else "asc", low, high, cap, bucket_ms,
                "" if arrivals_since_ms is None else arrivals_since_ms]
        scanned, first, last, flat, aflat = await self._script(keys=[self.keys.decisions], args=args)
        by_bucket = {
            (int(_text(flat[i])), _text(flat[i + 1]), _text(flat[i + 2])): int(flat[i + 3])
            for i in range(0, len(flat), 4)
        }
        arrivals = {_text(aflat[i]): int(aflat[i + 1]) for i in range(0, len(aflat), 2)}
        return Counts(int(scanned), _text(first), _text(last), by_bucket, arrivals)


    async def oldest_id(self, low: str, high: str = "+") -> str | None:
        """The first entry id in the range (one entry read), or None."""
        entries = await self.redis.xrange(self.keys.decisions, min=low, max=high, count=1)
        return _text(entries[0][0]) if entries else None


@dataclass(frozen=True)
class Flow:
    """Per queue: jobs out (finished) and in (became ready) per minute, over the last minute."""

    out_per_min: dict[str, float]
    in_per_min: dict[str, float]
    by_status: dict[str, float]  # finished per minute, all queues
    estimated: bool  # more than ``CAP`` finished in the window: extrapolated from the newest

    def as_dict(self) -> dict[str, Any]:
        return {"out_per_min": self.out_per_min, "in_per_min": self.in_per_min,
                "by_status_per_min": self.by_status, "estimated": self.estimated}


async def last_minute(
    counter: DecisionCounter, waiting_arrivals: dict[str, int], now_ms: int, *, cap: int = CAP
) -> Flow:
    """The flow over the minute before ``now_ms``. ``waiting_arrivals``: per queue, jobs still
    waiting that became ready in the window (see :func:`waiting_since`)."""
    since = now_ms - WINDOW_MS
    counts = await counter.count(str(since), "+", descending=True, cap=cap, arrivals_since_ms=since)
    scale = 1.0
    if counts.scanned >= cap and counts.last_id:
        covered = now_ms - _id_ms(counts.last_id)
        scale = WINDOW_MS / max(1, covered)
    out: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for (_, queue, status), n in counts.by_bucket.items():
        out[queue] += n
        statuses[status] += n
    arrived = Counter(counts.arrivals)
    return Flow(
        out_per_min={q: round(n * scale, 1) for q, n in out.items()},
        in_per_min={q: round(arrived.get(q, 0) * scale + waiting_arrivals.get(q, 0), 1)
                    for q in {*arrived, *waiting_arrivals}},
        by_status={s: round(n * scale, 1) for s, n in statuses.items()},
        estimated=scale != 1.0,
    )


async def waiting_since(
    redis: Redis, keys: Keys, queues: Sequence[str], since_ms: int, now_ms: int
) -> dict[str, int]:
    """Per queue, waiting jobs whose ready time falls in ``[since_ms, now_ms]``."""
    async with redis.pipeline(transaction=False) as pipe:
        for q in queues:
            pipe.zcount(keys.queue(q), since_ms, now_ms)
        replies = await pipe.execute()
    return {q: int(n) for q, n in zip(queues, replies, strict=True) if int(n)}


def _id_ms(stream_id: str) -> int:
    return int(stream_id.split("-", 1)[0])


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
