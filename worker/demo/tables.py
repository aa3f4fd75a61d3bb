"""The demos' tables, printed with the command line's one table printer and the figures'
shared text forms (``worker/analytics/present.py``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TextIO

from producer_client.contract import Result
from producer_client.money import usd_to_nano
from worker.analytics.present import mean_text, per_jobs_nano, percent, usd
from worker.analytics.stats import mean_from_sums
from worker.cli.table import render_table
from worker.demo.rounds import RoundSummary


def print_lines(lines: Sequence[str], out: TextIO) -> None:
    for line in lines:
        print(line, file=out)


def step_title(number: int, text: str) -> list[str]:
    return ["", f"step {number}: {text}"]


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    return render_table(headers, rows, align=align, rule=True)


def routing_lines(names: Sequence[str], results: Sequence[Result]) -> list[str]:
    """One row per job: how it was routed, what served it, what it cost."""
    headers = ["job", "status", "rule", "model", "served model", "cost (USD)", "latency"]
    rows = []
    for name, r in zip(names, results, strict=True):
        routing = r.routing
        rows.append([
            name,
            r.status,
            routing.rule if routing else "-",
            routing.model if routing else "-",
            (routing.model_served or "-") if routing else "-",
            r.usage.cost_usd if r.usage else "-",
            f"{r.timing.total_ms} ms",
        ])
    return table_lines(headers, rows)


def _served(r: Result) -> str:
    return (r.routing.model_served or r.routing.model) if r.routing else "-"


def arm_lines(results: Sequence[Result]) -> list[str]:
    """Per experiment variant and served model: jobs, success rate, cost per job."""
    arms: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in results:
        variant = r.routing.experiment.variant if r.routing and r.routing.experiment else "-"
        row = arms[(variant, _served(r))]
        row[0] += 1
        row[1] += r.status == "succeeded"
        row[2] += usd_to_nano(r.usage.cost_usd) if r.usage else 0
    rows = [[variant, model, n, percent(ok, n), usd(per_jobs_nano(cost, n))]
            for (variant, model), (n, ok, cost) in sorted(arms.items())]
    return table_lines(["variant", "model served", "jobs", "success", "cost/job USD"], rows, align="<<>>>")


def feedback_lines(results: Sequence[Result], scores: Sequence[float | None],
                   accuracy: Mapping[str, float]) -> list[str]:
    """Per served model: the accuracy the emulator was given, and the quality the scores measured."""
    scored: dict[str, list[float]] = defaultdict(list)
    for r, s in zip(results, scores, strict=True):
        if s is not None:
            scored[_served(r)].append(s)
    rows = []
    for model, values in sorted(scored.items()):
        mean = mean_from_sums(len(values), sum(values), sum(v * v for v in values))
        rows.append([model, f"{accuracy.get(model, 1.0):g}", len(values), mean_text(mean)])
    return table_lines(["model", "accuracy set", "scored", "quality [95% CI]"], rows, align="<>><")


def comparison_lines(rounds: Sequence[RoundSummary]) -> list[str]:
    """One row per round: rules, jobs, success, what served, cost per job and in total, quality."""
    rows = [[r.number, ", ".join(map(str, r.rules_versions)) or "file", r.jobs, percent(r.succeeded, r.jobs),
             ", ".join(f"{model.split('/')[-1]} {n}" for model, n in r.served.items()),
             usd(r.cost_per_job_nano) or "-", usd(r.cost_nano), mean_text(r.quality), r.quality.n]
            for r in rounds]
    return table_lines(["round", "rules", "jobs", "success", "served", "cost/job USD", "total USD",
                        "quality [95% CI]", "scored"], rows, align=">>>><>><>")
