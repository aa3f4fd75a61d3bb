"""Budget accounting in Redis: reserve worst case first, settle actual cost after, never leak.

Gateways that check spend, call the model, then record it overshoot caps under concurrency (every
request sees the same remaining budget) and leak holds when requests die. Here a reservation is
taken atomically on every applicable counter *before* the call (one Lua script: all or nothing),
and replaced by the actual cost afterwards (one Lua script, idempotent per job id). A worker that
dies mid-call leaves a lease behind; :meth:`BudgetLedger.reclaim_expired` closes it by charging
the full reservation, the conservative choice when nobody can say what was spent.

Per job: one round trip to reserve, one to settle. All times come from the Redis clock, so
workers with skewed clocks agree on lease expiry. The scripts touch keys they read from the
reservation, so they need a single Redis node (not a cluster).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from producer_client.keys import DEFAULT_PREFIX, Keys
from producer_client.lua import lua_script
from worker.batched_script import BatchedScript
from worker.budget import replies
from worker.budget.lines import BudgetLine
from worker.budget.records import BudgetAlert, BudgetState, Reservation, Settlement
from worker.index_sets import live_members

AlertHook = Callable[[Sequence[BudgetAlert]], Awaitable[None]]

# Lua compares amounts as doubles; keep every amount exactly representable.
MAX_AMOUNT_NANO: Final = 2**53 - 1
_Mode = Literal["new", "replace"]
SETTLED_KEEP_S: Final = 7 * 86_400
_STATE_FIELDS: Final = ("spent", "reserved", "limit", "name", "scope", "window")


class WindowEnded(ValueError):
    """A reservation named a budget window that has already ended on the Redis clock."""


class BudgetLedger:
    """Reserve / settle / release / reclaim against the budget counters of one key prefix.

    ``on_alerts`` (e.g. ``AlertSink.emit``) is awaited with the threshold crossings caused by a
    settle, release or reclaim; they are also always appended to the ``budget:alerts`` stream.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_s: float = 600.0,
        keep_s: int = SETTLED_KEEP_S,
        on_alerts: AlertHook | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease_s = lease_s
        self.keep_s = keep_s
        self.on_alerts = on_alerts
        # Reservations of concurrent jobs share round trips (worker/batched_script.py).
        self._reserve = BatchedScript(redis, lua_script("worker", "budget_reserve.lua"))
        self._settle = redis.register_script(lua_script("worker", "budget_settle.lua"))
        self._reclaim = redis.register_script(lua_script("worker", "budget_reclaim.lua"))
        self._reset = redis.register_script(lua_script("worker", "budget_reset.lua"))

    def resv_key(self, job_id: str) -> str:
        return Keys(self.prefix).reservation(job_id)

    @property
    def leases_key(self) -> str:
        return Keys(self.prefix).reservation_leases

    @property
    def lines_key(self) -> str:
        return Keys(self.prefix).budget_lines

    @property
    def alerts_key(self) -> str:
        return Keys(self.prefix).budget_alerts

    async def reserve(
        self,
        job_id: str,
        lines: Sequence[BudgetLine],
        amount_nano: int,
        *,
        lease_s: float | None = None,
        replace: bool = False,
    ) -> Reservation:
        """Hold ``amount_nano`` on every line, or on none (``ok=False`` names the first short).

        Idempotent per job id: an existing reservation comes back unchanged with ``replayed``;
        with ``replace``, an open one is given back first and this one taken instead (all in one
        atomic step). With no lines nothing is stored and nothing is sent (``state="none"``).
        """
        _check_job(job_id)
        _check_amount("amount_nano", amount_nano)
        if not lines:
            return Reservation(job_id, ok=True, state="none", amount_nano=amount_nano)
        keys = [line.key for line in lines]
        if len(set(keys)) != len(keys):
            raise ValueError("budget lines must have distinct keys")
        lease_ms = max(1, round((self.lease_s if lease_s is None else lease_s) * 1000))
        mode: _Mode = "replace" if replace else "new"
        args: list[str | int] = [job_id, amount_nano, lease_ms, self.keep_s, mode]
        for line in lines:
            expire = "" if line.expire_at is None else line.expire_at
            alerts = ",".join(map(str, line.alerts))
            args += [line.limit_nano, expire, line.name, line.scope, line.window, alerts]
        try:
            reply = await self._reserve(keys=[self.resv_key(job_id), self.leases_key, self.lines_key, *keys],
                                        args=args)
        except ResponseError as exc:
            if "already past on the Redis clock" in str(exc):
                raise WindowEnded(str(exc).removeprefix("ERR ")) from None
            raise
        return replies.reservation(job_id, amount_nano, lines, reply)

    async def add(self, job_id: str, lines: Sequence[BudgetLine], amount_nano: int) -> Reservation:
        """Grow the open reservation of ``job_id`` by ``amount_nano`` on each of its counters, if
        they all have room (``ok=False`` and nothing changed otherwise). ``lines`` name the
        reservation's counters, to report a denial."""
        _check_job(job_id)
        _check_amount("amount_nano", amount_nano)
        reply = await self._reserve(
            keys=[self.resv_key(job_id), self.leases_key, self.lines_key],
            args=[job_id, amount_nano, 1, self.keep_s, "add"],
        )
        return replies.reservation(job_id, amount_nano, lines, reply)

    async def settle(self, job_id: str, actual_nano: int) -> Settlement:
        """Replace the job's reservation by ``actual_nano`` on each of its counters.

        The actual cost is charged even above the reservation (``overrun_nano``): it was spent.
        A second settle returns the first outcome and changes nothing. After a reclaim, only the
        part of ``actual_nano`` above the already-charged reservation is added, once.
        No reservation (no budget applied) → ``state="none"``.
        """
        _check_job(job_id)
        _check_amount("actual_nano", actual_nano)
        keys = [self.resv_key(job_id), self.leases_key, self.alerts_key]
        reply = await self._settle(keys=keys, args=[job_id, actual_nano, self.keep_s])
        result = replies.settlement(job_id, reply)
        await self._emit(result.alerts)
        return result

    async def release(self, job_id: str) -> Settlement:
        """Settle at zero: the job was cancelled or failed before anything was billed."""
        return await self.settle(job_id, 0)

    async def reclaim_expired(self, now: float | None = None, limit: int = 100) -> list[str]:
        """Close up to ``limit`` reservations whose lease ended before ``now`` (unix s; default:
        the Redis clock), charging each its full reservation. Returns their job ids.

        Run it periodically from one or more workers; concurrent runs never double-charge.
        """
        now_ms = "" if now is None else str(int(now * 1000))
        reply = await self._reclaim(
            keys=[self.leases_key, self.alerts_key],
            args=[Keys(self.prefix).reservation(""), now_ms, limit, self.keep_s],
        )
        await self._emit(replies.alerts(reply[1]))
        return [replies.text(job_id) for job_id in reply[0]]

    async def state(self, lines: Sequence[BudgetLine]) -> list[BudgetState]:
        """Current spent / reserved of each line, limits from the lines (one round trip)."""
        if not lines:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for line in lines:
                pipe.hmget(line.key, ["spent", "reserved"])
            rows: list[list[Any]] = await pipe.execute()
        return [
            BudgetState(
                key=line.key,
                name=line.name,
                scope=line.scope,
                window=line.window,
                spent_nano=int(spent or 0),
                reserved_nano=int(reserved or 0),
                limit_nano=line.limit_nano,
            )
            for line, (spent, reserved) in zip(lines, rows, strict=True)
        ]

    async def status_all(self) -> list[BudgetState]:
        """Every live budget counter under the prefix, sorted by key, from the lines index (no
        SCAN: its cost follows the number of counters, not the size of the keyspace)."""
        keys = await self._counter_keys()
        rows: list[list[Any]] = []
        for start in range(0, len(keys), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys[start : start + 500]:
                    pipe.hmget(key, list(_STATE_FIELDS))
                rows += await pipe.execute()
        states: list[BudgetState] = []
        for key, row in zip(keys, rows, strict=True):
            spent, reserved, limit, name, scope, window = row
            if name is None:  # not written by reserve: not a counter of ours
                continue
            states.append(
                BudgetState(
                    key=key,
                    name=replies.text(name),
                    scope=replies.text(scope),
                    window=replies.text(window),
                    spent_nano=int(spent or 0),
                    reserved_nano=int(reserved or 0),
                    limit_nano=int(limit or 0),
                )
            )
        return states

    async def reset(self, key_or_scope: str) -> int:
        """Zero ``spent`` (keeping in-flight reservations) of the counters selected by a full key,
        a budget name (``per-user``) or a scope value (``user:u-42``). Returns how many."""
        if key_or_scope.startswith(Keys(self.prefix).budget_prefix()):
            targets = [key_or_scope]
        else:
            targets = [s.key for s in await self.status_all() if key_or_scope in (s.name, s.scope)]
        count = 0
        for start in range(0, len(targets), 500):
            count += int(await self._reset(keys=targets[start : start + 500], args=[]))
        return count

    async def _counter_keys(self) -> list[str]:
        """The counters' index (scored by expiry, unix s); one just expired is skipped above."""
        return sorted(await live_members(self.redis, self.lines_key, time.time()))

    async def _emit(self, alerts: Sequence[BudgetAlert]) -> None:
        if alerts and self.on_alerts is not None:
            await self.on_alerts(alerts)


def _check_job(job_id: str) -> None:
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("job_id must be a non-empty string")


def _check_amount(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT_NANO:
        raise ValueError(f"{name} must be an int of nano-USD in [0, 2**53), got {value!r}")
