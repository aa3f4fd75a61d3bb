"""Values that cross the client boundary: the request, each HTTP attempt, the completion.

They are plain frozen dataclasses so the job pipeline can store them (``to_dict``) and the
circuit breaker can read them without knowing anything about HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.reserved import RESERVED_PARAMS


@dataclass(frozen=True)
class ChatRequest:
    """One completion to obtain from the first model in ``chain`` that can serve it."""

    messages: Sequence[Mapping[str, Any]]
    chain: tuple[str, ...]
    max_tokens: int
    provider: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.chain, tuple):
            object.__setattr__(self, "chain", tuple(self.chain))
        if any(not isinstance(m, str) or not m for m in self.chain):
            raise ValueError("chain must hold non-empty model ids")
        if isinstance(self.max_tokens, bool) or self.max_tokens < 1:
            raise ValueError("max_tokens must be a positive int")
        clash = set(RESERVED_PARAMS).intersection(self.params)
        if clash:
            raise ValueError(f"params may not set {sorted(clash)}")


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt: what was asked, how it ended, how long it took."""

    model: str
    models: tuple[str, ...]
    status: int | None
    error_type: str | None
    error: str | None
    latency_ms: int
    retry_after_s: float | None = None
    served_model: str | None = None
    failed_models: tuple[str, ...] = ()
    #: The request may have reached OpenRouter but no answer came back (a timeout, a connection
    #: lost after sending): it may be billed, so budgets charge it its worst case.
    outcome_unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.error_type is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "models": list(self.models),
            "status": self.status,
            "error_type": self.error_type,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "retry_after_s": self.retry_after_s,
            "served_model": self.served_model,
            "failed_models": list(self.failed_models),
            "outcome_unknown": self.outcome_unknown,
        }


@dataclass(frozen=True)
class Completion:
    """A successful answer plus every attempt it took (the last one is the success)."""

    message: Mapping[str, Any]
    content: str | None
    finish_reason: str | None
    model_served: str
    provider: str | None
    generation_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_nano: int | None
    attempts: tuple[Attempt, ...] = ()
