"""A circuit breaker per model, shared by every worker through Redis.

Why shared: a model that is down is down for every worker; if each process learned it alone, a
fleet of N workers would spend N x threshold slow failures (and as many user-visible delays)
before all of them stopped calling it. One hash per model, ``{prefix}health:{model}``, is read
for a whole chain and updated per attempt by Lua, so each operation is one atomic round trip.

The policy, deliberately simple (no rolling failure ratio):
- closed → open after ``failure_threshold`` consecutive model failures (any success resets);
- open for ``cooldown_s`` (stretched by a longer Retry-After, capped at ``max_cooldown_s``);
- then half-open: the first ``check`` to see it claims a probe lease (``probe_lease_s``) and may
  call the model; every other caller skips it until the probe ends or its lease lapses;
- the probe's success closes the circuit; its failure re-opens it with the cooldown doubled,
  up to ``max_cooldown_s``.

What counts as a model failure (``judge``): transient failures the model is to blame for —
timeouts, network errors, 5xx, 408, 429, HTTP-200 bodies carrying such an error,
``finish_reason: "error"`` and unreadable responses. A 429 counts because a model that is
rate-limited for threshold attempts in a row is unusable for now; skipping it sheds load and
lets the chain fall back, and its Retry-After sets how long. Request-specific refusals (400,
403, 404, context length) say nothing about the model's health and are ignored. 401 and 402 are
the account's problem, not the model's: they set the account-wide block instead.

The account block is keyed by a hash of the API key (``{prefix}health:account:{key hash}``): a
worker started with a wrong key blocks only the workers that share that key, never the fleet.

The breaker is advisory: if Redis cannot be reached, every model counts as usable and outcomes
are dropped (logged), so a Redis blip never fails a completion. Workers read it through
:class:`worker.health.cache.HealthCache`, which keeps each verdict for up to a second.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from producer_client.envvars import SettingsError, env_float, env_int
from producer_client.keys import DEFAULT_PREFIX, Keys
from producer_client.lua import lua_script
from worker.index_sets import live_members
from worker.openrouter.models import Attempt

log = logging.getLogger("routeq.health")

ACCOUNT = "account"  # ``{prefix}health:account:{key hash}`` holds account blocks, not a circuit

# Failure kinds the model is to blame for (error types from worker/openrouter/errors.py).
_MODEL_FAULTS = frozenset(
    {"timeout", "network", "server_error", "rate_limited", "invalid_response", "finish_error"}
)
_ACCOUNT_ERRORS = {401: "auth", 402: "insufficient_credits"}

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    probe_lease_s: float = 10.0
    account_cooldown_402_s: float = 60.0
    account_cooldown_401_s: float = 300.0
    state_ttl_s: float = 86_400.0  # idle circuits (model left the rules) vanish after this

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise SettingsError("ROUTEQ_BREAKER_THRESHOLD: must be >= 1")
        for name, var in _DURATION_VARS.items():
            if getattr(self, name) <= 0:
                raise SettingsError(f"{var}={getattr(self, name):g}: must be > 0")
        if self.max_cooldown_s < self.cooldown_s:
            raise SettingsError(
                f"ROUTEQ_BREAKER_MAX_COOLDOWN_S={self.max_cooldown_s:g}: must be >= "
                f"ROUTEQ_BREAKER_COOLDOWN_S ({self.cooldown_s:g})"
            )
        if self.state_ttl_s < 2 * self.max_cooldown_s:
            # An open circuit's hash must outlive its cooldown.
            raise SettingsError(
                f"ROUTEQ_BREAKER_STATE_TTL_S={self.state_ttl_s:g}: must be >= 2 x "
                f"ROUTEQ_BREAKER_MAX_COOLDOWN_S ({self.max_cooldown_s:g})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BreakerSettings:
        """Settings from ``ROUTEQ_BREAKER_*``; unset or empty variables keep the defaults."""
        e = os.environ if env is None else env
        d = cls()
        return cls(
            failure_threshold=env_int(e, "ROUTEQ_BREAKER_THRESHOLD", d.failure_threshold, low=1),
            **{name: env_float(e, var, getattr(d, name), above=0) for name, var in _DURATION_VARS.items()},
            max_cooldown_s=env_float(e, "ROUTEQ_BREAKER_MAX_COOLDOWN_S", d.max_cooldown_s, above=0),
            state_ttl_s=env_float(e, "ROUTEQ_BREAKER_STATE_TTL_S", d.state_ttl_s, above=0),
        )


_DURATION_VARS = {
    "cooldown_s": "ROUTEQ_BREAKER_COOLDOWN_S",
    "probe_lease_s": "ROUTEQ_BREAKER_PROBE_LEASE_S",
    "account_cooldown_402_s": "ROUTEQ_BREAKER_ACCOUNT_402_S",
    "account_cooldown_401_s": "ROUTEQ_BREAKER_ACCOUNT_401_S",
}


def account_id(api_key: str | None) -> str:
    """The account block's key suffix: a short hash of the API key (never the key itself)."""
    if not api_key:
        return "no-key"
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AccountBlock:
    """Every worker stops calling OpenRouter until ``until`` (epoch s): the key or credits are bad."""

    error_type: str  # "auth" | "insufficient_credits"
    message: str
    until: float


@dataclass(frozen=True)
class ModelStatus:
    """One model's circuit as an operator sees it (times are epoch seconds)."""

    model: str
    state: CircuitState
    consecutive_failures: int
    last_error: str | None
    open_until: float | None
    cooldown_s: float | None
    probe_until: float | None


@dataclass(frozen=True)
class Circuit:
    """One model's circuit as a caller sees it: ``reason`` not to call it (None: go ahead), and
    for how long that answer stands (ms; 0 when it may change at any moment)."""

    reason: str | None
    stands_ms: int


@dataclass(frozen=True)
class Verdict:
    """What one attempt says about health: per-model outcomes, or an account-wide error."""

    succeeded: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    account_error: str | None = None


def judge(attempt: Attempt) -> Verdict:
    """Attribute an attempt's outcome to models (pure; see the module docstring for the policy)."""
    status = attempt.status
    if status in _ACCOUNT_ERRORS and not attempt.ok:
        return Verdict(account_error=_ACCOUNT_ERRORS[status])
    if attempt.error_type in ("auth", "insufficient_credits"):
        return Verdict(account_error=attempt.error_type)
    window = (attempt.model, *attempt.models)
    if attempt.ok:
        served = _served(window, attempt.served_model)
        # Models OpenRouter abandoned before the one that answered failed for this request.
        return Verdict(succeeded=served, failed=tuple(m for m in attempt.failed_models if m not in served))
    if not _is_model_fault(attempt):
        return Verdict()
    return Verdict(failed=attempt.failed_models or window)


def _is_model_fault(attempt: Attempt) -> bool:
    if attempt.error_type in _MODEL_FAULTS:
        return True
    if attempt.error_type == "upstream_error_200":
        # An in-band error keeps its own code: only transient codes are the model's fault.
        s = attempt.status
        return s is None or s in (408, 429) or s >= 500
    return False


def _served(window: tuple[str, ...], served: str | None) -> tuple[str, ...]:
    """The window model that answered: exact id, else the one the served id extends (a dated
    alias such as ``openai/gpt-4o-2024-08-06``), else the only model asked; else unknown."""
    if served is None:
        return window[:1] if len(window) == 1 else ()
    if served in window:
        return (served,)
    extended = [m for m in window if served.startswith(m)]
    if extended:
        return (max(extended, key=len),)
    return window[:1] if len(window) == 1 else ()


class ModelHealth:
    """The breaker as the pipeline uses it: ``check`` before a call, ``record`` after each attempt."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        settings: BreakerSettings = BreakerSettings(),
        clock: Callable[[], float] = time.time,
        account: str = "no-key",
    ) -> None:
        """``account`` is :func:`account_id` of the API key the worker calls OpenRouter with."""
        self.redis = redis
        self._prefix = prefix
        self._settings = settings
        self._clock = clock
        self._account = account
        self._keys = Keys(prefix)
        self._check = redis.register_script(lua_script("worker", "health_check.lua"))
        self._record = redis.register_script(lua_script("worker", "health_record.lua"))
        # Models the latest check saw closed with no failures: a success on them changes nothing,
        # so record skips the round trip (the common case costs no Redis call at all).
        self._clean: set[str] = set()

    def __repr__(self) -> str:
        return f"ModelHealth(prefix={self._prefix!r}, settings={self._settings!r})"

    def key(self, model: str) -> str:
        return f"{self._prefix}health:{model}"

    @property
    def account_key(self) -> str:
        return f"{self._prefix}health:{ACCOUNT}:{self._account}"

    @property
    def probe_lease_s(self) -> float:
        return self._settings.probe_lease_s

    async def gate(
        self, models: Sequence[str], *, account: bool = True
    ) -> tuple[AccountBlock | None, dict[str, Circuit]]:
        """The account-wide stop and every model's circuit, in one round trip (a pipeline).

        A model past its cooldown is claimed as this caller's half-open probe (reason None).
        """
        unique = [m for m in dict.fromkeys(models) if m != ACCOUNT]
        circuits: dict[str, Circuit] = {m: Circuit(None, 0) for m in models}
        if not unique and not account:
            return None, circuits
        lease_ms = _ms(self._settings.probe_lease_s)
        keys = [self.key(m) for m in unique]
        args: list[Any] = [self._now_ms(), lease_ms]
        try:
            try:
                # EVALSHA straight into the pipeline: redis-py would otherwise send SCRIPT EXISTS
                # before every pipelined script call, a second round trip.
                async with self.redis.pipeline(transaction=False) as pipe:
                    if account:
                        pipe.get(self.account_key)
                    if unique:
                        pipe.evalsha(self._check.sha, len(keys), *keys, *args)
                    replies = await pipe.execute()
            except NoScriptError:  # first call, or Redis restarted: load it, then one call each
                replies = [await self.redis.get(self.account_key)] if account else []
                if unique:
                    replies.append(await self._check(keys=keys, args=args))
        except RedisError as exc:
            log.warning("circuit check failed (%s); treating %d model(s) as usable", exc, len(unique))
            return None, circuits
        block = self._parse_block(replies[0]) if account else None
        raw = replies[-1] if unique else []
        for i, model in enumerate(unique):
            code, wait_ms, fails, err = raw[4 * i : 4 * i + 4]
            code, wait_ms, fails = int(code), int(wait_ms), int(fails)
            if code == 0 and fails == 0:
                self._clean.add(model)
            else:
                self._clean.discard(model)
            circuits[model] = Circuit(_reason(code, wait_ms, fails, _text(err)), wait_ms if code else 0)
            if code == 3:
                log.info("circuit half-open for %s: this worker probes it", model)
        return block, circuits

    async def record(self, attempt: Attempt) -> None:
        """Apply one attempt to the circuits it involves (the client's ``on_attempt`` hook)."""
        verdict = judge(attempt)
        if verdict.account_error is not None:
            await self._block_account(verdict.account_error, attempt)
            return
        succeeded = [m for m in verdict.succeeded if m not in self._clean and m != ACCOUNT]
        failed = [m for m in verdict.failed if m != ACCOUNT]
        if not succeeded and not failed:
            return
        s = self._settings
        models = [*failed, *succeeded]
        retry_after_ms = _ms(attempt.retry_after_s) if attempt.retry_after_s else 0
        args: list[Any] = [
            self._now_ms(), s.failure_threshold, _ms(s.cooldown_s), _ms(s.max_cooldown_s),
            # A success's abandoned models failed for a reason OpenRouter does not give us.
            _ms(s.state_ttl_s), retry_after_ms, attempt.error_type or "fallback",
            *(["f"] * len(failed)), *(["s"] * len(succeeded)),
        ]
        try:
            keys = [self._keys.circuits, *(self.key(m) for m in models)]
            statuses = await self._record(keys=keys, args=args)
        except RedisError as exc:
            log.warning("circuit update for %s failed (%s); outcome dropped", ",".join(models), exc)
            return
        for model, raw_status in zip(models, statuses, strict=True):
            status = _text(raw_status)
            if status in ("closed", "healthy"):
                self._clean.add(model)
            else:
                self._clean.discard(model)
            if status in ("opened", "reopened"):
                log.warning("circuit %s for %s after %s", status, model, attempt.error_type)
            elif status == "closed":
                log.info("circuit closed for %s", model)

    async def account_block(self) -> AccountBlock | None:
        """The account-wide stop if one is in force (a 401 or 402 seen by any worker)."""
        try:
            raw = await self.redis.get(self.account_key)
        except RedisError as exc:
            log.warning("account block check failed (%s); assuming none", exc)
            return None
        return self._parse_block(raw)

    def _parse_block(self, raw: Any) -> AccountBlock | None:
        if raw is None:
            return None
        try:
            doc = orjson.loads(raw)
            block = AccountBlock(str(doc["error_type"]), str(doc["message"]), float(doc["until"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring malformed account block at %s", self.account_key)
            return None
        return block if block.until > self._clock() else None

    async def status(self) -> list[ModelStatus]:
        """Every model with circuit state, sorted by name, from the circuits index (no SCAN)."""
        base = self.key("")
        keys = await self._indexed(self._keys.circuits)
        if not keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.hgetall(k)
            hashes = await pipe.execute()
        now_ms = self._now_ms()
        out = [
            _model_status(k[len(base):], {_text(f): _text(v) for f, v in h.items()}, now_ms)
            for k, h in zip(keys, hashes, strict=True)
            if h and k.startswith(base)
        ]
        return sorted(out, key=lambda st: st.model)

    async def blocks(self) -> dict[str, AccountBlock]:
        """Every account block in force, by account id (for ``routeq health``)."""
        prefix = self.key(f"{ACCOUNT}:")
        keys = [k for k in await self._indexed(self._keys.account_blocks) if k.startswith(prefix)]
        out: dict[str, AccountBlock] = {}
        for k, raw in zip(keys, await self.redis.mget(keys) if keys else [], strict=True):
            block = self._parse_block(raw)
            if block is not None:
                out[k[len(prefix):]] = block
        return out

    async def clear(self, target: str) -> int:
        """Close a model's circuit (``target`` = model id), or lift every account block
        (``target`` = ``"account"``); returns how many keys were removed."""
        if target == ACCOUNT:
            keys = await self._indexed(self._keys.account_blocks)
            async with self.redis.pipeline(transaction=True) as pipe:
                if keys:
                    pipe.delete(*keys)
                pipe.delete(self._keys.account_blocks)
                removed = await pipe.execute()
            return int(removed[0]) if keys else 0
        self._clean.discard(target)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(target))
            pipe.zrem(self._keys.circuits, self.key(target))
            deleted, _ = await pipe.execute()
        return int(deleted)

    async def _indexed(self, index: str) -> list[str]:
        """An index's members (scored by expiry, epoch ms, on this breaker's clock)."""
        return await live_members(self.redis, index, self._clock(), per_second=1000)

    async def _block_account(self, error_type: str, attempt: Attempt) -> None:
        s = self._settings
        cooldown = s.account_cooldown_401_s if error_type == "auth" else s.account_cooldown_402_s
        until = self._clock() + cooldown
        what = (
            "OpenRouter rejected the API key (HTTP 401)"
            if error_type == "auth"
            else "the OpenRouter account is out of credits (HTTP 402)"
        )
        detail = f": {attempt.error}" if attempt.error else ""
        when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        message = f"{what}{detail}; every worker using this key pauses upstream calls until {when}"
        doc = orjson.dumps({"error_type": error_type, "message": message, "until": until})
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.account_key, doc, px=_ms(cooldown))
                pipe.zadd(self._keys.account_blocks, {self.account_key: _ms(until)})
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not set the account block (%s)", exc)
            return
        log.error("account blocked for %.0fs: %s", cooldown, message)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _reason(code: int, wait_ms: int, fails: int, err: str) -> str | None:
    if code in (0, 3):
        return None
    secs = max(1, math.ceil(wait_ms / 1000))
    if code == 1:
        last = f", last: {err}" if err else ""
        return f"circuit open ({fails} consecutive failures{last}; retry in {secs}s)"
    return f"circuit half-open: another worker is probing it (next probe in {secs}s)"


def _model_status(model: str, h: Mapping[str, str], now_ms: int) -> ModelStatus:
    state: CircuitState = "closed"
    open_until = probe_until = cooldown = None
    if h.get("state") == "open":
        until_ms = int(h.get("until", "0"))
        state = "open" if now_ms < until_ms else "half_open"
        open_until = until_ms / 1000
        cooldown = int(h.get("cooldown", "0")) / 1000
        probe_ms = int(h.get("probe", "0"))
        probe_until = probe_ms / 1000 if probe_ms > now_ms else None
    return ModelStatus(
        model=model,
        state=state,
        consecutive_failures=int(h.get("fails", "0")),
        last_error=h.get("err") or None,
        open_until=open_until,
        cooldown_s=cooldown,
        probe_until=probe_until,
    )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
