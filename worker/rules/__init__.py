"""routeq's routing rules: load a JSON policy once, then decide per job in microseconds.

Load with ``load_rules(default_rules_path())`` (a :class:`RulesError` lists every problem),
then call ``rules.decide(context, messages=..., computed=...)`` for each job: the
:class:`Decision` carries the model chain, ``max_tokens``, provider preferences and a trace.
"""

from worker.rules.engine import RuleSet
from worker.rules.loader import compile_rules, default_rules_path, load_rules
from worker.rules.model import Decision, Problem, Rule, RulesError, TraceEntry, freeze, thaw
from worker.rules.scope import BUILTIN_NAMES

__all__ = [
    "BUILTIN_NAMES",
    "Decision",
    "Problem",
    "Rule",
    "RuleSet",
    "RulesError",
    "TraceEntry",
    "compile_rules",
    "default_rules_path",
    "freeze",
    "load_rules",
    "thaw",
]
