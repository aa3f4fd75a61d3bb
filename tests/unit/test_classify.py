"""Task-type heuristics (the seed's complexity classifier) and when they apply."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.classify import LABELS, classified_context, classify_task


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("```python\nprint(1)\n```", "code"),
        ("def parse(x): return x", "code"),
        ("write a function that sorts", "code"),
        ("class Node: pass", "code"),
        ("import numpy as np", "code"),
        ("Explain this: def f(): pass", "code"),  # code wins over reasoning, as briefed
        ("Explain how a hash map works", "analysis"),
        ("Why is the sky blue?", "analysis"),
        ("COMPARE these two offers", "analysis"),
        ("what are the trade-offs here", "analysis"),
        ("Please analyse the results", "analysis"),
        ("calculate the area of a circle", "analysis"),
        ("derive the closed form", "analysis"),
        ("Is this review positive or negative: great product!", "classification"),
        ("hello", "classification"),
        ("", "classification"),
        ("word " * 100, "classification"),
        ("word " * 101, "chat"),
        ("word " * 500, "chat"),
        ("word " * 501, "analysis"),
        ("Classification of documents", "classification"),  # "class" needs a following space
    ],
)
def test_labels(text: str, label: str) -> None:
    assert classify_task(text) == label


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_always_one_of_the_documented_labels(text: str) -> None:
    assert classify_task(text) in LABELS


def test_classified_context_keeps_a_given_task_type() -> None:
    ctx = {"task_type": "chat", "user_tier": "pro"}
    routed, source = classified_context(ctx, [{"role": "user", "content": "def f(): pass"}])
    assert (routed, source) == (ctx, "context")


@pytest.mark.parametrize("given_type", [None, "auto", 5])
def test_classified_context_fills_missing_or_auto(given_type: object) -> None:
    ctx = {"task_type": given_type, "user_tier": "pro"}
    routed, source = classified_context(ctx, [{"role": "user", "content": "import os"}])
    assert (routed["task_type"], routed["user_tier"], source) == ("code", "pro", "classifier")
    assert ctx["task_type"] == given_type  # the caller's context is not mutated
    routed, source = classified_context({}, [{"role": "user", "content": "import os"}])
    assert routed == {"task_type": "code"}


def test_classified_context_without_user_text_leaves_it_missing() -> None:
    routed, source = classified_context(
        {"task_type": "auto", "tenant": "t"}, [{"role": "system", "content": "x"}]
    )
    assert (routed, source) == ({"tenant": "t"}, "none")
    ctx = {"tenant": "t"}
    assert classified_context(ctx, []) == (ctx, "none")
