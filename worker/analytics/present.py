"""How outcome figures are shown: one JSON shape and one text form per figure, for every command.

Money stays exact: nano-USD integers become decimal strings (``producer_client.money``), and a
per-job or per-1,000-jobs cost is rounded half up to the nano-USD. Latency percentiles are the
upper bounds of histogram buckets (``p95 <= 500 ms``), not interpolations.
"""

from __future__ import annotations

from typing import Any

from producer_client.money import nano_to_usd
from worker.analytics.rollups import Metrics
from worker.analytics.stats import Interval, Mean, wilson_interval


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def percent(part: int, whole: int) -> str:
    return "-" if whole == 0 else f"{100 * part / whole:.1f}%"


def per_jobs_nano(cost_nano: int, jobs: int, per: int = 1) -> int | None:
    """Cost of ``per`` jobs at the mean, rounded half up to the nano-USD."""
    return None if jobs == 0 else (2 * cost_nano * per + jobs) // (2 * jobs)


def usd(nano: int | None) -> str | None:
    return None if nano is None else nano_to_usd(nano)


def interval_json(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval.low, interval.high]


def mean_json(mean: Mean) -> dict[str, Any]:
    return {"n": mean.n, "mean": mean.mean, "ci95": interval_json(mean.interval)}


def mean_text(mean: Mean, digits: int = 3) -> str:
    if mean.mean is None:
        return "-"
    if mean.interval is None:
        return f"{mean.mean:.{digits}f}"
    return f"{mean.mean:.{digits}f} [{mean.interval.low:.{digits}f}, {mean.interval.high:.{digits}f}]"


def metrics_json(m: Metrics) -> dict[str, Any]:
    return {
        "jobs": m.n,
        "succeeded": m.succeeded,
        "success_rate": ratio(m.succeeded, m.n),
        "success_ci95": interval_json(wilson_interval(m.succeeded, m.n)),
        "fallbacks": m.fallbacks,
        "fallback_rate": ratio(m.fallbacks, m.n),
        "statuses": dict(m.statuses),
        "errors": dict(m.errors),
        "cost_usd": nano_to_usd(m.cost_nano),
        "cost_per_job_usd": usd(per_jobs_nano(m.cost_nano, m.n)),
        "cost_per_1k_jobs_usd": usd(per_jobs_nano(m.cost_nano, m.n, 1000)),
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "latency_ms": {"p50": m.latency_ms(0.5), "p95": m.latency_ms(0.95), "histogram": list(m.histogram)},
        "quality": mean_json(m.quality),
        "labels": dict(m.labels),
    }
