"""Every Redis key routeq touches, in one place, so producer and worker cannot drift apart.

arq's own keys (``arq:job:*``, ``arq:in-progress:*`` …) have fixed prefixes in arq; ours take a
configurable prefix (default ``routeq:``).
"""

from __future__ import annotations

from dataclasses import dataclass

ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"

JOB_FUNCTION = "complete"
QUEUES = ("interactive", "batch")


@dataclass(frozen=True)
class Keys:
    prefix: str = "routeq:"

    def queue(self, name: str = "interactive") -> str:
        """arq's queue zset for one priority class."""
        return f"{self.prefix}queue:{name}"

    def wake(self, queue_key: str) -> str:
        """Pub/sub channel a producer pings after enqueueing, so idle workers start at once."""
        return f"{queue_key}:wake"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}result:{job_id}"

    def done(self, job_id: str) -> str:
        """List a waiter BLPOPs; the worker pushes one token when the result is written."""
        return f"{self.prefix}done:{job_id}"

    def batch_done(self, batch_id: str) -> str:
        """List of finished job ids of one batch, for ``as_completed`` without polling."""
        return f"{self.prefix}batch:{batch_id}:done"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}decisions"

    @property
    def failed(self) -> str:
        """Sorted set of failed job ids (score = finish time), the dead-letter index."""
        return f"{self.prefix}failed"

    @staticmethod
    def arq_job(job_id: str) -> str:
        return ARQ_JOB_PREFIX + job_id

    @staticmethod
    def arq_result(job_id: str) -> str:
        return ARQ_RESULT_PREFIX + job_id
