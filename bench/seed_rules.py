"""The seed's rules engine, the baseline of the rules benchmark (shared with the equivalence tests)."""

from tests.support.seed import RULES, RoutingContext, RoutingRule, evaluate_rules

__all__ = ["RULES", "RoutingContext", "RoutingRule", "evaluate_rules"]
