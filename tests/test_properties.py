"""Property test: random small policies through the whole pipeline, every answer checked by brute force.

Hypothesis draws a policy as a tree (rules, default, invariants, tests over a few fields with
small literal vocabularies), renders it to policy text, and runs the real pipeline on a temp
file: parser, checker, compiler, translation validation, verifier (`api.load` + `api.check`).
`brute.verify` then recomputes every answer by enumerating representative flows, under two
semantics that must agree: `dsl.typed` (the checked policy) and the tree's own meaning, worked
out here from the literals independently of the checker.

Conventions taken from the implementation and used by the independent semantics:
- `rate` is the throttle rate, and 0 for any other action (`typed.outcome_values`);
- `expect ACTION` checks `log` only when written (`typed.expectation`).

helpers.examples sets the number of examples (500 in CI; docs/reliability.md).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from dpipolicy import api
from dpipolicy.dsl import domains
from dpipolicy.dsl.patterns import encoding_of
from dpipolicy.dsl.catalogue import load_catalogue
from dpipolicy.dsl.schema import ACTIONS, IPV6_BASE, RATE_MAX, VOLUME_MAX, Schema
from dpipolicy.verifier.solve import Limits

import brute
from helpers import examples, name_matches

EXAMPLES = examples(500)
LIMITS = Limits(timeout_s=30)
CATALOGUE = load_catalogue()


# ----- the tree ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    field: str                  # the schema's dimension (`subscriber.addons:vpn` for an add-on)
    text: str
    ints: tuple = ()            # value set as intervals of the field's integers, or
    names: tuple = ()           # as enum member names (resolved against the schema)
    patterns: tuple = ()        # as server-name literals (`tls.sni`): names, `*.` patterns, `none`
    neg: bool = False           # `!=`, `not in`


@dataclass(frozen=True)
class Not:
    operand: object


@dataclass(frozen=True)
class And:
    operands: tuple
    paren: bool = False


@dataclass(frozen=True)
class Or:
    operands: tuple
    paren: bool = False


@dataclass(frozen=True)
class Const:
    value: bool


def render(c, need: int = 0) -> str:
    """Text with the parentheses precedence needs (or=1 < and=2 < not=3), plus any asked for."""
    match c:
        case Atom(text=text):
            return text
        case Const(value):
            return "true" if value else "false"
        case Not(operand):
            text, prec = "not " + render(operand, 3), 3
            paren = False
        case And(operands, paren):
            text, prec = " and ".join(render(o, 2) for o in operands), 2
        case Or(operands, paren):
            text, prec = " or ".join(render(o, 1) for o in operands), 1
        case _:
            raise TypeError(c)
    return f"({text})" if paren or prec < need else text


def fields_of(c) -> set[str]:
    match c:
        case Atom(field=f):
            return {f}
        case Not(operand):
            return fields_of(operand)
        case And(operands) | Or(operands):
            return set().union(*(fields_of(o) for o in operands))
    return set()


@dataclass(frozen=True)
class Act:
    kind: str
    rate: int | None = None
    rate_text: str = ""
    target: str | None = None
    log: bool = False
    charge: str | None = None          # the outcome's parts (language.md section 9)
    priority: str | None = None
    scope: str | None = None           # "flow" or "subscriber", as written after a throttle's rate
    purpose: str | None = None

    def text(self) -> str:
        words = self.kind
        if self.kind == "throttle":
            words += " " + self.rate_text
        elif self.kind == "redirect":
            words += f' "{self.target}"'
        if self.scope:
            words += f" per {self.scope}"
        words += "".join(f", {part} {value}" for part, value in (("charge", self.charge), ("priority", self.priority))
                         if value)
        return words + (", log" if self.log else "") + (f" purpose {self.purpose}" if self.purpose else "")

    def written(self) -> dict[str, str]:
        """The parts written, by outcome variable."""
        return {k: v for k, v in (("charge", self.charge), ("priority", self.priority), ("scope", self.scope),
                                  ("purpose", self.purpose)) if v}


CHARGES = ("standard", "zero_rated")
PRIORITIES = ("high", "normal", "low")
SCOPES = ("flow", "subscriber")
PURPOSES = ("none", "legal", "security", "congestion", "commercial")


# ----- the independent semantics -------------------------------------------------------------

def server_name_values(a: Atom, schema: Schema) -> set[int]:
    """The values of `tls.sni` whose real-looking name matches one of the atom's literals,
    by plain name matching (none only by `none`)."""
    f = schema.field(a.field)
    encoding = encoding_of(f)

    def matches(v: int, p: str) -> bool:
        if v == domains.NONE or p == "none":
            return v == domains.NONE and p == "none"
        return name_matches(encoding.example(v), p)
    return {v for v in range(f.hi + 1) if any(matches(v, p) for p in a.patterns)}


def atom_pred(a: Atom, schema: Schema):
    if a.patterns:
        members = server_name_values(a, schema)
        return lambda v: (v in members) != a.neg
    if a.names:
        index = schema.member_index(a.field)
        members = {index[n] for n in a.names}
        return lambda v: (v in members) != a.neg
    ints = a.ints
    return lambda v: any(lo <= v <= hi for lo, hi in ints) != a.neg


def atom_intervals(a: Atom, schema: Schema) -> list[tuple[int, int]]:
    if a.patterns:
        return [(v, v) for v in range(schema.field(a.field).hi + 1)]
    if a.names:
        index = schema.member_index(a.field)
        return [(index[n], index[n]) for n in a.names]
    return list(a.ints)


def model_mask(c, schema: Schema) -> brute.Mask:
    match c:
        case Atom():
            pred = atom_pred(c, schema)
            return lambda env: env.mask(c.field, pred)
        case Const(value):
            return lambda env: np.full(env.size, value)
        case Not(operand):
            inner = model_mask(operand, schema)
            return lambda env: ~inner(env)
        case And(operands):
            parts = [model_mask(o, schema) for o in operands]

            def conj(env):
                out = np.ones(env.size, bool)
                for p in parts:
                    out &= p(env)
                return out
            return conj
        case Or(operands):
            parts = [model_mask(o, schema) for o in operands]

            def disj(env):
                out = np.zeros(env.size, bool)
                for p in parts:
                    out |= p(env)
                return out
            return disj
    raise TypeError(c)


def atoms_of(c):
    match c:
        case Atom():
            yield c
        case Not(operand):
            yield from atoms_of(operand)
        case And(operands) | Or(operands):
            for o in operands:
                yield from atoms_of(o)


@dataclass
class Case:
    """A drawn policy with its spec: renders to text and means something on its own."""
    rules: list            # (name, cond, Act, because or None)
    default: Act
    default_at: int        # `default` is written before rule number default_at
    invariants: list       # (name, description, when or None, require) or (name, None, None, None, exists)
    tests: list            # (name, given, Act)
    plans: bool
    addons: bool
    spec_file: bool        # invariants and tests in a separate spec file
    parts: bool = False    # the policy declares `enum charge` and `enum priority`
    server_names: bool = False     # declare every name of SERVER_NAMES, so two versions share their values
    zones: bool = False
    apns: bool = False

    def texts(self) -> tuple[str, str | None]:
        head = ["policy prop version \"1\"" if self.plans else "# random policy"]
        if self.plans:
            head.append("enum plan { payg, monthly, business }")
            head.append("set paid_plans = { monthly, business }")
        if self.addons:
            head.append("enum addon { vpn, tethering }")
        if self.parts:
            head.append(f"enum charge {{ {', '.join(CHARGES)} }}")
            head.append(f"enum priority {{ {', '.join(PRIORITIES)} }}")
        if self.zones:
            head.append("enum zone { " + ", ".join(ENUMS["subscriber.zone"][0]) + " }")
        if self.apns:
            head.append("enum apn { " + ", ".join(ENUMS["subscriber.apn"][0]) + " }")
        head += [f"set {name} = {{ {text} }}" for name, text, _ in NAMED_SETS]
        if self.server_names:
            head.append("set server_names = { " + ", ".join(f'"{p}"' for p in SERVER_NAMES if p != "none") + " }")
        body = []
        for k, (name, cond, act, because) in enumerate(self.rules):
            if k == self.default_at:
                body.append(f"default {self.default.text()}")
            line = f"rule {name}\n    when {render(cond)}\n    then {act.text()}"
            body.append(line + (f'\n    because "{because}"' if because else ""))
        if self.default_at >= len(self.rules):
            body.append(f"default {self.default.text()}")
        spec = []
        for name, desc, when, require, *exists in self.invariants:
            d = f' "{desc}"' if desc else ""
            if exists and exists[0] is not None:
                spec.append(f"invariant {name}{d}\n    exists {render(exists[0])}")
            else:
                w = f"\n    when {render(when)}" if when is not None else ""
                spec.append(f"invariant {name}{d}{w}\n    require {render(require)}")
        for name, given_, act in self.tests:
            spec.append(f"test {name}\n    given {render(given_)}\n    expect {act.text()}")
        if self.spec_file:
            return "\n".join(head + body) + "\n", "\n".join(spec) + "\n"
        return "\n".join(head + body + spec) + "\n", None

    def semantics(self, schema: Schema) -> brute.Semantics:
        names = [r[0] for r in self.rules] + ["default"]
        acts = [r[2] for r in self.rules] + [self.default]
        index = {n: schema.member_index(n) for n in ("action", "rule", "target")}

        def outcome(act: Act, name: str) -> dict[str, int]:
            values = {"action": index["action"][act.kind], "rate": act.rate if act.kind == "throttle" else 0,
                      "logged": int(act.log), "rule": index["rule"][name],
                      "target": index["target"][act.target if act.kind == "redirect" else ""],
                      "scope": SCOPES.index(act.scope or "flow") if act.kind == "throttle" else 0,
                      "purpose": PURPOSES.index(act.purpose or "none")}
            if self.parts:       # a part a rule does not write is the default's
                values["charge"] = CHARGES.index(act.charge or self.default.charge)
                values["priority"] = PRIORITIES.index(act.priority or self.default.priority)
            return values

        def expectation(act: Act):
            parts = [Atom("action", "", names=(act.kind,))]
            if act.kind == "throttle":
                parts.append(Atom("rate", "", ints=((act.rate, act.rate),)))
            if act.kind == "redirect":
                parts.append(Atom("target", "", names=(act.target,)))
            if act.log:
                parts.append(Atom("logged", "", ints=((1, 1),)))
            parts += [Atom(name, "", names=(value,)) for name, value in act.written().items()]
            return And(tuple(parts))

        items: dict[str, brute.Item] = {}
        conds = [r[1] for r in self.rules]
        for name, _desc, when, require, *exists in self.invariants:
            if exists and exists[0] is not None:
                items[name] = brute.Item("exists", name, exists=model_mask(exists[0], schema))
                conds.append(exists[0])
            else:
                w = when if when is not None else Const(True)
                items[name] = brute.Item("forall", name, when=model_mask(w, schema),
                                         require=model_mask(require, schema))
                conds += [w, require]
        for name, given_, act in self.tests:
            items[name] = brute.Item("test", name, when=model_mask(given_, schema),
                                     require=model_mask(expectation(act), schema))
            conds += [given_, expectation(act)]
        intervals: dict[str, list] = {}
        for c in conds:
            for a in atoms_of(c):
                intervals.setdefault(a.field, []).append(atom_intervals(a, schema))
        return brute.Semantics("generated tree", [model_mask(r[1], schema) for r in self.rules], names,
                               [outcome(a, n) for a, n in zip(acts, names)], items, intervals)


# ----- vocabularies --------------------------------------------------------------------------

def ip(text: str) -> tuple[int, int]:
    net = ipaddress.ip_network(text)
    base = 0 if net.version == 4 else IPV6_BASE
    return base + int(net.network_address), base + int(net.broadcast_address)


def ports(*values) -> tuple:
    return tuple((v, v) for v in values)


NAMED_SETS = [   # (name, text, (kind, value set))
    ("mail_ports", "25, 465, 587", ("port", ports(25, 465, 587))),
    ("high_ports", "1024..65535", ("port", ((1024, 65535),))),
    ("mail_or_imaps", "mail_ports, 993", ("port", ports(25, 465, 587, 993))),
    ("operator_mail", "10.1.0.0/16, 192.168.0.0/16, 2001:db8::/32",
     ("ip", (ip("10.1.0.0/16"), ip("192.168.0.0/16"), ip("2001:db8::/32")))),
    ("vpn_apps", "openvpn, wireguard", ("app", ("openvpn", "wireguard"))),
    ("weekend", "sat, sun", ("day", ("sat", "sun"))),
]
PLAN_SETS = [("paid_plans", ("monthly", "business"))]

PORT_LITS = [(str(v), v) for v in (0, 25, 465, 587, 993, 1024, 65535)]
NUMERIC = {   # field: (largest value, literals as (text, value), named sets as (text, intervals))
    "proto": (255, [("tcp", 6), ("udp", 17), ("icmp", 1), ("17", 17), ("47", 47)], []),
    "dst.port": (65535, PORT_LITS + [("400", 400), ("600", 600)],
                 [(n, v) for n, _, (k, v) in NAMED_SETS if k == "port"]),
    "src.port": (65535, [("1024", 1024), ("50000", 50000), ("25", 25)],
                 [("high_ports", ((1024, 65535),))]),
    "subscriber.usage": (VOLUME_MAX, [("0B", 0), ("1GB", 10**9), ("1.5GB", 1_500_000_000),
                                      ("1500MB", 1_500_000_000), ("5GB", 5 * 10**9), ("1PB", 10**15)], []),
    "time.hour": (23, [("0", 0), ("6", 6), ("22", 22), ("23", 23)], []),
    "rate": (RATE_MAX, [("64kbps", 64_000), ("128kbps", 128_000), ("1Mbps", 10**6),
                        ("1000kbps", 10**6), ("0.5Mbps", 500_000)], []),
}
IP_LITS = {
    "dst.ip": [("10.0.0.0/8", ip("10.0.0.0/8")), ("10.1.0.0/16", ip("10.1.0.0/16")),
               ("10.1.2.3", ip("10.1.2.3")), ("192.168.0.0/16", ip("192.168.0.0/16")),
               ("2001:db8::/32", ip("2001:db8::/32")), ("2001:db8::25", ip("2001:db8::25")),
               ("2001:db8::1", ip("2001:db8::1")),
               ("74.125.206.108", ip("74.125.206.108"))],
    "src.ip": [("10.0.0.0/8", ip("10.0.0.0/8")), ("100.64.0.0/10", ip("100.64.0.0/10")),
               ("10.0.0.7", ip("10.0.0.7"))],
}
ENUMS = {   # field: (member pool, named sets / categories as (text, names))
    "direction": (("uplink", "downlink"), []),
    "app": (("smtp", "submission", "smtps", "imaps", "openvpn", "http"),
            [("vpn_apps", ("openvpn", "wireguard")),
             ("category.vpn", CATALOGUE.category("vpn")), ("category.email", CATALOGUE.category("email"))]),
    "subscriber.plan": (("payg", "monthly", "business"), PLAN_SETS),
    "time.day": (("mon", "tue", "fri", "sat", "sun"), [("weekend", ("sat", "sun"))]),
    "subscriber.rat": (("geran", "utran", "eutran", "nr", "wlan"), []),
    "subscriber.zone": (("home", "national", "abroad"), []),      # declared only when used (Case.zones)
    "subscriber.apn": (("internet", "ims", "corporate"), []),
}
BOOLS = ("tls", "smtp.auth", "subscriber.roaming", "network.congested", "flow.tethered", "logged")
MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
OPS = list(MIRROR)

RULE_FIELDS = ["proto", "dst.port", "src.port", "dst.ip", "src.ip", "direction", "app", "tls",
               "subscriber.plan", "addons", "subscriber.usage", "subscriber.roaming", "time.hour", "tls.sni",
               "time.day", "network.congested", "flow.tethered", "subscriber.zone", "subscriber.apn",
               "subscriber.rat"]
SERVER_NAMES = ["spotify.com", "*.spotify.com", "a.b.spotify.com", "*.b.spotify.com", "Scdn.co.", "none"]
SPEC_FIELDS = RULE_FIELDS + ["smtp.auth"]


def compare_intervals(op: str, v: int, hi: int) -> tuple[tuple, bool]:
    """The value set of `field OP v`, and whether it is negated (`!=`)."""
    return {"==": (((v, v),), False), "!=": (((v, v),), True),
            "<": (((0, v - 1),) if v > 0 else (), False), "<=": (((0, v),), False),
            ">": (((v + 1, hi),) if v < hi else (), False), ">=": (((v, hi),), False)}[op]


@st.composite
def numeric_atom(draw, name: str) -> Atom:
    hi, lits, sets = NUMERIC[name]
    if draw(st.booleans()):
        op = draw(st.sampled_from(OPS))
        text, v = draw(st.sampled_from(lits))
        ints, neg = compare_intervals(op, v, hi)
        words = f"{text} {MIRROR[op]} {name}" if draw(st.booleans()) else f"{name} {op} {text}"
        return Atom(name, words, ints, neg=neg)
    neg = draw(st.booleans())
    choice = draw(st.integers(0, 2 if sets else 1))
    if choice == 2:
        text, ints = draw(st.sampled_from(sets))
    elif choice == 1:
        text, ints = draw(numeric_range(lits))
    else:
        elements = draw(st.lists(st.one_of(st.sampled_from(lits).map(lambda tv: (tv[0], ((tv[1], tv[1]),))),
                                           numeric_range(lits)), min_size=1, max_size=3))
        text = "{" + ", ".join(t for t, _ in elements) + "}"
        ints = tuple(iv for _, ivs in elements for iv in ivs)
    return Atom(name, f"{name} {'not in' if neg else 'in'} {text}", ints, neg=neg)


@st.composite
def numeric_range(draw, lits) -> tuple[str, tuple]:
    (ta, a), (tb, b) = sorted(draw(st.lists(st.sampled_from(lits), min_size=2, max_size=2)), key=lambda tv: tv[1])
    return f"{ta}..{tb}", ((a, b),)


@st.composite
def ip_atom(draw, name: str) -> Atom:
    lits = IP_LITS[name]
    singles = [(t, v) for t, v in lits if v[0] == v[1]]
    form = draw(st.integers(0, 3))
    if form == 0:
        op = draw(st.sampled_from(["==", "!="]))
        text, v = draw(st.sampled_from(singles))
        return Atom(name, f"{name} {op} {text}", (v,), neg=op == "!=")
    neg = draw(st.booleans())
    if form == 1:
        text, v = draw(st.sampled_from(lits))
        ints = (v,)
    elif form == 2 and name == "dst.ip":
        text, ints = "operator_mail", NAMED_SETS[3][2][1]
    else:
        elements = draw(st.lists(st.sampled_from(lits), min_size=1, max_size=3))
        parts, ints = [t for t, _ in elements], tuple(v for _, v in elements)
        v6 = draw(st.booleans())      # a range stays in one address family
        family = [(t, v) for t, v in singles if (v[0] >= IPV6_BASE) == v6]
        if len(family) >= 2 and draw(st.booleans()):
            (ta, a), (tb, b) = sorted(draw(st.lists(st.sampled_from(family), min_size=2, max_size=2)),
                                      key=lambda tv: tv[1])
            parts.append(f"{ta}..{tb}")
            ints += ((a[0], b[1]),)
        text = "{" + ", ".join(parts) + "}"
    return Atom(name, f"{name} {'not in' if neg else 'in'} {text}", ints, neg=neg)


@st.composite
def enum_atom(draw, name: str, members=None, sets=()) -> Atom:
    if members is None:
        members, sets = ENUMS[name]
    if draw(st.booleans()):
        op = draw(st.sampled_from(["==", "!="]))
        m = draw(st.sampled_from(members))
        words = f"{m} {op} {name}" if draw(st.booleans()) else f"{name} {op} {m}"
        return Atom(name, words, names=(m,), neg=op == "!=")
    neg = draw(st.booleans())
    if sets and draw(st.booleans()):
        text, names = draw(st.sampled_from(sets))
    else:
        names = tuple(draw(st.lists(st.sampled_from(members), min_size=1, max_size=3)))
        text = "{" + ", ".join(names) + "}"
    return Atom(name, f"{name} {'not in' if neg else 'in'} {text}", names=names, neg=neg)


@st.composite
def bool_atom(draw, name: str) -> Atom:
    form = draw(st.sampled_from(["bare", "== true", "== false", "!= true", "!= false", "true ==", "false !="]))
    if form == "bare":
        return Atom(name, name, ((1, 1),))
    if form in ("true ==", "false !="):
        lit, op = form.split()
        words = form + " " + name
    else:
        op, lit = form.split()
        words = f"{name} {form}"
    value = int(lit == "true")
    return Atom(name, words, ((value, value),), neg=op == "!=")


@st.composite
def addon_atom(draw) -> Atom:
    addon = draw(st.sampled_from(["vpn", "tethering"]))
    neg = draw(st.booleans())
    return Atom(f"subscriber.addons:{addon}", f"{addon} {'not in' if neg else 'in'} subscriber.addons",
                ((1, 1),), neg=neg)


@st.composite
def server_name_atom(draw) -> Atom:
    literal = lambda p: p if p == "none" else f'"{p}"'     # noqa: E731
    if draw(st.booleans()):
        op = draw(st.sampled_from(["==", "!="]))
        p = draw(st.sampled_from(SERVER_NAMES))
        return Atom("tls.sni", f"tls.sni {op} {literal(p)}", patterns=(p,), neg=op == "!=")
    neg = draw(st.booleans())
    chosen = tuple(draw(st.lists(st.sampled_from(SERVER_NAMES), min_size=1, max_size=3)))
    text = "{" + ", ".join(literal(p) for p in chosen) + "}"
    return Atom("tls.sni", f"tls.sni {'not in' if neg else 'in'} {text}", patterns=chosen, neg=neg)


def flow_atom(name: str):
    if name == "tls.sni":
        return server_name_atom()
    if name in NUMERIC:
        return numeric_atom(name)
    if name in IP_LITS:
        return ip_atom(name)
    if name in ENUMS:
        return enum_atom(name)
    if name == "addons":
        return addon_atom()
    return bool_atom(name)


def outcome_atoms(rule_names: list[str], parts: bool = False):
    return [enum_atom("action", ACTIONS), numeric_atom("rate"), bool_atom("logged"),
            enum_atom("rule", tuple(rule_names) + ("default",)), enum_atom("scope", SCOPES),
            enum_atom("purpose", PURPOSES)] + ([enum_atom("charge", CHARGES), enum_atom("priority", PRIORITIES)]
                                               if parts else [])


@st.composite
def condition(draw, atoms, depth: int):
    """A condition of at most `depth` nested and/or/not levels over the given atom strategies."""
    roll = draw(st.integers(0, 99))
    if depth == 0 or roll < 45:
        if roll < 2:
            return Const(draw(st.booleans()))
        return draw(st.one_of(atoms))
    if roll < 60:
        return Not(draw(condition(atoms, depth - 1)))
    parts = tuple(draw(st.lists(condition(atoms, depth - 1), min_size=2, max_size=3)))
    paren = draw(st.integers(0, 4)) == 0
    return And(parts, paren) if roll < 82 else Or(parts, paren)


RATES = [("64kbps", 64_000), ("128kbps", 128_000), ("1Mbps", 10**6), ("1000kbps", 10**6)]
TARGETS = ["http://portal.example/topup", "http://portal.example/fup"]


@st.composite
def action(draw, parts: bool = False, role: str = "rule") -> Act:
    """An action as a rule, the default or an `expect` (`role`) writes it; with `parts`, the
    outcome's parts too (the default gives every one; the others some)."""
    kind = draw(st.sampled_from(["allow", "allow", "block", "reset", "throttle", "throttle", "redirect"]))
    log = draw(st.booleans())
    act = Act(kind, log=log)
    if kind == "throttle":
        text, rate = draw(st.sampled_from(RATES))
        act = Act(kind, rate, text, log=log, scope=draw(st.sampled_from([None, None, "flow", "subscriber"])))
    if kind == "redirect":
        act = Act(kind, target=draw(st.sampled_from(TARGETS)), log=log)
    if parts:
        some = role != "default"
        act = dataclasses.replace(
            act, charge=draw(st.sampled_from(((None,) if some else ()) + CHARGES)),
            priority=draw(st.sampled_from(((None,) if some else ()) + PRIORITIES)))
    if role != "default" and draw(st.integers(0, 3)) == 0:
        act = dataclasses.replace(act, purpose=draw(st.sampled_from(PURPOSES[1:])))
    return act


@st.composite
def cases(draw, with_parts: bool = True) -> Case:
    """A random policy and spec; with `with_parts`, some declare and use the outcome's parts."""
    parts = with_parts and draw(st.booleans())
    rule_fields = draw(st.lists(st.sampled_from(RULE_FIELDS), min_size=1, max_size=4, unique=True))
    extra = draw(st.lists(st.sampled_from(SPEC_FIELDS), max_size=2, unique=True))
    spec_fields = list(dict.fromkeys(rule_fields + extra))
    rule_atoms = [flow_atom(f) for f in rule_fields]
    spec_atoms = [flow_atom(f) for f in spec_fields]
    n_rules = draw(st.integers(1, 6))
    rules = []
    for k in range(n_rules):
        because = draw(st.sampled_from([None, None, "ToS 7.2", "fair use"]))
        rules.append((f"r{k + 1}", draw(condition(rule_atoms, 3)), draw(action(parts)), because))
    default = draw(action(parts, "default"))
    names = [r[0] for r in rules]
    outcome = outcome_atoms(names, parts)
    mixed = outcome * 3 + spec_atoms
    policy_acts = [r[2] for r in rules] + [default]
    invariants = []
    for k in range(draw(st.integers(0, 3))):
        when = draw(st.one_of(st.none(), condition(spec_atoms, 2),
                              st.sampled_from([r[1] for r in rules])))
        require = draw(condition(mixed, 2))
        desc = draw(st.sampled_from([None, "what subscribers were promised"]))
        invariants.append((f"i{k + 1}", desc, when, require))
    for k in range(draw(st.integers(0, 2))):
        invariants.append((f"e{k + 1}", None, None, None, draw(condition(outcome + spec_atoms, 2))))
    tests = []
    for k in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):      # aim at a rule: its condition, narrowed, expecting its action
            name, cond, act, _ = draw(st.sampled_from(rules))
            narrowed = draw(st.one_of(st.just(cond), condition(spec_atoms, 1).map(
                lambda c, cond=cond: And((cond, c)))))
            expect = draw(st.sampled_from([act, Act(act.kind, act.rate, act.rate_text, act.target, False)]))
            tests.append((f"t{k + 1}", narrowed, expect))
        else:
            tests.append((f"t{k + 1}", draw(condition(spec_atoms, 2)),
                          draw(st.one_of(action(parts, "expect"), st.sampled_from(policy_acts)))))
    used = set()
    for c in [r[1] for r in rules] + [x for inv in invariants for x in inv[2:] if x is not None] + \
            [t[1] for t in tests]:
        used |= fields_of(c)
    plans = "subscriber.plan" in used or draw(st.booleans())
    addons = any(f.startswith("subscriber.addons:") for f in used) or draw(st.booleans())
    zones = "subscriber.zone" in used or draw(st.booleans())
    apns = "subscriber.apn" in used or draw(st.booleans())
    return Case(rules, default, draw(st.integers(0, n_rules)), invariants, tests, plans, addons,
                draw(st.booleans()), parts=parts, zones=zones, apns=apns)


# ----- running the pipeline ------------------------------------------------------------------

def run(policy_text: str, spec_text: str | None = None):
    """Write the text to a temp dir, then load and check it as the CLI does."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.dpi"
        path.write_text(policy_text, encoding="utf-8")
        specs: tuple[Path, ...] = ()
        if spec_text is not None:
            specs = (Path(tmp) / "spec.dpi",)
            specs[0].write_text(spec_text, encoding="utf-8")
        loaded = api.load(path, specs)
        return loaded, api.check(loaded, LIMITS)


def check_text(policy_text: str, spec_text: str | None = None, case: Case | None = None) -> dict[str, str]:
    """Run the pipeline and compare every answer with brute force; the brute-force statuses."""
    loaded, report = run(policy_text, spec_text)
    sems = [brute.typed_semantics(loaded.policy)]
    if case is not None:
        sems.append(case.semantics(loaded.table.schema))
    shown = policy_text + ("" if spec_text is None else "--- spec.dpi ---\n" + spec_text)
    return brute.verify(loaded, report, sems, shown)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(cases())
def test_random_policies_agree_with_brute_force(case: Case):
    policy_text, spec_text = case.texts()
    check_text(policy_text, spec_text, case)


# ----- fixed examples: the semantics they pin ------------------------------------------------

def statuses(text: str) -> dict[str, str]:
    """Brute-force-checked statuses of a fixed policy (the report agreed with them)."""
    return check_text(text)


def report_of(text: str):
    return run(text)[1]


def test_first_match_order():
    s = statuses("""
        default allow
        rule narrow when dst.port == 25 then block
        rule wide when dst.port in 20..30 then allow, log
        rule never when dst.port == 25 and proto == tcp then reset
        invariant port25_by_narrow when dst.port == 25 require rule == narrow and action == block
        invariant port26_by_wide when dst.port == 26 require rule == wide and logged
        invariant never_resets require action != reset
        invariant never_decides exists rule == never
        test port25 given dst.port == 25 and proto == tcp expect block
    """)
    assert s == {"port25_by_narrow": "holds", "port26_by_wide": "holds", "never_resets": "holds",
                 "never_decides": "violated", "port25": "passed"}


def test_not_in_named_set():
    s = statuses("""
        set mail_ports = { 25, 465, 587 }
        set mail_and_imaps = { mail_ports, 993 }
        default allow
        rule odd_ports when dst.port not in mail_ports then block
        rule late when dst.port not in mail_and_imaps then reset
        invariant mail_allowed when dst.port in {25, 465, 587} require action == allow
        invariant others_blocked when dst.port in {0, 24, 26, 464, 466, 993, 65535} require action == block
        invariant no_block_on_587 exists dst.port == 587 and action == block
        invariant late_is_dead exists action == reset
    """)
    assert s == {"mail_allowed": "holds", "others_blocked": "holds", "no_block_on_587": "violated",
                 "late_is_dead": "violated"}


def test_negated_or_region():
    text = """
        default allow
        rule odd when not (proto == tcp or dst.port == 25) then reset
        invariant never_reset require action != reset
        invariant udp25_allowed when proto == udp and dst.port == 25 require action == allow
        invariant udp26_reset when proto == udp and dst.port == 26 require action == reset
        invariant tcp_allowed when proto == tcp require action == allow
    """
    assert statuses(text) == {"never_reset": "violated", "udp25_allowed": "holds", "udp26_reset": "holds",
                              "tcp_allowed": "holds"}
    result = next(r for r in report_of(text).results if r.name == "never_reset")
    assert result.region_complete and [rule for _, rule in result.region] == ["odd"] * len(result.region)
    for box, _ in result.region:
        assert 6 not in box["proto"] and 25 not in box["dst.port"]
    assert result.counterexample.flow["proto"] != 6 and result.counterexample.flow["dst.port"] != 25


def test_throttle_rate_comparisons():
    s = statuses("""
        default allow
        rule p2p_heavy when app == bittorrent and subscriber.usage > 5GB then throttle 128kbps, log
        rule p2p when app == bittorrent then throttle 1Mbps
        invariant heavy_slow when app == bittorrent and subscriber.usage > 5GB
            require action == throttle and rate <= 128kbps and logged
        invariant all_p2p_slow when app == bittorrent require action == throttle and rate <= 128kbps
        invariant p2p_at_most_1000kbps when app == bittorrent require rate <= 1000kbps and rate > 128kbps
        invariant some_fast_p2p exists action == throttle and rate == 1000kbps
        test heavy given app == bittorrent and subscriber.usage >= 6GB expect throttle 128kbps, log
        test light given app == bittorrent and subscriber.usage <= 5GB expect throttle 1000kbps
    """)
    assert s == {"heavy_slow": "holds", "all_p2p_slow": "violated", "p2p_at_most_1000kbps": "violated",
                 "some_fast_p2p": "holds", "heavy": "passed", "light": "passed"}
    result = next(r for r in report_of("""
        default allow
        rule p2p_heavy when app == bittorrent and subscriber.usage > 5GB then throttle 128kbps, log
        rule p2p when app == bittorrent then throttle 1Mbps
        invariant all_p2p_slow when app == bittorrent require action == throttle and rate <= 128kbps
    """).results)
    assert result.counterexample.rule == "p2p" and result.counterexample.flow["subscriber.usage"] <= 5 * 10**9


def test_rule_equals_default():
    s = statuses("""
        default allow, log
        rule smtp when dst.port == 25 then block
        invariant others_by_default when dst.port != 25 require rule == default and logged
        invariant all_by_default require rule == default
        invariant default_used exists rule == default and dst.port == 80
        invariant smtp_never_default when dst.port == 25 require rule != default
    """)
    assert s == {"others_by_default": "holds", "all_by_default": "violated", "default_used": "holds",
                 "smtp_never_default": "holds"}


def test_exists_violated_when_unsatisfiable():
    s = statuses("""
        default allow
        rule smtp when dst.port == 25 then block
        invariant contradictory exists dst.port == 25 and dst.port == 26
        invariant never_false exists false
        invariant no_redirect exists action == redirect
        invariant no_allowed_25 exists dst.port == 25 and action == allow
        invariant blocked_25 exists dst.port == 25 and action == block
    """)
    assert s == {"contradictory": "violated", "never_false": "violated", "no_redirect": "violated",
                 "no_allowed_25": "violated", "blocked_25": "holds"}


def test_unpinned_field_fails_a_test():
    text = """
        enum addon { vpn }
        default allow
        rule heavy_vpn when app == openvpn and subscriber.usage > 5GB and vpn not in subscriber.addons
            then throttle 128kbps
        test openvpn_allowed given app == openvpn expect allow
        test with_addon given app == openvpn and vpn in subscriber.addons expect allow
        test light given app == openvpn and subscriber.usage <= 5GB expect allow
    """
    assert statuses(text) == {"openvpn_allowed": "failed", "with_addon": "passed", "light": "passed"}
    result = next(r for r in report_of(text).results if r.name == "openvpn_allowed")
    flow = result.counterexample.flow
    assert result.counterexample.rule == "heavy_vpn"
    assert flow["subscriber.usage"] > 5 * 10**9 and flow["subscriber.addons:vpn"] == 0


def test_expect_checks_log_only_when_written():
    s = statuses("""
        default allow
        rule smtp when dst.port == 25 then allow, log
        test logged_allow given dst.port == 25 expect allow
        test logged_allow_log given dst.port == 25 expect allow, log
        test unlogged given dst.port == 26 expect allow, log
        test spec_only_field given dst.port == 25 and smtp.auth expect allow, log
    """)
    assert s == {"logged_allow": "passed", "logged_allow_log": "passed", "unlogged": "failed",
                 "spec_only_field": "passed"}


def test_precedence_not_and_or():
    # `not a and b or c` is `((not a) and b) or c`
    s = statuses("""
        default allow
        rule r when not proto == tcp and dst.port == 25 or tls then block
        invariant udp25 when proto == udp and dst.port == 25 and not tls require action == block
        invariant tcp25 when proto == tcp and dst.port == 25 and not tls require action == allow
        invariant tls_any when tls require action == block
    """)
    assert s == {"udp25": "holds", "tcp25": "holds", "tls_any": "holds"}
