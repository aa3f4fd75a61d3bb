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
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from worker.tokens import text_of

LABELS: Final = ("code", "analysis", "chat", "classification")

TaskTypeSource = Literal["context", "classifier", "none"]

_CODE: Final = re.compile(r"```|def |function |class |import ")
_REASONING: Final = re.compile(r"explain|analy[sz]e|compare|why|how does|trade.?off", re.IGNORECASE)
_MATH: Final = re.compile(r"calculate|equation|formula|derive|proof", re.IGNORECASE)
SHORT_WORDS: Final = 100
LONG_WORDS: Final = 500


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
