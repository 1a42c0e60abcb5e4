"""Realistic concrete flows: any point of a box is a valid witness, so pick the one an operator
would recognise (registered port of the application, a well-known server, a subscriber address)."""
from __future__ import annotations

from typing import Mapping

from dpipolicy.dsl.catalogue import Application
from dpipolicy.dsl.intervals import IntervalSet
from dpipolicy.dsl.schema import ADDON_PREFIX, IPV6_BASE, LABEL_FIELDS, PROTOCOLS, Schema
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


def _application_fields(schema: Schema, domain: Mapping[str, IntervalSet]) -> tuple[int, ...]:
    """The application (the first of the box whose registered port its protocols and ports
    allow, else the first known one), then the protocol, destination port, TLS and SMTP AUTH
    that go with it. Remembered per schema: boxes repeat these five sets often, and trying
    every application is slow."""
    sets = tuple(domain[name] for name in _APPLICATION_FIELDS)
    key = ("realistic application", tuple(values.intervals for values in sets))     # tuples hash in C
    if key not in schema.derived:
        apps, protos, ports, tls, auth = sets
        members = schema.field("app").members
        entries = schema.derived.get("applications")
        if entries is None:
            entries = schema.derived["applications"] = [schema.catalogue.get(m) for m in members]

        def fits(app: Application | None) -> bool:
            return app is not None and any(p in protos and any(a <= hi and lo <= b for a, b in ports.intervals)
                                           for p, lo, hi in app.ports)
        chosen = next((i for lo, hi in apps.intervals for i in range(lo, hi + 1) if fits(entries[i])), None)
        if chosen is None:
            chosen = _pick(apps, [i for i, n in enumerate(members) if n != "unknown"])
        app = entries[chosen]
        app_ports = app.ports if app else ()
        proto = _pick(protos, [p for p, _, _ in app_ports] + [PROTOCOLS["tcp"], PROTOCOLS["udp"]])
        port = _pick(ports, [port for p, lo, hi in app_ports if p == proto for port in (lo, hi)] + list(_COMMON_PORTS))
        name = app.name if app else ""
        schema.derived[key] = (chosen, proto, port, _pick(tls, (1, 0) if name in _TLS_APPS else (0, 1)),
                               _pick(auth, (1, 0) if name in _AUTH_APPS else (0, 1)))
    return schema.derived[key]


_APPLICATION_FIELDS = ("app", "proto", "dst.port", "tls", "smtp.auth")
_PREFERRED = {"src.port": ((50000, 40000, 1024), False), "dst.ip": (_SERVERS, True),
              "src.ip": (_SUBSCRIBERS, True), "time.hour": ((12,), False)}


def _picked(schema: Schema, name: str, values: IntervalSet) -> int:
    """The value of a field with fixed preferences (_PREFERRED), remembered per schema."""
    picks = schema.derived.setdefault(("realistic", name), {})
    value = picks.get(values.intervals)
    if value is None:
        value = picks[values.intervals] = _pick(values, *_PREFERRED[name])
    return value


def _flow_domains(schema: Schema) -> tuple[dict[str, IntervalSet], tuple[str, ...]]:
    """Every flow field's domain, and the fields that take their least value."""
    found = schema.derived.get("flow domains")
    if found is None:
        chosen = set(_APPLICATION_FIELDS) | set(_PREFERRED) | set(LABEL_FIELDS)
        found = schema.derived["flow domains"] = ({f.name: f.domain for f in schema.flow_fields},
                                                  tuple(f.name for f in schema.flow_fields if f.name not in chosen))
    return found


def realistic_point(schema: Schema, box: Mapping[str, IntervalSet]) -> dict[str, int]:
    """A point of `box` chosen field by field, the application first since ports follow from it."""
    whole, least = _flow_domains(schema)
    domain = {**whole, **box}
    app, proto, port, tls, auth = _application_fields(schema, domain)
    flow: dict[str, int] = {"app": app, "proto": proto, "dst.port": port}
    for name in ("src.port", "dst.ip", "src.ip"):
        flow[name] = _picked(schema, name, domain[name])
    flow["tls"], flow["smtp.auth"] = tls, auth
    flow["time.hour"] = _picked(schema, "time.hour", domain["time.hour"])
    for name in LABEL_FIELDS:
        if name in domain:
            flow[name] = _pick(domain[name], (flow["app"],))     # the engine's label: right, where it can be
    for name in least:
        flow[name] = domain[name].intervals[0][0]     # smallest usage, no add-on, not roaming, uplink (0 if allowed)
    return flow


def flow_text(schema: Schema, flow: Mapping[str, int]) -> str:
    """One line, the way an operator writes a flow: `tcp 10.0.0.7:50000 -> 74.125.206.108:465 app=smtps tls`."""
    from dpipolicy.dsl.values import value_text
    f = schema.field
    words = [value_text(f("proto"), flow["proto"]),
             f"{_endpoint(flow['src.ip'], flow['src.port'])} -> {_endpoint(flow['dst.ip'], flow['dst.port'])}",
             f"app={value_text(f('app'), flow['app'])}"]
    labels = [n for n in LABEL_FIELDS if n in flow]     # under engine profiles
    if labels and any(flow[n] != flow["app"] for n in labels):
        words.append("labelled " + " -> ".join(value_text(f(n), flow[n]) for n in labels))
    for name in ("tls", "smtp.auth", "subscriber.roaming"):
        if flow[name]:
            words.append(name.split(".")[-1] if name != "smtp.auth" else "smtp.auth")
    if schema.field("subscriber.plan"):
        words.append(f"plan={value_text(f('subscriber.plan'), flow['subscriber.plan'])}")
    if schema.addons:
        words.append("addons={" + ",".join(addons_of(schema, flow)) + "}")
    if flow["subscriber.usage"]:
        words.append(f"usage={value_text(f('subscriber.usage'), flow['subscriber.usage'])}")
    words.append(f"hour={flow['time.hour']}")
    if flow["direction"]:
        words.append("downlink")
    return " ".join(words)


def addons_of(schema: Schema, flow: Mapping[str, int]) -> list[str]:
    return [a for a in schema.addons if flow.get(ADDON_PREFIX + a)]


def _endpoint(ip: int, port: int) -> str:
    from dpipolicy.dsl.values import ip_text
    return f"[{ip_text(ip)}]:{port}" if ip >= IPV6_BASE else f"{ip_text(ip)}:{port}"

