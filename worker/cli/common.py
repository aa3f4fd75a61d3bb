"""Small helpers the CLI commands share."""

from __future__ import annotations

import sys
from typing import Any

import orjson


def print_json(doc: Any, *, pretty: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.write(orjson.dumps(doc, option=option | orjson.OPT_APPEND_NEWLINE).decode())
    sys.stdout.flush()


def parse_json_arg(raw: str, what: str) -> Any:
    """A JSON command-line argument, or a SystemExit naming the argument and the problem."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SystemExit(f"routeq: {what} is not valid JSON: {exc}") from None


def fail(message: str, code: int = 1) -> int:
    print(f"routeq: {message}", file=sys.stderr)
    return code
