"""Members of one set that repeat or overlap each other (lint codes L401, L402).

Each member of a set literal or named set is resolved to its values for the field the set is
used with (a named set's field is where the checker met it; an unused one's is read from its
literals), so `{tcp, 6}` is a repeat, `{10.0.0.0/8, 10.1.0.0/16}` and `{openvpn, category.vpn}`
hold one member inside another, and `{1000..2000, 1500..3000}` overlap. Each member is reported
once, against the first member before it that it meets.
"""
from __future__ import annotations

import heapq
from typing import Iterable

from . import ast, domains
from .catalogue import Catalogue
from .intervals import IntervalSet
from .lintcodes import LintFinding
from .loader import PlacedItem
from .parser import string_body
from .patterns import encoding_of, syntax
from .schema import ENGINE_VIEWS, PATTERN_FIELDS, PROTOCOLS, SNI, Field, Schema
from .values import RATE_UNITS, VOLUME_UNITS, ValueError_, parse_ip, parse_quantity, value_set_texts

_PAIRS_CAP = 100_000          # overlapping pairs examined per set (a pathological set stops there)
# For a set no condition uses: the field its literals suggest (any field of that kind would do).
_FIELD_OF_LITERAL = {"ipv4": "dst.ip", "ipv6": "dst.ip", "number": "dst.port",
                     "volume": "subscriber.usage", "rate": "rate", "string": SNI}


class _Resolver:
    def __init__(self, schema: Schema, catalogue: Catalogue, sets: dict[str, ast.SetDecl]):
        self.schema, self.catalogue, self.sets = schema, catalogue, sets
        self._cache: dict[tuple[str, str], IntervalSet | None] = {}

    def element(self, f: Field, e) -> IntervalSet | None:
        """The values of one member for field f; None when they cannot be read (a set resolved
        elsewhere, an unused set of names this module cannot type)."""
        if isinstance(e, ast.Range):
            low, high = self.scalar(f, e.low), self.scalar(f, e.high)
            return None if low is None or high is None else IntervalSet.span(low.min(), high.hull()[1])
        if isinstance(e, ast.Ident) and e.text in self.sets and (f.kind != "enum" or e.text not in f.members):
            return self.named(f, e.text)
        if isinstance(e, ast.Ident) and e.text.startswith("category.") and f.enum == "app":
            return IntervalSet.of((f.index_of(a), f.index_of(a)) for a in self.catalogue.category(e.text[9:]))
        return self.scalar(f, e)

    def scalar(self, f: Field, e) -> IntervalSet | None:
        try:
            if isinstance(e, ast.Ident):
                if f.kind == "enum" and e.text in f.members:
                    return IntervalSet.point(f.index_of(e.text))
                if f.kind == "protocol" and e.text in PROTOCOLS:
                    return IntervalSet.point(PROTOCOLS[e.text])
                if f.kind == "domain" and e.text == "none":
                    return IntervalSet.point(domains.NONE)
                return None
            if e.kind == "string" and f.name in PATTERN_FIELDS:     # `*.x` holds the patterns below x
                canonical = syntax(f.kind).pattern(string_body(e.text))
                return IntervalSet.span(*encoding_of(f).meaning(canonical))
            if e.kind in ("ipv4", "ipv6") and f.kind == "ip":
                return IntervalSet.span(*parse_ip(e.text))
            if e.kind == "number" and f.kind in ("port", "hour", "protocol", "icmp"):
                return IntervalSet.point(int(e.text))
            if e.kind == "volume" and f.kind == "volume":
                return IntervalSet.point(parse_quantity(e.text, VOLUME_UNITS, "volume"))
            if e.kind == "rate" and f.kind == "rate":
                return IntervalSet.point(parse_quantity(e.text, RATE_UNITS, "rate"))
        except ValueError_:
            return None
        return None

    def named(self, f: Field, name: str) -> IntervalSet | None:
        key = (name, f.name)
        if key not in self._cache:
            self._cache[key] = None            # a cycle (an error the checker reports) reads as unknown
            parts = [self.element(f, e) for e in self.sets[name].value.elements]
            self._cache[key] = None if any(p is None for p in parts) else IntervalSet.of(
                iv for p in parts for iv in p.intervals)
        return self._cache[key]


def set_member_findings(placed: list[PlacedItem], schema: Schema, catalogue: Catalogue,
                        named_sets: Iterable[tuple[str, str, IntervalSet]]) -> list[LintFinding]:
    items = [p.item for p in placed]
    sets = {i.name.text: i for i in items if isinstance(i, ast.SetDecl)}
    resolver = _Resolver(schema, catalogue, sets)
    field_of = {}
    for name, field, _ in named_sets:
        field_of.setdefault(name, field)
    out: list[LintFinding] = []
    for item in items:
        if isinstance(item, ast.SetDecl):
            f = _field(schema, field_of.get(item.name.text)) or _guess(schema, catalogue, item.value)
            out += _check(resolver, f, item.value, item.span, f"set `{item.name.text}`")
        elif isinstance(item, ast.RuleDecl | ast.InvariantDecl | ast.TestDecl):
            for expr in (getattr(item, a, None) for a in ("when", "require", "exists", "given")):
                for member in _members(expr):
                    f = _field(schema, member.item.text)
                    out += _check(resolver, f, member.container, item.span, "this set")
    return out


def _field(schema: Schema, name: str | None) -> Field | None:
    if name is None:
        return None
    return schema.field(ENGINE_VIEWS.get(name, name))


def _guess(schema: Schema, catalogue: Catalogue, value: ast.SetLiteral) -> Field | None:
    """The field an unused set's members suggest: its literals' kind, else the enum its names
    belong to (applications first)."""
    for e in value.elements:
        lit = e.low if isinstance(e, ast.Range) else e
        if isinstance(lit, ast.Literal):
            return schema.field(_FIELD_OF_LITERAL.get(lit.kind, ""))
    names = [e.text for e in value.elements if isinstance(e, ast.Ident)]
    for f in schema.flow_fields + schema.outcome_fields:
        if f.kind in ("enum", "protocol") and all(
                n in f.members or n in PROTOCOLS and f.kind == "protocol" or n.startswith("category.")
                and f.enum == "app" for n in names):
            return f
    return None


def _members(expr) -> Iterable[ast.Member]:
    """Every `FIELD in {...}` of a condition."""
    match expr:
        case ast.Member(item=ast.Ident(), container=ast.SetLiteral()):
            yield expr
        case ast.Not(operand=operand):
            yield from _members(operand)
        case ast.And(operands=operands) | ast.Or(operands=operands):
            for e in operands:
                yield from _members(e)


def _check(resolver: _Resolver, f: Field | None, value: ast.SetLiteral, item, where: str) -> list[LintFinding]:
    elements = value.elements
    values = [resolver.element(f, e) if f is not None else None for e in elements]
    partner: dict[int, int] = {}
    for a, b in _overlapping_pairs(values):
        later, earlier = max(a, b), min(a, b)
        if earlier < partner.get(later, later):
            partner[later] = earlier
    # Members whose values are unknown still repeat when written the same way.
    first_text: dict[str, int] = {}
    for k, e in enumerate(elements):
        text = _text(e)
        if text in first_text and k not in partner:
            partner[k] = first_text[text]
        first_text.setdefault(text, k)
    return [_finding(f, elements, values, k, partner[k], item, where) for k in sorted(partner)]


def _overlapping_pairs(values: list[IntervalSet | None]) -> Iterable[tuple[int, int]]:
    """Pairs of members sharing a value: a sweep over their intervals sorted by low end."""
    intervals = sorted((lo, hi, k) for k, v in enumerate(values) if v is not None for lo, hi in v.intervals)
    active: list[tuple[int, int]] = []            # (high end, member), a heap by high end
    pairs = 0
    for lo, hi, k in intervals:
        while active and active[0][0] < lo:
            heapq.heappop(active)
        for _, other in active:
            if other != k:
                yield k, other
                pairs += 1
                if pairs >= _PAIRS_CAP:
                    return
        heapq.heappush(active, (hi, k))


def _text(e) -> str:
    return f"{e.low.text}..{e.high.text}" if isinstance(e, ast.Range) else e.text


def _finding(f: Field | None, elements, values, k: int, j: int, item, where: str) -> LintFinding:
    here, there = _text(elements[k]), _text(elements[j])
    mine, theirs = values[k], values[j]
    related = ((elements[j].span, f"`{there}` is here"),)
    if mine is None or theirs is None or mine == theirs:
        same = "" if here == there else f" (`{here}` is `{there}`)"
        return LintFinding("L401", f"`{here}` is listed twice in {where}{same}", elements[k].span, item,
                           label="already listed", related=related, hint=f"remove this `{here}`")
    if mine.issubset(theirs):
        return LintFinding("L402", f"`{here}` is inside `{there}`, listed before it in {where}", elements[k].span,
                           item, label=f"already in `{there}`", related=related,
                           hint=f"remove `{here}`: `{there}` already holds it")
    if theirs.issubset(mine):
        return LintFinding("L402", f"`{here}` holds `{there}`, listed before it in {where}", elements[k].span,
                           item, label=f"holds `{there}`", related=related,
                           hint=f"remove `{there}`: `{here}` already holds it")
    merged = ", ".join(value_set_texts(f, mine.union(theirs)))
    return LintFinding("L402", f"`{here}` overlaps `{there}`, listed before it in {where}", elements[k].span, item,
                       label=f"overlaps `{there}`", related=related,
                       hint=f"write the two as `{merged}`" if "," not in merged else
                       "remove the values they share from one of them")
