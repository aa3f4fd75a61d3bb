"""Reading the hourly rollups back: a time range, summed by any subset of the dimensions.

The finish script adds every job into the hash of its UTC hour (``worker/rollup_format.py``), so
a report is a sum over hours, never a scan of jobs: LiteLLM's spend log stopped answering at about
700K rows and had to grow daily aggregates; these are aggregates from the start.

Reading is one pipelined round trip per :attr:`RollupReader.hours_per_trip` hashes of HGETALL;
the next batch is requested before this one is summed, so Redis and Python work at the same time,
and memory holds one batch. The cost is linear in the number of hash fields read (hashes x
dimension combinations x metrics): about 0.8 us per field on a small shared 2-core machine,
within ~10 % of HGETALL alone with the replies thrown away (``bench/sections/report.py`` measures
both), so reading, not summing, is what a report costs. Hence the day tier: whole days are read
from one hash a day instead of 24 (see :class:`RollupReader`). Group by ``day`` (UTC) as well as
by the rollup dimensions.

Counts and money are Python ints (exact); the feedback sums ``qs``/``qq`` are floats, as Redis
keeps them (HINCRBYFLOAT).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import orjson

from producer_client.keys import Keys
from worker.analytics.stats import Mean, mean_from_sums
from worker.rollup_format import DIMENSIONS, LATENCY_BOUNDS_MS, parse_field, percentile_ms

if TYPE_CHECKING:  # the caller brings the client; `routeq report` starts faster without the import
    from redis.asyncio import Redis

DAY: Final = "day"
#: What a report can group by: the rollup dimensions, then the UTC day.
GROUPABLE: Final = (*DIMENSIONS, DAY)
_FLOAT_METRICS: Final = frozenset({"qs", "qq"})
_BUCKETS: Final = len(LATENCY_BOUNDS_MS) + 1
_NUMERAL: Final = b"0123456789+-.eE,"

Group = tuple[str, ...]
_consume: Final[Callable[[Iterable[Any]], None]] = deque[Any](maxlen=0).extend


def _frozen(values: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True)
class Metrics:
    """The sums of one group over the window (see ``rollup_format`` for what each counts)."""

    n: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)
    errors: Mapping[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    cost_nano: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    histogram: tuple[int, ...] = (0,) * _BUCKETS
    qn: int = 0
    qs: float = 0.0
    qq: float = 0.0
    labels: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int | float]) -> Metrics:
        """From ``{metric: sum}`` as the rollup fields name them (``n``, ``s:succeeded`` ...)."""
        def prefixed(prefix: str) -> Mapping[str, int]:
            return _frozen({m[len(prefix):]: int(v) for m, v in counts.items() if m.startswith(prefix) and v})

        return cls(
            n=int(counts.get("n", 0)),
            statuses=prefixed("s:"),
            errors=prefixed("e:"),
            fallbacks=int(counts.get("fb", 0)),
            cost_nano=int(counts.get("cost", 0)),
            prompt_tokens=int(counts.get("pt", 0)),
            completion_tokens=int(counts.get("ct", 0)),
            histogram=tuple(int(counts.get(f"h:{i}", 0)) for i in range(_BUCKETS)),
            qn=int(counts.get("qn", 0)),
            qs=float(counts.get("qs", 0.0)),
            qq=float(counts.get("qq", 0.0)),
            labels=prefixed("l:"),
        )

    def __add__(self, other: Metrics) -> Metrics:
        def add(a: Mapping[str, int], b: Mapping[str, int]) -> Mapping[str, int]:
            # sorted: a set's order changes with each process's string hashing, and so would the JSON
            return _frozen({k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})})

        return Metrics(
            n=self.n + other.n,
            statuses=add(self.statuses, other.statuses),
            errors=add(self.errors, other.errors),
            fallbacks=self.fallbacks + other.fallbacks,
            cost_nano=self.cost_nano + other.cost_nano,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            histogram=tuple(a + b for a, b in zip(self.histogram, other.histogram, strict=True)),
            qn=self.qn + other.qn,
            qs=self.qs + other.qs,
            qq=self.qq + other.qq,
            labels=add(self.labels, other.labels),
        )

    @property
    def succeeded(self) -> int:
        return self.statuses.get("succeeded", 0)

    @property
    def quality(self) -> Mean:
        return mean_from_sums(self.qn, self.qs, self.qq)

    def latency_ms(self, q: float) -> int | None:
        """The upper bound of the histogram bucket holding the ``q`` quantile (0 < q < 1)."""
        return percentile_ms(self.histogram, q)

    def cost_per_job_nano(self) -> int | None:
        """Mean cost per job in nano-USD, rounded half up; None without jobs."""
        return None if self.n == 0 else (2 * self.cost_nano + self.n) // (2 * self.n)


@dataclass(frozen=True)
class Rollup:
    """Sums per group over ``[since, until)``; ``hours`` is how many hours the window spans."""

    by: tuple[str, ...]
    since: datetime
    until: datetime
    hours: int
    groups: Mapping[Group, Metrics]

    def total(self) -> Metrics:
        out = Metrics()
        for metrics in self.groups.values():
            out = out + metrics
        return out


def check_group_by(by: Iterable[str]) -> tuple[str, ...]:
    """The group-by names, in order and without repeats; ValueError naming an unknown one."""
    out: list[str] = []
    for name in by:
        if name not in GROUPABLE:
            raise ValueError(f"cannot group by {name!r}: choose from {', '.join(GROUPABLE)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def hours_in(since: datetime, until: datetime) -> list[str]:
    """Every rollup hour (``YYYYMMDDHH``, UTC) that starts in ``[since, until)``, since rounded down."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    out = []
    while hour < end:
        out.append(hour.strftime("%Y%m%d%H"))
        hour += timedelta(hours=1)
    return out


class Aggregator:
    """Sums rollup hashes, hour by hour, into groups of the chosen dimensions (pure).

    The per-field work runs in C: each hour's values are parsed in one call (:func:`_numbers`) and
    appended to a list per field name (``map`` over the hash, no Python loop per field), and
    :meth:`fold` later parses each distinct name once and sums its list with ``sum``. The same
    names recur every hour, so this is several times faster than parsing and adding field by field.
    """

    def __init__(self, by: Sequence[str], *, hourly: bool = False) -> None:
        """``hourly``: keep each hour apart (see :meth:`by_hour`) instead of summing across them."""
        self.by = check_group_by(by)
        self._dims = tuple(DIMENSIONS.index(name) for name in self.by if name != DAY)
        self._by_day = DAY in self.by
        self._period = 10 if hourly else 8 if self._by_day else 0  # how much of the hour keys a sum
        self._slots: dict[Any, tuple[Group, str] | None] = {}  # field name -> (group, metric)
        self._pending: dict[str, defaultdict[Any, list[Any]]] = {}
        self._sums: dict[tuple[str, Group], dict[str, int | float]] = {}

    def add_hour(self, hour: str, fields: Mapping[Any, Any] | Sequence[Any]) -> None:
        """Add one hourly hash: HGETALL's mapping or its flat ``[field, value, ...]`` list (bytes or
        str). Fields of another shape are ignored."""
        lists = self._pending.setdefault(hour[:self._period], defaultdict(list))
        names, values = (fields.keys(), fields.values()) if isinstance(fields, Mapping) else (
            fields[0::2], fields[1::2])
        _consume(map(list.append, map(lists.__getitem__, names), _numbers(values, len(names))))

    def fold(self) -> None:
        """Sum what :meth:`add_hour` collected (call it every few hundred hours to bound memory)."""
        for period, lists in self._pending.items():
            for name, values in lists.items():
                slot = self._slot(name)
                if slot is None:
                    continue
                group, metric = slot
                row = self._sums.setdefault((period, group), {})
                total = _column_sum(values, as_float=metric in _FLOAT_METRICS)
                row[metric] = row.get(metric, 0) + total
        self._pending.clear()

    def _slot(self, name: Any) -> tuple[Group, str] | None:
        if name in self._slots:
            return self._slots[name]
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        parsed = parse_field(text)
        slot = None
        if parsed is not None:
            values = parsed[0].values()
            slot = tuple(values[i] for i in self._dims), parsed[1]
        self._slots[name] = slot
        return slot

    def groups(self) -> dict[Group, Metrics]:
        """Sums per group; with ``day`` in ``by`` its value is the UTC date, ``2026-11-30``."""
        counts: dict[Group, dict[str, int | float]] = {}
        day_at = self.by.index(DAY) if self._by_day else -1
        for (period, group), sums in self._folded().items():
            shown = f"{period[:4]}-{period[4:6]}-{period[6:8]}"
            key = (*group[:day_at], shown, *group[day_at:]) if day_at >= 0 else group
            row = counts.setdefault(key, {})
            for metric, value in sums.items():
                row[metric] = row.get(metric, 0) + value
        return {key: Metrics.from_counts(row) for key, row in sorted(counts.items())}

    def by_hour(self) -> dict[tuple[str, Group], Metrics]:
        """Sums per (hour ``YYYYMMDDHH``, group) of an ``hourly`` aggregator (``day`` not in ``by``)."""
        return {key: Metrics.from_counts(row) for key, row in sorted(self._folded().items())}

    def _folded(self) -> dict[tuple[str, Group], dict[str, int | float]]:
        self.fold()
        return self._sums


def _numbers(values: Iterable[Any], count: int) -> Iterable[Any]:
    """One hash's values as numbers, parsed in a single C call, or as given when they are not all
    plain decimal numerals (then :func:`_column_sum` parses them one by one, as ``int``/``float``).

    The numerals are joined into one JSON array for orjson: several times faster than ``int()`` per
    value, and ``float(bytes)`` is slower still. Exact: HINCRBY's integers fit 64 bits (orjson
    reads larger ones as floats, which :func:`_column_sum` refuses in a count) and HINCRBYFLOAT
    writes a round-trip decimal. Only numeral characters may appear (so the array can only hold
    numbers) and the count must match (a comma inside a value would shift the rest).
    """
    try:
        joined = b",".join(values)
    except TypeError:  # str values (decode_responses), or numbers already
        try:
            joined = ",".join(values).encode()
        except TypeError:
            return values
    if joined.translate(None, _NUMERAL):
        return values
    try:
        parsed = orjson.loads(b"[" + joined + b"]")
    except orjson.JSONDecodeError:  # "", "-", "01", "+1", beyond 64 bits ...
        return values
    return parsed if len(parsed) == count else values


def _column_sum(values: list[Any], *, as_float: bool) -> int | float:
    """The sum of one field's values over many hours: numbers from :func:`_numbers`, plus the
    values of any hour it left as Redis sent them."""
    try:
        total = sum(values)
    except TypeError:  # some hour's values were not parsed
        total = sum(map(float, values)) if as_float else sum(map(int, values))
    if as_float:
        return float(total)
    if type(total) is not int:
        raise ValueError(f"a rollup count is not a 64-bit integer: {total!r}")
    return total


def split_days(hours: Sequence[str]) -> tuple[list[str], list[str]]:
    """(UTC days whose 24 hours are all in ``hours``, the hours of every other day)."""
    by_day: dict[str, list[str]] = {}
    for hour in hours:
        by_day.setdefault(hour[:8], []).append(hour)
    whole = [day for day, its in by_day.items() if len(its) == 24]
    return whole, [h for day, its in by_day.items() if len(its) != 24 for h in its]


class RollupReader:
    """Reads a window of rollups from Redis and sums them by the chosen dimensions.

    Whole UTC days are read from the day tier (``{prefix}rollup:d:YYYYMMDD``, one hash a day,
    written with the hours by ``finish.lua``), the partial days at the window's ends from the hours:
    90 days cost ~114 hashes instead of 2,160. A day hash counts jobs from its ``_first`` hour on;
    earlier hours of that day (jobs written before the day tier existed) and days without a day
    hash are read hour by hour, so a report is the same sum either way.
    """

    def __init__(self, redis: Redis, keys: Keys, *, hours_per_trip: int = 240, day_tier: bool = True) -> None:
        self.redis = redis
        self.keys = keys
        self.hours_per_trip = hours_per_trip
        self.day_tier = day_tier

    async def read(self, since: datetime, until: datetime, by: Sequence[str] = ()) -> Rollup:
        """The window's sums by ``by`` (empty: one total)."""
        aggregator = Aggregator(by)
        hours = await self._fill(aggregator, since, until, days=self.day_tier)
        return Rollup(aggregator.by, since, until, hours, MappingProxyType(aggregator.groups()))

    async def read_hourly(self, since: datetime, until: datetime) -> dict[tuple[str, Group], Metrics]:
        """Every (hour, all five dimensions) of the window with its sums, hour by hour."""
        aggregator = Aggregator(DIMENSIONS, hourly=True)
        await self._fill(aggregator, since, until, days=False)
        return aggregator.by_hour()

    async def _fill(self, aggregator: Aggregator, since: datetime, until: datetime, *, days: bool) -> int:
        hours = hours_in(since, until)
        plan = await self._plan(hours) if days else [(h, self.keys.rollup(h)) for h in hours]
        async with aclosing(self._batches(plan)) as batches:  # a failure releases the connection now
            async for batch, replies in batches:
                for (period, _), fields in zip(batch, replies, strict=True):
                    if fields:
                        aggregator.add_hour(period, fields)
                aggregator.fold()
        return len(hours)

    async def _plan(self, hours: list[str]) -> list[tuple[str, str]]:
        """(period, key) to read: each whole day's hash where it exists, plus the hours it lacks."""
        whole, partial = split_days(hours)
        plan = [(h, self.keys.rollup(h)) for h in partial]
        if not whole:
            return plan
        pipe = self.redis.pipeline(transaction=False)
        for day in whole:
            pipe.hget(self.keys.rollup_day(day), "_first")
        for day, first in zip(whole, await pipe.execute(), strict=True):
            start = 24 if first is None else min(24, max(0, int(first)))
            if first is not None:
                plan.append((day, self.keys.rollup_day(day)))
            plan += [(f"{day}{h:02d}", self.keys.rollup(f"{day}{h:02d}")) for h in range(start)]
        return plan

    async def _batches(
        self, plan: list[tuple[str, str]]
    ) -> AsyncGenerator[tuple[list[tuple[str, str]], list[Any]], None]:
        """Each batch of (period, key) with its HGETALL replies, one round trip per batch. The next
        batch's commands are sent before a batch is handed out, so Redis prepares those replies
        while the caller sums this one. Replies are as the parser gives them (a flat ``[field,
        value, ...]`` list with RESP2): no dict is built per hash."""
        step = self.hours_per_trip
        batches = [plan[i:i + step] for i in range(0, len(plan), step)]
        if not batches:
            return
        pool = self.redis.connection_pool
        try:
            conn = await pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            conn = await pool.get_connection("HGETALL")
        clean = False
        try:
            await self._send(conn, batches[0])
            for i, batch in enumerate(batches):
                replies = [await conn.read_response() for _ in batch]
                if i + 1 < len(batches):
                    await self._send(conn, batches[i + 1])
                yield batch, replies
            clean = True
        finally:
            if not clean:  # replies may still be in flight: the connection cannot be reused
                await conn.disconnect()
            await pool.release(conn)

    async def _send(self, conn: Any, batch: list[tuple[str, str]]) -> None:
        await conn.send_packed_command(conn.pack_commands([("HGETALL", key) for _, key in batch]))
