"""The breaker's pure parts: which attempts count against which models, and its settings."""

from __future__ import annotations

import pytest

from worker.health import BreakerSettings, Verdict, judge
from worker.openrouter import Attempt
from worker.settings import SettingsError

A, B, C = "openai/gpt-4o", "anthropic/claude-3.5-sonnet", "meta-llama/llama-3.1-70b"


def failed(
    error_type: str,
    status: int | None,
    *,
    window: tuple[str, ...] = (A, B),
    failed_models: tuple[str, ...] = (),
) -> Attempt:
    return Attempt(
        model=window[0], models=window[1:], status=status, error_type=error_type, error="boom",
        latency_ms=5, failed_models=failed_models or window,
    )


def served(model: str, *, window: tuple[str, ...] = (A, B, C), before: tuple[str, ...] = ()) -> Attempt:
    return Attempt(
        model=window[0], models=window[1:], status=200, error_type=None, error=None, latency_ms=5,
        served_model=model, failed_models=before,
    )


def test_success_credits_the_served_model_and_blames_the_ones_abandoned_before_it() -> None:
    assert judge(served(B, before=(A,))) == Verdict(succeeded=(B,), failed=(A,))
    assert judge(served(A)) == Verdict(succeeded=(A,))


def test_a_dated_alias_of_a_window_model_is_credited_to_that_model() -> None:
    assert judge(served("openai/gpt-4o-2024-08-06")).succeeded == (A,)


def test_an_unknown_served_model_credits_nobody_unless_only_one_was_asked() -> None:
    assert judge(served("mistral/other")).succeeded == ()
    assert judge(served("mistral/other", window=(C,))).succeeded == (C,)


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        ("server_error", 502),
        ("server_error", 503),
        ("timeout", 408),
        ("timeout", 504),
        ("timeout", None),
        ("network", None),
        ("rate_limited", 429),
        ("invalid_response", 200),
        ("finish_error", 502),
        ("upstream_error_200", 502),
        ("upstream_error_200", 429),
    ],
)
def test_transient_failures_count_against_the_models_that_failed(error_type: str, status: int | None) -> None:
    assert judge(failed(error_type, status, failed_models=(A,))) == Verdict(failed=(A,))


def test_without_named_failures_the_whole_window_is_blamed() -> None:
    attempt = Attempt(model=A, models=(B,), status=503, error_type="server_error", error="x", latency_ms=1)
    assert judge(attempt).failed == (A, B)


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        ("bad_request", 400),
        ("invalid_model", 400),
        ("context_length_exceeded", 400),
        ("forbidden", 403),
        ("not_found", 404),
        ("bad_request", 422),
        ("upstream_error_200", 400),
        ("upstream_error_200", 403),
    ],
)
def test_request_specific_refusals_say_nothing_about_health(error_type: str, status: int) -> None:
    assert judge(failed(error_type, status)) == Verdict()


@pytest.mark.parametrize(
    ("error_type", "status", "account"),
    [
        ("auth", 401, "auth"),
        ("insufficient_credits", 402, "insufficient_credits"),
        ("upstream_error_200", 401, "auth"),  # in-band errors keep their own code
        ("upstream_error_200", 402, "insufficient_credits"),
    ],
)
def test_auth_and_credit_errors_are_account_wide_not_model_failures(
    error_type: str, status: int, account: str
) -> None:
    assert judge(failed(error_type, status)) == Verdict(account_error=account)


def test_settings_from_env_reads_every_variable_and_keeps_defaults_for_empty_ones() -> None:
    s = BreakerSettings.from_env(
        {
            "ROUTEQ_BREAKER_THRESHOLD": "3",
            "ROUTEQ_BREAKER_COOLDOWN_S": "2.5",
            "ROUTEQ_BREAKER_MAX_COOLDOWN_S": "20",
            "ROUTEQ_BREAKER_PROBE_LEASE_S": "4",
            "ROUTEQ_BREAKER_ACCOUNT_402_S": "",
            "ROUTEQ_BREAKER_ACCOUNT_401_S": "90",
        }
    )
    assert s == BreakerSettings(
        failure_threshold=3, cooldown_s=2.5, max_cooldown_s=20.0, probe_lease_s=4.0,
        account_cooldown_401_s=90.0,
    )
    assert BreakerSettings.from_env({}) == BreakerSettings()


@pytest.mark.parametrize(
    "env",
    [
        {"ROUTEQ_BREAKER_THRESHOLD": "five"},
        {"ROUTEQ_BREAKER_THRESHOLD": "0"},
        {"ROUTEQ_BREAKER_COOLDOWN_S": "-1"},
        {"ROUTEQ_BREAKER_COOLDOWN_S": "60", "ROUTEQ_BREAKER_MAX_COOLDOWN_S": "30"},
        {"ROUTEQ_BREAKER_MAX_COOLDOWN_S": "100000"},  # would outlive the state TTL
    ],
)
def test_settings_reject_unusable_values(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        BreakerSettings.from_env(env)
