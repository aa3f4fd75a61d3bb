"""Worker settings, all from the environment (documented in the README's settings table).

Timeouts are chosen together: the job's own deadline (``job_timeout_s`` minus a margin) ends the
upstream call before the worker's hard timeout would cut the job, and a SIGKILLed worker's job is
claimable again ``job_timeout_s + 10`` s after it started, which bounds crash recovery.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from producer_client.connection import DEFAULT_URL, check_redis_url
from producer_client.envvars import (
    SettingsError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_str,
)
from producer_client.keys import DEFAULT_PREFIX
from worker.health import BreakerSettings
from worker.loop import EVENT_LOOPS
from worker.openrouter import OpenRouterSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
DEFAULT_RESERVE = 50
CLAIM_MARGIN_S = 10  # a claim outlives the job timeout by this much


@dataclass(frozen=True)
class MetricsSettings:
    """``ROUTEQ_METRICS_PORT`` (unset: no metrics; 0: any free port), ``ROUTEQ_METRICS_HOST``
    (loopback unless you mean it), ``ROUTEQ_METRICS_REFRESH_S`` (how often the gauges of shared
    state are read from Redis). Here rather than in :mod:`worker.metrics`, so reading settings
    never imports prometheus_client."""

    port: int | None = None
    host: str = "127.0.0.1"
    refresh_s: float = 5.0

    @property
    def enabled(self) -> bool:
        return self.port is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        e = os.environ if env is None else env
        raw = env_str(e, "ROUTEQ_METRICS_PORT", "")
        port = env_int(e, "ROUTEQ_METRICS_PORT", 0, low=0) if raw else None
        if port is not None and port > 65535:
            raise SettingsError(f"ROUTEQ_METRICS_PORT={port}: not a TCP port (0-65535)")
        return cls(port=port, host=env_str(e, "ROUTEQ_METRICS_HOST", "127.0.0.1"),
                   refresh_s=env_float(e, "ROUTEQ_METRICS_REFRESH_S", 5.0, low=0.5))


@dataclass(frozen=True)
class WorkerSettings:
    redis_url: str = DEFAULT_URL
    prefix: str = DEFAULT_PREFIX
    queues: tuple[str, ...] = ("interactive", "batch")
    max_jobs: int = 1000
    interactive_reserve: int = -1  # -1: derived, min(50, max_jobs // 4)
    poll_delay_s: float = 0.5
    job_timeout_s: int = 120
    shutdown_grace_s: int = 25
    max_tries: int = 3
    result_ttl_s: int = 86_400
    decisions_maxlen: int = 100_000
    store_prompts: bool = False
    budget_webhook: str | None = None
    reclaim_every_s: float = 15.0
    lease_margin_s: float = 60.0
    heartbeat_s: float = 2.0
    catalog_refresh_s: float = 3600.0  # 0: this worker never syncs the catalog
    rollup_days: int = 90  # 0: no rollups
    feedback_ttl_s: int = 30 * 86_400
    rules_path: Path | None = None
    catalog_path: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    event_loop: str = "uvloop"  # "asyncio" keeps the standard loop (worker/loop.py)
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    openrouter: OpenRouterSettings = field(default_factory=OpenRouterSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def __post_init__(self) -> None:
        if self.interactive_reserve < 0:
            object.__setattr__(self, "interactive_reserve", default_reserve(self.max_jobs))
        if len(self.queues) > 1 and self.interactive_reserve >= self.max_jobs:
            raise SettingsError(
                f"ROUTEQ_INTERACTIVE_RESERVE={self.interactive_reserve} leaves no slot of "
                f"ROUTEQ_MAX_JOBS={self.max_jobs} for the {', '.join(self.queues[1:])} queue(s): "
                "keep the reserve below ROUTEQ_MAX_JOBS (or serve one queue with ROUTEQ_QUEUES)"
            )

    @property
    def upstream_budget_s(self) -> float:
        """Time a job may spend on OpenRouter: leaves room to settle and write the result."""
        return max(1.0, self.job_timeout_s - 5.0)

    @property
    def claim_s(self) -> float:
        """How long a claim holds a job: a worker that died lets it go after this."""
        return self.job_timeout_s + CLAIM_MARGIN_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        e = dict(os.environ if env is None else env)
        named = env_str(e, "ROUTEQ_QUEUES", "interactive,batch")
        queues = tuple(q.strip() for q in named.split(",") if q.strip())
        if not queues:
            raise SettingsError("ROUTEQ_QUEUES: name at least one queue")
        max_jobs = env_int(e, "ROUTEQ_MAX_JOBS", 1000, low=1)
        # The default reserve scales down with small slot counts, so every queue always runs.
        reserve = env_int(e, "ROUTEQ_INTERACTIVE_RESERVE", default_reserve(max_jobs), low=0)
        rules, catalog = env_str(e, "ROUTEQ_RULES", ""), env_str(e, "ROUTEQ_CATALOG", "")
        return cls(
            redis_url=check_redis_url(env_str(e, "REDIS_URL", DEFAULT_URL)),
            prefix=env_str(e, "ROUTEQ_PREFIX", DEFAULT_PREFIX),
            queues=queues,
            max_jobs=max_jobs,
            interactive_reserve=reserve,
            poll_delay_s=env_float(e, "ROUTEQ_POLL_DELAY_S", 0.5, low=0.001),
            job_timeout_s=env_int(e, "ROUTEQ_JOB_TIMEOUT_S", 120, low=5),
            shutdown_grace_s=env_int(e, "ROUTEQ_SHUTDOWN_GRACE_S", 25, low=0),
            max_tries=env_int(e, "ROUTEQ_MAX_TRIES", 3, low=1),
            result_ttl_s=env_int(e, "ROUTEQ_RESULT_TTL_S", 86_400, low=1),
            decisions_maxlen=env_int(e, "ROUTEQ_DECISIONS_MAXLEN", 100_000, low=1),
            store_prompts=env_bool(e, "ROUTEQ_STORE_PROMPTS", False),
            budget_webhook=env_str(e, "ROUTEQ_BUDGET_WEBHOOK", "") or None,
            reclaim_every_s=env_float(e, "ROUTEQ_RECLAIM_EVERY_S", 15.0, low=0.1),
            lease_margin_s=env_float(e, "ROUTEQ_LEASE_MARGIN_S", 60.0, low=0.5),
            heartbeat_s=env_float(e, "ROUTEQ_HEARTBEAT_S", 2.0, low=0.1),
            catalog_refresh_s=env_float(e, "ROUTEQ_CATALOG_REFRESH_S", 3600.0, low=0),
            rollup_days=env_int(e, "ROUTEQ_ROLLUP_DAYS", 90, low=0),
            feedback_ttl_s=env_int(e, "ROUTEQ_FEEDBACK_TTL_S", 30 * 86_400, low=1),
            rules_path=Path(rules) if rules else None,
            catalog_path=Path(catalog) if catalog else None,
            log_level=env_choice(e, "ROUTEQ_LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=env_choice(e, "ROUTEQ_LOG_FORMAT", "text", LOG_FORMATS),
            event_loop=env_choice(e, "ROUTEQ_EVENT_LOOP", "uvloop", EVENT_LOOPS),
            openrouter=OpenRouterSettings.from_env(e),
            breaker=BreakerSettings.from_env(e),
            metrics=MetricsSettings.from_env(e),
        )


def default_reserve(max_jobs: int) -> int:
    """Slots later queues cannot take, by default: 50, fewer for small workers, so that every
    queue a worker serves always gets slots."""
    return min(DEFAULT_RESERVE, max_jobs // 4)


__all__ = ["MetricsSettings", "SettingsError", "WorkerSettings"]
