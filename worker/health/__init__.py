"""Shared model health: a circuit breaker per model and an account-wide stop, kept in Redis."""

from .breaker import (
    AccountBlock,
    BreakerSettings,
    CircuitState,
    ModelHealth,
    ModelStatus,
    Verdict,
    judge,
)

__all__ = [
    "AccountBlock",
    "BreakerSettings",
    "CircuitState",
    "ModelHealth",
    "ModelStatus",
    "Verdict",
    "judge",
]
