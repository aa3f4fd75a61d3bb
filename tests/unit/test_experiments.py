"""Experiments: validation with JSON paths, sticky hash assignment, ramps, pause and conclusion."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from tests.support.procs import REPO
from worker.catalog import Catalog
from worker.rules import RulesError, compile_rules

LLAMA, MINI, SONNET = "meta-llama/llama-3.1-8b-instruct", "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet"


def doc(*experiments: dict[str, Any]) -> dict[str, Any]:
    return {
        "tiers": {"budget": LLAMA, "mid": MINI, "standard": SONNET},
        "rules": [
            {"name": "code", "priority": 1, "when": {"task_type": "code"}, "tier": "standard"},
            {"name": "default", "priority": 99, "when": {}, "tier": "mid", "fallbacks": ["budget"],
             "max_tokens": 512},
        ],
        "experiments": list(experiments),
    }


def experiment(weights: tuple[int, int] = (90, 10), **extra: Any) -> dict[str, Any]:
    return {"name": "cls-cheap", "rule": "default", "unit": "user_id", "salt": "2026-12",
            "variants": [{"name": "control", "weight": weights[0]},
                         {"name": "llama", "weight": weights[1], "model": LLAMA, "fallbacks": ["mid"],
                          "max_tokens": 256, "params": {"temperature": 0}}],
            **extra}


def variant_of(rules: Any, user: str) -> str:
    d = rules.decide({"user_id": user})
    return str(d.experiment.variant.name)


def test_a_variant_overrides_the_rules_decision_and_control_keeps_it() -> None:
    rules = compile_rules(doc(experiment((50, 50))))
    seen = {}
    for i in range(200):
        d = rules.decide({"user_id": f"u{i}"})
        assert d.rule == "default" and d.experiment is not None
        seen[d.experiment.variant.name] = d
    control, llama = seen["control"], seen["llama"]
    assert (control.model, control.fallbacks, control.max_tokens) == (MINI, (LLAMA,), 512)
    assert (llama.model, llama.fallbacks, llama.max_tokens, dict(llama.params)) == (LLAMA, (MINI,), 256,
                                                                                  {"temperature": 0})
    assert llama.trace[-1].rule == "cls-cheap" and "variant llama (bucket" in llama.trace[-1].why
    assert len(llama.experiment.unit_hash) == 16 and llama.experiment.unit == "user_id"  # type: ignore[union-attr]
    # Other rules are not split.
    assert rules.decide({"task_type": "code", "user_id": "u1"}).experiment is None


def test_100k_units_split_by_their_weights_within_half_a_point() -> None:
    for weights in ((90, 10), (50, 50), (99, 1)):
        rules = compile_rules(doc(experiment(weights)))
        counts = Counter(variant_of(rules, f"user-{i}") for i in range(100_000))
        assert abs(counts["control"] / 100_000 * 100 - weights[0]) <= 0.5, (weights, counts)
        assert abs(counts["llama"] / 100_000 * 100 - weights[1]) <= 0.5, (weights, counts)


def test_raising_a_variant_only_moves_units_into_it() -> None:
    before = compile_rules(doc(experiment((90, 10))))
    after = compile_rules(doc(experiment((80, 20))))
    users = [f"user-{i}" for i in range(20_000)]
    had = {u for u in users if variant_of(before, u) == "llama"}
    has = {u for u in users if variant_of(after, u) == "llama"}
    assert had <= has and len(has) > len(had) * 1.8


def test_changing_the_salt_re_randomises() -> None:
    a = compile_rules(doc(experiment((50, 50))))
    b = compile_rules(doc(experiment((50, 50), salt="2027-01")))
    users = [f"user-{i}" for i in range(2_000)]
    moved = sum(variant_of(a, u) != variant_of(b, u) for u in users)
    assert 800 < moved < 1200  # about half move, as a fresh coin would


def test_the_same_unit_gets_the_same_variant_in_another_process() -> None:
    code = (
        "import json, sys\n"
        "from worker.rules import compile_rules\n"
        "rules = compile_rules(json.loads(sys.argv[1]))\n"
        "names = [rules.decide({'user_id': f'u{i}'}).experiment.variant.name for i in range(2000)]\n"
        "print(json.dumps(names))\n"
    )
    document = json.dumps(doc(experiment((70, 30))))
    runs = [subprocess.run([sys.executable, "-c", code, document], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    here = [variant_of(compile_rules(doc(experiment((70, 30)))), f"u{i}") for i in range(2000)]
    assert json.loads(runs[0]) == json.loads(runs[1]) == here


def test_a_job_without_the_unit_is_assigned_by_its_id_and_the_trace_says_so() -> None:
    rules = compile_rules(doc(experiment((50, 50))))
    d = rules.decide({}, job_id="job-123")
    assert d.experiment is not None and d.experiment.unit == "job_id"
    assert "by job id (no user_id)" in d.trace[-1].why
    assert rules.decide({}, job_id="job-123").experiment.variant.name == d.experiment.variant.name  # type: ignore[union-attr]
    preview = rules.decide({})  # no job id yet (routeq route): control, and why
    assert preview.experiment is not None and preview.experiment.variant.name == "control"
    assert "assigned by its id" in preview.trace[-1].why


def test_paused_gives_control_and_concluded_gives_the_winner() -> None:
    paused = compile_rules(doc(experiment((0, 100), status="paused")))
    assert {variant_of(paused, f"u{i}") for i in range(200)} == {"control"}
    assert "is paused" in paused.decide({"user_id": "u1"}).trace[-1].why
    done = compile_rules(doc(experiment((100, 0), status="concluded", winner="llama")))
    assert {variant_of(done, f"u{i}") for i in range(200)} == {"llama"}
    assert done.decide({"user_id": "u1"}).model == LLAMA


def test_experiments_are_validated_like_rules_with_json_paths() -> None:
    bad = [
        experiment(rule="nope"),
        {**experiment(), "name": "cls-cheap", "rule": "code"},  # duplicate name
        {"name": "w", "rule": "code", "variants": [{"name": "control", "weight": 60},
                                                    {"name": "b", "weight": 30, "tier": "premium"}]},
        {"name": "c", "rule": "default", "status": "concluded",
         "variants": [{"name": "control", "weight": 50, "model": MINI}, {"name": "b", "weight": 50}]},
    ]
    d = doc(experiment(), *bad)
    d["experiments"][1]["rule"] = "nope"
    with pytest.raises(RulesError) as info:
        compile_rules(d)
    text = str(info.value)
    for expected in (
        "$.experiments[1].rule: unknown rule 'nope'",
        "$.experiments[2].name: duplicate experiment name 'cls-cheap'",
        "$.experiments[3].variants: the weights must add up to 100 (percent), they add up to 90",
        "$.experiments[3].variants[1].tier: unknown tier 'premium'",
        "$.experiments[4].variants[0]: control keeps the rule's decision; remove model",
        "$.experiments[4].winner: a concluded experiment names its winner",
    ):
        assert expected in text, (expected, text)


def test_a_variant_model_missing_from_the_catalog_is_refused() -> None:
    e = experiment()
    e["variants"][1]["model"] = "meta-llama/llama-3.1-8b-instrukt"
    with pytest.raises(RulesError) as info:
        compile_rules(doc(e), catalog=Catalog.load())
    expected = ("$.experiments[0].variants[1].model: model 'meta-llama/llama-3.1-8b-instrukt' is not in the "
                "model catalog; did you mean 'meta-llama/llama-3.1-8b-instruct'?")
    assert expected in str(info.value)
