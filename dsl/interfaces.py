"""Interface names (`iface.in`, `iface.out`) as finite dimensions (docs/language.md, "Firewall
fields").

Linux names an interface with 1 to 15 bytes (IFNAMSIZ 16, with the closing NUL). A rule set
matches a name exactly (`"eth0"`) or by its beginning (`"tun*"`: every name that starts with
tun, tun itself included; iptables writes it `tun+`). A flow's `iface.in` is the most specific
declared name or pattern its input interface's name falls under, or `other` (a name under none).

Names sort as they read, and a pattern `p*` right before the name p (keys `p` + "\\x00" and `p` +
"\\x01"), so everything under `p*` lies between `p\\x00` and `p\\x7f`: every literal is one
interval of values (patterns.py does the rest, as for server names).
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Mapping

from .intervals import IntervalSet
from .patterns import Encoding, encoding_of, union
from .schema import INTERFACE_FIELDS, INTERFACE_SPECIAL, Field, Schema, optional_of, with_optional
from .values import ValueError_

OTHER = 0                       # the value of a name under no declared name or pattern
MAX_NAME = 15                   # bytes of a Linux interface name (IFNAMSIZ 16 with the closing NUL)
WILDCARD = "*"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# The characters of example names, the most usual first (`eth0` before `etha`).
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-."
_NAMES_HELP = ("an interface name is 1 to 15 letters, digits, `-`, `_` and `.`, such as `\"eth0\"`, `\"br-lan\"` or "
               "`\"eth0.100\"`; a pattern is a name's beginning and `*`: `\"tun*\"`")


def pattern(text: str) -> str:
    """An interface name or `*` pattern as written, checked (names are case-sensitive, so it is
    its own canonical form). Raises ValueError_ saying what is wrong."""
    body = text[:-1] if text.endswith(WILDCARD) else text
    if text == WILDCARD:
        raise ValueError_("`*` alone is not a pattern", "a pattern needs the beginning of a name",
                          help="every interface: leave the field out of the condition; all but some: "
                               "`iface.in not in {\"lo\", \"tun*\"}`")
    if not text:
        raise ValueError_("an empty interface name", "empty", help=_NAMES_HELP)
    if WILDCARD in body:
        raise ValueError_(f"`{text}` has `*` inside it", "`*` only at the end", help=_NAMES_HELP)
    if body.endswith("+"):
        raise ValueError_(f"`{text}` is written as iptables writes a pattern", "iptables' `+`",
                          help=f"write `\"{body[:-1]}*\"`: every name that starts with {body[:-1]}")
    bad = next((c for c in body if not _NAME.fullmatch(c)), None)
    if bad is not None:
        shown = "a space" if bad.isspace() else f"`{bad}`"
        raise ValueError_(f"`{text}` has {shown}, which interface names here do not", f"{shown} in a name",
                          help=_NAMES_HELP)
    if len(body) > MAX_NAME:
        raise ValueError_(f"the interface name is {len(body)} characters long", "too long",
                          help="Linux interface names have 1 to 15 characters (IFNAMSIZ 16)")
    if body != text and len(body) == MAX_NAME:
        raise ValueError_(f"`{text}` can match only the name `{body}`", "15 characters before `*`",
                          help=f"a name has at most 15 characters: write `\"{body}\"`")
    if body in (".", ".."):
        raise ValueError_(f"`{text}` is not an interface name", "not a name", help="Linux reserves `.` and `..`")
    if text in INTERFACE_SPECIAL:
        raise ValueError_(f"`{text}` stands for the names under none of the policy's names and patterns",
                          "reserved", help="no interface named `other` can be written; a condition on the "
                                           "others says what they are not: `iface.in not in {\"eth0\", \"ppp*\"}`")
    return text


def name(text: str) -> str:
    """A concrete interface name (no `*`, nor iptables' `+`), checked; raises ValueError_."""
    if text.endswith((WILDCARD, "+")) and len(text) > 1:
        raise ValueError_(f"`{text}` is a pattern, not one name", "a pattern",
                          help=f"give the name of one interface, for example `{text[:-1]}0`")
    return pattern(text)


class Interfaces(Encoding):
    """Interface names: `p*` holds p and every name that starts with p."""

    SPECIAL = INTERFACE_SPECIAL
    OTHER = OTHER
    ERROR = "E196"
    pattern = staticmethod(pattern)
    name = staticmethod(name)

    @staticmethod
    def key(canonical: str) -> str:
        return canonical[:-1] + "\x00" if canonical.endswith(WILDCARD) else canonical + "\x01"

    @staticmethod
    def bounds(canonical: str) -> tuple | None:
        return (canonical[:-1] + "\x00", canonical[:-1] + "\x7f") if canonical.endswith(WILDCARD) else None

    @staticmethod
    def covering(canonical: str) -> Iterator[str]:
        """`tun0`, `tun0*`, `tun*`, `tu*`, `t*`; for `tun*`: itself, `tu*`, `t*`."""
        yield canonical
        body = canonical.removesuffix(WILDCARD)
        for end in range(len(body) - (body != canonical), 0, -1):
            yield body[:end] + WILDCARD

    def candidates(self, value: int) -> Iterable[str]:
        """For `p*` p0 .. p9, then p and the other names under it, shortest first; for `other`
        if9, then any name under no pattern."""
        if value == OTHER:
            yield "if9"
            yield from self._names_under("")
            return
        prefix = self.text(value)[:-1]
        yield from (prefix + digit for digit in "0123456789")
        yield from self._names_under(prefix)

    def _names_under(self, prefix: str) -> Iterator[str]:
        """Every name that starts with `prefix`, shortest first, but those under a more specific
        declared pattern (none of whose names has the value sought): finite, and exhausted
        only when more specific patterns take every name."""
        level = [prefix]
        while level:
            yield from (n for n in level if n)
            level = [n + c for n in level if len(n) < MAX_NAME for c in _ALPHABET
                     if n + c + WILDCARD not in self.value_of]


def with_interfaces(schema: Schema, patterns: Mapping[str, Iterable[str]]) -> Schema:
    """The schema with `iface.in` and `iface.out` (the keys of `patterns`) over the names and
    patterns given, as the language writes them (`"eth0"`, `"tun*"`), and those it has already:
    what an importer of a rule set that matches these interfaces checks its rules on. Raises
    ValueError_ for a bad name, or for patterns that leave some value no name."""
    for field in patterns:
        if field not in INTERFACE_FIELDS:
            raise ValueError_(f"`{field}` is not an interface field", help="the fields are iface.in and iface.out")
    given = {field: tuple(pattern(text) for text in texts) for field, texts in patterns.items()}
    joint = union(optional_of(schema), given)
    out = with_optional(schema, {field: joint[field] for field in given})
    for field in given:
        check_vacancy(out.field(field))
    return out


def check_vacancy(field: Field) -> None:
    """Raise ValueError_ when more specific names and patterns take every name of a value."""
    encoding = encoding_of(field)
    for value in encoding.vacant():
        raise vacancy(encoding, value)


def vacancy(encoding: Interfaces, value: int) -> ValueError_:
    """The problem of a value that more specific names and patterns leave no name of."""
    if value == OTHER:
        return ValueError_(f"the names and patterns of `{encoding.text(encoding.first)}` and the others leave no "
                           "interface name under none of them", "every name taken",
                           help="`other` would be a value no interface has, and proofs would speak of flows no "
                                "packet carries: declare fewer patterns")
    pattern_text = encoding.text(value)
    return ValueError_(f"`{pattern_text}` holds no interface name that a more specific name or pattern does not take",
                       "every name taken", help=f"proofs would speak of flows no packet carries: remove `{pattern_text}`, "
                                                "or some of the names and patterns under it")


def values_of(field: Field, literals: Iterable[str]) -> IntervalSet:
    """The values `FIELD in {LITERALS}` means: those of the declared names and patterns under
    each literal (each one declared in the field). Raises ValueError_ for a bad literal."""
    encoding = encoding_of(field)
    out = []
    for text in literals:
        canonical = pattern(text)
        if canonical not in encoding.value_of:
            raise ValueError_(f"`{text}` is not a name or pattern of `{field.name}`",
                              help="build the schema with it first: interfaces.with_interfaces")
        out.append(encoding.meaning(canonical))
    return IntervalSet.of(out)


def name_value(field: Field, text: str) -> int:
    """The value of a flow whose interface is named `text`. Raises ValueError_ for a bad name."""
    return encoding_of(field).encode(name(text))
