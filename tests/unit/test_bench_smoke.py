"""Keeps bench/ from rotting: imports every section and runs the (pure) rules section small.

The other sections start real processes and take minutes; they are exercised by running
``bench/run.py --quick``, not here.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from bench import run as bench_run
from bench.plan import Plan
from bench.report import Row, markdown
from bench.sections import rules as rules_section


@pytest.mark.parametrize("module", sorted(bench_run.SECTIONS.values()))
def test_every_section_imports_and_has_run(module: str) -> None:
    assert callable(importlib.import_module(module).run)


def test_rules_section_measures_both_engines_and_they_agree() -> None:
    plan = replace(Plan.smoke(), rules_contexts=40, rules_repeats=1)
    said: list[str] = []
    row, experiment = rules_section.run(plan, said.append)
    assert row.value is not None and row.value > 0
    assert row.baseline_value is not None and row.baseline_value > 0
    assert row.ratio is not None and row.verdict()
    # The shipped rules are the seed's rules as data: every context must pick the same rule.
    assert "same rule chosen for 40/40" in row.note
    assert row.figure in markdown([row])
    # The experiment row times the contexts the experiment splits, with and without it.
    assert experiment.value and experiment.baseline_value and "µs per decision" in experiment.note


def test_cli_writes_the_table_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "latest.json"
    assert bench_run.main(["--quick", "--only", "rules", "--out", str(out)]) == 0
    doc = orjson.loads(out.read_bytes())
    assert {r["section"] for r in doc["rows"]} == {"a rules"}
    assert doc["machine"]["nproc"] >= 1
    assert "| a rules |" in capsys.readouterr().out


def test_verdict_reads_the_direction_of_better() -> None:
    faster = Row("x", "throughput", 300.0, "jobs/s", "base", 100.0, "higher")
    slower = Row("x", "latency", 300.0, "ms", "base", 100.0, "lower")
    assert faster.verdict() == "3.00× better"
    assert slower.verdict() == "3.00× worse"
    assert Row("x", "pending", None, "ms", status="pending").ratio is None


def test_profile_breakdown_charges_leaf_package_and_nearest_routeq_stage() -> None:
    from bench.sections.profile import breakdown

    raw = "\n".join([
        "run (/usr/lib/asyncio/runners.py:118);run_job (/x/site-packages/arq/worker.py:500);"
        "start (/r/worker/pipeline.py:80);execute (/x/site-packages/redis/asyncio/client.py:600) 6",
        "run (/usr/lib/asyncio/runners.py:118);call (/r/worker/pipeline.py:120);"
        "post (/r/worker/openrouter/poster.py:40);request (/x/site-packages/aiohttp/client.py:700) 3",
        "run (/usr/lib/asyncio/runners.py:118);_run_once (/usr/lib/asyncio/base_events.py:1900) 1",
        "garbage line",
    ])
    by_component, by_stage, total = breakdown(raw)
    assert total == 10
    assert by_component == {"redis-py (client, parser, pool)": 6, "aiohttp (completion POST)": 3,
                            "event loop (uvloop + asyncio)": 1}
    assert by_stage["worker/pipeline.py"] == 6
    assert by_stage["worker/openrouter/poster.py"] == 3
    assert by_stage["outside routeq (arq's loop, event loop, GC)"] == 1
