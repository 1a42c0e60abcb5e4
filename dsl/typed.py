"""The checked policy: conditions over field value sets, resolved actions, invariants and tests.

A condition is a tree of `Atom` (field value in a set), `Not`, `All`, `Any` and `Const`. This is
the policy's meaning: the compiler lowers it, the verifier proves the lowering equal to it, and
`evaluate` gives the brute-force answer the property tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

from .intervals import IntervalSet
from .schema import Schema
from .source import Span


@dataclass(frozen=True, slots=True)
class Atom:
    field: str
    values: IntervalSet


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Cond"


@dataclass(frozen=True, slots=True)
class All:
    operands: tuple["Cond", ...]


@dataclass(frozen=True, slots=True)
class Any_:
    operands: tuple["Cond", ...]


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Cond = Union[Atom, Not, All, Any_, Const]
TRUE, FALSE = Const(True), Const(False)


@dataclass(frozen=True, slots=True)
class Action:
    kind: str
    rate: int | None = None
    target: str | None = None
    log: bool = False

    def text(self) -> str:
        from .values import RATE_UNITS, quantity_text
        words = self.kind
        if self.kind == "throttle":
            words += " " + quantity_text(self.rate or 0, RATE_UNITS)
        elif self.kind == "redirect":
            words += f' "{self.target}"'
        return words + (", log" if self.log else "")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule came from: its name and the span of its declaration."""
    name: str
    span: Span | None
    location_text: str | None = None   # for rules read back from a JSON table

    def location(self) -> str:
        return self.span.location() if self.span is not None else (self.location_text or "")


@dataclass(frozen=True, slots=True)
class Rule:
    origin: Origin
    cond: Cond
    action: Action
    because: str | None


@dataclass(frozen=True, slots=True)
class Same:
    """`require same PARTS across FIELDS`: outcome variables, and the flow fields that may differ
    between the two flows (each add-on its own field; under a profile the verifier adds the
    engine's label beside `app`)."""
    parts: tuple[str, ...]
    across: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    description: str | None
    when: Cond
    require: Cond | None      # None for `exists` and `same`
    exists: Cond | None
    span: Span
    same: Same | None = None


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    given: Cond
    expect: Action
    span: Span


@dataclass(frozen=True)
class Policy:
    name: str | None
    version: str | None
    schema: Schema
    rules: tuple[Rule, ...]
    default: Action
    default_span: Span | None
    invariants: tuple[Invariant, ...]
    tests: tuple[Test, ...]
    named_sets: tuple[tuple[str, str, IntervalSet], ...] = ()   # (set, field, values), for reports


def evaluate(cond: Cond, flow: Mapping[str, int]) -> bool:
    """The truth of a condition on one concrete flow (outcome fields included when present)."""
    match cond:
        case Atom(field, values):
            return flow[field] in values
        case Not(operand):
            return not evaluate(operand, flow)
        case All(operands):
            return all(evaluate(c, flow) for c in operands)
        case Any_(operands):
            return any(evaluate(c, flow) for c in operands)
        case Const(value):
            return value
    raise TypeError(cond)


def outcome_values(schema: Schema, action: Action, rule_name: str) -> dict[str, int]:
    """The outcome variables of a flow decided by `rule_name` with `action`."""
    return {
        "action": schema.member_index("action")[action.kind],
        "rate": action.rate or 0,
        "logged": int(action.log),
        "rule": schema.member_index("rule")[rule_name],
        "target": schema.member_index("target")[action.target or ""],
    }


def decide(policy: Policy, flow: Mapping[str, int]) -> tuple[str, Action]:
    """First-match semantics straight from the checked rules: (deciding rule name, action)."""
    for rule in policy.rules:
        if evaluate(rule.cond, flow):
            return rule.origin.name, rule.action
    return "default", policy.default


def expectation(schema: Schema, action: Action) -> Cond:
    """`expect ACTION` as a condition on outcome variables; logging is checked only if written."""
    fields = {f.name: f for f in schema.outcome_fields}
    parts: list[Cond] = [Atom("action", IntervalSet.point(fields["action"].index_of(action.kind)))]
    if action.kind == "throttle":
        parts.append(Atom("rate", IntervalSet.point(action.rate or 0)))
    if action.kind == "redirect":
        parts.append(Atom("target", IntervalSet.point(fields["target"].index_of(action.target or ""))))
    if action.log:
        parts.append(Atom("logged", IntervalSet.point(1)))
    return All(tuple(parts))


def mentions(cond: Cond, names: frozenset[str]) -> bool:
    match cond:
        case Atom(field):
            return field in names
        case Not(operand):
            return mentions(operand, names)
        case All(operands) | Any_(operands):
            return any(mentions(c, names) for c in operands)
    return False


def partial(cond: Cond, known: Mapping[str, int]) -> Cond:
    """Substitute known field values (the outcome of one rule, say) and simplify."""
    match cond:
        case Atom(field, values) if field in known:
            return TRUE if known[field] in values else FALSE
        case Atom():
            return cond
        case Not(operand):
            inner = partial(operand, known)
            return Const(not inner.value) if isinstance(inner, Const) else Not(inner)
        case All(operands):
            parts = []
            for c in operands:
                p = partial(c, known)
                if p == FALSE:
                    return FALSE
                if p != TRUE:
                    parts.append(p)
            return All(tuple(parts)) if parts else TRUE
        case Any_(operands):
            parts = []
            for c in operands:
                p = partial(c, known)
                if p == TRUE:
                    return TRUE
                if p != FALSE:
                    parts.append(p)
            return Any_(tuple(parts)) if parts else FALSE
        case Const():
            return cond
    raise TypeError(cond)
