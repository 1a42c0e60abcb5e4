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
    """An outcome: the action and its parts (language.md section 9). In a rule or the default
    every part is resolved: `charge`/`priority` are None only when the policy has no such
    enum, `scope` is "subscriber" or None (per flow, and every action but a throttle), and
    `purpose` None for none. In an `expect`, a part left None is not compared."""
    kind: str
    rate: int | None = None
    target: str | None = None
    log: bool = False
    charge: str | None = None
    priority: str | None = None
    scope: str | None = None
    purpose: str | None = None

    def text(self) -> str:
        """As written in a rule, every part spelt out (a throttle's default scope excepted)."""
        from .values import RATE_UNITS, quantity_text
        words = self.kind
        if self.kind == "throttle":
            words += " " + quantity_text(self.rate or 0, RATE_UNITS)
        elif self.kind == "redirect":
            words += f' "{self.target}"'
        if self.scope == "subscriber":
            words += " per subscriber"
        words += "".join(f", {part} {value}" for part, value in self.parts())
        words += ", log" if self.log else ""
        return words + (f" purpose {self.purpose}" if self.purpose else "")

    def parts(self) -> tuple[tuple[str, str], ...]:
        """(`charge`, key) and (`priority`, level), those that are set."""
        return tuple((name, value) for name, value in (("charge", self.charge), ("priority", self.priority))
                     if value is not None)

    def inheriting(self, default: "Action") -> "Action":
        """This rule's action with the parts it does not write taken from the default's."""
        if (self.charge is not None or default.charge is None) and \
                (self.priority is not None or default.priority is None):
            return self         # nothing to take (a policy without parts): no copy per rule
        from dataclasses import replace
        return replace(self, charge=self.charge if self.charge is not None else default.charge,
                       priority=self.priority if self.priority is not None else default.priority)


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
    values = {
        "action": schema.member_index("action")[action.kind],
        "rate": action.rate or 0,
        "logged": int(action.log),
        "rule": schema.member_index("rule")[rule_name],
        "target": schema.member_index("target")[action.target or ""],
        "scope": schema.member_index("scope")[action.scope or "flow"],
        "purpose": schema.member_index("purpose")[action.purpose or "none"],
    }
    for part, value in action.parts():
        if schema.field(part) is not None:
            values[part] = schema.member_index(part)[value]
    return values


def decide(policy: Policy, flow: Mapping[str, int]) -> tuple[str, Action]:
    """First-match semantics straight from the checked rules: (deciding rule name, action)."""
    for rule in policy.rules:
        if evaluate(rule.cond, flow):
            return rule.origin.name, rule.action
    return "default", policy.default


def expectation(schema: Schema, action: Action) -> Cond:
    """`expect ACTION` as a condition on outcome variables; logging, the scope, the purpose and
    the parts are checked only if written."""
    fields = {f.name: f for f in schema.outcome_fields}
    parts: list[Cond] = [Atom("action", IntervalSet.point(fields["action"].index_of(action.kind)))]
    if action.kind == "throttle":
        parts.append(Atom("rate", IntervalSet.point(action.rate or 0)))
    if action.kind == "redirect":
        parts.append(Atom("target", IntervalSet.point(fields["target"].index_of(action.target or ""))))
    if action.log:
        parts.append(Atom("logged", IntervalSet.point(1)))
    written = action.parts() + tuple((name, value) for name, value in (("scope", action.scope),
                                                                      ("purpose", action.purpose)) if value)
    for name, value in written:
        parts.append(Atom(name, IntervalSet.point(fields[name].index_of(value))))
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
