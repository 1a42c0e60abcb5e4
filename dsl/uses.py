"""The optional fields a check uses (schema.OPTIONAL_FIELDS): those its conditions and `same`
clauses name, with the names and patterns its strings declare for the pattern fields.

A string belongs to the interface field it is compared with or tested against, directly or
through the named sets it is used with; every other string, and every string of a set that
nothing uses, is a server name of `tls.sni` (as before there were interfaces). Only
well-formed literals are declared: a bad one is an error where the checker types it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from . import ast
from .parser import string_body
from .patterns import syntax
from .schema import INTERFACE_FIELDS, OPTIONAL_FIELDS, PATTERN_FIELDS, SNI
from .source import Span
from .values import ValueError_


def may_name(expr) -> bool:
    """Whether a condition can use an optional field: most hold no string and name none, and
    are not walked (a 10k-rule policy is checked in a fraction of a second)."""
    text = expr.span.text
    return '"' in text or any(name in text for name in OPTIONAL_FIELDS)


@dataclass(frozen=True)
class Uses:
    fields: dict[str, tuple[str, ...]]      # each optional field used, its patterns in value order
    places: dict[tuple[str, str], Span]     # (field, pattern) -> the first literal that declares it


def used_fields(sets: Mapping[str, ast.SetDecl], conditions: Iterable, across: Iterable[ast.Ident]) -> Uses:
    """The optional fields used, each with its declared patterns (as schema.with_optional takes
    them); `conditions` are those `may_name` lets through."""
    walk = _Walk(sets)
    for expr in conditions:
        walk.visit(expr, None)
    walk.named.update(ident.text for ident in across if ident.text in OPTIONAL_FIELDS)
    for name, decl in sets.items():
        if '"' not in decl.value.span.text:
            continue
        for field in walk.fields_of_set(name):
            for element in decl.value.elements:
                walk.visit(element, field, into_sets=False)
    found = {name: () for name in walk.named if name not in PATTERN_FIELDS}
    for name, kind in PATTERN_FIELDS.items():
        if name in walk.named or name == SNI and walk.strings[SNI]:
            found[name] = syntax(kind).ordered(walk.strings[name])
    return Uses(found, walk.places)


class _Walk:
    def __init__(self, sets: Mapping[str, ast.SetDecl]):
        self.sets = sets
        self.named: set[str] = set()
        self.strings: dict[str, list[str]] = {name: [] for name in PATTERN_FIELDS}     # well-formed, canonical
        self.places: dict[tuple[str, str], Span] = {}
        self.set_uses: dict[str, set[str | None]] = {}     # set -> the interface fields it meets (None: others)
        self.holders: dict[str, list[str]] = {}            # set -> the sets that name it among their members
        for holder, decl in sets.items():
            for e in decl.value.elements:
                if isinstance(e, ast.Ident) and e.text in sets:
                    self.holders.setdefault(e.text, []).append(holder)

    def visit(self, node, field: str | None, into_sets: bool = True) -> None:
        """Note what a node names and declares; `field` is the interface field its values
        belong to (None: a string there is a server name)."""
        match node:
            case ast.Literal(kind="string", text=text):
                owner = field or SNI
                try:
                    canonical = syntax(PATTERN_FIELDS[owner]).pattern(string_body(text))
                except ValueError_:
                    return
                self.strings[owner].append(canonical)
                self.places.setdefault((owner, canonical), node.span)
            case ast.Ident(text=text):
                if text in OPTIONAL_FIELDS:
                    self.named.add(text)
                elif into_sets and text in self.sets:
                    self.set_uses.setdefault(text, set()).add(field)
            case ast.Compare(_, left, right):
                field = _interface(left) or _interface(right)
                self.visit(left, field)
                self.visit(right, field)
            case ast.Member(item, container):
                self.visit(item, None)
                self.visit(container, _interface(item))
            case ast.Range(low, high):
                self.visit(low, field)
                self.visit(high, field)
            case ast.SetLiteral(elements) | ast.And(elements) | ast.Or(elements):
                for e in elements:
                    self.visit(e, field)
            case ast.Not(operand):
                self.visit(operand, field)

    def fields_of_set(self, name: str) -> set[str | None]:
        """The fields a set's strings belong to: the interface fields it is used with, through
        the sets that hold it too, and None (server names) for any other use or none."""
        found: set[str | None] = set()
        seen, todo = {name}, [name]
        while todo:
            current = todo.pop()
            found |= self.set_uses.get(current, set())
            for holder in self.holders.get(current, ()):
                if holder not in seen:
                    seen.add(holder)
                    todo.append(holder)
        return found or {None}


def _interface(operand) -> str | None:
    return operand.text if isinstance(operand, ast.Ident) and operand.text in INTERFACE_FIELDS else None
