"""Literal values: parsing text into field integers, and printing integers the way operators write them."""
from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from .intervals import IntervalSet
from .schema import IPV6_BASE, PROTOCOL_NAMES, Field

VOLUME_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
RATE_UNITS = {"bps": 1, "kbps": 10**3, "Mbps": 10**6, "Gbps": 10**9}
# The smallest unit in words: `B` alone is easily misread (`a whole number of B`).
_BASE_WORDS = {"B": "bytes", "bps": "bits per second"}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([A-Za-z]+)$")


def units_help(units: dict[str, int]) -> str:
    """`units: B (bytes), KB, MB, ... (powers of 1000)`: the units of volumes or of rates."""
    base, *rest = units
    return f"units: {base} ({_BASE_WORDS[base]}), {', '.join(rest)} (powers of 1000)"


class ValueError_(Exception):
    """A literal that cannot be read; `label` goes under the caret, `help` says what to write."""

    def __init__(self, message: str, label: str = "", help: str | None = None):
        super().__init__(message)
        self.message, self.label, self.help = message, label, help


LONGEST_NUMBER = 50     # digits: no field has a value this long (addresses have 39), so a longer one is out of range


def whole_number(digits: str) -> int:
    """A string of digits as an int; past LONGEST_NUMBER digits, 10**LONGEST_NUMBER, beyond every
    field's range. Python refuses to convert more than 4300 digits (a ValueError no reader expects),
    and a long conversion costs time quadratic in the length."""
    return int(digits) if len(digits) <= LONGEST_NUMBER else 10**LONGEST_NUMBER


def parse_quantity(text: str, units: dict[str, int], what: str) -> int:
    match = _QUANTITY.match(text)
    if not match or match.group(2) not in units:
        raise ValueError_(f"`{text}` is not a {what}", help=units_help(units))
    try:
        value = Decimal(match.group(1)) * units[match.group(2)]
    except InvalidOperation:
        raise ValueError_(f"`{text}` is not a {what}", help=units_help(units)) from None
    if value != value.to_integral_value():
        base = next(iter(units))
        many = _BASE_WORDS[base]
        low, high = int(value), int(value) + 1
        choices = f"`{low}{base}` or `{high}{base}`" if low else f"`{high}{base}`"
        raise ValueError_(f"`{text}` is not a whole number of {many}", f"{value.normalize()} {many}",
                          help=f"a {what} counts whole {many}: write {choices}")
    return int(value)


@lru_cache(maxsize=1 << 16)      # diff checks two versions that share nearly all their addresses
def parse_ip(text: str) -> tuple[int, int]:
    """An address or prefix as an interval of the shared address dimension."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        detail = str(exc)
        if "has host bits set" in detail:
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError_(f"`{text}` has host bits set below the prefix length", "host bits set",
                              help=f"did you mean `{fixed}`?") from None
        if "/" in text:
            length = text.rsplit("/", 1)[1]
            limit = 32 if ":" not in text else 128
            if length.isdigit() and whole_number(length) > limit:
                raise ValueError_(f"prefix length /{length} is out of range", f"at most /{limit}",
                                  help=f"{'IPv4' if limit == 32 else 'IPv6'} prefixes are /0 to /{limit}") from None
        raise ValueError_(f"`{text}` is not a valid IP address or prefix", "invalid address") from None
    base = 0 if net.version == 4 else IPV6_BASE
    return base + int(net.network_address), base + int(net.broadcast_address)


@lru_cache(maxsize=1 << 16)      # the prefixes around different holes are mostly the same ones
def ip_text(value: int) -> str:
    if value < IPV6_BASE:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value - IPV6_BASE))


def ip_interval_texts(lo: int, hi: int) -> list[str]:
    """An address interval as the fewest prefixes, split where IPv4 ends."""
    out = []
    for a, b, base, width in ((lo, min(hi, IPV6_BASE - 1), 0, 32), (max(lo, IPV6_BASE), hi, IPV6_BASE, 128)):
        for start, length in _prefixes(a - base, b - base, width):
            address = ip_text(start + base)
            out.append(address if length == width else f"{address}/{length}")
    return out


def _prefixes(lo: int, hi: int, width: int):
    """The fewest aligned blocks covering lo..hi, as (start, prefix length): each block is the
    largest that starts at `lo` and fits (integer arithmetic; ipaddress builds an object a block)."""
    while lo <= hi:
        size = min((lo & -lo).bit_length() - 1 if lo else width, (hi - lo + 1).bit_length() - 1)
        yield lo, width - size
        lo += 1 << size


def quantity_text(value: int, units: dict[str, int]) -> str:
    for unit, factor in reversed(units.items()):
        if value and value % factor == 0:
            return f"{value // factor}{unit}"
    return f"{value}{next(iter(units))}"


def value_text(field: Field, value: int) -> str:
    """One value of a field as written in the language."""
    kind = field.kind
    if kind == "ip":
        return ip_text(value)
    if kind in ("enum", "domain", "interface"):
        return field.members[value] if value < len(field.members) else str(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "protocol":
        return PROTOCOL_NAMES.get(value, str(value))
    if kind == "volume":
        return quantity_text(value, VOLUME_UNITS)
    if kind == "rate":
        return quantity_text(value, RATE_UNITS)
    return str(value)


def value_set_texts(field: Field, values: IntervalSet) -> list[str]:
    """A value set as the list of items one would write between braces."""
    out: list[str] = []
    for lo, hi in values.intervals:
        if field.kind == "ip":
            out.extend(ip_interval_texts(lo, hi))
        elif field.kind in ("enum", "bool", "protocol") and hi - lo < 64 or field.kind in ("domain", "interface"):
            out.extend(value_text(field, v) for v in range(lo, hi + 1))
        elif lo == hi:
            out.append(value_text(field, lo))
        else:
            out.append(f"{value_text(field, lo)}..{value_text(field, hi)}")
    return out


def value_set_text(field: Field, values: IntervalSet, limit: int = 8) -> str:
    items = value_set_texts(field, values)
    if len(items) > limit:
        items = items[:limit] + [f"... {len(items) - limit} more"]
    return "{" + ", ".join(items) + "}"
