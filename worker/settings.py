"""Worker settings, all from the environment (documented in the README's settings table).

Timeouts are chosen together: the job's own deadline (``job_timeout_s`` minus a margin) ends the
upstream call before arq's timeout would kill the job without a result, and arq re-runs a
SIGKILLed worker's job after ``job_timeout_s + 10`` s, which bounds crash recovery.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from producer_client.connection import DEFAULT_URL
from worker.envvars import SettingsError, env_float, env_int
from worker.health import BreakerSettings
from worker.openrouter import OpenRouterSettings


@dataclass(frozen=True)
class WorkerSettings:
    redis_url: str = DEFAULT_URL
    prefix: str = "routeq:"
    queues: tuple[str, ...] = ("interactive", "batch")
    max_jobs: int = 1000
    interactive_reserve: int = 50
    poll_delay_s: float = 0.5
    scan_limit: int = 5000
    job_timeout_s: int = 120
    shutdown_grace_s: int = 25
    max_tries: int = 3
    result_ttl_s: int = 86_400
    decisions_maxlen: int = 100_000
    store_prompts: bool = False
    budget_webhook: str | None = None
    reclaim_every_s: float = 15.0
    lease_margin_s: float = 60.0
    rules_path: Path | None = None
    catalog_path: Path | None = None
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    openrouter: OpenRouterSettings = field(default_factory=OpenRouterSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)

    @property
    def upstream_budget_s(self) -> float:
        """Time a job may spend on OpenRouter: leaves room to settle and write the result."""
        return max(1.0, self.job_timeout_s - 5.0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        e = dict(os.environ if env is None else env)
        queues = tuple(q.strip() for q in e.get("ROUTEQ_QUEUES", "interactive,batch").split(",") if q.strip())
        if not queues:
            raise SettingsError("ROUTEQ_QUEUES: name at least one queue")
        return cls(
            redis_url=e.get("REDIS_URL", DEFAULT_URL),
            prefix=e.get("ROUTEQ_PREFIX", "routeq:"),
            queues=queues,
            max_jobs=env_int(e, "ROUTEQ_MAX_JOBS", 1000, low=1),
            interactive_reserve=env_int(e, "ROUTEQ_INTERACTIVE_RESERVE", 50, low=0),
            poll_delay_s=env_float(e, "ROUTEQ_POLL_DELAY_S", 0.5, low=0.001),
            scan_limit=env_int(e, "ROUTEQ_SCAN_LIMIT", 5000, low=1),
            job_timeout_s=env_int(e, "ROUTEQ_JOB_TIMEOUT_S", 120, low=5),
            shutdown_grace_s=env_int(e, "ROUTEQ_SHUTDOWN_GRACE_S", 25, low=0),
            max_tries=env_int(e, "ROUTEQ_MAX_TRIES", 3, low=1),
            result_ttl_s=env_int(e, "ROUTEQ_RESULT_TTL_S", 86_400, low=1),
            decisions_maxlen=env_int(e, "ROUTEQ_DECISIONS_MAXLEN", 100_000, low=1),
            store_prompts=e.get("ROUTEQ_STORE_PROMPTS", "0").lower() in {"1", "true", "yes"},
            budget_webhook=e.get("ROUTEQ_BUDGET_WEBHOOK") or None,
            reclaim_every_s=env_float(e, "ROUTEQ_RECLAIM_EVERY_S", 15.0, low=0.1),
            lease_margin_s=env_float(e, "ROUTEQ_LEASE_MARGIN_S", 60.0, low=0.5),
            rules_path=Path(e["ROUTEQ_RULES"]) if e.get("ROUTEQ_RULES") else None,
            catalog_path=Path(e["ROUTEQ_CATALOG"]) if e.get("ROUTEQ_CATALOG") else None,
            openrouter=OpenRouterSettings.from_env(e),
            breaker=BreakerSettings.from_env(e),
        )


__all__ = ["SettingsError", "WorkerSettings"]
