"""How outcomes are aggregated as jobs finish: the rollups' dimensions, metrics and field names.

Pure and shared: the finish script writes rollups from :func:`rollup_args` (no extra round trip),
and reports, suggestions, the dashboard and exports read them back with :func:`parse_field`.

One hash per UTC hour (``{prefix}rollup:YYYYMMDDHH``), one field per dimensions and metric:
``rule|model|variant|task_type|tenant|metric``. Metrics are integers added with HINCRBY, except
the feedback sums (HINCRBYFLOAT):

- ``n`` jobs; ``s:{status}`` by status; ``e:{error type}`` by error type; ``fb`` jobs served by
  a fallback (not their chain's first model);
- ``cost`` nano-USD charged; ``pt`` / ``ct`` prompt and completion tokens;
- ``h:{i}`` the latency histogram (``timing.total_ms``), bucket ``i`` as in :data:`LATENCY_BOUNDS_MS`;
- ``qn``, ``qs``, ``qq`` feedback count, sum and sum of squares (written by feedback, not by jobs);
  ``l:{label}`` feedback labels (the first ``FEEDBACK_LABEL_CAP`` = 100 distinct labels, kept in
  ``{prefix}rollup:dim:label``; later ones count as ``l:other``).

Cardinality is bounded: each dimension keeps a set of the values it has taken
(``{prefix}rollup:dim:{name}``) and a value past that dimension's cap (:data:`CAPS`) is written
as ``other``. Missing values are ``-``. The separator ``|`` inside a value becomes ``/``.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from producer_client.money import usd_to_nano

if TYPE_CHECKING:
    from producer_client.contract import Result

DIMENSIONS: Final = ("rule", "model", "variant", "task_type", "tenant")
CAPS: Final = {"rule": 200, "model": 500, "variant": 200, "task_type": 100, "tenant": 1000}
OTHER: Final = "other"
NONE: Final = "-"
SEP: Final = "|"
#: Upper bounds (exclusive, ms) of the latency buckets; the last bucket holds everything above.
LATENCY_BOUNDS_MS: Final = (10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
FEEDBACK_METRICS: Final = ("qn", "qs", "qq")


@dataclass(frozen=True)
class Dims:
    rule: str = NONE
    model: str = NONE
    variant: str = NONE  # "experiment:variant"
    task_type: str = NONE
    tenant: str = NONE

    def values(self) -> tuple[str, ...]:
        return (self.rule, self.model, self.variant, self.task_type, self.tenant)


def hour_of(ts: float) -> str:
    """The rollup hour (UTC) of an epoch time: ``2026113014``."""
    return _hour_name(int(ts // 3600))


@functools.lru_cache(maxsize=64)
def _hour_name(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")


def hour_start(hour: str) -> datetime:
    return datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC)


def clean(value: str | None) -> str:
    if not value:
        return NONE
    return value.replace(SEP, "/")[:200]


def dims_of(result: Result, tenant: str | None) -> Dims:
    r = result.routing
    exp = r.experiment if r is not None else None
    return Dims(
        rule=clean(r.rule if r else None),
        model=clean((r.model_served or r.model) if r else None),
        variant=clean(f"{exp.name}:{exp.variant}" if exp is not None else None),
        task_type=clean(r.task_type if r else None),
        tenant=clean(tenant),
    )


def bucket_of(latency_ms: int) -> int:
    return bisect.bisect_right(LATENCY_BOUNDS_MS, latency_ms)


def metrics_of(result: Result) -> list[tuple[str, int]]:
    r = result.routing
    out = [("n", 1), (f"s:{result.status}", 1), (f"h:{bucket_of(result.timing.total_ms)}", 1)]
    if result.error is not None:
        out.append((f"e:{clean(result.error.type)}", 1))
    if r is not None and r.model_served and r.chain and r.model_served != r.chain[0]:
        out.append(("fb", 1))
    if result.usage is not None:
        cost = usd_to_nano(result.usage.cost_usd)
        if cost:
            out.append(("cost", cost))
        if result.usage.prompt_tokens:
            out.append(("pt", result.usage.prompt_tokens))
        if result.usage.completion_tokens:
            out.append(("ct", result.usage.completion_tokens))
    return out


def field(dims: Sequence[str], metric: str) -> str:
    return SEP.join((*dims, metric))


def parse_field(name: str) -> tuple[Dims, str] | None:
    """(dimensions, metric) of a rollup hash field; None for a field of another shape."""
    parts = name.split(SEP)
    if len(parts) != len(DIMENSIONS) + 1:
        return None
    return Dims(*parts[:-1]), parts[-1]


def percentile_ms(histogram: Sequence[int], q: float) -> int | None:
    """The upper bound of the bucket holding the q-th quantile (0 < q < 1) of a latency histogram
    (counts per bucket, as :data:`LATENCY_BOUNDS_MS`); the last bucket reports its lower bound."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else LATENCY_BOUNDS_MS[-1]
    return LATENCY_BOUNDS_MS[-1]
