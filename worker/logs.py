"""Worker logging: text or JSON lines, our own lines at the configured level, never a prompt.

``ROUTEQ_LOG_FORMAT=json`` writes one JSON object per line (time, level, logger, message, and the
fields a line carries in ``extra``); ``text`` is the classic one-line format. arq's and httpx's
per-request lines only show when debugging: they cost more CPU than the job bookkeeping at a
thousand jobs a second, and arq's carries the first 80 characters of a prompt.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from typing import Any

import orjson

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@functools.lru_cache(maxsize=4)
def _second(epoch_s: int, fmt: str, utc: bool) -> str:
    """One second's timestamp text: formatted once, not once per line (a line per job)."""
    return time.strftime(fmt, time.gmtime(epoch_s) if utc else time.localtime(epoch_s))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{_second(int(record.created), '%Y-%m-%d %H:%M:%S', False)},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": f"{_second(int(record.created), '%Y-%m-%dT%H:%M:%S', True)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        for noisy in ("arq.worker", "arq.jobs", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
