"""Connection and retry settings for the OpenRouter client.

One frozen value per worker process, built from the environment at start-up. The API key is
kept out of ``repr`` (and so out of ``str``, tracebacks and logs that print the settings).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from producer_client.envvars import SettingsError, env_float, env_int, env_str

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"


@dataclass(frozen=True)
class OpenRouterSettings:
    """How to reach OpenRouter and how hard to try before giving up."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    referer: str | None = None
    title: str | None = "routeq"
    connect_timeout_s: float = 5.0
    attempt_timeout_s: float = 60.0
    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 8.0
    max_retry_after_s: float = 30.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "attempt_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("backoff_base_s", "backoff_cap_s", "max_retry_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"OPENROUTER_BASE_URL={self.base_url!r}: expected an http(s) URL")

    def headers(self) -> dict[str, str]:
        """What every request to OpenRouter carries: JSON, the key, and the app attribution
        (``HTTP-Referer``; the title under both names OpenRouter reads)."""
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.referer:
            headers["HTTP-Referer"] = self.referer
        if self.title:
            headers["X-Title"] = self.title
            headers["X-OpenRouter-Title"] = self.title
        return headers

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def key_url(self) -> str:
        return self.base_url.rstrip("/") + "/key"

    @property
    def models_url(self) -> str:
        return self.base_url.rstrip("/") + "/models"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OpenRouterSettings:
        """Read ``OPENROUTER_*`` variables; unset or empty ones keep the defaults."""
        d = cls()
        return cls(
            base_url=env_str(env, "OPENROUTER_BASE_URL", d.base_url),
            api_key=env_str(env, "OPENROUTER_API_KEY", "") or None,
            referer=env_str(env, "OPENROUTER_REFERER", "") or None,
            title=env_str(env, "OPENROUTER_TITLE", d.title or ""),
            attempt_timeout_s=env_float(env, "OPENROUTER_TIMEOUT_S", d.attempt_timeout_s, above=0),
            max_retries=env_int(env, "OPENROUTER_MAX_RETRIES", d.max_retries, low=0),
            max_connections=env_int(env, "OPENROUTER_MAX_CONNECTIONS", d.max_connections, low=1),
        )
