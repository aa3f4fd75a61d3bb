"""OpenRouter client: windowed native fallback, bounded retries, exact cost, no leaked key.

Names are imported on first use: the value types (``Attempt`` …) do not need the HTTP stack, so
the breaker and the command line load without httpx.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.openrouter.client import WINDOW_SIZE, OpenRouterClient
    from worker.openrouter.errors import UpstreamError
    from worker.openrouter.models import Attempt, ChatRequest, Completion
    from worker.openrouter.settings import OpenRouterSettings

_HOME = {
    "WINDOW_SIZE": "client",
    "OpenRouterClient": "client",
    "UpstreamError": "errors",
    "Attempt": "models",
    "ChatRequest": "models",
    "Completion": "models",
    "OpenRouterSettings": "settings",
}

__all__ = [
    "WINDOW_SIZE",
    "Attempt",
    "ChatRequest",
    "Completion",
    "OpenRouterClient",
    "OpenRouterSettings",
    "UpstreamError",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'worker.openrouter' has no attribute {name!r}")
    return getattr(import_module(f"worker.openrouter.{home}"), name)
