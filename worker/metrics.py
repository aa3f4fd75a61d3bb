"""Prometheus metrics of one worker process: what its jobs did, and gauges of the shared state.

The worker calls three methods (:class:`Metrics`): ``job_finished`` after each result is written,
``attempt`` after each upstream HTTP attempt, ``set_catalog`` when the model catalog changes.
Each costs a few dictionary lookups and counter increments (a few microseconds), so metrics stay
far below the worker's CPU budget per job. With ``ROUTEQ_METRICS_PORT`` unset the worker gets
:data:`NO_METRICS`, whose methods do nothing.

Names carry the ``routeq_`` prefix; label names follow OpenTelemetry's GenAI conventions where
one exists: ``model`` (``gen_ai.request.model``; for jobs, the model that served, else the one
routed to), ``token_type`` (``gen_ai.token.type``: input | output), ``error_type``
(``error.type``), ``status_code`` (``http.response.status_code``). The upstream latency
histogram uses the buckets OpenTelemetry recommends for ``gen_ai.client.operation.duration``.

Every label value is bounded, so a typo'd model id or a new error message cannot mint series
forever (LiteLLM's pitfall): models not in the catalog become ``other``; rules, error types and
queues keep their first values up to a cap, the rest become ``other``. Absent values are ``""``.

Each worker serves its own ``/metrics`` (worker/metrics_server.py), so nothing is shared between
processes (no multiprocess directory); sum over instances in PromQL. Gauges of shared state
(queue depth, budgets, circuits) are the same on every worker: take ``max`` over instances.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from producer_client.contract import Result
from producer_client.money import NANO_PER_USD, usd_to_nano
from worker.budget import BudgetState
from worker.catalog import Catalog
from worker.observe.queues import QueueState
from worker.openrouter.models import Attempt
from worker.settings import MetricsSettings

OTHER: Final = "other"
#: OpenTelemetry's advice for gen_ai.client.operation.duration (seconds).
LATENCY_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                          81.92)
QUEUE_WAIT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                             300.0, 600.0)
CAPS: Final = {"queue": 20, "rule": 200, "error_type": 60}
MAX_BUDGET_LINES: Final = 100  # exported budget lines: the most used first
BREAKER_VALUE: Final = {"closed": 0, "half_open": 1, "open": 2}
_LABEL_TEXT = re.compile(r"[^A-Za-z0-9_.:/@-]")


class Metrics(Protocol):
    """What the worker calls; see the module docstring."""

    def job_finished(self, queue: str, result: Result, written: bool) -> None: ...

    def attempt(self, attempt: Attempt) -> None: ...

    def set_catalog(self, catalog: Catalog) -> None: ...


class NoMetrics:
    """Metrics switched off: every call returns at once."""

    def job_finished(self, queue: str, result: Result, written: bool) -> None:
        return None

    def attempt(self, attempt: Attempt) -> None:
        return None

    def set_catalog(self, catalog: Catalog) -> None:
        return None


NO_METRICS: Final = NoMetrics()


def metrics_from_env(catalog: Catalog, env: Mapping[str, str] | None = None) -> Metrics:
    """:class:`PrometheusMetrics` when ``ROUTEQ_METRICS_PORT`` is set, else :data:`NO_METRICS`."""
    return PrometheusMetrics(catalog) if MetricsSettings.from_env(env).enabled else NO_METRICS


class Bounded:
    """A label's values: the first ``cap`` distinct ones pass, later ones become ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: dict[str, str] = {}

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        hit = self._seen.get(value)
        if hit is not None:
            return hit
        label = _LABEL_TEXT.sub("_", value)[:100] if len(self._seen) < self.cap else OTHER
        if label != OTHER:
            self._seen[value] = label
        return label


@dataclass(frozen=True)
class GaugeSnapshot:
    """Shared state read from Redis in the background (worker/metrics_gauges.py)."""

    queues: tuple[QueueState, ...] = ()
    budgets: tuple[BudgetState, ...] = ()
    breakers: Mapping[str, str] = field(default_factory=dict)  # model -> closed | half_open | open
    account_blocked: bool = False
    read_at: float = 0.0  # time.time() of the read; 0: never read


class PrometheusMetrics:
    """The metrics of one worker process, in their own registry."""

    def __init__(self, catalog: Catalog, *, registry: CollectorRegistry | None = None,
                 process: bool = True) -> None:
        reg = self.registry = registry or CollectorRegistry(auto_describe=True)
        self._models: frozenset[str] = frozenset(catalog.ids())
        self._queue = Bounded(CAPS["queue"])
        self._rule = Bounded(CAPS["rule"])
        self._error = Bounded(CAPS["error_type"])
        self.jobs = Counter("routeq_jobs", "Finished jobs (status 'duplicate': a job that ran twice, its "
                            "second result not written)", ["queue", "status", "rule", "model", "error_type"],
                            registry=reg)
        self.attempts = Counter("routeq_upstream_attempts", "Upstream HTTP attempts",
                                ["model", "status_code", "error_type"], registry=reg)
        self.queue_wait = Histogram("routeq_queue_wait_seconds", "Time from ready to started", ["queue"],
                                    buckets=QUEUE_WAIT_BUCKETS, registry=reg)
        self.upstream_latency = Histogram("routeq_upstream_latency_seconds", "One upstream attempt",
                                          ["model"], buckets=LATENCY_BUCKETS, registry=reg)
        self.job_duration = Histogram("routeq_job_duration_seconds", "A job's run, from start to result",
                                      ["queue", "status"], buckets=LATENCY_BUCKETS, registry=reg)
        self.cost = Counter("routeq_cost_usd", "Upstream cost charged, USD", ["model"], registry=reg)
        self.tokens = Counter("routeq_tokens", "Tokens used", ["model", "token_type"], registry=reg)
        self.fallbacks = Counter("routeq_fallbacks", "Jobs served by a model other than their chain's first",
                                 ["rule", "model"], registry=reg)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._gauges = _Gauges(self)
        reg.register(self._gauges)
        if process:
            ProcessCollector(registry=reg)

    # -- the worker's calls ------------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self._models = frozenset(catalog.ids())

    def model(self, model_id: str | None) -> str:
        if not model_id:
            return ""
        return model_id if model_id in self._models else OTHER

    def job_finished(self, queue: str, result: Result, written: bool) -> None:
        r = result.routing
        q = self._queue(queue)
        status = result.status if written else "duplicate"
        model = self.model((r.model_served or r.model) if r else None)
        rule = self._rule(r.rule if r else None)
        error = self._error(result.error.type if result.error else None)
        self._child(self.jobs, q, status, rule, model, error).inc()
        t = result.timing
        if t.queue_ms is not None:
            self._child(self.queue_wait, q).observe(t.queue_ms / 1000)
        self._child(self.job_duration, q, status).observe(t.total_ms / 1000)
        u = result.usage
        if u is not None:
            cost = usd_to_nano(u.cost_usd)
            if cost:
                self._child(self.cost, model).inc(cost / NANO_PER_USD)
            if u.prompt_tokens:
                self._child(self.tokens, model, "input").inc(u.prompt_tokens)
            if u.completion_tokens:
                self._child(self.tokens, model, "output").inc(u.completion_tokens)
        if r is not None and r.model_served and r.chain and r.model_served != r.chain[0]:
            self._child(self.fallbacks, rule, model).inc()

    def attempt(self, attempt: Attempt) -> None:
        model = self.model(attempt.model)
        code = str(attempt.status) if attempt.status is not None else ""
        self._child(self.attempts, model, code, self._error(attempt.error_type)).inc()
        self._child(self.upstream_latency, model).observe(attempt.latency_ms / 1000)

    # -- gauges --------------------------------------------------------------------------------------

    def set_gauges(self, snapshot: GaugeSnapshot) -> None:
        """The latest read of shared state (the background refresh calls this)."""
        self._gauges.snapshot = snapshot

    def set_slots(self, slots: Callable[[], tuple[int, int]]) -> None:
        """``slots()`` gives (in use, total), read at scrape time (no I/O: a counter)."""
        self._gauges.slots = slots

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


class _Gauges(Collector):
    """Gauges built at scrape time from the latest snapshot: no Redis call during a scrape."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self.metrics = metrics
        self.snapshot = GaugeSnapshot()
        self.slots: Callable[[], tuple[int, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # built per scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        if self.slots is not None:
            used, total = self.slots()
            yield GaugeMetricFamily("routeq_slots_used", "Job slots in use", value=used)
            yield GaugeMetricFamily("routeq_slots", "Job slots of this worker", value=total)
        if not s.read_at:
            return
        yield GaugeMetricFamily("routeq_shared_state_age_seconds", "Age of the last read of the gauges below",
                                value=max(0.0, time.time() - s.read_at))
        depth = GaugeMetricFamily("routeq_queue_depth", "Jobs waiting or running", labels=["queue"])
        ready = GaugeMetricFamily("routeq_queue_ready", "Jobs waiting to be claimed", labels=["queue"])
        for q in s.queues:
            depth.add_metric([q.name], q.depth)
            ready.add_metric([q.name], q.ready)
        yield depth
        yield ready
        spent = GaugeMetricFamily("routeq_budget_spent_usd", "Spent in the budget window, USD",
                                  labels=["budget", "scope", "window"])
        limit = GaugeMetricFamily("routeq_budget_limit_usd", "Budget limit, USD",
                                  labels=["budget", "scope", "window"])
        for b in sorted(s.budgets, key=lambda b: -b.used_ratio)[:MAX_BUDGET_LINES]:
            labels = [b.name, b.scope, b.window]
            spent.add_metric(labels, b.spent_nano / NANO_PER_USD)
            limit.add_metric(labels, b.limit_nano / NANO_PER_USD)
        yield spent
        yield limit
        state = GaugeMetricFamily("routeq_breaker_state", "Circuit per model: 0 closed, 1 half-open, 2 open",
                                  labels=["model"])
        worst: dict[str, int] = {}
        for model, name in s.breakers.items():
            label = self.metrics.model(model)
            worst[label] = max(worst.get(label, 0), BREAKER_VALUE.get(name, 0))
        for label, value in sorted(worst.items()):
            state.add_metric([label], value)
        yield state
        yield GaugeMetricFamily("routeq_account_blocked", "1 while OpenRouter calls are paused for this "
                                "worker's key (HTTP 401 or 402)", value=int(s.account_blocked))
