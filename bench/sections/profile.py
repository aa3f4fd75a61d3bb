"""(m) Where a job's worker CPU goes: one worker sampled by py-spy at zero upstream latency.

The e2e section says how much CPU a job costs; this one says where it goes, so the next cut can
be aimed. py-spy samples the running worker from outside (``--nonblocking``: it never pauses the
process) and drops idle samples, so the shares are shares of CPU actually burnt. Each sample is
charged to the package of its innermost Python frame (time in a C extension such as orjson or
uvloop shows under the Python code that called it), and separately to the routeq module on the
stack closest to that frame: the stage of the job that caused the work.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import harness
from bench.harness import LoadRun
from bench.plan import Plan, Say
from bench.procs import Children
from bench.report import Row

SECTION = "m CPU breakdown"

# (needle in a frame's file path, component) — first match wins.
_COMPONENTS: tuple[tuple[str, str], ...] = (
    ("/redis/", "redis-py (client, parser, pool)"),
    ("worker/lean_redis.py", "redis-py (client, parser, pool)"),
    ("/aiohttp/", "aiohttp (completion POST)"),
    ("/yarl/", "aiohttp (completion POST)"),
    ("/multidict/", "aiohttp (completion POST)"),
    ("/aiohappyeyeballs/", "aiohttp (completion POST)"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpx"),
    ("/pydantic", "pydantic (validation, dump)"),
    ("/arq/", "arq"),
    ("/asyncio/", "event loop (uvloop + asyncio)"),
    ("uvloop", "event loop (uvloop + asyncio)"),
    ("/logging/", "logging"),
    ("/prometheus_client/", "prometheus-client"),
    ("worker/", "routeq's own code"),
    ("producer_client/", "routeq's own code"),
)
_OTHER = "other (stdlib, GC at allocation sites)"
_ENTRY_POINTS = ("/worker/loop.py", "/worker/serve.py", "/worker/__main__.py")  # on every stack
RATE_HZ = 1000


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def _frame_file(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``path/to/file.py``."""
    start = frame.rfind("(")
    return frame[start + 1:].rsplit(":", 1)[0] if start >= 0 else frame


def _component(path: str) -> str:
    return next((name for needle, name in _COMPONENTS if needle in path), _OTHER)


def _stage(files: list[str]) -> str:
    """The routeq module nearest the leaf: which part of a job's path caused the sample."""
    for path in reversed(files):
        i = path.rfind("/worker/")
        if i >= 0 and "lean_redis" not in path and not path.endswith(_ENTRY_POINTS):
            return "worker/" + path[i + len("/worker/"):]
    return "outside routeq (arq's loop, event loop, GC)"


def breakdown(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """Samples by component and by stage from py-spy's ``--format raw`` (collapsed stacks)."""
    by_component: Counter[str] = Counter()
    by_stage: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        files = [_frame_file(f) for f in stack.split(";")]
        # The root frame comes first, the leaf (where the CPU was) last.
        by_component[_component(files[-1])] += n
        by_stage[_stage(files)] += n
        total += n
    return by_component, by_stage, total


def sample(plan: Plan, spy: str, n: int, **settings: str) -> tuple[LoadRun, str, str]:
    """One worker (``ROUTEQ_*`` ``settings``) running ``n`` jobs under py-spy: (run, raw stacks, stderr)."""
    with Children() as ch:
        redis = ch.redis_server()
        emu = ch.emulator(0)
        workers = harness.start_routeq_workers(ch, redis, emu, 1, ROUTEQ_MAX_JOBS=str(plan.e2e_cpu_max_jobs),
                                               **settings)
        out = ch.dir / "py-spy.txt"
        sampler = subprocess.Popen(
            [spy, "record", "--format", "raw", "--full-filenames", "--rate", str(RATE_HZ), "--nonblocking",
             "--pid", str(workers[0].pid), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            rq = harness.routeq_run(redis, emu, workers, n, plan.e2e_cap_s)
        finally:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
            try:
                _, err = sampler.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                _, err = sampler.communicate()
        harness.end_workers(ch, workers, rq)
        raw = out.read_text() if out.exists() else ""
    return rq, raw, err.decode(errors="replace")


def run(plan: Plan, say: Say) -> list[Row]:
    spy = _py_spy()
    if spy is None:
        return [Row(SECTION, "worker CPU breakdown", None, "", status="failed",
                    note="py-spy not found (it comes with the dev extra: pip install -e '.[dev]')")]
    n = plan.e2e_zero_jobs * 3
    rq, raw, err = sample(plan, spy, n)
    by_component, by_stage, total = breakdown(raw)
    say(f"profile: {total} samples over {rq}")
    if total == 0:
        reason = err.strip().splitlines()[-1:] or ["no samples"]
        return [Row(SECTION, "worker CPU breakdown", None, "", status="failed",
                    note=f"py-spy took no samples: {reason[0]}")]
    cpu = rq.worker_cpu_ms_per_job
    status = harness.status_of(rq, rq)
    title = f"emulator 0 ms, {n:,} jobs, max_jobs {plan.e2e_cpu_max_jobs}"
    rows = [Row(SECTION, f"{title}: worker CPU per job (sampled run)", cpu, "ms", status=status,
                note=f"{total:,} py-spy samples at {RATE_HZ} Hz")]
    for name, count in by_component.most_common():
        share = count / total
        rows.append(Row(SECTION, f"by package: {name}", share * 100, "%", status=status,
                        note="" if cpu is None else f"≈ {share * cpu * 1000:.0f} µs/job"))
    for name, count in by_stage.most_common(10):
        share = count / total
        rows.append(Row(SECTION, f"by routeq stage: {name}", share * 100, "%", status=status,
                        note="" if cpu is None else f"≈ {share * cpu * 1000:.0f} µs/job"))
    return rows
