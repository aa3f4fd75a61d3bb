"""routeq's routing rules: load a JSON policy once, then decide per job in microseconds.

Load with ``load_rules(path)`` (default: ``$ROUTEQ_RULES``, else the shipped rules; a
:class:`RulesError` lists every problem), then call ``rules.decide(context, messages=...,
computed=...)`` for each job: the :class:`Decision` carries the model chain, ``max_tokens``,
provider preferences and a trace.
"""

from worker.rules.engine import RuleSet
from worker.rules.loader import compile_rules, load_rules
from worker.rules.model import Decision, Rule, freeze, thaw
from worker.rules.problems import Problem, RulesError
from worker.rules.scope import BUILTIN_NAMES
from worker.rules.trace import TraceEntry

__all__ = [
    "BUILTIN_NAMES",
    "Decision",
    "Problem",
    "Rule",
    "RuleSet",
    "RulesError",
    "TraceEntry",
    "compile_rules",
    "freeze",
    "load_rules",
    "thaw",
]
