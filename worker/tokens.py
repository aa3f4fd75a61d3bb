"""Prompt-size estimates for routing and for worst-case budget reservations.

No tokenizer: the routing path must stay pure and microsecond-fast, and each model family
tokenizes differently anyway. The estimate is deliberately high, because a budget reservation
that under-estimates can let spending overshoot a cap, while one that over-estimates only
holds some headroom until the job settles with the real ``usage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

#: Fixed cost of one image part. The estimate must not download or decode images, so it uses
#: one figure: 85 + 6 x 170 = 1105, OpenAI's high-detail price for a 6-tile image (e.g. a 2:1
#: picture scaled to 1536x768). It is a typical large image, not a bound: an 8-tile image costs
#: 1445 at OpenAI and Anthropic charges up to ~1600 for 1.15 megapixels. Settlement uses the
#: real ``usage``, so the error only affects how much headroom a reservation holds.
IMAGE_TOKENS: Final = 1105
#: Per-message framing (role, separators), as in OpenAI's published counting recipe.
MESSAGE_OVERHEAD: Final = 4
#: Tokens that prime the assistant's reply.
REPLY_PRIMING: Final = 3

_TEXT_PARTS: Final = frozenset({"text", "input_text"})
_IMAGE_PARTS: Final = frozenset({"image_url", "input_image", "image"})


def _text_tokens(text: str) -> int:
    """ceil(size / 3): English averages ~4 chars per token, so /3 leaves a ~33% margin.

    Size is the UTF-8 length, which equals the character count for ASCII and keeps the estimate
    conservative for scripts (CJK, emoji) where one character is often a whole token or more.
    """
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return (size + 2) // 3


def _json_tokens(value: Any) -> int:
    """Structured data (tool calls, tool schemas, unknown parts) counted by its JSON length."""
    try:
        size = len(orjson.dumps(value))
    except TypeError:
        size = len(repr(value).encode("utf-8", "surrogatepass"))
    return (size + 2) // 3


def _part_tokens(part: Any) -> int:
    if isinstance(part, str):
        return _text_tokens(part)
    if isinstance(part, Mapping):
        kind = part.get("type")
        text = part.get("text")
        if kind in _TEXT_PARTS and isinstance(text, str):
            return _text_tokens(text)
        if kind in _IMAGE_PARTS:
            return IMAGE_TOKENS
    return _json_tokens(part)


def _message_tokens(message: Any) -> int:
    if not isinstance(message, Mapping):
        return MESSAGE_OVERHEAD + _json_tokens(message)
    tokens = MESSAGE_OVERHEAD
    for key, value in message.items():
        if value is None or key == "role":
            continue
        if isinstance(value, str):
            tokens += _text_tokens(value)  # content, name, tool_call_id
        elif key == "content" and isinstance(value, list | tuple):
            tokens += sum(_part_tokens(part) for part in value)
        else:
            tokens += _json_tokens(value)  # tool_calls and anything unusual
    return tokens


def estimate_prompt_tokens(
    messages: Sequence[Mapping[str, Any]], *, tools: Iterable[Mapping[str, Any]] | None = None
) -> int:
    """Conservative prompt size: text at ceil(bytes/3), images at a flat 1105, tools by JSON length.

    Never raises on odd input: anything unrecognised is counted by its JSON (or repr) length.
    """
    total = REPLY_PRIMING + sum(_message_tokens(m) for m in messages)
    if tools:
        total += _json_tokens(list(tools))
    return total


def text_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """The user's text, every user message joined by newlines: what the classifier reads."""
    chunks: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            chunks.append(content)
        elif isinstance(content, list | tuple):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS:
                    text = part.get("text")
                    if isinstance(text, str):
                        chunks.append(text)
    return "\n".join(chunks)
