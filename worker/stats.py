"""What one worker process has done, for its heartbeat, its metrics and ``routeq status``."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

from producer_client.contract import Result

RATE_WINDOW_S = 60.0


@dataclass
class WorkerStats:
    started_at: float = field(default_factory=time.time)
    done: int = 0
    duplicates: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    last_error_at: float | None = None
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def finished(self, result: Result, written: bool) -> None:
        if not written:
            self.duplicates += 1
            return
        self.done += 1
        self.by_status[result.status] += 1
        if result.error is not None and result.status == "failed":
            self.last_error = f"{result.error.type}: {result.error.message}"[:300]
            self.last_error_at = time.time()
        now = time.monotonic()
        self._recent.append(now)
        self._trim(now)

    def note_error(self, message: str) -> None:
        """A worker-level problem (Redis unreachable, a rules version that failed to compile)."""
        self.last_error = message[:300]
        self.last_error_at = time.time()

    def rate(self) -> float:
        """Jobs finished per second over the last minute (or since start, if sooner)."""
        now = time.monotonic()
        self._trim(now)
        span = min(RATE_WINDOW_S, max(1e-3, time.time() - self.started_at))
        return len(self._recent) / span

    def _trim(self, now: float) -> None:
        while self._recent and now - self._recent[0] > RATE_WINDOW_S:
            self._recent.popleft()
