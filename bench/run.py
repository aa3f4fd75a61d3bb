"""routeq benchmarks: every figure next to a baseline measured in the same run.

Usage (from the repository root)::

    .venv/bin/python bench/run.py                 # all sections, about four minutes
    .venv/bin/python bench/run.py --quick         # smaller counts, about a minute
    .venv/bin/python bench/run.py --only rules,pickup

Sections: rules, e2e, budgets, enqueue, pickup, scale, memory, upstream, select, cascade, report,
rollups, profile.
Each starts its own redis-server on a free loopback port, its own emulator and real worker
processes, and stops them after.
Prints a markdown table and writes it as JSON to bench/out/latest.json. Nothing is asserted:
figures on a shared machine are noisy, read the ratios.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib
import time
import traceback
from collections.abc import Sequence

import orjson

from bench.plan import Plan
from bench.report import Row, as_json, machine, markdown

SECTIONS: dict[str, str] = {
    "rules": "bench.sections.rules",
    "e2e": "bench.sections.e2e",
    "budgets": "bench.sections.budgets",
    "enqueue": "bench.sections.enqueue",
    "pickup": "bench.sections.pickup",
    "scale": "bench.sections.scale",
    "memory": "bench.sections.memory",
    "upstream": "bench.sections.upstream",
    "select": "bench.sections.select",
    "cascade": "bench.sections.cascade",
    "report": "bench.sections.report",
    "rollups": "bench.sections.rollups",
    "profile": "bench.sections.profile",
}
OUT = Path(__file__).resolve().parent / "out" / "latest.json"


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts, about a minute")
    p.add_argument("--only", metavar="NAME[,NAME]", help=f"sections to run: {','.join(SECTIONS)}")
    p.add_argument("--out", type=Path, default=OUT, help="JSON output file")
    p.add_argument("--verbose", action="store_true", help="print raw figures as they are measured")
    args = p.parse_args(argv)
    names = [n.strip() for n in (args.only or ",".join(SECTIONS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.names = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    plan = Plan.smoke() if args.quick else Plan.default()
    m = machine()
    print(f"# routeq benchmarks{' (--quick)' if args.quick else ''}\n\n{m.line()}")
    print("Figures come from a shared machine: read the ratios, not the absolute numbers.\n", flush=True)

    def say(text: str) -> None:
        if args.verbose:
            print(f"  · {text}", flush=True)

    rows: list[Row] = []
    t0 = time.monotonic()
    for name in args.names:
        started = time.monotonic()
        print(f"## {name}", flush=True)
        try:
            section_rows = importlib.import_module(SECTIONS[name]).run(plan, say)
        except Exception as exc:  # one broken section must not lose the others' figures
            traceback.print_exc()
            section_rows = [Row(name, "section failed", None, "", note=f"{type(exc).__name__}: {exc}",
                                status="failed")]
        rows += section_rows
        print(markdown(section_rows))
        print(f"({time.monotonic() - started:.0f} s)\n", flush=True)
    elapsed = time.monotonic() - t0
    print(f"## all sections ({elapsed:.0f} s)\n\n{markdown(rows)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = ["bench/run.py", *(sys.argv[1:] if argv is None else argv)]
    args.out.write_bytes(orjson.dumps(as_json(rows, m, command, elapsed), option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
