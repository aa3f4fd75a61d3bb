"""Every Redis key routeq touches, in one place, so producer and worker cannot drift apart.

All of them live under one prefix (``ROUTEQ_PREFIX``, default ``routeq:``), so staging and
production can share a Redis without seeing each other's jobs, and every key either has a TTL or
a documented owner: what writes it and what bounds it (see the README's key table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_PREFIX = "routeq:"
JOB_FUNCTION = "complete"
QUEUES = ("interactive", "batch")


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def queue(self, name: str = "interactive") -> str:
        """Queue zset of one priority class: score = when the job is ready (epoch ms); a claimed
        job's score is moved to its claim's expiry. No TTL: owner the finish script, which removes
        each job as it ends (bounded by ROUTEQ_MAX_QUEUE_DEPTH when set)."""
        return f"{self.prefix}queue:{name}"

    def wake(self, queue_key: str) -> str:
        """Pub/sub channel a producer pings after enqueueing, so idle workers start at once."""
        return f"{queue_key}:wake"

    def job(self, job_id: str) -> str:
        """The job's envelope (arq's ``{t, f, a, k, et}`` JSON), until the job finishes."""
        return f"{self.prefix}job:{job_id}"

    def tries(self, job_id: str) -> str:
        """How many times a worker claimed the job (counts crash re-runs)."""
        return f"{self.prefix}try:{job_id}"

    def result(self, job_id: str) -> str:
        """The job's result document (TTL: ROUTEQ_RESULT_TTL_S)."""
        return f"{self.prefix}result:{job_id}"

    def done(self, job_id: str) -> str:
        """List a waiter blocks on; the worker pushes one token when the result is written."""
        return f"{self.prefix}done:{job_id}"

    def batch_done(self, batch_id: str) -> str:
        """List of finished job ids of one batch, for ``as_completed`` without polling."""
        return f"{self.prefix}batch:{batch_id}:done"

    def failed_job(self, job_id: str) -> str:
        """A failed job's document, kept as long as its result so ``routeq retry`` can re-run it."""
        return f"{self.prefix}failedjob:{job_id}"

    @property
    def decisions(self) -> str:
        """Stream of routing decisions, one entry per finished job. No TTL: owner the workers'
        finish script, which caps it at ROUTEQ_DECISIONS_MAXLEN entries (XADD MAXLEN ~)."""
        return f"{self.prefix}decisions"

    @property
    def failed(self) -> str:
        """Sorted set of failed job ids (score = finish time), the dead-letter index. No TTL: owner
        the workers' finish script, which trims entries older than the results they point to."""
        return f"{self.prefix}failed"

    def worker(self, name: str) -> str:
        """One worker's heartbeat document (JSON, expires after three missed beats)."""
        return f"{self.prefix}worker:{name}"

    @property
    def workers(self) -> str:
        """Sorted set of worker names scored by their last heartbeat (epoch ms), to show lost ones.
        No TTL: owner the workers' heartbeat, which trims names silent for a day."""
        return f"{self.prefix}workers"

    # -- budgets (owner: the workers' budget scripts and ``routeq budget``) ----------------------

    def budget_line(self, name: str, scope: str, window: str) -> str:
        """Hash of one budget counter: spent, reserved, limit (nano-USD). TTL: its window's end
        plus a margin; a ``total`` window has none and is owned by ``routeq budget reset``."""
        return f"{self.prefix}budget:{name}:{scope}:{window}"

    def budget_prefix(self) -> str:
        """What every budget counter key starts with (for listings)."""
        return f"{self.prefix}budget:"

    @property
    def circuits(self) -> str:
        """Sorted set of the models' circuit hashes (``health:{model}``) scored by their expiry
        (epoch ms), so operators list circuits without a SCAN. No TTL: owner the circuit script,
        which adds a hash when it records a failure and removes it on success; readers drop
        members whose hash has expired."""
        return f"{self.prefix}health-circuits"

    @property
    def account_blocks(self) -> str:
        """Sorted set of the account-block keys (``health:account:{id}``) scored by when the block
        ends (epoch ms). No TTL: owner the worker that sets a block; readers drop ended ones."""
        return f"{self.prefix}health-blocks"

    @property
    def budget_lines(self) -> str:
        """Sorted set of every budget counter key, scored by the counter's expiry (unix s; +inf for
        ``total``), so operators list counters without a SCAN. No TTL: owner the reserve script,
        which adds each counter it writes; readers drop members whose expiry has passed."""
        return f"{self.prefix}budget-lines"

    @property
    def budget_alerts(self) -> str:
        """Stream of budget threshold crossings. No TTL: owner the budget scripts, which cap it
        at 10,000 entries."""
        return f"{self.prefix}budget:alerts"

    def reservation(self, job_try: str) -> str:
        """One try's open reservation (TTL: kept a week after it settles, for idempotent settles)."""
        return f"{self.prefix}resv:{job_try}"

    @property
    def reservation_leases(self) -> str:
        """Sorted set of open reservations scored by lease deadline (epoch ms). No TTL: owner the
        workers' reclaimer, which charges and removes every expired lease."""
        return f"{self.prefix}resv-leases"

    # -- versioned rules (owner: ``routeq rules``; kept until deleted by hand) ------------------

    def rules_version(self, number: int) -> str:
        """Hash of one immutable rules version: doc, hash, message, created_ms, by."""
        return f"{self.prefix}rules:v:{number}"

    @property
    def rules_next(self) -> str:
        """Counter of rules version numbers (INCR gives the next one)."""
        return f"{self.prefix}rules:next"

    @property
    def rules_active(self) -> str:
        """The active rules version number; absent: workers use their rules file."""
        return f"{self.prefix}rules:active"

    @property
    def rules_audit(self) -> str:
        """Stream of pushes and activations: who, when, what."""
        return f"{self.prefix}rules:audit"

    @property
    def rules_changed(self) -> str:
        """Pub/sub channel: an activation tells every worker at once."""
        return f"{self.prefix}rules:changed"

    # -- the model catalog (owner: ``routeq catalog sync`` and the workers' refresh) -------------

    def catalog_version(self, number: int) -> str:
        """Hash of one validated catalog version: doc, fetched_ms, models, refused, source."""
        return f"{self.prefix}catalog:v:{number}"

    @property
    def catalog_next(self) -> str:
        """Counter of catalog version numbers (INCR gives the next one)."""
        return f"{self.prefix}catalog:next"

    @property
    def catalog_active(self) -> str:
        """The catalog version number workers use; absent: the shipped snapshot."""
        return f"{self.prefix}catalog:active"

    @property
    def catalog_lock(self) -> str:
        """One syncing worker at a time (SET NX PX)."""
        return f"{self.prefix}catalog:lock"

    @property
    def catalog_report(self) -> str:
        """The last sync attempt's outcome (JSON), kept or refused and why."""
        return f"{self.prefix}catalog:report"

    @property
    def catalog_changed(self) -> str:
        """Pub/sub channel: a new active catalog."""
        return f"{self.prefix}catalog:changed"

    # -- outcomes (TTL: ROUTEQ_ROLLUP_DAYS, ROUTEQ_FEEDBACK_TTL_S) ---------------------------------

    def rollup(self, hour: str) -> str:
        """Hourly aggregate (``hour`` = ``YYYYMMDDHH`` UTC): one hash field per dimensions|metric."""
        return f"{self.prefix}rollup:{hour}"

    def rollup_day(self, day: str) -> str:
        """The day tier (``day`` = ``YYYYMMDD``, UTC): the same fields as the hours, summed per day,
        plus ``_first``, the earliest hour it counted. TTL ``ROUTEQ_ROLLUP_DAYS`` like the hours."""
        return f"{self.prefix}rollup:d:{day}"

    def rollup_dim(self, name: str) -> str:
        """Set of the values a rollup dimension has taken (bounded; the rest fold into "other")."""
        return f"{self.prefix}rollup:dim:{name}"

    def experiment_units(self, experiment: str, variant: str) -> str:
        """HyperLogLog of the unit hashes an experiment's variant has seen."""
        return f"{self.prefix}exp:{experiment}:{variant}:units"

    def feedback_ref(self, job_id: str) -> str:
        """Where a job's feedback goes: its rollup hour and dimensions (outlives the result)."""
        return f"{self.prefix}fbref:{job_id}"

    def feedback(self, job_id: str) -> str:
        """A job's feedback: score, label, comment, at (replaced by a second feedback)."""
        return f"{self.prefix}feedback:{job_id}"


def numbered_base(key_of: Callable[[int], str]) -> str:
    """The key ``key_of(n)`` minus its number, for Lua scripts that build ``base .. n`` themselves;
    ValueError if ``key_of`` does not simply end with the number."""
    base = key_of(0).removesuffix("0")
    if key_of(123) != f"{base}123":
        raise ValueError(f"{key_of.__qualname__} must end with the version number")
    return base


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern (a prefix may hold ``*`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
