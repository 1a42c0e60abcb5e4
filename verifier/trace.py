"""Traceability and coverage for an audit (docs/audit.md, "Traceability and coverage").

Both ways between rules and clauses, by exact box algebra on the compiled match rules:

- a rule *interferes* when its outcome differs from a plain allow: any action but `allow`, or a
  charge or priority other than the default's (logging alone forwards the flow unchanged and
  does not count);
- a clause *constrains* a rule when the condition region of one of its invariants (`when`) or
  tests (`given`) meets the flows the rule's condition matches; a `when` that reads the outcome
  (`when app in category.p2p and action == throttle`) is taken with the rule's own outcome. An
  `exists` invariant asks for one flow and constrains none. A clause with an invariant over every flow (the open-internet
  pack's purpose clause) constrains, and so justifies or condemns through `purpose`, every rule;
- an interfering rule no clause constrains is a *finding*: listed in every report, and an exit
  code of 1 under `audit --strict`.

Coverage is over every invariant and test of the check, cited or not: the rules no condition
region meets, and the flows no condition region meets (the flow space minus their union, at
most REGION_BOX_CAP boxes; the report says when the list is capped). A condition that reads
the outcome counts a flow as constrained when some table entry whose condition matches it
(not only the one that decides it) has an outcome the condition accepts: the list may miss
such flows, never shows a constrained one."""
from __future__ import annotations

from dataclasses import dataclass

from dpipolicy.compiler.boxes import Box, intersect, subtract_all
from dpipolicy.compiler.normalize import ExpansionTooLarge, to_boxes
from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.terms import Terms
from dpipolicy.dsl.typed import Action, Policy

from .properties import REGION_BOX_CAP


@dataclass(frozen=True)
class RuleTrace:
    rule: str                      # the source rule's name
    location: str
    action: str                    # its outcome, as written
    interferes: bool
    clauses: tuple[str, ...]       # ids of the clauses that constrain it, in the terms' order


@dataclass(frozen=True)
class Trace:
    rules: tuple[RuleTrace, ...]           # every source rule, in table order
    unconstrained_rules: tuple[str, ...]   # rules no invariant or test of the check constrains
    uncovered: tuple[Box, ...]             # flows no invariant or test condition meets
    uncovered_complete: bool               # False when the list was capped at REGION_BOX_CAP
    too_large: tuple[str, ...] = ()        # conditions too large to flatten: taken to meet nothing

    @property
    def findings(self) -> tuple[RuleTrace, ...]:
        """Interfering rules no clause constrains."""
        return tuple(r for r in self.rules if r.interferes and not r.clauses)


def interferes(action: Action, default: Action) -> bool:
    return action.kind != "allow" or action.charge != default.charge or action.priority != default.priority


def trace(terms: Terms, table: RuleTable, spec: Policy) -> Trace:
    """Which clauses constrain each rule, and what no invariant or test constrains."""
    schema = table.schema
    fields = {f.name: f for f in schema.flow_fields}
    outcome_names = frozenset(f.name for f in schema.outcome_fields)
    entries = [(m.box(), m.action, m.origin.name) for m in table.rules] + [({}, table.default, "default")]
    conds = {("invariant", i.name): i.when for i in spec.invariants if i.exists is None}
    conds.update({("test", t.name): t.given for t in spec.tests})
    too_large: list[str] = []

    def region(name: str, cond) -> list[tuple[int | None, Box]]:
        """The flows the invariant or test constrains, as boxes. A condition that reads the
        outcome is met with each table entry's own outcome, and its boxes kept with that
        entry's index (None: whatever the entry)."""
        try:
            if not typed.mentions(cond, outcome_names):
                return [(None, b) for b in to_boxes(cond, fields)]
            by_outcome: dict[tuple, list[Box]] = {}      # entries sharing an outcome share the work
            by_rule = typed.mentions(cond, frozenset({"rule"}))
            out = []
            for i, (box, action, rule) in enumerate(entries):
                outcome = typed.outcome_values(schema, action, rule)
                key = tuple(sorted((k, v) for k, v in outcome.items() if by_rule or k != "rule"))
                if key not in by_outcome:
                    by_outcome[key] = to_boxes(typed.partial(cond, outcome), fields)
                out += [(i, b) for b in _meet(box, by_outcome[key])]
            return out
        except ExpansionTooLarge:
            too_large.append(name)
            return []

    regions = {key: region(key[1], cond) for key, cond in conds.items()}
    by_rule: dict[str, list[int]] = {}
    for i, m in enumerate(table.rules):
        by_rule.setdefault(m.origin.name, []).append(i)

    def constrains(key: tuple[str, str], rows: list[int]) -> bool:
        return any(intersect(entries[i][0], b) is not None
                   for i in rows for j, b in regions.get(key, []) if j is None or j == i)

    rules = []
    unconstrained = []
    for name, rows in by_rule.items():
        first = table.rules[rows[0]]
        clauses = tuple(c.id for c in terms.clauses if any(constrains(key, rows) for key in _cited(c)))
        rules.append(RuleTrace(name, first.origin.location(), first.action.text(),
                               interferes(first.action, table.default), clauses))
        if not any(constrains(key, rows) for key in regions):
            unconstrained.append(name)
    uncovered, complete = subtract_all({}, [b for boxes in regions.values() for _, b in boxes], fields, REGION_BOX_CAP)
    return Trace(tuple(rules), tuple(unconstrained), tuple(uncovered), complete, tuple(too_large))


def _meet(box: Box, region: list[Box]) -> list[Box]:
    return [b for b in (intersect(box, r) for r in region) if b is not None]


def _cited(clause) -> list[tuple[str, str]]:
    return [("invariant", i.name) for i in clause.invariants] + [("test", t.name) for t in clause.tests]
