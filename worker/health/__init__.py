"""Shared model health: a circuit breaker per model and an account-wide stop, kept in Redis."""

from worker.health.breaker import (
    AccountBlock,
    BreakerSettings,
    Circuit,
    CircuitState,
    ModelHealth,
    ModelStatus,
    Verdict,
    account_id,
    judge,
)
from worker.health.cache import HealthCache

__all__ = [
    "AccountBlock",
    "BreakerSettings",
    "Circuit",
    "CircuitState",
    "HealthCache",
    "ModelHealth",
    "ModelStatus",
    "Verdict",
    "account_id",
    "judge",
]
