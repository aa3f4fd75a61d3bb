"""The emulated API keys: authentication, an optional credit limit, and accumulated usage.

Only SHA-256 digests of the configured keys are kept, so a key itself is never stored, logged or
returned (``/key`` shows the masked label OpenRouter shows). With no key configured any key is
accepted; keys can be replaced at run time (``PUT /_emulator/account``) to revoke one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from worker.catalog import ModelInfo
from worker.emulator.errors import USER_ID, ApiError, Rejected, insufficient_credits, unauthorized
from worker.emulator.wire import usd_number

_DEPRECATED_RATE_LIMIT = {
    "requests": -1,
    "interval": "10s",
    "note": "This field is deprecated and safe to ignore.",
}


class Account:
    def __init__(
        self, api_key: str | Sequence[str] | None = None, credit_limit: Decimal | None = None
    ) -> None:
        self.set_keys([api_key] if isinstance(api_key, str) else list(api_key or ()))
        self.credit_limit = credit_limit
        self.usage = Decimal(0)

    def set_keys(self, keys: Sequence[str]) -> None:
        """Accept exactly these keys from now on (none: accept any key)."""
        self._digests = [_digest(k) for k in keys if k] or None

    def authenticate(self, headers: Mapping[str, str]) -> str:
        """The presented key, or :class:`Rejected` with OpenRouter's 401 messages."""
        scheme, _, key = headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Rejected(unauthorized("No auth credentials found"))
        if self._digests is not None and not any(hmac.compare_digest(_digest(key), d) for d in self._digests):
            raise Rejected(unauthorized("User not found."))
        return key

    def preflight(self, model: ModelInfo, prompt_tokens: int, max_tokens: int | None) -> ApiError | None:
        """OpenRouter's 402 check: can the remaining credit pay for the worst case?"""
        if self.credit_limit is None:
            return None
        remaining = self.credit_limit - self.usage
        if remaining < 0 or (remaining == 0 and not model.is_free):
            return insufficient_credits(None, 0)
        ceiling = max_tokens or model.max_completion_tokens or model.context_length - prompt_tokens
        worst = model.cost_usd(prompt_tokens, ceiling)
        if worst <= remaining:
            return None
        fixed = model.cost_usd(prompt_tokens, 0)
        affordable = int((remaining - fixed) // model.completion_price) if model.completion_price else 0
        return insufficient_credits(ceiling, max(affordable, 0))

    def charge(self, cost: Decimal) -> None:
        self.usage += cost

    def reset(self) -> None:
        self.usage = Decimal(0)

    def key_info(self, presented_key: str) -> dict[str, Any]:
        """The ``GET /key`` body; usage counts every cost served since start (or reset)."""
        usage = usd_number(self.usage)
        limit = self.credit_limit
        return {
            "data": {
                "label": _label(presented_key),
                "limit": usd_number(limit) if limit is not None else None,
                "limit_remaining": usd_number(limit - self.usage) if limit is not None else None,
                "limit_reset": None,
                "include_byok_in_limit": False,
                "usage": usage,
                "usage_daily": usage,
                "usage_weekly": usage,
                "usage_monthly": usage,
                "byok_usage": 0,
                "byok_usage_daily": 0,
                "byok_usage_weekly": 0,
                "byok_usage_monthly": 0,
                "is_free_tier": False,
                "is_management_key": False,
                "is_provisioning_key": False,
                "creator_user_id": USER_ID,
                "expires_at": None,
                "rate_limit": _DEPRECATED_RATE_LIMIT,
            }
        }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _label(key: str) -> str:
    """``sk-or-v1-au7...890``: OpenRouter's masked form of the key."""
    return f"{key[:11]}...{key[-3:]}" if len(key) > 16 else "sk-or-v1-..."
