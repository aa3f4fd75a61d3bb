"""(b) End to end through one worker process: routeq jobs vs bare arq jobs, same run.

Two cases: the emulator answering at once (routeq's own cost per job shows) and answering after
1 s with 1,000 slots (concurrency shows). arq runs no-op and ``asyncio.sleep(1)`` jobs with
its defaults and ``max_jobs`` matched, so its rows are an upper bound for any arq-based worker:
routeq's jobs validate, route, call HTTP and write a result, arq's do nothing.
"""

from __future__ import annotations

from bench import arq_baseline, harness
from bench.harness import LoadRun, cut_note, status_of
from bench.plan import Plan, Say
from bench.procs import Children
from bench.report import Row, fmt
from bench.sections.budgets import rules_with_budgets

SECTION = "b end-to-end"


def _case(
    plan: Plan, say: Say, latency_ms: int, n: int, max_jobs: int, *, budgets: bool = False
) -> tuple[LoadRun, LoadRun, LoadRun | None]:
    """(routeq, bare arq, routeq with a budget line on every job if asked), one after another."""
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(latency_ms)
        workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_MAX_JOBS=str(max_jobs))
        rq = harness.routeq_run(redis, emu, workers, n, plan.e2e_cap_s)
        harness.end_workers(ch, workers, rq)
        say(f"e2e {latency_ms} ms routeq: {rq}")
        redis.flush()
        workers = harness.start_arq_workers(ch, redis, 1, max_jobs)
        fn, args = (arq_baseline.SLEEP, (latency_ms / 1000,)) if latency_ms else (arq_baseline.NOOP, ())
        aq = harness.arq_run(redis, workers, n, fn, args, plan.e2e_cap_s)
        harness.end_workers(ch, workers, aq)
        say(f"e2e {latency_ms} ms arq: {aq}")
        bq = None
        if budgets:
            redis.flush()
            rules = rules_with_budgets(ch.dir)
            workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_MAX_JOBS=str(max_jobs),
                                                   ROUTEQ_RULES=str(rules))
            bq = harness.routeq_run(redis, emu, workers, n, plan.e2e_cap_s)
            harness.end_workers(ch, workers, bq)
            say(f"e2e {latency_ms} ms routeq with budgets: {bq}")
        return rq, aq, bq


def rows(title: str, baseline: str, rq: LoadRun, aq: LoadRun) -> list[Row]:
    f, b = rq.figures, aq.figures
    note = cut_note(rq, aq)
    status = status_of(rq, aq)
    return [
        Row(SECTION, f"{title}: throughput", rq.jobs_per_s, "jobs/s", baseline, aq.jobs_per_s, "higher",
            note=note, status=status),
        Row(SECTION, f"{title}: enqueue→result p50", f.p50_ms, "ms", baseline, b.p50_ms, "lower",
            status=status),
        Row(SECTION, f"{title}: enqueue→result p99", f.p99_ms, "ms", baseline, b.p99_ms, "lower",
            status=status),
        Row(SECTION, f"{title}: worker CPU per job", rq.worker_cpu_ms_per_job, "ms", baseline,
            aq.worker_cpu_ms_per_job, "lower",
            note=f"emulator CPU {fmt(rq.emulator_cpu_ms_per_job, 'ms/job')}", status=status),
        Row(SECTION, f"{title}: Redis commands per job", rq.redis_cmds_per_job, "cmds", baseline,
            aq.redis_cmds_per_job, "lower",
            note="INFO commandstats, producer + worker, incl. inside Lua/MULTI; routeq "
            f"{fmt(rq.script_calls_per_job)} script calls/job", status=status),
    ]


def run(plan: Plan, say: Say) -> list[Row]:
    n0, n1 = plan.e2e_zero_jobs, plan.e2e_slow_jobs
    rq0, aq0, bq0 = _case(plan, say, 0, n0, plan.e2e_cpu_max_jobs, budgets=True)
    rq1, aq1, _ = _case(plan, say, 1000, n1, plan.e2e_max_jobs)
    assert bq0 is not None
    zero = f"emulator 0 ms, {n0:,} jobs, max_jobs {plan.e2e_cpu_max_jobs}"
    return [
        *rows(zero, "bare arq no-op job", rq0, aq0),
        Row(SECTION, f"{zero}: worker CPU per job, budgets on", bq0.worker_cpu_ms_per_job, "ms",
            "bare arq no-op job", aq0.worker_cpu_ms_per_job, "lower", status=status_of(bq0, aq0),
            note=f"one global budget line on every job; script calls/job {fmt(bq0.script_calls_per_job)}"),
        *rows(f"emulator 1 s, {n1:,} jobs, max_jobs {plan.e2e_max_jobs}", "bare arq sleep(1) job", rq1, aq1),
        Row(SECTION, f"emulator 1 s, {n1:,} jobs, max_jobs {plan.e2e_max_jobs}: share of the ideal "
            f"{plan.e2e_max_jobs:,} jobs/s", rq1.jobs_per_s / plan.e2e_max_jobs * 100, "%",
            "bare arq sleep(1) job", aq1.jobs_per_s / plan.e2e_max_jobs * 100, "higher",
            status=status_of(rq1, aq1),
            note=f"emulator CPU {fmt(rq1.emulator_cpu_ms_per_job, 'ms/job')} on the same 2 cores"),
    ]
