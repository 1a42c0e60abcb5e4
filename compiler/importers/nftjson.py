"""The kernel's copy of the rules (`nft -j list table inet NAME`) read back into a rule table
under the engine contract (docs/enforcement.md), so that the kernel check proves what the
kernel holds, not what dpipolicy meant to write.

Reading is exact or it fails: every match and statement of a rule must be one the contract
defines, with a value read whole; anything else (an unknown key or statement, a jump, a
partial hour, a subscriber set on the wrong side) is an E51x error at its JSON path, never a
rule read in part.
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from functools import partial

from dpipolicy.compiler.backends.contract import DAY_NAMES, FAMILY_SPACE, MARK_FIELDS, PORT_PROTOCOLS, Contract
from dpipolicy.compiler.boxes import Box, normalized
from dpipolicy.compiler.table import MatchRule, RuleTable
from dpipolicy.dsl import icmp
from dpipolicy.dsl.diagnostics import Diagnostic, DiagnosticError
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.schema import CT_STATE, CT_STATES, ICMP_TYPE, IFACE_IN, IFACE_OUT, IPV6_BASE, RATE_MAX, Schema
from dpipolicy.dsl.typed import Action, Origin
from dpipolicy.dsl.values import ValueError_

SHAPE, MATCH, CONDITION, STATEMENT = "E510", "E511", "E512", "E513"

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
_COMMENT = re.compile(r"^dpipolicy rule (?P<name>\S+)(?: #(?P<index>\d+))?$")
_COUNTER = "counter"


class _Unread(Exception):
    """One part of the kernel's JSON that is not understood: (code, JSON path, message)."""

    def __init__(self, code: str, path: str, message: str):
        super().__init__(message)
        self.code, self.path, self.message = code, path, message


def read_kernel_table(ruleset: dict, contract: Contract, schema: Schema, source: str = "kernel") -> RuleTable:
    """The contract's table in `ruleset` (`nft -j list table` or `list ruleset`) as a rule table
    over `schema`. Raises DiagnosticError with every rule that cannot be read exactly."""
    return read_kernel_rules(ruleset, contract, schema, source)[0]


def read_kernel_rules(ruleset: dict, contract: Contract, schema: Schema,
                      source: str = "kernel") -> tuple[RuleTable, tuple[int | str | None, ...]]:
    """The table, and each of its rules' tag: the index of the match rule its comment
    (`dpipolicy rule NAME #INDEX`) names, `default`, or None. Tags only group the rules for a
    quicker proof (verifier/kernel.py); nothing is taken on their word."""
    reader = _Reader(contract, schema, source)
    try:
        reader.index(ruleset)
        reader.check_base_chains()
    except _Unread as err:
        raise DiagnosticError([reader.diagnostic(err)]) from None
    return reader.table(), tuple(reader.tags)


def _tag(rule: dict) -> int | str | None:
    found = _COMMENT.match(rule.get("comment") or "")
    if found is None:
        return None
    return int(found["index"]) if found["index"] is not None else found["name"]


def _only_key(obj, path: str, code: str, what: str) -> str:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise _Unread(code, path, f"{what} is not an object with one key")
    return next(iter(obj))


class _Reader:
    def __init__(self, contract: Contract, schema: Schema, source: str):
        self.contract, self.schema, self.source = contract, schema, source
        self.fields = {f.name: f for f in schema.flow_fields}
        self.app_index = schema.member_index("app")
        self.chains: dict[str, tuple[str, dict]] = {}       # name -> (path, chain object)
        self.rules: dict[str, list[tuple[str, dict]]] = {}  # chain name -> [(path, rule object)]
        self.throttles: dict[str, int] = {}
        self.sets: dict[str, tuple[str, dict]] = {}         # name -> (path, set object)
        self.tags: list[int | str | None] = []
        self.decoded: dict[str, Box] = {}                   # match text -> its restrictions (match)

    def diagnostic(self, err: _Unread) -> Diagnostic:
        return Diagnostic(err.code, err.message, location_text=f"{self.source}: {err.path}")

    def index(self, ruleset) -> None:
        objects = ruleset.get("nftables") if isinstance(ruleset, dict) else None
        if not isinstance(objects, list):
            raise _Unread(SHAPE, "nftables", "not the JSON of `nft -j list`: no `nftables` list")
        for i, obj in enumerate(objects):
            path = f"nftables[{i}]"
            kind = _only_key(obj, path, SHAPE, "an entry")
            body = obj[kind]
            if kind not in ("chain", "rule", "set") or not isinstance(body, dict) or \
                    (body.get("family"), body.get("table")) != ("inet", self.contract.table):
                continue
            if kind == "set":
                self.sets[body.get("name")] = (path, body)
            elif kind == "chain":
                self.chains[body.get("name")] = (path, body)
                self.rules.setdefault(body.get("name"), [])
            else:
                self.rules.setdefault(body.get("chain"), []).append((f"{path}.rule", body))
        if self.contract.chain not in self.chains:
            raise _Unread(SHAPE, "nftables", f"no chain `{self.contract.chain}` in table inet {self.contract.table}")

    def check_base_chains(self) -> None:
        """Every base chain only jumps to the rules' chain and accepts what comes back: then a
        flow no rule takes is allowed."""
        if self.contract.base_chain not in self.chains:
            raise _Unread(SHAPE, "nftables", f"no base chain `{self.contract.base_chain}` in table inet "
                                             f"{self.contract.table}")
        jump = [{"jump": {"target": self.contract.chain}}]
        for name, (path, chain) in self.chains.items():
            if "hook" not in chain:
                continue
            if chain.get("policy") != "accept":
                raise _Unread(SHAPE, path, f"base chain `{name}` has policy {chain.get('policy')}, not accept")
            if [self._verdicts(rule) for _, rule in self.rules[name]] != [jump]:
                raise _Unread(SHAPE, path, f"base chain `{name}` does more than `jump {self.contract.chain}`")

    @staticmethod
    def _verdicts(rule: dict) -> list:
        return [e for e in rule.get("expr", ()) if not (isinstance(e, dict) and _COUNTER in e)]

    def table(self) -> RuleTable:
        decoded, errors = [], []
        for path, rule in self.rules[self.contract.chain]:
            try:
                decoded.append(self.rule(path, rule))
            except _Unread as err:
                errors.append(self.diagnostic(err))
        if errors:
            raise DiagnosticError(errors)
        default = Action("allow")           # a flow falling off the chain returns to the base chain's accept
        if decoded and decoded[-1][0] == {}:
            default = decoded.pop()[1]
        rules = []
        for box, action, origin, tag in decoded:
            if box is not None:
                matches = tuple((f.name, box[f.name]) for f in self.schema.flow_fields if f.name in box)
                rules.append(MatchRule(len(rules), matches, action, origin))
                self.tags.append(tag)
        return RuleTable(None, None, self.schema, tuple(rules), default)

    def rule(self, path: str, rule: dict) -> tuple[Box | None, Action, Origin, int | str | None]:
        """A kernel rule's box (None when it meets no flow), action, origin and tag."""
        expr = rule.get("expr")
        if not isinstance(expr, list):
            raise _Unread(SHAPE, path, "a rule without an `expr` list")
        box: Box = {}
        sides: list[tuple[str, int, str]] = []      # (path, direction, words) of each subscriber set test
        log, mark, action = False, None, None
        for j, e in enumerate(expr):
            where = f"{path}.expr[{j}]"
            key = _only_key(e, where, STATEMENT, "a statement")
            if action is not None:
                raise _Unread(STATEMENT, where, f"`{key}` after the rule's verdict")
            if key == "match":
                if log or mark is not None:
                    raise _Unread(STATEMENT, where, "a match after a statement: it would act on part of the rule's flows")
                self.match(e["match"], where, box, sides)
            elif key == _COUNTER:
                continue
            elif key == "log":
                if not (e["log"] is None or isinstance(e["log"], dict) and set(e["log"]) <= {"prefix", "level"}):
                    raise _Unread(STATEMENT, where, f"`log` with options other than prefix and level: {_short(e['log'])}")
                log = True
            elif key == "mangle":
                mark = self.redirect_mark(e["mangle"], where)
            elif key == "accept" and e[key] is None:
                action = Action("allow") if mark is None else \
                    Action("redirect", target=self.contract.redirect_targets[mark - 1])
            elif mark is not None:
                raise _Unread(STATEMENT, where, f"`meta mark set` followed by `{key}`, not accept")
            elif key == "drop" and e[key] is None:
                action = Action("block")
            elif key == "reject":
                action = self.reset(e["reject"], where, box)
            elif key == "goto" and isinstance(e[key], dict):
                action = Action("throttle", rate=self.throttle(e[key].get("target"), where))
            else:
                raise _Unread(STATEMENT, where, f"statement or verdict `{key}` is not one the contract defines")
        if action is None:
            raise _Unread(STATEMENT, path, "a rule without a verdict: the chain would go on with the flow")
        empty = any(v.is_empty() for v in box.values())
        if not empty:
            direction = box.get("direction", self.fields["direction"].domain)
            for where, side, words in sides:
                if direction != IntervalSet.point(side):
                    raise _Unread(CONDITION, where, f"{words} holds the subscriber's address only on "
                                                    f"{('uplink', 'downlink')[side]} flows, and the rule does not "
                                                    f"test `ct mark & 0x800 == {side << 11}`")
        origin = self.origin(rule)
        return ((None if empty else normalized(box, self.fields)), Action(action.kind, action.rate, action.target, log),
                origin, _tag(rule))

    def origin(self, rule: dict) -> Origin:
        handle = rule.get("handle")
        found = _COMMENT.match(rule.get("comment") or "")
        name = found["name"] if found else f"handle {handle}"
        return Origin(name, None, f"{self.source}: chain {self.contract.chain}, handle {handle}")

    # matches

    def match(self, m, where: str, box: Box, sides: list) -> None:
        """Restrict `box` by one match. A match that reads nothing of the rule around it (all
        but ports, which need the rule's protocol, and subscriber sets, whose side the rule's
        direction settles) is decoded once per distinct text: 48,725 kernel rules of the 10k
        benchmark hold far fewer distinct matches."""
        key = self.standalone(m)
        if key is None:
            self.decode(m, where, box, sides)
            return
        part = self.decoded.get(key)
        if part is None:
            part = {}
            self.decode(m, where, part, [])
            self.decoded[key] = part
        for name, values in part.items():
            _restrict(box, name, values)

    def standalone(self, m) -> str | None:
        """The text of a match that reads nothing of its rule, else None."""
        if not isinstance(m, dict) or not isinstance(m.get("left"), dict):
            return None
        left, right = m["left"], m.get("right")
        ct = left.get("ct")
        if isinstance(ct, dict) and ct.get("key") in PORT_KEYS:
            return None
        if isinstance(right, str) and right.startswith("@") and self.contract.set_named(right[1:]) is not None:
            return None
        return json.dumps(m)

    def decode(self, m, where: str, box: Box, sides: list) -> None:
        # `ct state new` is a test of the state's bit, which nft writes `in`: a packet has one state
        ops = ("==", "!=", "in") if isinstance(m, dict) and m.get("left") == {"ct": {"key": "state"}} else ("==", "!=")
        if not isinstance(m, dict) or set(m) != {"op", "left", "right"} or m["op"] not in ops:
            raise _Unread(MATCH, where, f"a match other than `==` or `!=` of a left and a right side: {m}")
        left, right, negated = m["left"], m["right"], m["op"] == "!="
        here = f"{where}.match.right"
        if left == {"ct": {"key": "state"}}:
            self.known(CT_STATE, where)
            states = self.values(right, here, _state)
            _restrict(box, CT_STATE, states.complement(0, len(CT_STATES) - 1) if negated else states)
            return
        if isinstance(left, dict) and set(left) == {"meta"} and left["meta"] in ({"key": k} for k in NAME_KEYS):
            field = self.known(NAME_KEYS[left["meta"]["key"]], where)
            names = self.names(right, here, field)
            _restrict(box, field, names.complement(0, self.fields[field].hi) if negated else names)
            return
        payload = left.get("payload") if isinstance(left, dict) and set(left) == {"payload"} else None
        if isinstance(payload, dict) and payload.get("field") == "type" and set(payload) == {"protocol", "field"} \
                and payload.get("protocol") in TYPE_HEADERS:
            protocol = TYPE_HEADERS[payload["protocol"]]
            self.known(ICMP_TYPE, where)
            types = self.values(right, here, partial(_icmp_type, protocol=protocol), 8)
            _restrict(box, "proto", IntervalSet.point(protocol))      # nft's `icmp type` implies the protocol
            _restrict(box, ICMP_TYPE, types.complement(0, 255) if negated else types)
            return
        if left == {"meta": {"key": "nfproto"}}:
            names = self.values(right, here, self.family_name)
            names = names.complement(0, 1) if negated else names
            both = IntervalSet.of(v for i, name in enumerate(FAMILIES) if i in names for v in FAMILIES[name].intervals)
            _restrict(box, "src.ip", both)
            _restrict(box, "dst.ip", both)
        elif left == {"meta": {"key": "l4proto"}}:
            protos = self.values(right, here, _protocol, 8)
            _restrict(box, "proto", protos.complement(0, 255) if negated else protos)
        elif left == {"meta": {"key": "hour"}}:
            _restrict(box, "time.hour", self.hours(right, here, negated))
        elif left == {"meta": {"key": "day"}}:
            _restrict(box, "time.day", self.days(right, here, negated))
        elif isinstance(left, dict) and set(left) == {"ct"} and isinstance(left["ct"], dict) \
                and left["ct"].get("dir") == "original" and len(left["ct"]) == 2:
            key = left["ct"].get("key")
            if key in ADDRESS_KEYS:
                self.address(key, right, here, negated, box, sides)
            elif key in PORT_KEYS:
                proto = box.get("proto")
                if proto is None or proto.size() != 1 or proto.min() not in PORT_PROTOCOLS:
                    raise _Unread(CONDITION, where, f"`ct original {key}` without `meta l4proto` naming one "
                                                    f"protocol with ports before it")
                ports = self.values(right, here, _port, 16)
                _restrict(box, PORT_KEYS[key], ports.complement(0, 65535) if negated else ports)
            else:
                raise _Unread(MATCH, where, f"`ct original {key}` is not a field of the contract")
        elif isinstance(left, dict) and set(left) == {"&"} and isinstance(left["&"], list) \
                and len(left["&"]) == 2 and left["&"][0] == {"ct": {"key": "mark"}}:
            self.mark(left["&"][1], right, where, negated, box)
        else:
            raise _Unread(MATCH, f"{where}.match.left", f"`{_short(left)}` is not a field of the contract")

    def known(self, field: str, where: str) -> str:
        """A field the kernel tests, which the table must have (it has it when a rule tests it)."""
        if field not in self.fields:
            raise _Unread(MATCH, f"{where}.match.left", f"the rules test `{field}`, which the table has not")
        return field

    def names(self, right, path: str, field: str) -> IntervalSet:
        """The values of the interface names a match lists (a name, a pattern `p*`, or a set of
        them): each must be one the table declares, so that its values are the names it matches."""
        if isinstance(right, str) and right.startswith("@"):
            right, path = self.constant_set(right, path)
        items = right["set"] if isinstance(right, dict) and set(right) == {"set"} and isinstance(right["set"], list) \
            else [right]
        encoding = encoding_of(self.fields[field])
        out = []
        for k, item in enumerate(items):
            if not isinstance(item, str) or item not in encoding.value_of:
                where = path if item is right else f"{path}.set[{k}]"
                raise _Unread(MATCH, where, f"`{_short(item)}` is not one of the interface names and patterns "
                                            f"of `{field}` in the table")
            out.append(encoding.meaning(item))
        return IntervalSet.of(out)

    def address(self, key: str, right, here: str, negated: bool, box: Box, sides: list) -> None:
        field, family = ADDRESS_KEYS[key]
        whole = FAMILIES[family]
        _restrict(box, "src.ip", whole)
        _restrict(box, "dst.ip", whole)
        found = self.contract.set_named(right[1:]) if isinstance(right, str) and right.startswith("@") else None
        if found is not None:
            if self.schema.field(found[0].field) is None:
                raise _Unread(MATCH, here, f"`{right}` is not a subscriber set of the contract")
            subscribers, number = found
            if f"ipv{number}" != family:
                raise _Unread(MATCH, here, f"`{right}` is a set of IPv{number} addresses, tested with `{key}`")
            values = subscribers.values
            if negated:
                values = values.complement(0, self.fields[subscribers.field].hi)
            _restrict(box, subscribers.field, values)
            sides.append((here, SUBSCRIBER_SIDE[field], f"`ct original {key} {right}`"))
            return
        addresses = self.values(right, here, lambda v, p: _address(v, p, family), lambda v, p: _prefix(v, p, family))
        _restrict(box, field, whole.difference(addresses) if negated else addresses)

    def mark(self, mask, right, where: str, negated: bool, box: Box) -> None:
        field = next((f for f in MARK_FIELDS if f.mask == mask and type(mask) is int and f.field in self.fields), None)
        if field is None:
            masks = ", ".join(f"0x{f.mask:x} {f.field}" for f in MARK_FIELDS if f.field in self.fields)
            shown = f"0x{mask:x}" if type(mask) is int else _short(mask)
            raise _Unread(MATCH, f"{where}.match.left", f"`ct mark & {shown}` is not one field of the connection "
                                                        f"mark ({masks})")
        marks = self.values(right, f"{where}.match.right", _number, 32)
        if negated:
            marks = marks.complement(0, field.mask)
        if field.field == "app":
            labels = self.contract.labels
            values = IntervalSet.of((self.app_index[labels[n - 1]],) * 2
                                    for lo, hi in marks.intersect(IntervalSet.span(1, len(labels))).intervals
                                    for n in range(lo, hi + 1))
        else:
            values = IntervalSet.of((v, v) for v in range(self.fields[field.field].hi + 1) if v << field.shift in marks)
        _restrict(box, field.field, values)

    def hours(self, right, here: str, negated: bool) -> IntervalSet:
        """The hours every second of which `meta hour` matches; an hour matched in part is an error."""
        seconds = self.values(right, here, _second)
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
                raise _Unread(CONDITION, here, f"`meta hour` matches part of hour {h} ({shown}): a rule of the "
                                               f"table matches whole hours")
        return IntervalSet.of(hours)

    def days(self, right, here: str, negated: bool) -> IntervalSet:
        """The days `meta day` matches, in the order of `time.day` (nft counts from Sunday, 0)."""
        numbers = self.values(right, here, _day)
        if negated:
            numbers = numbers.complement(0, 6)
        return IntervalSet.of(((n + 6) % 7,) * 2 for lo, hi in numbers.intervals for n in range(lo, hi + 1))

    def values(self, right, path: str, point, prefix=None) -> IntervalSet:
        """A value, range, prefix or anonymous set of them as one set of integers. nft prints a
        range of integers that is aligned as a prefix (marks 4-5 as 4/31), so `prefix` is
        the number of bits of the value, or a function reading an address prefix."""
        if type(prefix) is int:
            prefix = partial(_number_prefix, point=point, bits=prefix)
        if isinstance(right, str) and right.startswith("@"):
            right, path = self.constant_set(right, path)
        if isinstance(right, dict) and set(right) == {"set"} and isinstance(right["set"], list):
            return IntervalSet.of(_interval(item, f"{path}.set[{k}]", point, prefix) for k, item in enumerate(right["set"]))
        return IntervalSet.of([_interval(right, path, point, prefix)])

    def constant_set(self, name: str, path: str) -> tuple[dict, str]:
        """A named set of constants (`@values_3`) as the anonymous set of its elements: one the
        rules cannot change (no timeout, no dynamic updates)."""
        found = self.sets.get(name[1:])
        if found is None or self.contract.set_named(name[1:]) is not None:
            raise _Unread(MATCH, path, f"`{name}` is not a set of constants of table inet {self.contract.table}")
        where, body = found
        if not set(body.get("flags", ())) <= {"interval", "constant"} or "timeout" in body:
            raise _Unread(MATCH, path, f"`{name}` is not a subscriber set of the contract, and it may change "
                                       f"while loaded (flags {', '.join(body.get('flags', ()))}): only sets of "
                                       f"constants are read")
        return {"set": body.get("elem", [])}, where

    @staticmethod
    def family_name(value, path: str) -> int:
        if value not in FAMILIES:
            raise _Unread(MATCH, path, f"`meta nfproto {_short(value)}` is not ipv4 or ipv6")
        return list(FAMILIES).index(value)

    # statements

    def redirect_mark(self, mangle, where: str) -> int:
        value = mangle.get("value") if isinstance(mangle, dict) else None
        targets = self.contract.redirect_targets
        if not isinstance(mangle, dict) or set(mangle) != {"key", "value"} or mangle["key"] != {"meta": {"key": "mark"}}:
            raise _Unread(STATEMENT, where, f"`{_short(mangle)}` sets something other than the packet mark")
        if type(value) is not int or not 1 <= value <= len(targets):
            raise _Unread(STATEMENT, where, f"packet mark {_short(value)} is not a redirect target of the contract "
                                            f"(1..{len(targets)})")
        return value

    def reset(self, reject, where: str, box: Box) -> Action:
        """`reject with tcp reset` on TCP flows, `reject with icmpx admin-prohibited` on others."""
        proto = box.get("proto", self.fields["proto"].domain)
        if reject == {"type": "tcp reset"}:
            if not proto.issubset(IntervalSet.point(6)):
                raise _Unread(STATEMENT, where, "`reject with tcp reset` on a rule that does not test `meta l4proto tcp`")
        elif reject == {"type": "icmpx", "expr": "admin-prohibited"}:
            if 6 in proto:
                raise _Unread(STATEMENT, where, "`reject with icmpx admin-prohibited` on a rule that matches TCP: "
                                                "the contract resets TCP with `tcp reset`")
        else:
            raise _Unread(STATEMENT, where, f"`reject` {_short(reject)} is not tcp reset or icmpx admin-prohibited")
        return Action("reset")

    def throttle(self, target, where: str) -> int:
        """The rate in bps of a throttle chain: [update @TARGET_flows {ct id limit rate over R} drop], [accept]."""
        if target not in self.throttles:
            self.throttles[target] = self._throttle_rate(target, where)
        return self.throttles[target]

    def _throttle_rate(self, target, where: str) -> int:
        if target not in self.chains:
            raise _Unread(STATEMENT, where, f"`goto {_short(target)}`: no such chain")
        path, _ = self.chains[target]
        rules = self.rules[target]
        shape = [self._verdicts(rule) for _, rule in rules]
        if len(shape) != 2 or shape[1] != [{"accept": None}] or len(shape[0]) != 2 or shape[0][1] != {"drop": None}:
            raise _Unread(STATEMENT, path, f"chain `{target}` is not a throttle chain (update a limit, drop; accept)")
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
            raise _Unread(STATEMENT, here, f"chain `{target}` does not police each flow to a rate over bytes per "
                                           f"second with no burst (`update @{target}_flows {{ ct id limit rate "
                                           f"over R bytes/second }}`)")
        rate = limit["rate"] * RATE_UNITS[limit.get("rate_unit", "bytes")] * 8
        if rate > RATE_MAX:
            raise _Unread(STATEMENT, here, f"chain `{target}` polices to {rate} bps, above the 1Tbps a rule can have")
        return rate


def _restrict(box: Box, name: str, values: IntervalSet) -> None:
    box[name] = box[name].intersect(values) if name in box else values


def _interval(item, path: str, point, prefix) -> tuple[int, int]:
    if isinstance(item, dict) and set(item) == {"range"} and isinstance(item["range"], list) and len(item["range"]) == 2:
        lo, hi = point(item["range"][0], f"{path}.range[0]"), point(item["range"][1], f"{path}.range[1]")
        if lo > hi:
            raise _Unread(MATCH, path, f"range {_short(item['range'])} is empty")
        return lo, hi
    if prefix is not None and isinstance(item, dict) and set(item) == {"prefix"}:
        return prefix(item["prefix"], f"{path}.prefix")
    return (point(item, path),) * 2


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value, path: str) -> int:
    if type(value) is not int or value < 0:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a number")
    return value


def _protocol(value, path: str) -> int:
    """A protocol as nft prints it: a number, or its name in the protocol database (nft's own)."""
    if isinstance(value, str):
        try:
            value = socket.getprotobyname(value)
        except OSError:
            raise _Unread(MATCH, path, f"`{value}` is not a protocol name of this host") from None
    if type(value) is not int or not 0 <= value <= 255:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a protocol")
    return value


def _state(value, path: str) -> int:
    if value not in CT_STATES:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a connection-tracking state ({', '.join(CT_STATES)})")
    return CT_STATES.index(value)


def _icmp_type(value, path: str, protocol: int) -> int:
    """A type as nft prints it: its name in the protocol's header, or a number."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return icmp.type_number(protocol, value)
        except ValueError_:
            pass
    raise _Unread(MATCH, path, f"`{_short(value)}` is not an {icmp.PROTOCOL_WORDS[protocol]} type")


def _port(value, path: str) -> int:
    if isinstance(value, str) and (untyped := _UNTYPED.match(value)):
        value = int(untyped[1], 16)
    if type(value) is not int or not 0 <= value <= 65535:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a port")
    return value


def _second(value, path: str) -> int:
    """`HH:MM` or `HH:MM:SS` as the second of the day."""
    found = _HOUR.match(value) if isinstance(value, str) else None
    if found is None or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3] or 0) > 59:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a time of day HH:MM or HH:MM:SS")
    return int(found[1]) * 3600 + int(found[2]) * 60 + int(found[3] or 0)


def _day(value, path: str) -> int:
    """A day as nft prints it (`"Saturday"`), as nft's number for it: Sunday 0 .. Saturday 6."""
    if value not in _NFT_DAYS:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not a day of the week as nft names it (Sunday .. Saturday)")
    return _NFT_DAYS.index(value)


def _clock(second: int) -> str:
    return f"{second // 3600:02}:{second // 60 % 60:02}:{second % 60:02}"


def _number_prefix(prefix, path: str, point, bits: int) -> tuple[int, int]:
    if not isinstance(prefix, dict) or set(prefix) != {"addr", "len"} or type(prefix["len"]) is not int \
            or not 0 <= prefix["len"] <= bits:
        raise _Unread(MATCH, path, f"`{_short(prefix)}` is not a prefix of a {bits}-bit value")
    lo, size = point(prefix["addr"], f"{path}.addr"), 1 << (bits - prefix["len"])
    if lo % size:
        raise _Unread(MATCH, path, f"`{_short(prefix)}` has bits set beyond its length")
    return lo, lo + size - 1


def _address(value, path: str, family: str) -> int:
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or f"ipv{address.version}" != family:
        raise _Unread(MATCH, path, f"`{_short(value)}` is not an {family[:2].upper()}{family[2:]} address")
    return int(address) + (IPV6_BASE if address.version == 6 else 0)


def _prefix(prefix, path: str, family: str) -> tuple[int, int]:
    if not isinstance(prefix, dict) or set(prefix) != {"addr", "len"} or type(prefix["len"]) is not int:
        raise _Unread(MATCH, path, f"`{_short(prefix)}` is not a prefix")
    _address(prefix["addr"], f"{path}.addr", family)
    try:
        network = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}")
    except ValueError as err:
        raise _Unread(MATCH, path, f"`{prefix['addr']}/{prefix['len']}` is not a prefix: {err}") from None
    base = IPV6_BASE if network.version == 6 else 0
    return base + int(network.network_address), base + int(network.broadcast_address)
