"""Prompt-size estimates: the exact formula, its conservative choices, and robustness."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, estimate_prompt_tokens, text_of


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def test_formula_for_plain_text() -> None:
    assert estimate_prompt_tokens([]) == REPLY_PRIMING == 3
    assert MESSAGE_OVERHEAD == 4
    assert estimate_prompt_tokens([user("hello")]) == 2 + 4 + 3  # ceil(5/3) = 2
    assert estimate_prompt_tokens([user("abc"), user("abcd")]) == 1 + 2 + 2 * 4 + 3


@settings(max_examples=200)
@given(st.text(max_size=400))
def test_text_costs_ceil_utf8_bytes_over_3(text: str) -> None:
    expected = math.ceil(len(text.encode("utf-8", "surrogatepass")) / 3) + 4 + 3
    assert estimate_prompt_tokens([user(text)]) == expected


@settings(max_examples=100)
@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=2000))
def test_english_gets_a_third_more_than_four_chars_per_token(text: str) -> None:
    body = estimate_prompt_tokens([user(text)]) - 4 - 3
    assert body >= len(text) / 3 >= len(text) / 4 * 1.33


def test_non_ascii_scripts_are_not_underestimated() -> None:
    # Chinese is often a token or more per character; counting characters/3 would say 1 here.
    assert estimate_prompt_tokens([user("你好吗")]) - 7 == 3


def test_image_parts_cost_a_fixed_amount() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    text = {"type": "text", "text": "what is this?"}
    assert estimate_prompt_tokens([user([text, image, image])]) == 5 + 2 * IMAGE_TOKENS + 4 + 3
    assert IMAGE_TOKENS == 1105


def test_tools_count_by_json_length() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    msgs = [user("weather?")]
    extra = estimate_prompt_tokens(msgs, tools=tools) - estimate_prompt_tokens(msgs)
    assert extra == math.ceil(len(orjson.dumps(tools)) / 3)


def test_tool_calls_names_and_ids_count() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    bare = estimate_prompt_tokens([{"role": "assistant", "content": None}])
    with_calls = estimate_prompt_tokens([{"role": "assistant", "content": None, "tool_calls": [call]}])
    assert with_calls - bare == math.ceil(len(orjson.dumps([call])) / 3)
    tool_reply = {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "sunny"}
    assert estimate_prompt_tokens([tool_reply]) == 1 + 1 + 2 + 4 + 3


def test_odd_input_is_counted_not_rejected() -> None:
    odd: list[Any] = [
        user(None),
        user(12345),
        user([{"type": "input_audio", "input_audio": {"data": "xyz"}}, "bare string", 7]),
        "not a message",
        {"role": "user", "content": {1, 2}},  # not JSON at all: counted by repr
    ]
    assert estimate_prompt_tokens(odd) > estimate_prompt_tokens([])


@settings(max_examples=100)
@given(st.lists(st.text(max_size=50), max_size=5), st.text(max_size=50))
def test_adding_a_message_never_lowers_the_estimate(texts: list[str], more: str) -> None:
    msgs = [user(t) for t in texts]
    assert estimate_prompt_tokens([*msgs, user(more)]) >= estimate_prompt_tokens(msgs) + MESSAGE_OVERHEAD


def test_text_of_joins_user_text_only() -> None:
    msgs = [
        {"role": "system", "content": "be terse"},
        user("first"),
        {"role": "assistant", "content": "ok"},
        user([{"type": "text", "text": "second"}, {"type": "image_url", "image_url": {"url": "x"}}]),
        user(None),
        "junk",
    ]
    assert text_of(msgs) == "first\nsecond"  # type: ignore[arg-type]
    assert text_of([]) == ""
