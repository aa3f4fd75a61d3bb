"""Counters and a window of recent requests, served at ``GET /_emulator/stats`` for tests.

Attribution headers (HTTP-Referer, X-Title) are recorded so tests can check that the worker
sends them; Authorization never is.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    model: str
    outcome: str  # a FaultKind value, or "credit_limit" / "context_length"
    status: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    received_at: float
    model: str | None
    models: list[str] | None
    max_tokens: int | None
    status: int
    outcome: str
    served_model: str | None
    provider: str | None
    attempts: tuple[AttemptRecord, ...]
    latency_ms: float
    http_referer: str | None
    x_title: str | None


class Stats:
    def __init__(self, recent_limit: int = 200) -> None:
        self._recent_limit = recent_limit
        self.reset()

    def reset(self) -> None:
        self.requests_received = 0  # counted on arrival (requests_total: once answered)
        self.requests_total = 0
        self.responses: Counter[int] = Counter()
        self.attempts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.by_model: dict[str, Counter[str]] = {}
        self.recent: deque[RequestRecord] = deque(maxlen=self._recent_limit)

    def record(self, request: RequestRecord) -> None:
        self.requests_total += 1
        self.responses[request.status] += 1
        for attempt in request.attempts:
            self.attempts[attempt.model] += 1
            self.outcomes[attempt.outcome] += 1
            self.by_model.setdefault(attempt.model, Counter())[attempt.outcome] += 1
        self.recent.append(request)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_received": self.requests_received,
            "requests_total": self.requests_total,
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "attempts": dict(self.attempts),
            "outcomes": dict(self.outcomes),
            "by_model": {m: dict(c) for m, c in self.by_model.items()},
            "recent": [asdict(r) for r in self.recent],
        }
