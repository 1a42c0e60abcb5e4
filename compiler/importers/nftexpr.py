"""nft's JSON expressions (`nft -j list`) as sets of flow-field values: the decoding that the
kernel check's reader of dpipolicy's own table (nftjson.py) and the import of real rule sets
(nftruleset.py) share, so that one match means one thing to both.

A `Decoder` reads the matches the nftables backend writes (`meta l4proto`, `meta nfproto`,
`meta hour`, `meta day`) and, under an engine contract, the connection's original tuple
(`ct original ...`), the connection-mark fields and the subscriber sets. What it does not
understand is an `Unread`: a kind (the shape of the JSON, a match, a match's condition, a
statement), a JSON path and a message, which each reader turns into its own error code.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from functools import partial
from typing import Callable

from dpipolicy.compiler.backends.contract import DAY_NAMES, FAMILY_SPACE, MARK_FIELDS, PORT_PROTOCOLS, Contract
from dpipolicy.compiler.boxes import Box
from dpipolicy.dsl import icmp
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.schema import CT_STATE, CT_STATES, ICMP_TYPE, IFACE_IN, IFACE_OUT, IPV6_BASE, RATE_MAX, Schema
from dpipolicy.dsl.values import ValueError_

SHAPE, MATCH, CONDITION, STATEMENT = "shape", "match", "condition", "statement"

FAMILIES = {f"ipv{n}": space for n, space in FAMILY_SPACE.items()}
ADDRESS_KEYS = {"ip saddr": ("src.ip", "ipv4"), "ip daddr": ("dst.ip", "ipv4"),
                "ip6 saddr": ("src.ip", "ipv6"), "ip6 daddr": ("dst.ip", "ipv6")}
PORT_KEYS = {"proto-src": "src.port", "proto-dst": "dst.port"}
NAME_KEYS = {"iifname": IFACE_IN, "oifname": IFACE_OUT}
TYPE_HEADERS = {word: protocol for protocol, word in icmp.PROTOCOL_WORDS.items()}     # `icmp type`, `icmpv6 type`
SUBSCRIBER_SIDE = {"src.ip": 0, "dst.ip": 1}      # the direction on which that address is the subscriber's
DAY = 24 * 3600
RATE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 ** 2}     # as nft 1.0.6 prints a limit
# nft 1.0.6 prints ports inside an anonymous set of `ct original proto-dst` as `0x19 [invalid type]`.
_UNTYPED = re.compile(r"^0x([0-9a-f]+) \[invalid type\]$")
_HOUR = re.compile(r"^(\d\d):(\d\d)(?::(\d\d))?$")
_NFT_DAYS = DAY_NAMES[-1:] + DAY_NAMES[:-1]         # as nft numbers them: Sunday 0 .. Saturday 6

# A named set's elements and where they are, for a name (`@values_3`) met at a JSON path.
SetLookup = Callable[[str, str], tuple[list, str]]


class Unread(Exception):
    """One part of nft's JSON that is not understood: (kind, JSON path, message)."""

    def __init__(self, kind: str, path: str, message: str):
        super().__init__(message)
        self.kind, self.path, self.message = kind, path, message


def only_key(obj, path: str, kind: str, what: str) -> str:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise Unread(kind, path, f"{what} is not an object with one key")
    return next(iter(obj))


def short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def restrict(box: Box, name: str, values: IntervalSet) -> None:
    box[name] = box[name].intersect(values) if name in box else values


class Decoder:
    """Matches as restrictions of a box. Without a contract only the fields any rule set has
    are read (protocol, family, hour, day); with one, also what the contract defines."""

    def __init__(self, schema: Schema, lookup: SetLookup, contract: Contract | None = None):
        self.schema, self.lookup, self.contract = schema, lookup, contract
        self.fields = {f.name: f for f in schema.flow_fields}
        self.app_index = schema.member_index("app")
        self.decoded: dict[str, tuple[Box, tuple, str | None]] = {}     # match text -> (match)

    def match(self, m, where: str, box: Box, sides: list) -> None:
        """Restrict `box` by one match. Each distinct match text is decoded once, with the side
        of the subscriber set it tests, which the rule's direction must then settle, and for a
        port the protocol the rule must name first: 48,725 kernel rules of the 10k benchmark
        hold far fewer distinct matches."""
        key = repr(m)
        found = self.decoded.get(key)
        if found is None:
            found = self.decoded[key] = self.decode_alone(m, where, box)
        elif found[2] is not None:
            self.ported(box, found[2], where)
        part, own, _ = found
        for name, values in part.items():
            restrict(box, name, values)
        if own:
            sides += [(where + path, side, words) for path, side, words in own]

    def decode_alone(self, m, where: str, box: Box) -> tuple[Box, tuple, str | None]:
        """A match's restrictions, its subscriber sides (paths relative to `where`) and, for a
        port, its key, decoded apart from the rule (`box`, which only a port reads)."""
        port = self.port_key(m)
        part: Box = {"proto": box["proto"]} if port is not None and "proto" in box else {}
        own: list[tuple[str, int, str]] = []
        self.decode(m, where, part, own)
        if port is not None:
            part.pop("proto", None)          # read, not restricted: a port's protocol is the rule's
        return part, tuple((path.removeprefix(where), side, words) for path, side, words in own), port

    @staticmethod
    def port_key(m) -> str | None:
        """`proto-src` or `proto-dst` for a match of a connection's port, else None."""
        left = m.get("left") if isinstance(m, dict) else None
        ct = left.get("ct") if isinstance(left, dict) else None
        return ct.get("key") if isinstance(ct, dict) and ct.get("key") in PORT_KEYS else None

    @staticmethod
    def ported(box: Box, key: str, where: str) -> None:
        """A port is read in the one protocol with ports the rule names before it."""
        proto = box.get("proto")
        if proto is None or proto.size() != 1 or proto.min() not in PORT_PROTOCOLS:
            raise Unread(CONDITION, where, f"`ct original {key}` without `meta l4proto` naming one "
                                           f"protocol with ports before it")

    def subscriber_set(self, right) -> tuple | None:
        if self.contract is None or not isinstance(right, str) or not right.startswith("@"):
            return None
        return self.contract.set_named(right[1:])

    def decode(self, m, where: str, box: Box, sides: list) -> None:
        # `ct state new` is a test of the state's bit, which nft writes `in`: a packet has one state
        ops = ("==", "!=", "in") if isinstance(m, dict) and m.get("left") == {"ct": {"key": "state"}} else ("==", "!=")
        if not isinstance(m, dict) or set(m) != {"op", "left", "right"} or m["op"] not in ops:
            raise Unread(MATCH, where, f"a match other than `==` or `!=` of a left and a right side: {m}")
        left, right, negated = m["left"], m["right"], m["op"] == "!="
        here = f"{where}.match.right"
        payload = left.get("payload") if isinstance(left, dict) and set(left) == {"payload"} else None
        if left == {"ct": {"key": "state"}}:
            self.known(CT_STATE, where)
            right = {"set": right} if isinstance(right, list) else right     # `ct state established,related`
            states = self.values(right, here, _state)
            restrict(box, CT_STATE, states.complement(0, len(CT_STATES) - 1) if negated else states)
        elif isinstance(left, dict) and set(left) == {"meta"} and left["meta"] in ({"key": k} for k in NAME_KEYS):
            field = self.known(NAME_KEYS[left["meta"]["key"]], where)
            names = self.names(right, here, field)
            restrict(box, field, names.complement(0, self.fields[field].hi) if negated else names)
        elif isinstance(payload, dict) and payload.get("field") == "type" and set(payload) == {"protocol", "field"} \
                and payload.get("protocol") in TYPE_HEADERS:
            protocol = TYPE_HEADERS[payload["protocol"]]
            self.known(ICMP_TYPE, where)
            types = self.values(right, here, partial(_icmp_type, protocol=protocol), 8)
            restrict(box, "proto", IntervalSet.point(protocol))      # nft's `icmp type` implies the protocol
            restrict(box, ICMP_TYPE, types.complement(0, 255) if negated else types)
        elif left == {"meta": {"key": "nfproto"}}:
            names = self.values(right, here, self.family_name)
            names = names.complement(0, 1) if negated else names
            both = IntervalSet.of(v for i, name in enumerate(FAMILIES) if i in names for v in FAMILIES[name].intervals)
            restrict(box, "src.ip", both)
            restrict(box, "dst.ip", both)
        elif left == {"meta": {"key": "l4proto"}}:
            protos = self.values(right, here, protocol_number, 8)
            restrict(box, "proto", protos.complement(0, 255) if negated else protos)
        elif left == {"meta": {"key": "hour"}}:
            restrict(box, "time.hour", self.hours(right, here, negated))
        elif left == {"meta": {"key": "day"}}:
            restrict(box, "time.day", self.days(right, here, negated))
        elif self.contract is not None and isinstance(left, dict) and set(left) == {"ct"} \
                and isinstance(left["ct"], dict) and left["ct"].get("dir") == "original" and len(left["ct"]) == 2:
            key = left["ct"].get("key")
            if key in ADDRESS_KEYS:
                self.address(key, right, here, negated, box, sides)
            elif key in PORT_KEYS:
                self.ported(box, key, where)
                ports = self.values(right, here, port_number, 16)
                restrict(box, PORT_KEYS[key], ports.complement(0, 65535) if negated else ports)
            else:
                raise Unread(MATCH, where, f"`ct original {key}` is not a field of the contract")
        elif self.contract is not None and isinstance(left, dict) and set(left) == {"&"} \
                and isinstance(left["&"], list) and len(left["&"]) == 2 and left["&"][0] == {"ct": {"key": "mark"}}:
            self.mark(left["&"][1], right, where, negated, box)
        else:
            raise Unread(MATCH, f"{where}.match.left", f"`{short(left)}` is not a field of the contract")

    def known(self, field: str, where: str) -> str:
        """A field the kernel tests, which the table must have (it has it when a rule tests it)."""
        if field not in self.fields:
            raise Unread(MATCH, f"{where}.match.left", f"the rules test `{field}`, which the table has not")
        return field

    def names(self, right, path: str, field: str) -> IntervalSet:
        """The values of the interface names a match lists (a name, a pattern `p*`, or a set of
        them): each must be one the table declares, so that its values are the names it matches."""
        if isinstance(right, str) and right.startswith("@"):
            elements, path = self.lookup(right, path)
            right = {"set": elements}
        items = right["set"] if isinstance(right, dict) and set(right) == {"set"} and isinstance(right["set"], list) \
            else [right]
        encoding = encoding_of(self.fields[field])
        out = []
        for k, item in enumerate(items):
            item = element_value(item)
            if not isinstance(item, str) or item not in encoding.value_of:
                where = path if item is right else f"{path}.set[{k}]"
                raise Unread(MATCH, where, f"`{short(item)}` is not one of the interface names and patterns "
                                           f"of `{field}` in the table")
            out.append(encoding.meaning(item))
        return IntervalSet.of(out)

    def address(self, key: str, right, here: str, negated: bool, box: Box, sides: list) -> None:
        field, family = ADDRESS_KEYS[key]
        whole = FAMILIES[family]
        restrict(box, "src.ip", whole)
        restrict(box, "dst.ip", whole)
        found = self.subscriber_set(right)
        if found is not None:
            if self.schema.field(found[0].field) is None:
                raise Unread(MATCH, here, f"`{right}` is not a subscriber set of the contract")
            subscribers, number = found
            if f"ipv{number}" != family:
                raise Unread(MATCH, here, f"`{right}` is a set of IPv{number} addresses, tested with `{key}`")
            values = subscribers.values
            if negated:
                values = values.complement(0, self.fields[subscribers.field].hi)
            restrict(box, subscribers.field, values)
            sides.append((here, SUBSCRIBER_SIDE[field], f"`ct original {key} {right}`"))
            return
        addresses = self.addresses(right, here, family)
        restrict(box, field, whole.difference(addresses) if negated else addresses)

    def addresses(self, right, here: str, family: str) -> IntervalSet:
        """Addresses of one family: a value, a prefix, a range or a set of them."""
        return self.values(right, here, lambda v, p: address_number(v, p, family),
                           lambda v, p: prefix_interval(v, p, family))

    def check_sides(self, box: Box, sides: list) -> None:
        """A subscriber set holds the subscriber's address on one direction only: the rule must
        pin that direction (on a rule meeting no flow nothing is checked)."""
        direction = box.get("direction", self.fields["direction"].domain).intervals
        for where, side, words in sides:
            if direction != ((side, side),):
                raise Unread(CONDITION, where, f"{words} holds the subscriber's address only on "
                                               f"{('uplink', 'downlink')[side]} flows, and the rule does not "
                                               f"test `ct mark & 0x800 == {side << 11}`")

    def mark(self, mask, right, where: str, negated: bool, box: Box) -> None:
        field = next((f for f in MARK_FIELDS if f.mask == mask and type(mask) is int and f.field in self.fields), None)
        if field is None:
            masks = ", ".join(f"0x{f.mask:x} {f.field}" for f in MARK_FIELDS if f.field in self.fields)
            shown = f"0x{mask:x}" if type(mask) is int else short(mask)
            raise Unread(MATCH, f"{where}.match.left", f"`ct mark & {shown}` is not one field of the connection "
                                                       f"mark ({masks})")
        marks = self.values(right, f"{where}.match.right", number, 32)
        if negated:
            marks = marks.complement(0, field.mask)
        if field.field == "app":
            labels = self.contract.labels
            values = IntervalSet.of((self.app_index[labels[n - 1]],) * 2
                                    for lo, hi in marks.intersect(IntervalSet.span(1, len(labels))).intervals
                                    for n in range(lo, hi + 1))
        else:
            values = IntervalSet.of((v, v) for v in range(self.fields[field.field].hi + 1) if v << field.shift in marks)
        restrict(box, field.field, values)

    def hours(self, right, here: str, negated: bool) -> IntervalSet:
        """The hours every second of which `meta hour` matches; an hour matched in part is an error."""
        seconds = self.values(right, here, second_of_day)
        if negated:
            seconds = seconds.complement(0, DAY - 1)
        hours = []
        for h in range(24):
            hour = IntervalSet.span(h * 3600, h * 3600 + 3599)
            part = seconds.intersect(hour)
            if part == hour:
                hours.append((h, h))
            elif not part.is_empty():
                shown = ", ".join(f"{_clock(lo)}-{_clock(hi)}" for lo, hi in part.intervals[:3])
                raise Unread(CONDITION, here, f"`meta hour` matches part of hour {h} ({shown}): a rule of the "
                                              f"table matches whole hours")
        return IntervalSet.of(hours)

    def days(self, right, here: str, negated: bool) -> IntervalSet:
        """The days `meta day` matches, in the order of `time.day` (nft counts from Sunday, 0)."""
        numbers = self.values(right, here, day_number)
        if negated:
            numbers = numbers.complement(0, 6)
        return IntervalSet.of(((n + 6) % 7,) * 2 for lo, hi in numbers.intervals for n in range(lo, hi + 1))

    def values(self, right, path: str, point, prefix=None) -> IntervalSet:
        """A value, range, prefix, anonymous set or named set of them as one set of integers.
        nft prints a range of integers that is aligned as a prefix (marks 4-5 as 4/31), so
        `prefix` is the number of bits of the value, or a function reading an address prefix."""
        if type(prefix) is int:
            prefix = partial(number_prefix, point=point, bits=prefix)
        if isinstance(right, str) and right.startswith("@"):
            elements, path = self.lookup(right, path)
            right = {"set": elements}
        if isinstance(right, dict) and set(right) == {"set"} and isinstance(right["set"], list):
            return IntervalSet.of(interval(element_value(item), f"{path}.set[{k}]", point, prefix)
                                  for k, item in enumerate(right["set"]))
        return IntervalSet.of([interval(right, path, point, prefix)])

    @staticmethod
    def family_name(value, path: str) -> int:
        if value not in FAMILIES:
            raise Unread(MATCH, path, f"`meta nfproto {short(value)}` is not ipv4 or ipv6")
        return list(FAMILIES).index(value)


def element_value(item):
    """A set element's value: nft wraps an element with options (a timeout, a counter, a
    comment) as `{"elem": {"val": VALUE, ...}}`."""
    if isinstance(item, dict) and set(item) == {"elem"} and isinstance(item["elem"], dict) and "val" in item["elem"]:
        return item["elem"]["val"]
    return item


def interval(item, path: str, point, prefix) -> tuple[int, int]:
    if isinstance(item, dict) and set(item) == {"range"} and isinstance(item["range"], list) and len(item["range"]) == 2:
        lo, hi = point(item["range"][0], f"{path}.range[0]"), point(item["range"][1], f"{path}.range[1]")
        if lo > hi:
            raise Unread(MATCH, path, f"range {short(item['range'])} is empty")
        return lo, hi
    if prefix is not None and isinstance(item, dict) and set(item) == {"prefix"}:
        return prefix(item["prefix"], f"{path}.prefix")
    return (point(item, path),) * 2


def number(value, path: str) -> int:
    if type(value) is not int or value < 0:
        raise Unread(MATCH, path, f"`{short(value)}` is not a number")
    return value


def protocol_number(value, path: str) -> int:
    """A protocol as nft prints it: a number, or its name in the protocol database (nft's own)."""
    if isinstance(value, str):
        try:
            value = socket.getprotobyname(value)
        except OSError:
            raise Unread(MATCH, path, f"`{value}` is not a protocol name of this host") from None
    if type(value) is not int or not 0 <= value <= 255:
        raise Unread(MATCH, path, f"`{short(value)}` is not a protocol")
    return value


def _state(value, path: str) -> int:
    if value not in CT_STATES:
        raise Unread(MATCH, path, f"`{short(value)}` is not a connection-tracking state ({', '.join(CT_STATES)})")
    return CT_STATES.index(value)


def _icmp_type(value, path: str, protocol: int) -> int:
    """A type as nft prints it: its name in the protocol's header, or a number."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return icmp.type_number(protocol, value)
        except ValueError_:
            pass
    raise Unread(MATCH, path, f"`{short(value)}` is not an {icmp.PROTOCOL_WORDS[protocol]} type")


def port_number(value, path: str) -> int:
    if isinstance(value, str) and (untyped := _UNTYPED.match(value)):
        value = int(untyped[1], 16)
    if type(value) is not int or not 0 <= value <= 65535:
        raise Unread(MATCH, path, f"`{short(value)}` is not a port")
    return value


def second_of_day(value, path: str) -> int:
    """`HH:MM` or `HH:MM:SS` as the second of the day."""
    found = _HOUR.match(value) if isinstance(value, str) else None
    if found is None or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3] or 0) > 59:
        raise Unread(MATCH, path, f"`{short(value)}` is not a time of day HH:MM or HH:MM:SS")
    return int(found[1]) * 3600 + int(found[2]) * 60 + int(found[3] or 0)


def day_number(value, path: str) -> int:
    """A day as nft prints it (`"Saturday"`), as nft's number for it: Sunday 0 .. Saturday 6."""
    if value not in _NFT_DAYS:
        raise Unread(MATCH, path, f"`{short(value)}` is not a day of the week as nft names it (Sunday .. Saturday)")
    return _NFT_DAYS.index(value)


def _clock(second: int) -> str:
    return f"{second // 3600:02}:{second // 60 % 60:02}:{second % 60:02}"


def number_prefix(prefix, path: str, point, bits: int) -> tuple[int, int]:
    if not isinstance(prefix, dict) or set(prefix) != {"addr", "len"} or type(prefix["len"]) is not int \
            or not 0 <= prefix["len"] <= bits:
        raise Unread(MATCH, path, f"`{short(prefix)}` is not a prefix of a {bits}-bit value")
    lo, size = point(prefix["addr"], f"{path}.addr"), 1 << (bits - prefix["len"])
    if lo % size:
        raise Unread(MATCH, path, f"`{short(prefix)}` has bits set beyond its length")
    return lo, lo + size - 1


def address_number(value, path: str, family: str) -> int:
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or f"ipv{address.version}" != family:
        raise Unread(MATCH, path, f"`{short(value)}` is not an {family[:2].upper()}{family[2:]} address")
    return int(address) + (IPV6_BASE if address.version == 6 else 0)


def prefix_interval(prefix, path: str, family: str) -> tuple[int, int]:
    if not isinstance(prefix, dict) or set(prefix) != {"addr", "len"} or type(prefix["len"]) is not int:
        raise Unread(MATCH, path, f"`{short(prefix)}` is not a prefix")
    address_number(prefix["addr"], f"{path}.addr", family)
    try:
        network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")
    except ValueError as err:
        raise Unread(MATCH, path, f"`{prefix['addr']}/{prefix['len']}` is not a prefix: {err}") from None
    base = IPV6_BASE if network.version == 6 else 0
    return base + int(network.network_address), base + int(network.broadcast_address)


# ----- the contract's statements: redirect and throttle ------------------------------------

def redirect_mark(mangle, where: str, targets: tuple[str, ...]) -> int:
    """The redirect target's number of `meta mark set N` (the contract's packet mark)."""
    value = mangle.get("value") if isinstance(mangle, dict) else None
    if not isinstance(mangle, dict) or set(mangle) != {"key", "value"} or mangle["key"] != {"meta": {"key": "mark"}}:
        raise Unread(STATEMENT, where, f"`{short(mangle)}` sets something other than the packet mark")
    if type(value) is not int or not 1 <= value <= len(targets):
        raise Unread(STATEMENT, where, f"packet mark {short(value)} is not a redirect target of the contract "
                                       f"(1..{len(targets)})")
    return value


def verdicts(rule: dict) -> list:
    """A rule's statements but its counters."""
    return [e for e in rule.get("expr", ()) if not (isinstance(e, dict) and "counter" in e)]


def throttle_rate(target: str, chain_path: str, rules: list[tuple[str, dict]]) -> int:
    """The rate in bps of a throttle chain `target` (at `chain_path`, with these rules and their
    paths): [update @TARGET_flows {ct id limit rate over R bytes/second} drop], [accept]."""
    shape = [verdicts(rule) for _, rule in rules]
    if len(shape) != 2 or shape[1] != [{"accept": None}] or len(shape[0]) != 2 or shape[0][1] != {"drop": None}:
        raise Unread(STATEMENT, chain_path, f"chain `{target}` is not a throttle chain (update a limit, drop; accept)")
    update = shape[0][0].get("set")
    here = f"{rules[0][0]}.expr[0]"
    limit = None
    if isinstance(update, dict) and set(update) == {"op", "elem", "set", "stmt"} and update["op"] == "update" \
            and update["elem"] == {"ct": {"key": "id"}} and update["set"] == f"@{target}_flows" \
            and isinstance(update["stmt"], list) and len(update["stmt"]) == 1 and isinstance(update["stmt"][0], dict):
        limit = update["stmt"][0].get("limit")
    if not isinstance(limit, dict) or not set(limit) <= {"rate", "burst", "per", "inv", "rate_unit", "burst_unit"} \
            or limit.get("inv") is not True or limit.get("per") != "second" or limit.get("burst", 0) != 0 \
            or limit.get("rate_unit", "bytes") not in RATE_UNITS or limit.get("burst_unit", "bytes") != "bytes" \
            or type(limit.get("rate")) is not int or limit["rate"] <= 0:
        raise Unread(STATEMENT, here, f"chain `{target}` does not police each flow to a rate over bytes per "
                                      f"second with no burst (`update @{target}_flows {{ ct id limit rate "
                                      f"over R bytes/second }}`)")
    rate = limit["rate"] * RATE_UNITS[limit.get("rate_unit", "bytes")] * 8
    if rate > RATE_MAX:
        raise Unread(STATEMENT, here, f"chain `{target}` polices to {rate} bps, above the 1Tbps a rule can have")
    return rate
