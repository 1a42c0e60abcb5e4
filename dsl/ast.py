"""Syntax tree of a source file: frozen nodes, each with the span it was read from."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .source import Span


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written: `youtube`, `dst.ip`, `category.vpn`."""
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal value; `kind` is the token kind (number, ipv4, ipv6, volume, rate, string, bool)."""
    kind: str
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Range:
    low: "Operand"
    high: "Operand"
    span: Span


@dataclass(frozen=True, slots=True)
class SetLiteral:
    elements: tuple["Element", ...]
    span: Span


Operand = Union[Ident, Literal]
Element = Union[Ident, Literal, Range]
Container = Union[Ident, Literal, Range, SetLiteral]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Operand
    right: Operand
    span: Span


@dataclass(frozen=True, slots=True)
class Member:
    item: Operand
    container: Container
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Expr"
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple["Expr", ...]
    span: Span


Expr = Union[Compare, Member, Not, And, Or, Ident, Literal]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action as written: `throttle 128kbps, log`."""
    kind: str                      # allow | block | reset | throttle | redirect
    rate: Literal | None
    target: str | None
    log: bool
    span: Span
    argument_span: Span | None = None
    scope: "Ident | None" = None                          # `per subscriber`: the word after `per`
    parts: tuple[tuple["Ident", "Ident"], ...] = ()       # (`charge`, `zero_rated`), in order written
    purpose: "Ident | None" = None                        # `purpose congestion`: the word after it


@dataclass(frozen=True, slots=True)
class PolicyDecl:
    name: Ident
    version: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class EnumDecl:
    name: Ident
    members: tuple[Ident, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class SetDecl:
    name: Ident
    value: SetLiteral
    span: Span


@dataclass(frozen=True, slots=True)
class DefaultDecl:
    action: ActionSpec
    span: Span


@dataclass(frozen=True, slots=True)
class RuleDecl:
    name: Ident
    when: Expr
    action: ActionSpec
    because: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class SameClause:
    """`same action, rate across app`: the outcome parts compared and the fields that may differ."""
    parts: tuple[Ident, ...]
    across: tuple[Ident, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class InvariantDecl:
    """`when`/`require` form (`exists` and `same` None), `exists` form (`require` and `same`
    None) or `when`/`require same` form (`require` and `exists` None)."""
    name: Ident
    description: str | None
    when: Expr | None
    require: Expr | None
    exists: Expr | None
    span: Span
    same: SameClause | None = None


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: Ident
    given: Expr
    expect: ActionSpec
    span: Span


@dataclass(frozen=True, slots=True)
class ImportDecl:
    path: str
    span: Span


Item = Union[PolicyDecl, EnumDecl, SetDecl, DefaultDecl, RuleDecl, InvariantDecl, TestDecl, ImportDecl]


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file."""
    items: tuple[Item, ...]
