"""Random policies and specs drawn from the grammar (dsl/grammar.lark).

Mutating the shipped files rarely reaches some corners: every item kind together, deep and
wide conditions, literals of every family at and past their bounds, names that clash. The
vocabulary is read from the schema and the catalogue, so a field added to the language is
drawn too. Half the policies are drawn strictly (every value of its field's kind, names
declared once, actions complete), so they check cleanly and go on to the compiler, the
verifier and z3; the others slip now and then, on purpose, for the checker's errors.
"""
from __future__ import annotations

import functools
import random

from dpipolicy.dsl.catalogue import CATEGORIES, load_catalogue
from dpipolicy.dsl.schema import ACTIONS, DAYS, DIRECTIONS, PURPOSES, RATS, SCOPES, build_schema

ENUMS = {"plan": ("payg", "monthly", "business"), "addon": ("vpn", "tethering", "roaming_eu"),
         "zone": ("home", "abroad"), "apn": ("internet", "ims")}
PARTS = {"charge": ("zero", "standard"), "priority": ("gold", "bronze")}
# Per kind of field: single values, spans (ranges, prefixes) and values that are wrong.
_VALUES = {
    "protocol": (("tcp", "udp", "icmp", "6", "17", "0", "255", "sctp"), ("0..17", "6..6"),
                 ("256", "tcpp", "99999999999999999999", "17..6")),
    "ip": (("10.0.0.1", "74.125.206.108", "2001:db8::1", "::ffff:1.2.3.4", "0.0.0.0", "149.254.200.1/32"),
           ("10.0.0.0/8", "149.254.200.0/23", "0.0.0.0/0", "2a01:4c8:100::/48", "::/0", "10.0.0.1..10.0.0.9",
            "::1..::9"),
           ("10.0.0.1/8", "10.0.0.0/33", "256.0.0.1", "1:2:3:4:5:6:7:8:9", "2001:db8::/129", "10.0.0.9..10.0.0.1",
            "10.0.0.0..2001:db8::1", "1.2.3.4/" + "9" * 30)),
    "port": (("25", "443", "0", "65535", "587"), ("1024..65535", "25..25", "0..1023"),
             ("65536", "30..20", "-1", "9" * 40)),
    "bool": (("true", "false"), (), ("1",)),
    "volume": (("20GB", "0B", "1PB", "1.5GB", "500MB"), ("0B..10GB",), ("2PB", "1.2345KB", "20", "1" + "0" * 40 + "B")),
    "hour": (("0", "8", "23"), ("0..6", "8..23"), ("24", "8..2")),
    "rate": (("128kbps", "1Mbps", "2.5Mbps", "1000Gbps"), ("1bps..1Mbps",), ("1001Gbps", "0.5bps")),
    "domain": (('"spotify.com"', '"*.spotify.com"', '"open.spotify.com"', '"scdn.co"', '"*.a.b.example.org"',
                '"xn--bcher-kva.de"', "none"), (),
               ('"spotify"', '"*"', '"1.2.3.4"', '"a..b.com"', '"' + "a" * 64 + '.com"',
                '"' + ".".join(["abc"] * 90) + '"', '"*.*.x.com"')),
}
_ORDERED = ("port", "volume", "hour", "protocol", "rate")
_KEYWORDS = ("policy", "enum", "set", "default", "rule", "invariant", "test", "import", "when", "then", "because",
             "require", "exists", "given", "expect", "version", "and", "or", "not", "in", "log", "same", "across",
             "per", "charge", "priority", "purpose")
_TEXTS = ("ToS 7.2", 'a \\"quoted\\" reason', "<b>&amp;</b> <script>alert(1)</script>", "::error::x %0A %25",
          "naïve – ünïcödé", "a|b *c* `d` [e](f) <!-- g -->", "]]> &lt; \\\\")
_IMPORTS = ('"definitions.dpi"', '"policy.dpi"', '"../x.dpi"', '"/etc/passwd"', '""', '"spec.dpi"', '"."',
            '"/dev/zero"', '"' + "d/" * 200 + 'x.dpi"')


@functools.cache
def _fields() -> tuple:
    """The flow and outcome fields of a policy declaring every enum, from the real schema."""
    catalogue = load_catalogue()
    schema = build_schema(catalogue, ENUMS, ("r0",), ('"http://top-up"',), PARTS, ())
    return schema.flow_fields, schema.outcome_fields, catalogue.app_names


class _Draw:
    """One policy's draw: what it has declared so far, and whether it may slip."""

    def __init__(self, rng: random.Random, strict: bool, big: bool) -> None:
        self.rng, self.strict, self.big = rng, strict, big
        self.sets: dict[str, tuple] = {}        # set name -> (kind, enum) of the field it was written for
        self.rules: list[str] = []
        self.names: dict[str, int] = {}
        self.enums = {name: members for name, members in ENUMS.items() if rng.random() < 0.6}
        self.parts = {name: members for name, members in PARTS.items() if rng.random() < 0.3}

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def slip(self, p: float) -> bool:
        """A deliberate mistake, with chance p, in a draw that may make them."""
        return not self.strict and self.rng.random() < p

    def pick(self, options):
        return options[self.rng.randrange(len(options))]

    def name(self, kind: str) -> str:
        if self.slip(0.03):       # keywords, dotted names, names too long for any report, repeats
            return self.pick(_KEYWORDS + ("default", "a.b", "_", "x" * 300, f"{kind}0"))
        self.names[kind] = self.names.get(kind, -1) + 1
        return f"{kind}{self.names[kind]}"

    # ----- fields and values -------------------------------------------------------------

    def field(self, outcome: bool = False, in_rule: bool = False):
        """A field the policy has; in a rule, one the engine observes."""
        flow, outcomes, _ = _fields()
        fields = outcomes if outcome and self.chance(0.5) else flow
        if not self.slip(0.05):
            fields = [f for f in fields if self._exists(f) and f.name != "target"
                      and (f.observable or not in_rule) and (f.enum != "rule" or self.rules)]
        return self.pick(fields)

    def _exists(self, field) -> bool:
        enum = "addon" if field.name.startswith("subscriber.addons:") else field.enum
        return enum not in ENUMS and enum not in PARTS or enum in self.enums or enum in self.parts

    def single(self, field) -> str:
        """One value of the field's kind (or, slipping, of another kind or out of bounds)."""
        if self.slip(0.05):
            field = self.pick(_fields()[0])
        if field.kind == "enum":
            members = self._members(field, single=True)
            return self.name("unknown") if self.slip(0.05) or not members else self.pick(members)
        singles, _, bad = _VALUES.get(field.kind, (("1",), (), ()))
        return self.pick(bad) if bad and self.slip(0.1) else self.pick(singles)

    def element(self, field) -> str:
        """A value or a span of the field's kind, for a set."""
        _, spans, _ = _VALUES.get(field.kind, ((), (), ()))
        if field.kind == "enum" and field.name == "app" and self.chance(0.2):
            return f"category.{self.pick(CATEGORIES)}" if not self.slip(0.1) else "category.nothing"
        if spans and self.chance(0.3):
            return self.pick(spans)
        value = self.single(field)
        if field.kind == "domain" and value == "none" and not self.slip(0.5):    # in a set, `none` is no name
            return '"spotify.com"'
        return value

    def _members(self, field, single: bool) -> tuple[str, ...]:
        if field.name == "app":       # not `tls`, which reads as the field next to `==`
            flow = {f.name for f in _fields()[0]}
            return tuple(a for a in _fields()[2] if a not in flow or self.slip(0.5))
        if field.enum == "rule":
            return tuple(self.rules) + ("default",)
        if field.enum in self.enums:
            return self.enums[field.enum]
        if field.enum in self.parts:
            return self.parts[field.enum]
        return {"direction": DIRECTIONS, "day": DAYS, "rat": RATS, "action": ACTIONS, "purpose": PURPOSES,
                "scope": SCOPES}.get(field.enum, field.members)

    def set_literal(self, field, size: int | None = None) -> str:
        size = self.rng.randrange(5) if size is None else size
        items = []
        for _ in range(size):
            fitting = self._sets_for(field)
            if fitting and self.chance(0.15):
                items.append(self.pick(fitting))
            else:
                items.append(self.element(field))
        return "{" + ", ".join(items) + ("," if items and self.chance(0.1) else "") + "}"

    def _sets_for(self, field) -> list[str]:
        """Declared sets written for a field like this one (any set, slipping)."""
        if self.slip(0.1):
            return list(self.sets)
        return [name for name, of in self.sets.items() if of == (field.kind, field.enum)]

    # ----- conditions --------------------------------------------------------------------

    def atom(self, outcome: bool, in_rule: bool) -> str:
        field = self.field(outcome, in_rule)
        name = field.name
        if name.startswith("subscriber.addons:"):
            addon = name.split(":", 1)[1]
            return f"{addon} {'not in' if self.chance(0.3) else 'in'} subscriber.addons"
        if field.kind == "bool" and self.chance(0.6):
            return ("not " if self.chance(0.3) else "") + name
        form = self.rng.random()
        if form < 0.45:
            ordered = field.kind in _ORDERED or self.slip(0.05)
            op = self.pick(("==", "!=", "<", "<=", ">", ">=") if ordered else ("==", "!="))
            left, right = name, self.single(field)
            if self.chance(0.05):
                left, right = right, left
            return f"{left} {op} {right}"
        negated = "not in" if self.chance(0.3) else "in"
        fitting = self._sets_for(field)
        if form < 0.6 and fitting:
            return f"{name} {negated} {self.pick(fitting)}"
        return f"{name} {negated} {self.set_literal(field)}"

    def condition(self, depth: int, outcome: bool = False, in_rule: bool = False) -> str:
        if depth <= 0 or self.chance(0.35):
            return self.atom(outcome, in_rule)
        form = self.rng.random()
        if form < 0.4:
            parts = [self.condition(depth - 1, outcome, in_rule) for _ in range(2 + self.rng.randrange(3))]
            return f" {self.pick(('and', 'or'))} ".join(parts)
        if form < 0.6:
            return f"not {self.condition(depth - 1, outcome, in_rule)}"
        if form < 0.95:
            return f"({self.condition(depth - 1, outcome, in_rule)})"
        return self.pick(("true", "false"))

    # ----- items -------------------------------------------------------------------------

    def action(self, default: bool = False, expect: bool = False) -> str:
        word = self.name("act") if self.slip(0.03) else self.pick(ACTIONS)
        text = word
        if word == "throttle" and not self.slip(0.05) or self.slip(0.03):
            rate = next(f for f in _fields()[1] if f.name == "rate")
            text += " " + ("0bps" if self.slip(0.05) else self.single(rate))
        if word == "redirect" and not self.slip(0.05):
            text += f' "{self.pick(("http://top-up.example/?a=1&b=2", "https://x.example/<p>", "a b"))}"'
        if (word == "throttle" or self.slip(0.02)) and self.chance(0.2):
            text += " per " + ("cell" if self.slip(0.1) else self.pick(SCOPES))
        for part, members in self.parts.items():
            if default and not self.slip(0.1) or self.chance(0.4):
                text += f", {part} {'nothing' if self.slip(0.05) else self.pick(members)}"
        if self.chance(0.3):
            text += ", log"
        if (not default and not expect or self.slip(0.05)) and self.chance(0.15):
            text += " purpose " + ("fun" if self.slip(0.1) else self.pick(PURPOSES[1:]))
        return text

    def text(self) -> str:
        return f'"{self.pick(_TEXTS)}"'

    def rule(self, depth: int) -> str:
        name = self.name("r")
        self.rules.append(name)
        because = f" because {self.text()}" if self.chance(0.4) else ""
        return f"rule {name} when {self.condition(depth, in_rule=True)} then {self.action()}{because}"

    def invariant(self, depth: int) -> str:
        name = self.name("i")
        described = f" {self.text()}" if self.chance(0.4) else ""
        form = self.rng.random()
        if form < 0.2:
            return f"invariant {name}{described} exists {self.condition(depth, outcome=True)}"
        when = f" when {self.condition(depth)}" if self.chance(0.7) else ""
        if form < 0.35:
            return f"invariant {name}{described}{when} require same {self._same()}"
        return f"invariant {name}{described}{when} require {self.condition(depth, outcome=True)}"

    def _same(self) -> str:
        parts = ["action", "rate", "logged", "scope", "purpose", "outcome"] + list(self.parts)
        if self.slip(0.1):
            parts += ["rule", "colour", "app"]
        flow = [f.name for f in _fields()[0] if ":" not in f.name and self._exists(f)]
        if self.slip(0.1):
            flow += ["action", "dpi.app", "nothing"]
        chosen = self.rng.sample(parts, 1 + self.rng.randrange(2))
        if "outcome" in chosen and not self.slip(0.5):      # all the parts: alone
            chosen = ["outcome"]
        across = self.rng.sample(flow, 1 + self.rng.randrange(3))
        return f"{', '.join(chosen)} across {', '.join(across)}"

    def test(self, depth: int) -> str:
        return f"test {self.name('t')} given {self.condition(depth)} expect {self.action(expect=True)}"

    def set_decl(self) -> str:
        name = self.name("s")
        field = self.field(in_rule=True)
        text = f"set {name} = {self.set_literal(field, self.rng.randrange(6))}"
        self.sets[name] = (field.kind, field.enum)
        return text

    def enum_decls(self) -> list[str]:
        out = []
        for enum, members in {**self.enums, **self.parts}.items():
            listed = list(members) + ([self.pick(members)] if self.slip(0.05) else [])
            out.append(f"enum {enum} {{ {', '.join(listed)} }}")
        if self.slip(0.02):
            out.append(self.pick(("enum colour { red }", "enum plan { }")))
        return out


def policy(rng: random.Random) -> tuple[str, str]:
    """A policy text and a spec text. One in twenty is big: many rules, deep conditions."""
    draw = _Draw(rng, strict=rng.random() < 0.5, big=rng.random() < 0.05)
    depth = rng.randrange(8 if draw.big else 4)
    items = []
    if draw.chance(0.5):
        version = f' version "{draw.pick(("2011-09", "v1", "", "<x>"))}"' if draw.chance(0.5) else ""
        items.append(f"policy {draw.name('p')}{version}")
    items += draw.enum_decls()
    items += [draw.set_decl() for _ in range(rng.randrange(4))]
    if not draw.slip(0.03):
        items.append(f"default {draw.action(default=True)}")
    rules = [draw.rule(depth) for _ in range(rng.randrange(60 if draw.big else 8))]
    items += rules
    if draw.chance(0.05):
        items.append("import " + ('"definitions.dpi"' if draw.strict else draw.pick(_IMPORTS)))
    spec = [draw.invariant(depth) for _ in range(rng.randrange(5))]
    spec += [draw.test(depth) for _ in range(rng.randrange(4))]
    if draw.chance(0.2):                 # specs beside the rules, in the policy file itself
        items += spec
        spec = []
    if draw.chance(0.1):                 # definitions after their use, the default anywhere
        rng.shuffle(items)
    return _layout(rng, items), _layout(rng, spec)


def _layout(rng: random.Random, items: list[str]) -> str:
    """Items one a line, sometimes with comments, CRLF line ends or all on one line."""
    end = "\r\n" if rng.random() < 0.05 else "\n"
    if rng.random() < 0.03:
        return " ".join(items) + end
    lines = [item + (" # a comment" if rng.random() < 0.1 else "") for item in items]
    return end.join(lines) + (end if lines else "")
