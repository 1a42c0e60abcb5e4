"""Server names (`tls.sni`) as a finite dimension (docs/language.md, "Server names").

A policy and its specs declare finitely many domain patterns: exact names (`"spotify.com"`) and
suffix patterns (`"*.spotify.com"`, every name below spotify.com, not spotify.com itself). A
flow's `tls.sni` is the most specific declared pattern its name falls under, or one of two
values of their own: `none` (the client sent no name) and `other` (a name under no declared
pattern). So a pattern literal means the values of the declared patterns that fall under it.

Patterns are numbered in the order of their labels read from the right (`com`, `spotify`, ...),
with `*` before every other label: the patterns that fall under `*.x` are then exactly those
right after it whose labels start with those of `x`, so every literal is one interval.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache

from .schema import DOMAIN_SPECIAL as SPECIAL
from .values import ValueError_

NONE, OTHER = 0, 1                # the values of no name sent, and of a name under no declared pattern
FIRST_PATTERN = len(SPECIAL)      # the value of the first declared pattern; no name is `none` or `other`
WILDCARD = "*"
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PAST_LAST_LABEL = "\x7f"         # sorts after every label
# For the value of a name under no declared pattern, names an operator reads as "some other site".
_OTHER_NAMES = ("example.net", "example.org", "example.com")


def pattern(text: str) -> str:
    """A domain name or `*.` suffix pattern as written, checked and made canonical (lower case,
    no trailing dot). Raises ValueError_ saying what is wrong."""
    if not text.isascii():
        try:
            ascii_form = text.encode("idna").decode("ascii").lower()
        except UnicodeError:
            ascii_form = None
        help = (f"write the ASCII form (IDNA A-labels): `\"{ascii_form}\"`" if ascii_form
                else "write the ASCII form of the name (IDNA A-labels, `xn--...`)")
        raise ValueError_(f"`{text}` is not an ASCII domain name", "not ASCII", help=help)
    name = text.lower()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    if len(name) > 253:
        raise ValueError_(f"the domain name is {len(name)} characters long", "too long",
                          help="a domain name has at most 253 characters")
    labels = name.split(".")
    wildcard = labels[0] == WILDCARD
    for label in labels[1:] if wildcard else labels:
        if label == WILDCARD or WILDCARD in label:
            raise ValueError_(f"`{text}` has `*` inside it", "`*` only as the whole first label",
                              help="a pattern is `*.` and a name: `\"*.spotify.com\"` matches every name below "
                                   "spotify.com")
        if not _LABEL.fullmatch(label):
            raise ValueError_(f"`{text}` is not a domain name", _label_problem(label),
                              help="labels are 1 to 63 letters, digits and hyphens, not starting or ending with "
                                   "a hyphen, joined by dots: `\"cdn.spotify.com\"`")
    if wildcard and len(labels) < 2:
        raise ValueError_("`*` alone is not a pattern", "a pattern needs a name after `*.`",
                          help="write `\"*.spotify.com\"` for every name below spotify.com; to test for any name, "
                               "write `tls.sni != none`")
    if not wildcard and len(labels) < 2:
        raise ValueError_(f"`{text}` is a single label, not a server name", "one label",
                          help="a TLS client names a server by its full DNS name, such as `\"spotify.com\"`; "
                               "for every name under a top-level domain write `\"*.com\"`")
    if labels[-1].isdigit():
        raise ValueError_(f"`{text}` looks like an IP address", "an address, not a name",
                          help="a TLS client never sends an address as its server name (RFC 6066); test "
                               "`dst.ip` instead")
    return name


def _label_problem(label: str) -> str:
    if not label:
        return "an empty label"
    if len(label) > 63:
        return f"a label of {len(label)} characters (at most 63)"
    if label.startswith("-") or label.endswith("-"):
        return "a label starts or ends with `-`"
    return "only letters, digits and `-` in a label"


def name(text: str) -> str:
    """A concrete server name (no `*`), checked and canonical; raises ValueError_."""
    canonical = pattern(text)
    if canonical.startswith(WILDCARD):
        raise ValueError_(f"`{text}` is a pattern, not one name", "a pattern",
                          help="give the name a client sends, for example `a.spotify.com`")
    return canonical


def _key(canonical: str) -> tuple[str, ...]:
    return tuple(reversed(canonical.split(".")))


def ordered(patterns) -> tuple[str, ...]:
    """Canonical patterns, each once, in the order their values take."""
    return tuple(sorted(set(patterns), key=_key))


class Domains:
    """The encoding of one set of declared patterns (`ordered`): a field's members are
    `SPECIAL + patterns`, so a pattern's value is its index there."""

    def __init__(self, patterns: tuple[str, ...]):
        self.patterns = patterns
        self.keys = [_key(p) for p in patterns]
        self.value_of = {p: FIRST_PATTERN + i for i, p in enumerate(patterns)}

    def meaning(self, canonical: str) -> tuple[int, int]:
        """The values of the declared patterns that fall under a declared pattern, as one interval."""
        key = _key(canonical)
        if key[-1] != WILDCARD:
            value = self.value_of[canonical]
            return value, value
        below = key[:-1]
        lo = bisect_left(self.keys, below + (WILDCARD,))
        hi = bisect_left(self.keys, below + (_PAST_LAST_LABEL,)) - 1
        return FIRST_PATTERN + lo, FIRST_PATTERN + hi

    def encode(self, canonical_name: str) -> int:
        """A concrete name's value: the name itself if declared, else the nearest `*.` suffix.
        Given a pattern `*.x` (declared or not), the value of the names below x that no
        pattern more specific than `*.x` takes."""
        if canonical_name in self.value_of:
            return self.value_of[canonical_name]
        labels = canonical_name.split(".")
        for i in range(1, len(labels)):
            value = self.value_of.get(WILDCARD + "." + ".".join(labels[i:]))
            if value is not None:
                return value
        return OTHER

    def parent(self, value: int) -> int | None:
        """The value of the most specific other declared pattern this pattern falls under."""
        labels = self.text(value).split(".")
        for i in range(2 if labels[0] == WILDCARD else 1, len(labels)):
            found = self.value_of.get(WILDCARD + "." + ".".join(labels[i:]))
            if found is not None:
                return found
        return None

    def pieces(self, values) -> list[tuple[int, tuple[int, ...]]]:
        """A set of values without `other` as literals: pairs (value, excluded values) whose
        meanings, the value's less the excluded ones', are disjoint and make up the set exactly.
        A value is a piece's head when its parent is not in the set; a piece excludes the
        patterns below its head that are not in the set and whose parent is."""
        members = {v for lo, hi in values.intervals for v in range(lo, hi + 1)}
        out = []
        for head in sorted(members):
            if head >= FIRST_PATTERN and self.parent(head) in members:
                continue
            lo, hi = self.meaning(self.text(head)) if head >= FIRST_PATTERN else (head, head)
            excluded = tuple(v for v in range(lo + 1, hi + 1) if v not in members and self.parent(v) in members)
            out.append((head, excluded))
        return out

    def literal(self, value: int) -> str:
        """A value as the language writes it: `none`, or the pattern in double quotes."""
        return SPECIAL[value] if value < FIRST_PATTERN else f'"{self.text(value)}"'

    def text(self, value: int) -> str:
        return SPECIAL[value] if value < FIRST_PATTERN else self.patterns[value - FIRST_PATTERN]

    def example(self, value: int) -> str | None:
        """A real-looking name with this value (None for `none`): a declared name itself, for
        `*.x` the first of `a.x`, `b.x`, ... that no more specific pattern takes, and for
        `other` example.net (or another name under no declared pattern)."""
        if value == NONE:
            return None
        if value == OTHER:
            candidates = _OTHER_NAMES + tuple(f"example.test{k}" for k in range(len(self.patterns) + 1))
        else:
            text = self.text(value)
            if not text.startswith(WILDCARD):
                return text
            candidates = (f"{label}.{text[2:]}" for label in _labels())
        return next(c for c in candidates if self.encode(c) == value)


def _labels():
    """a, b, ..., z, a0, a1, ...: first labels for example names."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from letters
    k = 0
    while True:
        yield f"a{k}"
        k += 1


@lru_cache(maxsize=64)
def domains_of(members: tuple[str, ...]) -> Domains:
    """The encoding a `tls.sni` field's members describe (cached: witnesses ask per flow)."""
    return Domains(members[FIRST_PATTERN:])
