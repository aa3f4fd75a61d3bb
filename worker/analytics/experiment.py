"""One experiment's per-variant report: units, outcomes, sample-ratio check and lift (pure).

What TensorZero, Statsig and GrowthBook show per variant (anchors §1): units and jobs, the
primary metric (here the feedback quality) with its interval, guardrails (success rate, cost
per job, p95 latency), a sample-ratio-mismatch check of units against the configured weights,
and each variant's lift over control with a verdict only where the interval excludes zero.

Units are the distinct unit hashes a variant has seen since the experiment began (a HyperLogLog,
about 0.81 % error; the check allows for it), while jobs and quality cover the report's window.
The check only runs while the experiment is ``running``: paused and concluded experiments send
everyone to one variant on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.analytics.rollups import Metrics
from worker.analytics.stats import (
    HLL_RELATIVE_ERROR,
    Difference,
    RelativeLift,
    SampleRatio,
    Verdict,
    relative_lift,
    sample_ratio_check,
    verdict,
    welch_difference,
)

CONTROL = "control"


@dataclass(frozen=True)
class VariantRow:
    name: str
    weight: int | None  # None: not in the active rules (removed, or the experiment is gone)
    model: str | None  # the variant's model override; None: the rule's own decision
    units: int
    metrics: Metrics


@dataclass(frozen=True)
class Lift:
    """A variant's quality against control: absolute (Welch) and relative (delta method)."""

    variant: str
    difference: Difference | None
    relative: RelativeLift | None
    verdict: Verdict


@dataclass(frozen=True)
class ExperimentReport:
    name: str
    config: Mapping[str, Any] | None
    variants: tuple[VariantRow, ...]
    sample_ratio: SampleRatio | None
    sample_ratio_note: str
    lift: tuple[Lift, ...]

    @property
    def status(self) -> str:
        return str(self.config.get("status", "running")) if self.config else "unknown"


def variant_of(dimension: str, experiment: str) -> str | None:
    """The variant name of a rollup ``variant`` value (``experiment:variant``) of this experiment."""
    name, sep, variant = dimension.partition(":")
    return variant if sep and name == experiment else None


def build_report(
    name: str,
    config: Mapping[str, Any] | None,
    metrics: Mapping[str, Metrics],
    units: Mapping[str, int],
) -> ExperimentReport:
    """``metrics`` and ``units`` by variant name; ``config`` the experiment block of the rules."""
    configured = [v for v in (config or {}).get("variants") or () if isinstance(v, Mapping)]
    weights = {str(v.get("name")): int(v.get("weight") or 0) for v in configured}
    models = {str(v.get("name")): v.get("model") for v in configured}
    names = [*weights, *sorted(n for n in {*metrics, *units} if n not in weights)]
    rows = tuple(
        VariantRow(n, weights.get(n), models.get(n), units.get(n, 0), metrics.get(n, Metrics()))
        for n in names
    )
    srm, note = _sample_ratio(config, weights, units)
    control = metrics.get(CONTROL, Metrics()).quality
    lifts = []
    for row in rows:
        if row.name == CONTROL:
            continue
        quality = row.metrics.quality
        diff = welch_difference(quality, control)
        lifts.append(Lift(row.name, diff, relative_lift(quality, control),
                          verdict(diff.interval if diff else None)))
    return ExperimentReport(name, config, rows, srm, note, tuple(lifts))


def _sample_ratio(
    config: Mapping[str, Any] | None, weights: Mapping[str, int], units: Mapping[str, int]
) -> tuple[SampleRatio | None, str]:
    if config is None:
        return None, "not in the active rules: no configured weights to check against"
    status = config.get("status", "running")
    if status != "running":
        return None, f"not checked: the experiment is {status}, so the split is deliberate"
    check = sample_ratio_check(units, weights, relative_error=HLL_RELATIVE_ERROR)
    if check is None:
        return None, "not checked: no units yet"
    if check.mismatch:
        return check, ("MISMATCH: units do not follow the configured weights (p < 0.001); "
                       "find the cause (weights changed mid-way? units missing from contexts?) "
                       "before trusting the comparison")
    return check, "ok, units follow the configured weights"
