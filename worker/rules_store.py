"""Versioned routing rules in Redis: immutable numbered versions, one active, every change audited.

Why versions instead of "the rules key": a worker must be able to say exactly which policy
routed a job, an operator must be able to roll back to a known-good one, and two operators must
not overwrite each other. So (after TensorZero's config store and Firebase's rollback):

- ``push`` stores a new version ``n`` (1, 2, 3 …) that never changes afterwards: the canonical
  JSON document (sorted keys), its content hash (``sha256:`` + 12 hex, the same as
  ``RuleSet.version`` of the compiled document), a message, who and when.
- ``activate`` points ``rules:active`` at one of them; a rollback is activating an older number.
  Absent ``rules:active``: workers use their rules file.
- Both take ``expect``, a compare-and-swap on the active number (0 = none active), checked inside
  the same Lua script that writes, so of concurrent writers expecting the same version exactly one
  wins and the others store nothing at all.
- Every push and activation appends to the audit stream; every activation PUBLISHes the new
  active number on ``rules:changed`` (in the same script, so a worker never sees the key change
  without the notice being sent).

The store does not validate documents (``routeq rules push`` does, with the catalog, before
calling it). All these keys have no TTL: they are records owned by ``routeq rules``, kept until
deleted by hand.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from producer_client.errors import RouteqError
from producer_client.keys import Keys, numbered_base
from producer_client.lua import lua_script
from worker.rules.model import thaw

#: Approximate length the audit stream is trimmed to (XADD MAXLEN ~).
AUDIT_MAXLEN: Final = 10_000


class VersionConflict(RouteqError):
    """``expect`` lost: the active version is not the expected one; nothing was changed."""

    def __init__(self, expected: int, actual: int | None) -> None:
        self.expected = expected
        self.actual = actual
        now = "no version is active" if actual is None else f"the active version is {actual}"
        want = "none active" if expected == 0 else str(expected)
        super().__init__(f"{now} (expected {want}, --expect {expected}): nothing was changed")


class UnknownVersion(RouteqError, LookupError):
    """No rules version with this number is stored."""

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"no rules version {number} in Redis")


@dataclass(frozen=True)
class Pushed:
    version: int
    hash: str
    active: bool


@dataclass(frozen=True)
class Activated:
    version: int
    previous: int | None  # None: no version was active (workers used their file)


@dataclass(frozen=True)
class VersionInfo:
    """A stored version without its document (for listings)."""

    number: int
    hash: str
    message: str
    created_ms: int
    by: str


@dataclass(frozen=True)
class StoredRules:
    number: int
    hash: str
    message: str
    created_ms: int
    by: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class AuditEntry:
    id: str  # the stream entry id
    event: str  # "push" | "activate"
    version: int
    hash: str
    by: str
    at_ms: int
    previous: int | None  # the active version before this event (None: none)
    message: str


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The stored form of a document: JSON with sorted keys, so equal documents are equal bytes."""
    return orjson.dumps(thaw(doc), option=orjson.OPT_SORT_KEYS)


def content_hash(canonical: bytes) -> str:
    """``sha256:`` + 12 hex of the canonical JSON: what ``compile_rules(doc).version`` gives."""
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:12]


class RulesStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._base = numbered_base(keys.rules_version)  # the scripts build version keys as base .. n
        self._push = redis.register_script(lua_script("worker", "rules_push.lua"))
        self._activate = redis.register_script(lua_script("worker", "rules_activate.lua"))

    async def push(
        self,
        doc: Mapping[str, Any],
        *,
        message: str = "",
        by: str,
        activate: bool = False,
        expect: int | None = None,
    ) -> Pushed:
        """Store ``doc`` as a new version (and activate it with ``activate``), unvalidated.

        ``expect``: the active number this push is based on (0 = none active); if another is
        active, :class:`VersionConflict` and nothing is stored.
        """
        body = canonical_json(doc)
        digest = content_hash(body)
        keys = [self.keys.rules_next, self.keys.rules_active, self.keys.rules_audit]
        args: list[bytes | str | int] = [
            self._base, body, digest, message, by, _now_ms(), "1" if activate else "0",
            _expect_arg(expect), self.keys.rules_changed, AUDIT_MAXLEN,
        ]
        reply = await self._push(keys=keys, args=args)
        if _text(reply[0]) == "conflict":
            raise VersionConflict(expect or 0, _number(reply[1]))
        return Pushed(version=int(reply[1]), hash=digest, active=activate)

    async def activate(
        self, number: int, *, by: str, expect: int | None = None, message: str = ""
    ) -> Activated:
        """Make version ``number`` the active one (:class:`UnknownVersion` if it is not stored);
        ``expect`` as in :meth:`push`. Re-activating the active version is allowed and audited."""
        keys = [self.keys.rules_active, self.keys.rules_audit]
        args: list[str | int] = [self._base, number, by, _now_ms(), _expect_arg(expect),
                                 self.keys.rules_changed, AUDIT_MAXLEN, message]
        reply = await self._activate(keys=keys, args=args)
        status = _text(reply[0])
        if status == "unknown":
            raise UnknownVersion(number)
        if status == "conflict":
            raise VersionConflict(expect or 0, _number(reply[1]))
        return Activated(version=number, previous=_number(reply[1]))

    async def active(self) -> int | None:
        """The active version number; None: workers use their rules file."""
        return _number(await self.redis.get(self.keys.rules_active))

    async def get(self, number: int) -> StoredRules:
        fields: dict[Any, Any] = await self.redis.hgetall(self.keys.rules_version(number))  # type: ignore[misc]
        if not fields:
            raise UnknownVersion(number)
        f = {_text(k): v for k, v in fields.items()}
        info = _info(number, [f.get(name) for name in _INFO_FIELDS])
        doc = orjson.loads(f.get("doc", b"{}"))
        return StoredRules(info.number, info.hash, info.message, info.created_ms, info.by, doc)

    async def versions(self) -> list[VersionInfo]:
        """Every stored version, newest first (one round trip for all of them)."""
        last = _number(await self.redis.get(self.keys.rules_next)) or 0
        numbers = range(last, 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in numbers:
                pipe.hmget(self.keys.rules_version(n), list(_INFO_FIELDS))
            rows = await pipe.execute()
        return [_info(n, row) for n, row in zip(numbers, rows, strict=True) if row[0] is not None]

    async def audit(self, limit: int = 50) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, newest first."""
        entries = await self.redis.xrevrange(self.keys.rules_audit, count=limit)
        return [_audit_entry(entry_id, fields) for entry_id, fields in entries]

    async def activation(self) -> AuditEntry | None:
        """The audit entry of the activation in force (who switched to the active version, when),
        or None if nothing is active or that entry was trimmed from the stream."""
        if await self.active() is None:
            return None
        end = "+"
        while True:
            page = await self.redis.xrevrange(self.keys.rules_audit, max=end, count=200)
            for entry_id, fields in page:
                entry = _audit_entry(entry_id, fields)
                if entry.event == "activate":
                    return entry
            if len(page) < 200:
                return None
            end = "(" + _text(page[-1][0])


@dataclass(frozen=True)
class WorkerRules:
    """The rules one worker runs, from its heartbeat (``state`` "lost": the heartbeat expired,
    three beats missed, so only the name and the last beat time are known)."""

    name: str
    state: str  # "live" | "lost"
    beat_ms: int
    host: str | None = None
    rules_number: int | None = None  # None: the worker uses its rules file
    rules_version: str | None = None  # the content hash it runs
    rules_since: float | None = None  # epoch s when it switched to it
    rules_error: Any = None  # the last version that failed to compile there, and why (or None)


async def worker_rules(redis: Redis, keys: Keys) -> list[WorkerRules]:
    """Every worker still listed in ``{prefix}workers`` (lost ones stay a day), newest beat first.

    Reads the heartbeat documents the workers write (worker/heartbeat.py), in two round trips."""
    listed = await redis.zrevrange(keys.workers, 0, 999, withscores=True)
    if not listed:
        return []
    names = [_text(name) for name, _ in listed]
    docs = await redis.mget([keys.worker(n) for n in names])
    return [_worker(name, int(score), raw) for name, (_, score), raw in zip(names, listed, docs, strict=True)]


def _worker(name: str, score: int, raw: bytes | None) -> WorkerRules:
    if raw is None:
        return WorkerRules(name, "lost", score)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return WorkerRules(name, "live", score)  # alive (the key exists) but says nothing readable
    number, since = doc.get("rules_number"), doc.get("rules_since")
    return WorkerRules(
        name=name,
        state="live",
        beat_ms=int(doc.get("beat_ms") or score),
        host=str(doc["host"]) if doc.get("host") is not None else None,
        rules_number=number if type(number) is int and number > 0 else None,
        rules_version=str(doc["rules_version"]) if doc.get("rules_version") else None,
        rules_since=float(since) if isinstance(since, int | float) else None,
        rules_error=doc.get("rules_error"),
    )


_INFO_FIELDS: Final = ("hash", "message", "created_ms", "by")


def _info(number: int, row: Sequence[Any]) -> VersionInfo:
    digest, message, created_ms, by = (_text(v) if v is not None else "" for v in row)
    return VersionInfo(number, digest, message, int(created_ms or 0), by)


def _audit_entry(entry_id: Any, raw: Mapping[Any, Any]) -> AuditEntry:
    f = {_text(k): _text(v) for k, v in raw.items()}
    return AuditEntry(
        id=_text(entry_id),
        event=f.get("event", ""),
        version=int(f.get("version") or 0),
        hash=f.get("hash", ""),
        by=f.get("by", ""),
        at_ms=int(f.get("at") or 0),
        previous=_number(f.get("previous")),
        message=f.get("message", ""),
    )


def _expect_arg(expect: int | None) -> str:
    if expect is None:
        return ""
    if expect < 0:
        raise ValueError(f"expect must be >= 0 (0 = none active), got {expect}")
    return str(expect)


def _number(value: Any) -> int | None:
    """A version number from Redis; None for absent, empty or 0 (none)."""
    if value is None or value in (b"", ""):
        return None
    n = int(value)
    return n if n > 0 else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)
