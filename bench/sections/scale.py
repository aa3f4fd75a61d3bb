"""(f) Scale-out: 1, 2, 4, 8 worker processes × 25 slots against a 1 s upstream.

Each run has ``scale_rounds`` jobs per slot, so the ideal time is the same at every size;
throughput and its ratio to one process. Slots are kept small so that eight processes still fit
in this 2-core box's CPU (about 4 ms per job): the figure measures the queue, not the CPU. arq
runs the same worker counts with its default queue_read_limit (5 × max_jobs = 125 ids per poll)
on ``asyncio.sleep(1)`` jobs: past 125 slots in total, its in-flight jobs hide the rest of the
queue (the pitfall in ../shared/reference/arq-and-peers.md §1.13).
"""

from __future__ import annotations

import math

from bench import arq_baseline, harness
from bench.harness import LoadRun, cut_note, status_of
from bench.plan import Plan, Say
from bench.procs import Children
from bench.report import Row, fmt

SECTION = "f scale-out"


def run(plan: Plan, say: Say) -> list[Row]:
    slots = plan.scale_max_jobs
    rq: dict[int, LoadRun] = {}
    aq: dict[int, LoadRun] = {}
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(1000)
        for k in plan.scale_workers:
            n = plan.scale_rounds * k * slots
            redis.flush()
            workers = harness.start_routeq_workers(ch, redis, emu, k, ROUTEQ_MAX_JOBS=str(slots))
            rq[k] = harness.routeq_run(redis, emu, workers, n, plan.scale_cap_s)
            harness.end_workers(ch, workers, rq[k])
            say(f"scale routeq ×{k}: {rq[k]}")
            redis.flush()
            workers = harness.start_arq_workers(ch, redis, k, slots)
            aq[k] = harness.arq_run(redis, workers, n, arq_baseline.SLEEP, (1.0,), plan.scale_cap_s)
            harness.end_workers(ch, workers, aq[k])
            say(f"scale arq ×{k}: {aq[k]}")
    rows: list[Row] = []
    one = plan.scale_workers[0]
    for k in plan.scale_workers:
        n = plan.scale_rounds * k * slots
        r, a = rq[k], aq[k]
        status = status_of(r, a)
        cut = cut_note(r, a)
        ideal = min(k * slots, n) / 1.0
        rows.append(Row(
            SECTION, f"{k} process(es) × {slots} slots, {n:,} jobs: throughput", r.jobs_per_s, "jobs/s",
            "bare arq sleep(1), same workers", a.jobs_per_s, "higher", status=status,
            note=f"ideal {ideal:,.0f} jobs/s; worker CPU {fmt(r.worker_cpu_ms_per_job, 'ms/job')}"
            + (f"; {cut}" if cut else ""),
        ))
        if k != one:
            rows.append(Row(
                SECTION, f"{k} process(es): speed-up vs {one}", _ratio(r, rq[one]), "×",
                "bare arq speed-up", _ratio(a, aq[one]), "higher", status=status,
            ))
    return rows


def _ratio(run: LoadRun, base: LoadRun) -> float | None:
    a, b = run.jobs_per_s, base.jobs_per_s
    return a / b if b and not math.isnan(a) and not math.isnan(b) else None
