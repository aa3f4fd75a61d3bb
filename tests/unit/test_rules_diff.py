"""``worker.rules_diff``: a per-rule, per-field diff of two rules documents."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from tests.support.procs import REPO
from worker.rules_diff import ABSENT, Change, EntryDiff, as_json, diff_rules, render

OLD: dict[str, Any] = {
    "version": 1,
    "timezone": "UTC",
    "tiers": {"mid": "openai/gpt-4o-mini", "budget": "meta-llama/llama-3.1-8b-instruct"},
    "defaults": {"max_tokens": 1024},
    "budgets": [{"name": "per-tenant", "scope": "tenant", "limit_usd": "2", "window": "month"}],
    "rules": [
        {"name": "free-tier", "priority": 1, "when": {"user_tier": "free"},
         "model": "google/gemma-2-9b-it:free"},
        {"name": "low-latency", "priority": 6, "when": {"max_latency_ms": {"lt": 3000}},
         "model": "openai/gpt-4o-mini"},
        {"name": "default", "priority": 99, "when": {}, "tier": "mid", "fallbacks": ["budget"]},
    ],
    "experiments": [
        {"name": "cls-cheap", "rule": "default", "status": "running", "salt": "a",
         "variants": [{"name": "control", "weight": 90}, {"name": "llama", "weight": 10,
                                                         "model": "meta-llama/llama-3.1-8b-instruct"}]},
    ],
}


def new_doc() -> dict[str, Any]:
    doc = copy.deepcopy(OLD)
    doc["timezone"] = "Europe/Paris"
    doc["tiers"]["mid"] = "openai/gpt-4o"
    doc["tiers"]["premium"] = "openai/o1"
    doc["defaults"]["provider"] = {"sort": "price"}
    doc["budgets"] = []
    rules = doc["rules"]
    rules[0]["when"]["user_tier"] = {"in": ["free", "trial"]}
    del rules[1]
    rules[1]["fallbacks"] = ["budget", "premium"]
    rules[1]["max_tokens"] = 512
    night = {"name": "night", "priority": 2, "when": {"tags.batch": True}, "model": "openai/gpt-4o-mini"}
    rules.insert(1, night)
    experiment = doc["experiments"][0]
    experiment["variants"] = [{"name": "llama", "weight": 20, "model": "meta-llama/llama-3.1-8b-instruct"},
                              {"name": "control", "weight": 80}]
    return doc


def test_equal_documents_have_no_changes() -> None:
    diff = diff_rules(OLD, copy.deepcopy(OLD))
    assert not diff and render(diff) == ["no changes"]


def test_key_order_is_not_a_change() -> None:
    shuffled = {k: OLD[k] for k in reversed(list(OLD))}
    assert not diff_rules(OLD, shuffled)


def test_a_known_pair_diffs_per_rule_and_per_field() -> None:
    diff = diff_rules(OLD, new_doc())
    by_key = {(e.section, e.name): e for e in diff.entries}
    assert by_key[("rules", "low-latency")].kind == "removed"
    assert by_key[("rules", "night")].kind == "added"
    assert by_key[("rules", "night")].new["priority"] == 2
    assert by_key[("rules", "default")].changes == (
        Change("fallbacks", ["budget"], ["budget", "premium"]),
        Change("max_tokens", ABSENT, 512),
    )
    assert by_key[("rules", "free-tier")].changes == (
        Change("when.user_tier", "free", {"in": ["free", "trial"]}),
    )
    assert by_key[("budgets", "per-tenant")].kind == "removed"
    assert by_key[("settings", "timezone")] == EntryDiff(
        "settings", "timezone", "changed", "UTC", "Europe/Paris", (Change("", "UTC", "Europe/Paris"),)
    )

    assert render(diff) == [
        "settings:",
        '  ~ timezone: "UTC" → "Europe/Paris"',
        "tiers:",
        '  ~ mid: "openai/gpt-4o-mini" → "openai/gpt-4o"',
        '  + premium: "openai/o1"',
        "defaults:",
        '  + provider: {"sort":"price"}',
        "budgets:",
        "  - per-tenant",
        "rules:",
        "  ~ free-tier",
        '      when.user_tier: "free" → {"in":["free","trial"]}',
        "  - low-latency",
        "  ~ default",
        '      fallbacks: ["budget"] → ["budget","premium"]',
        "      max_tokens: (absent) → 512",
        '  + night: {"name":"night","priority":2,"when":{"tags.batch":true},"model":"openai/gpt-4o-mini"}',
        "experiments:",
        "  ~ cls-cheap",
        "      variants[control].weight: 90 → 80",
        "      variants[llama].weight: 10 → 20",
        "      variants (order): control, llama → llama, control",
    ]


def test_reordered_rules_are_reported() -> None:
    doc = copy.deepcopy(OLD)
    doc["rules"] = [doc["rules"][1], doc["rules"][0], doc["rules"][2]]
    assert render(diff_rules(OLD, doc)) == [
        "rules:",
        "  ~ order: free-tier, low-latency, default → low-latency, free-tier, default",
    ]


def test_a_section_of_the_wrong_shape_is_compared_whole() -> None:
    broken = {**OLD, "rules": "oops"}
    (entry,) = diff_rules(OLD, broken).entries
    assert (entry.section, entry.kind, entry.new) == ("rules", "changed", "oops")


def test_unnamed_entries_are_matched_by_position() -> None:
    a = {"rules": [{"priority": 1, "model": "a/b"}]}
    b = {"rules": [{"priority": 2, "model": "a/b"}]}
    (entry,) = diff_rules(a, b).entries
    assert (entry.name, entry.changes) == ("#0", (Change("priority", 1, 2),))


def test_json_leaves_out_absent_sides() -> None:
    doc = orjson.loads((REPO / "config" / "rules.json").read_bytes())
    changed = copy.deepcopy(doc)
    changed["rules"][-1]["max_tokens"] = 64
    (entry,) = as_json(diff_rules(doc, changed))
    assert entry["section"] == "rules" and entry["name"] == "default" and entry["kind"] == "changed"
    assert entry["changes"] == [{"path": "max_tokens", "new": 64}]
    orjson.dumps(entry)  # serialisable
