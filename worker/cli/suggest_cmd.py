"""``routeq suggest``: cheaper routes the outcome data supports, and what data is still missing.

For each task type and rule with jobs in the window, a cheaper model that served them (as an
experiment variant or a fallback) is proposed when it has ``--min-samples`` scored jobs and its
quality is not worse than the current model's by more than ``--tolerance`` (one-sided
non-inferiority at 95 %), with the saving per month at the observed volume. Otherwise it says what
is missing, with a ready experiment block where one would answer the question.

``--write FILE`` writes a complete rules document: the active rules (the Redis version, else the
rules file) plus every proposed route, or, when nothing is proposed, plus the suggested
experiments. It is checked with the same loader and catalog as ``routeq rules push`` first.
Exit codes: 0; 1 ``--write`` had nothing to write; 2 bad usage; 4 Redis.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from worker.cli import exits
from worker.cli.common import fail, pinned_catalog, print_json, with_redis
from worker.cli.table import render_table

if TYPE_CHECKING:
    from redis.asyncio import Redis


def register(sub: Any) -> None:
    p = sub.add_parser("suggest", help="propose cheaper routes the outcome data supports",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--since", default="7d", help="start: 90m, 36h, 7d, 2w or an ISO date-time (default 7d)")
    p.add_argument("--until", help="end, same forms (default: now)")
    p.add_argument("--min-samples", type=int, default=200, metavar="N",
                   help="scored jobs each model needs before it is compared (default 200)")
    p.add_argument("--tolerance", type=float, default=0.02, metavar="Q",
                   help="how much lower a cheaper model's mean quality may be (default 0.02)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--write", type=Path, metavar="FILE", help="write the rules document with the changes")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_suggest)


def _suggest(args: argparse.Namespace) -> int:
    from worker.analytics.active_rules import active_rules
    from worker.analytics.rollups import RollupReader
    from worker.analytics.suggest import Settings, suggest
    from worker.analytics.window import WindowError, window
    from worker.catalog_store import fleet_catalog
    from worker.cli.report_cmd import keys_from_env
    from worker.rules import RulesError, compile_rules

    if args.min_samples < 2 or not 0 <= args.tolerance < 1:
        return fail("--min-samples must be >= 2 and --tolerance in [0, 1)", exits.USAGE)
    try:
        span = window(args.since, args.until)
    except WindowError as exc:
        return fail(str(exc), exits.USAGE)
    keys = keys_from_env()

    async def go(redis: Redis) -> Any:
        rules = await active_rules(redis, keys)
        by = ("task_type", "rule", "model")
        rollup = await RollupReader(redis, keys).read(span.since, span.until, by)
        catalog, _ = await fleet_catalog(redis, keys, pinned_catalog())
        return rules, rollup, catalog

    active, rollup, catalog = with_redis(args.redis, go)
    try:
        ruleset = compile_rules(active.doc, source=active.source, catalog=catalog)
    except RulesError as exc:
        return fail(f"the active rules ({active.source}) do not load: {exc}", exits.FAILED)
    settings = Settings(args.min_samples, args.tolerance, max(1, int(span.seconds)))
    suggestions = suggest(ruleset, active.doc, rollup.groups, catalog, settings)
    written = None
    if args.write is not None:
        code, written = _write(args.write, active.doc, suggestions, catalog)
        if code != exits.OK:
            return code
    if args.format == "json":
        print_json({"since": rollup.since.isoformat(), "until": rollup.until.isoformat(),
                    "rules_source": active.source, "min_samples": args.min_samples,
                    "tolerance": args.tolerance, "suggestions": [suggestion_json(s) for s in suggestions],
                    "written": written})
    else:
        head = (f"suggestions from jobs {span.describe()}; rules: {active.source}; "
                f"min samples {args.min_samples}, tolerance {args.tolerance:g}")
        for line in [head, "", *suggestion_lines(suggestions)]:
            print(line)
        if written:
            print(f"\nwrote {written}: check it with `routeq rules check {written}`, then "
                  f"`routeq rules push {written} --activate`")
    return exits.OK


def _write(path: Path, doc: Any, suggestions: list[Any], catalog: Any) -> tuple[int, str | None]:
    from worker.analytics.suggest import apply_edits
    from worker.rules import RulesError, compile_rules

    routes = [s.edit for s in suggestions if s.action == "route" and s.edit is not None]
    experiments = [s.edit for s in suggestions if s.action == "experiment" and s.edit is not None]
    edits = routes or experiments
    if not edits:
        return fail(f"nothing to write to {path}: no route to propose and no experiment to start"), None
    new_doc = apply_edits(doc, edits)
    try:
        compile_rules(new_doc, source=str(path), catalog=catalog)
    except RulesError as exc:  # a bug here, never the user's: say so instead of writing it
        return fail(f"the suggested rules do not validate, nothing written: {exc}"), None
    path.write_bytes(orjson.dumps(new_doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return exits.OK, str(path)


def _outcome_json(o: Any) -> dict[str, Any] | None:
    from worker.analytics.present import mean_json, usd

    if o is None:
        return None
    return {"model": o.model, "jobs": o.jobs, "cost_per_job_usd": usd(o.cost_per_job_nano),
            "quality": mean_json(o.quality)}


def suggestion_json(s: Any) -> dict[str, Any]:
    from worker.analytics.present import usd

    test, edit = s.test, s.edit
    return {
        "task_type": s.task_type, "rule": s.rule, "action": s.action, "why": s.why, "jobs": s.jobs,
        "current": _outcome_json(s.current), "candidate": _outcome_json(s.candidate),
        "non_inferiority": None if test is None else {
            "margin": test.margin, "difference": test.difference, "lower_bound": test.lower_bound,
            "p_value": test.p_value, "non_inferior": test.non_inferior,
        },
        "monthly_saving_usd": usd(s.monthly_saving_nano),
        "change": None if edit is None else {
            "rule": edit.rule, "replaces": edit.replaces, "before": edit.before,
            "experiment": edit.experiment, "conclude_experiment": edit.conclude,
        },
    }


def suggestion_lines(suggestions: list[Any]) -> list[str]:
    from worker.analytics.present import mean_text, usd

    if not suggestions:
        return ["no jobs with a task type and a rule in this window: nothing to review"]
    lines: list[str] = []
    for s in suggestions:
        title = f"{s.task_type} / rule {s.rule}: {s.action.upper()}"
        if s.action in ("route", "experiment") and s.candidate is not None:
            title += f" {s.candidate.model}"
        if s.monthly_saving_nano is not None and s.action in ("route", "experiment"):
            maybe = "saves" if s.action == "route" else "would save"
            title += f" ({maybe} ~{usd(s.monthly_saving_nano)} USD/month at {s.jobs} jobs in the window)"
        lines.append(title)
        rows = [[label, o.model, o.jobs, mean_text(o.quality), o.quality.n, usd(o.cost_per_job_nano) or "-"]
                for label, o in (("current", s.current), ("candidate", s.candidate)) if o is not None]
        if rows:
            table = render_table(["", "model", "jobs", "quality [95% CI]", "scored", "cost/job USD"], rows,
                                 align="<<><>>")
            lines += ["  " + line for line in table]
        lines.append(f"  {s.why}")
        if s.edit is not None and s.edit.experiment is not None:
            lines.append("  experiment: " + orjson.dumps(s.edit.experiment).decode())
        lines.append("")
    return lines[:-1] if lines and not lines[-1] else lines
