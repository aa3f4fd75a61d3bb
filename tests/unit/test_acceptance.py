"""Judging answers for the validated cascade: labels, regular expressions, JSON schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.acceptance import Verdict, check, label_of, response_format, validate
from worker.catalog import Catalog
from worker.emulator.content import LABELS, make_reply
from worker.rules.cascade import Accept, JsonSchema, compile_accept, compile_schema
from worker.rules.problems import Problem


def accept(spec: dict[str, Any], name: str = "rule") -> Accept:
    problems: list[Problem] = []
    compiled = compile_accept(spec, "$.accept", name, problems)
    assert problems == [] and compiled is not None
    return compiled


SENTIMENT = accept({"labels": ["positive", "negative", "Neutral"]})


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ("positive", True),
        ("  Positive \n", True),
        ("label: negative", True),
        ("Label:Neutral.", True),
        ("LABEL:  'positive'", True),
        ('"negative"', True),
        ("`neutral`", True),
        ("neutral", True),  # declared as "Neutral": compared case-insensitively
        ("maybe", False),
        ("positive or negative", False),
        ("positive!", False),
        ("labels: positive", False),
        ("", False),
        ("   ", False),
        (None, False),
    ],
)
def test_labels(answer: str | None, ok: bool) -> None:
    verdict = check(answer, SENTIMENT)
    assert verdict.ok is ok
    if not ok:
        assert verdict.reason


def test_label_reasons_say_what_was_answered() -> None:
    assert check("Label: Maybe", SENTIMENT) == Verdict(
        False, "'maybe' is not one of the labels (positive, negative, Neutral)"
    )
    assert check("label: positive", SENTIMENT) == Verdict(True, "label 'positive'")
    assert check(None, SENTIMENT) == Verdict(False, "no answer")
    assert label_of("  LABEL : 'Neutral'. ") == "neutral"


def test_every_emulator_classification_answer_is_a_label() -> None:
    for i in range(200):
        reply = make_reply("openai/gpt-4o-mini", [{"role": "user", "content": f"classify review {i}"}],
                           max_tokens=50)
        verdict = check(reply.content, SENTIMENT)
        assert verdict.ok, reply.content
        assert label_of(reply.content or "") in LABELS


def test_regex_matches_the_whole_trimmed_answer() -> None:
    digits = accept({"regex": r"\d+"})
    assert check(" 42\n", digits).ok
    assert not check("42 apples", digits).ok
    assert check("42 apples", digits).reason == "'42 apples' does not match /\\d+/"
    inside = accept({"regex": r"(?s).*\bREFUND\b.*"})
    assert check("line one\nplease REFUND me\nthanks", inside).ok


SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "count": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 5}, "maxItems": 2},
        "note": {"type": ["string", "null"]},
    },
    "required": ["sentiment", "score"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"sentiment": "positive", "score": 0.5}', None),
        ('{"sentiment": "negative", "score": 1, "count": 2.0, "tags": ["a"], "note": null}', None),
        ('```json\n{"sentiment": "positive", "score": 0}\n```', None),
        ('{"sentiment": "positive"}', "$: missing required property 'score'"),
        ('{"sentiment": "meh", "score": 0.5}', "$.sentiment: 'meh' is not one of 'positive', 'negative'"),
        ('{"sentiment": "positive", "score": 1.5}', "$.score: 1.5 is above the maximum 1"),
        ('{"sentiment": "positive", "score": true}', "$.score: expected number, got boolean"),
        ('{"sentiment": "positive", "score": 0, "count": 1.5}', "$.count: expected integer, got number"),
        ('{"sentiment": "positive", "score": 0, "tags": ["toolong"]}', "$.tags[0]: longer than 5 characters"),
        ('{"sentiment": "positive", "score": 0, "tags": ["a", "b", "c"]}', "$.tags: more than 2 items"),
        ('{"sentiment": "positive", "score": 0, "extra": 1}', "$.extra: unexpected property"),
        ('["positive"]', "$: expected object, got array"),
        ("positive", "not JSON"),
    ],
)
def test_json_schema(answer: str, reason: str | None) -> None:
    verdict = check(answer, accept({"json_schema": SCHEMA}))
    assert verdict.ok is (reason is None), verdict
    if reason is not None:
        assert verdict.reason.startswith(reason), verdict.reason


def test_additional_properties_may_be_a_schema() -> None:
    problems: list[Problem] = []
    schema = compile_schema({"type": "object", "additionalProperties": {"type": "integer"}}, "$", problems)
    assert schema is not None and problems == []
    assert validate({"a": 1, "b": 2}, schema) is None
    assert validate({"a": "x"}, schema) == "$.a: expected integer, got string"


SIMPLE = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "summary": {"type": "string"}, "words": {"type": "integer"}, "urgent": {"type": "boolean"},
    },
    "required": ["sentiment", "summary", "words", "urgent"],
    "additionalProperties": False,
}


def test_emulator_structured_answers_pass_their_schema() -> None:
    rule = accept({"json_schema": SIMPLE}, name="sentiment v2!")
    assert isinstance(rule, JsonSchema)
    catalog = Catalog.load()
    fmt = response_format(rule, catalog.get("openai/gpt-4o-mini"))
    assert fmt == {"type": "json_schema",
                   "json_schema": {"name": "sentiment_v2_", "strict": True, "schema": SIMPLE}}
    for i in range(50):
        reply = make_reply("openai/gpt-4o-mini", [{"role": "user", "content": f"rate review {i}"}],
                           max_tokens=200, response_format=fmt)
        assert check(reply.content, rule).ok, reply.content


def test_response_format_only_for_json_schema_and_models_with_structured_outputs() -> None:
    catalog = Catalog.load()
    strict = accept({"json_schema": SIMPLE})
    assert (response_format(strict, catalog.get("openai/gpt-4o")) or {})["json_schema"]["strict"] is True
    loose = accept({"json_schema": SCHEMA})  # not every property is required
    assert (response_format(loose, catalog.get("openai/gpt-4o")) or {})["json_schema"]["strict"] is False
    assert response_format(strict, catalog.get("anthropic/claude-3.5-sonnet")) is None
    assert response_format(strict, None) is None
    assert response_format(SENTIMENT, catalog.get("openai/gpt-4o")) is None
    assert response_format(None, catalog.get("openai/gpt-4o")) is None


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_never_raises(answer: str) -> None:
    for rule in (SENTIMENT, accept({"regex": "[a-z]+"}), accept({"json_schema": SCHEMA})):
        verdict = check(answer, rule)
        assert isinstance(verdict.ok, bool) and verdict.reason
