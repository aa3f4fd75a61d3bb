"""``routeq report``: outcomes by rule, model, variant, task type, tenant or day, from the rollups.

``routeq report experiment NAME``: one experiment's variants side by side, with a sample-ratio
check against the weights in the active rules and each variant's quality lift over control.

Both read the hourly rollups the workers write as jobs finish (never the jobs themselves): the
cost grows with hours × dimension combinations read, not with the number of jobs. Exit codes: 0
(also for a window without jobs), 1 no such experiment, 2 bad usage, 4 Redis.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from producer_client.envvars import env_str
from producer_client.keys import DEFAULT_PREFIX, Keys
from worker.cli import exits
from worker.cli.common import fail, print_json, with_redis
from worker.cli.table import render_table

if TYPE_CHECKING:
    from redis.asyncio import Redis

_FORMATS = ("table", "json", "csv")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="jobs, success, cost, latency and quality from the rollups (and experiments)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--since", default="7d", help="start: 90m, 36h, 7d, 2w or an ISO date-time (default 7d)")
    p.add_argument("--until", help="end, same forms (default: now)")
    p.add_argument("--by", default="", metavar="DIMS",
                   help="comma-separated: rule, model, variant, task_type, tenant, day (default: one total)")
    p.add_argument("--format", choices=_FORMATS, default="table")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.set_defaults(func=_report)
    cmds = p.add_subparsers(dest="report_command")
    e = cmds.add_parser("experiment", help="one experiment's variants: units, quality, lift, sample ratio")
    e.add_argument("name", help="the experiment's name in the rules")
    e.add_argument("--since", dest="exp_since", metavar="SINCE", default="30d",
                   help="start of the window (default 30d)")
    e.add_argument("--until", dest="exp_until", metavar="UNTIL", help="end of the window (default: now)")
    e.add_argument("--format", dest="exp_format", choices=("table", "json"), default="table")
    e.add_argument("--redis", dest="exp_redis", metavar="URL", help="Redis URL (default: $REDIS_URL)")
    e.set_defaults(func=_experiment)


def keys_from_env() -> Keys:
    return Keys(env_str(os.environ, "ROUTEQ_PREFIX", DEFAULT_PREFIX))


# -- routeq report ------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from worker.analytics.rollups import RollupReader, check_group_by
    from worker.analytics.window import WindowError, window

    try:
        span = window(args.since, args.until)
        by = check_group_by(d.strip() for d in args.by.split(",") if d.strip())
    except (WindowError, ValueError) as exc:
        return fail(str(exc), exits.USAGE)

    async def go(redis: Redis) -> Any:
        return await RollupReader(redis, keys_from_env()).read(span.since, span.until, by)

    rollup = with_redis(args.redis, go)
    if args.format == "json":
        print_json(report_json(rollup))
    elif args.format == "csv":
        write_csv(rollup)
    else:
        for line in report_lines(rollup, span.describe()):
            print(line)
    return exits.OK


def report_json(rollup: Any) -> dict[str, Any]:
    from worker.analytics.present import metrics_json

    return {
        "since": rollup.since.isoformat(), "until": rollup.until.isoformat(), "hours": rollup.hours,
        "by": list(rollup.by),
        "rows": [{"group": dict(zip(rollup.by, g, strict=True)), **metrics_json(m)}
                 for g, m in rollup.groups.items()],
        "total": metrics_json(rollup.total()),
    }


_CSV_COLUMNS = ("jobs", "success_rate", "fallback_rate", "cost_usd", "cost_per_1k_jobs_usd", "p50_ms",
                "p95_ms", "quality_mean", "quality_ci95_low", "quality_ci95_high", "quality_n")


def write_csv(rollup: Any) -> None:
    import csv

    from worker.analytics.present import metrics_json

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow([*rollup.by, *_CSV_COLUMNS])
    for group, m in rollup.groups.items():
        doc = metrics_json(m)
        q = doc["quality"]
        low, high = q["ci95"] or (None, None)
        values = [doc["jobs"], doc["success_rate"], doc["fallback_rate"], doc["cost_usd"],
                  doc["cost_per_1k_jobs_usd"], doc["latency_ms"]["p50"], doc["latency_ms"]["p95"],
                  q["mean"], low, high, q["n"]]
        out.writerow([*group, *("" if v is None else v for v in values)])


def report_lines(rollup: Any, described: str) -> list[str]:
    from worker.analytics.present import mean_text, per_jobs_nano, percent, usd

    head = f"jobs from {described} ({rollup.hours} hours of rollups)"
    if not rollup.groups:
        return [head, "no jobs in this window"]
    headers = [*rollup.by, "jobs", "success", "fallback", "cost USD", "per 1k jobs USD", "p50 ms",
               "p95 ms", "quality [95% CI]", "scored"]

    def cells(m: Any) -> list[object]:
        return [m.n, percent(m.succeeded, m.n), percent(m.fallbacks, m.n), usd(m.cost_nano),
                usd(per_jobs_nano(m.cost_nano, m.n, 1000)) or "-", _ms(m.latency_ms(0.5)),
                _ms(m.latency_ms(0.95)), mean_text(m.quality), m.qn]

    rows = [[*group, *cells(m)] for group, m in rollup.groups.items()]
    if rollup.by and len(rows) > 1:
        rows.append(["total", *[""] * (len(rollup.by) - 1), *cells(rollup.total())])
    align = "<" * len(rollup.by) + ">" * 7 + "<>"
    return [head, "", *render_table(headers, rows, align=align, rule=True)]


def _ms(value: int | None) -> str:
    return "-" if value is None else f"≤{value:,}"


# -- routeq report experiment -------------------------------------------------------------------


def _experiment(args: argparse.Namespace) -> int:
    from worker.analytics.experiment_read import read_experiment
    from worker.analytics.window import WindowError, window

    try:
        span = window(args.exp_since, args.exp_until)
    except WindowError as exc:
        return fail(str(exc), exits.USAGE)
    keys = keys_from_env()

    async def go(redis: Redis) -> Any:
        return await read_experiment(redis, keys, args.name, span)

    rules, rollup, report = with_redis(args.exp_redis, go)
    if report.config is None and not report.variants:
        return fail(f"no experiment {args.name!r}: not in the active rules ({rules.source}) and no jobs "
                    f"from {span.describe()}", exits.FAILED)
    if args.exp_format == "json":
        print_json(experiment_json(report, rules.source, rollup))
    else:
        for line in experiment_lines(report, rules.source, span.describe()):
            print(line)
    return exits.OK


def experiment_json(report: Any, source: str, rollup: Any) -> dict[str, Any]:
    from worker.analytics.present import interval_json, metrics_json

    srm = report.sample_ratio
    return {
        "experiment": report.name,
        "config": report.config,
        "rules_source": source,
        "since": rollup.since.isoformat(), "until": rollup.until.isoformat(),
        "variants": [{"name": v.name, "weight": v.weight, "model": v.model, "units": v.units,
                      **metrics_json(v.metrics)} for v in report.variants],
        "sample_ratio": None if srm is None else {
            "statistic": srm.statistic, "df": srm.df, "p_value": srm.p_value, "mismatch": srm.mismatch,
            "expected_units": dict(srm.expected), "observed_units": dict(srm.observed),
        },
        "sample_ratio_note": report.sample_ratio_note,
        "lift": [{
            "variant": lift.variant, "metric": "quality",
            "difference": None if lift.difference is None else lift.difference.estimate,
            "difference_ci95": interval_json(lift.difference.interval) if lift.difference else None,
            "relative": None if lift.relative is None else lift.relative.estimate,
            "relative_ci95": interval_json(lift.relative.interval) if lift.relative else None,
            "verdict": lift.verdict,
        } for lift in report.lift],
    }


def experiment_lines(report: Any, source: str, described: str) -> list[str]:
    from worker.analytics.present import mean_text, per_jobs_nano, percent, usd

    config = report.config or {}
    where = (f"rule {config.get('rule')}, {report.status}, unit {config.get('unit', 'user_id')}"
             if report.config else "not in the active rules")
    lines = [f"experiment {report.name} ({where}); rules: {source}", f"jobs from {described}", ""]
    headers = ["variant", "weight", "model", "units", "jobs", "success", "quality [95% CI]", "scored",
               "cost/job USD", "p95 ms"]
    rows = [[v.name, "-" if v.weight is None else f"{v.weight}%", v.model or "(rule's)", v.units, v.metrics.n,
             percent(v.metrics.succeeded, v.metrics.n), mean_text(v.metrics.quality), v.metrics.qn,
             usd(per_jobs_nano(v.metrics.cost_nano, v.metrics.n)) or "-", _ms(v.metrics.latency_ms(0.95))]
            for v in report.variants]
    lines += render_table(headers, rows, align="<><>>><>>>", rule=True)
    srm = report.sample_ratio
    stat = "" if srm is None else f"chi-square {srm.statistic:.2f} ({srm.df} df), p = {srm.p_value:.3g}: "
    lines += ["", f"sample ratio: {stat}{report.sample_ratio_note}", ""]
    if not report.lift:
        return lines
    lift_rows = []
    for lift in report.lift:
        d, r = lift.difference, lift.relative
        diff = "-" if d is None else f"{d.estimate:+.3f} [{d.interval.low:+.3f}, {d.interval.high:+.3f}]"
        rel = "-" if r is None else (f"{100 * r.estimate:+.1f}% [{100 * r.interval.low:+.1f}%, "
                                     f"{100 * r.interval.high:+.1f}%]")
        lift_rows.append([lift.variant, diff, rel, lift.verdict])
    lines += render_table(["quality vs control", "difference [95% CI]", "relative lift [95% CI]", "verdict"],
                          lift_rows, rule=True)
    lines += ["", "verdict: better or worse only where the 95% interval excludes zero (Welch)."]
    return lines
