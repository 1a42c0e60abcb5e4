"""ICMP and ICMPv6 types (`icmp.type`): a number 0..255, and the names nftables gives them.

A name means a number only within one protocol (`echo-request` is 8 in ICMP and 128 in
ICMPv6), so the language takes a name only where the condition pins the protocol, and a number
everywhere (docs/language.md, "Firewall fields"). The importers read nft's names with
`type_number`.
"""
from __future__ import annotations

from typing import Iterable

from .intervals import IntervalSet
from .schema import PROTOCOLS
from .values import ValueError_

ICMP, ICMPV6 = PROTOCOLS["icmp"], PROTOCOLS["icmpv6"]
PROTOCOL_WORDS = {ICMP: "icmp", ICMPV6: "icmpv6"}
_TITLES = {ICMP: "ICMP", ICMPV6: "ICMPv6"}
# As nft 1.0.6 names them (`nft list` of `icmp type N` and `icmpv6 type N` for every N).
NAMES = {
    ICMP: {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
           "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
           "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
           "address-mask-request": 17, "address-mask-reply": 18},
    ICMPV6: {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
             "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
             "mld-listener-done": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
             "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137,
             "router-renumbering": 138, "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142,
             "mld2-listener-report": 143},
}
ALL_NAMES = tuple(dict.fromkeys(n for names in NAMES.values() for n in names))
# The message a probe sends for an ICMP flow, and a witness shows where the type is free.
ECHO_REQUEST = {ICMP: NAMES[ICMP]["echo-request"], ICMPV6: NAMES[ICMPV6]["echo-request"]}


def meanings(name: str) -> str:
    """`echo-request` is 8 in ICMP and 128 in ICMPv6: what a name means, for messages."""
    return " and ".join(f"{n} in {_TITLES[p]}" for p, names in NAMES.items() if (n := names.get(name)) is not None)


def type_number(protocol: int, value: str | int) -> int:
    """A type as nft or iptables writes it for `protocol` (ICMP or ICMPv6): a number 0..255 or the
    protocol's name for one. Raises ValueError_ saying what is wrong."""
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if not 0 <= number <= 255:
            raise ValueError_(f"ICMP type {value} is out of range", "types are 0..255")
        return number
    names = NAMES[protocol]
    if value not in names:
        other = next(p for p in NAMES if p != protocol)
        if value in NAMES[other]:
            raise ValueError_(f"`{value}` is an {PROTOCOL_WORDS[other]} type, not an {PROTOCOL_WORDS[protocol]} one",
                              f"not {PROTOCOL_WORDS[protocol]}", help=f"`{value}` is {meanings(value)}")
        raise ValueError_(f"`{value}` is not an {PROTOCOL_WORDS[protocol]} type", "not a type name",
                          help=f"{PROTOCOL_WORDS[protocol]} types are numbers 0..255 or " + ", ".join(names))
    return names[value]


def type_values(protocol: int, values: Iterable[str | int]) -> IntervalSet:
    """The values of `icmp.type` that these types of `protocol` are (numbers or names)."""
    return IntervalSet.of((n, n) for n in (type_number(protocol, v) for v in values))


def type_name(protocol: int, number: int) -> str | None:
    """nft's name for a type of `protocol`, if it has one."""
    return next((name for name, n in NAMES[protocol].items() if n == number), None)
