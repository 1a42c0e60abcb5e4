"""Names and patterns as a finite dimension: what `tls.sni` (domains.py) and `iface.in`,
`iface.out` (interfaces.py) share.

A policy declares finitely many names and patterns. A flow's value is the most specific of
them that its name falls under, or a value of its own: `other`, a name under none of them (and
for server names `none`, no name sent). A literal then means the values of the declared
patterns that fall under it.

Each syntax orders its patterns by a key under which everything a pattern holds comes right
after it, so every literal is one interval of values, found by bisection (`meaning`); a name's
value is found by looking up, most specific first, the patterns it could fall under
(`encode`). These are two readings of the same matching, which the property tests compare with
plain matching.
"""
from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache
from typing import Callable, Iterable, Iterator

from .intervals import IntervalSet
from .schema import PATTERN_FIELDS, Field


class Encoding:
    """The encoding of one set of declared patterns (canonical, in `ordered` order): a field's
    members are `SPECIAL + patterns`, so a pattern's value is its index there. A syntax says
    how its patterns sort (`key`), which keys a pattern holds (`bounds`), what a name falls
    under (`covering`) and which names to show (`candidates`)."""

    SPECIAL: tuple[str, ...]        # the values that are no declared pattern, in value order
    OTHER: int                      # the value of a name under no declared pattern
    ERROR: str                      # the code of a literal that is no name or pattern
    # pattern(text) and name(text): a literal as written, checked and made canonical (a name: no
    # pattern); each raises values.ValueError_ saying what is wrong
    pattern: Callable[[str], str]
    name: Callable[[str], str]

    def __init__(self, patterns: tuple[str, ...]):
        self.patterns = patterns
        self.first = len(self.SPECIAL)          # the value of the first declared pattern
        self.keys = [self.key(p) for p in patterns]
        self.value_of = {p: self.first + i for i, p in enumerate(patterns)}

    # ----- the syntax -----------------------------------------------------------------------
    @staticmethod
    def key(canonical: str):
        raise NotImplementedError

    @staticmethod
    def bounds(canonical: str) -> tuple | None:
        """For a pattern, the keys between which (from the first, before the second) lie the keys
        of everything it holds; None for a name, which holds only itself."""
        raise NotImplementedError

    @staticmethod
    def covering(canonical: str) -> Iterator[str]:
        """The name or pattern itself, then every pattern above it, most specific first."""
        raise NotImplementedError

    def candidates(self, value: int) -> Iterable[str]:
        """Real-looking names to try for a value other than a declared name, best first."""
        raise NotImplementedError

    @classmethod
    def ordered(cls, patterns: Iterable[str]) -> tuple[str, ...]:
        """Canonical patterns, each once, in the order their values take."""
        return tuple(sorted(set(patterns), key=cls.key))

    # ----- the encoding ---------------------------------------------------------------------
    def meaning(self, canonical: str) -> tuple[int, int]:
        """The values of the declared patterns that fall under a declared pattern, as one interval."""
        bounds = self.bounds(canonical)
        if bounds is None:
            value = self.value_of[canonical]
            return value, value
        lo, hi = (bisect_left(self.keys, b) for b in bounds)
        return self.first + lo, self.first + hi - 1

    def encode(self, canonical: str) -> int:
        """A concrete name's value: the most specific declared pattern it falls under (given a
        pattern, declared or not, the value of the names under it that no more specific
        pattern takes)."""
        return next((self.value_of[p] for p in self.covering(canonical) if p in self.value_of), self.OTHER)

    def parent(self, value: int) -> int | None:
        """The value of the most specific other declared pattern a declared one falls under;
        `other` for one under none (`other` holds every name), None for the special values."""
        if value < self.first:
            return None
        above = self.covering(self.text(value))
        next(above)
        return next((self.value_of[p] for p in above if p in self.value_of), self.OTHER)

    def pieces(self, values: IntervalSet) -> list[tuple[int, tuple[int, ...]]]:
        """A set of values as literals: pairs (value, excluded values) whose meanings, the
        value's less the excluded ones', are disjoint and make up the set exactly. A value is a
        piece's head when its parent is not in the set; a piece excludes the values below its
        head that are not in the set and whose parent is. `other` means every name, and the
        patterns under no other one are below it."""
        members = {v for lo, hi in values.intervals for v in range(lo, hi + 1)}

        def head_of(v: int) -> int:
            while (up := self.parent(v)) in members:
                v = up
            return v
        out = []
        for head in sorted(members):
            if self.parent(head) in members:
                continue
            if head == self.OTHER:      # the patterns joined to `other` through members only
                excluded = tuple(v for v in range(self.first, self.first + len(self.patterns))
                                 if v not in members and self.parent(v) in members
                                 and head_of(self.parent(v)) == head)
            else:
                lo, hi = self.meaning(self.text(head)) if head >= self.first else (head, head)
                excluded = tuple(v for v in range(lo + 1, hi + 1) if v not in members and self.parent(v) in members)
            out.append((head, excluded))
        return out

    def literal(self, value: int) -> str:
        """A value as the language writes it: a special value's name, or the pattern in quotes."""
        return self.SPECIAL[value] if value < self.first else f'"{self.text(value)}"'

    def text(self, value: int) -> str:
        return self.SPECIAL[value] if value < self.first else self.patterns[value - self.first]

    def example(self, value: int) -> str | None:
        """A real-looking name with this value: a declared name itself, else the first
        candidate that no more specific pattern takes; None for a value that is no name
        (`none`), or that more specific patterns leave no name of (`vacant`)."""
        if value >= self.first and self.bounds(self.text(value)) is None:
            return self.text(value)
        return next((c for c in self.candidates(value) if self.encode(c) == value), None)

    def vacant(self) -> list[int]:
        """The values of names that no name has: those a policy must not declare."""
        return [v for v in [self.OTHER] + list(range(self.first, self.first + len(self.patterns)))
                if self.example(v) is None]


def syntax(kind: str) -> type[Encoding]:
    """The encoding of a kind of pattern field: `domain` or `interface`."""
    from . import domains, interfaces       # both build on this module
    return domains.Domains if kind == "domain" else interfaces.Interfaces


def encoding_of(field: Field) -> Encoding:
    """The encoding a pattern field's members describe (cached: witnesses ask per flow)."""
    return _encoding(syntax(field.kind), field.members)


@lru_cache(maxsize=64)
def _encoding(cls: type[Encoding], members: tuple[str, ...]) -> Encoding:
    return cls(members[len(cls.SPECIAL):])


def union(*optionals) -> dict[str, tuple[str, ...]]:
    """The optional fields of several schemas or checks (schema.optional_of), each pattern field
    with the patterns of all of them, in value order: a diff's two versions, a table and its
    specs."""
    out: dict[str, list[str]] = {}
    for optional in optionals:
        for name, patterns in optional.items():
            out.setdefault(name, []).extend(patterns)
    return {name: syntax(PATTERN_FIELDS[name]).ordered(patterns) if name in PATTERN_FIELDS else ()
            for name, patterns in out.items()}
