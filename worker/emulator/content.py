"""Deterministic replies and token counts: the same request always gets the same answer.

Rules, in order (documented for tests and the README):

* Tool call: the request has ``tools``, ``tool_choice`` is not ``"none"``, and either
  ``tool_choice`` forces a call (``"required"`` or a named function) or the last user message
  contains the word "call" (case-insensitive, whole word). The call goes to the named function,
  else the first tool; its arguments fill the tool's JSON-schema properties from the prompt.
* Classification: the last user message contains "classify" (case-insensitive) → content
  ``"label: <x>"`` with x among positive/negative/neutral. The right answer, :func:`true_label`,
  is chosen by SHA-256 of that message; a model with accuracy ``a`` (the fault document's
  per-model ``accuracy``, default 1) gives it when SHA-256 of (model, message) falls below ``a``,
  else one of the two wrong labels. So the same prompt always gets the same answer from the same
  model, and simulated feedback ("score 1 when the answer is the true label") measures ``a``.
  With ``off_format`` ``f`` (default 0), the answer is a hedging sentence instead of a label when
  SHA-256 of (model, message, "format") falls below ``f``: what a validated cascade escalates.
* Otherwise an echo: ``"[<model>] <first 24 words of the last user message>"``.
* ``response_format`` json_object wraps the text as ``{"content": text}``; json_schema fills the
  schema's properties (enums by hash, strings with the text) so the content parses.

Tokens: prompt = ceil(text chars / 4) over every message's text + 4 per message + 85 per
image part; completion = ceil(chars / 4) of the content (or of name + arguments for a tool
call). Content longer than ``max_tokens`` is cut to ``4 * max_tokens`` chars, finish "length".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

LABELS = ("positive", "negative", "neutral")
LABEL_PREFIX = "label: "
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 85
_ECHO_WORDS = 24
_CALL_WORD = re.compile(r"\bcall\b", re.IGNORECASE)


def text_tokens(text: str) -> int:
    return -(-len(text) // 4)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one message: a string content, or the ``text`` parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def image_parts(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    chars = sum(len(message_text(m)) for m in messages)
    images = sum(image_parts(m) for m in messages)
    return -(-chars // 4) + TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_IMAGE * images


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def stable_index(text: str, size: int) -> int:
    """An index in ``range(size)`` that depends only on ``text`` (not on PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % size


def stable_fraction(text: str) -> float:
    """A number in [0, 1) that depends only on ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def is_classification(prompt: str) -> bool:
    return "classify" in prompt.lower()


def true_label(prompt: str) -> str:
    """The right label for a classification prompt (the last user message's text)."""
    return LABELS[stable_index(prompt, len(LABELS))]


def answered_label(model_id: str, prompt: str, accuracy: float = 1.0) -> str:
    """The label ``model_id`` answers: the true one when SHA-256 of (model, prompt) falls under its
    ``accuracy``, else one of the other two (also by hash), so it is wrong the same way every time."""
    truth = true_label(prompt)
    key = f"{model_id}\x1f{prompt}"
    if stable_fraction(key) < accuracy:
        return truth
    wrong = [label for label in LABELS if label != truth]
    return wrong[stable_index(key + "\x1fwrong", len(wrong))]


def is_off_format(model_id: str, prompt: str, off_format: float) -> bool:
    """Whether ``model_id`` answers ``prompt`` with a sentence rather than a label (by hash)."""
    return off_format > 0 and stable_fraction(f"{model_id}\x1f{prompt}\x1fformat") < off_format


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Reply:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    completion_tokens: int

    def partial(self) -> Reply:
        """The first half of the content: what a generation cut short by an error returns."""
        text = (self.content or "")[: len(self.content or "") // 2]
        return Reply(text, (), "error", text_tokens(text))


def make_reply(
    model_id: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None,
    tools: Sequence[Mapping[str, Any]] = (),
    tool_choice: object = None,
    response_format: object = None,
    accuracy: float = 1.0,
    off_format: float = 0.0,
) -> Reply:
    """The reply of ``model_id``; ``accuracy`` is its chance of labelling a classification right,
    ``off_format`` its chance of answering one with a sentence instead of a label."""
    prompt = last_user_text(messages)
    tool = _chosen_tool(prompt, tools, tool_choice)
    if tool is not None:
        name, schema = tool
        arguments = orjson.dumps(_fill(schema, prompt)).decode()
        call_id = "call_" + hashlib.sha256(f"{model_id}|{prompt}".encode()).hexdigest()[:24]
        tokens = text_tokens(name + arguments)
        if max_tokens is not None:
            tokens = min(tokens, max_tokens)
        return Reply(None, (ToolCall(call_id, name, arguments),), "tool_calls", tokens)
    content = _format(_base_text(model_id, prompt, accuracy, off_format), response_format, prompt)
    tokens = text_tokens(content)
    if max_tokens is not None and tokens > max_tokens:
        return Reply(content[: max_tokens * 4], (), "length", max_tokens)
    return Reply(content, (), "stop", tokens)


def _base_text(model_id: str, prompt: str, accuracy: float, off_format: float) -> str:
    if is_classification(prompt):
        label = answered_label(model_id, prompt, accuracy)
        if is_off_format(model_id, prompt, off_format):
            return f"Hard to say; it reads as mostly {label}, though some would disagree."
        return LABEL_PREFIX + label
    words = prompt.split()[:_ECHO_WORDS]
    return f"[{model_id}] {' '.join(words)}" if words else f"[{model_id}] (no user message)"


def _chosen_tool(
    prompt: str, tools: Sequence[Mapping[str, Any]], tool_choice: object
) -> tuple[str, Any] | None:
    if not tools or tool_choice == "none":
        return None
    functions = [t["function"] for t in tools if isinstance(t.get("function"), Mapping)]
    if not functions:
        return None
    forced = tool_choice == "required" or isinstance(tool_choice, Mapping)
    if not forced and not _CALL_WORD.search(prompt):
        return None
    chosen = functions[0]
    if isinstance(tool_choice, Mapping):
        wanted = (tool_choice.get("function") or {}).get("name")
        chosen = next((f for f in functions if f.get("name") == wanted), chosen)
    return str(chosen.get("name", "")), chosen.get("parameters") or {}


def _format(text: str, response_format: object, prompt: str) -> str:
    if not isinstance(response_format, Mapping):
        return text
    kind = response_format.get("type")
    if kind == "json_object":
        return orjson.dumps({"content": text}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return orjson.dumps(_fill(schema or {}, prompt, text)).decode()
    return text


def _fill(schema: object, prompt: str, text: str | None = None) -> Any:
    """A deterministic value that matches a (simple) JSON schema."""
    if not isinstance(schema, Mapping):
        return {}
    words = prompt.split()
    filler = text if text is not None else " ".join(words[:8])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][stable_index(prompt, len(schema["enum"]))]
    kind = schema.get("type", "object")
    if kind == "string":
        return filler
    if kind == "integer":
        return len(words)
    if kind == "number":
        return float(len(words))
    if kind == "boolean":
        return stable_index(prompt, 2) == 1
    if kind == "array":
        return [_fill(schema.get("items", {}), prompt, text)]
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {name: _fill(sub, prompt, text) for name, sub in properties.items()}
