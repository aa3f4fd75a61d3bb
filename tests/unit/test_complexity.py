"""The seed's complexity classifier, and the ``complexity`` / ``task_type_source`` built-ins."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import seed_model_routing as seed
from worker.classify import COMPLEXITY, classify_complexity, last_user_text
from worker.rules import compile_rules
from worker.rules import scope as scope_module


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("calculate 2 + 2", "premium"),  # maths alone is premium
        ("Explain this: def f(): pass", "premium"),  # reasoning about code
        ("def f(): pass", "standard"),  # code alone
        ("import os", "standard"),
        ("Why is the sky blue?", "standard"),  # reasoning alone
        ("what are the tradeoffs", "standard"),
        ("Please analyse this", "budget"),  # the seed matches "analyze" only
        ("Please ANALYZE this", "standard"),
        ("def\nf(): pass", "budget"),  # "def " needs the space, as in the seed
        ("Class notes", "budget"),  # the code pattern is case-sensitive
        ("word " * 100, "budget"),
        ("word " * 101, "mid"),
        ("word " * 500, "mid"),
        ("word " * 501, "standard"),
        ("", "budget"),
    ],
)
def test_tiers(text: str, tier: str) -> None:
    assert classify_complexity(text) == tier == seed.classify_complexity(text)


ALPHABET = st.sampled_from(["def ", "class ", "```", "why", "WHY", "explain", "derive", "proof", "trade_off",
                            "how does", "word", " ", "\n", "\u2003", "x", "é"])


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=200), st.lists(ALPHABET, max_size=700).map("".join)))
def test_is_the_seed_function(text: str) -> None:
    assert classify_complexity(text) == seed.classify_complexity(text)
    assert classify_complexity(text) in COMPLEXITY


def test_last_user_text_is_what_the_seed_reads() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}},
                                     {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "trailing"},
    ]
    assert last_user_text(messages) == "a\nb"
    assert last_user_text(messages[:2]) == "first"
    assert last_user_text([{"role": "user", "content": None}, *messages[1:2]]) == ""
    assert last_user_text([{"role": "system", "content": "calculate"}]) == ""
    # The last user message counts even when empty: an earlier one is not read.
    assert last_user_text([{"role": "user", "content": "derive"}, {"role": "user", "content": ""}]) == ""


def _rules(when: dict[str, Any]) -> Any:
    return compile_rules({"rules": [
        {"name": "probe", "priority": 1, "when": when, "model": "a/b"},
        {"name": "rest", "priority": 99, "when": {}, "model": "c/d"},
    ]})


def test_rules_read_complexity_from_the_last_user_message() -> None:
    rules = _rules({"complexity": ["premium", "standard"]})
    hi = {"role": "user", "content": "hi"}
    hard = rules.decide({}, messages=[hi, {"role": "user", "content": "prove it: why?"}])
    assert (hard.rule, hard.trace[0].why) == ("probe", "complexity: 'standard' in ['premium', 'standard']")
    easy = rules.decide({}, messages=[{"role": "user", "content": "why?"}, hi])
    assert easy.rule == "rest"
    assert rules.decide({}).trace[0].why == "complexity: missing"  # no messages: nothing to classify
    shadowed = rules.decide({}, messages=[hi], computed={"complexity": "premium"})
    assert shadowed.rule == "probe"


def test_a_context_field_named_complexity_is_shadowed() -> None:
    rules = _rules({"complexity": "premium"})
    hi = [{"role": "user", "content": "hi"}]
    assert rules.decide({"complexity": "premium"}, messages=hi).rule == "rest"


def test_complexity_is_computed_only_when_read_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(text: str) -> str:
        calls.append(text)
        return "mid"

    monkeypatch.setattr(scope_module, "classify_complexity", counting)
    messages = [{"role": "user", "content": "hello"}]
    _rules({"task_type": "code"}).decide({"task_type": "chat"}, messages=messages)
    assert calls == []
    twice = compile_rules({"rules": [
        {"name": "one", "priority": 1, "when": {"complexity": "premium"}, "model": "a/b"},
        {"name": "two", "priority": 2, "when": {"complexity": "mid", "x": 1}, "model": "a/b"},
        {"name": "rest", "priority": 99, "when": {}, "model": "c/d"},
    ]})
    assert twice.decide({}, messages=messages).rule == "rest"
    assert calls == ["hello"]


@pytest.mark.parametrize(
    ("context", "task_source", "expected"),
    [
        ({"task_type": "chat"}, None, "context"),
        ({"task_type": "auto"}, None, "none"),
        ({}, None, "none"),
        ({"task_type": "code"}, "classifier", "classifier"),
    ],
)
def test_task_type_source(context: dict[str, Any], task_source: str | None, expected: str) -> None:
    rules = _rules({"task_type_source": expected})
    assert rules.decide(context, task_source=task_source).rule == "probe"
    other = "context" if expected != "context" else "none"
    assert _rules({"task_type_source": other}).decide(context, task_source=task_source).rule == "rest"
