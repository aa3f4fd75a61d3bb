"""Request fields routeq sets itself. A rule's ``params`` may not set them: the loader refuses
them (``routeq rules check``) and the request builder would, so one list serves both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

RESERVED_PARAMS: Final[Mapping[str, str]] = {
    "model": "use the rule's model/tier",
    "models": "use the rule's fallbacks",
    "messages": "messages come from the job",
    "max_tokens": "use the rule's max_tokens",
    "max_completion_tokens": "use the rule's max_tokens (budgets reserve against it)",
    "provider": "use the rule's provider",
    "stream": "results are written whole",
    "user": "routeq sends the job's context.user_id",
}
