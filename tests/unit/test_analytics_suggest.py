"""``routeq suggest``'s review, pure: which action for which data, and the rules it writes."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from worker.analytics.rollups import Metrics
from worker.analytics.suggest import MONTH_S, Settings, apply_edits, suggest
from worker.catalog import Catalog
from worker.rules import compile_rules

MINI, LLAMA, SONNET = "openai/gpt-4o-mini", "meta-llama/llama-3.1-8b-instruct", "anthropic/claude-3.5-sonnet"
CATALOG = Catalog.load()
WEEK = 7 * 86_400
SETTINGS = Settings(min_samples=200, tolerance=0.02, window_s=WEEK, today=date(2026, 12, 1))


def rules_doc(experiment_on: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tiers": {"budget": LLAMA, "mid": MINI, "standard": SONNET},
        "rules": [
            {"name": "classify", "priority": 1, "when": {"task_type": "classification"}, "model": MINI,
             "fallbacks": [SONNET], "max_tokens": 64},
            {"name": "default", "priority": 99, "when": {}, "tier": "mid", "fallbacks": ["standard"]},
        ],
    }
    if experiment_on:
        doc["experiments"] = [{"name": "cheap", "rule": experiment_on, "unit": "user_id",
                               "variants": [{"name": "control", "weight": 50},
                                            {"name": "llama", "weight": 50, "model": LLAMA}]}]
    return doc


def scored(jobs: int, cost_per_job: int, right: int, scored_jobs: int) -> Metrics:
    """``jobs`` jobs at ``cost_per_job`` nano-USD, ``scored_jobs`` of them scored 0/1 (``right`` ones)."""
    return Metrics(n=jobs, statuses={"succeeded": jobs}, cost_nano=jobs * cost_per_job,
                   prompt_tokens=jobs * 100, completion_tokens=jobs * 5, qn=scored_jobs, qs=float(right),
                   qq=float(right))


def review(doc: dict[str, Any], metrics: dict[Any, Metrics], **settings: Any) -> list[Any]:
    rules = compile_rules(doc)
    return suggest(rules, doc, metrics, CATALOG, Settings(**{**SETTINGS.__dict__, **settings}))


def test_an_equally_good_cheaper_variant_is_routed_to_and_its_experiment_concluded() -> None:
    doc = rules_doc(experiment_on="classify")
    metrics = {("classification", "classify", MINI): scored(300, 10_000, 270, 300),
               ("classification", "classify", LLAMA): scored(300, 1_000, 271, 300)}
    # 300 scored jobs a side: the one-sided bound is about -0.04, so a 0.02 margin is not shown ...
    (strict,) = review(doc, metrics)
    assert strict.action == "keep" and -0.05 < strict.test.lower_bound < -0.02
    # ... and a 0.05 margin is.
    (s,) = review(doc, metrics, tolerance=0.05)
    assert (s.action, s.current.model, s.candidate.model) == ("route", MINI, LLAMA)
    assert s.test.non_inferior and s.test.lower_bound > -0.05 and s.test.p_value < 0.05
    assert s.monthly_saving_nano == 9_000 * 600 * MONTH_S // WEEK
    new = apply_edits(doc, [s.edit])
    assert new["rules"][0] == {"name": "classify", "priority": 1, "when": {"task_type": "classification"},
                               "model": LLAMA, "fallbacks": [MINI, SONNET], "max_tokens": 64}
    assert new["experiments"][0]["status"] == "concluded" and new["experiments"][0]["winner"] == "control"
    compile_rules(new, catalog=CATALOG)  # what `routeq rules push` checks
    assert doc == rules_doc(experiment_on="classify")  # the input is left alone


def test_a_cheaper_model_under_a_broad_rule_gets_a_narrowed_rule_before_it() -> None:
    doc = rules_doc()
    metrics = {("summary", "default", MINI): scored(400, 10_000, 380, 400),
               ("summary", "default", LLAMA): scored(40, 1_000, 38, 40),  # a few fallbacks
               ("chat", "default", MINI): scored(50, 10_000, 0, 0)}
    found = {s.task_type: s for s in review(doc, metrics, min_samples=30, tolerance=0.1)}
    s = found["summary"]
    assert s.action == "route" and s.edit.before == "default" and s.edit.replaces is None
    new = apply_edits(doc, [s.edit])
    inserted = new["rules"][1]
    assert inserted["name"] == "default-summary" and inserted["model"] == LLAMA
    assert inserted["when"] == {"task_type": "summary"} and inserted["priority"] == 99
    assert inserted["fallbacks"] == [MINI, SONNET] and new["rules"][2]["name"] == "default"
    ruleset = compile_rules(new, catalog=CATALOG)
    assert ruleset.decide({"task_type": "summary"}).model == LLAMA
    assert ruleset.decide({"task_type": "chat"}).model == MINI
    assert found["chat"].action == "feedback"  # no scored chat jobs: nothing can be judged


def test_a_worse_cheaper_model_is_kept_out() -> None:
    metrics = {("classification", "classify", MINI): scored(300, 10_000, 285, 300),
               ("classification", "classify", LLAMA): scored(300, 1_000, 150, 300)}
    (s,) = review(rules_doc(), metrics)
    assert s.action == "keep" and s.edit is None and not s.test.non_inferior
    assert "not shown non-inferior" in s.why


def test_too_few_scored_jobs_means_wait_during_an_experiment_else_start_one() -> None:
    metrics = {("classification", "classify", MINI): scored(300, 10_000, 285, 300),
               ("classification", "classify", LLAMA): scored(60, 1_000, 57, 60)}
    (waiting,) = review(rules_doc(experiment_on="classify"), metrics)
    assert waiting.action == "wait" and "experiment cheap" in waiting.why and waiting.edit is None
    (start,) = review(rules_doc(), metrics)
    assert start.action == "experiment" and start.candidate.model == LLAMA
    experiment = start.edit.experiment
    assert experiment["rule"] == "classify" and experiment["salt"] == "2026-12-01"
    assert [v["weight"] for v in experiment["variants"]] == [80, 20]
    assert experiment["variants"][1]["model"] == LLAMA
    compile_rules(apply_edits(rules_doc(), [start.edit]), catalog=CATALOG)


def test_with_no_cheaper_model_seen_the_cheapest_known_one_is_proposed_for_an_experiment() -> None:
    doc = rules_doc()
    metrics = {("analysis", "default", MINI): scored(500, 10_000, 450, 500)}
    (s,) = review(doc, metrics)
    assert s.action == "experiment" and s.candidate.model == LLAMA and s.candidate.jobs == 0
    projected = CATALOG.get(LLAMA)
    assert projected is not None and s.candidate.cost_per_job_nano == projected.cost_nano(100, 5)
    new = apply_edits(doc, [s.edit])
    narrowed = new["rules"][1]
    assert narrowed["model"] == MINI and narrowed["when"] == {"task_type": "analysis"}
    assert new["experiments"][0]["rule"] == narrowed["name"]
    ruleset = compile_rules(new, catalog=CATALOG)
    assert ruleset.decide({"task_type": "analysis", "user_id": "u-1"}).experiment is not None
    assert ruleset.decide({"task_type": "chat", "user_id": "u-1"}).experiment is None


@pytest.mark.parametrize(("task_type", "rule"), [("-", "default"), ("other", "default"), ("chat", "-")])
def test_jobs_without_a_task_type_or_rule_are_not_reviewed(task_type: str, rule: str) -> None:
    assert review(rules_doc(), {(task_type, rule, MINI): scored(500, 10_000, 450, 500)}) == []


def test_a_rule_gone_from_the_rules_is_skipped() -> None:
    (s,) = review(rules_doc(), {("chat", "retired", MINI): scored(500, 10_000, 450, 500)})
    assert s.action == "skip" and "not in the active rules" in s.why


def test_names_of_new_rules_and_experiments_do_not_collide() -> None:
    doc = rules_doc()
    doc["rules"].insert(1, {"name": "default-analysis", "priority": 50, "when": {"tenant": "x"},
                            "model": MINI})
    metrics = {("analysis", "default", MINI): scored(500, 10_000, 450, 500)}
    (s,) = review(doc, metrics)
    assert s.edit.rule["name"] == "default-analysis-2"
    compile_rules(apply_edits(copy.deepcopy(doc), [s.edit]), catalog=CATALOG)
