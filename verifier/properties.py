"""Invariants and tests on a compiled table, one rule at a time.

A flow violates `when C require R` iff some rule i decides it and the flow is in
box_i ∩ bad_i, where bad_i is C ∧ ¬R with rule i's outcome substituted. So for each rule whose
box meets its bad set, the question is whether that part is covered by earlier rules:
  - no earlier rule overlaps it (interval arithmetic): every point of it is a violation;
  - a realistic point of it lies in no earlier rule: a violation, no solver needed;
  - one earlier rule contains it: covered;
  - otherwise z3 decides `region ∧ ¬(earlier boxes)`: unsat means covered.
The invariant holds only if every such part is covered; a z3 `unknown` is never a pass.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from dpipolicy.compiler.backends.contract import unseen_flows
from dpipolicy.compiler.boxes import Box, contains, intersect, subtract_all
from dpipolicy.compiler.normalize import MAX_BOXES, ExpansionTooLarge, to_boxes
from dpipolicy.compiler.table import RuleTable
from dpipolicy.dsl import typed
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.source import Span
from dpipolicy.dsl.typed import Action, Origin

from . import encode
from .index import BoxIndex
from .results import FAILED, HOLDS, PASSED, UNKNOWN, VIOLATED, Decision, Result
from .solve import Answer, Limits, Scope
from .witness import realistic_point

REGION_BOX_CAP = 64        # boxes kept per violating part, and in a result's region


class InternalError(Exception):
    """A disagreement inside dpipolicy (a bug): reported with the flow that shows it."""


@dataclass
class TableModel:
    """A rule table ready for queries: its boxes (the default as a last, full box) and an index."""
    table: RuleTable

    def __post_init__(self) -> None:
        schema = self.table.schema
        self.fields = {f.name: f for f in schema.flow_fields}
        self.boxes: list[Box] = [r.box() for r in self.table.rules] + [{}]
        self.entries: list[tuple[Action, str, Origin | None, str | None]] = (
            [(r.action, r.origin.name, r.origin, r.because) for r in self.table.rules]
            + [(self.table.default, "default", None, None)])
        self.index = BoxIndex(schema.flow_fields, self.boxes)
        self.declarations = encode.declarations(schema.flow_fields)
        self.unseen = list(unseen_flows(schema)) if self.table.packet_filter else []

    def seen(self, region: Box | None) -> list[Box]:
        """The flows of `region` a claim about this table speaks of, as boxes: all of them, but on
        a packet filter's table only those packets carry (RuleTable.packet_filter)."""
        if region is None or not self.unseen:
            return [] if region is None else [region]
        parts, complete = subtract_all(region, self.unseen, self.fields, MAX_BOXES)
        if not complete:
            raise InternalError("the flows no packet carries did not come off a region in few boxes")
        return parts

    @functools.cached_property
    def outcomes(self) -> list[dict[str, int]]:
        """Each rule's outcome variables, for the invariants that read them (a diff does not)."""
        return [typed.outcome_values(self.table.schema, action, rule) for action, rule, *_ in self.entries]

    def decide(self, flow: dict[str, int]) -> int:
        return self.index.first_holding(flow, len(self.boxes))

    def decision(self, flow: dict[str, int]) -> Decision:
        i = self.decide(flow)
        return Decision(flow, *self.entries[i])

    def rule_words(self, i: int) -> str:
        """Match rule i as a reader knows it: its source rule's name and location, or the default."""
        _, name, origin, _ = self.entries[i]
        return "the default" if origin is None else f"rule {name} ({origin.location()})"


@dataclass
class Search:
    """What a search over the rules found: violating parts, unknown answers, solver calls."""
    found: list[tuple[int, list[Box], dict[str, int]]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    complete: bool = True
    queries: int = 0


def search(model: TableModel, cond: typed.Cond, limits: Limits, want_all: bool) -> Search:
    """Find flows decided by some rule i whose outcome makes `cond` true, in table order."""
    out = Search()
    schema = model.table.schema
    scope = Scope()
    recent_covers: list[int] = []      # earlier rules that covered a whole region: often again
    for i, region in ((i, part) for i, target in candidates(model, cond)
                      for part in model.seen(intersect(model.boxes[i], target))):
        if any(j < i and contains(model.boxes[j], region) for j in recent_covers):
            continue
        point = realistic_point(schema, region)
        shadow = model.index.first_holding(point, i)
        if shadow is not None and contains(model.boxes[shadow], region):
            recent_covers = [shadow] + recent_covers[:7]
            continue                                   # one earlier rule covers it all
        earlier = model.index.overlapping(region, i)
        if shadow is not None:
            cover = next((j for j in earlier if contains(model.boxes[j], region)), None)
            if cover is not None:
                recent_covers = [cover] + recent_covers[:7]
                continue
            answer = uncovered_point(model, region, earlier, limits, scope)
            out.queries += 1
            if answer.answer is Answer.UNSAT:
                continue
            if answer.answer is Answer.UNKNOWN:
                out.unknown.append(f"{answer.reason} on the flows {model.rule_words(i)} decides")
                continue
            point = answer.model
        parts, complete = subtract_all(region, [model.boxes[j] for j in earlier], model.fields, REGION_BOX_CAP)
        out.complete &= complete
        if shadow is not None and parts:
            point = realistic_point(schema, parts[0])
        if model.index.first_holding(point, i) is not None:
            raise InternalError(f"a witness for {model.rule_words(i)} is decided by an earlier rule")
        out.found.append((i, parts, point))
        if not want_all:
            return out
        if sum(len(p) for _, p, _ in out.found) >= REGION_BOX_CAP:
            out.complete = False      # enough to show; the list says it was capped
            return out
    return out


def uncovered_point(model: TableModel, region: Box, earlier: list[int], limits: Limits, scope: Scope):
    """Ask z3 for a flow of `region` that none of the boxes `earlier` (rule indices) holds."""
    text = "\n".join((
        model.declarations,
        f"(assert {encode.box(model.fields, region)})",
        f"(assert (not {encode.boxes(model.fields, (model.boxes[j] for j in earlier))}))",
    ))
    return scope.solve(text, model.table.schema.flow_fields, limits)


def candidates(model: TableModel, cond: typed.Cond) -> list[tuple[int, Box]]:
    """Every (rule i, box of cond under rule i's outcome) whose boxes meet, in rule order.

    Rules that share an outcome share the work: the condition is specialised once per outcome,
    and the index finds the rules each resulting box meets.
    """
    by_rule = typed.mentions(cond, frozenset({"rule"}))
    groups: dict[tuple, list[int]] = {}
    for i, outcome in enumerate(model.outcomes):
        key = tuple(v for k, v in outcome.items() if k != "rule") + ((outcome["rule"],) if by_rule else ())
        groups.setdefault(key, []).append(i)
    found: list[tuple[int, int, Box]] = []
    for members in groups.values():
        boxes = to_boxes(typed.partial(cond, model.outcomes[members[0]]), model.fields)
        member_set = set(members) if len(members) > 1 else None
        for k, target in enumerate(boxes):
            meeting = model.index.overlapping(target) if member_set is not None else \
                [i for i in members if intersect(model.boxes[i], target) is not None]
            found.extend((i, k, target) for i in meeting if member_set is None or i in member_set)
    found.sort(key=lambda item: (item[0], item[1]))
    return [(i, target) for i, _, target in found]


def _region(model: TableModel, found) -> tuple[tuple[Box, str], ...]:
    out: list[tuple[Box, str]] = []
    for i, parts, _ in found:
        out.extend((b, model.entries[i][1]) for b in parts)
    return tuple(out[:REGION_BOX_CAP])


def check_forall(model: TableModel, kind: str, name: str, description: str | None, location: str,
                 when: typed.Cond, require: typed.Cond, limits: Limits) -> Result:
    """`when C require R` (and tests, as `given G require expectation`)."""
    bad = typed.All((when, typed.Not(require)))
    s = search(model, bad, limits, want_all=True)
    ok, fail = (HOLDS, VIOLATED) if kind == "invariant" else (PASSED, FAILED)
    if s.found:
        i, _, point = s.found[0]
        decision = model.decision(point)
        if model.decide(point) != i:
            raise InternalError(f"a counterexample is decided by {model.rule_words(model.decide(point))}, "
                                f"expected {model.rule_words(i)}")
        total = sum(len(p) for _, p, _ in s.found)
        return Result(kind, name, description, fail, location, counterexample=decision,
                      region=_region(model, s.found),
                      region_complete=s.complete and not s.unknown and total <= REGION_BOX_CAP,
                      queries=s.queries)
    if s.unknown:
        return Result(kind, name, description, UNKNOWN, location, reason="; ".join(s.unknown[:3]), queries=s.queries)
    return Result(kind, name, description, ok, location, queries=s.queries)


def check_exists(model: TableModel, name: str, description: str | None, location: str,
                 cond: typed.Cond, limits: Limits) -> Result:
    s = search(model, cond, limits, want_all=False)
    if s.found:
        return Result("invariant", name, description, HOLDS, location, witness=model.decision(s.found[0][2]),
                      queries=s.queries)
    if s.unknown:
        return Result("invariant", name, description, UNKNOWN, location, reason="; ".join(s.unknown[:3]),
                      queries=s.queries)
    return Result("invariant", name, description, VIOLATED, location, reason="no flow satisfies the condition",
                  queries=s.queries)


def property_count(spec: typed.Policy) -> int:
    """How many results `check_spec` gives: one per invariant, then one per test."""
    return len(spec.invariants) + len(spec.tests)


def check_property(model: TableModel, spec: typed.Policy, k: int, limits: Limits, within: typed.Cond | None = None,
                   meeting: typed.Cond | None = None) -> Result:
    """The k-th invariant or test of `spec` (invariants first, in order, then tests). Each one is
    checked on its own, so any subset can run in another process with the same result.

    With `within`, on the flows of that condition only: its `when` (or `given`) conjoined with
    it, so for equal treatment both flows of a pair are in it. With `meeting`, only the
    violations that meet that condition are looked for: the flows in it, and for equal
    treatment the pairs with a flow in it. Audit waivers ask both (verifier/waivers.py); an
    `exists` invariant, violated by the lack of a flow, is checked as it is."""
    def narrowed(cond: typed.Cond, *by: typed.Cond | None) -> typed.Cond:
        parts = tuple(c for c in by if c is not None)
        return typed.All((cond,) + parts) if parts else cond
    if k < len(spec.invariants):
        inv = spec.invariants[k]
        with too_large_to_check("invariant", inv.name, inv.span):
            if inv.same is not None:
                from .equal import check_same      # equal.py builds on this module
                return check_same(model, replace(inv, when=narrowed(inv.when, within)), limits, meeting)
            if inv.exists is not None:
                return check_exists(model, inv.name, inv.description, inv.span.location(), inv.exists, limits)
            return check_forall(model, "invariant", inv.name, inv.description, inv.span.location(),
                                narrowed(inv.when, within, meeting), inv.require, limits)
    test = spec.tests[k - len(spec.invariants)]
    expect = typed.expectation(model.table.schema, test.expect)
    with too_large_to_check("test", test.name, test.span):
        return check_forall(model, "test", test.name, None, test.span.location(), narrowed(test.given, within, meeting),
                            expect, limits)


@contextmanager
def too_large_to_check(kind: str, name: str, span: Span):
    """A condition whose boxes would pass MAX_BOXES (as a rule's would, E201) is bad input."""
    try:
        yield
    except ExpansionTooLarge as exc:
        raise DiagnosticError([Diagnostic(
            "E202", f"{kind} `{name}` expands into more than {MAX_BOXES} boxes", span,
            "condition too large to check", notes=(f"reached {exc.count} before stopping",),
            help=f"split the {kind}, or replace `or` of many `and` groups with named sets")]) from None


def check_spec(model: TableModel, spec: typed.Policy, limits: Limits) -> list[Result]:
    """Every invariant and test of `spec` against the table, in order (verifier/parallel.py
    spreads them over processes)."""
    return [check_property(model, spec, k, limits) for k in range(property_count(spec))]
