"""``routeq export --since 7d --sqlite FILE``: the routing log and the rollups, for ad-hoc SQL.

The dynamic-routing seed logs every decision into a SQLite ``routing_log`` and reviews it weekly;
this produces that file from the service's own records:

- ``routing_log``: one row per job still in the decision stream (``ROUTEQ_DECISIONS_MAXLEN``)
  that finished in the window, with its quality score and label when it got feedback;
- ``rollups``: one row per hour and dimension combination, every metric a column (histogram,
  statuses, errors and labels as JSON).

Money is exact: ``cost_nano`` is integer nano-USD (sum it), ``cost_usd`` its decimal string.
The file is written beside FILE and renamed over it, so a reader never sees half an export.
Exit codes: 0; 1 the file cannot be written; 2 bad usage; 4 Redis.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from worker.cli import exits
from worker.cli.common import fail, with_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

_PAGE: Final = 2000
#: Decision stream fields that name a job's experiment variant and tenant (when the worker
#: records them); otherwise they are read from the job's feedback reference.
_VARIANT, _TENANT = "variant", "tenant"

ROUTING_LOG: Final = """
CREATE TABLE routing_log (
    job_id TEXT PRIMARY KEY,
    time TEXT NOT NULL,            -- when the job finished, ISO 8601 UTC
    time_ms INTEGER NOT NULL,      -- the same, epoch milliseconds
    prompt_hash TEXT,              -- SHA-256 of the messages (absent with ROUTEQ_STORE_PROMPTS)
    task_type TEXT,
    rule TEXT,
    model TEXT,                    -- the model that served the job (else the one chosen)
    model_chosen TEXT,             -- the rule's (or variant's) model, first in the chain
    variant TEXT,                  -- experiment:variant
    tenant TEXT,
    status TEXT NOT NULL,          -- succeeded | failed | rejected
    error TEXT,
    quality REAL,                  -- the feedback score in [0, 1], if any
    label TEXT,                    -- the feedback label, if any
    latency_ms INTEGER,
    cost_nano INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    attempts INTEGER,
    provider TEXT,
    rules_version TEXT
)"""

ROLLUPS: Final = """
CREATE TABLE rollups (
    hour TEXT NOT NULL,            -- the hour's start, ISO 8601 UTC
    rule TEXT, model TEXT, variant TEXT, task_type TEXT, tenant TEXT,
    jobs INTEGER NOT NULL, succeeded INTEGER NOT NULL, failed INTEGER NOT NULL,
    rejected INTEGER NOT NULL, fallbacks INTEGER NOT NULL,
    cost_nano INTEGER NOT NULL, cost_usd TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    p50_ms INTEGER, p95_ms INTEGER,
    latency_histogram TEXT NOT NULL,  -- JSON counts per bucket (worker/rollup_format.py)
    quality_n INTEGER NOT NULL, quality_sum REAL NOT NULL, quality_sum_sq REAL NOT NULL,
    statuses TEXT NOT NULL, errors TEXT NOT NULL, labels TEXT NOT NULL,  -- JSON objects
    PRIMARY KEY (hour, rule, model, variant, task_type, tenant)
)"""

_INDEXES: Final = (
    "CREATE INDEX routing_log_time ON routing_log (time_ms)",
    "CREATE INDEX routing_log_task_model ON routing_log (task_type, model)",
    "CREATE INDEX rollups_model ON rollups (model, hour)",
)


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="the routing log and the rollups as a SQLite file, for ad-hoc SQL",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--since", default="7d", help="start: 90m, 36h, 7d, 2w or an ISO date-time (default 7d)")
    p.add_argument("--until", help="end, same forms (default: now)")
    p.add_argument("--sqlite", type=Path, required=True, metavar="FILE", help="the SQLite file to write")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import sqlite3

    from worker.analytics.rollups import RollupReader
    from worker.analytics.window import WindowError, window
    from worker.cli.report_cmd import keys_from_env

    try:
        span = window(args.since, args.until)
    except WindowError as exc:
        return fail(str(exc), exits.USAGE)
    keys = keys_from_env()

    async def go(redis: Redis) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        log = await routing_log(redis, keys, span.since, span.until)
        hourly = await RollupReader(redis, keys).read_hourly(span.since, span.until)
        return log, rollup_rows(hourly)

    log, rollups = with_redis(args.redis, go)
    try:
        write_sqlite(args.sqlite, log, rollups)
    except (OSError, sqlite3.Error) as exc:
        return fail(f"cannot write {args.sqlite}: {exc}", exits.FAILED)
    print(f"wrote {args.sqlite}: {len(log)} jobs in routing_log, {len(rollups)} rows in rollups "
          f"({span.describe()})")
    return exits.OK


# -- reading ------------------------------------------------------------------------------------


async def routing_log(redis: Any, keys: Any, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    """The decision stream's entries of the window (stream ids are finish times in ms), joined
    with each job's feedback, and its variant and tenant from the feedback reference when the
    decision does not carry them."""
    start, end = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    entries: list[tuple[int, dict[str, str]]] = []
    cursor = str(start)
    while True:
        page = await redis.xrange(keys.decisions, min=cursor, max=str(end), count=_PAGE)
        for entry_id, fields in page:
            eid = _text(entry_id)
            entries.append((int(eid.split("-")[0]), {_text(k): _text(v) for k, v in fields.items()}))
        if len(page) < _PAGE:
            break
        cursor = "(" + _text(page[-1][0])
    rows = []
    for chunk in _chunks(entries, _PAGE):
        async with redis.pipeline(transaction=False) as pipe:
            for _, fields in chunk:
                job_id = fields.get("job_id", "")
                pipe.hmget(keys.feedback(job_id), ["score", "label"])
                pipe.get(keys.feedback_ref(job_id))
            replies = await pipe.execute()
        for i, (ms, fields) in enumerate(chunk):
            feedback, ref = replies[2 * i], replies[2 * i + 1]
            rows.append(_log_row(ms, fields, feedback, ref))
    return rows


def _log_row(ms: int, f: Mapping[str, str], feedback: Sequence[Any], ref: Any) -> tuple[Any, ...]:
    from producer_client.money import nano_to_usd, usd_to_nano

    variant, tenant = f.get(_VARIANT), f.get(_TENANT)
    if (variant is None or tenant is None) and ref is not None:
        dims = _text(ref).split("\t")[1].split("|")  # the rollup prefix: rule|model|variant|task|tenant|
        variant = variant if variant is not None else dims[2]
        tenant = tenant if tenant is not None else dims[4]
    score, label = feedback
    cost = usd_to_nano(f.get("cost_usd") or "0")
    return (
        f.get("job_id", ""), datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"), ms,
        f.get("prompt_sha256") or None, f.get("task_type") or None, f.get("rule") or None,
        f.get("model_served") or f.get("model") or None, f.get("model") or None,
        None if variant in (None, "", "-") else variant, None if tenant in (None, "", "-") else tenant,
        f.get("status", ""), f.get("error") or None,
        None if score is None else float(score), None if label is None else _text(label),
        _int(f.get("total_ms")), cost, nano_to_usd(cost), _int(f.get("attempts")),
        f.get("provider") or None, f.get("rules_version") or None,
    )


def rollup_rows(hourly: Mapping[tuple[str, tuple[str, ...]], Any]) -> list[tuple[Any, ...]]:
    from producer_client.money import nano_to_usd
    from worker.rollup_format import hour_start

    rows = []
    for (hour, dims), m in hourly.items():
        rows.append((
            hour_start(hour).isoformat(), *dims, m.n, m.succeeded, m.statuses.get("failed", 0),
            m.statuses.get("rejected", 0), m.fallbacks, m.cost_nano, nano_to_usd(m.cost_nano),
            m.prompt_tokens, m.completion_tokens, m.latency_ms(0.5), m.latency_ms(0.95),
            _json(list(m.histogram)), m.qn, m.qs, m.qq, _json(m.statuses), _json(m.errors), _json(m.labels),
        ))
    return rows


# -- writing ------------------------------------------------------------------------------------


def write_sqlite(path: Path, log: Iterable[tuple[Any, ...]], rollups: Iterable[tuple[Any, ...]]) -> None:
    """Write both tables into a fresh file beside ``path``, then rename it over ``path``."""
    import sqlite3

    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    try:
        with sqlite3.connect(temp) as db:
            db.execute(ROUTING_LOG)
            db.execute(ROLLUPS)
            db.executemany(f"INSERT OR REPLACE INTO routing_log VALUES ({', '.join('?' * 20)})", log)
            db.executemany(f"INSERT INTO rollups VALUES ({', '.join('?' * 24)})", rollups)
            for statement in _INDEXES:
                db.execute(statement)
        db.close()
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _json(value: Any) -> str:
    return orjson.dumps(dict(value) if isinstance(value, Mapping) else value).decode()
