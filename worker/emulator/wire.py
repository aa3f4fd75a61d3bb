"""JSON on the wire: orjson bodies, exact USD numbers, OpenRouter-style ids."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from worker.emulator.http import Response

_ALNUM = string.ascii_letters + string.digits
_ID_RNG = random.Random()  # ids need uniqueness, not secrecy


def usd_number(amount: Decimal) -> orjson.Fragment:
    """A Decimal written as a JSON number with every digit kept (no float round trip)."""
    text = format(amount.normalize(), "f") if amount else "0"
    return orjson.Fragment(text.encode("ascii"))


def json_response(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, orjson.dumps(body), tuple(headers))


def generation_id(now: float | None = None) -> str:
    """``gen-<unix>-<20 alnum>``, the id shape seen in captured OpenRouter responses."""
    stamp = int(time.time() if now is None else now)
    return f"gen-{stamp}-{''.join(_ID_RNG.choices(_ALNUM, k=20))}"
