"""Reading JSON documents other processes left in Redis (heartbeats, sync reports): a value that is
missing, not JSON, or not an object reads as absent, never as an error, so one odd key cannot break
``routeq status`` or ``catalog show``."""

from __future__ import annotations

from typing import Any

import orjson


def stored_object(raw: bytes | str | None) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object; None when it is missing, not JSON or not an object."""
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
