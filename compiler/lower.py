"""Lowering: each source rule becomes consecutive match rules, one per box of its condition."""
from __future__ import annotations

from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.typed import Policy

from .normalize import MAX_BOXES, ExpansionTooLarge, to_boxes
from .table import MatchRule, RuleTable


def lower(policy: Policy) -> RuleTable:
    """The ordered match-rule table of a checked policy; a rule that expands too far is an error."""
    fields = {f.name: f for f in policy.schema.flow_fields}
    order = {f.name: i for i, f in enumerate(policy.schema.flow_fields)}
    out: list[MatchRule] = []
    errors = []
    for rule in policy.rules:
        try:
            boxes = to_boxes(rule.cond, fields)
        except ExpansionTooLarge as exc:
            errors.append(Diagnostic(
                "E201", f"rule `{rule.origin.name}` expands into more than {MAX_BOXES} match rules", rule.origin.span,
                "condition too large to flatten", notes=(f"reached {exc.count} before stopping",),
                help="split the rule, or replace `or` of many `and` groups with named sets"))
            continue
        for box in boxes:
            matches = tuple(sorted(box.items(), key=lambda item: order[item[0]]))
            out.append(MatchRule(len(out), matches, rule.action, rule.origin, rule.because))
    if errors:
        raise DiagnosticError(errors)
    return RuleTable(policy.name, policy.version, policy.schema, tuple(out), policy.default, policy.named_sets)
