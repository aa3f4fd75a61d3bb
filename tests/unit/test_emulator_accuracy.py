"""The emulator's classification accuracy: a true label per prompt, a configured accuracy per model.

Feedback is simulated from these answers ("score 1 when the answer is the true label"), so they
must be deterministic per (model, prompt) and right about as often as configured.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from worker.catalog import Catalog
from worker.emulator.app import EmulatorApp
from worker.emulator.content import (
    LABEL_PREFIX,
    LABELS,
    answered_label,
    make_reply,
    stable_index,
    true_label,
)
from worker.emulator.faults import FaultConfig, FaultConfigError
from worker.emulator.http import Request

LLAMA, MINI = "meta-llama/llama-3.1-8b-instruct", "openai/gpt-4o-mini"
PROMPTS = [f"Classify the sentiment of review #{i}: it was fine, I guess." for i in range(2000)]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_the_true_label_is_what_a_perfect_model_always_said() -> None:
    for prompt in PROMPTS[:50]:
        assert true_label(prompt) == LABELS[stable_index(prompt, len(LABELS))]
        reply = make_reply(MINI, user(prompt), max_tokens=None)
        assert reply.content == LABEL_PREFIX + true_label(prompt)


@pytest.mark.parametrize("accuracy", [0.0, 0.5, 0.8, 0.95])
def test_a_model_is_right_about_as_often_as_configured(accuracy: float) -> None:
    right = sum(answered_label(LLAMA, p, accuracy) == true_label(p) for p in PROMPTS)
    # Binomial(2000, a): 4 standard deviations either side.
    slack = 4 * (accuracy * (1 - accuracy) / len(PROMPTS)) ** 0.5
    assert abs(right / len(PROMPTS) - accuracy) <= slack


def test_answers_are_deterministic_and_wrong_answers_are_real_labels() -> None:
    first = [answered_label(LLAMA, p, 0.7) for p in PROMPTS[:300]]
    assert first == [answered_label(LLAMA, p, 0.7) for p in PROMPTS[:300]]
    assert set(first) <= set(LABELS)
    for prompt in PROMPTS[:300]:
        assert answered_label(LLAMA, prompt, 0.0) != true_label(prompt)
    # Two models of the same accuracy are wrong on different prompts (errors hash on the model too).
    wrong_llama = {p for p in PROMPTS if answered_label(LLAMA, p, 0.8) != true_label(p)}
    wrong_mini = {p for p in PROMPTS if answered_label(MINI, p, 0.8) != true_label(p)}
    assert wrong_llama != wrong_mini and wrong_llama & wrong_mini


def test_raising_the_accuracy_only_fixes_answers() -> None:
    """A prompt a model gets right at 0.6 it also gets right at 0.9 (the same hash threshold)."""
    for prompt in PROMPTS[:500]:
        if answered_label(LLAMA, prompt, 0.6) == true_label(prompt):
            assert answered_label(LLAMA, prompt, 0.9) == true_label(prompt)


def test_accuracy_in_the_fault_document() -> None:
    config = FaultConfig.from_dict({"models": {"*": {"accuracy": 0.9}, LLAMA: {"accuracy": 0.6}}})
    assert (config.accuracy(LLAMA), config.accuracy(MINI)) == (0.6, 0.9)
    assert FaultConfig.from_dict({}).accuracy(LLAMA) == 1.0
    assert FaultConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["models"][LLAMA] == {"accuracy": 0.6}


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", True])
def test_an_accuracy_outside_0_1_is_refused(bad: object) -> None:
    with pytest.raises(FaultConfigError, match="accuracy"):
        FaultConfig.from_dict({"models": {LLAMA: {"accuracy": bad}}})


def test_the_emulator_answers_with_the_configured_accuracy() -> None:
    faults = FaultConfig.from_dict({"models": {LLAMA: {"accuracy": 0.0}}})
    app = EmulatorApp(Catalog.load(), faults, api_key="sk-or-test")

    async def label(model: str, prompt: str) -> str:
        body = orjson.dumps({"model": model, "messages": user(prompt)})
        headers = {"authorization": "Bearer sk-or-test"}
        resp = await app(Request("POST", "/api/v1/chat/completions", "", headers, body))
        assert resp.status == 200, resp.body
        content: str = orjson.loads(resp.body)["choices"][0]["message"]["content"]
        return content.removeprefix(LABEL_PREFIX)

    async def run() -> None:
        for prompt in PROMPTS[:20]:
            assert await label(LLAMA, prompt) != true_label(prompt)
            assert await label(MINI, prompt) == true_label(prompt)

    asyncio.run(run())
