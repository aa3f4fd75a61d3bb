"""Error types of failed and rejected jobs, and which of them a resubmission may cure."""

from __future__ import annotations

from typing import Final

#: Whether a job that failed with this error type may succeed if submitted again. One table, so
#: the same cause carries the same flag however it was reached (a 401 seen directly, or the
#: account block it left behind).
NOT_RETRYABLE: Final = frozenset({
    "auth", "insufficient_credits", "bad_request", "invalid_model", "context_length_exceeded",
    "forbidden", "not_found", "client_error", "unexpected_status", "no_models", "worker_lost",
    "already_charged", "not_accepted", "invalid_job", "budget_exceeded", "no_eligible_model",
})  # fmt: skip


def retryable(error_type: str) -> bool:
    return error_type not in NOT_RETRYABLE
