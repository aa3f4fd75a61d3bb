"""OpenRouterSettings: environment parsing, validation, and a repr without the key."""

from __future__ import annotations

import pytest

from worker.openrouter import OpenRouterSettings

KEY = "sk-or-v1-settings-canary-0123456789"


def test_from_env_reads_every_variable() -> None:
    settings = OpenRouterSettings.from_env(
        {
            "OPENROUTER_API_KEY": KEY,
            "OPENROUTER_BASE_URL": "http://127.0.0.1:8099/api/v1/",
            "OPENROUTER_REFERER": "https://routeq.example",
            "OPENROUTER_TITLE": "routeq-test",
            "OPENROUTER_TIMEOUT_S": "12.5",
            "OPENROUTER_MAX_RETRIES": "4",
            "OPENROUTER_MAX_CONNECTIONS": "64",
        }
    )
    assert settings.api_key == KEY
    assert settings.chat_url == "http://127.0.0.1:8099/api/v1/chat/completions"
    assert settings.referer == "https://routeq.example"
    assert settings.title == "routeq-test"
    assert settings.attempt_timeout_s == 12.5
    assert settings.max_retries == 4
    assert settings.max_connections == 64


def test_from_env_keeps_defaults_for_missing_or_blank_values() -> None:
    settings = OpenRouterSettings.from_env({"OPENROUTER_API_KEY": "  ", "OPENROUTER_TIMEOUT_S": ""})
    assert settings == OpenRouterSettings()
    assert settings.api_key is None


@pytest.mark.parametrize(
    ("var", "value"),
    [("OPENROUTER_MAX_RETRIES", "two"), ("OPENROUTER_TIMEOUT_S", "soon"),
     ("OPENROUTER_MAX_CONNECTIONS", "1.5")],
)
def test_from_env_names_the_bad_variable(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        OpenRouterSettings.from_env({var: value})


@pytest.mark.parametrize(
    "kwargs",
    [{"attempt_timeout_s": 0}, {"connect_timeout_s": -1}, {"max_retries": -1},
     {"max_connections": 0}, {"backoff_cap_s": -0.1}, {"base_url": "ftp://x"}],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OpenRouterSettings(**kwargs)  # type: ignore[arg-type]


def test_repr_and_str_never_show_the_key() -> None:
    settings = OpenRouterSettings(api_key=KEY)
    assert KEY not in repr(settings)
    assert KEY not in str(settings)
    assert "api_key" not in repr(settings)


def test_every_request_carries_the_key_and_the_attribution_under_both_title_names() -> None:
    full = OpenRouterSettings(api_key="sk-or-v1-x", referer="https://app.example", title="My App")
    assert full.headers() == {
        "Accept": "application/json", "Authorization": "Bearer sk-or-v1-x",
        "HTTP-Referer": "https://app.example", "X-Title": "My App", "X-OpenRouter-Title": "My App",
    }
    bare = OpenRouterSettings(referer=None, title=None)
    assert bare.headers() == {"Accept": "application/json"}  # nothing unset is sent
