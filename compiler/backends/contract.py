"""The engine contract: how what the kernel cannot see (the classifier's label, the subscriber
database) reaches a kernel rule set, fixed per compiled policy (docs/enforcement.md).

The backend writes rules under it, the kernel check reads the kernel's copy back under it, and
the probe plays classifier and provisioning by it; `--contract FILE` exports it as JSON for the
real classifier and provisioning system.
"""
from __future__ import annotations

from dataclasses import dataclass

from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.icmp import ICMP, ICMPV6
from dpipolicy.dsl.schema import ADDON_PREFIX, ICMP_TYPE, IP_MAX, IPV6_BASE, SNI, Schema
from dpipolicy.dsl.values import VOLUME_UNITS, quantity_text

FORMAT = "dpipolicy-engine-contract"
VERSION = 1

# Only these transport protocols have ports (IANA protocol numbers); a flow of any other
# protocol has source and destination port 0 (docs/enforcement.md, "The flows a kernel sees").
PORT_PROTOCOLS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
TCP = 6
# Likewise only ICMP and ICMPv6 have a type, each in its own address family; a flow of any other
# protocol has ICMP type 0.
ICMP_FAMILIES = {ICMP: 4, ICMPV6: 6}
# nft's names of the days of `meta day`, in the order of `time.day` (nft numbers them from Sunday, 0).
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Each address family's part of the shared address dimension (dsl/schema.py).
FAMILY_SPACE = {4: IntervalSet.span(0, IPV6_BASE - 1), 6: IntervalSet.span(IPV6_BASE, IP_MAX)}


@dataclass(frozen=True, slots=True)
class MarkField:
    """A field the classifier writes into the connection mark: value << shift, under mask."""
    field: str
    mask: int
    shift: int


# `tls.sni` is the value of the server name's most specific declared pattern (dsl/domains.py):
# 0 no name sent, 1 a name under no declared pattern, 2 the first pattern of the contract, ...
SNI_MARK = MarkField(SNI, 0xFFC000, 14)
MARK_FIELDS = (MarkField("app", 0x3FF, 0), MarkField("tls", 0x400, 10), MarkField("direction", 0x800, 11),
               MarkField("network.congested", 0x1000, 12), MarkField("flow.tethered", 0x2000, 13), SNI_MARK)
# Subscriber attributes with a set per member (a partition: each subscriber in one), named
# PREFIX_MEMBER: plans, zones and APNs when the policy declares them, the radio access
# technology when a rule tests it.
PARTITIONS = {"subscriber.plan": "plan", "subscriber.zone": "zone", "subscriber.apn": "apn", "subscriber.rat": "rat"}



@dataclass(frozen=True, slots=True)
class SubscriberSet:
    """A pair of named sets (`NAME_v4`, `NAME_v6`) of subscriber addresses: membership means the
    flow's `field` has a value in `values`. Sets of a `partition` hold every subscriber once."""
    name: str
    field: str
    values: IntervalSet
    partition: bool

    def family_name(self, family: int) -> str:
        return f"{self.name}_v{family}"


@dataclass(frozen=True, slots=True)
class Approximation:
    """A part of a rule the target cannot express exactly, and what the script does instead."""
    rule: str
    location: str
    what: str
    instead: str

    def text(self) -> str:
        return f"{self.location}: rule `{self.rule}`: {self.what}; {self.instead}"


@dataclass(frozen=True)
class Contract:
    table: str
    labels: tuple[str, ...]                  # label number n is labels[n - 1]
    subscriber_sets: tuple[SubscriberSet, ...]
    redirect_targets: tuple[str, ...]        # packet mark n is redirect_targets[n - 1]
    server_names: tuple[str, ...] | None = None    # `tls.sni` value n is server_names[n] (none, other, ...)
    approximations: tuple[Approximation, ...] = ()
    base_chain: str = "forward"
    chain: str = "match_rules"

    def label_number(self, app_index: int) -> int:
        return app_index + 1

    def connection_mark(self, flow) -> int:
        """The connection mark the classifier writes for a flow (its fields as values)."""
        return sum((self.label_number(flow[m.field]) if m.field == "app" else flow[m.field]) << m.shift
                   for m in MARK_FIELDS if m.field in flow)

    def sets_of(self, field: str) -> tuple[SubscriberSet, ...]:
        return tuple(s for s in self.subscriber_sets if s.field == field)

    def set_named(self, name: str) -> tuple[SubscriberSet, int] | None:
        """The subscriber set and family of a kernel set name (`plan_payg_v4`), or None."""
        base, _, family = name.rpartition("_v")
        for s in self.subscriber_sets:
            if s.name == base and family in ("4", "6"):
                return s, int(family)
        return None

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "table": {"family": "inet", "name": self.table, "base_chain": self.base_chain,
                      "hook": "forward", "chain": self.chain},
            "connection_mark": {
                "written_by": "the classifier, before the connection's packets reach the chain",
                "fields": [{"field": m.field, "mask": f"0x{m.mask:x}", "shift": m.shift} for m in MARK_FIELDS
                           if m is not SNI_MARK or self.server_names is not None],
                "app": {"0": "not classified", **{str(self.label_number(i)): name for i, name in enumerate(self.labels)}},
                "tls": {"0": "not encrypted", "1": "encrypted"},
                "direction": {"0": "uplink", "1": "downlink"},
                "network.congested": {"0": "the cell or link is not congested", "1": "congested now"},
                "flow.tethered": {"0": "the phone's own traffic", "1": "from a device tethered to the phone"},
                **({SNI: {"0": "no server name sent", "1": "a server name under none of the patterns below",
                          **{str(n): p for n, p in enumerate(self.server_names) if n > 1}},
                    "tls.sni_value": "the number of the most specific pattern the name (lower case, without a "
                                     "trailing dot) falls under: the name itself, else the nearest `*.` suffix "
                                     "(`*.x` holds the names below x, not x)"}
                   if self.server_names is not None else {}),
            },
            "subscriber_address": {"uplink": "the original source", "downlink": "the original destination"},
            "subscriber_sets": [_set_json(s) for s in self.subscriber_sets],
            "packet_mark": {"written_by": "the rule set, for redirect",
                            "targets": {str(n): t for n, t in enumerate(self.redirect_targets, 1)}},
            "port_protocols": {str(n): name for n, name in PORT_PROTOCOLS.items()},
            "approximations": [{"rule": a.rule, "location": a.location, "what": a.what, "instead": a.instead}
                               for a in self.approximations],
        }


def _set_json(s: SubscriberSet) -> dict:
    data = {"ipv4": s.family_name(4), "ipv6": s.family_name(6), "field": s.field, "partition": s.partition}
    if s.field == "subscriber.usage":
        lo, hi = s.values.hull()
        data["usage"] = {"from_bytes": lo, "to_bytes": hi,
                         "text": f"{quantity_text(lo, VOLUME_UNITS)}..{quantity_text(hi, VOLUME_UNITS)}"}
    return data


def usage_tiers(boxes, hi: int) -> tuple[IntervalSet, ...]:
    """The pieces into which the boxes' usage sets cut 0..hi: each box's set is a union of them."""
    cuts = {0, hi + 1}
    for box in boxes:
        values = box.get("subscriber.usage")
        if values is not None:
            for lo, top in values.intervals:
                cuts.update((lo, top + 1))
    points = sorted(cuts)
    return tuple(IntervalSet.span(a, b - 1) for a, b in zip(points, points[1:]))


def build_contract(schema: Schema, boxes: list, table_name: str) -> Contract:
    """The contract of a table whose match boxes are `boxes`: sets for every plan, add-on, zone
    and APN the policy declares, for roaming, the radio access technology and the usage tiers
    when a rule tests them."""
    def partition(name: str) -> list[SubscriberSet]:
        f = schema.field(name)
        return [SubscriberSet(f"{PARTITIONS[name]}_{m}", name, IntervalSet.point(i), True)
                for i, m in enumerate(f.members)] if f is not None else []

    tested = {name for b in boxes for name in b}
    sets = partition("subscriber.plan")
    sets += [SubscriberSet(f"addon_{a}", ADDON_PREFIX + a, IntervalSet.point(1), False) for a in schema.addons]
    sets += partition("subscriber.zone") + partition("subscriber.apn")
    if "subscriber.roaming" in tested:
        sets.append(SubscriberSet("roaming", "subscriber.roaming", IntervalSet.point(1), False))
    if "subscriber.rat" in tested:
        sets += partition("subscriber.rat")
    if "subscriber.usage" in tested:
        tiers = usage_tiers(boxes, schema.field("subscriber.usage").hi)
        sets += [SubscriberSet(f"usage_{k}", "subscriber.usage", tier, True) for k, tier in enumerate(tiers)]
    sni = schema.field(SNI)
    return Contract(table_name, schema.catalogue.app_names, tuple(sets), schema.field("target").members[1:],
                    sni.members if sni is not None else None)


def unseen_flows(schema: Schema) -> tuple[dict[str, IntervalSet], ...]:
    """Boxes of the flows no packet carries (docs/enforcement.md, "The flows a kernel sees"):
    addresses of two families, and ports on a protocol that has none; when the schema has
    `icmp.type`, a type on a protocol that has none, and ICMP in the other family than its own
    (nft lists `icmp type` alike with and without the family, so the kernel's copy cannot tell
    them apart). Every claim about a kernel is over the other flows."""
    v4, v6 = FAMILY_SPACE[4], FAMILY_SPACE[6]
    portless = IntervalSet.span(0, 255).difference(IntervalSet.of((p, p) for p in PORT_PROTOCOLS))
    some_port = IntervalSet.span(1, 65535)
    unseen = ({"src.ip": v4, "dst.ip": v6}, {"src.ip": v6, "dst.ip": v4},
              {"proto": portless, "src.port": some_port}, {"proto": portless, "dst.port": some_port})
    if schema.field(ICMP_TYPE) is None:
        return unseen
    typeless = IntervalSet.span(0, 255).difference(IntervalSet.of((p, p) for p in ICMP_FAMILIES))
    other_family = {4: v6, 6: v4}
    return unseen + ({"proto": typeless, ICMP_TYPE: IntervalSet.span(1, 255)},) + tuple(
        {"proto": IntervalSet.point(p), "src.ip": other_family[family]} for p, family in ICMP_FAMILIES.items())
