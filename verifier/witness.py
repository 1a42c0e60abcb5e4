"""Realistic concrete flows: any point of a box is a valid witness, so pick the one an operator
would recognise (registered port of the application, a well-known server, a subscriber address)."""
from __future__ import annotations

from typing import Mapping

from dpipolicy.compiler.backends.contract import PORT_PROTOCOLS
from dpipolicy.dsl import domains, icmp
from dpipolicy.dsl.catalogue import Application
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.schema import (ADDON_PREFIX, CT_STATE, DETECTED_FIELDS, ICMP_TYPE, INTERFACE_FIELDS, IPV6_BASE,
                                  LABEL_FIELDS, PROTOCOLS, RATS, SNI, TETHERED, Schema)
from dpipolicy.dsl.values import parse_ip

# Well-known public servers first (Google's mail front end, as in the 2011 reports), then
# documentation ranges (RFC 5737, RFC 3849), so a counterexample reads like real traffic.
_SERVER_ADDRESSES = ("74.125.206.108", "93.184.216.34", "203.0.113.10", "2001:db8::25")
_SUBSCRIBER_ADDRESSES = ("10.0.0.7", "100.64.0.7", "2001:db8:1::7")
_COMMON_PORTS = (443, 80, 25, 53)
_TLS_APPS = frozenset({"smtps", "submission", "imaps", "pop3s", "https", "tls", "quic"})   # submission: STARTTLS
_AUTH_APPS = frozenset({"submission", "smtps"})


def _pick(values: IntervalSet, preferred, avoid_network_address: bool = False) -> int:
    for value in preferred:
        if value in values:
            return value
    lo, hi = values.intervals[0]
    return lo + 1 if avoid_network_address and hi - lo >= 2 else lo


_SERVERS = tuple(parse_ip(t)[0] for t in _SERVER_ADDRESSES)
_SUBSCRIBERS = tuple(parse_ip(t)[0] for t in _SUBSCRIBER_ADDRESSES)


_APPLICATION_FIELDS = ("app", "proto", "dst.port", "tls", "smtp.auth")
_PREFERRED = {"src.port": ((50000, 40000, 1024), False), "dst.ip": (_SERVERS, True),
              "src.ip": (_SUBSCRIBERS, True), "time.hour": ((12,), False),
              "subscriber.rat": ((RATS.index("eutran"),), False)}
# The values a flow's text leaves out, as it leaves out uplink, no TLS and no usage: Monday
# (the smallest day, which a witness takes where the day does not matter) and 4G radio.
USUAL = {"time.day": 0, "subscriber.rat": RATS.index("eutran")}


class _Chooser:
    """What realistic_point remembers per schema: boxes repeat the same value sets often, and
    choosing the application tries every one. Value sets are known by their interval tuples,
    which hash in C (the dataclass's hash is Python)."""

    def __init__(self, schema: Schema):
        self.whole = {f.name: f.domain for f in schema.flow_fields}
        self.labels = tuple(name for name in LABEL_FIELDS if name in self.whole)
        self.detections = tuple(name for name in DETECTED_FIELDS if name in self.whole)
        chosen = set(_APPLICATION_FIELDS) | set(_PREFERRED) | set(LABEL_FIELDS) | set(DETECTED_FIELDS)
        chosen |= {SNI, ICMP_TYPE, *INTERFACE_FIELDS}
        self.interfaces = tuple(name for name in INTERFACE_FIELDS if name in self.whole)
        self.encodings = {name: encoding_of(schema.field(name)) for name in self.interfaces}
        self.least = tuple(name for name in self.whole if name not in chosen)
        self.picks: dict[str, dict] = {name: {} for name in _PREFERRED}
        self.applications: dict[tuple, tuple[int, ...]] = {}
        self.members = schema.field("app").members
        self.entries = [schema.catalogue.get(m) for m in self.members]

    def point(self, box: Mapping[str, IntervalSet]) -> dict[str, int]:
        whole = self.whole
        sets = [box.get(name) or whole[name] for name in _APPLICATION_FIELDS]
        # a flow that must have an ICMP type is ICMP, if the box lets it (other protocols have type 0)
        if ICMP_TYPE in box and 0 not in box[ICMP_TYPE] and sets[1].overlaps(_ICMP):
            sets[1] = sets[1].intersect(_ICMP)
        # a flow that must send a server name goes to a web server, if the box lets it
        named = SNI in box and domains.NONE not in box[SNI]
        key = tuple(values.intervals for values in sets) + (named,)
        found = self.applications.get(key)
        if found is None:
            found = self.applications[key] = self._application(*sets, named)
        app, proto, port, tls, auth = found
        flow = {"app": app, "proto": proto, "dst.port": port}
        for name in ("src.port", "dst.ip", "src.ip"):
            flow[name] = self._picked(name, box.get(name) or whole[name])
        if proto not in PORT_PROTOCOLS:     # ICMP, GRE, ...: no ports, where the box lets it
            flow["src.port"] = _pick(box.get("src.port") or whole["src.port"], (0,))
        flow["tls"], flow["smtp.auth"] = tls, auth
        if ICMP_TYPE in whole:      # an echo request for ICMP, type 0 for the rest, where the box lets it
            flow[ICMP_TYPE] = _pick(box.get(ICMP_TYPE) or whole[ICMP_TYPE], (icmp.ECHO_REQUEST.get(proto, 0),))
        for name in self.interfaces:
            flow[name] = _declared_first(self.encodings[name], box.get(name) or whole[name])
        if SNI in whole:
            flow[SNI] = sni = _server_name(box.get(SNI) or whole[SNI], tls)
            if sni != domains.NONE and not tls and 1 in (box.get("tls") or whole["tls"]):
                flow["tls"] = 1          # a client that sends a server name speaks TLS
        for name in ("time.hour", "subscriber.rat"):
            flow[name] = self._picked(name, box.get(name) or whole[name])
        for name in self.labels:
            flow[name] = _pick(box.get(name) or whole[name], (app,))     # the engine's label: right, where it can be
        for name in self.least:
            flow[name] = (box.get(name) or whole[name]).intervals[0][0]   # smallest usage, no add-on, not roaming, uplink
        for name in self.detections:
            flow[name] = _pick(box.get(name) or whole[name], (flow[TETHERED],))    # the engine's detection, likewise
        return flow

    def _picked(self, name: str, values: IntervalSet) -> int:
        picks = self.picks[name]
        value = picks.get(values.intervals)
        if value is None:
            value = picks[values.intervals] = _pick(values, *_PREFERRED[name])
        return value

    def _application(self, apps: IntervalSet, protos: IntervalSet, ports: IntervalSet, tls: IntervalSet,
                     auth: IntervalSet, named: bool = False) -> tuple[int, ...]:
        """The application (the first of the box whose registered port its protocols and ports
        allow, `https` first for a flow that sends a server name, else the first known one),
        then the protocol, destination port, TLS and SMTP AUTH that go with it."""
        entries = self.entries

        def fits(app: Application | None) -> bool:
            return app is not None and any(p in protos and any(a <= hi and lo <= b for a, b in ports.intervals)
                                           for p, lo, hi in app.ports)
        https = self.members.index("https") if named and "https" in self.members else None
        first = [https] if https is not None and https in apps else []
        chosen = next((i for i in first + [i for lo, hi in apps.intervals for i in range(lo, hi + 1)]
                       if fits(entries[i])), None)
        if chosen is None:
            chosen = _pick(apps, [i for i, name in enumerate(self.members) if name != "unknown"])
        app = entries[chosen]
        app_ports = app.ports if app else ()
        proto = _pick(protos, [p for p, _, _ in app_ports] + [PROTOCOLS["tcp"], PROTOCOLS["udp"]])
        port = _pick(ports, [port for p, lo, hi in app_ports if p == proto for port in (lo, hi)] + list(_COMMON_PORTS)
                     if proto in PORT_PROTOCOLS else (0,))
        name = app.name if app else ""
        return (chosen, proto, port, _pick(tls, (1, 0) if name in _TLS_APPS else (0, 1)),
                _pick(auth, (1, 0) if name in _AUTH_APPS else (0, 1)))


_ICMP = IntervalSet.of([(icmp.ICMP, icmp.ICMP), (icmp.ICMPV6, icmp.ICMPV6)])


def _declared_first(encoding, values: IntervalSet) -> int:
    """A declared name or pattern's value first, then `other`: the policy's own names read best."""
    declared = values.intersect(IntervalSet.span(encoding.first, values.hull()[1]))
    return declared.min() if not declared.is_empty() else encoding.OTHER


def _server_name(values: IntervalSet, tls: int) -> int:
    """A declared pattern's value first, then a name under none, then no name; no name first
    for a flow without TLS."""
    named = [part for part in (values.intersect(IntervalSet.span(domains.FIRST_PATTERN, values.hull()[1])),
                               values.intersect(IntervalSet.point(domains.OTHER))) if not part.is_empty()]
    if named and (tls or domains.NONE not in values):
        return named[0].min()
    return domains.NONE


def shown_name(schema: Schema, flow: Mapping[str, int], name: str) -> str | None:
    """A flow's server name (`tls.sni`) or interface (`iface.in`, `iface.out`) as a real-looking
    name (None: it sends no server name)."""
    return encoding_of(schema.field(name)).example(flow[name])


def realistic_point(schema: Schema, box: Mapping[str, IntervalSet]) -> dict[str, int]:
    """A point of `box` chosen field by field, the application first since ports follow from it."""
    chooser = schema.derived.get("realistic points")
    if chooser is None:
        chooser = schema.derived["realistic points"] = _Chooser(schema)
    return chooser.point(box)


def flow_text(schema: Schema, flow: Mapping[str, int], interfaces: Mapping[str, str] | None = None) -> str:
    """One line, the way an operator writes a flow: `tcp 10.0.0.7:50000 -> 74.125.206.108:465 app=smtps tls`.
    `interfaces`: the names to show for `iface.in` and `iface.out` when they are known (a probe's
    packets), instead of an example name of their values."""
    from dpipolicy.dsl.values import value_text
    f = schema.field
    ports = flow["proto"] in PORT_PROTOCOLS or flow["src.port"] or flow["dst.port"]
    source, destination = (_endpoint(flow[f"{end}.ip"], flow[f"{end}.port"], ports) for end in ("src", "dst"))
    words = [value_text(f("proto"), flow["proto"]), f"{source} -> {destination}"]
    if ICMP_TYPE in flow and (flow["proto"] in icmp.PROTOCOL_WORDS or flow[ICMP_TYPE]):
        words.append(f"{ICMP_TYPE}={icmp_type_text(flow['proto'], flow[ICMP_TYPE])}")
    if CT_STATE in flow:
        words.append(f"{CT_STATE}={value_text(f(CT_STATE), flow[CT_STATE])}")
    words += [f"{name}={(interfaces or {}).get(name) or shown_name(schema, flow, name)}"
              for name in INTERFACE_FIELDS if name in flow]
    words.append(f"app={value_text(f('app'), flow['app'])}")
    labels = [n for n in LABEL_FIELDS if n in flow]     # under engine profiles
    if labels and any(flow[n] != flow["app"] for n in labels):
        words.append("labelled " + " -> ".join(value_text(f(n), flow[n]) for n in labels))
    for name in ("tls", "smtp.auth", TETHERED):
        if flow[name]:
            words.append(name.split(".")[-1] if name != "smtp.auth" else "smtp.auth")
    if SNI in flow and flow[SNI] != domains.NONE:
        words.append(f"{SNI}={shown_name(schema, flow, SNI)}")
    detections = [n for n in DETECTED_FIELDS if n in flow]       # under a profile that may get tethering wrong
    if any(flow[n] != flow[TETHERED] for n in detections):
        words += [f"{n}={value_text(f(n), flow[n])}" for n in detections]
    if flow["subscriber.roaming"]:
        words.append("roaming")
    if schema.field("subscriber.plan"):
        words.append(f"plan={value_text(f('subscriber.plan'), flow['subscriber.plan'])}")
    if schema.addons:
        words.append("addons={" + ",".join(addons_of(schema, flow)) + "}")
    for name in ("subscriber.zone", "subscriber.apn"):        # like the plan: whenever declared
        if schema.field(name):
            words.append(f"{name.split('.')[1]}={value_text(f(name), flow[name])}")
    if flow["subscriber.usage"]:
        words.append(f"usage={value_text(f('subscriber.usage'), flow['subscriber.usage'])}")
    if flow["subscriber.rat"] != USUAL["subscriber.rat"]:
        words.append(f"rat={value_text(f('subscriber.rat'), flow['subscriber.rat'])}")
    if flow["network.congested"]:
        words.append("congested")
    words.append(f"hour={flow['time.hour']}")
    if flow["time.day"] != USUAL["time.day"]:
        words.append(f"day={value_text(f('time.day'), flow['time.day'])}")
    if flow["direction"]:
        words.append("downlink")
    return " ".join(words)


def icmp_type_text(proto: int, value: int) -> str:
    """An ICMP type as a flow's text shows it: by its name in the flow's protocol, if it has one."""
    return (icmp.type_name(proto, value) if proto in icmp.PROTOCOL_WORDS else None) or str(value)


def addons_of(schema: Schema, flow: Mapping[str, int]) -> list[str]:
    return [a for a in schema.addons if flow.get(ADDON_PREFIX + a)]


def _endpoint(ip: int, port: int, ports: bool) -> str:
    """An address, with its port unless the flow's protocol has none (and the flow no port)."""
    from dpipolicy.dsl.values import ip_text
    if not ports:
        return ip_text(ip)
    return f"[{ip_text(ip)}]:{port}" if ip >= IPV6_BASE else f"{ip_text(ip)}:{port}"

