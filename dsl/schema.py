"""The fields of a flow and of an outcome, each an integer dimension with a finite domain.

Addresses of both families share one dimension: IPv4 `a` is `a`, IPv6 `a` is `2**32 + a`, so a
prefix of either family is one interval. Enums are member indices, booleans 0/1, and each add-on
of `subscriber.addons` is its own boolean dimension (`subscriber.addons:vpn`). Some fields exist
only when a policy, its specs or a table use them (OPTIONAL_FIELDS), so that what never names
them reads, compiles and reports as if they did not exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Mapping

from .catalogue import Catalogue
from .intervals import IntervalSet

IPV6_BASE = 1 << 32
IP_MAX = IPV6_BASE + (1 << 128) - 1
VOLUME_MAX = 10**15          # 1PB
RATE_MAX = 10**12            # 1Tbps
ADDON_PREFIX = "subscriber.addons:"
# The engine's label for the application, under an engine profile (language.md, section 8); in a
# diff of two firmware versions each version's label is a field of its own.
LABEL, OLD_LABEL, NEW_LABEL = "dpi.app", "dpi.app.old", "dpi.app.new"
LABEL_FIELDS = (LABEL, OLD_LABEL, NEW_LABEL)
# Tethering, likewise: in rules `flow.tethered` is the engine's detection, in specs the truth and
# `dpi.tethered` the detection (language.md, section 3).
TETHERED = "flow.tethered"
DETECTED, OLD_DETECTED, NEW_DETECTED = "dpi.tethered", "dpi.tethered.old", "dpi.tethered.new"
DETECTED_FIELDS = (DETECTED, OLD_DETECTED, NEW_DETECTED)
# The engine's view of a field in specs: the field it is a view of.
ENGINE_VIEWS = {LABEL: "app", DETECTED: TETHERED}

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "sctp": 132}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
ACTIONS = ("allow", "block", "reset", "throttle", "redirect")
DIRECTIONS = ("uplink", "downlink")
# The parts of an outcome beside the action (language.md section 9). `charge` and `priority`
# take the members of the policy's `enum charge` and `enum priority`; a flow that no throttle
# decides has scope `flow`, and a rule without a purpose (and the default) purpose `none`.
OUTCOME_PARTS = ("charge", "priority")
SCOPES = ("flow", "subscriber")
PURPOSES = ("none", "legal", "security", "congestion", "commercial")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RATS = ("geran", "utran", "eutran", "nr", "wlan")       # 2G, 3G, 4G, 5G radio, and Wi-Fi
# The enums a policy declares, and the field each gives its members to (`addon`: one boolean
# field per member). The field exists only when its enum is declared.
DECLARABLE = {"plan": "subscriber.plan", "addon": "subscriber.addons", "zone": "subscriber.zone",
              "apn": "subscriber.apn"}
ORDERED_KINDS = frozenset({"port", "volume", "hour", "protocol", "rate", "icmp"})


@dataclass(frozen=True, slots=True)
class Field:
    """One dimension. `kind` is protocol, ip, port, enum, bool, volume, hour, rate, icmp (an ICMP
    type), domain (`tls.sni`: its members are `none`, `other` and the declared patterns, see
    domains.py) or interface (`iface.in`, `iface.out`: `other` and the declared names and
    patterns, see interfaces.py)."""

    name: str
    kind: str
    hi: int
    members: tuple[str, ...] = ()      # enum member names, by index
    enum: str | None = None            # enum type name (app, plan, direction, action, rule, ...)
    observable: bool = True            # can a rule match on it (can the engine see it)?
    outcome: bool = False              # an outcome variable (action, rate, logged, rule)
    why_unobservable: str = ""
    domain: IntervalSet = dataclass_field(init=False, repr=False, compare=False)    # every value, 0..hi

    def __post_init__(self) -> None:
        # made once: boxes and checks ask for it per rule and field
        object.__setattr__(self, "domain", IntervalSet.span(0, self.hi))

    @property
    def bits(self) -> int:
        return max(1, self.hi.bit_length())

    def index_of(self, member: str) -> int:
        return self.members.index(member)


@dataclass(frozen=True)
class Schema:
    """The fields of one check: built from the catalogue and the policy's declared enums."""

    flow_fields: tuple[Field, ...]
    outcome_fields: tuple[Field, ...]
    catalogue: Catalogue
    addons: tuple[str, ...]
    # Values other modules derive from the schema and look up often, under their own keys.
    derived: dict = dataclass_field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.flow_fields + self.outcome_fields})
        object.__setattr__(self, "_member_index", {})

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)

    def member_index(self, name: str) -> dict[str, int]:
        """Member name to index for an enum field (cached: `rule` can have 10k members)."""
        index = self._member_index.get(name)
        if index is None:
            index = {m: i for i, m in enumerate(self._by_name[name].members)}
            self._member_index[name] = index
        return index

    def addon_field(self, addon: str) -> str:
        return ADDON_PREFIX + addon

    def declared(self, enum: str) -> tuple[str, ...] | None:
        """The members of a declarable enum (`plan`, `addon`, `zone`, `apn`), or None when the
        policy does not declare it (an enum is never declared empty: E132)."""
        if enum == "addon":
            return self.addons or None
        f = self.field(DECLARABLE[enum])
        return f.members if f is not None else None

    def declared_enums(self) -> dict[str, tuple[str, ...]]:
        """Every declared enum's members, by enum name: what `build_schema` was given."""
        return {enum: members for enum in DECLARABLE if (members := self.declared(enum)) is not None}


def enum_field(name: str, members: tuple[str, ...], enum: str, **kw) -> Field:
    return Field(name, "enum", max(0, len(members) - 1), members, enum, **kw)


SMTP_AUTH_WHY = ("once a session is encrypted nobody on the path can see whether the client "
                 "authenticates (SMTP AUTH)")


SNI = "tls.sni"
DOMAIN_SPECIAL = ("none", "other")      # the values of no name sent and of a name under no declared pattern
# What a firewall matches besides the flow's addresses and ports (language.md, "Firewall fields"):
# the connection-tracking state, the interfaces a packet comes in and goes out by, the ICMP type.
CT_STATE, ICMP_TYPE, IFACE_IN, IFACE_OUT = "ct.state", "icmp.type", "iface.in", "iface.out"
CT_STATES = ("new", "established", "related", "invalid", "untracked")
INTERFACE_FIELDS = (IFACE_IN, IFACE_OUT)
INTERFACE_SPECIAL = ("other",)          # the value of a name under no declared name or pattern
# The fields whose values are declared names and patterns, by kind, and each kind's values that
# are none of them.
PATTERN_FIELDS = {SNI: "domain", IFACE_IN: "interface", IFACE_OUT: "interface"}
SPECIALS = {"domain": DOMAIN_SPECIAL, "interface": INTERFACE_SPECIAL}
# The fields that exist only when used, in schema order, each placed after the field named.
OPTIONAL_FIELDS = {ICMP_TYPE: "dst.port", CT_STATE: "dst.port", IFACE_IN: "dst.port", IFACE_OUT: "dst.port",
                   SNI: "smtp.auth"}
Optional = Mapping[str, tuple[str, ...]]      # optional field -> its declared patterns (ordered; () if none)


def build_schema(catalogue: Catalogue, enums: Mapping[str, tuple[str, ...]], rule_names: tuple[str, ...],
                 redirect_targets: tuple[str, ...], parts: Mapping[str, tuple[str, ...]] | None = None,
                 optional: Optional | None = None) -> Schema:
    """Fields in a fixed order. `enums` holds the declared enums (plan, addon, zone, apn) by name;
    the fields of an enum that is not declared do not exist. So do the outcome parts `charge`
    and `priority` (`parts`: part name to members) and the optional fields, which exist only
    when the policy or its specs use them (`optional`, as for `with_optional`)."""
    flow = [
        Field("proto", "protocol", 255),
        Field("src.ip", "ip", IP_MAX),
        Field("src.port", "port", 65535),
        Field("dst.ip", "ip", IP_MAX),
        Field("dst.port", "port", 65535),
        enum_field("direction", DIRECTIONS, "direction"),
        enum_field("app", catalogue.app_names, "app"),
        Field("tls", "bool", 1),
        Field("smtp.auth", "bool", 1, observable=False, why_unobservable=SMTP_AUTH_WHY),
        Field(TETHERED, "bool", 1),
    ]
    if "plan" in enums:
        flow.append(enum_field("subscriber.plan", tuple(enums["plan"]), "plan"))
    for addon in enums.get("addon") or ():
        flow.append(Field(ADDON_PREFIX + addon, "bool", 1))
    for enum in ("zone", "apn"):
        if enum in enums:
            flow.append(enum_field(DECLARABLE[enum], tuple(enums[enum]), enum))
    flow += [
        Field("subscriber.usage", "volume", VOLUME_MAX),
        Field("subscriber.roaming", "bool", 1),
        enum_field("subscriber.rat", RATS, "rat"),
        Field("network.congested", "bool", 1),
        Field("time.hour", "hour", 23),
        enum_field("time.day", DAYS, "day"),
    ]
    outcome = (
        enum_field("action", ACTIONS, "action", outcome=True),
        Field("rate", "rate", RATE_MAX, outcome=True),
        Field("logged", "bool", 1, outcome=True),
        enum_field("rule", tuple(rule_names) + ("default",), "rule", outcome=True),
        enum_field("target", ("",) + tuple(redirect_targets), "target", outcome=True),
    ) + tuple(enum_field(part, (parts or {})[part], part, outcome=True) for part in OUTCOME_PARTS
              if part in (parts or {})) + (
        enum_field("scope", SCOPES, "scope", outcome=True),
        enum_field("purpose", PURPOSES, "purpose", outcome=True),
    )
    schema = Schema(tuple(flow), outcome, catalogue, tuple(enums.get("addon") or ()))
    return with_optional(schema, optional) if optional else schema


def parts_of(schema: Schema) -> dict[str, tuple[str, ...]]:
    """The outcome parts a schema has (`charge`, `priority`) and their members, to build another."""
    return {part: schema.field(part).members for part in OUTCOME_PARTS if schema.field(part) is not None}


def optional_field(name: str, patterns: tuple[str, ...] = ()) -> Field:
    """An optional field; a pattern field over these declared patterns (canonical and in value
    order: dsl/domains.py, dsl/interfaces.py)."""
    if name == CT_STATE:
        return enum_field(CT_STATE, CT_STATES, "state")
    if name == ICMP_TYPE:
        return Field(ICMP_TYPE, "icmp", 255)
    kind = PATTERN_FIELDS[name]
    members = SPECIALS[kind] + tuple(patterns)
    return Field(name, kind, len(members) - 1, members)


def declared_patterns(field: Field) -> tuple[str, ...]:
    """The declared names and patterns of a pattern field, in value order."""
    return field.members[len(SPECIALS[field.kind]):]


def optional_of(schema: Schema) -> dict[str, tuple[str, ...]]:
    """The optional fields a schema has, with their patterns: what `with_optional` takes."""
    return {name: declared_patterns(f) if name in PATTERN_FIELDS else ()
            for name in OPTIONAL_FIELDS if (f := schema.field(name)) is not None}


def with_optional(schema: Schema, optional: Optional) -> Schema:
    """The schema with these optional fields too (a pattern field given again takes the patterns
    given), each in its place: ct.state, icmp.type and the interfaces after `dst.port`, tls.sni
    after `smtp.auth`."""
    have = optional_of(schema) | dict(optional)
    flow = []
    for f in schema.flow_fields:
        if f.name not in OPTIONAL_FIELDS:
            flow.append(f)
            flow += [optional_field(name, have[name]) for name, after in OPTIONAL_FIELDS.items()
                     if after == f.name and name in have]
    return Schema(tuple(flow), schema.outcome_fields, schema.catalogue, schema.addons)


def ct_state_values(states) -> IntervalSet:
    """The values of `ct.state` for these state names (`new`, `established`, ...)."""
    return IntervalSet.of((CT_STATES.index(s), CT_STATES.index(s)) for s in states)
