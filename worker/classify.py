"""Task-type heuristics for contexts whose ``task_type`` is missing or ``"auto"``.

Pure regular expressions and a word count, microseconds per prompt, reproducing the seed's
complexity classifier: a trained model would be better, but routing must not wait for one.
The labels and the tier the seeds give each of them:

- ``"code"``: a code fence or ``def ``/``function ``/``class ``/``import `` (standard tier);
- ``"analysis"``: reasoning or maths vocabulary (explain, compare, why, prove, calculate …),
  or a prompt over 500 words (standard tier);
- ``"chat"``: 101-500 words of anything else (mid tier);
- ``"classification"``: up to 100 words: short, simple work (budget tier).

The code pattern is the seed's, false positives included ("What class is she in?" is "code"):
a routing label errs towards the stronger model, which costs money but not correctness.

``classify_complexity`` is the model-routing seed's tier classifier itself (budget, mid,
standard, premium), on the last user message: rules read it as the built-in ``complexity``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from worker.tokens import text_of

LABELS: Final = ("code", "analysis", "chat", "classification")
#: The model-routing seed's complexity tiers, cheapest first.
COMPLEXITY: Final = ("budget", "mid", "standard", "premium")

TaskTypeSource = Literal["context", "classifier", "none"]

_CODE: Final = re.compile(r"```|def |function |class |import ")
_REASONING: Final = re.compile(r"explain|analy[sz]e|compare|why|how does|trade.?off", re.IGNORECASE)
_MATH: Final = re.compile(r"calculate|equation|formula|derive|proof", re.IGNORECASE)
SHORT_WORDS: Final = 100
LONG_WORDS: Final = 500
# The model-routing seed's own reasoning pattern: "analyze" only, unlike _REASONING above, so
# that ``classify_complexity`` is the seed's function exactly (the equivalence test holds it).
_SEED_REASONING: Final = re.compile(r"explain|analyze|compare|why|how does|trade.?off", re.IGNORECASE)
_TEXT_PARTS: Final = frozenset({"text", "input_text"})


def classify_task(text: str) -> str:
    """One of :data:`LABELS` for a prompt's text."""
    if _CODE.search(text):
        return "code"
    if _MATH.search(text) or _REASONING.search(text):
        return "analysis"
    words = len(text.split())
    if words > LONG_WORDS:
        return "analysis"
    if words > SHORT_WORDS:
        return "chat"
    return "classification"


def classify_complexity(text: str) -> str:
    """The model-routing seed's ``classify_complexity``: one of :data:`COMPLEXITY`.

    Maths, or reasoning together with code, is premium; code, reasoning or over 500 words is
    standard; over 100 words is mid; anything else budget.
    """
    has_code = _CODE.search(text) is not None
    has_reasoning = _SEED_REASONING.search(text) is not None
    if _MATH.search(text) or (has_reasoning and has_code):
        return "premium"
    words = len(text.split())
    if has_code or has_reasoning or words > LONG_WORDS:
        return "standard"
    if words > SHORT_WORDS:
        return "mid"
    return "budget"


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message, as the seed's ``auto_route`` reads it ("" if none).

    A list content contributes its text parts, joined by newlines; images and other parts add
    nothing. Only the last user message counts, even if it is empty, as in the seed.
    """
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list | tuple):
                parts = (p for p in content if isinstance(p, Mapping) and p.get("type") in _TEXT_PARTS)
                return "\n".join(text for p in parts if isinstance(text := p.get("text"), str))
            return ""
    return ""


def classified_context(
    context: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], TaskTypeSource]:
    """The context to route on, and where its ``task_type`` came from.

    A string ``task_type`` other than ``"auto"`` is kept as given. Otherwise the user's text is
    classified into a shallow copy of the context; with no user text, ``task_type`` is left
    unset (rules on it then see it as missing, not as the string ``"auto"``).
    """
    given = context.get("task_type")
    if isinstance(given, str) and given != "auto":
        return context, "context"
    text = text_of(messages)
    if not text:
        if "task_type" in context:  # "auto" (or junk) with nothing to classify: unset
            return {k: v for k, v in context.items() if k != "task_type"}, "none"
        return context, "none"
    return {**context, "task_type": classify_task(text)}, "classifier"
