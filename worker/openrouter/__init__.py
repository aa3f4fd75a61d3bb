"""OpenRouter client: windowed native fallback, bounded retries, exact cost, no leaked key."""

from .client import WINDOW_SIZE, OpenRouterClient
from .errors import UpstreamError
from .models import Attempt, ChatRequest, Completion
from .settings import OpenRouterSettings

__all__ = [
    "WINDOW_SIZE",
    "Attempt",
    "ChatRequest",
    "Completion",
    "OpenRouterClient",
    "OpenRouterSettings",
    "UpstreamError",
]
