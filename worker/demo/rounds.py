"""One round of the adaptive demo: classification jobs from many users, then simulated feedback.

The emulator labels each classification prompt right with the accuracy configured for the model
that served it (deterministic per prompt, ``worker/emulator/content.py``), so a labeller who knows
the true label scores each answer 1 (right) or 0 (wrong), and sends it with ``Client.feedback``,
as a product's users would. A round's summary comes from the results and the scores themselves
(the rollups are hourly, so they cannot tell two rounds a minute apart).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from producer_client.client import Client
from producer_client.contract import Result
from producer_client.money import usd_to_nano
from worker.analytics.present import mean_json, per_jobs_nano, ratio, usd
from worker.analytics.stats import Mean, mean_from_sums
from worker.emulator.content import LABEL_PREFIX, true_label

TASK_TYPE: Final = "classification"
_REVIEWS: Final = (
    "the delivery was late and the box was crushed",
    "works exactly as described, would buy again",
    "it is a phone case; it holds the phone",
    "support answered within minutes and fixed it",
    "stopped charging after two days",
    "the colour is a little darker than in the photos",
    "best purchase this year, the battery lasts forever",
    "arrived on time, nothing special",
    "the manual is missing half the steps",
    "my kids love it and it survived the first week",
    "average sound, fair price",
    "refund still not processed after a month",
)
_FEEDBACK_CHUNK: Final = 200  # feedback calls in flight at once


@dataclass(frozen=True)
class Job:
    prompt: str
    user_id: str


def round_jobs(count: int) -> list[Job]:
    """The same ``count`` classification prompts, one user each, every round (same traffic)."""
    return [Job(f"Classify the sentiment of customer review #{i + 1}: {_REVIEWS[i % len(_REVIEWS)]}",
                f"user-{i + 1:04d}") for i in range(count)]


def score(prompt: str, content: str | None) -> float:
    """A labeller who knows the answers: 1 for the true label, else 0."""
    return 1.0 if content == LABEL_PREFIX + true_label(prompt) else 0.0


@dataclass(frozen=True)
class RoundOutcome:
    number: int
    results: tuple[Result, ...]
    scores: tuple[float | None, ...]  # None: the job did not succeed, no feedback
    seconds: float

    @property
    def summary(self) -> RoundSummary:
        return summarise(self.number, self.results, self.scores)


async def run_round(
    client: Client, number: int, jobs: Sequence[Job], *, timeout_s: float = 120.0
) -> RoundOutcome:
    """Submit every job, wait for all, then send each succeeded job's feedback."""
    started = time.monotonic()
    specs = [{"prompt": job.prompt, "context": {"user_tier": "pro", "task_type": TASK_TYPE,
                                                  "user_id": job.user_id}} for job in jobs]
    handles = await client.submit_many(specs)
    results = await client.wait_all([h.job_id for h in handles], batch_id=handles[0].batch_id,
                                    timeout=timeout_s)
    scores = [score(job.prompt, r.content) if r.status == "succeeded" else None
              for job, r in zip(jobs, results, strict=True)]
    scored = [(r.job_id, s) for r, s in zip(results, scores, strict=True) if s is not None]
    for start in range(0, len(scored), _FEEDBACK_CHUNK):
        chunk = scored[start : start + _FEEDBACK_CHUNK]
        await asyncio.gather(*(client.feedback(job_id, score=s) for job_id, s in chunk))
    return RoundOutcome(number, tuple(results), tuple(scores), time.monotonic() - started)


@dataclass(frozen=True)
class RoundSummary:
    number: int
    rules_versions: tuple[int, ...]  # the rules versions that routed the round's jobs
    jobs: int
    succeeded: int
    cost_nano: int
    quality: Mean
    served: Mapping[str, int]  # model served -> jobs
    variants: Mapping[str, int]  # experiment variant -> jobs ("-" outside the experiment)

    @property
    def cost_per_job_nano(self) -> int | None:
        return per_jobs_nano(self.cost_nano, self.jobs)

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.number, "rules_versions": list(self.rules_versions), "jobs": self.jobs,
            "succeeded": self.succeeded, "success_rate": ratio(self.succeeded, self.jobs),
            "cost_usd": usd(self.cost_nano), "cost_per_job_usd": usd(self.cost_per_job_nano),
            "quality": mean_json(self.quality), "served": dict(self.served), "variants": dict(self.variants),
        }


def summarise(number: int, results: Sequence[Result], scores: Sequence[float | None]) -> RoundSummary:
    given = [s for s in scores if s is not None]
    served: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    versions: set[int] = set()
    for r in results:
        routing = r.routing
        if routing is None:
            continue
        served[routing.model_served or "-"] += 1
        variants[routing.experiment.variant if routing.experiment else "-"] += 1
        if routing.rules_number is not None:
            versions.add(routing.rules_number)
    return RoundSummary(
        number=number,
        rules_versions=tuple(sorted(versions)),
        jobs=len(results),
        succeeded=sum(r.status == "succeeded" for r in results),
        cost_nano=sum(usd_to_nano(r.usage.cost_usd) for r in results if r.usage),
        quality=mean_from_sums(len(given), sum(given), sum(s * s for s in given)),
        served=dict(served.most_common()),
        variants=dict(sorted(variants.items())),
    )
