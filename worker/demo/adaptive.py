"""``routeq demo --adaptive``: the learn-from-outcomes loop, end to end, one table per step.

1. Rules version 1: classification jobs get a rule of their own on the mid tier (what the
   catch-all gave them), with a 50/50 experiment by user against the budget tier's model; pushed
   and activated in Redis, and the running worker reloads it.
2. Round 1: classification jobs from many users through the worker.
3. Simulated feedback: the emulator labels with a configured accuracy per model (the cheaper one
   about as accurate); each answer is scored 1 if its label is the true one, else 0.
4. ``routeq report experiment``: both arms side by side.
5. ``routeq suggest``: the cheaper model is non-inferior, so route classification there.
6. Rules version 2 (the suggested document), pushed and activated; the worker reloads again.
7. Round 2: the same traffic, the same feedback.
8. Round 1 against round 2: cost per job down, quality held.

The demo's rounds are small (a few hundred jobs, so it runs in well under a minute), so it asks
``suggest`` for fewer samples and a wider tolerance than its defaults, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TextIO

from worker.analytics.suggest import Settings
from worker.analytics.window import Window
from worker.demo.adaptive_rules import (
    EXPERIMENT,
    RULE,
    Activated,
    experiment_doc,
    push_and_activate,
    route_of,
    shipped_catalog,
    shipped_doc,
    tier,
)
from worker.demo.dashboard import DashboardOptions
from worker.demo.ending import finish
from worker.demo.review import SuggestStep, indent, report_experiment, suggest_routes
from worker.demo.rounds import TASK_TYPE, RoundOutcome, RoundSummary, round_jobs, run_round
from worker.demo.stack import WORKER_NAME, DemoStack, demo_stack
from worker.demo.tables import (
    arm_lines,
    comparison_lines,
    feedback_lines,
    print_lines,
    step_title,
    table_lines,
)

JOBS_PER_ROUND: Final = 400
#: ``routeq suggest`` defaults to 200 scored jobs per model and a 0.02 tolerance: sized for a
#: week of traffic. A 50/50 round of 400 gives each model ~200, so the demo asks for 100, and
#: allows 0.05 (the interval of a difference of two ~200-job means is about +-0.05 wide).
MIN_SAMPLES: Final = 100
TOLERANCE: Final = 0.05
#: Per tier, the chance of labelling a prompt right: the cheaper model is about as accurate.
ACCURACY: Final = {"mid": 0.94, "budget": 0.94}


@dataclass(frozen=True)
class AdaptiveOutcome:
    ok: bool  # every job succeeded, a route was proposed, and round 2 cost less with quality held
    rounds: tuple[RoundSummary, ...]
    doc: dict[str, Any]  # what ``--json`` prints


@dataclass(frozen=True)
class Verdict:
    cost_change: float | None  # relative change of the cost per job, round 2 against round 1
    quality_difference: float | None
    tolerance: float

    @property
    def cheaper(self) -> bool:
        return self.cost_change is not None and self.cost_change < 0

    @property
    def held(self) -> bool:
        return self.quality_difference is not None and self.quality_difference >= -self.tolerance

    @property
    def line(self) -> str:
        cost = "-" if self.cost_change is None else f"{100 * self.cost_change:+.1f}%"
        quality = "-" if self.quality_difference is None else f"{self.quality_difference:+.3f}"
        held = "held: within" if self.held else "NOT held: beyond"
        return f"cost per job {cost}; quality {quality} ({held} the {self.tolerance:g} tolerance)"

    def as_json(self) -> dict[str, Any]:
        return {"cost_per_job_change": self.cost_change, "quality_difference": self.quality_difference,
                "cost_down": self.cheaper, "quality_held": self.held}


def compare(before: RoundSummary, after: RoundSummary, tolerance: float = TOLERANCE) -> Verdict:
    a, b = before.cost_per_job_nano, after.cost_per_job_nano
    qa, qb = before.quality.mean, after.quality.mean
    return Verdict(None if not a or b is None else (b - a) / a,
                   None if qa is None or qb is None else qb - qa, tolerance)


async def run_adaptive(url: str, *, out: TextIO, jobs: int = JOBS_PER_ROUND,
                       dashboard: DashboardOptions | None = None) -> AdaptiveOutcome:
    async with demo_stack(url, out=out, max_jobs=100, poll_delay_s=0.05) as stack:
        outcome = await _Loop(stack, jobs, out).run()
        await finish(stack, dashboard, out=out)
    return outcome


class _Loop:
    """The steps, in order; each prints its table."""

    def __init__(self, stack: DemoStack, count: int, out: TextIO) -> None:
        self.stack, self.count, self.out = stack, count, out
        self.base = shipped_doc()
        self.control, self.cheaper = tier(self.base, "mid"), tier(self.base, "budget")
        self.accuracy = {tier(self.base, name): value for name, value in ACCURACY.items()}
        self.started = datetime.now(UTC)
        self.v1_doc: dict[str, Any] = {}
        self.doc: dict[str, Any] = {
            "backend": "redis" if stack.backend.real else "stand-in", "jobs_per_round": count,
            "min_samples": MIN_SAMPLES, "tolerance": TOLERANCE, "accuracy": self.accuracy,
        }

    def show(self, number: int, title: str, lines: list[str]) -> None:
        print_lines([*step_title(number, title), *lines], self.out)

    async def run(self) -> AdaptiveOutcome:
        self.stack.emulator.set_faults({"models": {m: {"accuracy": a} for m, a in self.accuracy.items()}})
        v1 = await self.experiment()
        jobs = round_jobs(self.count)
        first = await run_round(self.stack.client, 1, jobs)
        self.show(2, f"round 1: {self.count} {TASK_TYPE} jobs from {self.count} users "
                     f"({first.seconds:.1f} s, feedback included)", arm_lines(first.results))
        self.show(3, "simulated feedback: the emulator labels right with each model's accuracy; score 1 when "
                     "the label is the true one, else 0 (Client.feedback)",
                  feedback_lines(first.results, first.scores, self.accuracy))
        span = Window(self.started.replace(minute=0, second=0, microsecond=0),
                      datetime.now(UTC) + timedelta(seconds=1))
        report = await report_experiment(self.stack.redis, self.stack.keys, EXPERIMENT, span)
        self.show(4, f"routeq report experiment {EXPERIMENT}", indent(report.lines))
        self.doc["experiment"] = report.doc
        review = await self.suggest(span)
        ours = review.about(TASK_TYPE, RULE)
        if review.doc is None or ours is None or ours.action != "route":
            why = ours.why if ours else f"nothing about the {RULE} rule"
            print(f"\nrouteq demo: suggest proposed no route ({why}); stopping here", file=self.out)
            return AdaptiveOutcome(False, (first.summary,), {**self.doc, "rounds": [first.summary.as_json()]})
        v2 = await self.activate_suggestion(v1, review.doc)
        second = await run_round(self.stack.client, 2, jobs)
        self.show(7, f"round 2: the same {self.count} jobs on rules version {v2.number} "
                     f"({second.seconds:.1f} s, feedback included)", arm_lines(second.results))
        return self.compare(first, second, (v1, v2))

    async def experiment(self) -> Activated:
        doc = experiment_doc(self.base)
        v1 = await push_and_activate(self.stack.redis, self.stack.keys, doc, worker=WORKER_NAME,
                                     message=f"routeq demo: experiment {EXPERIMENT}")
        self.v1_doc = doc
        self.show(1, f"rules version {v1.number}: a {RULE} rule with experiment {EXPERIMENT}, pushed and "
                     f"activated (the worker reloaded in {v1.reload_s:.2f} s)",
                  table_lines(["version", "rule", "when", "model", "experiment", "variants (by user_id)"],
                              [[v1.number, RULE, f"task_type = {TASK_TYPE}", f"{self.control} (mid tier)",
                                EXPERIMENT, f"50% control, 50% cheaper: {self.cheaper}"]]))
        return v1

    async def suggest(self, span: Window) -> SuggestStep:
        settings = Settings(MIN_SAMPLES, TOLERANCE, max(1, int(span.seconds)))
        review = await suggest_routes(self.stack.redis, self.stack.keys, span, settings, shipped_catalog())
        self.show(5, f"routeq suggest --min-samples {MIN_SAMPLES} --tolerance {TOLERANCE:g} (its defaults, "
                     f"200 and 0.02, are sized for a week of traffic; a round here is {self.count} jobs)",
                  indent(review.lines))
        self.doc["suggestions"] = review.as_json()
        return review

    async def activate_suggestion(self, v1: Activated, doc: dict[str, Any]) -> Activated:
        v2 = await push_and_activate(self.stack.redis, self.stack.keys, doc, worker=WORKER_NAME,
                                     message="routeq demo: routeq suggest's proposal")
        experiments = doc.get("experiments") or ()
        ended: dict[str, Any] = next((e for e in experiments if e.get("name") == EXPERIMENT), {})
        concluded = f"{ended.get('status', '-')} (winner {ended.get('winner', '-')})"
        rows = []
        for version, d, state in ((v1, self.v1_doc, "running"), (v2, doc, concluded)):
            model, fallbacks = route_of(d, RULE)
            rows.append([version.number, version.hash, RULE, model, ", ".join(fallbacks), state])
        self.show(6, f"rules version {v2.number}: the suggested rules, pushed and activated (the worker "
                     f"reloaded in {v2.reload_s:.2f} s)",
                  table_lines(["version", "hash", "rule", "model", "fallbacks", f"experiment {EXPERIMENT}"],
                              rows))
        return v2

    def compare(self, first: RoundOutcome, second: RoundOutcome,
                versions: tuple[Activated, Activated]) -> AdaptiveOutcome:
        rounds = (first.summary, second.summary)
        verdict = compare(*rounds)
        self.show(8, "round 1 against round 2", [*comparison_lines(rounds), "", verdict.line])
        ok = verdict.cheaper and verdict.held and all(r.succeeded == r.jobs for r in rounds)
        self.doc.update({"rules_versions": [v.number for v in versions],
                         "rounds": [r.as_json() for r in rounds], **verdict.as_json()})
        return AdaptiveOutcome(ok, rounds, self.doc)
