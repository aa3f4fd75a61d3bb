"""A rule's ``accept`` and ``escalate``: validated at load, carried by the decision."""

from __future__ import annotations

from typing import Any

import pytest

from worker.catalog import Catalog
from worker.rules import RulesError, compile_rules
from worker.rules.cascade import JsonSchema, Labels, Regex

TIERS = {"budget": "meta-llama/llama-3.1-8b-instruct", "mid": "openai/gpt-4o-mini",
         "standard": "anthropic/claude-3.5-sonnet"}
SHIPPED = Catalog.load()


def doc(**rule: Any) -> dict[str, Any]:
    when = {"task_type": "classification"}
    probe = {"name": "classify", "priority": 1, "when": when, "tier": "budget", **rule}
    return {"tiers": TIERS, "rules": [probe, {"name": "rest", "priority": 99, "when": {}, "tier": "mid"}]}


def test_the_decision_carries_accept_and_resolved_escalation_steps() -> None:
    rules = compile_rules(doc(accept={"labels": ["positive", "negative"]},
                              escalate=["mid", "openai/gpt-4o", "standard"]), catalog=SHIPPED)
    d = rules.decide({"task_type": "classification"})
    assert isinstance(d.accept, Labels) and d.accept.labels == ("positive", "negative")
    assert d.escalate == ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3.5-sonnet")
    assert d.to_dict()["accept"] == {"labels": ["positive", "negative"]}
    assert d.to_dict()["escalate"] == ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3.5-sonnet"]
    other = rules.decide({"task_type": "chat"})
    assert (other.accept, other.escalate) == (None, ())
    assert {"openai/gpt-4o", "anthropic/claude-3.5-sonnet"} <= rules.models()


def test_each_kind_of_accept_compiles() -> None:
    regex = compile_rules(doc(accept={"regex": "[0-9]+"})).decide({"task_type": "classification"}).accept
    assert isinstance(regex, Regex) and regex.pattern.fullmatch("42")
    schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"],
              "additionalProperties": False, "description": "annotations are allowed"}
    d = compile_rules(doc(accept={"json_schema": schema})).decide({"task_type": "classification"})
    assert isinstance(d.accept, JsonSchema)
    assert (d.accept.name, d.accept.strict) == ("classify", True)
    assert d.to_dict()["accept"] == {"json_schema": schema}


def test_an_experiment_variant_keeps_the_cascade() -> None:
    document = doc(accept={"labels": ["x"]}, escalate=["standard"])
    document["experiments"] = [{"name": "e", "rule": "classify", "unit": "user_id", "variants": [
        {"name": "control", "weight": 0}, {"name": "mid", "weight": 100, "tier": "mid"}]}]
    d = compile_rules(document).decide({"task_type": "classification", "user_id": "u"})
    assert (d.model, d.escalate) == ("openai/gpt-4o-mini", ("anthropic/claude-3.5-sonnet",))
    assert d.accept is not None


R = "$.rules[0]"


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"accept": ["a"]}, f"{R}.accept", "expected an object with exactly one of labels, regex, "),
        ({"accept": {"labels": ["a"], "regex": "a"}}, f"{R}.accept", "exactly one of"),
        ({"accept": {"label": ["a"]}}, f"{R}.accept.label", "unknown key 'label'"),
        ({"accept": {"labels": []}}, f"{R}.accept.labels", "expected a non-empty list of labels"),
        ({"accept": {"labels": ["a", " "]}}, f"{R}.accept.labels[1]", "expected a non-empty string"),
        ({"accept": {"labels": ["Yes", "yes"]}}, f"{R}.accept.labels[1]", "duplicate label 'yes'"),
        ({"accept": {"regex": "(unclosed"}}, f"{R}.accept.regex", "invalid regular expression"),
        ({"accept": {"regex": 5}}, f"{R}.accept.regex", "expected a non-empty regular expression string"),
        ({"accept": {"json_schema": []}}, f"{R}.accept.json_schema", "expected a schema object"),
        ({"accept": {"json_schema": {"type": "object", "properties": {"name": {"type": "text"}}}}},
         f"{R}.accept.json_schema.properties.name.type", "expected a type or a list of types"),
        ({"accept": {"json_schema": {"pattern": "^a"}}}, f"{R}.accept.json_schema.pattern",
         "unsupported schema keyword 'pattern'"),
        ({"accept": {"json_schema": {"oneOf": []}}}, f"{R}.accept.json_schema.oneOf", "unsupported"),
        ({"accept": {"json_schema": {"properties": []}}}, f"{R}.accept.json_schema.properties",
         "expected an object of property schemas"),
        ({"accept": {"json_schema": {"required": "a"}}}, f"{R}.accept.json_schema.required",
         "expected a list of property names"),
        ({"accept": {"json_schema": {"required": ["a", "a"]}}}, f"{R}.accept.json_schema.required", "unique"),
        ({"accept": {"json_schema": {"enum": []}}}, f"{R}.accept.json_schema.enum", "non-empty list"),
        ({"accept": {"json_schema": {"enum": [1, 1.0]}}}, f"{R}.accept.json_schema.enum[1]", "duplicate"),
        ({"accept": {"json_schema": {"enum": ["a"], "const": "a"}}}, f"{R}.accept.json_schema.const",
         'give "enum" or "const"'),
        ({"accept": {"json_schema": {"minLength": -1}}}, f"{R}.accept.json_schema.minLength",
         "expected a non-negative integer"),
        ({"accept": {"json_schema": {"minLength": 3, "maxLength": 2}}}, f"{R}.accept.json_schema.maxLength",
         "below the minimum"),
        ({"accept": {"json_schema": {"minimum": "0"}}}, f"{R}.accept.json_schema.minimum", "a number"),
        ({"accept": {"json_schema": {"items": {"type": "array", "items": 3}}}},
         f"{R}.accept.json_schema.items.items", "expected a schema object"),
        ({"accept": {"json_schema": {"additionalProperties": "no"}}},
         f"{R}.accept.json_schema.additionalProperties", "expected a schema object"),
        ({"escalate": ["mid"]}, f"{R}.escalate", 'escalating needs an "accept"'),
        ({"accept": {"labels": ["a"]}, "escalate": []}, f"{R}.escalate", "expected a non-empty list"),
        ({"accept": {"labels": ["a"]}, "escalate": "mid"}, f"{R}.escalate", "expected a non-empty list"),
        ({"accept": {"labels": ["a"]}, "escalate": ["gold"]}, f"{R}.escalate[0]", "unknown tier 'gold'"),
        ({"accept": {"labels": ["a"]}, "escalate": ["not/a model"]}, f"{R}.escalate[0]", "not a model id"),
        ({"accept": {"labels": ["a"]}, "escalate": ["mid", "openai/gpt-4o-mini"]}, f"{R}.escalate[1]",
         "'openai/gpt-4o-mini' is already step 1"),
        ({"accept": {"labels": ["a"]}, "escalate": ["budget"]}, f"{R}.escalate[0]", "the rule's own model"),
        ({"accept": {"labels": ["a"]}, "escalate": ["openai/gpt-5"]}, f"{R}.escalate[0]",
         "not in the model catalog"),
    ],
)
def test_problems_are_reported_at_their_path(rule: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        compile_rules(doc(**rule), catalog=SHIPPED)
    assert any(p.path == path and message in p.message for p in info.value.problems), info.value.problems


def test_unknown_escalation_models_pass_when_allowed_or_without_a_catalog() -> None:
    rule = {"accept": {"labels": ["a"]}, "escalate": ["openai/gpt-5"]}
    assert compile_rules(doc(**rule)).decide({"task_type": "classification"}).escalate == ("openai/gpt-5",)
    allowed = {**doc(**rule), "allow_unknown_models": True}
    assert compile_rules(allowed, catalog=SHIPPED).rules[0].escalate == ("openai/gpt-5",)


def test_a_select_rule_can_escalate() -> None:
    document = doc(accept={"labels": ["a"]}, escalate=["standard"])
    del document["rules"][0]["tier"]
    document["rules"][0]["select"] = {"from": ["budget", "mid"]}
    d = compile_rules(document, catalog=SHIPPED).decide({"task_type": "classification"})
    assert d.chain == ("meta-llama/llama-3.1-8b-instruct", "openai/gpt-4o-mini")
    assert d.escalate == ("anthropic/claude-3.5-sonnet",)
