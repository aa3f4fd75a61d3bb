"""Every Redis key routeq touches, in one place, so producer and worker cannot drift apart.

All of them live under one prefix (``ROUTEQ_PREFIX``, default ``routeq:``), so staging and
production can share a Redis without seeing each other's jobs, and every key either has a TTL or
a documented owner (see the README's key table).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "routeq:"
JOB_FUNCTION = "complete"
QUEUES = ("interactive", "batch")


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def queue(self, name: str = "interactive") -> str:
        """Queue zset of one priority class: score = when the job is ready (epoch ms); a claimed
        job's score is moved to its claim's expiry."""
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
        return f"{self.prefix}decisions"

    @property
    def failed(self) -> str:
        """Sorted set of failed job ids (score = finish time), the dead-letter index."""
        return f"{self.prefix}failed"

    def worker(self, name: str) -> str:
        """One worker's heartbeat document (JSON, expires after three missed beats)."""
        return f"{self.prefix}worker:{name}"

    @property
    def workers(self) -> str:
        """Sorted set of worker names scored by their last heartbeat (epoch ms), to show lost ones."""
        return f"{self.prefix}workers"


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a SCAN MATCH pattern (a prefix may hold ``*`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
