"""``routeq batch IN.jsonl --out OUT.jsonl``: run a file of jobs with progress, resumably, then sum up.

Each IN line is a job ``{id?, messages | prompt, context?, params?, metadata?}``; each OUT line is a
result document, appended as it arrives. Ctrl-C stops cleanly (a second one kills); the same
command again resumes: jobs already in OUT are skipped, none runs twice. Invalid lines get a
``rejected`` record in OUT (``error.details.source == "routeq batch"``, with the line number) and
are listed in the summary. Progress goes to stderr, the summary to stdout. Exit status: 0 when
every job succeeded, 1 when any failed, was rejected or is unfinished, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from producer_client.keys import QUEUES
from worker.cli.common import fail
from worker.cli.table import render_table

if TYPE_CHECKING:  # imported where used: every routeq command would pay for them (main.py)
    from producer_client.batch import BatchInput, Plan, RunOutcome, Tally
    from producer_client.client import Client

SHOWN_REJECTIONS = 50
_BAR_EVERY_S = 0.2  # at most 5 redraws a second on a terminal
_LINE_EVERY_S = 5.0  # plain progress lines when stderr is a file or pipe


def _make_client(url: str | None) -> Client:
    # A batch waits out a full queue for as long as it takes; --timeout bounds the run instead.
    from producer_client.client import Client

    return Client.from_url(url, full_wait_s=math.inf)


# How the command gets its client; tests swap in fakeredis.
make_client: Callable[[str | None], Client] = _make_client


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="run a JSONL file of jobs; results go to --out as they finish; re-run to resume",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, metavar="IN.jsonl", help="one job per line")
    p.add_argument("--out", required=True, type=Path, metavar="OUT.jsonl", help="results, appended")
    p.add_argument("--queue", default="batch", choices=QUEUES, help="queue to submit to (default batch)")
    p.add_argument("--redis", help="Redis URL (default: $REDIS_URL)")
    p.add_argument("--chunk", type=_positive_int, default=500, help="jobs per enqueue script call (500)")
    p.add_argument("--timeout", type=_positive_float, metavar="S",
                   help="stop waiting for results after S seconds (default: until all are in)")
    p.add_argument("--progress", choices=["auto", "bar", "lines", "off"], default="auto",
                   help="progress on stderr: a redrawn bar on a terminal, plain lines otherwise (auto)")
    p.set_defaults(func=_batch)


def _batch(args: argparse.Namespace) -> int:
    import asyncio

    from producer_client.batch import Tally, plan_batch, read_input_file, read_previous
    from producer_client.errors import RouteqError

    if not args.input.is_file():
        return fail(f"{args.input}: no such file", 2)
    if args.out.exists() and args.out.resolve() == args.input.resolve():
        return fail("--out must not be the input file", 2)
    if not args.out.parent.is_dir():
        return fail(f"{args.out.parent}: no such directory for --out", 2)
    batch = read_input_file(args.input)
    previous = read_previous(args.out)
    if previous.unreadable:
        print(f"routeq: {args.out}: {previous.unreadable} unreadable line(s) ignored", file=sys.stderr)
    plan = plan_batch(batch, previous)
    tally = Tally.for_plan(plan)
    try:
        outcome = asyncio.run(_run(args, plan, tally))
    except RouteqError as exc:
        return fail(str(exc))
    print_summary(sys.stdout, batch, tally, outcome, source=f"{args.input} -> {args.out}")
    if outcome.interrupted:
        print(f"routeq: interrupted with {outcome.unfinished} job(s) unfinished; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    if outcome.error:
        print(f"routeq: {outcome.error}", file=sys.stderr)
    ok = outcome.error is None and outcome.unfinished == 0 and tally.unsuccessful == 0
    return 0 if ok else 1


async def _run(args: argparse.Namespace, plan: Plan, tally: Tally) -> RunOutcome:
    import asyncio
    import signal

    from producer_client.batch import OutFile, run_batch

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        stop.set()
        for sig in signals:  # a second Ctrl-C gets Python's default: stop at once
            loop.remove_signal_handler(sig)

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    progress = Progress(tally, sys.stderr, mode=args.progress)
    ticker = asyncio.create_task(progress.run())
    client = make_client(args.redis)
    try:
        with OutFile(args.out) as out:
            return await run_batch(
                client, plan, out, tally,
                queue=args.queue, chunk=args.chunk, timeout=args.timeout, stop=stop,
            )
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        progress.finish()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await client.close()


class Progress:
    """One status line on stderr: redrawn in place on a terminal, appended as plain lines elsewhere."""

    def __init__(self, tally: Tally, stream: TextIO, *, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "bar" if stream.isatty() else "lines"
        self.tally = tally
        self.stream = stream
        self.mode = mode

    async def run(self) -> None:
        import asyncio

        if self.mode == "off":
            return
        every = _BAR_EVERY_S if self.mode == "bar" else _LINE_EVERY_S
        while True:
            await asyncio.sleep(every)
            self.draw()

    def draw(self) -> None:
        if self.mode == "bar":
            import shutil

            width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn
            self.stream.write("\r\x1b[2K" + self.bar()[:width])
        elif self.mode == "lines":
            self.stream.write("routeq batch: " + self.status() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.mode == "off":
            return
        self.draw()
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()

    def bar(self, width: int = 24) -> str:
        t = self.tally
        filled = round(width * t.done / t.total) if t.total else width
        return f"[{'#' * filled}{'.' * (width - filled)}] " + self.status()

    def status(self) -> str:
        t = self.tally
        now = time.monotonic()
        pct = 100 * t.done / t.total if t.total else 100.0
        eta = t.eta_s(now)
        return (
            f"{t.done:,}/{t.total:,} ({pct:.0f}%) | failed {t.statuses['failed']:,} | "
            f"rejected {t.statuses['rejected']:,} | ${t.cost_usd} | "
            f"{t.rate(now):,.0f} jobs/s | ETA {_duration(eta) if eta is not None else '-'}"
        )


def print_summary(out: TextIO, batch: BatchInput, tally: Tally, outcome: RunOutcome, *, source: str) -> None:
    """Counts by status, rule and served model; exact cost; latency percentiles; rate; bad lines."""
    elapsed = tally.elapsed()
    w = out.write
    w(f"\nrouteq batch: {source}\n")
    w(f"jobs: {tally.total:,} in the file, {tally.done:,} with a result "
      f"({tally.resumed:,} from earlier runs), {outcome.unfinished:,} unfinished\n\n")
    _table(out, ["status", "jobs"], _counted(tally.statuses))
    _table(out, ["rule", "jobs"], _counted(tally.rules))
    _table(out, ["model (served)", "jobs"], _counted(tally.models))
    _table(out, ["latency (ms)", "p50", "p95", "n"], [
        ["worker (timing.total_ms)", *_pcts(tally.run_ms)],
        ["enqueue -> finish", *_pcts(tally.e2e_ms)],
    ])
    w(f"total cost: {tally.cost_usd} USD\n")
    w(f"elapsed: {elapsed:.2f} s, {tally.collected:,} results from workers this run, "
      f"{tally.rate():,.1f} jobs/s\n")
    if batch.rejections:
        w(f"\nrejected lines ({len(batch.rejections):,}):\n")
        for r in batch.rejections[:SHOWN_REJECTIONS]:
            w(f"  line {r.line}: {r.message}\n")
        if len(batch.rejections) > SHOWN_REJECTIONS:
            w(f"  ... and {len(batch.rejections) - SHOWN_REJECTIONS:,} more (see the OUT file)\n")
    out.flush()


def _counted(counter: Counter[str]) -> list[list[str]]:
    return [[name, f"{n:,}"] for name, n in counter.most_common()]


def _pcts(values: list[int]) -> list[str]:
    from producer_client.batch import percentile

    p50, p95 = percentile(values, 50), percentile(values, 95)
    return ["-" if p50 is None else f"{p50:,}", "-" if p95 is None else f"{p95:,}", f"{len(values):,}"]


def _table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        return
    for line in render_table(header, rows, align="<" + ">" * (len(header) - 1)):
        out.write(line + "\n")
    out.write("\n")


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value
