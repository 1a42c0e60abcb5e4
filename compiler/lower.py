"""Lowering: each source rule becomes consecutive match rules, one per box of its condition."""
from __future__ import annotations

from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.typed import Cond, Policy

from .normalize import MAX_BOXES, ExpansionTooLarge, to_boxes
from .table import MatchRule, RuleTable


class BoxesMemo:
    """The match boxes of the conditions lowered with it, by condition object, for flow fields
    alike: the next version of a policy, whose unchanged rules keep their checked conditions
    (checker.RuleMemo), lowers only the others."""

    def __init__(self) -> None:
        self.fields: tuple | None = None
        self.boxes: dict[int, tuple[Cond, list[tuple[tuple[str, IntervalSet], ...]]]] = {}

    def usable(self, fields: tuple) -> dict:
        if fields != self.fields:
            self.fields, self.boxes = fields, {}
        return self.boxes


def lower(policy: Policy, memo: BoxesMemo | None = None) -> RuleTable:
    """The ordered match-rule table of a checked policy; a rule that expands too far is an error."""
    fields = {f.name: f for f in policy.schema.flow_fields}
    order = {name: i for i, name in enumerate(fields)}
    known = memo.usable(policy.schema.flow_fields) if memo is not None else {}
    out: list[MatchRule] = []
    errors = []
    for rule in policy.rules:
        seen = known.get(id(rule.cond))
        if seen is not None and seen[0] is rule.cond:
            matches = seen[1]
        else:
            try:
                boxes = to_boxes(rule.cond, fields)
            except ExpansionTooLarge as exc:
                errors.append(Diagnostic(
                    "E201", f"rule `{rule.origin.name}` expands into more than {MAX_BOXES} match rules",
                    rule.origin.span, "condition too large to flatten", notes=(f"reached {exc.count} before stopping",),
                    help="split the rule, or replace `or` of many `and` groups with named sets"))
                continue
            matches = [tuple(sorted(box.items(), key=lambda item: order[item[0]])) for box in boxes]
            if memo is not None:
                known[id(rule.cond)] = rule.cond, matches
        out.extend([MatchRule(index, box, rule.action, rule.origin, rule.because)
                    for index, box in enumerate(matches, len(out))])
    if errors:
        raise DiagnosticError(errors)
    return RuleTable(policy.name, policy.version, policy.schema, tuple(out), policy.default, policy.named_sets,
                     policy.default_span)
