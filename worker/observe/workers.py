"""Workers from their heartbeats: live ones with what they report, silent ones as lost.

Each worker writes ``{prefix}worker:{name}`` (expiring three beats after its last write) and
scores its name in ``{prefix}workers``; a graceful stop removes both (worker/heartbeat.py). A
name still scored whose document has expired is a worker that went silent (killed, frozen, cut
off from Redis): it is shown as lost, for a day, until a live worker's beat forgets it. Liveness
is the key's TTL, which Redis keeps on its own clock, so clock skew between hosts cannot make a
live worker look lost.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis

from producer_client.keys import Keys
from worker.heartbeat import MISSED_BEATS
from worker.stored_json import stored_object

MAX_WORKERS = 1000  # listed at most (newest beats first)

WorkerState = Literal["live", "lost"]


@dataclass(frozen=True)
class WorkerView:
    name: str
    state: WorkerState
    last_beat_ms: int
    doc: Mapping[str, Any] = field(default_factory=dict)  # empty for a lost worker

    @property
    def host(self) -> str | None:
        host = self.doc.get("host")
        return str(host) if host is not None else None

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(str(q) for q in self.doc.get("queues", ()))

    def silent_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.last_beat_ms) / 1000)

    def as_dict(self, now_ms: int) -> dict[str, Any]:
        return {**self.doc, "name": self.name, "state": self.state, "last_beat_ms": self.last_beat_ms,
                "silent_s": round(self.silent_s(now_ms), 1)}


async def read_workers(redis: Redis, keys: Keys, limit: int = MAX_WORKERS) -> list[WorkerView]:
    """Live workers (newest beat first), then lost ones (most recently heard first)."""
    scored: list[tuple[Any, float]] = await redis.zrevrange(keys.workers, 0, limit - 1, withscores=True)
    if not scored:
        return []
    names = [_text(n) for n, _ in scored]
    docs = await redis.mget([keys.worker(n) for n in names])
    live, lost = [], []
    for (name, score), raw in zip(zip(names, (s for _, s in scored), strict=True), docs, strict=True):
        doc = stored_object(raw)
        if doc is None:
            lost.append(WorkerView(name, "lost", int(score)))
        else:
            live.append(WorkerView(name, "live", int(doc.get("beat_ms", score)), doc))
    return live + lost


def on_this_host(workers: Sequence[WorkerView], host: str | None = None) -> list[WorkerView]:
    """Live workers whose heartbeat names this machine's hostname (a container's own, in k8s)."""
    host = host or socket.gethostname()
    return [w for w in workers if w.state == "live" and w.host == host]


def fresh(worker: WorkerView, now_ms: int | None = None, missed_beats: int = MISSED_BEATS) -> bool:
    """Beat within ``missed_beats`` intervals by this machine's clock (use for workers on it)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    interval_ms = float(worker.doc.get("interval_s", 2.0)) * 1000
    return worker.state == "live" and now_ms - worker.last_beat_ms <= missed_beats * interval_ms


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
