"""Translation validation: z3 proves that the compiled table means what the policy says.

The table keeps the source rules' order and actions (checked structurally), and each source
rule's match rules are consecutive; so the outcome of every flow is the same in both iff, for
every source rule, its condition (read from the checked tree, not from the compiler's normal
form) is equivalent to the union of its boxes. Most rules of a carrier policy test a few
fields once each (`proto == tcp and dst.port in mail_ports and dst.ip not in operator_mail`):
such a condition means one box, and when the rule's one match rule has, field by field, the
very value sets the tests name, the two are equal with no query (`_tests_box`; a negated
test's set is checked to be apart from the box's and to fill the field with it, by
intersection and union, never by the complement the compiler takes). The other rules are
encoded, and those whose two encodings are not the very same formula are proved in batches:
one query asks for a flow on which any rule of the batch differs.

The next version of a policy, loaded through the same memo (api.Memo), shares the checked
condition and the match boxes of each unchanged rule with the version before, object for
object. Such a rule's obligation is the very one proved for that version: a diff proves it once
(`shared_obligations`), and the next version's proof holds only if that one does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from dpipolicy.compiler.boxes import Box, point_in
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import Field
from dpipolicy.dsl.words import counted

from . import encode
from .solve import Answer, Limits, Scope
from .witness import flow_text

BATCH = 512


@dataclass(frozen=True)
class Validation:
    status: str                 # "proved" or "unknown"
    rules: int
    queries: int
    reason: str | None = None

    def text(self) -> str:
        """What was proved, in words that read alone and after `translation validation:`."""
        if self.status == "proved":
            return (f"compiled table proved equal to the policy "
                    f"({counted(self.rules, 'rule')}, {counted(self.queries, 'z3 query', 'z3 queries')})")
        return f"compiled table not proved equal to the policy: the solver gave no answer ({self.reason})"


class MistranslationError(Exception):
    """The compiler produced a table that differs from the policy: a dpipolicy bug, with proof."""


def validate(policy: typed.Policy, table: RuleTable, limits: Limits, shared: frozenset[int] = frozenset()) -> Validation:
    """Prove the table equal to the policy, but for the rules whose places among the policy's
    rules are in `shared` (`shared_obligations`): the caller has them proved with another table."""
    groups = _groups(policy, table)
    fields = {f.name: f for f in table.schema.flow_fields}
    declarations = encode.declarations(table.schema.flow_fields)
    pending = []
    for place, (rule, matches) in enumerate(groups):
        if place in shared:
            continue
        boxes = [m.box() for m in matches]
        if len(boxes) == 1 and _tests_box(rule.cond, boxes[0], fields):
            continue                # the same flows, by their value sets (9,748 of the 10k benchmark's 10,000 rules)
        condition, union = encode.condition(fields, rule.cond), encode.boxes(fields, boxes)
        if condition != union:      # the same formula is equal with no query
            pending.append((rule, boxes, f"(not (= {condition} {union}))"))
    queries = 0
    scope = Scope()
    for start in range(0, len(pending), BATCH):
        batch = pending[start:start + BATCH]
        text = declarations + "\n(assert (or " + " ".join(difference for *_, difference in batch) + "))"
        outcome = scope.solve(text, table.schema.flow_fields, limits)
        queries += 1
        if outcome.answer is Answer.UNKNOWN:
            return Validation("unknown", len(groups), queries, outcome.reason)
        if outcome.answer is not Answer.UNSAT:
            flow = outcome.model
            for rule, boxes, _ in batch:
                if typed.evaluate(rule.cond, flow) != any(point_in(b, flow) for b in boxes):
                    raise MistranslationError(
                        f"rule `{rule.origin.name}` ({rule.origin.location()}) compiles to match rules that "
                        f"differ from it on the flow {flow_text(table.schema, flow)}")
            raise MistranslationError("z3 found a difference that evaluation does not confirm")
    return Validation("proved", len(groups), queries)


def _tests_box(cond: typed.Cond, box: Box, fields: Mapping[str, Field]) -> bool:
    """Does `cond` test distinct fields, each once, with the value sets `box` has (a field it
    leaves whole, the box leaves out)? Then both hold the same flows. A test is `field in S`,
    a disjunction of such tests of one field, or `not field in S`; the last holds the values
    apart from S, so the box's set must meet S nowhere and fill the domain with it."""
    tested = set()
    for test in _conjuncts(cond):
        found = _test(test)
        if found is None or found[0] in tested:
            return False
        name, values, negated = found
        tested.add(name)
        mine, domain = box.get(name), fields[name].domain
        if negated:
            holds = mine is None if values.is_empty() else \
                mine is not None and mine.intersect(values).is_empty() and mine.union(values) == domain
        else:
            holds = mine is None if values == domain else mine == values
        if not holds:
            return False
    return tested.issuperset(box)


def _conjuncts(cond: typed.Cond):
    if isinstance(cond, typed.All):
        for operand in cond.operands:
            yield from _conjuncts(operand)
    else:
        yield cond


def _test(cond: typed.Cond) -> tuple[str, IntervalSet, bool] | None:
    """(field, set, negated) of a test of one field (see _tests_box), else None."""
    match cond:
        case typed.Atom(name, values):
            return name, values, False
        case typed.Not(typed.Atom(name, values)):
            return name, values, True
        case typed.Any_(operands) if operands and all(isinstance(o, typed.Atom) for o in operands) \
                and len({o.field for o in operands}) == 1:
            values = operands[0].values
            for other in operands[1:]:
                values = values.union(other.values)
            return operands[0].field, values, False
    return None


def shared_obligations(old: tuple[typed.Policy, RuleTable], new: tuple[typed.Policy, RuleTable]) -> frozenset[int]:
    """The places among `new`'s rules of those whose obligation is one of `old`'s: the very
    condition and match boxes of a rule of `old` (an unchanged rule loaded through api.Memo),
    over the same fields."""
    if old[1].schema.flow_fields != new[1].schema.flow_fields:
        return frozenset()
    theirs = {_obligation(rule, matches) for rule, matches in _groups(*old)}
    return frozenset(place for place, (rule, matches) in enumerate(_groups(*new))
                     if _obligation(rule, matches) in theirs)


def relying_on(validation: Validation, shared: frozenset[int], earlier: Validation) -> Validation:
    """A proof that left `shared` obligations to the `earlier` one holds only if that one does."""
    if not shared or earlier.status == "proved" or validation.status != "proved":
        return validation
    return Validation(earlier.status, validation.rules, validation.queries,
                      f"{counted(len(shared), 'rule')} shared with the old version, whose proof gave no answer "
                      f"({earlier.reason})")


def _obligation(rule: typed.Rule, matches: list[MatchRule]) -> tuple[int, ...]:
    """A rule's obligation by the objects it is made of: its condition and its match boxes
    (both tables are alive while their keys are compared, so an id names one object; only
    the places found travel to another process)."""
    return (id(rule.cond),) + tuple(id(m.matches) for m in matches)


def _groups(policy: typed.Policy, table: RuleTable) -> list[tuple[typed.Rule, list[MatchRule]]]:
    """Pair each source rule with its match rules, checking order and actions on the way."""
    by_rule: dict[str, list] = {}
    order: list[str] = []
    for m in table.rules:
        if m.origin.name not in by_rule:
            by_rule[m.origin.name] = []
            order.append(m.origin.name)
        elif order[-1] != m.origin.name:
            raise MistranslationError(f"match rules of `{m.origin.name}` are not consecutive")
        by_rule[m.origin.name].append(m)
    source = [r.origin.name for r in policy.rules]
    if [n for n in source if n in by_rule] != order or set(order) - set(source):
        raise MistranslationError("the table's rule order differs from the policy's")
    if table.default != policy.default:
        raise MistranslationError("the table's default action differs from the policy's")
    groups = []
    for rule in policy.rules:
        matches = by_rule.get(rule.origin.name, [])
        if any(m.action != rule.action for m in matches):
            raise MistranslationError(f"rule `{rule.origin.name}` has a different action in the table")
        groups.append((rule, matches))
    return groups
