"""Server names (`tls.sni`) as a finite dimension (docs/language.md, "Server names").

A policy and its specs declare finitely many domain patterns: exact names (`"spotify.com"`) and
suffix patterns (`"*.spotify.com"`, every name below spotify.com, not spotify.com itself). A
flow's `tls.sni` is the most specific declared pattern its name falls under, or one of two
values of their own: `none` (the client sent no name) and `other` (a name under no declared
pattern). So a pattern literal means the values of the declared patterns that fall under it.

Patterns are numbered in the order of their labels read from the right (`com`, `spotify`, ...),
with `*` before every other label: the patterns that fall under `*.x` are then exactly those
right after it whose labels start with those of `x`, so every literal is one interval (the
machinery is patterns.py's, which interface names share).
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator

from .patterns import Encoding
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


class Domains(Encoding):
    """Server names: `*.x` holds the names below x. Keys are the labels read from the right, with
    `*` (which sorts before every other label) for the pattern itself."""

    SPECIAL = SPECIAL
    OTHER = OTHER
    ERROR = "E195"
    pattern = staticmethod(pattern)
    name = staticmethod(name)

    @staticmethod
    def key(canonical: str) -> tuple[str, ...]:
        return tuple(reversed(canonical.split(".")))

    @staticmethod
    def bounds(canonical: str) -> tuple | None:
        key = Domains.key(canonical)
        if key[-1] != WILDCARD:
            return None
        return key, key[:-1] + (_PAST_LAST_LABEL,)

    @staticmethod
    def covering(canonical: str) -> Iterator[str]:
        """`a.b.c`, `*.b.c`, `*.c`; for `*.b.c`: itself, `*.c`."""
        yield canonical
        labels = canonical.split(".")
        for i in range(2 if labels[0] == WILDCARD else 1, len(labels)):
            yield WILDCARD + "." + ".".join(labels[i:])

    def candidates(self, value: int) -> Iterable[str]:
        """For `*.x` a.x, b.x, ...; for `other` example.net (or another name under no pattern);
        none for `none`, which is no name."""
        if value == OTHER:
            return _OTHER_NAMES + tuple(f"example.test{k}" for k in range(len(self.patterns) + 1))
        if value == NONE:
            return ()
        return (f"{label}.{self.text(value)[2:]}" for label in _labels())


def _labels():
    """a, b, ..., z, a0, a1, ...: first labels for example names."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    yield from letters
    k = 0
    while True:
        yield f"a{k}"
        k += 1


ordered = Domains.ordered
