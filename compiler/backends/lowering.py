"""The shared lowering of match boxes to the tests and verdicts a packet engine evaluates.

A box speaks of flows; an engine tests one address family, one transport protocol (for its
ports or ICMP type), sets of subscriber addresses on one side of the connection, and
interface names by literal. So one match rule becomes consecutive kernel rules, each a
conjunction of `Test`s ending in the rule's `Verdict`, whose union over the flows a kernel sees
(docs/enforcement.md) is the box. A target renders them in its own syntax; nothing here knows
any syntax.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dpipolicy.dsl.diagnostics import Diagnostic
from dpipolicy.dsl.icmp import ICMP, ICMPV6
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.schema import ADDON_PREFIX, CT_STATE, ICMP_TYPE, INTERFACE_FIELDS, SNI, Schema
from dpipolicy.dsl.typed import Action, Origin
from dpipolicy.dsl.source import Span

from ..table import MatchRule
from .contract import FAMILY_SPACE, MARK_FIELDS, PORT_PROTOCOLS, TCP, Approximation, Contract, SubscriberSet

PORTED = IntervalSet.of((p, p) for p in PORT_PROTOCOLS)
ALL_PROTOCOLS = IntervalSet.span(0, 255)
PORT_DOMAIN = IntervalSet.span(0, 65535)
TYPE_DOMAIN = IntervalSet.span(0, 255)
# The fields of a transport header and the protocols that have them: the kernel reads each from
# one protocol's header at a time; under the contract every other protocol's value is 0.
HEADER_FIELDS = {"src.port": tuple(PORT_PROTOCOLS), "dst.port": tuple(PORT_PROTOCOLS), ICMP_TYPE: (ICMP, ICMPV6)}
TYPE_KEYS = {ICMP: "icmp.type", ICMPV6: "icmpv6.type"}      # the test of an ICMP type, by protocol
_SUBSCRIBER_FIELDS = ("subscriber.plan", "subscriber.zone", "subscriber.apn", "subscriber.roaming", "subscriber.rat",
                      "subscriber.usage")
# The one-bit fields of the mark a rule tests as they are (`direction` also picks the subscriber's side).
_FLAGS = tuple(m.field for m in MARK_FIELDS if m.field not in ("app", "direction", SNI))   # bits tested as they are
DAY_DOMAIN = IntervalSet.span(0, 6)


def _compact(key: str, values: IntervalSet, domain: IntervalSet) -> "Test":
    """`key in values`, or `key not in` the rest of `domain` when that is fewer intervals."""
    others = domain.difference(values)
    if len(others.intervals) < len(values.intervals):
        return Test(key, others, negated=True)
    return Test(key, values)


def _uses_sets(box) -> bool:
    return any(f in box for f in _SUBSCRIBER_FIELDS) or any(f.startswith(ADDON_PREFIX) for f in box)


def _outermost(encoding, values: tuple[int, ...]) -> list[int]:
    """The values under no other of them: the rest add nothing to a union of their literals (and
    nft refuses a set of names whose patterns overlap)."""
    def above(v: int):
        while (v := encoding.parent(v)) not in (None, encoding.OTHER):
            yield v
    return [v for v in values if not any(a in values for a in above(v))]


@dataclass(frozen=True, slots=True)
class Test:
    """One test of a kernel rule. `key` is `family`, `proto`, `src.ip`/`dst.ip` (addresses of
    the rule's family, in the shared address dimension), `src.port`/`dst.port`, `icmp.type` or
    `icmpv6.type` (the type of an ICMP or ICMPv6 header), `ct.state`, `hour`, `day` (the days of
    `time.day`, Monday 0), a mark field (`app` as label numbers, `tls`, `direction`,
    `network.congested`, `flow.tethered`), `iface.in`/`iface.out` (the interface's name matches
    one of `names`: names, and patterns `p*`) or `subscriber` (membership of the flow's
    subscriber address in the named set `set_name`, on side `side`: `src` or `dst`)."""
    key: str
    values: IntervalSet | None = None
    negated: bool = False
    set_name: str = ""
    side: str = ""
    names: tuple[str, ...] = ()


FAMILY_TESTS = {family: Test("family", IntervalSet.point(family)) for family in FAMILY_SPACE}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a kernel rule does: `accept`, `drop`, `reset-tcp`, `reject-icmp`, `throttle`
    (policing each flow to `bytes_per_second`) or `redirect` (packet mark `mark`, then accept)."""
    kind: str
    log: bool = False
    bytes_per_second: int = 0
    mark: int = 0


@dataclass(frozen=True, slots=True)
class KernelRule:
    tests: tuple[Test, ...]
    verdict: Verdict
    family: int | None          # 4 or 6 when the rule tests addresses or subscriber sets
    rule: str                   # the source rule's name, or `default`
    index: int | None           # the match rule's index in the table; None for `default`


class Unsupported(Exception):
    """Part of a rule the target cannot express exactly: an error, or with --approximate the
    nearest thing, recorded."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class Lowering:
    """Lowers the rules of one table under one contract; collects approximations as it goes."""
    schema: Schema
    contract: Contract
    approximate: bool
    approximations: list[Approximation]
    member_tests: dict[tuple, "Test"] = field(default_factory=dict, init=False, repr=False)     # _member_test

    def rule(self, match: MatchRule) -> tuple[list[KernelRule], Verdict]:
        """The kernel rules of a match rule (none when it holds only flows no packet carries),
        and its verdict."""
        box = dict(match.matches)
        verdict = self.verdict(match.action, match.origin)
        member_tests = self._subscriber_tests(box)
        unsplit = tuple(self._mark_and_time_tests(box))
        protocols = [(tests, self._protocol_verdict(verdict, tests)) for tests in self._protocol_variants(box, match.action)]
        directions = [(tuple(tests), side) for tests, side in self._directions(box)]
        interfaces = self._interface_variants(box)
        out = []
        # one kernel rule per family, protocol variant, direction and interface variant, in that
        # order; the tests of a family and of a side are built once and shared by its rules
        for family in self._families(box):
            head: tuple[Test, ...] = ()
            addresses: tuple[Test, ...] = ()
            if family is not None:
                head, addresses = (FAMILY_TESTS[family],), tuple(self._address_tests(box, family))
            members = {side: tuple(self._member_test(s, negated, family, side) for s, negated in member_tests)
                       for _, side in directions}
            for proto_tests, kernel_verdict in protocols:
                for direction_tests, side in directions:
                    for names in interfaces:
                        tests = head + proto_tests + addresses + names + direction_tests + unsplit + members[side]
                        out.append(KernelRule(tests, kernel_verdict, family, match.origin.name, match.index))
        return out, verdict

    def _member_test(self, subscribers: SubscriberSet, negated: bool, family: int, side: str) -> Test:
        """The test of a subscriber set, one object per set, family, side and sense (a policy
        has a few hundred, and its kernel rules tens of thousands)."""
        key = (subscribers.name, negated, family, side)
        test = self.member_tests.get(key)
        if test is None:
            test = self.member_tests[key] = Test("subscriber", negated=negated, set_name=subscribers.family_name(family),
                                                 side=side)
        return test

    @staticmethod
    def _protocol_verdict(verdict: Verdict, proto_tests: tuple[Test, ...]) -> Verdict:
        """A TCP reset for rules on TCP alone, an ICMP error for the rest."""
        proto = proto_tests[0].values if proto_tests and proto_tests[0].key == "proto" else ALL_PROTOCOLS
        if verdict.kind == "reset-tcp" and not proto.issubset(IntervalSet.point(TCP)):
            return Verdict("reject-icmp", verdict.log)
        return verdict

    def default(self, action: Action, span: Span | None = None) -> list[KernelRule]:
        """The kernel rules of the default (`span`: where the policy writes it, for errors)."""
        verdict = self.verdict(action, Origin("default", span, None if span else "default"))
        if verdict.kind != "reset-tcp":
            return [KernelRule((), verdict, None, "default", None)]
        return [KernelRule((Test("proto", IntervalSet.point(TCP)),), verdict, None, "default", None),
                KernelRule((Test("proto", IntervalSet.point(TCP), negated=True),), Verdict("reject-icmp", verdict.log),
                           None, "default", None)]

    def verdict(self, action: Action, origin: Origin) -> Verdict:
        self._outcome_parts(action, origin)
        match action.kind:
            case "allow":
                return Verdict("accept", action.log)
            case "block":
                return Verdict("drop", action.log)
            case "reset":
                return Verdict("reset-tcp", action.log)
            case "redirect":
                return Verdict("redirect", action.log, mark=self.schema.member_index("target")[action.target])
            case "throttle":
                rate = action.rate or 0
                whole = -(-rate // 8)
                if rate % 8 or rate == 0:
                    self._inexact(origin, f"throttle rate {rate} bps is not a whole, positive number of bytes "
                                          f"per second", f"policed at {max(whole, 1)} bytes per second "
                                                         f"({max(whole, 1) * 8} bps)",
                                  "nftables limits count whole bytes per second: write a multiple of 8 bps")
                return Verdict("throttle", action.log, bytes_per_second=max(whole, 1))
        raise AssertionError(action.kind)

    def _outcome_parts(self, action: Action, origin: Origin) -> None:
        """Charging, priority, a throttle per subscriber and a purpose are decided by the policy
        but carried out by no kernel rule of this target: E520 each, or listed approximations."""
        written = [f"{part} {value}" for part, value in action.parts()]
        written += ["throttle per subscriber"] if action.scope == "subscriber" else []
        written += [f"purpose {action.purpose}"] if action.purpose else []
        if not written:
            return
        if not self.approximate:
            raise Unsupported(Diagnostic(
                "E520", "the nftables target does not carry out " + ", ".join(f"`{w}`" for w in written),
                origin.span, "no kernel rule for it", location_text=origin.location() or None,
                notes=("the kernel's rules accept, drop, reject, police per flow, log and mark for redirection; "
                       "charging and priority belong to the charging system and the scheduler",),
                help="`dpipolicy check` proves what the policy decides of them; pass --approximate to compile "
                     "without them, each listed"))
        for what in written:
            instead = "policed per flow" if what.startswith("throttle") else "left to the systems beside the kernel"
            self.approximations.append(Approximation(origin.name, origin.location(), f"`{what}` is not carried out",
                                                     instead))

    def _inexact(self, origin: Origin, what: str, instead: str, help: str) -> None:
        if not self.approximate:
            raise Unsupported(Diagnostic("E501", f"the nftables target cannot express this exactly: {what}",
                                         origin.span, "not expressible", location_text=origin.location() or None,
                                         help=f"{help}; or pass --approximate to accept: {instead}"))
        self.approximations.append(Approximation(origin.name, origin.location(), what, instead))

    # ----- variants: each list holds alternatives; a kernel rule takes one of each ------------
    def _families(self, box) -> list[int | None]:
        ips = [box[f] for f in ("src.ip", "dst.ip") if f in box]
        if not ips and not _uses_sets(box):
            return [None]
        return [fam for fam, space in FAMILY_SPACE.items() if all(v.overlaps(space) for v in ips)]

    def _protocol_variants(self, box, action: Action) -> list[tuple[Test, ...]]:
        """A protocol that has a header field the box tests alone (nft reads a port or a type
        in one protocol's header), if the box holds 0 for the fields it has not; the protocols
        with none of them together, if the box holds 0 for them all."""
        proto = box.get("proto")
        tested = [f for f in HEADER_FIELDS if f in box]
        if not tested:
            groups = [proto] if proto is not None else [None]
        else:
            everything = proto if proto is not None else ALL_PROTOCOLS
            owners = list(dict.fromkeys(p for f in tested for p in HEADER_FIELDS[f]))
            groups = [IntervalSet.point(p) for p in owners if p in everything
                      and all(0 in box[f] for f in tested if p not in HEADER_FIELDS[f])]
            rest = everything.difference(IntervalSet.of((p, p) for p in owners))
            if not rest.is_empty() and all(0 in box[f] for f in tested):
                groups.append(rest)
        if action.kind == "reset":      # a TCP reset for TCP, an ICMP error for the rest
            split = []
            for g in groups:
                values = g if g is not None else ALL_PROTOCOLS
                tcp, rest = values.intersect(IntervalSet.point(TCP)), values.difference(IntervalSet.point(TCP))
                split += [v for v in (tcp, rest) if not v.is_empty()]
            groups = split
        out = []
        ports = [_compact(f, box[f], PORT_DOMAIN) for f in ("src.port", "dst.port") if f in box]
        for g in groups:
            tests: list[Test] = [] if g is None or g == ALL_PROTOCOLS else [Test("proto", g)]
            if g is not None and g.size() == 1 and g.min() in PORT_PROTOCOLS:    # nft types a port by one protocol
                tests += ports
            if g is not None and g.size() == 1 and g.min() in TYPE_KEYS and ICMP_TYPE in box:
                tests.append(_compact(TYPE_KEYS[g.min()], box[ICMP_TYPE], TYPE_DOMAIN))
            out.append(tuple(tests))
        return out

    def _interface_variants(self, box) -> list[tuple[Test, ...]]:
        """The kernel matches an interface's name by literal (`iifname "eth*"`), and a set of
        values is a union of pieces, each a literal less the more specific literals it does not
        hold (patterns.Encoding.pieces): the pieces that lack none in one test, each other one
        in a kernel rule of its own, per interface field the box tests."""
        variants: list[tuple[Test, ...]] = [()]
        for name in INTERFACE_FIELDS:
            if name not in box:
                continue
            encoding = encoding_of(self.schema.field(name))
            pieces = encoding.pieces(box[name])
            whole = [head for head, excluded in pieces if not excluded and head != encoding.OTHER]
            alternatives = [(Test(name, names=tuple(map(encoding.text, whole))),)] if whole else []
            for head, excluded in pieces:
                if excluded or head == encoding.OTHER:
                    tests = [Test(name, names=(encoding.text(head),))] if head != encoding.OTHER else []
                    tests += [Test(name, negated=True, names=tuple(map(encoding.text, _outermost(encoding, excluded))))
                              ] if excluded else []
                    alternatives.append(tuple(tests))
            variants = [v + a for v in variants for a in alternatives]
        return variants

    def _directions(self, box) -> list[tuple[list[Test], str]]:
        """(direction tests, the side of the subscriber address) alternatives."""
        direction = box.get("direction")
        if not _uses_sets(box):
            return [([Test("direction", direction)] if direction is not None else [], "")]
        sides = {0: "src", 1: "dst"}       # uplink: the subscriber opened the connection
        wanted = [d for d in (0, 1) if direction is None or d in direction]
        return [([Test("direction", IntervalSet.point(d))], sides[d]) for d in wanted]

    def _subscriber_tests(self, box) -> list[tuple[SubscriberSet, bool]]:
        """The subscriber sets a rule tests, each with whether it is negated (placed on a side
        and a family per kernel rule). A partition (plans, zones, APNs, radios, usage tiers)
        holds every subscriber once, so `in one of some members' sets` is `in that member's
        set` for one member and `in none of the other members' sets` for several: one kernel
        rule either way."""
        out: list[tuple[SubscriberSet, bool]] = []
        for name, values in box.items():
            sets = self.contract.sets_of(name)
            if not sets:
                continue
            if not sets[0].partition:          # an add-on or roaming: one set, in or out
                out.append((sets[0], 1 not in values))
                continue
            inside = [s for s in sets if s.values.issubset(values)]
            outside = [s for s in sets if not s.values.overlaps(values)]
            assert len(inside) + len(outside) == len(sets), "usage tiers cut every rule's usage set"
            out += [(inside[0], False)] if len(inside) == 1 else [(s, True) for s in outside]
        return out

    # ----- tests that do not split ------------------------------------------------------------
    @staticmethod
    def _address_tests(box, family: int) -> list[Test]:
        space = FAMILY_SPACE[family]
        out = []
        for name in ("src.ip", "dst.ip"):
            values = box.get(name)
            if values is None:
                continue
            part = values.intersect(space)
            if part != space:
                out.append(_compact(name, part, space))
        return out

    def _mark_and_time_tests(self, box) -> list[Test]:
        out = []
        app = box.get("app")
        if app is not None:
            labels = IntervalSet.of((self.contract.label_number(lo), self.contract.label_number(hi))
                                    for lo, hi in app.intervals)
            out.append(_compact("app", labels, IntervalSet.span(1, len(self.contract.labels))))
        out += [Test(name, box[name]) for name in _FLAGS if name in box]
        if CT_STATE in box:
            out.append(_compact(CT_STATE, box[CT_STATE], self.schema.field(CT_STATE).domain))
        if SNI in box:
            out.append(_compact(SNI, box[SNI], self.schema.field(SNI).domain))
        if "time.hour" in box:
            out.append(Test("hour", box["time.hour"]))
        if "time.day" in box:
            days = box["time.day"]
            others = DAY_DOMAIN.difference(days)
            out.append(Test("day", others, negated=True) if others.size() < days.size() else Test("day", days))
        return out
