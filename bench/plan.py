"""How big each section's runs are, and how long any one run may take.

Every load run has a wall-clock cap: a run that hits it reports what finished (marked
``partial``) instead of holding the whole suite hostage, so the default suite stays near four
minutes even when routeq is slow, and a fast routeq simply finishes well inside the caps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    quick: bool
    rules_contexts: int = 1000
    rules_repeats: int = 5
    e2e_zero_jobs: int = 2000
    e2e_slow_jobs: int = 3000
    e2e_max_jobs: int = 1000
    e2e_cpu_max_jobs: int = 200  # the zero-latency case: CPU per job, as the issue measures it
    e2e_cap_s: float = 35.0
    ledger_pairs: int = 2000
    budget_jobs: int = 1000
    budget_cap_s: float = 20.0
    enqueue_jobs: int = 10_000
    pickup_jobs: int = 200
    pickup_gap_s: float = 0.020
    scale_workers: tuple[int, ...] = (1, 2, 4, 8)
    scale_rounds: int = 6
    scale_max_jobs: int = 25
    scale_cap_s: float = 25.0
    memory_inflight: int = 1000
    memory_latency_ms: int = 5000
    upstream_calls: int = 1000
    upstream_concurrency: int = 250
    upstream_cap_s: float = 10.0

    @classmethod
    def default(cls) -> Plan:
        return cls(quick=False)

    @classmethod
    def smoke(cls) -> Plan:
        """``--quick``: every section, small counts, about a minute."""
        return cls(
            quick=True,
            rules_contexts=200,
            rules_repeats=3,
            e2e_zero_jobs=300,
            e2e_slow_jobs=500,
            e2e_cap_s=12.0,
            ledger_pairs=300,
            budget_jobs=200,
            budget_cap_s=8.0,
            enqueue_jobs=2000,
            pickup_jobs=50,
            scale_workers=(1, 2),
            scale_rounds=3,
            scale_cap_s=8.0,
            memory_inflight=1000,
            memory_latency_ms=3000,
            upstream_calls=500,
            upstream_cap_s=6.0,
        )
