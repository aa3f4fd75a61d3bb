"""(l) Rollups: worker CPU and Redis round trips per job with hourly rollups on vs off.

Rollups are written by the finish script in the call that writes the result, so "on" should add
CPU (the dimension and metric arguments, the HINCRBYs inside Redis) but no round trip. The same
worker runs the same jobs with ``ROUTEQ_ROLLUP_DAYS=0`` and with the default; each side runs
twice, alternating, and keeps its least disturbed run (the machine is shared).
"""

from __future__ import annotations

from bench import harness
from bench.harness import LoadRun, status_of
from bench.plan import Plan, Say
from bench.procs import Children
from bench.report import Row, fmt

SECTION = "l rollups"


def _best(runs: list[LoadRun]) -> LoadRun:
    return min(runs, key=lambda r: r.worker_cpu_ms_per_job or float("inf"))


def run(plan: Plan, say: Say) -> list[Row]:
    n = plan.budget_jobs
    runs: dict[str, list[LoadRun]] = {"off": [], "on": []}
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(0)
        for _ in range(2):
            for label, env in (("off", {"ROUTEQ_ROLLUP_DAYS": "0"}), ("on", {})):
                redis.flush()
                workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_MAX_JOBS="200", **env)
                result = harness.routeq_run(redis, emu, workers, n, plan.budget_cap_s)
                harness.end_workers(ch, workers, result)
                runs[label].append(result)
                say(f"rollups {label}: {result}")
    on, off = _best(runs["on"]), _best(runs["off"])
    status = status_of(on, off)
    extra = (on.worker_cpu_ms_per_job or 0) - (off.worker_cpu_ms_per_job or 0)
    title = f"emulator 0 ms, {n:,} jobs, max_jobs 200"
    return [
        Row(SECTION, f"{title}: worker CPU per job, rollups on", on.worker_cpu_ms_per_job, "ms",
            "same worker, rollups off", off.worker_cpu_ms_per_job, "lower",
            note=f"{extra:+.3f} ms per job (best of 2 runs each)", status=status),
        Row(SECTION, f"{title}: script calls per job, rollups on", on.script_calls_per_job, "calls",
            "same worker, rollups off", off.script_calls_per_job, "lower",
            note=f"Redis commands per job {fmt(on.redis_cmds_per_job)} on vs {fmt(off.redis_cmds_per_job)} "
            "off (incl. inside Lua)", status=status),
    ]
